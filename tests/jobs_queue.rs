//! Queue semantics with a manual clock (no sleeps for backoff or leases):
//! retries, max attempts, lease take-over, cancellation, priority, per-kind
//! limits, idempotency, retention, shutdown hand-back and concurrent claimers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use valor::agent::outbox::{Notice, Outbox, OutboxError, TranscriptOutbox};
use valor::jobs::{
    Clock, HandlerRegistry, JobContext, JobError, JobHandler, JobSystem, ManualClock, OutcomeStatus, WorkerConfig,
};
use valor::storage::{CancelOutcome, JobFilter, JobStatus, MessageRole, NewConversation, NewJob, StorageError, Store};

const START_MS: i64 = 1_700_000_000_000;
const BASE_MS: u64 = 1_000;

/// Succeeds with its payload.
struct Echo;
#[async_trait::async_trait]
impl JobHandler for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }
    async fn run(&self, _: &JobContext, payload: Value) -> Result<Value, JobError> {
        Ok(payload)
    }
}

/// Fails (retryably) while `attempts <= payload.fail_times`.
struct Flaky;
#[async_trait::async_trait]
impl JobHandler for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn run(&self, context: &JobContext, payload: Value) -> Result<Value, JobError> {
        if context.job.attempts <= payload["fail_times"].as_i64().unwrap() {
            return Err(JobError::Retry(format!("boom on attempt {}", context.job.attempts)));
        }
        Ok(json!("recovered"))
    }
}

/// Announces its start, then waits for its cancellation token.
struct Blocking {
    started: mpsc::UnboundedSender<i64>,
    saw_cancel: Arc<AtomicBool>,
}
#[async_trait::async_trait]
impl JobHandler for Blocking {
    fn kind(&self) -> &'static str {
        "blocking"
    }
    async fn run(&self, context: &JobContext, _: Value) -> Result<Value, JobError> {
        context.report_progress("waiting", Some(50)).await.unwrap();
        self.started.send(context.job.id).unwrap();
        context.cancel.cancelled().await;
        self.saw_cancel.store(true, Ordering::SeqCst);
        Err(JobError::Cancelled)
    }
}

struct Harness {
    _dir: TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    system: JobSystem,
    started: mpsc::UnboundedReceiver<i64>,
    saw_cancel: Arc<AtomicBool>,
    conversation: String,
}

async fn harness(kind_limits: BTreeMap<String, u32>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "jobs".into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    let clock = Arc::new(ManualClock::starting_at(START_MS));
    let (sender, started) = mpsc::unbounded_channel();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let mut handlers = HandlerRegistry::default();
    handlers.register(Arc::new(Echo));
    handlers.register(Arc::new(Flaky));
    handlers.register(Arc::new(Blocking { started: sender, saw_cancel: saw_cancel.clone() }));
    let system = JobSystem {
        store: store.clone(),
        clock: clock.clone(),
        handlers: Arc::new(handlers),
        outbox: Arc::new(TranscriptOutbox::new(store.clone())),
        config: WorkerConfig {
            lease: Duration::from_secs(30),
            renew_every: Duration::from_millis(10),
            poll_interval: Duration::from_millis(10),
            backoff_base_ms: BASE_MS,
            backoff_max_ms: 60_000,
            kind_limits,
            claim_batch: 16,
            retention: Duration::from_secs(7 * 86_400),
        },
    };
    Harness { _dir: dir, store, clock, system, started, saw_cancel, conversation }
}

fn job(kind: &str, payload: Value) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload,
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: None,
    }
}

/// The ids the claimer tasks return: `expected` jobs, none twice.
async fn assert_each_job_claimed_once(tasks: Vec<tokio::task::JoinHandle<Vec<i64>>>, expected: usize) {
    let mut seen = BTreeSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), expected);
}

impl Harness {
    async fn assert_all_succeeded_on_the_first_attempt(&self) {
        let jobs = self.store.list_jobs(&JobFilter { limit: 500, ..JobFilter::default() }).await.unwrap();
        assert!(jobs.iter().all(|j| j.status == JobStatus::Succeeded && j.attempts == 1));
    }

