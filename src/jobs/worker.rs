//! A worker: claim one job, run its handler while a keeper task renews the
//! lease and watches for cancel requests, then record the outcome (succeeded,
//! retry with backoff, failed, cancelled, or handed back on shutdown) and
//! deliver final notices. `try_execute_next` does one job (tests drain the
//! queue with it); `run` loops until shutdown.
//!
//! Invariants: a job interrupted by shutdown is handed back (queued, the
//! attempt not counted), never failed; an outcome is only written while the
//! lease is held, so a worker that lost its lease records nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use super::handler::{JobContext, JobError};
use super::{JobSystem, deliver_final_notices};
use crate::storage::{Job, StorageResult};

/// Queue behaviour shared by all workers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub lease: Duration,
    /// How often a running job's lease is renewed and its cancel flag checked.
    pub renew_every: Duration,
    pub poll_interval: Duration,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub kind_limits: BTreeMap<String, u32>,
    /// Finished jobs older than this are purged (by the maintenance pass).
    pub retention: Duration,
}

impl WorkerConfig {
    pub fn from_settings(settings: &crate::config::JobsSettings) -> Self {
        let lease = Duration::from_secs(settings.lease_secs.max(1));
        Self {
            lease,
            renew_every: (lease / 3).max(Duration::from_millis(50)),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            backoff_base_ms: settings.backoff_base_ms,
            backoff_max_ms: settings.backoff_max_ms,
            kind_limits: settings.concurrency.clone(),
            retention: Duration::from_secs(u64::from(settings.retention_days) * 86_400),
        }
    }
}

/// How one execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub job_id: i64,
    pub kind: String,
    pub status: OutcomeStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeStatus {
    Succeeded,
    /// Failed this attempt; queued again for this time.
    RetryScheduled {
        run_at_ms: i64,
    },
    Failed {
        error: String,
    },
    Cancelled,
    /// Shutdown interrupted it; queued again without counting the attempt.
    Released,
    /// Another worker took the job over (our lease expired); nothing recorded.
    LeaseLost,
}

impl OutcomeStatus {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::RetryScheduled { .. } => "retry_scheduled",
            OutcomeStatus::Failed { .. } => "failed",
            OutcomeStatus::Cancelled => "cancelled",
            OutcomeStatus::Released => "released",
            OutcomeStatus::LeaseLost => "lease_lost",
        }
    }
}

/// Retry delay after `attempt` failed attempts: base · 2^(attempt−1), capped,
/// plus `jitter` (0.0–1.0) times 10 % of that.
pub fn backoff_delay_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(32);
    let delay = base_ms.saturating_mul(1u64 << exponent).min(max_ms);
    let extra = (delay as f64 * 0.1 * jitter.clamp(0.0, 1.0)) as u64;
    delay.saturating_add(extra)
}

