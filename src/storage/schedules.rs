//! Persisted state of cron schedules: next and last run. The only write that
//! matters is [`Store::advance_schedule`], a compare-and-swap on
//! `next_run_at_ms`, so two processes never both advance one slot.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::rows::sql_error;
use super::{StorageResult, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub name: String,
    pub cron: String,
    pub next_run_at_ms: i64,
    pub last_run_at_ms: Option<i64>,
    pub last_job_id: Option<i64>,
    pub updated_at_ms: i64,
}

fn schedule_row(row: &sqlx::sqlite::SqliteRow) -> StorageResult<ScheduleState> {
    let read = |error| sql_error("schedule row", error);
    Ok(ScheduleState {
        name: row.try_get("name").map_err(read)?,
        cron: row.try_get("cron").map_err(read)?,
        next_run_at_ms: row.try_get("next_run_at_ms").map_err(read)?,
        last_run_at_ms: row.try_get("last_run_at_ms").map_err(read)?,
        last_job_id: row.try_get("last_job_id").map_err(read)?,
        updated_at_ms: row.try_get("updated_at_ms").map_err(read)?,
    })
}

impl Store {
    /// Insert a schedule, or keep the stored next run when its cron
    /// expression is unchanged (a changed expression takes `next_run_at_ms`).
    pub async fn upsert_schedule(
        &self,
        name: &str,
        cron: &str,
        next_run_at_ms: i64,
        now_ms: i64,
    ) -> StorageResult<ScheduleState> {
        let row = sqlx::query(
            "INSERT INTO schedules (name, cron, next_run_at_ms, last_run_at_ms, last_job_id, updated_at_ms) \
             VALUES ($1, $2, $3, NULL, NULL, $4) \
             ON CONFLICT (name) DO UPDATE SET \
                 next_run_at_ms = CASE WHEN schedules.cron = excluded.cron THEN schedules.next_run_at_ms \
                                       ELSE excluded.next_run_at_ms END, \
                 cron = excluded.cron, updated_at_ms = excluded.updated_at_ms \
             RETURNING name, cron, next_run_at_ms, last_run_at_ms, last_job_id, updated_at_ms",
        )
        .bind(name)
        .bind(cron)
        .bind(next_run_at_ms)
        .bind(now_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|error| sql_error("upsert schedule", error))?;
        schedule_row(&row)
    }

    /// NotFound for an unknown name.
    pub async fn get_schedule(&self, name: &str) -> StorageResult<ScheduleState> {
        let row = sqlx::query(
            "SELECT name, cron, next_run_at_ms, last_run_at_ms, last_job_id, updated_at_ms \
             FROM schedules WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&self.readers)
        .await
        .map_err(|error| sql_error(&format!("schedule {name}"), error))?;
        schedule_row(&row)
    }

    /// Move the schedule from `expected_next_ms` to `new_next_ms`; false when
    /// another process already moved it (compare-and-swap).
    pub async fn advance_schedule(
        &self,
        name: &str,
        expected_next_ms: i64,
        new_next_ms: i64,
        job_id: i64,
        now_ms: i64,
    ) -> StorageResult<bool> {
        let updated = sqlx::query(
            "UPDATE schedules SET next_run_at_ms = $3, last_run_at_ms = $5, last_job_id = $4, updated_at_ms = $5 \
             WHERE name = $1 AND next_run_at_ms = $2",
        )
        .bind(name)
        .bind(expected_next_ms)
        .bind(new_next_ms)
        .bind(job_id)
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("advance schedule", error))?;
        Ok(updated.rows_affected() == 1)
    }
}
