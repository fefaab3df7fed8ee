//! Queue throughput on a SQLite file: enqueue N jobs, then W concurrent
//! workers claim and complete them until the queue is empty. Prints jobs/s
//! for each phase and for the whole enqueue + claim + complete cycle, twice:
//! "single" (one transaction per state change: `enqueue_job`, `claim_job`,
//! `complete_job`) and "batched" (`enqueue_jobs` in batches of 500, then
//! `complete_job_and_claim_next`: one commit per job on the worker side).
//!
//! `cargo run --release --example queue_bench -- [JOBS] [WORKERS]` (defaults 20000 2)
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use valor::storage::{NewJob, Store, wall_clock_ms};

const BATCH: usize = 500;

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
        for first in (0..jobs).step_by(BATCH) {
            let batch = (first..(first + BATCH).min(jobs)).map(new_job).collect();
            store.enqueue_jobs(batch, wall_clock_ms()).await.unwrap();
        }
    } else {
        for n in 0..jobs {
            store.enqueue_job(new_job(n), wall_clock_ms()).await.unwrap();
        }
    }
    started.elapsed()
}

async fn drain(store: &Store, workers: usize, batched: bool) -> (usize, Duration) {
    let limits = BTreeMap::from([("bench".to_owned(), 1000)]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (store, limits) = (store.clone(), limits.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("bench-{worker}");
            let mut done = 0usize;
            let mut next = store.claim_job(&name, wall_clock_ms(), 60_000, &limits).await.unwrap();
            while let Some(job) = next {
                let result = json!({"ok": true});
                next = if batched {
                    let (completed, next) = store
                        .complete_job_and_claim_next(job.id, &name, &result, wall_clock_ms(), 60_000, &limits)
                        .await
                        .unwrap();
                    completed.unwrap();
                    next
                } else {
                    store.complete_job(job.id, &name, &result, wall_clock_ms()).await.unwrap().unwrap();
                    store.claim_job(&name, wall_clock_ms(), 60_000, &limits).await.unwrap()
                };
                done += 1;
            }
            done
        }));
    }
    let mut completed = 0;
    for task in tasks {
        completed += task.await.unwrap();
    }
    (completed, started.elapsed())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map(|a| a.parse().expect("JOBS must be a number")).unwrap_or(20_000);
    let workers: usize = args.next().map(|a| a.parse().expect("WORKERS must be a number")).unwrap_or(2);
    println!("jobs: {jobs}, workers: {workers}, SQLite WAL synchronous=NORMAL (file in a temp dir)");
    let rate = |count: usize, time: Duration| count as f64 / time.as_secs_f64();
    for (label, batched) in [("single", false), ("batched", true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
        let enqueue_time = enqueue(&store, jobs, batched).await;
        let (completed, drain_time) = drain(&store, workers, batched).await;
        assert_eq!(completed, jobs, "every job must be completed exactly once");
        let total = enqueue_time + drain_time;
        println!("[{label}]");
        println!("  enqueue:          {:>9.0} jobs/s ({:.2} s)", rate(jobs, enqueue_time), enqueue_time.as_secs_f64());
        println!("  claim + complete: {:>9.0} jobs/s ({:.2} s)", rate(jobs, drain_time), drain_time.as_secs_f64());
        println!("  full cycle:       {:>9.0} jobs/s ({:.2} s)", rate(jobs, total), total.as_secs_f64());
        store.close().await;
    }
}
