//! A queued job's place in line: how many queued jobs of its kind the claim
//! (`ORDER BY priority DESC, run_at_ms ASC, id ASC`) takes before it. Shown
//! in the jobs API, `job_status`, `/jobs` and `valor jobs`, and told to the
//! chat when a delegated code run has to wait.

use sqlx::Row;

use super::rows::sql_error;
use super::{Job, JobStatus, StorageResult, Store};

impl Store {
    /// 1 for the job the next free slot of its kind takes; `None` unless queued.
    pub async fn queue_position(&self, job: &Job) -> StorageResult<Option<i64>> {
        if job.status != JobStatus::Queued {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS ahead FROM jobs \
             WHERE status = 'queued' AND kind = $1 AND id <> $4 \
               AND (priority > $2 OR (priority = $2 AND (run_at_ms < $3 OR (run_at_ms = $3 AND id < $4))))",
        )
        .bind(&job.kind)
        .bind(job.priority)
        .bind(job.run_at_ms)
        .bind(job.id)
        .fetch_one(&self.readers)
        .await
        .map_err(|error| sql_error("queue position", error))?;
        let ahead: i64 = row.try_get("ahead").map_err(|error| sql_error("queue position", error))?;
        Ok(Some(ahead + 1))
    }

    /// Running jobs of `kind` (holding a live lease or not).
    pub async fn running_jobs_of_kind(&self, kind: &str) -> StorageResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS running FROM jobs WHERE status = 'running' AND kind = $1")
            .bind(kind)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error("running jobs", error))?;
        row.try_get("running").map_err(|error| sql_error("running jobs", error))
    }

    /// [`Job::summary`] plus the place in line of a queued job.
    pub async fn job_summary(&self, job: &Job) -> StorageResult<String> {
        let summary = job.summary();
        Ok(match self.queue_position(job).await? {
            Some(position) => format!("{summary}, queued at position {position}"),
            None => summary,
        })
    }
}
