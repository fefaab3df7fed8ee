//! Queue throughput on a SQLite file: enqueue N jobs, then W concurrent
//! workers claim, run and complete them until the queue is empty. Prints
//! jobs/s for each phase and for the whole enqueue + claim + complete cycle,
//! twice:
//! - "single": one statement per state change through `Store` only
//!   (`enqueue_job`, `claim_job`, `complete_job`), the floor of the queue;
//! - "worker": what `valor serve` does: `enqueue_jobs` in batches of 500,
//!   then real `Worker`s (a no-op handler, the lease keeper, final-notice
//!   pass) each claiming up to `claim_batch` jobs per statement and
//!   completing them in one statement (`Worker::try_execute_batch`).
//!
//! `cargo run --release --example queue_bench -- [JOBS] [WORKERS] [CLAIM_BATCH]` (defaults 20000 2 64)
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use valor::agent::outbox::TranscriptOutbox;
use valor::config::JobsSettings;
use valor::jobs::{HandlerRegistry, JobContext, JobError, JobHandler, JobSystem, SystemClock, WorkerConfig};
use valor::storage::{NewJob, Store, wall_clock_ms};

const ENQUEUE_BATCH: usize = 500;

struct Noop;
#[async_trait::async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        "bench"
    }
    async fn run(&self, _: &JobContext, _: Value) -> Result<Value, JobError> {
        Ok(json!({"ok": true}))
    }
}

fn new_job(n: usize) -> NewJob {
    NewJob {
        kind: "bench".into(),
        payload: json!({"n": n}),
        priority: (n % 3) as i64,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: None,
    }
}

async fn enqueue(store: &Store, jobs: usize, batched: bool) -> Duration {
    let started = Instant::now();
    if batched {
        for first in (0..jobs).step_by(ENQUEUE_BATCH) {
            let batch = (first..(first + ENQUEUE_BATCH).min(jobs)).map(new_job).collect();
            store.enqueue_jobs(batch, wall_clock_ms()).await.unwrap();
        }
    } else {
        for n in 0..jobs {
            store.enqueue_job(new_job(n), wall_clock_ms()).await.unwrap();
        }
    }
    started.elapsed()
}

/// One statement per claim and per completion, through `Store` only.
async fn drain_single(store: &Store, workers: usize, limits: &BTreeMap<String, u32>) -> usize {
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (store, limits) = (store.clone(), limits.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("bench-{worker}");
            let mut done = 0usize;
            while let Some(job) = store.claim_job(&name, wall_clock_ms(), 60_000, &limits).await.unwrap() {
                store.complete_job(job.id, &name, &json!({"ok": true}), wall_clock_ms()).await.unwrap().unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut completed = 0;
    for task in tasks {
        completed += task.await.unwrap();
    }
    completed
}

/// Real workers, each claiming up to `claim_batch` jobs per statement.
async fn drain_workers(store: &Store, workers: usize, limits: &BTreeMap<String, u32>, claim_batch: u32) -> usize {
    let mut handlers = HandlerRegistry::default();
    handlers.register(Arc::new(Noop));
    let system = JobSystem {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        handlers: Arc::new(handlers),
        outbox: Arc::new(TranscriptOutbox::new(store.clone())),
        config: WorkerConfig {
            kind_limits: limits.clone(),
            claim_batch,
            ..WorkerConfig::from_settings(&JobsSettings::default())
        },
    };
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let worker = system.worker(&format!("bench-{worker}"), CancellationToken::new());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let outcomes = worker.try_execute_batch(claim_batch).await.unwrap();
                if outcomes.is_empty() {
                    return done;
                }
                assert!(outcomes.iter().all(|o| o.status == valor::jobs::OutcomeStatus::Succeeded));
                done += outcomes.len();
            }
        }));
    }
    let mut completed = 0;
    for task in tasks {
        completed += task.await.unwrap();
    }
    completed
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map(|a| a.parse().expect("JOBS must be a number")).unwrap_or(20_000);
    let workers: usize = args.next().map(|a| a.parse().expect("WORKERS must be a number")).unwrap_or(2);
    let claim_batch: u32 = args.next().map(|a| a.parse().expect("CLAIM_BATCH must be a number")).unwrap_or(64);
    println!("jobs: {jobs}, workers: {workers}, claim batch: {claim_batch}, SQLite WAL synchronous=NORMAL");
    let limits = BTreeMap::from([("bench".to_owned(), 1000)]);
    let rate = |count: usize, time: Duration| count as f64 / time.as_secs_f64();
    for (label, real_workers) in [("single", false), ("worker", true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
        let enqueue_time = enqueue(&store, jobs, real_workers).await;
        let started = Instant::now();
        let completed = if real_workers {
            drain_workers(&store, workers, &limits, claim_batch).await
        } else {
            drain_single(&store, workers, &limits).await
        };
        let drain_time = started.elapsed();
        assert_eq!(completed, jobs, "every job must be completed exactly once");
        let total = enqueue_time + drain_time;
        println!("[{label}]");
        println!("  enqueue:          {:>9.0} jobs/s ({:.2} s)", rate(jobs, enqueue_time), enqueue_time.as_secs_f64());
        println!("  claim + complete: {:>9.0} jobs/s ({:.2} s)", rate(jobs, drain_time), drain_time.as_secs_f64());
        println!("  full cycle:       {:>9.0} jobs/s ({:.2} s)", rate(jobs, total), total.as_secs_f64());
        store.close().await;
    }
}
