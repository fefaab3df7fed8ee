//! Queue operations on many jobs per statement, the fast path of the
//! workers: claim a batch, renew every lease a worker holds, complete a batch,
//! hand a batch back; and enqueue many jobs in one transaction.
//!
//! Invariants: each claim, renewal, completion and release is a single
//! `UPDATE … RETURNING` statement, so it is atomic on its own (SQLite takes
//! the write lock before the inner SELECT runs; PostgreSQL needs
//! `FOR UPDATE SKIP LOCKED` in the candidate SELECT), and two workers never
//! hold one job. Claims follow claim order (priority, run-at, id) and never
//! take more jobs of a kind than its limit leaves free, counting the jobs
//! running with a live lease. Writes for a held job are conditioned on the
//! caller still holding the lease (`worker_id` and `status = 'running'`).

use std::collections::BTreeMap;

use super::jobs::{check_kind, column, enqueue_on, job_columns, job_row, to_json_text};
use super::rows::sql_error;
use super::{Enqueued, Job, NewJob, StorageError, StorageResult, Store};

/// Claim up to $5 due jobs (binds: worker, now, lease_ms, kind limits JSON, max).
/// `running` counts live leases per kind once; `candidates` walks the
/// claim-order index, skipping kinds at their limit, and keeps the first $5;
/// the update drops a candidate whose kind has fewer free slots than
/// candidates of that kind before it. SQLite-only: json_extract reads the
/// per-kind limit (PostgreSQL: `($4::jsonb ->> j.kind)::bigint`).
const CLAIM_BATCH_SQL: &str = concat!(
    "WITH running AS MATERIALIZED ( \
         SELECT kind, COUNT(*) AS n FROM jobs \
         WHERE status = 'running' AND lease_until_ms >= $2 GROUP BY kind), \
     candidates AS ( \
         SELECT j.id, j.kind, j.priority, j.run_at_ms, \
                COALESCE(json_extract($4, '$.\"' || j.kind || '\"'), 9223372036854775807) \
                  - COALESCE((SELECT n FROM running WHERE running.kind = j.kind), 0) AS free \
         FROM jobs j \
         WHERE j.status = 'queued' AND j.run_at_ms <= $2 AND free > 0 \
         ORDER BY j.priority DESC, j.run_at_ms ASC, j.id ASC LIMIT $5), \
     ranked AS ( \
         SELECT id, free, ROW_NUMBER() OVER (PARTITION BY kind ORDER BY priority DESC, run_at_ms, id) AS place \
         FROM candidates) \
     UPDATE jobs SET status = 'running', worker_id = $1, lease_until_ms = $2 + $3, \
                     attempts = attempts + 1, started_at_ms = COALESCE(started_at_ms, $2), updated_at_ms = $2 \
     WHERE id IN (SELECT id FROM ranked WHERE place <= free) \
     RETURNING ",
    job_columns!()
);

/// Complete the held jobs named in $3, a JSON object id → result (binds: worker, now, results).
/// The running progress note is cleared: a finished job's words are its status and result.
const COMPLETE_BATCH_SQL: &str = concat!(
    "UPDATE jobs SET status = 'succeeded', result = $3 -> ('$.\"' || id || '\"'), error = NULL, \
         progress_text = NULL, progress_percent = 100, finished_at_ms = $2, worker_id = NULL, lease_until_ms = NULL, updated_at_ms = $2 \
     WHERE worker_id = $1 AND status = 'running' AND id IN (SELECT CAST(key AS INTEGER) FROM json_each($3)) \
     RETURNING ",
    job_columns!()
);

/// Jobs in claim order (RETURNING gives no order).
fn in_claim_order(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at_ms.cmp(&b.run_at_ms)).then(a.id.cmp(&b.id)));
    jobs
}

fn ids_json(ids: &[i64]) -> StorageResult<String> {
    serde_json::to_string(ids).map_err(|error| StorageError::Invalid(format!("job ids: {error}")))
}

