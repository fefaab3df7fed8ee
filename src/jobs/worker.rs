//! A worker: claim one job, run its handler while a keeper task renews the
//! lease and watches for cancel requests, then record the outcome (succeeded,
//! retry with backoff, failed, cancelled, or handed back on shutdown) and
//! deliver final notices. `try_execute_next` does one job (tests drain the
//! queue with it); `run` loops until shutdown.
//!
//! Invariants: a job interrupted by shutdown is handed back (queued, the
//! attempt not counted), never failed; an outcome is only written while the
//! lease is held, so a worker that lost its lease records nothing.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    /// Most jobs `Worker::run` claims in one statement (it starts at one and
    /// grows only while jobs finish fast).
    pub claim_batch: u32,
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
            claim_batch: settings.claim_batch,
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

/// A job still running after this long is slow: the worker writes the
/// completions it holds and hands its unstarted claims back instead of making
/// them wait, and `run` goes back to claiming one job at a time.
const SLOW_JOB: Duration = Duration::from_millis(20);

/// Progress steps at and above this are the worker's own re-run notices
/// (handlers number theirs from 0).
const RERUN_STEP: u32 = 1_000_000;

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

/// One claimed batch while it runs: what the lease keeper learned and the
/// successes whose completion is not written yet.
struct Batch {
    watch: LeaseWatch,
    /// Claimed, not started, in claim order.
    waiting: VecDeque<Job>,
    /// Handler succeeded; completion written by the next flush.
    succeeded: Vec<(Job, serde_json::Value, Instant)>,
    outcomes: Vec<ExecutionOutcome>,
    slow: bool,
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
        Ok(self.try_execute_batch(1).await?.pop())
    }

    /// Claim up to `max` due jobs in one statement and run them one after
    /// another; successes are completed together in one statement at the
    /// end (or as soon as a job turns out slow, when the unstarted rest is
    /// also handed back to the queue). Returns one outcome per claimed job;
    /// empty when nothing is due. Final notices are delivered afterwards.
    pub async fn try_execute_batch(&self, max: u32) -> StorageResult<Vec<ExecutionOutcome>> {
        Ok(self.execute_batch(max).await?.outcomes)
    }

    async fn execute_batch(&self, max: u32) -> StorageResult<Batch> {
        let system = &self.system;
        let lease_ms = millis(system.config.lease);
        self.requeue_expired_jobs().await?;
        let claimed =
            system.store.claim_jobs(&self.id, system.clock.now_ms(), lease_ms, &system.config.kind_limits, max).await?;
        let mut batch = Batch {
            watch: LeaseWatch::default(),
            waiting: claimed.into(),
            succeeded: Vec::new(),
            outcomes: Vec::new(),
            slow: false,
        };
        if !batch.waiting.is_empty() {
            let keeper_stop = CancellationToken::new();
            let claimed = batch.waiting.iter().map(|job| job.id).collect();
            let keeper = tokio::spawn(keep_leases(
                system.clone(),
                self.id.clone(),
                claimed,
                keeper_stop.clone(),
                batch.watch.clone(),
            ));
            let ran = self.run_batch(&mut batch).await;
            keeper_stop.cancel();
            let _ = keeper.await;
            ran?;
        }
        deliver_final_notices(&system.store, system.outbox.as_ref(), system.clock.as_ref(), &self.id, lease_ms).await?;
        Ok(batch)
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

    async fn run_batch(&self, batch: &mut Batch) -> StorageResult<()> {
        while let Some(job) = batch.waiting.pop_front() {
            if self.shutdown.is_cancelled() {
                batch.waiting.push_front(job);
                break;
            }
            let status = if batch.watch.is_lost(job.id) {
                Some(OutcomeStatus::LeaseLost)
            } else if batch.watch.is_cancel_requested(job.id) {
                let now = self.system.clock.now_ms();
                let cancelled = self.system.store.finish_cancelled_job(job.id, &self.id, now).await?;
                Some(cancelled.map_or(OutcomeStatus::LeaseLost, |_| OutcomeStatus::Cancelled))
            } else {
                self.execute(job.clone(), batch).await?
            };
            if let Some(status) = status {
                batch.outcomes.push(self.ended(&job, status, None));
            }
        }
        self.flush_succeeded(batch).await?;
        self.hand_back_waiting(batch).await
    }

    /// Run one job; `None` when it succeeded and its completion waits in `batch.succeeded`.
    async fn execute(&self, job: Job, batch: &mut Batch) -> StorageResult<Option<OutcomeStatus>> {
        let system = &self.system;
        let cancel = self.shutdown.child_token();
        batch.watch.start(job.id, cancel.clone());
        let context = JobContext {
            job: job.clone(),
            cancel: cancel.clone(),
            shutdown: self.shutdown.clone(),
            worker_id: self.id.clone(),
            store: system.store.clone(),
            clock: system.clock.clone(),
            outbox: system.outbox.clone(),
        };
        tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, worker = %self.id, "job started");
        if job.attempts > 1 {
            // A re-run (after a crash or a passing outage) is said in the chat, once per attempt.
            let why = job.error.as_deref().unwrap_or("it was interrupted");
            let text = format!(
                "trying again (attempt {} of {}); the last attempt ended: {why}",
                job.attempts, job.max_attempts
            );
            let step = RERUN_STEP.saturating_add(u32::try_from(job.attempts).unwrap_or(u32::MAX));
            if let Err(error) = context.notify_progress(step, &text, None).await {
                tracing::warn!(job = job.id, "the re-run notice was not recorded: {error}");
            }
        }
        let started = Instant::now();
        // The handler future borrows `job`; it ends with this block.
        let result = {
            let run = async {
                match system.handlers.get(&job.kind) {
                    Some(handler) => handler.run(&context, job.payload.clone()).await,
                    None => Err(JobError::Fail(format!("no handler is registered for job kind {:?}", job.kind))),
                }
            };
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => result,
                () = tokio::time::sleep(SLOW_JOB) => {
                    // A slow job: nothing else of the batch waits for it.
                    batch.slow = true;
                    if let Err(error) = self.flush_succeeded(batch).await {
                        tracing::warn!(worker = %self.id, "writing completed jobs failed (will retry): {error}");
                    }
                    if let Err(error) = self.hand_back_waiting(batch).await {
                        tracing::warn!(worker = %self.id, "handing back claimed jobs failed (will run them): {error}");
                    }
                    run.await
                }
            }
        };
        batch.watch.finish();
        if batch.watch.is_lost(job.id) {
            return Ok(Some(OutcomeStatus::LeaseLost));
        }
        match result {
            Ok(value) => {
                batch.succeeded.push((job, value, started));
                Ok(None)
            }
            Err(error) => self.record_failure(&job, error, &batch.watch).await.map(Some),
        }
    }

    /// Write every held success in one statement; a job the statement did not
    /// write had lost its lease.
    async fn flush_succeeded(&self, batch: &mut Batch) -> StorageResult<()> {
        if batch.succeeded.is_empty() {
            return Ok(());
        }
        let results: Vec<(i64, serde_json::Value)> =
            batch.succeeded.iter().map(|(job, value, _)| (job.id, value.clone())).collect();
        let written = self.system.store.complete_jobs(&self.id, &results, self.system.clock.now_ms()).await?;
        for (job, _, started) in std::mem::take(&mut batch.succeeded) {
            let status = if written.iter().any(|done| done.id == job.id) {
                OutcomeStatus::Succeeded
            } else {
                OutcomeStatus::LeaseLost
            };
            batch.outcomes.push(self.ended(&job, status, Some(started)));
        }
        Ok(())
    }

    /// Give the claimed jobs that never started back to the queue (shutdown,
    /// or a slow job in front of them), without counting the attempt.
    async fn hand_back_waiting(&self, batch: &mut Batch) -> StorageResult<()> {
        if batch.waiting.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = batch.waiting.iter().map(|job| job.id).collect();
        let released = self.system.store.release_unstarted_jobs(&ids, &self.id, self.system.clock.now_ms()).await?;
        for job in std::mem::take(&mut batch.waiting) {
            // A job the release missed is no longer ours (taken over meanwhile).
            let status = if released.contains(&job.id) { OutcomeStatus::Released } else { OutcomeStatus::LeaseLost };
            batch.outcomes.push(ExecutionOutcome { job_id: job.id, kind: job.kind, status });
        }
        Ok(())
    }

    /// Log and count one ended execution.
    fn ended(&self, job: &Job, status: OutcomeStatus, started: Option<Instant>) -> ExecutionOutcome {
        match &status {
            // The owner reads the log, not the job rows: a failure says why, with its fix.
            OutcomeStatus::Failed { error } => {
                tracing::warn!(job = job.id, kind = %job.kind, worker = %self.id, "job failed: {error}");
            }
            _ => tracing::info!(job = job.id, kind = %job.kind, outcome = ?status, worker = %self.id, "job ended"),
        }
        metrics::counter!("valor_jobs_total", "kind" => job.kind.clone(), "outcome" => status.label()).increment(1);
        if let Some(started) = started {
            metrics::histogram!("valor_job_seconds", "kind" => job.kind.clone())
                .record(started.elapsed().as_secs_f64());
        }
        ExecutionOutcome { job_id: job.id, kind: job.kind.clone(), status }
    }

    async fn record_failure(&self, job: &Job, error: JobError, watch: &LeaseWatch) -> StorageResult<OutcomeStatus> {
        let store = &self.system.store;
        let now = self.system.clock.now_ms();
        let cancel_requested = watch.is_cancel_requested(job.id)
            || store.renew_job_lease(job.id, &self.id, now, millis(self.system.config.lease)).await? == Some(true);
        let written = match error {
            _ if cancel_requested => {
                store.finish_cancelled_job(job.id, &self.id, now).await?.map(|_| OutcomeStatus::Cancelled)
            }
            _ if self.shutdown.is_cancelled() => {
                store.release_job(job.id, &self.id, now).await?.map(|_| OutcomeStatus::Released)
            }
            JobError::Retry(error) => {
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
            JobError::Fail(error) => {
                store.fail_job(job.id, &self.id, &error, None, now).await?.map(|_| OutcomeStatus::Failed { error })
            }
            JobError::Cancelled => {
                let error = "the handler stopped without a cancel request".to_owned();
                store.fail_job(job.id, &self.id, &error, None, now).await?.map(|_| OutcomeStatus::Failed { error })
            }
        };
        Ok(written.unwrap_or(OutcomeStatus::LeaseLost))
    }

    /// Work until shutdown: run due jobs back to back; idle, sleep until a
    /// job is enqueued (`Store::jobs_ready`) or the next one is due. Claims
    /// grow (doubling up to `claim_batch`) while every job of a full batch
    /// finishes fast, and fall back to one at a time after a slow job, so
    /// slow work (model turns) is never held back behind a claim. A worker
    /// with `maintenance` also purges finished jobs past retention (hourly).
    pub async fn run(self, maintenance: bool) {
        let mut last_purge: Option<Instant> = None;
        let mut claim = 1;
        let ready = self.system.store.jobs_ready();
        while !self.shutdown.is_cancelled() {
            // Armed before looking: a job enqueued while this worker looks still wakes it.
            let woken = ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if maintenance && last_purge.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
                last_purge = Some(Instant::now());
                let cutoff = self.system.clock.now_ms().saturating_sub(millis(self.system.config.retention));
                match self.system.store.purge_finished_jobs(cutoff).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged finished jobs past retention"),
                    Err(error) => tracing::warn!("purging finished jobs failed: {error}"),
                }
            }
            let idle = match self.execute_batch(claim).await {
                Ok(batch) => {
                    claim = next_claim_size(claim, &batch, self.system.config.claim_batch);
                    batch.outcomes.is_empty()
                }
                Err(error) => {
                    tracing::warn!(worker = %self.id, "job queue error: {error}");
                    claim = 1;
                    true
                }
            };
            if idle {
                // Sleep until a job is enqueued, the next queued one is due, or (a
                // safety net for jobs enqueued by another process) `poll_interval`.
                let now = self.system.clock.now_ms();
                let alarm = match self.system.store.next_job_due_ms(now).await {
                    Ok(Some(due)) => Duration::from_millis(u64::try_from(due - now).unwrap_or(0)),
                    _ => self.system.config.poll_interval,
                };
                tokio::select! {
                    () = tokio::time::sleep(alarm.min(self.system.config.poll_interval)) => {}
                    () = &mut woken => {}
                    () = self.shutdown.cancelled() => {}
                }
            }
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }
}