pub struct Worker {
    id: String,
    system: JobSystem,
    shutdown: CancellationToken,
    /// Queue time of the last expired-lease sweep (`i64::MIN`: never).
    last_requeue_ms: AtomicI64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

impl Worker {
    pub(super) fn new(worker_id: &str, system: JobSystem, shutdown: CancellationToken) -> Self {
        Self { id: worker_id.to_owned(), system, shutdown, last_requeue_ms: AtomicI64::new(i64::MIN) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claim and run one due job; `None` when nothing is due. Final notices
    /// of finished jobs are delivered afterwards either way.
    pub async fn try_execute_next(&self) -> StorageResult<Option<ExecutionOutcome>> {
        let system = &self.system;
        let lease_ms = millis(system.config.lease);
        self.requeue_expired_jobs().await?;
        let claimed =
            system.store.claim_job(&self.id, system.clock.now_ms(), lease_ms, &system.config.kind_limits).await?;
        let outcome = match claimed {
            Some(job) => Some(self.execute(job).await?),
            None => None,
        };
        deliver_final_notices(&system.store, system.outbox.as_ref(), system.clock.as_ref(), &self.id, lease_ms).await?;
        Ok(outcome)
    }

    /// At most once per `renew_every` of queue time (a lease can not expire faster than that matters).
    async fn requeue_expired_jobs(&self) -> StorageResult<()> {
        let now = self.system.clock.now_ms();
        let last = self.last_requeue_ms.load(Ordering::SeqCst);
        if last != i64::MIN && now.saturating_sub(last) < millis(self.system.config.renew_every) {
            return Ok(());
        }
        self.system.store.requeue_expired_jobs(now).await?;
        self.last_requeue_ms.store(now, Ordering::SeqCst);
        Ok(())
    }

    async fn execute(&self, job: Job) -> StorageResult<ExecutionOutcome> {
        let system = &self.system;
        let cancel = self.shutdown.child_token();
        let watch = LeaseWatch::default();
        let keeper_stop = CancellationToken::new();
        let keeper = tokio::spawn(keep_lease(
            system.clone(),
            job.id,
            self.id.clone(),
            cancel.clone(),
            keeper_stop.clone(),
            watch.clone(),
        ));
        let context = JobContext {
            job: job.clone(),
            cancel: cancel.clone(),
            worker_id: self.id.clone(),
            store: system.store.clone(),
            clock: system.clock.clone(),
            outbox: system.outbox.clone(),
        };
        tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, worker = %self.id, "job started");
        let started = Instant::now();
        let result = match system.handlers.get(&job.kind) {
            Some(handler) => handler.run(&context, job.payload.clone()).await,
            None => Err(JobError::Fail(format!("no handler is registered for job kind {:?}", job.kind))),
        };
        keeper_stop.cancel();
        let _ = keeper.await;
        let status = self.record(&job, result, &watch).await?;
        tracing::info!(job = job.id, kind = %job.kind, outcome = ?status, "job ended");
        metrics::counter!("valor_jobs_total", "kind" => job.kind.clone(), "outcome" => status.label()).increment(1);
        metrics::histogram!("valor_job_seconds", "kind" => job.kind.clone()).record(started.elapsed().as_secs_f64());
        Ok(ExecutionOutcome { job_id: job.id, kind: job.kind, status })
    }

    async fn record(
        &self,
        job: &Job,
        result: Result<serde_json::Value, JobError>,
        watch: &LeaseWatch,
    ) -> StorageResult<OutcomeStatus> {
        let store = &self.system.store;
        let now = self.system.clock.now_ms();
        if watch.lost.load(Ordering::SeqCst) {
            return Ok(OutcomeStatus::LeaseLost);
        }
        let cancel_requested = watch.cancel_requested.load(Ordering::SeqCst)
            || store.renew_job_lease(job.id, &self.id, now, millis(self.system.config.lease)).await? == Some(true);
        let written = match result {
            Ok(value) => store.complete_job(job.id, &self.id, &value, now).await?.map(|_| OutcomeStatus::Succeeded),
            Err(_) if cancel_requested => {
                store.finish_cancelled_job(job.id, &self.id, now).await?.map(|_| OutcomeStatus::Cancelled)
            }
            Err(_) if self.shutdown.is_cancelled() => {
                store.release_job(job.id, &self.id, now).await?.map(|_| OutcomeStatus::Released)
            }
            Err(JobError::Retry(error)) => {
                let attempt = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                let jitter = rand::rng().random::<f64>();
                let config = &self.system.config;
                let delay = backoff_delay_ms(attempt, config.backoff_base_ms, config.backoff_max_ms, jitter);
                let run_at_ms = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                store.fail_job(job.id, &self.id, &error, Some(run_at_ms), now).await?.map(|updated| {
                    if updated.status.is_finished() {
                        OutcomeStatus::Failed { error }
                    } else {
                        OutcomeStatus::RetryScheduled { run_at_ms }
                    }
                })
            }
            Err(JobError::Fail(error)) => {
                store.fail_job(job.id, &self.id, &error, None, now).await?.map(|_| OutcomeStatus::Failed { error })
            }
            Err(JobError::Cancelled) => {
                let error = "the handler stopped without a cancel request".to_owned();
                store.fail_job(job.id, &self.id, &error, None, now).await?.map(|_| OutcomeStatus::Failed { error })
            }
        };
        Ok(written.unwrap_or(OutcomeStatus::LeaseLost))
    }

    /// Work until shutdown: run due jobs back to back, poll when idle. A worker
    /// with `maintenance` also purges finished jobs past retention (hourly).
    pub async fn run(self, maintenance: bool) {
        let mut last_purge: Option<Instant> = None;
        while !self.shutdown.is_cancelled() {
            if maintenance && last_purge.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
                last_purge = Some(Instant::now());
                let cutoff = self.system.clock.now_ms().saturating_sub(millis(self.system.config.retention));
                match self.system.store.purge_finished_jobs(cutoff).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged finished jobs past retention"),
                    Err(error) => tracing::warn!("purging finished jobs failed: {error}"),
                }
            }
            let idle = match self.try_execute_next().await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(error) => {
                    tracing::warn!(worker = %self.id, "job queue error: {error}");
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(self.system.config.poll_interval) => {}
                    () = self.shutdown.cancelled() => {}
                }
            }
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }
}

#[derive(Debug, Clone, Default)]
struct LeaseWatch {
    lost: Arc<AtomicBool>,
    cancel_requested: Arc<AtomicBool>,
}

/// Renew the lease every `renew_every` until stopped; fire `cancel` when the
/// lease is lost or a cancel is requested.
async fn keep_lease(
    system: JobSystem,
    job_id: i64,
    worker_id: String,
    cancel: CancellationToken,
    stop: CancellationToken,
    watch: LeaseWatch,
) {
    let lease_ms = millis(system.config.lease);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(system.config.renew_every) => {}
        }
        match system.store.renew_job_lease(job_id, &worker_id, system.clock.now_ms(), lease_ms).await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => {
                watch.cancel_requested.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
            Ok(None) => {
                watch.lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(error) => tracing::warn!(job = job_id, "renewing the job lease failed: {error}"),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::backoff_delay_ms;

    #[test]
    fn backoff_doubles_per_attempt_and_is_capped() {
        assert_eq!(backoff_delay_ms(1, 1000, 60_000, 0.0), 1000);
        assert_eq!(backoff_delay_ms(2, 1000, 60_000, 0.0), 2000);
        assert_eq!(backoff_delay_ms(4, 1000, 60_000, 0.0), 8000);
        assert_eq!(backoff_delay_ms(30, 1000, 60_000, 0.0), 60_000);
        assert_eq!(backoff_delay_ms(200, 1000, 60_000, 0.0), 60_000);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        assert_eq!(backoff_delay_ms(1, 1000, 60_000, 1.0), 1100);
        assert_eq!(backoff_delay_ms(2, 1000, 60_000, 0.5), 2100);
    }
}
