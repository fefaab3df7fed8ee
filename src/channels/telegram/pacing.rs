//! Outbound pacing under Telegram's limits: at most one message per second
//! per chat, 20 per minute per group, 30 per second overall, and nothing to
//! a chat before a 429's `retry_after` has passed. Only what Telegram
//! limits is paced: sendMessage, editMessageText, sendPhoto (and drafts).
//! Chat actions, reactions and callback answers are sent at once and never
//! count against a chat's budget.
//!
//! Every paced call waits its turn here first (`wait_turn`) and reports its
//! answer (`sent`): Telegram counts a message when it arrives, somewhere
//! between the two, so the limits count from the answer — counting from
//! the reservation let network jitter squeeze 31 messages into Telegram's
//! second (measured by `examples/load`).
//!
//! First come, first served: a caller takes a ticket, and tickets are
//! granted strictly in order among those the limits allow now (a later
//! ticket of another chat may pass one whose own chat is still held, never
//! one the limits would allow). Whoever looks — a newcomer, or a sleeper
//! whose moment has come — runs the same `dispatch` over the ordered
//! tickets, so a sleeper woken as a slot frees cannot lose it to a newcomer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const GROUP_WINDOW: Duration = Duration::from_secs(60);
const GROUP_MAX_IN_WINDOW: usize = 20;
const GLOBAL_WINDOW: Duration = Duration::from_secs(1);
const GLOBAL_MAX_IN_WINDOW: usize = 30;
/// Past this many remembered chats, the ones no limit holds any more are forgotten.
const FORGET_AFTER_CHATS: usize = 1024;

/// What Telegram's limits remember: the sends they still count.
#[derive(Debug, Default)]
struct Limits {
    next_for_chat: HashMap<i64, Instant>,
    group_sends: HashMap<i64, VecDeque<Instant>>,
    global_sends: VecDeque<Instant>,
}

/// A caller waiting for its turn.
#[derive(Debug)]
struct Ticket {
    chat_id: i64,
    grant: oneshot::Sender<Instant>,
}

#[derive(Debug, Default)]
struct State {
    limits: Limits,
    /// Waiting callers in arrival order.
    waiting: BTreeMap<u64, Ticket>,
    next_ticket: u64,
}

/// Shared by every sender of the channel.
#[derive(Debug, Default)]
pub struct Pacer {
    state: std::sync::Mutex<State>,
}

/// Takes a caller's ticket back if it stops waiting (shutdown, a dropped
/// future): the chat's next ticket may then go.
struct Leave<'a> {
    pacer: &'a Pacer,
    ticket: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut state = self.pacer.lock();
        if state.waiting.remove(&self.ticket).is_some() {
            state.dispatch(Instant::now());
        }
    }
}

impl Pacer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wait until a message to `chat_id` is allowed and it is this caller's
    /// turn, and reserve that slot; hand the slot to `sent` once Telegram answered.
    pub async fn wait_turn(&self, chat_id: i64) -> Instant {
        let (grant, mut granted) = oneshot::channel();
        let (ticket, mut wake) = {
            let mut state = self.lock();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiting.insert(ticket, Ticket { chat_id, grant });
            let now = Instant::now();
            state.dispatch(now);
            (ticket, state.limits.earliest(chat_id, now))
        };
        let _leave = Leave { pacer: self, ticket };
        loop {
            if let Ok(slot) = granted.try_recv() {
                return slot;
            }
            tokio::select! {
                slot = &mut granted => {
                    // The sender lives in `waiting` until granted, so it only
                    // closes after sending; were it ever dropped, go rather than spin.
                    return slot.unwrap_or_else(|_| Instant::now());
                }
                () = tokio::time::sleep_until(wake) => {
                    let mut state = self.lock();
                    let now = Instant::now();
                    state.dispatch(now);
                    // Limits only move later, so this is never after the ticket's real moment.
                    wake = state.limits.earliest(chat_id, now).max(now + Duration::from_millis(1));
                }
            }
        }
    }

    /// Telegram answered the message reserved at `slot`: from now on it
    /// counts as sent now (it arrived at some moment up to now).
    pub fn sent(&self, chat_id: i64, slot: Instant) {
        let mut state = self.lock();
        let now = Instant::now();
        let limits = &mut state.limits;
        if let Some(next) = limits.next_for_chat.get_mut(&chat_id) {
            *next = (*next).max(now + PER_CHAT_GAP);
        }
        move_to_now(&mut limits.global_sends, slot, now);
        if let Some(sends) = limits.group_sends.get_mut(&chat_id) {
            move_to_now(sends, slot, now);
        }
    }

    /// Telegram answered 429 for this chat: hold it for `retry_after`.
    pub fn hold(&self, chat_id: i64, retry_after: Duration) {
        let mut state = self.lock();
        let until = Instant::now() + retry_after;
        let next = state.limits.next_for_chat.entry(chat_id).or_insert(until);
        *next = (*next).max(until);
    }
}

