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
pub mod mcp;
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

use crate::config::ToolsSettings;
use crate::llm::ToolSpec;
use crate::monitoring::breaker::{BreakerConfig, CircuitBreakers, SystemClock};
use crate::storage::{NewSpend, Store};

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
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON schema of the input object.
    fn input_schema(&self) -> serde_json::Value;
    /// True for tools that change things (write files, start work); permission checks use this.
    fn has_side_effects(&self) -> bool {
        false
    }
    /// What one call is estimated to cost beyond the chat turn itself (an
    /// image, a search, a vision or summary call), in millionths of a US
    /// dollar; 0 for free tools. Charged against the spending limit.
    fn cost_microusd(&self) -> u64 {
        0
    }
    fn spends_money(&self) -> bool {
        self.cost_microusd() > 0
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
    /// See [`Tool::cost_microusd`].
    fn cost_microusd(&self) -> u64 {
        0
    }
    async fn run(&self, context: &ToolContext, input: Self::Input) -> Result<String, ToolError>;
}

#[async_trait::async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &str {
        T::NAME
    }

    fn description(&self) -> &str {
        T::DESCRIPTION
    }

    fn input_schema(&self) -> serde_json::Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(T::Input)).unwrap_or_default();
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
            map.remove("title");
        }
        without_null_types(&mut schema);
        schema
    }

    fn has_side_effects(&self) -> bool {
        T::SIDE_EFFECTS
    }

    fn cost_microusd(&self) -> u64 {
        TypedTool::cost_microusd(self)
    }

    async fn call(&self, context: &ToolContext, input: serde_json::Value) -> Result<String, ToolError> {
        let input = serde_json::from_value::<T::Input>(input)
            .map_err(|error| ToolError::RespondToModel(format!("invalid arguments for {}: {error}", T::NAME)))?;
        self.run(context, input).await
    }
}

/// Who may use which tool, and how much non-admins may spend. Admins may
/// use every tool; non-admins the tools named in `non_admin_tools`, or —
/// when that is unset — every tool without side effects. Calls that cost
/// money are recorded for everyone; a non-admin payer (a Telegram chat, else
/// a conversation) is refused once its estimated spending for the current
/// UTC day would pass `non_admin_daily_spend_microusd`.
#[derive(Debug, Clone)]
pub struct ToolPolicy {
    pub non_admin_tools: Option<Vec<String>>,
    pub non_admin_daily_spend_microusd: u64,
}

impl Default for ToolPolicy {
    fn default() -> Self {
        Self::from_settings(&ToolsSettings::default())
    }
}

const DAY_MS: i64 = 86_400_000;

impl ToolPolicy {
    pub fn from_settings(tools: &ToolsSettings) -> Self {
        Self {
            non_admin_tools: tools.non_admin_tools.clone(),
            non_admin_daily_spend_microusd: u64::from(tools.non_admin_daily_spend_cents) * 10_000,
        }
    }

    pub fn allows(&self, tool: &dyn Tool, is_admin: bool) -> bool {
        if is_admin {
            return true;
        }
        match &self.non_admin_tools {
            Some(names) => names.iter().any(|name| name == tool.name()),
            None => !tool.has_side_effects(),
        }
    }
}

/// Micro-dollars as people read them: `$0.04`, `$0.006`.
fn dollars(microusd: i64) -> String {
    let text = format!("{:.3}", microusd as f64 / 1_000_000.0);
    let trimmed = if text.ends_with('0') { &text[..text.len() - 1] } else { &text };
    format!("${trimmed}")
}

