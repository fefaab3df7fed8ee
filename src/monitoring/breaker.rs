//! Per-service circuit breakers for external calls (web search, Notion,
//! pages, images): closed → open after `failure_threshold` consecutive
//! failures → after `cool_down` one probe call is let through (half-open) →
//! closed on its success, open again on its failure.
//!
//! Invariants: while half-open exactly one probe is in flight; time comes
//! from an injected [`Clock`] so tests move it by hand; every state change
//! updates the `valor_breaker_state{service}` gauge (0 closed, 1 half-open,
//! 2 open).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where breakers read the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self { now: Arc::new(Mutex::new(Instant::now())) }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// One service's breaker as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerSnapshot {
    pub service: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// The newest failure's reason, when the caller gave one (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cool_down: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    last_error: Option<String>,
}

impl Entry {
    fn closed() -> Self {
        Self { state: BreakerState::Closed, consecutive_failures: 0, opened_at: None, last_error: None }
    }
}

/// All breakers of the process, by service name. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CircuitBreakers {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl std::fmt::Debug for CircuitBreakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakers").field("config", &self.config).finish_non_exhaustive()
    }
}

impl CircuitBreakers {
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self { config, clock, entries: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make a service visible (closed) before its first call.
    pub fn register(&self, service: &str) {
        self.lock().entry(service.to_owned()).or_insert_with(Entry::closed);
        set_gauge(service, BreakerState::Closed);
    }

    /// Whether a call may go out now. An open breaker whose cool-down has
    /// passed lets this one call through as the half-open probe.
    pub fn try_acquire(&self, service: &str) -> bool {
        let now = self.clock.now();
        let mut entries = self.lock();
        let entry = entries.entry(service.to_owned()).or_insert_with(Entry::closed);
        match entry.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open => {
                let cooled = entry.opened_at.is_none_or(|at| now.duration_since(at) >= self.config.cool_down);
                if cooled {
                    entry.state = BreakerState::HalfOpen;
                    set_gauge(service, BreakerState::HalfOpen);
                }
                cooled
            }
        }
    }

    pub fn record_success(&self, service: &str) {
        let mut entries = self.lock();
        let entry = entries.entry(service.to_owned()).or_insert_with(Entry::closed);
        if entry.state != BreakerState::Closed {
            tracing::info!(service, "circuit breaker closed again");
        }
        *entry = Entry::closed();
        set_gauge(service, BreakerState::Closed);
    }

    pub fn record_failure(&self, service: &str) {
        self.failed(service, None);
    }

    /// A failure with its reason, shown in the snapshot until the next success.
    pub fn record_failure_because(&self, service: &str, reason: &str) {
        self.failed(service, Some(reason));
    }

    /// The half-open probe ended without an outcome (its caller gave up):
    /// open again, cooled down, so the next call is the probe.
    pub fn abandon_probe(&self, service: &str) {
        if let Some(entry) = self.lock().get_mut(service).filter(|entry| entry.state == BreakerState::HalfOpen) {
            entry.state = BreakerState::Open;
            entry.opened_at = None;
            set_gauge(service, BreakerState::Open);
        }
    }

    fn failed(&self, service: &str, reason: Option<&str>) {
        let now = self.clock.now();
        let mut entries = self.lock();
        let entry = entries.entry(service.to_owned()).or_insert_with(Entry::closed);
        entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        if let Some(reason) = reason {
            entry.last_error = Some(reason.to_owned());
        }
        let open = entry.state == BreakerState::HalfOpen || entry.consecutive_failures >= self.config.failure_threshold;
        if open {
            if entry.state != BreakerState::Open {
                let reason = entry.last_error.as_deref().unwrap_or("");
                tracing::warn!(service, failures = entry.consecutive_failures, reason, "circuit breaker opened");
            }
            entry.state = BreakerState::Open;
            entry.opened_at = Some(now);
            set_gauge(service, BreakerState::Open);
        }
    }

