//! Daydream's tables (migration 0005): child processes valor started (pid,
//! command, start time; since 0009 also the child's and its owner's identity
//! — so orphans of a killed valor and stale ones can be stopped), one record
//! per daydream session with its phases, and the 7-day job statistics the
//! context phase reads.
//!
//! Invariants: a session record is written once, when the session ended
//! (completed, skipped or failed); phases are stored as JSON so adding a
//! field to a phase needs no migration.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::sql_error;
use super::{StorageError, StorageResult, Store};

/// A process valor started and has not yet seen end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildProcess {
    pub pid: i64,
    pub command: String,
    pub started_at_ms: i64,
    /// The child's start time (clock ticks since boot, `/proc/<pid>/stat` field 22), so a reused pid
    /// is told apart. `None`: unknown (rows from before migration 0009, or not on Linux).
    pub start_ticks: Option<i64>,
    /// The valor process that started it (pid and start ticks); `None`: unknown.
    pub owner_pid: Option<i64>,
    pub owner_start_ticks: Option<i64>,
}

/// One phase of a daydream session as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaydreamPhase {
    /// readiness | cleanup | context | analysis | output | record
    pub name: String,
    /// ok | skipped | failed
    pub status: String,
    pub duration_ms: i64,
    pub detail: String,
}

/// A finished daydream session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaydreamSession {
    pub id: i64,
    pub trigger: String,
    /// completed | skipped | failed
    pub outcome: String,
    pub reason: Option<String>,
    pub phases: Vec<DaydreamPhase>,
    pub insight_files: Vec<String>,
    pub summary: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// Outcome counts and the most frequent errors of one job kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKindStats {
    pub kind: String,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

fn session_row(row: &SqliteRow) -> StorageResult<DaydreamSession> {
    let read = |error| sql_error("daydream session row", error);
    let phases: String = row.try_get("phases").map_err(read)?;
    let files: String = row.try_get("insight_files").map_err(read)?;
    let json_error = |error: serde_json::Error| StorageError::Invalid(format!("daydream session JSON: {error}"));
    Ok(DaydreamSession {
        id: row.try_get("id").map_err(read)?,
        trigger: row.try_get("trigger").map_err(read)?,
        outcome: row.try_get("outcome").map_err(read)?,
        reason: row.try_get("reason").map_err(read)?,
        phases: serde_json::from_str(&phases).map_err(json_error)?,
        insight_files: serde_json::from_str(&files).map_err(json_error)?,
        summary: row.try_get("summary").map_err(read)?,
        started_at_ms: row.try_get("started_at_ms").map_err(read)?,
        finished_at_ms: row.try_get("finished_at_ms").map_err(read)?,
    })
}

