//! The durable job queue's table: enqueue (with an idempotency key), atomic
//! claim with a lease and per-kind concurrency limits, lease renewal, progress,
//! completion, failure with a caller-computed retry time, cancellation,
//! manual retry, retention purge, and the record of notices delivered per job.
//!
//! Invariants: every state change of a running job is conditioned on the
//! caller still holding the lease (`worker_id` and `status = 'running'`), so a
//! worker whose lease expired and was taken over can never overwrite the new
//! holder's outcome; a claim is one `UPDATE … WHERE id IN (SELECT …)` statement,
//! so two workers never hold one job (SQLite takes the write lock before the
//! inner SELECT runs; PostgreSQL needs `FOR UPDATE SKIP LOCKED` in the inner
//! SELECT). Time is always passed in (`now_ms`) so the queue runs on an
//! injectable clock.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::sql_error;
use super::{
    CancelOutcome, Enqueued, Job, JobFilter, JobStatus, NewJob, RetryOutcome, StorageError, StorageResult, Store,
};

macro_rules! job_columns {
    () => {
        "id, kind, payload, priority, status, run_at_ms, attempts, max_attempts, retries, worker_id, \
         lease_until_ms, cancel_requested, progress_text, progress_percent, result, error, conversation_id, \
         idempotency_key, created_at_ms, started_at_ms, finished_at_ms, updated_at_ms"
    };
}

pub(super) use job_columns;

/// Insert one job (binds: kind, payload, priority, run_at, max_attempts, conversation, key, now).
pub(super) const ENQUEUE_SQL: &str = concat!(
    "INSERT INTO jobs (kind, payload, priority, status, run_at_ms, attempts, max_attempts, retries, \
                               cancel_requested, conversation_id, idempotency_key, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, 'queued', $4, 0, $5, 0, 0, $6, $7, $8, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
    job_columns!()
);

/// Select a job by idempotency key (bind: key).
pub(super) const BY_KEY_SQL: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE idempotency_key = $1");

pub(super) fn column<'r, T>(row: &'r SqliteRow, name: &str) -> StorageResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|error| sql_error(&format!("job column {name}"), error))
}

pub(super) fn job_row(row: &SqliteRow) -> StorageResult<Job> {
    let payload: String = column(row, "payload")?;
    let result: Option<String> = column(row, "result")?;
    let status: String = column(row, "status")?;
    let cancel_requested: i64 = column(row, "cancel_requested")?;
    let json = |field: &str, text: &str| {
        serde_json::from_str(text).map_err(|error| StorageError::Invalid(format!("job {field} is not JSON: {error}")))
    };
    Ok(Job {
        id: column(row, "id")?,
        kind: column(row, "kind")?,
        payload: json("payload", &payload)?,
        priority: column(row, "priority")?,
        status: JobStatus::parse(&status)?,
        run_at_ms: column(row, "run_at_ms")?,
        attempts: column(row, "attempts")?,
        max_attempts: column(row, "max_attempts")?,
        retries: column(row, "retries")?,
        worker_id: column(row, "worker_id")?,
        lease_until_ms: column(row, "lease_until_ms")?,
        cancel_requested: cancel_requested != 0,
        progress_text: column(row, "progress_text")?,
        progress_percent: column(row, "progress_percent")?,
        result: result.as_deref().map(|text| json("result", text)).transpose()?,
        error: column(row, "error")?,
        conversation_id: column(row, "conversation_id")?,
        idempotency_key: column(row, "idempotency_key")?,
        created_at_ms: column(row, "created_at_ms")?,
        started_at_ms: column(row, "started_at_ms")?,
        finished_at_ms: column(row, "finished_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
    })
}

pub(super) fn to_json_text(field: &str, value: &serde_json::Value) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|error| StorageError::Invalid(format!("job {field}: {error}")))
}

pub(super) fn check_kind(new: &NewJob) -> StorageResult<()> {
    if new.kind.trim().is_empty() {
        return Err(StorageError::Invalid("job kind must not be empty".into()));
    }
    Ok(())
}