/// After a slow job: one. After a full batch of fast jobs: double, up to `max`.
fn next_claim_size(claim: u32, batch: &Batch, max: u32) -> u32 {
    if batch.slow {
        1
    } else if u32::try_from(batch.outcomes.len()).unwrap_or(u32::MAX) >= claim {
        claim.saturating_mul(2).clamp(1, max.max(1))
    } else {
        claim
    }
}

/// What the lease keeper learned about the batch, and the running job's token.
#[derive(Debug, Clone, Default)]
struct LeaseWatch {
    inner: Arc<Mutex<WatchState>>,
}

#[derive(Debug, Default)]
struct WatchState {
    running: Option<(i64, CancellationToken)>,
    lost: HashSet<i64>,
    cancel_requested: HashSet<i64>,
}

impl LeaseWatch {
    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self, job_id: i64, cancel: CancellationToken) {
        self.lock().running = Some((job_id, cancel));
    }

    fn finish(&self) {
        self.lock().running = None;
    }

    fn is_lost(&self, job_id: i64) -> bool {
        self.lock().lost.contains(&job_id)
    }

    fn is_cancel_requested(&self, job_id: i64) -> bool {
        self.lock().cancel_requested.contains(&job_id)
    }

    /// A renewal's answer (every job still held, with its cancel flag). A job
    /// of the batch missing from it was taken over, or finished by us. The
    /// running job's token fires when it was lost or asked to stop.
    fn renewed(&self, held: &[(i64, bool)], batch: &HashSet<i64>) {
        let mut state = self.lock();
        state.cancel_requested.extend(held.iter().filter(|(_, cancel)| *cancel).map(|(id, _)| *id));
        let lost: Vec<i64> = batch.iter().copied().filter(|id| !held.iter().any(|(held, _)| held == id)).collect();
        state.lost.extend(lost);
        if let Some((id, token)) = &state.running
            && (state.lost.contains(id) || state.cancel_requested.contains(id))
        {
            token.cancel();
        }
    }
}

/// Renew the leases of every job the worker holds, every `renew_every`, until stopped.
async fn keep_leases(
    system: JobSystem,
    worker_id: String,
    batch: HashSet<i64>,
    stop: CancellationToken,
    watch: LeaseWatch,
) {
    let lease_ms = millis(system.config.lease);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(system.config.renew_every) => {}
        }
        match system.store.renew_worker_leases(&worker_id, system.clock.now_ms(), lease_ms).await {
            Ok(held) => watch.renewed(&held, &batch),
            Err(error) => tracing::warn!(worker = %worker_id, "renewing job leases failed: {error}"),
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