impl State {
    /// Grant, oldest first, every waiting ticket the limits allow at `now`.
    /// A ticket waits behind an earlier one of its chat.
    fn dispatch(&mut self, now: Instant) {
        let mut held_chats = HashSet::new();
        let mut granted = Vec::new();
        for (&number, ticket) in &self.waiting {
            if held_chats.contains(&ticket.chat_id) {
                continue;
            }
            if ticket.grant.is_closed() {
                granted.push(number);
                continue;
            }
            if self.limits.earliest(ticket.chat_id, now) > now {
                if self.limits.global_full(now) {
                    break; // nobody else may go either
                }
                held_chats.insert(ticket.chat_id);
                continue;
            }
            self.limits.reserve(ticket.chat_id, now);
            granted.push(number);
        }
        for number in granted {
            if let Some(ticket) = self.waiting.remove(&number) {
                let _ = ticket.grant.send(now);
            }
        }
    }
}

impl Limits {
    fn reserve(&mut self, chat_id: i64, now: Instant) {
        if self.next_for_chat.len() >= FORGET_AFTER_CHATS {
            // Chats whose gap has passed need no entry; keeps the map from growing with every chat.
            self.next_for_chat.retain(|_, next| *next > now);
            self.group_sends.retain(|_, sends| sends.back().is_some_and(|&at| at + GROUP_WINDOW > now));
        }
        self.next_for_chat.insert(chat_id, now + PER_CHAT_GAP);
        self.global_sends.push_back(now);
        if chat_id < 0 {
            self.group_sends.entry(chat_id).or_default().push_back(now);
        }
    }

    fn global_full(&self, now: Instant) -> bool {
        self.global_sends.len() >= GLOBAL_MAX_IN_WINDOW
            && self.global_sends.front().is_some_and(|&oldest| oldest + GLOBAL_WINDOW > now)
    }

    /// The earliest moment a message to `chat_id` is allowed (forgetting sends no window counts any more).
    fn earliest(&mut self, chat_id: i64, now: Instant) -> Instant {
        let mut ready = self.next_for_chat.get(&chat_id).copied().unwrap_or(now);
        while self.global_sends.front().is_some_and(|&sent| sent + GLOBAL_WINDOW <= now) {
            self.global_sends.pop_front();
        }
        if let Some(&oldest) = self.global_sends.front().filter(|_| self.global_sends.len() >= GLOBAL_MAX_IN_WINDOW) {
            ready = ready.max(oldest + GLOBAL_WINDOW);
        }
        if let Some(sends) = self.group_sends.get_mut(&chat_id) {
            while sends.front().is_some_and(|&sent| sent + GROUP_WINDOW <= now) {
                sends.pop_front();
            }
            if let Some(&oldest) = sends.front().filter(|_| sends.len() >= GROUP_MAX_IN_WINDOW) {
                ready = ready.max(oldest + GROUP_WINDOW);
            }
        }
        ready
    }
}