    pub fn state(&self, service: &str) -> BreakerState {
        self.lock().get(service).map_or(BreakerState::Closed, |entry| entry.state)
    }

    /// Every known breaker, sorted by service name.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        self.lock()
            .iter()
            .map(|(service, entry)| BreakerSnapshot {
                service: service.clone(),
                state: entry.state,
                consecutive_failures: entry.consecutive_failures,
                last_error: entry.last_error.clone(),
            })
            .collect()
    }
}

fn set_gauge(service: &str, state: BreakerState) {
    metrics::gauge!("valor_breaker_state", "service" => service.to_owned()).set(state.gauge_value());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn breakers() -> (CircuitBreakers, ManualClock) {
        let clock = ManualClock::default();
        let config = BreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(30) };
        (CircuitBreakers::new(config, Arc::new(clock.clone())), clock)
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_of_consecutive_failures() {
        let (breakers, _) = breakers();
        for _ in 0..2 {
            assert!(breakers.try_acquire("web_search"));
            breakers.record_failure("web_search");
        }
        assert_eq!(breakers.state("web_search"), BreakerState::Closed);
        breakers.record_failure("web_search");
        assert_eq!(breakers.state("web_search"), BreakerState::Open);
        assert!(!breakers.try_acquire("web_search"));
        assert!(breakers.try_acquire("notion"), "other services are independent");
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (breakers, _) = breakers();
        breakers.record_failure("s");
        breakers.record_failure("s");
        breakers.record_success("s");
        breakers.record_failure("s");
        assert_eq!(breakers.state("s"), BreakerState::Closed);
    }

    #[test]
    fn after_the_cool_down_exactly_one_probe_goes_through_and_its_success_closes() {
        let (breakers, clock) = breakers();
        for _ in 0..3 {
            breakers.record_failure("s");
        }
        clock.advance(Duration::from_secs(29));
        assert!(!breakers.try_acquire("s"));
        clock.advance(Duration::from_secs(1));
        assert!(breakers.try_acquire("s"), "the probe");
        assert_eq!(breakers.state("s"), BreakerState::HalfOpen);
        assert!(!breakers.try_acquire("s"), "only one probe at a time");
        breakers.record_success("s");
        assert_eq!(breakers.state("s"), BreakerState::Closed);
        assert!(breakers.try_acquire("s"));
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_for_another_cool_down() {
        let (breakers, clock) = breakers();
        for _ in 0..3 {
            breakers.record_failure("s");
        }
        clock.advance(Duration::from_secs(30));
        assert!(breakers.try_acquire("s"));
        breakers.record_failure("s");
        assert_eq!(breakers.state("s"), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        assert!(!breakers.try_acquire("s"));
        clock.advance(Duration::from_secs(20));
        assert!(breakers.try_acquire("s"));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe_and_the_reason_stays_until_a_success() {
        let (breakers, clock) = breakers();
        for _ in 0..3 {
            breakers.record_failure_because("model", "could not reach the model provider");
        }
        assert_eq!(breakers.snapshot()[0].last_error.as_deref(), Some("could not reach the model provider"));
        clock.advance(Duration::from_secs(30));
        assert!(breakers.try_acquire("model"), "the probe");
        assert!(!breakers.try_acquire("model"), "one probe at a time");
        breakers.abandon_probe("model");
        assert_eq!(breakers.state("model"), BreakerState::Open);
        assert!(breakers.try_acquire("model"), "the next call probes without another cool-down");
        breakers.record_success("model");
        assert_eq!(breakers.snapshot()[0].last_error, None);
        assert_eq!(breakers.state("model"), BreakerState::Closed);
    }

    #[test]
    fn the_snapshot_lists_registered_services_by_name() {
        let (breakers, _) = breakers();
        breakers.register("web_search");
        breakers.register("notion");
        breakers.record_failure("notion");
        let snapshot = breakers.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot[0].service, "notion");
        assert_eq!(snapshot[0].consecutive_failures, 1);
        assert_eq!(snapshot[1].state, BreakerState::Closed);
    }
}
