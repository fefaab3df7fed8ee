//! Queue throughput on a SQLite file: enqueue N jobs, then W concurrent
//! workers claim and complete them until the queue is empty. Prints jobs/s
//! for each phase and for the whole enqueue + claim + complete cycle.
//!
//! `cargo run --release --example queue_bench -- [JOBS] [WORKERS]` (defaults 20000 2)
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use valor::storage::{NewJob, Store, wall_clock_ms};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map(|a| a.parse().expect("JOBS must be a number")).unwrap_or(20_000);
    let workers: usize = args.next().map(|a| a.parse().expect("WORKERS must be a number")).unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
    let limits = BTreeMap::from([("bench".to_owned(), 1000)]);

    let started = Instant::now();
    for n in 0..jobs {
        let job = NewJob {
            kind: "bench".into(),
            payload: json!({"n": n}),
            priority: (n % 3) as i64,
            run_at_ms: None,
            max_attempts: 3,
            conversation_id: None,
            idempotency_key: None,
        };
        store.enqueue_job(job, wall_clock_ms()).await.unwrap();
    }
    let enqueue = started.elapsed();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let store = store.clone();
        let limits = limits.clone();
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
    let drain = started.elapsed();
    assert_eq!(completed, jobs, "every job must be completed exactly once");

    let rate = |count: usize, seconds: f64| count as f64 / seconds;
    println!("jobs: {jobs}, workers: {workers}, SQLite WAL synchronous=NORMAL (file in a temp dir)");
    println!("enqueue:          {:>9.0} jobs/s ({:.2} s)", rate(jobs, enqueue.as_secs_f64()), enqueue.as_secs_f64());
    println!("claim + complete: {:>9.0} jobs/s ({:.2} s)", rate(jobs, drain.as_secs_f64()), drain.as_secs_f64());
    let total = enqueue + drain;
    println!("full cycle:       {:>9.0} jobs/s ({:.2} s)", rate(jobs, total.as_secs_f64()), total.as_secs_f64());
    store.close().await;
}