    async fn enqueue(&self, new: NewJob) -> i64 {
        self.store.enqueue_job(new, self.clock.now_ms()).await.unwrap().job.id
    }

    async fn status(&self, id: i64) -> JobStatus {
        self.store.get_job(id).await.unwrap().status
    }

    async fn system_texts(&self) -> Vec<String> {
        let messages = self.store.recent_messages(&self.conversation, 50).await.unwrap();
        messages.into_iter().filter(|m| m.role == MessageRole::System).map(|m| m.text).collect()
    }
}

#[tokio::test]
async fn a_failed_attempt_is_retried_after_an_exponential_backoff_with_jitter() {
    let h = harness(BTreeMap::new()).await;
    let worker = h.system.worker("w1", CancellationToken::new());
    let id = h.enqueue(job("flaky", json!({"fail_times": 2}))).await;

    let first = worker.try_execute_next().await.unwrap().unwrap();
    let OutcomeStatus::RetryScheduled { run_at_ms } = first.status else { panic!("{first:?}") };
    let delay = run_at_ms - START_MS;
    assert!((1_000..=1_100).contains(&delay), "first backoff {delay} ms");
    assert_eq!(h.status(id).await, JobStatus::Queued);
    assert!(worker.try_execute_next().await.unwrap().is_none(), "ran before its backoff elapsed");

    h.clock.set(run_at_ms);
    let second = worker.try_execute_next().await.unwrap().unwrap();
    let OutcomeStatus::RetryScheduled { run_at_ms: second_at } = second.status else { panic!("{second:?}") };
    let delay = second_at - run_at_ms;
    assert!((2_000..=2_200).contains(&delay), "second backoff {delay} ms must double");

    h.clock.set(second_at);
    assert_eq!(worker.try_execute_next().await.unwrap().unwrap().status, OutcomeStatus::Succeeded);
    let done = h.store.get_job(id).await.unwrap();
    assert_eq!((done.status, done.attempts, done.result), (JobStatus::Succeeded, 3, Some(json!("recovered"))));
}

#[tokio::test]
async fn a_job_fails_for_good_after_max_attempts_and_the_chat_hears_it_once() {
    let h = harness(BTreeMap::new()).await;
    let worker = h.system.worker("w1", CancellationToken::new());
    let id = h
        .enqueue(NewJob {
            max_attempts: 2,
            conversation_id: Some(h.conversation.clone()),
            ..job("flaky", json!({"fail_times": 99}))
        })
        .await;
    assert!(matches!(worker.try_execute_next().await.unwrap().unwrap().status, OutcomeStatus::RetryScheduled { .. }));
    h.clock.advance(Duration::from_secs(60));
    let last = worker.try_execute_next().await.unwrap().unwrap();
    assert_eq!(last.status, OutcomeStatus::Failed { error: "boom on attempt 2".into() });
    let failed = h.store.get_job(id).await.unwrap();
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 2));
    assert!(failed.finished_at_ms.is_some());

    h.clock.advance(Duration::from_secs(3600));
    assert!(worker.try_execute_next().await.unwrap().is_none(), "a failed job never runs again");
    let texts = h.system_texts().await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    // The re-run is said in the job's status message, with why the last attempt ended (the
    // message then ends failed); then the failure, once.
    assert!(texts[0].starts_with(&format!("❌ **Job #{id}** · failed · ")), "{texts:?}");
    assert!(texts[0].contains(" · attempt 2 of 2\n"), "{texts:?}");
    assert!(
        texts[0].ends_with("trying again (attempt 2 of 2); the last attempt ended: boom on attempt 1"),
        "{texts:?}"
    );
    assert!(texts[1].contains(&format!("Job #{id}")) && texts[1].contains("failed after 2 attempt(s)"), "{texts:?}");
    assert_eq!(h.store.job_notices(id).await.unwrap().len(), 1, "the final notice");
}

