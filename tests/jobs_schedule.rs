//! Cron schedules with a manual clock: next-run computation, one job per
//! slot, no double run across a restart or two processes on one database,
//! and missed slots caught up once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use valor::jobs::{Clock, ManualClock, ScheduleSpec, Scheduler, next_run_after};
use valor::storage::{JobFilter, Store};

/// 2026-01-05 10:30:00 UTC, a Monday.
const MONDAY_1030: i64 = 1_767_609_000_000;
const HOUR: i64 = 3_600_000;

fn hourly() -> ScheduleSpec {
    ScheduleSpec {
        name: "hourly".into(),
        expression: "0 0 * * * *".into(),
        schedule: cron::Schedule::from_str("0 0 * * * *").unwrap(),
        timezone: Tz::UTC,
        kind: "report".into(),
        payload: serde_json::json!({"what": "hourly"}),
        conversation: None,
        priority: 0,
    }
}

async fn job_count(store: &Store) -> usize {
    store.list_jobs(&JobFilter { limit: 100, ..JobFilter::default() }).await.unwrap().len()
}

#[test]
fn the_next_run_is_the_first_slot_strictly_after_the_given_time() {
    let schedule = cron::Schedule::from_str("0 0 * * * *").unwrap();
    assert_eq!(next_run_after(&schedule, Tz::UTC, MONDAY_1030), Some(MONDAY_1030 + HOUR / 2));
    assert_eq!(next_run_after(&schedule, Tz::UTC, MONDAY_1030 + HOUR / 2), Some(MONDAY_1030 + HOUR / 2 + HOUR));
    let weekdays = cron::Schedule::from_str("0 0 7 * * Mon-Fri").unwrap();
    // Friday 2026-01-09 08:00 → Monday 2026-01-12 07:00.
    let (friday_0800, monday_0700) = (1_767_945_600_000, 1_768_201_200_000);
    assert_eq!(next_run_after(&weekdays, Tz::UTC, friday_0800), Some(monday_0700));
}

// Europe/Berlin in 2026: summer time from 2026-03-29 02:00 CET (clocks jump to
// 03:00) to 2026-10-25 03:00 CEST (clocks go back to 02:00). Instants are UTC.
const BERLIN: Tz = Tz::Europe__Berlin;

#[test]
fn a_daily_slot_keeps_its_wall_clock_time_across_the_spring_change() {
    let nine = cron::Schedule::from_str("0 0 9 * * *").unwrap();
    // 2026-03-28 09:00 CET = 08:00Z; the next day 09:00 CEST = 07:00Z: 23 hours later.
    let (saturday_0900, sunday_0900) = (1_774_684_800_000, 1_774_767_600_000);
    assert_eq!(next_run_after(&nine, BERLIN, saturday_0900), Some(sunday_0900));
    assert_eq!(next_run_after(&nine, BERLIN, saturday_0900 - 1), Some(saturday_0900));
}

#[test]
fn a_slot_skipped_by_the_spring_change_runs_once_an_hour_later() {
    let half_two = cron::Schedule::from_str("0 30 2 * * *").unwrap();
    // 2026-03-28 02:30 CET = 01:30Z. 2026-03-29 02:30 does not exist: it runs at
    // 03:30 CEST = 01:30Z; 2026-03-30 02:30 CEST = 00:30Z.
    let (saturday, sunday, monday) = (1_774_661_400_000, 1_774_747_800_000, 1_774_830_600_000);
    assert_eq!(next_run_after(&half_two, BERLIN, saturday), Some(sunday));
    assert_eq!(next_run_after(&half_two, BERLIN, sunday), Some(monday));
}

#[test]
fn a_slot_repeated_by_the_autumn_change_runs_once() {
    let half_two = cron::Schedule::from_str("0 30 2 * * *").unwrap();
    // 2026-10-25 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET).
    let (saturday, first_pass, monday) = (1_792_801_800_000, 1_792_888_200_000, 1_792_978_200_000);
    assert_eq!(next_run_after(&half_two, BERLIN, saturday), Some(first_pass));
    assert_eq!(next_run_after(&half_two, BERLIN, first_pass), Some(monday), "ran twice on the long night");
    // Hourly slots in the repeated hour: 02:00 CEST, then 03:00 CET (02:00 CET is the same wall-clock slot).
    let hourly = cron::Schedule::from_str("0 0 * * * *").unwrap();
    let two_cest = first_pass - HOUR / 2;
    assert_eq!(next_run_after(&hourly, BERLIN, two_cest), Some(two_cest + 2 * HOUR));
}