/// All tools, by name, with the permission policy and the circuit breakers
/// of the services they call (shown in `/health`).
#[derive(Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    policy: ToolPolicy,
    breakers: CircuitBreakers,
    /// Capabilities configured but off, and why (the prompt tells the model,
    /// so it can tell the user instead of promising the work).
    unavailable: Vec<(&'static str, String)>,
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
        Self { tools: BTreeMap::new(), policy, breakers, unavailable: Vec::new() }
    }

    /// History search and the job tools: they need nothing but the database.
    /// Queued tasks get `max_attempts` attempts (`jobs.max_attempts`).
    pub fn register_builtin_tools(&mut self, max_attempts: u32) {
        self.register(Arc::new(SearchHistory));
        self.register(Arc::new(QueueTask { max_attempts }));
        self.register(Arc::new(JobStatus));
    }

    /// A capability that is configured but cannot work here (`what`, e.g.
    /// "code work"), with the reason people should hear.
    pub fn mark_unavailable(&mut self, what: &'static str, why: impl Into<String>) {
        self.unavailable.push((what, why.into()));
    }

    pub fn unavailable(&self) -> &[(&'static str, String)] {
        &self.unavailable
    }

    /// Adds a tool; a tool with the same name is replaced.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_owned(), tool);
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
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
        self.tools_for(is_admin).map(|tool| spec_of(tool.as_ref())).collect()
    }

    /// The tools an admin (or a non-admin) may use, sorted by name.
    pub fn tools_for(&self, is_admin: bool) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values().filter(move |tool| self.policy.allows(tool.as_ref(), is_admin))
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
        let charge = self.charge(context, tool.as_ref()).await?;
        let result = match tokio::time::timeout(limit, tool.call(context, input)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::RespondToModel(format!("{name} did not finish within {} s", limit.as_secs()))),
        };
        if let (Err(_), Some(charge)) = (&result, charge) {
            // A failed call is taken as having spent nothing.
            if let Err(error) = context.store.refund_spend(charge).await {
                tracing::warn!(%error, tool = name, "could not refund a failed tool call's charge");
            }
        }
        result
    }

    /// Records a paid call's estimated cost before it runs; refuses it when
    /// a non-admin payer would pass today's limit. Returns the charge's id.
    async fn charge(&self, context: &ToolContext, tool: &dyn Tool) -> Result<Option<i64>, ToolError> {
        let cost = i64::try_from(tool.cost_microusd()).unwrap_or(i64::MAX);
        if cost == 0 {
            return Ok(None);
        }
        let payer = payer_of(context).await;
        let now = chrono::Utc::now().timestamp_millis();
        let day_start = now - now.rem_euclid(DAY_MS);
        let limit = i64::try_from(self.policy.non_admin_daily_spend_microusd).unwrap_or(i64::MAX);
        let spend = NewSpend {
            payer: payer.clone(),
            tool: tool.name().to_owned(),
            cost_microusd: cost,
            conversation_id: context.conversation_id.clone(),
            turn_id: context.turn_id.clone(),
            at_ms: now,
        };
        match context.store.charge_spend(&spend, day_start, (!context.is_admin).then_some(limit)).await {
            Ok(Some(id)) => Ok(Some(id)),
            Ok(None) => {
                let spent = context.store.spent_since(&payer, day_start).await.unwrap_or(limit);
                Err(ToolError::RespondToModel(format!(
                    "{} is refused: this chat's spending on paid tools is limited to {} a day for non-admins \
                     ({} used today, this call costs about {}); the limit resets at 00:00 UTC",
                    tool.name(),
                    dollars(limit),
                    dollars(spent),
                    dollars(cost)
                )))
            }
            Err(error) => {
                tracing::error!(%error, tool = tool.name(), "could not record a paid tool call");
                Err(ToolError::RespondToModel(format!(
                    "{} is unavailable right now: its cost could not be recorded",
                    tool.name()
                )))
            }
        }
    }
}

/// Who pays for a call: the Telegram chat (all its conversations share one
/// budget), else the conversation.
async fn payer_of(context: &ToolContext) -> String {
    match context.store.find_conversation(&context.conversation_id).await {
        Ok(Some(conversation)) if conversation.channel == "telegram" => match conversation.chat_id {
            Some(chat_id) => format!("telegram:{chat_id}"),
            None => format!("conversation:{}", conversation.id),
        },
        _ => format!("conversation:{}", context.conversation_id),
    }
}