#[tokio::test]
async fn an_expired_lease_hands_the_job_to_another_worker_and_the_old_holder_can_not_finish_it() {
    let h = harness(BTreeMap::new()).await;
    let id = h.enqueue(job("echo", json!({"n": 1}))).await;
    // A worker that claims and then dies (never renews, never finishes).
    let crashed = h.store.claim_job("crashed", h.clock.now_ms(), 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    assert_eq!(crashed.id, id);

    let rescuer = h.system.worker("rescuer", CancellationToken::new());
    h.clock.advance(Duration::from_secs(29));
    assert!(rescuer.try_execute_next().await.unwrap().is_none(), "taken while the lease was alive");
    h.clock.advance(Duration::from_secs(2));
    let outcome = rescuer.try_execute_next().await.unwrap().unwrap();
    assert_eq!((outcome.job_id, outcome.status), (id, OutcomeStatus::Succeeded));
    assert_eq!(h.store.get_job(id).await.unwrap().attempts, 2);

    let late = h.store.complete_job(id, "crashed", &json!("late"), h.clock.now_ms()).await.unwrap();
    assert!(late.is_none(), "a worker without the lease overwrote the outcome");
    assert_eq!(h.store.get_job(id).await.unwrap().result, Some(json!({"n": 1})));
}

#[tokio::test]
async fn a_lease_that_expires_on_the_last_attempt_fails_the_job_instead_of_looping() {
    let h = harness(BTreeMap::new()).await;
    let id = h.enqueue(NewJob { max_attempts: 1, ..job("echo", json!(1)) }).await;
    h.store.claim_job("crashed", h.clock.now_ms(), 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    h.clock.advance(Duration::from_secs(31));
    let worker = h.system.worker("w2", CancellationToken::new());
    assert!(worker.try_execute_next().await.unwrap().is_none());
    let failed = h.store.get_job(id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("lease expired"));
}

#[tokio::test]
async fn cancelling_a_queued_job_cancels_it_at_once() {
    let h = harness(BTreeMap::new()).await;
    let id = h.enqueue(job("echo", json!(1))).await;
    let outcome = h.store.request_job_cancel(id, h.clock.now_ms()).await.unwrap();
    assert!(matches!(outcome, CancelOutcome::Cancelled(ref j) if j.status == JobStatus::Cancelled));
    assert!(h.system.worker("w", CancellationToken::new()).try_execute_next().await.unwrap().is_none());
    let again = h.store.request_job_cancel(id, h.clock.now_ms()).await.unwrap();
    assert!(matches!(again, CancelOutcome::AlreadyFinished(_)));
}

#[tokio::test]
async fn cancelling_a_running_job_fires_the_handlers_token_and_records_cancelled() {
    let mut h = harness(BTreeMap::new()).await;
    let id = h.enqueue(NewJob { conversation_id: Some(h.conversation.clone()), ..job("blocking", json!({})) }).await;
    let worker = h.system.worker("w1", CancellationToken::new());
    let running = tokio::spawn(async move { worker.try_execute_next().await });
    assert_eq!(h.started.recv().await, Some(id));
    let progress = h.store.get_job(id).await.unwrap();
    assert_eq!((progress.status, progress.progress_percent), (JobStatus::Running, Some(50)));

    let outcome = h.store.request_job_cancel(id, h.clock.now_ms()).await.unwrap();
    assert!(matches!(outcome, CancelOutcome::Requested(_)));
    let ended = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap().unwrap();
    assert_eq!(ended.status, OutcomeStatus::Cancelled);
    assert!(h.saw_cancel.load(Ordering::SeqCst), "the handler never saw its token fire");
    assert_eq!(h.status(id).await, JobStatus::Cancelled);
    assert_eq!(h.system_texts().await, [format!("Job #{id} (blocking) was cancelled.")]);
}

#[tokio::test]
async fn shutdown_hands_a_running_job_back_without_counting_the_attempt() {
    let mut h = harness(BTreeMap::new()).await;
    let id = h.enqueue(job("blocking", json!({}))).await;
    let shutdown = CancellationToken::new();
    let worker = h.system.worker("w1", shutdown.clone());
    let running = tokio::spawn(async move { worker.try_execute_next().await });
    assert_eq!(h.started.recv().await, Some(id));
    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap().unwrap();
    assert_eq!(ended.status, OutcomeStatus::Released);
    let released = h.store.get_job(id).await.unwrap();
    assert_eq!((released.status, released.attempts, released.worker_id), (JobStatus::Queued, 0, None));
    // The next process takes it up at once.
    let next = h.store.claim_job("w2", h.clock.now_ms(), 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    assert_eq!((next.id, next.attempts), (id, 1));
}

#[tokio::test]
async fn higher_priority_runs_first_then_earlier_run_at_then_lower_id() {
    let h = harness(BTreeMap::new()).await;
    let low = h.enqueue(job("echo", json!("low"))).await;
    let high = h.enqueue(NewJob { priority: 10, ..job("echo", json!("high")) }).await;
    let mid_late = h.enqueue(NewJob { priority: 5, run_at_ms: Some(START_MS - 1), ..job("echo", json!(1)) }).await;
    let mid_early = h.enqueue(NewJob { priority: 5, run_at_ms: Some(START_MS - 2), ..job("echo", json!(2)) }).await;
    let low_second = h.enqueue(job("echo", json!("low2"))).await;
    let future = h.enqueue(NewJob { priority: 99, run_at_ms: Some(START_MS + 1), ..job("echo", json!(3)) }).await;
    let worker = h.system.worker("w", CancellationToken::new());
    let mut order = Vec::new();
    while let Some(outcome) = worker.try_execute_next().await.unwrap() {
        order.push(outcome.job_id);
    }
    assert_eq!(order, [high, mid_early, mid_late, low, low_second]);
    assert_eq!(h.status(future).await, JobStatus::Queued, "a job ran before its run_at");
}

#[tokio::test]
async fn a_kind_at_its_concurrency_limit_is_skipped_until_a_slot_frees() {
    let h = harness(BTreeMap::from([("slow".to_owned(), 1)])).await;
    let limits = &h.system.config.kind_limits;
    let now = h.clock.now_ms();
    let first = h.enqueue(NewJob { priority: 9, ..job("slow", json!(1)) }).await;
    let second = h.enqueue(NewJob { priority: 9, ..job("slow", json!(2)) }).await;
    let other = h.enqueue(job("fast", json!(3))).await;
    assert_eq!(h.store.claim_job("a", now, 30_000, limits).await.unwrap().unwrap().id, first);
    assert_eq!(h.store.claim_job("b", now, 30_000, limits).await.unwrap().unwrap().id, other, "limit ignored");
    assert!(h.store.claim_job("c", now, 30_000, limits).await.unwrap().is_none());
    h.store.complete_job(first, "a", &json!(null), now).await.unwrap().unwrap();
    assert_eq!(h.store.claim_job("c", now, 30_000, limits).await.unwrap().unwrap().id, second);
}

#[tokio::test]
async fn enqueueing_the_same_idempotency_key_twice_returns_the_first_job() {
    let h = harness(BTreeMap::new()).await;
    let keyed = || NewJob { idempotency_key: Some("report:2026-11-26".into()), ..job("echo", json!(1)) };
    let first = h.store.enqueue_job(keyed(), START_MS).await.unwrap();
    let second = h.store.enqueue_job(NewJob { payload: json!(2), ..keyed() }, START_MS).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.payload, json!(1));
    let all = h.store.list_jobs(&JobFilter { limit: 10, ..JobFilter::default() }).await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn finished_jobs_are_purged_after_retention_but_unfinished_and_unannounced_ones_stay() {
    let h = harness(BTreeMap::new()).await;
    let worker = h.system.worker("w", CancellationToken::new());
    let old = h.enqueue(job("echo", json!("old"))).await;
    worker.try_execute_next().await.unwrap().unwrap();
    // Finished by a worker that died before delivering the final notice.
    let unannounced =
        h.enqueue(NewJob { conversation_id: Some(h.conversation.clone()), ..job("echo", json!(0)) }).await;
    h.store.claim_job("dead", h.clock.now_ms(), 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    h.store.complete_job(unannounced, "dead", &json!(0), h.clock.now_ms()).await.unwrap().unwrap();
    let waiting = h.enqueue(NewJob { run_at_ms: Some(START_MS + 30 * 86_400_000), ..job("echo", json!(1)) }).await;
    h.clock.advance(Duration::from_secs(6 * 86_400));
    let recent = h.enqueue(job("echo", json!("recent"))).await;
    h.store.claim_job("w", h.clock.now_ms(), 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    h.store.complete_job(recent, "w", &json!(0), h.clock.now_ms()).await.unwrap().unwrap();
    h.clock.advance(Duration::from_secs(2 * 86_400));

    let cutoff = h.clock.now_ms() - 7 * 86_400_000;
    assert_eq!(h.store.purge_finished_jobs(cutoff).await.unwrap(), 1);
    assert!(h.store.get_job(old).await.is_err());
    assert_eq!(h.status(recent).await, JobStatus::Succeeded);
    assert_eq!(h.status(waiting).await, JobStatus::Queued);
    assert_eq!(h.status(unannounced).await, JobStatus::Succeeded, "purged before its notice went out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_in_two_pools_never_hold_the_same_job() {
    let h = harness(BTreeMap::new()).await;
    for n in 0..200 {
        h.enqueue(job("echo", json!(n))).await;
    }
    // Two independent pools on one file stand in for two processes.
    let other_process = Store::open(&h._dir.path().join("valor.db")).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = if worker % 2 == 0 { h.store.clone() } else { other_process.clone() };
        tasks.push(tokio::spawn(async move {
            let name = format!("w{worker}");
            let mut mine = Vec::new();
            while let Some(job) = store.claim_job(&name, START_MS, 30_000, &BTreeMap::new()).await.unwrap() {
                mine.push(job.id);
                store.complete_job(job.id, &name, &json!(null), START_MS).await.unwrap().unwrap();
            }
            mine
        }));
    }
    assert_each_job_claimed_once(tasks, 200).await;
    h.assert_all_succeeded_on_the_first_attempt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notice_deliverers_post_each_final_notice_once() {
    let h = harness(BTreeMap::new()).await;
    for n in 0..20 {
        let id = h.enqueue(NewJob { conversation_id: Some(h.conversation.clone()), ..job("echo", json!(n)) }).await;
        h.store.claim_job("w", START_MS, 30_000, &BTreeMap::new()).await.unwrap().unwrap();
        h.store.complete_job(id, "w", &json!(n), START_MS).await.unwrap().unwrap();
    }
    let mut tasks = Vec::new();
    for deliverer in 0..4 {
        let system = h.system.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("deliverer-{deliverer}");
            valor::jobs::deliver_final_notices(
                &system.store,
                system.outbox.as_ref(),
                system.clock.as_ref(),
                &owner,
                30_000,
            )
            .await
            .unwrap()
        }));
    }
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await.unwrap();
    }
    assert_eq!(delivered, 20);
    let texts = h.system_texts().await;
    assert_eq!(texts.len(), 20, "a notice was posted twice or lost");
}

/// An outbox standing in for Telegram: notices go elsewhere (recorded here),
/// never into the transcript; the first `failures` posts fail.
#[derive(Debug)]
struct ElsewhereOutbox {
    posted: std::sync::Mutex<Vec<String>>,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Outbox for ElsewhereOutbox {
    async fn post(&self, notice: Notice) -> Result<(), OutboxError> {
        let failed = self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failed {
            return Err(OutboxError::Storage(StorageError::database("the chat is unreachable")));
        }
        self.posted.lock().unwrap().push(notice.dedupe_key);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_runs_outcome_enters_the_transcript_once_whatever_the_deliverers_and_failed_posts() {
    let h = harness(BTreeMap::new()).await;
    let code_run = |n: i64| NewJob {
        conversation_id: Some(h.conversation.clone()),
        max_attempts: 1,
        ..job("claude_code", json!({"task": format!("task {n}"), "workspace": "shop"}))
    };
    for n in 0..6 {
        let id = h.enqueue(code_run(n)).await;
        h.store.claim_job("w", START_MS, 30_000, &BTreeMap::new()).await.unwrap().unwrap();
        if n == 5 {
            h.store.fail_job(id, "w", "Claude Code reported an error: the tests fail", None, START_MS).await.unwrap();
            continue;
        }
        let result = json!({"reply": "r", "summary": format!("Summary of run {n}."), "files_changed": [format!("f{n}.rs")],
            "cost_usd": 0.02, "turns": 3, "workspace": "shop", "executor": "claude_code"});
        h.store.complete_job(id, "w", &result, START_MS).await.unwrap().unwrap();
    }
    let outbox = Arc::new(ElsewhereOutbox { posted: Default::default(), failures: 3.into() });
    let deliver = |owner: String| {
        let (store, outbox, clock) = (h.store.clone(), outbox.clone(), h.clock.clone());
        tokio::spawn(async move {
            valor::jobs::deliver_final_notices(&store, outbox.as_ref(), clock.as_ref(), &owner, 30_000).await.unwrap()
        })
    };
    let mut delivered = 0;
    for task in (0..4).map(|n| deliver(format!("deliverer-{n}"))).collect::<Vec<_>>() {
        delivered += task.await.unwrap();
    }
    assert_eq!(delivered, 3, "three posts failed");
    // The failed posts' claims expire; the next passes deliver the rest.
    h.clock.advance(Duration::from_secs(31));
    for task in (0..4).map(|n| deliver(format!("again-{n}"))).collect::<Vec<_>>() {
        delivered += task.await.unwrap();
    }
    assert_eq!(delivered, 6);
    assert_eq!(outbox.posted.lock().unwrap().len(), 6, "each final notice posted once");
    let texts = h.system_texts().await;
    assert_eq!(texts.len(), 6, "one outcome per run in the transcript: {texts:#?}");
    for n in 0..5 {
        let summary = format!("Summary of run {n}.");
        assert_eq!(texts.iter().filter(|t| t.contains(&summary)).count(), 1, "{texts:#?}");
        assert!(texts.iter().any(|t| t.contains(&summary) && t.contains(&format!("Files changed: f{n}.rs"))));
    }
    assert_eq!(texts.iter().filter(|t| t.contains("the tests fail")).count(), 1, "{texts:#?}");
}

#[tokio::test]
async fn enqueue_jobs_inserts_a_batch_in_order_and_honours_idempotency_keys() {
    let h = harness(BTreeMap::new()).await;
    let keyed = NewJob { idempotency_key: Some("nightly".into()), ..job("echo", json!("first")) };
    let existing = h.store.enqueue_job(keyed.clone(), START_MS).await.unwrap().job.id;
    let batch = vec![job("echo", json!(1)), NewJob { payload: json!("again"), ..keyed }, job("echo", json!(3))];
    let enqueued = h.store.enqueue_jobs(batch, START_MS).await.unwrap();
    let created: Vec<bool> = enqueued.iter().map(|e| e.created).collect();
    assert_eq!(created, [true, false, true]);
    assert_eq!(enqueued[1].job.id, existing);
    assert_eq!(enqueued[1].job.payload, json!("first"));
    assert!(enqueued[0].job.id < enqueued[2].job.id);
    let invalid = h.store.enqueue_jobs(vec![job("echo", json!(4)), job(" ", json!(5))], START_MS).await;
    assert!(invalid.is_err(), "an empty kind rejects the whole batch");
    let all = h.store.list_jobs(&JobFilter { limit: 10, ..JobFilter::default() }).await.unwrap();
    assert_eq!(all.len(), 3, "nothing of the rejected batch was stored");
}

#[tokio::test]
async fn a_batch_claim_follows_claim_order_and_never_exceeds_a_kinds_free_slots() {
    let limits = BTreeMap::from([("echo".to_owned(), 2)]);
    let h = harness(limits.clone()).await;
    let echo_low = h.enqueue(job("echo", json!(1))).await;
    let flaky = h.enqueue(NewJob { payload: json!({"fail_times": 0}), ..job("flaky", json!(null)) }).await;
    let echo_high = h.enqueue(NewJob { priority: 9, ..job("echo", json!(2)) }).await;
    let echo_mid = h.enqueue(NewJob { priority: 5, ..job("echo", json!(3)) }).await;
    let later = h.enqueue(NewJob { priority: 99, run_at_ms: Some(START_MS + 1), ..job("flaky", json!(4)) }).await;
    let now = h.clock.now_ms();
    // One echo is already running elsewhere: one echo slot is left of two.
    let elsewhere = h.store.claim_job("other", now, 30_000, &limits).await.unwrap().unwrap();
    assert_eq!(elsewhere.id, echo_high);
    let batch = h.store.claim_jobs("w", now, 30_000, &limits, 10).await.unwrap();
    let ids: Vec<i64> = batch.iter().map(|j| j.id).collect();
    assert_eq!(ids, [echo_mid, flaky], "claim order, one echo slot, no job before its run_at");
    assert!(batch.iter().all(|j| j.status == JobStatus::Running
        && j.worker_id.as_deref() == Some("w")
        && j.lease_until_ms == Some(now + 30_000)
        && j.attempts == 1));
    assert!(h.store.claim_jobs("x", now, 30_000, &limits, 10).await.unwrap().is_empty(), "echo is at its limit");
    // `max` caps the batch; a finished echo frees a slot for the next claim.
    h.store.complete_job(echo_high, "other", &json!("done"), now).await.unwrap().unwrap();
    let next = h.store.claim_jobs("x", now, 30_000, &limits, 1).await.unwrap();
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), [echo_low]);
    assert_eq!(h.status(later).await, JobStatus::Queued);
}

#[tokio::test]
async fn batch_completion_writes_only_jobs_whose_lease_the_caller_holds() {
    let h = harness(BTreeMap::new()).await;
    let mine = h.enqueue(job("echo", json!(1))).await;
    let also_mine = h.enqueue(job("echo", json!(2))).await;
    let theirs = h.enqueue(job("echo", json!(3))).await;
    let now = h.clock.now_ms();
    assert_eq!(h.store.claim_jobs("w", now, 30_000, &BTreeMap::new(), 2).await.unwrap().len(), 2);
    h.store.claim_job("other", now, 30_000, &BTreeMap::new()).await.unwrap().unwrap();
    let results = [(mine, json!("text")), (also_mine, json!({"reply": [1, null]})), (theirs, json!("stolen"))];
    let written = h.store.complete_jobs("w", &results, now).await.unwrap();
    let mut ids: Vec<i64> = written.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [mine, also_mine]);
    assert_eq!(h.store.get_job(mine).await.unwrap().result, Some(json!("text")));
    let second = h.store.get_job(also_mine).await.unwrap();
    assert_eq!((second.status, second.result), (JobStatus::Succeeded, Some(json!({"reply": [1, null]}))));
    let other = h.store.get_job(theirs).await.unwrap();
    assert_eq!((other.status, other.worker_id.as_deref(), other.result), (JobStatus::Running, Some("other"), None));
    assert!(h.store.complete_jobs("w", &[], now).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_worker_batch_runs_every_claimed_job_and_completes_them_together() {
    let h = harness(BTreeMap::new()).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(h.enqueue(NewJob { conversation_id: Some(h.conversation.clone()), ..job("echo", json!(n)) }).await);
    }
    let failing = h.enqueue(NewJob { max_attempts: 1, ..job("flaky", json!({"fail_times": 1})) }).await;
    let worker = h.system.worker("w", CancellationToken::new());
    let outcomes = worker.try_execute_batch(16).await.unwrap();
    let mut by_job: Vec<(i64, OutcomeStatus)> = outcomes.into_iter().map(|o| (o.job_id, o.status)).collect();
    by_job.sort_by_key(|(id, _)| *id);
    assert_eq!(by_job.len(), 6);
    assert!(by_job[..5].iter().all(|(_, status)| *status == OutcomeStatus::Succeeded), "{by_job:?}");
    assert!(matches!(by_job[5], (id, OutcomeStatus::Failed { .. }) if id == failing));
    for (n, id) in ids.iter().enumerate() {
        let done = h.store.get_job(*id).await.unwrap();
        assert_eq!((done.status, done.result, done.worker_id), (JobStatus::Succeeded, Some(json!(n)), None));
    }
    assert_eq!(h.system_texts().await.len(), 5, "one final notice per finished job with a conversation");
    assert!(worker.try_execute_batch(16).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_hands_the_rest_of_its_batch_back_for_other_workers() {
    let mut h = harness(BTreeMap::new()).await;
    let slow = h.enqueue(NewJob { priority: 1, ..job("blocking", json!({})) }).await;
    let quick = h.enqueue(job("echo", json!("quick"))).await;
    let slow_worker = h.system.worker("slow", CancellationToken::new());
    let running = tokio::spawn(async move { slow_worker.try_execute_batch(8).await });
    assert_eq!(h.started.recv().await, Some(slow));
    // The slow worker claimed both; once its job is slow it gives `quick` back.
    let other = h.system.worker("other", CancellationToken::new());
    let mut taken = None;
    for _ in 0..500 {
        if let Some(outcome) = other.try_execute_next().await.unwrap() {
            taken = Some(outcome);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let taken = taken.expect("the waiting job was never handed back");
    assert_eq!((taken.job_id, taken.status), (quick, OutcomeStatus::Succeeded));
    assert_eq!(h.store.get_job(quick).await.unwrap().attempts, 1, "the handed-back claim counted as an attempt");
    h.store.request_job_cancel(slow, h.clock.now_ms()).await.unwrap();
    let outcomes = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();
    let statuses: Vec<(i64, OutcomeStatus)> = outcomes.into_iter().map(|o| (o.job_id, o.status)).collect();
    assert!(statuses.contains(&(quick, OutcomeStatus::Released)), "{statuses:?}");
    assert!(statuses.contains(&(slow, OutcomeStatus::Cancelled)), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_claimers_in_two_pools_never_hold_the_same_job() {
    let limits = BTreeMap::from([("echo".to_owned(), 5)]);
    let h = harness(limits.clone()).await;
    for n in 0..300 {
        h.enqueue(job("echo", json!(n))).await;
    }
    let other_process = Store::open(&h._dir.path().join("valor.db")).await.unwrap();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let store = if worker % 2 == 0 { h.store.clone() } else { other_process.clone() };
        let (limits, peak) = (limits.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("w{worker}");
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_jobs(&name, START_MS, 30_000, &limits, 4).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                let running = store.count_jobs_by_status().await.unwrap()["running"];
                peak.fetch_max(usize::try_from(running).unwrap(), Ordering::SeqCst);
                let results: Vec<(i64, Value)> = batch.iter().map(|j| (j.id, json!(null))).collect();
                assert_eq!(store.complete_jobs(&name, &results, START_MS).await.unwrap().len(), batch.len());
                mine.extend(batch.iter().map(|j| j.id));
            }
        }));
    }
    assert_each_job_claimed_once(tasks, 300).await;
    assert!(peak.load(Ordering::SeqCst) <= 5, "more jobs of the kind ran than its limit");
    h.assert_all_succeeded_on_the_first_attempt().await;
}

#[tokio::test]
async fn an_idle_worker_starts_a_new_job_at_once_without_polling() {
    let mut h = harness(BTreeMap::new()).await;
    h.system.config.poll_interval = Duration::from_secs(60); // the safety net never fires here
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(h.system.worker("idle", shutdown.clone()).run(false));
    tokio::time::sleep(Duration::from_millis(300)).await; // looked, found nothing, asleep
    let enqueued_at = std::time::Instant::now();
    let id = h.store.enqueue_job(job("blocking", json!({})), h.clock.now_ms()).await.unwrap().job.id;
    let started = tokio::time::timeout(Duration::from_secs(10), h.started.recv()).await.unwrap().unwrap();
    assert_eq!(started, id);
    assert!(enqueued_at.elapsed() < Duration::from_secs(1), "started {:?} after enqueueing", enqueued_at.elapsed());
    shutdown.cancel();
    worker.await.unwrap();
}
