//! The resource monitor: valor's own memory and CPU (read from `/proc/self`),
//! turns in progress, queue depth and child processes, sampled by a task the
//! app spawns and kept for the last hour; and the high-water mark above which
//! new non-admin work is refused ("load shedding").
//!
//! Invariants: the turn counter is exact (a [`TurnGuard`] decrements on every
//! way out of a turn, panics included); sampling never fails (a value it
//! cannot read is `None`/0, never an error); shedding is decided from the
//! live turn count and the newest memory sample, so it recovers by itself as
//! soon as the pressure drops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::ResourcesSettings;

/// What a non-admin sees while valor sheds load.
pub const BUSY_REPLY: &str = "I'm busy right now — please try again in a minute.";

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture valor targets (it is not the kernel's `HZ`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// One sample, as `/api/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub rss_bytes: u64,
    /// CPU used since the previous sample, in percent of one core.
    pub cpu_percent: f64,
    pub active_turns: usize,
    pub queued_jobs: i64,
    pub running_jobs: i64,
    /// Child processes of valor (`None` where the kernel does not say).
    pub child_processes: Option<usize>,
}

/// Why new non-admin work is refused right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pressure {
    TooManyTurns,
    MemoryHigh,
}

/// Cheap to clone; shared by the agent (turn counter), the channels
/// (shedding), the sampler task and `/api/status`.
#[derive(Debug, Clone)]
pub struct ResourceMonitor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    active_turns: AtomicUsize,
    /// Turns ever started (the housekeeping task trims memory after turns stop).
    turns_started: AtomicU64,
    /// Newest sampled RSS, for the shedding decision without a lock.
    last_rss_bytes: AtomicU64,
    shed_total: AtomicU64,
    samples: Mutex<VecDeque<Sample>>,
    capacity: usize,
    max_rss_bytes: u64,
    max_active_turns: usize,
    telegram_configured: bool,
}

impl ResourceMonitor {
    /// A monitor keeping one hour of samples at the configured interval.
    pub fn new(settings: &ResourcesSettings, telegram_configured: bool) -> Self {
        let capacity = usize::try_from(3600 / settings.sample_interval_secs.max(1)).unwrap_or(360).max(1);
        Self {
            inner: Arc::new(Inner {
                active_turns: AtomicUsize::new(0),
                turns_started: AtomicU64::new(0),
                last_rss_bytes: AtomicU64::new(0),
                shed_total: AtomicU64::new(0),
                samples: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                max_rss_bytes: settings.max_rss_mb.saturating_mul(1024 * 1024),
                max_active_turns: settings.max_active_turns,
                telegram_configured,
            }),
        }
    }

    /// Count a turn as running until the guard is dropped.
    pub fn enter_turn(&self) -> TurnGuard {
        self.inner.active_turns.fetch_add(1, Ordering::SeqCst);
        self.inner.turns_started.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("valor_active_turns").increment(1.0);
        TurnGuard { inner: self.inner.clone() }
    }

    pub fn active_turns(&self) -> usize {
        self.inner.active_turns.load(Ordering::SeqCst)
    }

    /// How many turns were ever started.
    pub fn turns_started(&self) -> u64 {
        self.inner.turns_started.load(Ordering::Relaxed)
    }

    pub fn max_active_turns(&self) -> usize {
        self.inner.max_active_turns
    }

    pub fn max_rss_bytes(&self) -> u64 {
        self.inner.max_rss_bytes
    }

    /// Whether a Telegram bot token is set (the health score expects the channel on).
    pub fn telegram_configured(&self) -> bool {
        self.inner.telegram_configured
    }

    /// Above the high-water mark? (`None`: accept new work.)
    pub fn pressure(&self) -> Option<Pressure> {
        if self.active_turns() >= self.inner.max_active_turns {
            return Some(Pressure::TooManyTurns);
        }
        if self.inner.last_rss_bytes.load(Ordering::Relaxed) > self.inner.max_rss_bytes {
            return Some(Pressure::MemoryHigh);
        }
        None
    }

    /// Decide whether to refuse new work from a caller: admins are never
    /// refused. Counts and logs every refusal.
    pub fn should_shed(&self, is_admin: bool) -> Option<Pressure> {
        if is_admin {
            return None;
        }
        let pressure = self.pressure()?;
        self.inner.shed_total.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("valor_load_shed_total").increment(1);
        tracing::warn!(?pressure, "shedding load: a non-admin's new work is refused");
        Some(pressure)
    }

    /// Requests refused since start.
    pub fn shed_total(&self) -> u64 {
        self.inner.shed_total.load(Ordering::Relaxed)
    }

    /// Keep a sample (the oldest beyond one hour is dropped) and export it as gauges.
    pub fn record(&self, sample: Sample) {
        self.inner.last_rss_bytes.store(sample.rss_bytes, Ordering::Relaxed);
        metrics::gauge!("valor_rss_bytes").set(sample.rss_bytes as f64);
        metrics::gauge!("valor_cpu_percent").set(sample.cpu_percent);
        metrics::gauge!("valor_queue_depth", "status" => "queued").set(sample.queued_jobs as f64);
        metrics::gauge!("valor_queue_depth", "status" => "running").set(sample.running_jobs as f64);
        if let Some(children) = sample.child_processes {
            metrics::gauge!("valor_child_processes").set(children as f64);
        }
        let mut samples = self.inner.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() == self.inner.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The kept samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.inner.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect()
    }

