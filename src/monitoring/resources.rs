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

/// Why new non-admin work is refused (or queued) right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pressure {
    TooManyTurns,
    MemoryHigh,
    /// `max_queued_turns` messages already wait for a turn slot.
    QueueFull,
}

/// A place among the turns allowed to run (`ResourceMonitor::admit`):
/// held until the turn counts itself (`enter_turn`), so two admissions
/// never take one free slot.
#[derive(Debug)]
pub struct TurnSlot {
    inner: Option<Arc<Inner>>,
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.reserved.fetch_sub(1, Ordering::SeqCst);
            inner.dispatch();
        }
    }
}

/// The answer of `ResourceMonitor::admit`.
#[derive(Debug)]
pub enum Admission {
    /// Start now.
    Now(TurnSlot),
    /// All slots are taken: `ahead` messages wait before this one; the slot
    /// arrives on `slot` when it is this one's turn.
    Queued { ahead: usize, slot: QueuedSlot },
}

/// A queued admission; resolves (first come, first served) to a slot.
#[derive(Debug)]
pub struct QueuedSlot {
    receiver: tokio::sync::oneshot::Receiver<()>,
    inner: Arc<Inner>,
}

impl QueuedSlot {
    pub async fn wait(self) -> TurnSlot {
        // The sender is only dropped after granting (or with the monitor).
        let granted = self.receiver.await.is_ok();
        TurnSlot { inner: granted.then_some(self.inner) }
    }
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
    /// Admitted turns not counted yet (see [`TurnSlot`]).
    reserved: AtomicUsize,
    /// Admissions waiting for a slot, oldest first.
    waiting: Mutex<VecDeque<tokio::sync::oneshot::Sender<()>>>,
    max_queued_turns: usize,
}

impl Inner {
    fn has_room(&self) -> bool {
        self.active_turns.load(Ordering::SeqCst) + self.reserved.load(Ordering::SeqCst) < self.max_active_turns
    }

    /// Hand free slots to the oldest waiting admissions.
    fn dispatch(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while self.has_room() {
            let Some(next) = waiting.pop_front() else { break };
            self.reserved.fetch_add(1, Ordering::SeqCst);
            if next.send(()).is_err() {
                // That message stopped waiting (shutdown).
                self.reserved.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
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
                reserved: AtomicUsize::new(0),
                waiting: Mutex::new(VecDeque::new()),
                max_queued_turns: settings.max_queued_turns,
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

    /// Admit a new turn of a chat message: at once while fewer than
    /// `max_active_turns` run (admins always), else queued first come,
    /// first served. Refused (counted and logged like `should_shed`) for a
    /// non-admin while memory is above the mark or the queue is full.
    pub fn admit(&self, is_admin: bool) -> Result<Admission, Pressure> {
        let inner = &self.inner;
        let refuse = |pressure: Pressure| {
            inner.shed_total.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("valor_load_shed_total").increment(1);
            tracing::warn!(?pressure, "shedding load: a non-admin's new work is refused");
            Err(pressure)
        };
        let slot = || TurnSlot { inner: Some(inner.clone()) };
        if is_admin {
            inner.reserved.fetch_add(1, Ordering::SeqCst);
            return Ok(Admission::Now(slot()));
        }
        if inner.last_rss_bytes.load(Ordering::Relaxed) > inner.max_rss_bytes {
            return refuse(Pressure::MemoryHigh);
        }
        let mut waiting = inner.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.retain(|sender| !sender.is_closed());
        if waiting.is_empty() && inner.has_room() {
            inner.reserved.fetch_add(1, Ordering::SeqCst);
            return Ok(Admission::Now(slot()));
        }
        if waiting.len() >= inner.max_queued_turns {
            drop(waiting);
            return refuse(Pressure::QueueFull);
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let ahead = waiting.len();
        waiting.push_back(sender);
        Ok(Admission::Queued { ahead, slot: QueuedSlot { receiver, inner: inner.clone() } })
    }

    /// Messages waiting for a turn slot now.
    pub fn queued_turns(&self) -> usize {
        self.inner.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
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
        self.inner.dispatch();
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
#[allow(clippy::unwrap_used)]
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

    #[tokio::test]
    async fn beyond_the_slots_turns_queue_first_come_first_served_and_a_full_queue_refuses() {
        let settings = ResourcesSettings { max_active_turns: 1, max_queued_turns: 2, ..ResourcesSettings::default() };
        let monitor = ResourceMonitor::new(&settings, false);
        let Ok(Admission::Now(first)) = monitor.admit(false) else { panic!("a free slot") };
        let running = monitor.enter_turn();
        drop(first); // the turn counts itself now
        let Ok(Admission::Queued { ahead: 0, slot: second }) = monitor.admit(false) else { panic!("queued") };
        let Ok(Admission::Queued { ahead: 1, slot: third }) = monitor.admit(false) else { panic!("queued") };
        assert_eq!(monitor.admit(false).unwrap_err(), Pressure::QueueFull);
        assert!(matches!(monitor.admit(true), Ok(Admission::Now(_))), "admins never wait");
        assert_eq!(monitor.queued_turns(), 2);
        let third = tokio::spawn(third.wait());
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(running);
        let second = tokio::time::timeout(std::time::Duration::from_secs(1), second.wait()).await.unwrap();
        assert!(!third.is_finished(), "one slot, one turn: the third still waits");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(1), third).await.unwrap().unwrap();
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
