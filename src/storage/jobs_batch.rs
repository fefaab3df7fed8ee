//! Queue operations that share one transaction (one commit) to raise
//! throughput: enqueue many jobs at once, and complete a job together with
//! claiming the worker's next one.
//!
//! Invariants: the statements are the very ones the single-step calls in
//! `jobs.rs` use (`ENQUEUE_SQL`, `CLAIM_SQL`, `COMPLETE_SQL`), so semantics
//! (idempotency keys, lease conditions, per-kind limits, claim order) are
//! identical; a batch either commits entirely or not at all. The transaction
//! writes first, so SQLite takes the write lock at its first statement and
//! concurrent writers wait on the busy timeout instead of failing to upgrade.

use std::collections::BTreeMap;

use super::jobs::{BY_KEY_SQL, CLAIM_SQL, COMPLETE_SQL, ENQUEUE_SQL, job_row, to_json_text};
use super::rows::sql_error;
use super::{Enqueued, Job, NewJob, StorageError, StorageResult, Store};

impl Store {
    /// Insert many jobs in one transaction, in order; a job whose idempotency
    /// key exists already comes back as that job with `created: false`.
    pub async fn enqueue_jobs(&self, jobs: Vec<NewJob>, now_ms: i64) -> StorageResult<Vec<Enqueued>> {
        if jobs.iter().any(|job| job.kind.trim().is_empty()) {
            return Err(StorageError::Invalid("job kind must not be empty".into()));
        }
        let mut tx = self.pool.begin().await.map_err(|error| sql_error("enqueue jobs", error))?;
        let mut enqueued = Vec::with_capacity(jobs.len());
        for new in jobs {
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
                .fetch_optional(&mut *tx)
                .await
                .map_err(|error| sql_error("enqueue jobs", error))?;
            if let Some(row) = inserted {
                enqueued.push(Enqueued { job: job_row(&row)?, created: true });
                continue;
            }
            let row = sqlx::query(BY_KEY_SQL)
                .bind(new.idempotency_key.unwrap_or_default())
                .fetch_one(&mut *tx)
                .await
                .map_err(|error| sql_error("job by idempotency key", error))?;
            enqueued.push(Enqueued { job: job_row(&row)?, created: false });
        }
        tx.commit().await.map_err(|error| sql_error("enqueue jobs", error))?;
        Ok(enqueued)
    }

    /// Mark `job_id` succeeded (only while `worker_id` holds its lease) and
    /// claim the next due job for the same worker, in one transaction.
    /// Returns (the completed job — `None` if the lease was lost, the next job).
    pub async fn complete_job_and_claim_next(
        &self,
        job_id: i64,
        worker_id: &str,
        result: &serde_json::Value,
        now_ms: i64,
        lease_ms: i64,
        kind_limits: &BTreeMap<String, u32>,
    ) -> StorageResult<(Option<Job>, Option<Job>)> {
        let result = to_json_text("result", result)?;
        let limits = serde_json::to_string(kind_limits)
            .map_err(|error| StorageError::Invalid(format!("kind limits: {error}")))?;
        let mut tx = self.pool.begin().await.map_err(|error| sql_error("complete and claim", error))?;
        let completed = sqlx::query(COMPLETE_SQL)
            .bind(job_id)
            .bind(worker_id)
            .bind(&result)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| sql_error("complete job", error))?;
        let next = sqlx::query(CLAIM_SQL)
            .bind(worker_id)
            .bind(now_ms)
            .bind(lease_ms)
            .bind(&limits)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| sql_error("claim job", error))?;
        tx.commit().await.map_err(|error| sql_error("complete and claim", error))?;
        Ok((completed.as_ref().map(job_row).transpose()?, next.as_ref().map(job_row).transpose()?))
    }
}
