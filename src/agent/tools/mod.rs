//! The tool trait and registry: one implementation per tool (one file each),
//! registered once, offered to the model by the agent and — later — over MCP
//! from the same registry.
//!
//! Errors are split the way the turn loop needs them: [`ToolError::RespondToModel`]
//! goes back to the model as an error tool result (bad arguments, a search
//! that found nothing usable, an unavailable service), while
//! [`ToolError::Fatal`] ends the turn with a clear message to the user.

pub mod analyze_image;
mod delegate_code_task;
pub mod generate_image;
mod job_status;
pub mod notion_query;
mod project_context;
mod queue_task;
pub mod read_link;
pub mod resilience;
mod search_history;
pub mod web_search;

pub use analyze_image::AnalyzeImage;
pub use delegate_code_task::DelegateCodeTask;
pub use generate_image::GenerateImage;
pub use job_status::JobStatus;
pub use notion_query::NotionQuery;
pub use project_context::ProjectContext;
pub use queue_task::{AGENT_TASK_KIND, QueueTask};
pub use read_link::ReadLink;
pub use search_history::SearchHistory;
pub use web_search::WebSearch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::llm::ToolSpec;
use crate::monitoring::breaker::{BreakerConfig, CircuitBreakers, SystemClock};
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
    /// The chat member who sent the message (Telegram), for per-workspace `allowed_users`.
    pub user: Option<crate::workspace::ChatUser>,
}

impl ToolContext {
    /// Who is asking, for workspace access checks.
    pub fn requester(&self) -> crate::workspace::Requester {
        crate::workspace::Requester { user: self.user.clone(), is_admin: self.is_admin }
    }
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
    /// True for tools whose calls cost money beyond the chat model (e.g. image generation).
    fn spends_money(&self) -> bool {
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
    const SPENDS_MONEY: bool = false;
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

    fn spends_money(&self) -> bool {
        T::SPENDS_MONEY
    }

    async fn call(&self, context: &ToolContext, input: serde_json::Value) -> Result<String, ToolError> {
        let input = serde_json::from_value::<T::Input>(input)
            .map_err(|error| ToolError::RespondToModel(format!("invalid arguments for {}: {error}", T::NAME)))?;
        self.run(context, input).await
    }
}

/// Who may use which tool. Admins may use every tool; non-admins the tools
/// named in `non_admin_tools`, or — when that is unset — every tool that
/// neither has side effects nor spends money.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    pub non_admin_tools: Option<Vec<String>>,
}

impl ToolPolicy {
    pub fn allows(&self, tool: &dyn Tool, is_admin: bool) -> bool {
        if is_admin {
            return true;
        }
        match &self.non_admin_tools {
            Some(names) => names.iter().any(|name| name == tool.name()),
            None => !tool.has_side_effects() && !tool.spends_money(),
        }
    }
}

/// All tools, by name, with the permission policy and the circuit breakers
/// of the services they call (shown in `/health`).
#[derive(Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
    policy: ToolPolicy,
    breakers: CircuitBreakers,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        let config = BreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(30) };
        Self::new(ToolPolicy::default(), CircuitBreakers::new(config, Arc::new(SystemClock)))
    }
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    pub fn new(policy: ToolPolicy, breakers: CircuitBreakers) -> Self {
        Self { tools: BTreeMap::new(), policy, breakers }
    }

    /// History search and the job tools: they need nothing but the database.
    pub fn register_builtin_tools(&mut self) {
        self.register(Arc::new(SearchHistory));
        self.register(Arc::new(QueueTask));
        self.register(Arc::new(JobStatus));
    }

    /// Adds a tool; a tool with the same name is replaced.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name(), tool);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// The breakers of the services the tools call.
    pub fn breakers(&self) -> &CircuitBreakers {
        &self.breakers
    }

    /// Every tool (sorted by name), whoever may use it.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values()
    }

    /// The specs of every tool (sorted by name, so prompts are stable and cacheable).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|tool| spec_of(tool.as_ref())).collect()
    }

    /// The specs offered to a caller: only the tools its permissions allow.
    pub fn specs_for(&self, is_admin: bool) -> Vec<ToolSpec> {
        self.tools
            .values()
            .filter(|tool| self.policy.allows(tool.as_ref(), is_admin))
            .map(|tool| spec_of(tool.as_ref()))
            .collect()
    }

    /// Run one call with a time limit. Unknown tools, refused permissions and
    /// time-outs go back to the model.
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
        if !self.policy.allows(tool.as_ref(), context.is_admin) {
            return Err(ToolError::RespondToModel(format!("{name} is available to admins only")));
        }
        match tokio::time::timeout(limit, tool.call(context, input)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::RespondToModel(format!("{name} did not finish within {} s", limit.as_secs()))),
        }
    }
}

fn spec_of(tool: &dyn Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name().to_owned(),
        description: tool.description().to_owned(),
        input_schema: tool.input_schema(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Paint;

    #[async_trait::async_trait]
    impl TypedTool for Paint {
        type Input = serde_json::Value;
        const NAME: &'static str = "paint";
        const DESCRIPTION: &'static str = "paints";
        const SPENDS_MONEY: bool = true;
        async fn run(&self, _context: &ToolContext, _input: serde_json::Value) -> Result<String, ToolError> {
            Ok("painted".into())
        }
    }

    fn registry(policy: ToolPolicy) -> ToolRegistry {
        let mut registry = ToolRegistry::new(policy, ToolRegistry::default().breakers().clone());
        registry.register_builtin_tools();
        registry.register(Arc::new(Paint));
        registry
    }

    fn names(specs: Vec<ToolSpec>) -> Vec<String> {
        specs.into_iter().map(|spec| spec.name).collect()
    }

    #[test]
    fn by_default_non_admins_get_only_tools_without_side_effects_or_cost() {
        let registry = registry(ToolPolicy::default());
        assert_eq!(names(registry.specs_for(true)), ["job_status", "paint", "queue_task", "search_history"]);
        // queue_task starts paid background work, so it is admin-only by default.
        assert_eq!(names(registry.specs_for(false)), ["job_status", "search_history"]);
    }

    #[test]
    fn the_configured_list_decides_what_non_admins_may_use() {
        let registry = registry(ToolPolicy { non_admin_tools: Some(vec!["paint".into()]) });
        assert_eq!(names(registry.specs_for(false)), ["paint"]);
    }

    #[tokio::test]
    async fn a_refused_call_goes_back_to_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let context =
            ToolContext { store, conversation_id: "c".into(), turn_id: "t".into(), is_admin: false, user: None };
        let registry = registry(ToolPolicy::default());
        let refused = registry.call(&context, "paint", serde_json::json!({}), Duration::from_secs(5)).await;
        assert_eq!(refused, Err(ToolError::RespondToModel("paint is available to admins only".into())));
        let admin = ToolContext { is_admin: true, ..context };
        assert_eq!(
            registry.call(&admin, "paint", serde_json::json!({}), Duration::from_secs(5)).await.unwrap(),
            "painted"
        );
    }
}
