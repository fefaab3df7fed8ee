//! Queue operations that share one transaction (one commit) to raise
//! throughput: enqueue many jobs at once, and complete a job together with
//! claiming the worker's next one.
//!
//! Invariants: the statements are the very ones the single-step calls in
//! `jobs.rs` use (`enqueue_on`, `CLAIM_SQL`, `COMPLETE_SQL`), so semantics
//! (idempotency keys, lease conditions, per-kind limits, claim order) are
//! identical; a batch either commits entirely or not at all. The transaction
//! writes first, so SQLite takes the write lock at its first statement and
//! concurrent writers wait on the busy timeout instead of failing to upgrade.

use std::collections::BTreeMap;

use super::jobs::{CLAIM_SQL, COMPLETE_SQL, check_kind, enqueue_on, job_row, to_json_text};
use super::rows::sql_error;
use super::{Enqueued, Job, NewJob, StorageError, StorageResult, Store};

impl Store {
    /// Insert many jobs in one transaction, in order; a job whose idempotency
    /// key exists already comes back as that job with `created: false`.
    pub async fn enqueue_jobs(&self, jobs: Vec<NewJob>, now_ms: i64) -> StorageResult<Vec<Enqueued>> {
        for job in &jobs {
            check_kind(job)?;
        }
        let mut tx = self.pool.begin().await.map_err(|error| sql_error("enqueue jobs", error))?;
        let mut enqueued = Vec::with_capacity(jobs.len());
        for new in jobs {
            enqueued.push(enqueue_on(&mut tx, new, now_ms).await?);
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
