//! The resource sampler and the periodic cleanup, one long-lived task
//! spawned by [`super::App::start`]: every `resources.sample_interval_secs`
//! it records memory, CPU, turns, queue depth and children into the
//! [`ResourceMonitor`] (and refreshes the health-score gauge, and folds the
//! metrics recorder's raw histogram values into their summaries, and once
//! turns have stopped, hands the allocator's free memory back to the OS);
//! every `resources.cleanup_interval_secs` it checks the database (`PRAGMA
//! quick_check`, the file still the one opened), deletes old temp files, purges
//! finished jobs past retention and hands free memory back again; every
//! breaker cool-down it probes an open model breaker (one token).
//!
//! Invariants: nothing here fails the app — a failed step is logged and
//! retried next period; it stops when the shared shutdown token is cancelled.
//! (The Telegram limiter prunes its own full buckets in the channel's loop.)

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::config::Settings;
use crate::monitoring::LiveComponents;
use crate::monitoring::resources::{ProcessProbe, Sample};
use crate::storage::wall_clock_ms;

/// What the housekeeping task needs, taken from the built app.
pub struct Housekeeping {
    pub agent: Agent,
    pub components: LiveComponents,
    pub sample_every: Duration,
    pub cleanup_every: Duration,
    pub temp_dir: PathBuf,
    pub temp_max_age: Duration,
    pub job_retention: Duration,
    /// How often an open model breaker is probed (the breakers' cool-down).
    pub probe_every: Duration,
}

impl Housekeeping {
    pub fn from_settings(settings: &Settings, agent: Agent, components: LiveComponents) -> Self {
        let resources = &settings.resources;
        Self {
            agent,
            components,
            sample_every: Duration::from_secs(resources.sample_interval_secs),
            cleanup_every: Duration::from_secs(resources.cleanup_interval_secs),
            temp_dir: settings.data_dir.join("tmp"),
            temp_max_age: Duration::from_secs(resources.temp_max_age_hours.saturating_mul(3600)),
            job_retention: Duration::from_secs(u64::from(settings.jobs.retention_days) * 86_400),
            probe_every: Duration::from_secs(settings.tools.breaker_cooldown_secs.max(1)),
        }
    }

    /// Sample now and then periodically; clean up periodically; stop on `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut probe = ProcessProbe::default();
        // `turns_started` at the last release: a release follows each stretch of turns.
        let mut released_at = 0;
        let mut sample_tick = tokio::time::interval(self.sample_every);
        let mut cleanup_tick = tokio::time::interval(self.cleanup_every);
        sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        cleanup_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe_tick = tokio::time::interval(self.probe_every);
        probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = sample_tick.tick() => {
                    self.sample(&mut probe).await;
                    if let Some(mcp) = self.agent.mcp() {
                        mcp.clients().stop_idle().await;
                    }
                    let monitor = self.agent.monitor();
                    let started = monitor.turns_started();
                    if monitor.active_turns() == 0 && started != released_at {
                        released_at = started;
                        release_free_memory().await;
                    }
                }
                _ = cleanup_tick.tick() => {
                    self.cleanup().await;
                    release_free_memory().await;
                }
                // A failing model recovers without waiting for a user's turn.
                _ = probe_tick.tick() => {
                    if let Some(models) = self.agent.models() {
                        models.watch.probe(&models.tiers.small).await;
                    }
                }
            }
        }
    }

    async fn sample(&self, probe: &mut ProcessProbe) {
        let reading = probe.read();
        let counts = self.agent.store().count_jobs_by_status().await.unwrap_or_default();
        let monitor = self.agent.monitor();
        monitor.record(Sample {
            at_ms: wall_clock_ms(),
            rss_bytes: reading.rss_bytes,
            cpu_percent: reading.cpu_percent,
            active_turns: monitor.active_turns(),
            queued_jobs: counts.get("queued").copied().unwrap_or(0),
            running_jobs: counts.get("running").copied().unwrap_or(0),
            child_processes: reading.child_processes,
        });
        let telegram = crate::agent::health::telegram_on(&self.components.snapshot());
        crate::agent::health::current_health(&self.agent, telegram).await;
        crate::monitoring::metrics_upkeep();
    }

    async fn cleanup(&self) {
        // A fault is logged (once) and shown in health by the store itself.
        if let Err(error) = self.agent.store().integrity_check().await
            && self.agent.store().fault().is_none()
        {
            tracing::warn!("cleanup: the database integrity check did not run: {error}");
        }
        let (dir, max_age) = (self.temp_dir.clone(), self.temp_max_age);
        match tokio::task::spawn_blocking(move || remove_old_files(&dir, max_age, SystemTime::now())).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "cleanup: deleted old temp files"),
            Err(error) => tracing::warn!("cleanup: the temp-file sweep panicked: {error}"),
        }
        let retention_ms = i64::try_from(self.job_retention.as_millis()).unwrap_or(i64::MAX);
        match self.agent.store().purge_finished_jobs(wall_clock_ms().saturating_sub(retention_ms)).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "cleanup: purged finished jobs past retention"),
            Err(error) => tracing::warn!("cleanup: purging finished jobs failed: {error}"),
        }
    }
}

/// Hand the allocator's free pages back to the OS, on a blocking thread
/// (it walks every arena).
async fn release_free_memory() {
    match tokio::task::spawn_blocking(crate::monitoring::allocator::release_free_memory).await {
        Ok(released) => tracing::debug!(released, "free heap memory handed back to the OS"),
        Err(error) => tracing::warn!("releasing free memory panicked: {error}"),
    }
}

/// Delete regular files under `dir` (recursively) last modified more than
/// `max_age` before `now`; empty directories are left. A missing `dir` is
/// fine. Returns how many files were deleted.
pub fn remove_old_files(dir: &Path, max_age: Duration, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            removed += remove_old_files(&path, max_age, now);
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > max_age);
        if old {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(error) => tracing::warn!("cleanup: could not delete {}: {error}", path.display()),
            }
        }
    }
    removed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_files_older_than_the_limit_are_deleted_also_in_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("run-1");
        std::fs::create_dir(&nested).unwrap();
        for path in [dir.path().join("old.txt"), nested.join("old.bin"), dir.path().join("new.txt")] {
            std::fs::write(&path, b"x").unwrap();
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
        for path in [dir.path().join("old.txt"), nested.join("old.bin")] {
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(two_days_ago).unwrap();
        }
        let removed = remove_old_files(dir.path(), Duration::from_secs(24 * 3600), SystemTime::now());
        assert_eq!(removed, 2);
        assert!(dir.path().join("new.txt").exists());
        assert!(!dir.path().join("old.txt").exists());
        assert!(nested.exists(), "directories are kept");
    }

    #[test]
    fn a_missing_temp_directory_is_not_an_error() {
        assert_eq!(remove_old_files(Path::new("/nonexistent/valor-tmp"), Duration::from_secs(1), SystemTime::now()), 0);
    }
}