/// Re-time the send reserved at `slot`. The queue stays ordered: entries
/// after it that are earlier than `now` move up (only the order matters).
fn move_to_now(sends: &mut VecDeque<Instant>, slot: Instant, now: Instant) {
    if let Some(index) = sends.iter().rposition(|&at| at == slot) {
        sends.remove(index);
        let position = sends.partition_point(|&at| at <= now);
        sends.insert(position, now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_message_per_second_per_chat_and_other_chats_are_not_held() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.wait_turn(5).await;
        pacer.wait_turn(6).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.wait_turn(5).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_at_most_twenty_messages_a_minute() {
        let pacer = Pacer::default();
        let start = Instant::now();
        for _ in 0..21 {
            pacer.wait_turn(-100).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_thirty_messages_a_second_overall() {
        let pacer = Pacer::default();
        let start = Instant::now();
        for chat in 0..31 {
            pacer.wait_turn(chat).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn limits_count_from_telegrams_answer_not_from_the_reservation() {
        let pacer = Pacer::default();
        let start = Instant::now();
        let slot = pacer.wait_turn(5).await;
        tokio::time::advance(Duration::from_millis(300)).await; // the send took 300 ms
        pacer.sent(5, slot);
        pacer.wait_turn(5).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1300), "a second after the answer");

        let pacer = Pacer::default();
        let start = Instant::now();
        let mut slots = Vec::new();
        for chat in 100..130 {
            slots.push((chat, pacer.wait_turn(chat).await));
        }
        tokio::time::advance(Duration::from_millis(200)).await; // answered 200 ms later
        for (chat, slot) in slots {
            pacer.sent(chat, slot);
        }
        pacer.wait_turn(130).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1200), "a second after the answers, not the reservations");
    }

    #[tokio::test(start_paused = true)]
    async fn chats_no_limit_holds_are_forgotten() {
        let pacer = Pacer::default();
        for chat in 0..FORGET_AFTER_CHATS as i64 {
            pacer.wait_turn(chat).await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        pacer.wait_turn(-5).await;
        let state = pacer.lock();
        assert_eq!(state.limits.next_for_chat.len(), 1, "only the chat just served is remembered");
    }

    /// Run `wait_turn` for each (chat, arrival) on its own task; the order of the grants.
    async fn grant_order(pacer: &std::sync::Arc<Pacer>, arrivals: &[(i64, Duration)]) -> Vec<i64> {
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for &(chat, at) in arrivals {
            tokio::time::sleep_until(start + at).await;
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                pacer.wait_turn(chat).await;
                order.lock().unwrap().push(chat);
            }));
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_senders_are_served_in_arrival_order_across_chats() {
        let pacer = std::sync::Arc::new(Pacer::default());
        for chat in 0..30 {
            pacer.wait_turn(chat).await; // the second is full
        }
        let arrivals: Vec<(i64, Duration)> = (100..160).map(|chat| (chat, Duration::from_millis(1))).collect();
        let start = Instant::now();
        let order = grant_order(&pacer, &arrivals).await;
        assert_eq!(order, (100..160).collect::<Vec<_>>(), "first come, first served");
        assert_eq!(start.elapsed(), Duration::from_secs(2), "30 a second, no slot left unused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_never_takes_the_slot_a_sleeper_waits_for() {
        let pacer = std::sync::Arc::new(Pacer::default());
        let start = Instant::now();
        pacer.wait_turn(0).await;
        tokio::time::advance(Duration::from_millis(10)).await;
        for chat in 1..30 {
            pacer.wait_turn(chat).await; // full until the first send is a second old
        }
        // The newcomer's clock is set before the sleeper's: at the moment one slot frees, it runs first.
        let slot_frees = tokio::time::sleep_until(start + Duration::from_secs(1));
        tokio::pin!(slot_frees);
        assert!(futures::poll!(&mut slot_frees).is_pending());
        let sleeper = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                pacer.wait_turn(100).await;
                start.elapsed()
            })
        };
        tokio::task::yield_now().await;
        slot_frees.await;
        pacer.wait_turn(200).await;
        let newcomer = start.elapsed();
        let sleeper = sleeper.await.unwrap();
        assert_eq!((sleeper, newcomer), (Duration::from_secs(1), Duration::from_millis(1010)), "the sleeper first");
        assert!(pacer.lock().waiting.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn one_chats_senders_keep_their_order_and_other_chats_pass_a_held_one() {
        let pacer = std::sync::Arc::new(Pacer::default());
        pacer.wait_turn(5).await; // chat 5 is held for a second
        let ms = Duration::from_millis;
        let order = grant_order(&pacer, &[(5, ms(1)), (5, ms(1)), (6, ms(1)), (5, ms(1)), (7, ms(1))]).await;
        assert_eq!(order, [6, 7, 5, 5, 5], "6 and 7 are not held behind chat 5");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_that_stops_waiting_lets_the_next_of_its_chat_go() {
        let pacer = std::sync::Arc::new(Pacer::default());
        pacer.wait_turn(5).await;
        let start = Instant::now();
        let gave_up = tokio::time::timeout(Duration::from_millis(100), pacer.wait_turn(5)).await;
        assert!(gave_up.is_err());
        pacer.wait_turn(5).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(pacer.lock().waiting.is_empty(), "no ticket left behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_chat_for_retry_after() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.hold(7, Duration::from_secs(5));
        pacer.wait_turn(7).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
