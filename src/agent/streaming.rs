//! The streaming optimizer: the one place that decides how often a channel
//! pushes a growing answer to the user (Telegram edits, job progress).
//!
//! Policy (PRODUCT.md §9): short text is sent once, at the end; ordinary text
//! and progress every `interval` (2–3 s by default); code at block
//! boundaries (text inside an open block waits for it to close, at most
//! `max_interval`); errors at once — but
//! never sooner than `min_interval` after the previous push, and never before
//! a rate limit (429 `retry_after`) has passed. Each 429 doubles the interval
//! (up to `max_interval`); slow pushes stretch it to a few times the observed
//! latency. Pure and clock-free: callers pass `Instant`s, tests pass their own.

use std::time::{Duration, Instant};

/// What the pending update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// Answer text as it streams.
    Text,
    /// A progress line ("running tests…").
    Progress,
    /// Text that ends inside an unfinished code block: pushed at the block's
    /// end, or after `max_interval` at the latest.
    OpenCode,
    /// Something failed; the user should know now.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPolicy {
    /// Below this many characters, text is held until the end.
    pub short_text_chars: usize,
    /// Base interval between pushes of text and progress.
    pub interval: Duration,
    /// Never push faster than this (the platform's per-chat limit).
    pub min_interval: Duration,
    /// Backoff after rate limits stops growing here.
    pub max_interval: Duration,
}

impl Default for StreamPolicy {
    fn default() -> Self {
        Self {
            short_text_chars: 300,
            interval: Duration::from_millis(2500),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(20),
        }
    }
}

/// Per-stream state of the policy.
#[derive(Debug, Clone)]
pub struct StreamingOptimizer {
    policy: StreamPolicy,
    interval: Duration,
    last_push: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl StreamingOptimizer {
    pub fn new(policy: StreamPolicy) -> Self {
        let interval = policy.interval.max(policy.min_interval);
        Self { policy, interval, last_push: None, blocked_until: None }
    }

    /// The interval in force now (grows after 429s and slow pushes).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the pending content should be pushed; `None` = hold it until the end.
    pub fn next_push(&self, now: Instant, text_chars: usize, kind: ContentKind) -> Option<Instant> {
        let earliest = |gap: Duration| {
            let after_last = self.last_push.map_or(now, |last| (last + gap).max(now));
            self.blocked_until.map_or(after_last, |blocked| after_last.max(blocked))
        };
        match kind {
            ContentKind::Error => Some(earliest(self.policy.min_interval)),
            ContentKind::Text if text_chars < self.policy.short_text_chars => None,
            ContentKind::Text | ContentKind::Progress => Some(earliest(self.interval)),
            ContentKind::OpenCode => Some(earliest(self.policy.max_interval.max(self.interval))),
        }
    }

    /// A push happened at `now` and took `latency`.
    pub fn pushed(&mut self, now: Instant, latency: Duration) {
        self.last_push = Some(now);
        // A configured interval above `max_interval` is kept as it is (clamp would panic).
        let stretched = (latency * 4).min(self.policy.max_interval).max(self.policy.interval);
        self.interval = self.interval.max(stretched).max(self.policy.min_interval);
    }

    /// The platform said "slow down": nothing before `retry_after`, and a longer interval.
    pub fn rate_limited(&mut self, now: Instant, retry_after: Duration) {
        self.blocked_until = Some(now + retry_after);
        self.interval = (self.interval * 2).max(retry_after).min(self.policy.max_interval);
    }
}

/// Does `text` end inside a Markdown code block (an odd number of fence lines)?
pub fn inside_open_code_block(text: &str) -> bool {
    text.lines().filter(|line| line.trim_start().starts_with("```")).count() % 2 == 1
}

/// The kind of a growing answer's text: open code or plain text.
pub fn text_kind(text: &str) -> ContentKind {
    if inside_open_code_block(text) { ContentKind::OpenCode } else { ContentKind::Text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StreamPolicy {
        StreamPolicy {
            short_text_chars: 100,
            interval: Duration::from_secs(2),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn an_interval_above_the_maximum_is_kept_and_does_not_panic() {
        let policy = StreamPolicy { interval: Duration::from_secs(60), ..StreamPolicy::default() };
        let mut optimizer = StreamingOptimizer::new(policy);
        optimizer.pushed(Instant::now(), Duration::from_millis(10));
        assert_eq!(optimizer.interval(), Duration::from_secs(60));
    }

    #[test]
    fn short_text_is_held_until_the_end() {
        let now = Instant::now();
        assert_eq!(StreamingOptimizer::new(policy()).next_push(now, 99, ContentKind::Text), None);
    }

    #[test]
    fn ordinary_text_goes_out_at_once_then_every_interval() {
        let now = Instant::now();
        let mut optimizer = StreamingOptimizer::new(policy());
        assert_eq!(optimizer.next_push(now, 500, ContentKind::Text), Some(now));
        optimizer.pushed(now, Duration::from_millis(50));
        assert_eq!(optimizer.next_push(now, 600, ContentKind::Text), Some(now + Duration::from_secs(2)));
        assert_eq!(optimizer.next_push(now, 10, ContentKind::Progress), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn errors_go_out_at_once_but_not_faster_than_the_platform_allows() {
        let now = Instant::now();
        let mut optimizer = StreamingOptimizer::new(policy());
        assert_eq!(optimizer.next_push(now, 5, ContentKind::Error), Some(now));
        optimizer.pushed(now, Duration::ZERO);
        assert_eq!(optimizer.next_push(now, 5, ContentKind::Error), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn a_rate_limit_blocks_until_retry_after_and_doubles_the_interval() {
        let now = Instant::now();
        let mut optimizer = StreamingOptimizer::new(policy());
        optimizer.rate_limited(now, Duration::from_secs(3));
        assert_eq!(optimizer.next_push(now, 500, ContentKind::Error), Some(now + Duration::from_secs(3)));
        assert_eq!(optimizer.interval(), Duration::from_secs(4));
        optimizer.rate_limited(now, Duration::from_secs(1));
        optimizer.rate_limited(now, Duration::from_secs(1));
        assert_eq!(optimizer.interval(), Duration::from_secs(10), "capped at max_interval");
    }

    #[test]
    fn text_inside_an_open_code_block_waits_for_its_end_within_max_interval() {
        let now = Instant::now();
        let mut optimizer = StreamingOptimizer::new(policy());
        optimizer.pushed(now, Duration::ZERO);
        assert_eq!(optimizer.next_push(now, 500, ContentKind::OpenCode), Some(now + Duration::from_secs(10)));
        assert_eq!(optimizer.next_push(now, 500, ContentKind::Text), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn open_code_is_detected_by_unbalanced_fences() {
        assert!(!inside_open_code_block("plain"));
        assert!(inside_open_code_block("look:\n```rust\nfn main"));
        assert!(!inside_open_code_block("```rust\nfn main() {}\n```\nafter"));
        assert!(inside_open_code_block("```\na\n```\n\n```py\nb"));
    }

    #[test]
    fn slow_pushes_stretch_the_interval() {
        let now = Instant::now();
        let mut optimizer = StreamingOptimizer::new(policy());
        optimizer.pushed(now, Duration::from_secs(1));
        assert_eq!(optimizer.interval(), Duration::from_secs(4));
    }
}