impl Store {
    /// Insert many jobs in one transaction, in order; a job whose idempotency
    /// key exists already comes back as that job with `created: false`.
    pub async fn enqueue_jobs(&self, jobs: Vec<NewJob>, now_ms: i64) -> StorageResult<Vec<Enqueued>> {
        for job in &jobs {
            check_kind(job)?;
        }
        let mut tx = self.writer.begin().await.map_err(|error| sql_error("enqueue jobs", error))?;
        let mut enqueued = Vec::with_capacity(jobs.len());
        for new in jobs {
            enqueued.push(enqueue_on(&mut tx, new, now_ms).await?);
        }
        tx.commit().await.map_err(|error| sql_error("enqueue jobs", error))?;
        self.jobs_ready.notify_waiters();
        Ok(enqueued)
    }

    /// Atomically take up to `max` due queued jobs for `worker_id`, in claim
    /// order (highest priority, then oldest run-at, then id), each with its
    /// own lease. A kind gets at most the slots its limit in `kind_limits`
    /// leaves free (running jobs with a live lease count). A dead worker's
    /// jobs become claimable once [`Store::requeue_expired_jobs`] ran after
    /// their lease expired (workers call it before claiming).
    pub async fn claim_jobs(
        &self,
        worker_id: &str,
        now_ms: i64,
        lease_ms: i64,
        kind_limits: &BTreeMap<String, u32>,
        max: u32,
    ) -> StorageResult<Vec<Job>> {
        let limits = serde_json::to_string(kind_limits)
            .map_err(|error| StorageError::Invalid(format!("kind limits: {error}")))?;
        let rows = sqlx::query(CLAIM_BATCH_SQL)
            .bind(worker_id)
            .bind(now_ms)
            .bind(lease_ms)
            .bind(&limits)
            .bind(i64::from(max.max(1)))
            .fetch_all(&self.writer)
            .await
            .map_err(|error| sql_error("claim jobs", error))?;
        Ok(in_claim_order(rows.iter().map(job_row).collect::<StorageResult<_>>()?))
    }

    /// Mark the held jobs succeeded with their results, in one statement.
    /// Returns the jobs written; a job missing from it had lost its lease.
    pub async fn complete_jobs(
        &self,
        worker_id: &str,
        results: &[(i64, serde_json::Value)],
        now_ms: i64,
    ) -> StorageResult<Vec<Job>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let by_id: serde_json::Map<String, serde_json::Value> =
            results.iter().map(|(id, result)| (id.to_string(), result.clone())).collect();
        let by_id = to_json_text("results", &serde_json::Value::Object(by_id))?;
        let rows = sqlx::query(COMPLETE_BATCH_SQL)
            .bind(worker_id)
            .bind(now_ms)
            .bind(&by_id)
            .fetch_all(&self.writer)
            .await
            .map_err(|error| sql_error("complete jobs", error))?;
        rows.iter().map(job_row).collect()
    }

    /// Extend the lease of every job `worker_id` holds, in one statement.
    /// Returns (job id, cancel requested) per job still held; a job missing
    /// from it was taken over or finished.
    pub async fn renew_worker_leases(
        &self,
        worker_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StorageResult<Vec<(i64, bool)>> {
        let rows = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $2 + $3, updated_at_ms = $2 \
             WHERE worker_id = $1 AND status = 'running' RETURNING id, cancel_requested",
        )
        .bind(worker_id)
        .bind(now_ms)
        .bind(lease_ms)
        .fetch_all(&self.writer)
        .await
        .map_err(|error| sql_error("renew job leases", error))?;
        rows.iter().map(|row| Ok((column::<i64>(row, "id")?, column::<i64>(row, "cancel_requested")? != 0))).collect()
    }

    /// Hand held jobs that never started back to the queue (due now, the
    /// attempt not counted), so other workers can take them. Returns the ids
    /// handed back; jobs whose lease was lost are left alone.
    pub async fn release_unstarted_jobs(
        &self,
        job_ids: &[i64],
        worker_id: &str,
        now_ms: i64,
    ) -> StorageResult<Vec<i64>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at_ms = $2, attempts = MAX(attempts - 1, 0), \
                 started_at_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_at_ms END, \
                 worker_id = NULL, lease_until_ms = NULL, updated_at_ms = $2 \
             WHERE worker_id = $1 AND status = 'running' AND id IN (SELECT value FROM json_each($3)) \
             RETURNING id",
        )
        .bind(worker_id)
        .bind(now_ms)
        .bind(ids_json(job_ids)?)
        .fetch_all(&self.writer)
        .await
        .map_err(|error| sql_error("release jobs", error))?;
        rows.iter().map(|row| column::<i64>(row, "id")).collect()
    }
}
