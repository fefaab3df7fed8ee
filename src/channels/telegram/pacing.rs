//! Outbound pacing under Telegram's limits: at most one message per second
//! per chat, 20 per minute per group, 30 per second overall, and nothing to
//! a chat before a 429's `retry_after` has passed. Every sendMessage and
//! editMessageText waits its turn here first.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const GROUP_WINDOW: Duration = Duration::from_secs(60);
const GROUP_MAX_IN_WINDOW: usize = 20;
const GLOBAL_WINDOW: Duration = Duration::from_secs(1);
const GLOBAL_MAX_IN_WINDOW: usize = 30;

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
    /// Wait until a message to `chat_id` is allowed, and reserve that slot.
    pub async fn wait_turn(&self, chat_id: i64) {
        loop {
            let wait_until = {
                let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let ready = earliest(&mut state, chat_id, now);
                if ready <= now {
                    state.next_for_chat.insert(chat_id, now + PER_CHAT_GAP);
                    state.global_sends.push_back(now);
                    if chat_id < 0 {
                        state.group_sends.entry(chat_id).or_default().push_back(now);
                    }
                    return;
                }
                ready
            };
            tokio::time::sleep_until(wait_until).await;
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
    async fn a_429_holds_the_chat_for_retry_after() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.hold(7, Duration::from_secs(5));
        pacer.wait_turn(7).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