impl Store {
    /// Remember a child process valor started (a reused pid replaces the old row).
    pub async fn register_child_process(&self, child: &ChildProcess) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO child_processes (pid, command, started_at_ms, start_ticks, owner_pid, owner_start_ticks) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (pid) DO UPDATE SET command = excluded.command, started_at_ms = excluded.started_at_ms, \
                 start_ticks = excluded.start_ticks, owner_pid = excluded.owner_pid, \
                 owner_start_ticks = excluded.owner_start_ticks",
        )
        .bind(child.pid)
        .bind(&child.command)
        .bind(child.started_at_ms)
        .bind(child.start_ticks)
        .bind(child.owner_pid)
        .bind(child.owner_start_ticks)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("register child process", error))?;
        Ok(())
    }

    pub async fn child_processes(&self) -> StorageResult<Vec<ChildProcess>> {
        let rows = sqlx::query(
            "SELECT pid, command, started_at_ms, start_ticks, owner_pid, owner_start_ticks FROM child_processes \
             ORDER BY started_at_ms, pid",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("child processes", error))?;
        let read = |error| sql_error("child process row", error);
        rows.iter()
            .map(|row| {
                Ok(ChildProcess {
                    pid: row.try_get("pid").map_err(read)?,
                    command: row.try_get("command").map_err(read)?,
                    started_at_ms: row.try_get("started_at_ms").map_err(read)?,
                    start_ticks: row.try_get("start_ticks").map_err(read)?,
                    owner_pid: row.try_get("owner_pid").map_err(read)?,
                    owner_start_ticks: row.try_get("owner_start_ticks").map_err(read)?,
                })
            })
            .collect()
    }

    pub async fn remove_child_process(&self, pid: i64) -> StorageResult<()> {
        sqlx::query("DELETE FROM child_processes WHERE pid = $1")
            .bind(pid)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("remove child process", error))?;
        Ok(())
    }

    /// Store a finished session; returns it with its id.
    pub async fn insert_daydream_session(&self, session: &DaydreamSession) -> StorageResult<DaydreamSession> {
        let row = sqlx::query(
            "INSERT INTO daydream_sessions \
                 (trigger, outcome, reason, phases, insight_files, summary, started_at_ms, finished_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id, trigger, outcome, reason, phases, insight_files, summary, started_at_ms, finished_at_ms",
        )
        .bind(&session.trigger)
        .bind(&session.outcome)
        .bind(&session.reason)
        .bind(json_text(&session.phases)?)
        .bind(json_text(&session.insight_files)?)
        .bind(&session.summary)
        .bind(session.started_at_ms)
        .bind(session.finished_at_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|error| sql_error("insert daydream session", error))?;
        session_row(&row)
    }

    /// Newest first.
    pub async fn list_daydream_sessions(&self, limit: u32) -> StorageResult<Vec<DaydreamSession>> {
        let rows = sqlx::query(
            "SELECT id, trigger, outcome, reason, phases, insight_files, summary, started_at_ms, finished_at_ms \
             FROM daydream_sessions ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list daydream sessions", error))?;
        rows.iter().map(session_row).collect()
    }

    /// Jobs waiting to run (queued and due or not).
    pub async fn count_queued_jobs(&self) -> StorageResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error("count queued jobs", error))?;
        row.try_get("n").map_err(|error| sql_error("count queued jobs", error))
    }

    /// Outcomes per kind of jobs finished since `since_ms`, busiest kind first.
    pub async fn job_stats_since(&self, since_ms: i64) -> StorageResult<Vec<JobKindStats>> {
        let rows = sqlx::query(
            "SELECT kind, \
                    SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded, \
                    SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, \
                    SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled \
             FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at_ms >= $1 \
             GROUP BY kind ORDER BY COUNT(*) DESC, kind",
        )
        .bind(since_ms)
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("job stats", error))?;
        let read = |error| sql_error("job stats row", error);
        rows.iter()
            .map(|row| {
                Ok(JobKindStats {
                    kind: row.try_get("kind").map_err(read)?,
                    succeeded: row.try_get("succeeded").map_err(read)?,
                    failed: row.try_get("failed").map_err(read)?,
                    cancelled: row.try_get("cancelled").map_err(read)?,
                })
            })
            .collect()
    }

    /// The most frequent errors of jobs that failed since `since_ms`: (kind, error, count).
    pub async fn job_error_patterns_since(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> StorageResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, COALESCE(error, 'unknown error') AS error, COUNT(*) AS n FROM jobs \
             WHERE status = 'failed' AND finished_at_ms >= $1 \
             GROUP BY kind, COALESCE(error, 'unknown error') ORDER BY n DESC, kind LIMIT $2",
        )
        .bind(since_ms)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("job error patterns", error))?;
        let read = |error| sql_error("job error pattern row", error);
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("kind").map_err(read)?,
                    row.try_get("error").map_err(read)?,
                    row.try_get("n").map_err(read)?,
                ))
            })
            .collect()
    }
}

/// JSON text of a session's list column.
fn json_text<T: Serialize>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|error| StorageError::Invalid(format!("daydream session JSON: {error}")))
}