/// The one enqueue: insert, or (idempotency key taken) return the job that has it.
/// Runs on a pooled connection or inside a caller's transaction.
pub(super) async fn enqueue_on(
    connection: &mut sqlx::SqliteConnection,
    new: NewJob,
    now_ms: i64,
) -> StorageResult<Enqueued> {
    let payload = to_json_text("payload", &new.payload)?;
    let inserted = sqlx::query(ENQUEUE_SQL)
        .bind(&new.kind)
        .bind(&payload)
        .bind(new.priority)
        .bind(new.run_at_ms.unwrap_or(now_ms))
        .bind(i64::from(new.max_attempts.max(1)))
        .bind(&new.conversation_id)
        .bind(&new.idempotency_key)
        .bind(now_ms)
        .fetch_optional(&mut *connection)
        .await
        .map_err(|error| sql_error("enqueue job", error))?;
    if let Some(row) = inserted {
        return Ok(Enqueued { job: job_row(&row)?, created: true });
    }
    let key = new.idempotency_key.unwrap_or_default();
    let row = sqlx::query(BY_KEY_SQL)
        .bind(&key)
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| sql_error(&format!("job with idempotency key {key}"), error))?;
    Ok(Enqueued { job: job_row(&row)?, created: false })
}

impl Store {
    /// Insert a job, or return the existing one with the same idempotency key.
    pub async fn enqueue_job(&self, new: NewJob, now_ms: i64) -> StorageResult<Enqueued> {
        check_kind(&new)?;
        let mut connection = self.writer.acquire().await.map_err(|error| sql_error("enqueue job", error))?;
        let enqueued = enqueue_on(&mut connection, new, now_ms).await?;
        drop(connection);
        self.jobs_ready.notify_waiters();
        Ok(enqueued)
    }

