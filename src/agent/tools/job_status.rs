//! `job_status`: the status and progress of one background job, or of this
//! conversation's recent jobs. Jobs of other conversations are only visible
//! to admins.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolContext, ToolError, TypedTool};
use crate::storage::{JobFilter, StorageError};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStatusInput {
    /// A job number; omitted: this conversation's recent jobs.
    #[serde(default)]
    pub job_id: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub struct JobStatus;

#[async_trait::async_trait]
impl TypedTool for JobStatus {
    type Input = JobStatusInput;
    const NAME: &'static str = "job_status";
    const DESCRIPTION: &'static str = "Show the status and progress of a background job by its number, or \
        list this conversation's recent background jobs when no number is given.";

    async fn run(&self, context: &ToolContext, input: JobStatusInput) -> Result<String, ToolError> {
        let Some(job_id) = input.job_id else {
            let filter = JobFilter { status: None, conversation_id: Some(context.conversation_id.clone()), limit: 10 };
            let jobs = context.store.list_jobs(&filter).await.map_err(unavailable)?;
            if jobs.is_empty() {
                return Ok("This conversation has no background jobs.".into());
            }
            let mut lines = Vec::new();
            for job in &jobs {
                lines.push(context.store.job_summary(job).await.map_err(unavailable)?);
            }
            return Ok(lines.join("\n"));
        };
        let job = match context.store.get_job(job_id).await {
            Ok(job) => job,
            Err(StorageError::NotFound { .. }) => {
                return Err(ToolError::RespondToModel(format!("there is no job #{job_id}")));
            }
            Err(other) => return Err(unavailable(other)),
        };
        if !context.is_admin && job.conversation_id.as_deref() != Some(context.conversation_id.as_str()) {
            return Err(ToolError::RespondToModel(format!("job #{job_id} belongs to another conversation")));
        }
        context.store.job_summary(&job).await.map_err(unavailable)
    }
}

fn unavailable(error: StorageError) -> ToolError {
    ToolError::RespondToModel(format!("the job queue could not be read: {error}"))
}
