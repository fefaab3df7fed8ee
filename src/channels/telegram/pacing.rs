//! Outbound pacing under Telegram's limits: at most one message per second
//! per chat, 20 per minute per group, 30 per second overall, and nothing to
//! a chat before a 429's `retry_after` has passed. Every sendMessage and
//! editMessageText waits its turn here first (`wait_turn`) and reports its
//! answer (`sent`): Telegram counts a message when it arrives, somewhere
//! between the two, so the limits count from the answer — counting from
//! the reservation let network jitter squeeze 31 messages into Telegram's
//! second (measured by `examples/load`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const GROUP_WINDOW: Duration = Duration::from_secs(60);
const GROUP_MAX_IN_WINDOW: usize = 20;
const GLOBAL_WINDOW: Duration = Duration::from_secs(1);
const GLOBAL_MAX_IN_WINDOW: usize = 30;
/// Past this many remembered chats, the ones no limit holds any more are forgotten.
const FORGET_AFTER_CHATS: usize = 1024;

#[derive(Debug, Default)]
struct State {
    next_for_chat: HashMap<i64, Instant>,
    group_sends: HashMap<i64, VecDeque<Instant>>,
    global_sends: VecDeque<Instant>,
}

/// Shared by every sender of the channel.
#[derive(Debug, Default)]
pub struct Pacer {
    state: std::sync::Mutex<State>,
}

impl Pacer {
    /// Wait until a message to `chat_id` is allowed, and reserve that slot;
    /// hand the slot to `sent` once Telegram answered.
    pub async fn wait_turn(&self, chat_id: i64) -> Instant {
        loop {
            let wait_until = {
                let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let ready = earliest(&mut state, chat_id, now);
                if ready <= now {
                    if state.next_for_chat.len() >= FORGET_AFTER_CHATS {
                        // Chats whose gap has passed need no entry; keeps the map from growing with every chat.
                        state.next_for_chat.retain(|_, next| *next > now);
                        state.group_sends.retain(|_, sends| sends.back().is_some_and(|&at| at + GROUP_WINDOW > now));
                    }
                    state.next_for_chat.insert(chat_id, now + PER_CHAT_GAP);
                    state.global_sends.push_back(now);
                    if chat_id < 0 {
                        state.group_sends.entry(chat_id).or_default().push_back(now);
                    }
                    return now;
                }
                ready
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// Telegram answered the message reserved at `slot`: from now on it
    /// counts as sent now (it arrived at some moment up to now).
    pub fn sent(&self, chat_id: i64, slot: Instant) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(next) = state.next_for_chat.get_mut(&chat_id) {
            *next = (*next).max(now + PER_CHAT_GAP);
        }
        move_to_now(&mut state.global_sends, slot, now);
        if let Some(sends) = state.group_sends.get_mut(&chat_id) {
            move_to_now(sends, slot, now);
        }
    }

    /// Telegram answered 429 for this chat: hold it for `retry_after`.
    pub fn hold(&self, chat_id: i64, retry_after: Duration) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = Instant::now() + retry_after;
        let next = state.next_for_chat.entry(chat_id).or_insert(until);
        *next = (*next).max(until);
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

fn earliest(state: &mut State, chat_id: i64, now: Instant) -> Instant {
    let mut ready = state.next_for_chat.get(&chat_id).copied().unwrap_or(now);
    while state.global_sends.front().is_some_and(|&sent| sent + GLOBAL_WINDOW <= now) {
        state.global_sends.pop_front();
    }
    if let Some(&oldest) = state.global_sends.front().filter(|_| state.global_sends.len() >= GLOBAL_MAX_IN_WINDOW) {
        ready = ready.max(oldest + GLOBAL_WINDOW);
    }
    if let Some(sends) = state.group_sends.get_mut(&chat_id) {
        while sends.front().is_some_and(|&sent| sent + GROUP_WINDOW <= now) {
            sends.pop_front();
        }
        if let Some(&oldest) = sends.front().filter(|_| sends.len() >= GROUP_MAX_IN_WINDOW) {
            ready = ready.max(oldest + GROUP_WINDOW);
        }
    }
    ready
}

#[cfg(test)]
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
        let state = pacer.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(state.next_for_chat.len(), 1, "only the chat just served is remembered");
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