    /// When the earliest queued job not yet due becomes due (an idle worker's alarm).
    pub async fn next_job_due_ms(&self, now_ms: i64) -> StorageResult<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(run_at_ms) FROM jobs WHERE status = 'queued' AND run_at_ms > $1")
            .bind(now_ms)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error("next due job", error))
    }

    /// Atomically take the next due queued job for `worker_id` (a claim of
    /// at most one, see [`Store::claim_jobs`]).
    pub async fn claim_job(
        &self,
        worker_id: &str,
        now_ms: i64,
        lease_ms: i64,
        kind_limits: &BTreeMap<String, u32>,
    ) -> StorageResult<Option<Job>> {
        Ok(self.claim_jobs(worker_id, now_ms, lease_ms, kind_limits, 1).await?.pop())
    }

    /// Running jobs whose lease expired: cancelled if a cancel was requested,
    /// failed if that was their last attempt (so a job that kills its worker
    /// every time does not loop forever), queued again (due at once) otherwise.
    pub async fn requeue_expired_jobs(&self, now_ms: i64) -> StorageResult<()> {
        // A read first: the common case (no expired lease) then takes no write lock.
        let expired = sqlx::query("SELECT 1 FROM jobs WHERE status = 'running' AND lease_until_ms < $1 LIMIT 1")
            .bind(now_ms)
            .fetch_optional(&self.readers)
            .await
            .map_err(|error| sql_error("find abandoned jobs", error))?;
        if expired.is_none() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE jobs SET \
                 status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'failed' END, \
                 error = CASE WHEN cancel_requested = 1 THEN error \
                              ELSE 'the worker stopped answering (lease expired) on the last attempt' END, \
                 worker_id = NULL, lease_until_ms = NULL, finished_at_ms = $1, updated_at_ms = $1 \
             WHERE status = 'running' AND lease_until_ms < $1 \
               AND (cancel_requested = 1 OR attempts >= max_attempts)",
        )
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("finish abandoned jobs", error))?;
        sqlx::query(
            "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_until_ms = NULL, updated_at_ms = $1 \
             WHERE status = 'running' AND lease_until_ms < $1",
        )
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("requeue abandoned jobs", error))?;
        Ok(())
    }

    /// Extend the lease. `None`: the lease is lost (taken over or finished);
    /// `Some(cancel_requested)` otherwise.
    pub async fn renew_job_lease(
        &self,
        job_id: i64,
        worker_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StorageResult<Option<bool>> {
        let row = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $3 + $4, updated_at_ms = $3 \
             WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(job_id)
        .bind(worker_id)
        .bind(now_ms)
        .bind(lease_ms)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("renew job lease", error))?;
        row.map(|row| column::<i64>(&row, "cancel_requested").map(|flag| flag != 0)).transpose()
    }

    /// Store progress text and percent (0–100). False if the lease is lost.
    pub async fn update_job_progress(
        &self,
        job_id: i64,
        worker_id: &str,
        text: &str,
        percent: Option<u8>,
        now_ms: i64,
    ) -> StorageResult<bool> {
        let updated = sqlx::query(
            "UPDATE jobs SET progress_text = $3, progress_percent = $4, updated_at_ms = $5 \
             WHERE id = $1 AND worker_id = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker_id)
        .bind(text)
        .bind(percent.map(|p| i64::from(p.min(100))))
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("update job progress", error))?;
        Ok(updated.rows_affected() == 1)
    }

    /// Mark succeeded with its result. `None` if the lease is lost (a
    /// completion of one, see [`Store::complete_jobs`]).
    pub async fn complete_job(
        &self,
        job_id: i64,
        worker_id: &str,
        result: &serde_json::Value,
        now_ms: i64,
    ) -> StorageResult<Option<Job>> {
        Ok(self.complete_jobs(worker_id, &[(job_id, result.clone())], now_ms).await?.pop())
    }

    /// Record a failed attempt: queued again at `retry_at_ms` when given and
    /// attempts remain, failed for good otherwise. `None` if the lease is lost.
    pub async fn fail_job(
        &self,
        job_id: i64,
        worker_id: &str,
        error: &str,
        retry_at_ms: Option<i64>,
        now_ms: i64,
    ) -> StorageResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET error = $3, worker_id = NULL, lease_until_ms = NULL, updated_at_ms = $5, \
                 status = CASE WHEN $4 IS NOT NULL AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
                 run_at_ms = CASE WHEN $4 IS NOT NULL AND attempts < max_attempts THEN $4 ELSE run_at_ms END, \
                 finished_at_ms = CASE WHEN $4 IS NOT NULL AND attempts < max_attempts THEN NULL ELSE $5 END \
             WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING ",
            job_columns!()
        ))
        .bind(job_id)
        .bind(worker_id)
        .bind(error)
        .bind(retry_at_ms)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("fail job", error))?;
        row.as_ref().map(job_row).transpose()
    }

    /// The holder stopped because a cancel was requested. `None` if the lease is lost.
    pub async fn finish_cancelled_job(&self, job_id: i64, worker_id: &str, now_ms: i64) -> StorageResult<Option<Job>> {
        self.finish_held_job(
            job_id,
            worker_id,
            "status = 'cancelled', finished_at_ms = $4, error = NULLIF($3, '')",
            "",
            now_ms,
        )
        .await
    }

    /// Hand the job back (graceful shutdown): queued again, due now, and the
    /// interrupted attempt does not count. `None` if the lease is lost.
    pub async fn release_job(&self, job_id: i64, worker_id: &str, now_ms: i64) -> StorageResult<Option<Job>> {
        self.finish_held_job(
            job_id,
            worker_id,
            "status = 'queued', run_at_ms = $4, attempts = MAX(attempts - 1, 0), progress_text = $3",
            "interrupted by a shutdown; will resume",
            now_ms,
        )
        .await
    }

    /// Shared shape of the lease-holder's final updates; `set` may use $3 (text) and $4 (now).
    async fn finish_held_job(
        &self,
        job_id: i64,
        worker_id: &str,
        set: &str,
        text: &str,
        now_ms: i64,
    ) -> StorageResult<Option<Job>> {
        let sql = format!(
            "UPDATE jobs SET {set}, worker_id = NULL, lease_until_ms = NULL, updated_at_ms = $4 \
             WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING {}",
            job_columns!()
        );
        // `set` is one of the constant fragments above, never caller input.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .bind(worker_id)
            .bind(text)
            .bind(now_ms)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("finish job", error))?;
        row.as_ref().map(job_row).transpose()
    }

    /// Cancel a queued job at once, or ask a running job's worker to stop.
    pub async fn request_job_cancel(&self, job_id: i64, now_ms: i64) -> StorageResult<CancelOutcome> {
        let cancelled = sqlx::query(concat!(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at_ms = $2, updated_at_ms = $2 \
             WHERE id = $1 AND status = 'queued' RETURNING ",
            job_columns!()
        ))
        .bind(job_id)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("cancel job", error))?;
        if let Some(row) = cancelled {
            return Ok(CancelOutcome::Cancelled(job_row(&row)?));
        }
        let requested = sqlx::query(concat!(
            "UPDATE jobs SET cancel_requested = 1, updated_at_ms = $2 \
             WHERE id = $1 AND status = 'running' RETURNING ",
            job_columns!()
        ))
        .bind(job_id)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("cancel job", error))?;
        match requested {
            Some(row) => Ok(CancelOutcome::Requested(job_row(&row)?)),
            None => Ok(CancelOutcome::AlreadyFinished(self.get_job(job_id).await?)),
        }
    }

    /// Queue a failed or cancelled job again with fresh attempts.
    pub async fn retry_job(&self, job_id: i64, now_ms: i64) -> StorageResult<RetryOutcome> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'queued', attempts = 0, retries = retries + 1, run_at_ms = $2, \
                             cancel_requested = 0, error = NULL, result = NULL, progress_text = NULL, \
                             progress_percent = NULL, started_at_ms = NULL, finished_at_ms = NULL, \
                             updated_at_ms = $2 \
             WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING ",
            job_columns!()
        ))
        .bind(job_id)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("retry job", error))?;
        match row {
            Some(row) => {
                self.jobs_ready.notify_waiters();
                Ok(RetryOutcome::Requeued(job_row(&row)?))
            }
            None => Ok(RetryOutcome::NotRetryable(self.get_job(job_id).await?)),
        }
    }

    /// NotFound for an unknown id.
    pub async fn get_job(&self, job_id: i64) -> StorageResult<Job> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
            .bind(job_id)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error(&format!("job {job_id}"), error))?;
        job_row(&row)
    }

    /// Newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> StorageResult<Vec<Job>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR conversation_id = $2) \
              ORDER BY id DESC LIMIT $3"
        ))
        .bind(filter.status.map(JobStatus::as_str))
        .bind(&filter.conversation_id)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list jobs", error))?;
        found.iter().map(job_row).collect()
    }

    /// Jobs per status (every status present, zero when none).
    pub async fn count_jobs_by_status(&self) -> StorageResult<BTreeMap<&'static str, i64>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("count jobs", error))?;
        let mut counts: BTreeMap<&'static str, i64> =
            [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled]
                .into_iter()
                .map(|status| (status.as_str(), 0))
                .collect();
        for row in &rows {
            let status: String = column(row, "status")?;
            counts.insert(JobStatus::parse(&status)?.as_str(), column(row, "n")?);
        }
        Ok(counts)
    }

    /// Delete finished jobs (and their notice records) that finished before `cutoff_ms`.
    /// Jobs whose final notice is still undelivered are kept.
    pub async fn purge_finished_jobs(&self, cutoff_ms: i64) -> StorageResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at_ms < $1 \
               AND (conversation_id IS NULL OR EXISTS (SELECT 1 FROM job_notices n \
                    WHERE n.job_id = jobs.id AND n.notice_key = 'final:' || jobs.retries \
                      AND n.delivered_at_ms IS NOT NULL))",
        )
        .bind(cutoff_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("purge finished jobs", error))?;
        Ok(deleted.rows_affected())
    }

    /// Finished jobs with a conversation whose final notice (this round) is not delivered yet; oldest first.
    pub async fn jobs_awaiting_final_notice(&self, limit: u32) -> StorageResult<Vec<Job>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND conversation_id IS NOT NULL \
                AND NOT EXISTS (SELECT 1 FROM job_notices n \
                                WHERE n.job_id = jobs.id AND n.notice_key = 'final:' || jobs.retries \
                                  AND n.delivered_at_ms IS NOT NULL) \
              ORDER BY finished_at_ms ASC, id ASC LIMIT $1"
        ))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("jobs awaiting notice", error))?;
        found.iter().map(job_row).collect()
    }

    /// Take the right to deliver a notice for `claim_ms`: false if it was
    /// delivered already or another deliverer holds a live claim.
    pub async fn claim_job_notice(
        &self,
        job_id: i64,
        notice_key: &str,
        owner: &str,
        now_ms: i64,
        claim_ms: i64,
    ) -> StorageResult<bool> {
        let claimed = sqlx::query(
            "INSERT INTO job_notices (job_id, notice_key, delivered_at_ms, claimed_by, claimed_until_ms) \
             VALUES ($1, $2, NULL, $3, $4 + $5) \
             ON CONFLICT (job_id, notice_key) DO UPDATE SET \
                 claimed_by = excluded.claimed_by, claimed_until_ms = excluded.claimed_until_ms \
             WHERE job_notices.delivered_at_ms IS NULL AND job_notices.claimed_until_ms < $4",
        )
        .bind(job_id)
        .bind(notice_key)
        .bind(owner)
        .bind(now_ms)
        .bind(claim_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("claim job notice", error))?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Record that a notice for the job was delivered. False if it already was.
    pub async fn record_job_notice(&self, job_id: i64, notice_key: &str, now_ms: i64) -> StorageResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO job_notices (job_id, notice_key, delivered_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id, notice_key) DO UPDATE SET delivered_at_ms = excluded.delivered_at_ms \
             WHERE job_notices.delivered_at_ms IS NULL",
        )
        .bind(job_id)
        .bind(notice_key)
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("record job notice", error))?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Notice keys delivered for a job, with their times, oldest first.
    pub async fn job_notices(&self, job_id: i64) -> StorageResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT notice_key, delivered_at_ms FROM job_notices \
             WHERE job_id = $1 AND delivered_at_ms IS NOT NULL ORDER BY delivered_at_ms, notice_key",
        )
        .bind(job_id)
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("job notices", error))?;
        rows.iter().map(|row| Ok((column(row, "notice_key")?, column(row, "delivered_at_ms")?))).collect()
    }
}