    pub fn latest(&self) -> Option<Sample> {
        self.inner.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).back().copied()
    }
}

/// Holds one turn in the active count; dropping it ends the turn.
#[derive(Debug)]
pub struct TurnGuard {
    inner: Arc<Inner>,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.inner.active_turns.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("valor_active_turns").decrement(1.0);
    }
}

/// Reads this process's memory, CPU time and children from `/proc/self`.
/// CPU percent is computed between consecutive [`ProcessProbe::read`] calls.
#[derive(Debug, Default)]
pub struct ProcessProbe {
    previous: Option<(std::time::Instant, u64)>,
}

/// One reading of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessReading {
    pub rss_bytes: u64,
    pub cpu_percent: f64,
    pub child_processes: Option<usize>,
}

impl ProcessProbe {
    pub fn read(&mut self) -> ProcessReading {
        let rss_bytes =
            std::fs::read_to_string("/proc/self/status").ok().and_then(|text| parse_vm_rss(&text)).unwrap_or(0);
        let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|text| parse_cpu_ticks(&text));
        let now = std::time::Instant::now();
        let cpu_percent = match (self.previous, ticks) {
            (Some((then, before)), Some(ticks)) => {
                cpu_percent(ticks.saturating_sub(before), now.duration_since(then).as_secs_f64())
            }
            _ => 0.0,
        };
        if let Some(ticks) = ticks {
            self.previous = Some((now, ticks));
        }
        ProcessReading { rss_bytes, cpu_percent, child_processes: count_children() }
    }
}

/// `VmRSS:   11432 kB` → bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime (fields 14 and 15) from `/proc/<pid>/stat`. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted
/// after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after the name: state is field 3, so utime (14) is index 11, stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_percent(ticks: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    (ticks as f64 / CLOCK_TICKS_PER_SECOND) / seconds * 100.0
}

/// Children of every thread of this process (`/proc/self/task/*/children`;
/// `None` if the kernel lacks that file).
fn count_children() -> Option<usize> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).ok()?;
        total += children.split_whitespace().count();
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(max_active_turns: usize, max_rss_mb: u64) -> ResourceMonitor {
        let settings = ResourcesSettings { max_active_turns, max_rss_mb, ..ResourcesSettings::default() };
        ResourceMonitor::new(&settings, false)
    }

    fn sample(rss_bytes: u64) -> Sample {
        Sample {
            at_ms: 0,
            rss_bytes,
            cpu_percent: 0.0,
            active_turns: 0,
            queued_jobs: 0,
            running_jobs: 0,
            child_processes: None,
        }
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tvalor\nVmPeak:\t  20000 kB\nVmRSS:\t   11432 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(11432 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "1234 (va lor) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn cpu_percent_is_per_core_time_over_wall_time() {
        assert!((cpu_percent(50, 1.0) - 50.0).abs() < 1e-9);
        assert!((cpu_percent(200, 1.0) - 200.0).abs() < 1e-9, "two busy cores");
        assert_eq!(cpu_percent(10, 0.0), 0.0);
    }

    #[test]
    fn the_turn_counter_follows_guards_and_sheds_only_non_admins() {
        let monitor = monitor(2, 512);
        let first = monitor.enter_turn();
        assert_eq!(monitor.should_shed(false), None);
        let second = monitor.enter_turn();
        assert_eq!(monitor.active_turns(), 2);
        assert_eq!(monitor.should_shed(false), Some(Pressure::TooManyTurns));
        assert_eq!(monitor.should_shed(true), None, "admins are never refused");
        drop(first);
        assert_eq!(monitor.should_shed(false), None, "recovers as soon as a turn ends");
        drop(second);
        assert_eq!(monitor.active_turns(), 0);
        assert_eq!(monitor.shed_total(), 1);
    }

    #[test]
    fn memory_above_the_mark_sheds_until_a_lower_sample_arrives() {
        let monitor = monitor(10, 100);
        monitor.record(sample(101 * 1024 * 1024));
        assert_eq!(monitor.pressure(), Some(Pressure::MemoryHigh));
        monitor.record(sample(99 * 1024 * 1024));
        assert_eq!(monitor.pressure(), None);
    }

    #[test]
    fn one_hour_of_samples_is_kept_oldest_first() {
        let settings = ResourcesSettings { sample_interval_secs: 600, ..ResourcesSettings::default() };
        let monitor = ResourceMonitor::new(&settings, false);
        for index in 0..8 {
            monitor.record(Sample { at_ms: index, ..sample(1) });
        }
        let kept: Vec<i64> = monitor.samples().iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, [2, 3, 4, 5, 6, 7], "3600 s / 600 s = 6 samples");
        assert_eq!(monitor.latest().map(|s| s.at_ms), Some(7));
    }

    #[test]
    fn the_probe_reads_this_process() {
        let mut probe = ProcessProbe::default();
        let reading = probe.read();
        assert!(reading.rss_bytes > 1024 * 1024, "a test process uses more than 1 MiB");
        assert!(probe.read().cpu_percent >= 0.0);
    }
}