#[tokio::test]
async fn the_scheduler_persists_next_runs_computed_in_the_schedules_zone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    // 2026-03-28 10:00 CET; a daily 09:00 Berlin schedule is due next on Sunday at 07:00Z.
    let (saturday_1000, sunday_0900) = (1_774_684_800_000 + HOUR, 1_774_767_600_000);
    let clock = Arc::new(ManualClock::starting_at(saturday_1000));
    let spec = ScheduleSpec {
        name: "brief".into(),
        expression: "0 0 9 * * *".into(),
        schedule: cron::Schedule::from_str("0 0 9 * * *").unwrap(),
        timezone: BERLIN,
        ..hourly()
    };
    let scheduler = Scheduler::new(store.clone(), clock.clone(), vec![spec], 3);
    assert!(scheduler.try_run_due().await.unwrap().is_empty());
    assert_eq!(store.get_schedule("brief").await.unwrap().next_run_at_ms, sunday_0900);
    clock.set(sunday_0900);
    assert_eq!(scheduler.try_run_due().await.unwrap().len(), 1);
    // Monday 09:00 CEST = 07:00Z, 24 hours later.
    assert_eq!(store.get_schedule("brief").await.unwrap().next_run_at_ms, sunday_0900 + 24 * HOUR);
}

#[tokio::test]
async fn a_due_slot_enqueues_exactly_one_job_and_a_restart_does_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let clock = Arc::new(ManualClock::starting_at(MONDAY_1030));
    let scheduler = Scheduler::new(store.clone(), clock.clone(), vec![hourly()], 3);
    assert!(scheduler.try_run_due().await.unwrap().is_empty(), "ran before its first slot");
    assert_eq!(store.get_schedule("hourly").await.unwrap().next_run_at_ms, MONDAY_1030 + HOUR / 2);

    clock.set(MONDAY_1030 + HOUR / 2);
    let created = scheduler.try_run_due().await.unwrap();
    assert_eq!(created.len(), 1);
    let job = store.get_job(created[0]).await.unwrap();
    assert_eq!((job.kind.as_str(), &job.payload), ("report", &serde_json::json!({"what": "hourly"})));
    assert!(scheduler.try_run_due().await.unwrap().is_empty());

    // A restart: a new scheduler (same database) at the same instant runs nothing.
    let restarted = Scheduler::new(store.clone(), clock.clone(), vec![hourly()], 3);
    assert!(restarted.try_run_due().await.unwrap().is_empty());
    let state = store.get_schedule("hourly").await.unwrap();
    assert_eq!((state.next_run_at_ms, state.last_job_id), (MONDAY_1030 + HOUR / 2 + HOUR, Some(job.id)));
    assert_eq!(job_count(&store).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_database_run_a_slot_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valor.db");
    let clock = Arc::new(ManualClock::starting_at(MONDAY_1030));
    let first_store = Store::open(&path).await.unwrap();
    let second_store = Store::open(&path).await.unwrap();
    let first = Scheduler::new(first_store.clone(), clock.clone(), vec![hourly()], 3);
    let second = Scheduler::new(second_store, clock.clone(), vec![hourly()], 3);
    first.try_run_due().await.unwrap();
    for slot in 1..=20 {
        clock.set(MONDAY_1030 + HOUR / 2 + (slot - 1) * HOUR);
        let (a, b) = tokio::join!(first.try_run_due(), second.try_run_due());
        let created = a.unwrap().len() + b.unwrap().len();
        assert_eq!(created, 1, "slot {slot} ran {created} times");
    }
    assert_eq!(job_count(&first_store).await, 20);
}

#[tokio::test]
async fn slots_missed_while_down_are_caught_up_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let clock = Arc::new(ManualClock::starting_at(MONDAY_1030));
    let scheduler = Scheduler::new(store.clone(), clock.clone(), vec![hourly()], 3);
    scheduler.try_run_due().await.unwrap();
    // Down for five slots.
    clock.advance(Duration::from_secs(5 * 3600 + 60));
    assert_eq!(scheduler.try_run_due().await.unwrap().len(), 1);
    assert!(scheduler.try_run_due().await.unwrap().is_empty());
    let state = store.get_schedule("hourly").await.unwrap();
    assert!(state.next_run_at_ms > clock.now_ms(), "the next run must be in the future");
    assert_eq!(state.next_run_at_ms, MONDAY_1030 + HOUR / 2 + 5 * HOUR);
    assert_eq!(job_count(&store).await, 1);
}

#[test]
fn an_invalid_cron_expression_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valor.toml");
    std::fs::write(&path, "[[schedule]]\nname = \"bad\"\ncron = \"every monday\"\n").unwrap();
    let error =
        valor::config::load(Some(&path), &valor::config::EnvSource::from_pairs::<String, String>([])).unwrap_err();
    assert!(error.to_string().contains("schedule[0].cron"), "{error}");
}
