//! Inbound rate limit per user: a token bucket (`burst` tokens, refilled at
//! `per_minute`). The first refused message of a run of refusals gets one
//! polite reply; the rest of that run get none.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What to do with a user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// Refused; say so politely (first refusal of this run).
    RefuseWithNotice,
    /// Refused; already told.
    RefuseSilently,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    notified: bool,
}

#[derive(Debug)]
pub struct InboundLimiter {
    burst: f64,
    per_second: f64,
    buckets: HashMap<i64, Bucket>,
}

impl InboundLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: HashMap::new(),
        }
    }

    pub fn admit(&mut self, user_id: i64, now: Instant) -> Admission {
        let burst = self.burst;
        let bucket = self.buckets.entry(user_id).or_insert(Bucket { tokens: burst, updated: now, notified: false });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.notified = false;
            Admission::Accept
        } else if bucket.notified {
            Admission::RefuseSilently
        } else {
            bucket.notified = true;
            Admission::RefuseWithNotice
        }
    }

    /// How long until `user_id` may send again (for the refusal text).
    pub fn wait_for(&self, user_id: i64) -> Duration {
        let tokens = self.buckets.get(&user_id).map_or(self.burst, |bucket| bucket.tokens);
        Duration::from_secs_f64(((1.0 - tokens).max(0.0) / self.per_second).ceil())
    }

    /// Forget users whose bucket is full again (bounded memory).
    pub fn retain_recent(&mut self, now: Instant) {
        let (burst, per_second) = (self.burst, self.per_second);
        self.buckets.retain(|_, bucket| {
            bucket.tokens + now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_notice_then_silence_then_refill() {
        let mut limiter = InboundLimiter::new(60, 3);
        let start = Instant::now();
        let decisions: Vec<Admission> = (0..6).map(|_| limiter.admit(1, start)).collect();
        use Admission::*;
        assert_eq!(decisions, [Accept, Accept, Accept, RefuseWithNotice, RefuseSilently, RefuseSilently]);
        assert_eq!(limiter.admit(2, start), Accept, "other users are not affected");
        assert_eq!(limiter.wait_for(1), Duration::from_secs(1));
        assert_eq!(limiter.admit(1, start + Duration::from_secs(1)), Accept);
        assert_eq!(limiter.admit(1, start + Duration::from_secs(1)), RefuseWithNotice, "a new run gets a new notice");
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut limiter = InboundLimiter::new(60, 2);
        let start = Instant::now();
        limiter.admit(1, start);
        limiter.retain_recent(start + Duration::from_secs(5));
        assert!(limiter.buckets.is_empty());
    }
}