/// Optional fields are offered as optional, not as nullable: a derived
/// `"type": ["integer", "null"]` becomes `"type": "integer"` (and its `null`
/// default goes), which every client's schema dialect reads; the field stays
/// out of `required`, and a `null` sent anyway still parses as absent.
fn without_null_types(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(types)) = map.get("type") {
                let kept: Vec<&serde_json::Value> = types.iter().filter(|kind| *kind != "null").collect();
                if let [single] = kept[..]
                    && kept.len() < types.len()
                {
                    let single = single.clone();
                    map.insert("type".into(), single);
                    if map.get("default").is_some_and(serde_json::Value::is_null) {
                        map.remove("default");
                    }
                }
            }
            map.values_mut().for_each(without_null_types);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_null_types),
        _ => {}
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
    use crate::storage::NewConversation;

    /// A paid tool; `{"fail": true}` makes the call fail.
    struct Paint;

    #[async_trait::async_trait]
    impl TypedTool for Paint {
        type Input = serde_json::Value;
        const NAME: &'static str = "paint";
        const DESCRIPTION: &'static str = "paints";
        fn cost_microusd(&self) -> u64 {
            40_000
        }
        async fn run(&self, _context: &ToolContext, input: serde_json::Value) -> Result<String, ToolError> {
            if input["fail"] == true {
                return Err(ToolError::RespondToModel("the paint ran out".into()));
            }
            Ok("painted".into())
        }
    }

    fn registry(policy: ToolPolicy) -> ToolRegistry {
        let mut registry = ToolRegistry::new(policy, ToolRegistry::default().breakers().clone());
        registry.register_builtin_tools(3);
        registry.register(Arc::new(Paint));
        registry
    }

    fn names(specs: Vec<ToolSpec>) -> Vec<String> {
        specs.into_iter().map(|spec| spec.name).collect()
    }

    #[test]
    fn by_default_non_admins_get_the_tools_without_side_effects() {
        let registry = registry(ToolPolicy::default());
        assert_eq!(names(registry.specs_for(true)), ["job_status", "paint", "queue_task", "search_history"]);
        // queue_task starts background work, so it is admin-only by default;
        // paint only costs money, which the spending limit bounds.
        assert_eq!(names(registry.specs_for(false)), ["job_status", "paint", "search_history"]);
    }

    #[test]
    fn the_configured_list_decides_what_non_admins_may_use() {
        let registry = registry(ToolPolicy { non_admin_tools: Some(vec!["paint".into()]), ..ToolPolicy::default() });
        assert_eq!(names(registry.specs_for(false)), ["paint"]);
    }

    #[test]
    fn optional_fields_are_optional_not_nullable() {
        let schema = SearchHistory.input_schema();
        assert_eq!(schema["properties"]["limit"]["type"], "integer", "{schema}");
        assert!(schema["properties"]["limit"].get("default").is_none(), "{schema}");
        assert_eq!(schema["required"], serde_json::json!(["query"]));
        assert!(!schema.to_string().contains("\"null\""), "{schema}");
        // A null sent anyway still reads as absent.
        let input: search_history::SearchHistoryInput =
            serde_json::from_value(serde_json::json!({"query": "x", "limit": null})).unwrap();
        assert_eq!(input.limit, None);
    }

    #[test]
    fn amounts_read_as_dollars() {
        assert_eq!(dollars(200_000), "$0.20");
        assert_eq!(dollars(40_000), "$0.04");
        assert_eq!(dollars(6_000), "$0.006");
        assert_eq!(dollars(1_500_000), "$1.50");
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        (dir, store)
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_refused_call_goes_back_to_the_model() {
        let (_dir, store) = store().await;
        let context =
            ToolContext { store, conversation_id: "c".into(), turn_id: "t".into(), is_admin: false, user: None };
        let registry = registry(ToolPolicy::default());
        let input = serde_json::json!({"task": "x"});
        let refused = registry.call(&context, "queue_task", input, LIMIT).await;
        assert_eq!(refused, Err(ToolError::RespondToModel("queue_task is available to admins only".into())));
    }

    #[tokio::test]
    async fn non_admins_stop_at_the_daily_limit_per_chat_failures_are_refunded_and_admins_only_recorded() {
        let (_dir, store) = store().await;
        let chat = |title: &str| NewConversation { title: title.into(), channel: "telegram".into(), chat_id: Some(7) };
        let first = store.create_conversation(chat("one")).await.unwrap();
        let second = store.create_conversation(chat("two")).await.unwrap();
        let policy = ToolPolicy { non_admin_daily_spend_microusd: 100_000, ..ToolPolicy::default() };
        let registry = registry(policy);
        let user = |conversation: &str| ToolContext {
            store: store.clone(),
            conversation_id: conversation.into(),
            turn_id: "t".into(),
            is_admin: false,
            user: None,
        };
        let paint = serde_json::json!({});
        let failing = serde_json::json!({"fail": true});
        assert_eq!(registry.call(&user(&first.id), "paint", paint.clone(), LIMIT).await.unwrap(), "painted");
        // A failed call costs nothing.
        assert!(registry.call(&user(&first.id), "paint", failing, LIMIT).await.is_err());
        // Both conversations of Telegram chat 7 share its budget: 40 + 40 of 100.
        assert_eq!(registry.call(&user(&second.id), "paint", paint.clone(), LIMIT).await.unwrap(), "painted");
        let refused = registry.call(&user(&second.id), "paint", paint.clone(), LIMIT).await.unwrap_err();
        let ToolError::RespondToModel(text) = refused else { panic!("not for the model: {refused:?}") };
        assert!(text.starts_with("paint is refused: this chat's spending on paid tools is limited to $0.10 a day"));
        assert!(text.contains("($0.08 used today, this call costs about $0.04)"), "{text}");
        // Another payer (a web conversation) has its own budget.
        assert!(registry.call(&user("web-conversation"), "paint", paint.clone(), LIMIT).await.is_ok());
        // Admins are not limited, but what they spend is recorded.
        let admin = ToolContext { is_admin: true, ..user(&first.id) };
        for _ in 0..3 {
            assert_eq!(registry.call(&admin, "paint", paint.clone(), LIMIT).await.unwrap(), "painted");
        }
        assert_eq!(store.spent_since("telegram:7", 0).await.unwrap(), 200_000);
        assert_eq!(store.spent_since("conversation:web-conversation", 0).await.unwrap(), 40_000);
        // Free tools are never charged or refused.
        let search = serde_json::json!({"query": "x"});
        assert!(registry.call(&user(&first.id), "search_history", search, LIMIT).await.is_ok());
    }
}
