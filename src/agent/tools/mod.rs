//! The tool trait and registry: one implementation per tool (one file each),
//! registered once, offered to the model by the agent and — later — over MCP
//! from the same registry.
//!
//! Errors are split the way the turn loop needs them: [`ToolError::RespondToModel`]
//! goes back to the model as an error tool result (bad arguments, a search
//! that found nothing usable, an unavailable service), while
//! [`ToolError::Fatal`] ends the turn with a clear message to the user.

mod job_status;
mod queue_task;
mod search_history;

pub use job_status::JobStatus;
pub use queue_task::{AGENT_TASK_KIND, QueueTask};
pub use search_history::SearchHistory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::llm::ToolSpec;
use crate::storage::Store;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// Recoverable: the text is shown to the model as the tool's (error) result.
    #[error("{0}")]
    RespondToModel(String),
    /// Unrecoverable: the turn ends and the user sees this message.
    #[error("{0}")]
    Fatal(String),
}

/// What a tool call may use: the caller's conversation and permissions.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub store: Store,
    pub conversation_id: String,
    /// The turn making the call (its own messages are excluded from history searches).
    pub turn_id: String,
    pub is_admin: bool,
}

/// A tool as the registry sees it.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON schema of the input object.
    fn input_schema(&self) -> serde_json::Value;
    /// True for tools that change things or spend money (permission checks use this).
    fn has_side_effects(&self) -> bool {
        false
    }
    async fn call(&self, context: &ToolContext, input: serde_json::Value) -> Result<String, ToolError>;
}

/// Write tools against this: a typed input whose schema is derived, parsed
/// before `run` sees it; a parse failure goes back to the model.
#[async_trait::async_trait]
pub trait TypedTool: Send + Sync {
    type Input: DeserializeOwned + JsonSchema + Send;
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    const SIDE_EFFECTS: bool = false;
    async fn run(&self, context: &ToolContext, input: Self::Input) -> Result<String, ToolError>;
}

#[async_trait::async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }

    fn input_schema(&self) -> serde_json::Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(T::Input)).unwrap_or_default();
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
            map.remove("title");
        }
        schema
    }

    fn has_side_effects(&self) -> bool {
        T::SIDE_EFFECTS
    }

    async fn call(&self, context: &ToolContext, input: serde_json::Value) -> Result<String, ToolError> {
        let input = serde_json::from_value::<T::Input>(input)
            .map_err(|error| ToolError::RespondToModel(format!("invalid arguments for {}: {error}", T::NAME)))?;
        self.run(context, input).await
    }
}

/// All tools, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// The built-in tools that need nothing but the database.
    pub fn with_builtin_tools() -> Self {
        let mut registry = Self::default();
        registry.register(Arc::new(SearchHistory));
        registry.register(Arc::new(QueueTask));
        registry.register(Arc::new(JobStatus));
        registry
    }

    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name(), tool);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// The specs offered to the model (sorted by name, so prompts are stable and cacheable).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .values()
            .map(|tool| ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                input_schema: tool.input_schema(),
            })
            .collect()
    }

    /// Run one call with a time limit. Unknown tools and time-outs go back to the model.
    pub async fn call(
        &self,
        context: &ToolContext,
        name: &str,
        input: serde_json::Value,
        limit: Duration,
    ) -> Result<String, ToolError> {
        let Some(tool) = self.tools.get(name) else {
            return Err(ToolError::RespondToModel(format!("there is no tool named {name:?}")));
        };
        match tokio::time::timeout(limit, tool.call(context, input)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::RespondToModel(format!("{name} did not finish within {} s", limit.as_secs()))),
        }
    }
}
