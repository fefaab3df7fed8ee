//! The agent: one turn = classify → route → (model → tools …) → answer,
//! reported as [`AgentEvent`]s that every channel consumes the same way, with
//! the transcript persisted as it happens.
//!
//! Invariants: the agent never imports a channel; every turn ends with exactly
//! one `Done` event (also after a fatal error, whose explanation is the reply);
//! a turn keeps running and persisting if its event consumer goes away.

pub mod context;
pub mod events;
pub mod health;
pub mod history;
pub mod intent;
pub mod media;
pub mod outbox;
pub mod project;
pub mod prompt;
pub mod streaming;
pub mod tools;
mod turn;

/// The sender of a chat message (channels fill `TurnRequest::user` with it).
pub use crate::workspace::ChatUser;
pub use events::{AgentEvent, ToolCallReport, TurnFailure};
pub use intent::{ClassifierBackend, Intent, IntentClassifier, IntentLabel, IntentSource};
pub use tools::{Tool, ToolContext, ToolError, ToolRegistry};
pub use turn::{CANCELLED_RECORD, CRASH_RECORD, INTERRUPTED_MARK, STOPPED_MARK};

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use crate::config::{AgentSettings, ContextSettings, IntentRoutes, TierModels};
use crate::llm::ChatModel;
use crate::monitoring::resources::ResourceMonitor;
use crate::storage::{Conversation, NewConversation, StorageResult, Store};

/// The chat model for turns plus its tier → model-name map.
#[derive(Clone)]
pub struct ModelSet {
    /// The model every caller uses: `watch` behind the neutral interface.
    pub client: Arc<dyn ChatModel>,
    /// The same model with its breaker (housekeeping probes it while idle).
    pub watch: Arc<crate::llm::watched::WatchedModel>,
    pub tiers: TierModels,
    pub endpoint: ModelEndpoint,
}

/// Where the model is and how it is configured, for messages that tell an
/// admin what to fix.
#[derive(Debug, Clone)]
pub struct ModelEndpoint {
    /// The base URL without any user name or password in it.
    pub url: String,
    /// The environment variable holding the key (`ANTHROPIC_API_KEY`).
    pub key_variable: &'static str,
    /// Where the tier model names are set (`[openai.models]`).
    pub models_section: &'static str,
}

impl std::fmt::Debug for ModelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSet").field("provider", &self.client.provider_name()).field("tiers", &self.tiers).finish()
    }
}

/// Everything the agent needs, built by the app.
#[derive(Debug)]
pub struct AgentParts {
    pub store: Store,
    /// `None` when no provider is configured: turns answer how to configure one.
    pub models: Option<ModelSet>,
    pub tools: ToolRegistry,
    pub classifier: IntentClassifier,
    pub persona: String,
    pub settings: AgentSettings,
    pub context: ContextSettings,
    pub routes: IntentRoutes,
    pub max_tokens: u32,
    /// How long a model may be silent before the chat hears "still waiting".
    pub waiting_notice: std::time::Duration,
    /// Counts turns in progress (load shedding, `/api/status`).
    pub monitor: ResourceMonitor,
    /// Per-model token ratios learned from the providers' counts.
    pub calibration: context::TokenCalibration,
    /// The workspaces the system prompt names (the chat's own, or those to choose from).
    pub projects: project::ProjectDirectory,
    /// The library's MCP servers for the chat (`None`: the library has none marked `chat`).
    pub mcp: Option<tools::mcp::McpToolset>,
}

/// Cheap to clone; shared by all channels.
#[derive(Debug, Clone)]
pub struct Agent {
    parts: Arc<AgentParts>,
    locks: Arc<ConversationLocks>,
    /// Every turn in progress, whichever door started it (the shutdown waits on it).
    turns: tokio_util::task::TaskTracker,
    /// Cancelled when the shutdown's grace period is over: turns still
    /// running store what they streamed, marked interrupted, and end.
    interrupt: tokio_util::sync::CancellationToken,
    /// The stop token of every turn in progress, by turn id (`cancel_turn`).
    running: Arc<RunningTurns>,
}

/// Turns in progress that a person can stop: turn id → the turn's `TurnRequest::cancel`.
#[derive(Debug, Default)]
pub(crate) struct RunningTurns {
    tokens: std::sync::Mutex<HashMap<String, tokio_util::sync::CancellationToken>>,
}

/// Removes its turn from [`RunningTurns`] when the turn ends (however it ends).
pub(crate) struct RunningTurn<'a> {
    turns: &'a RunningTurns,
    id: String,
}

impl RunningTurns {
    pub(crate) fn register(&self, id: &str, token: tokio_util::sync::CancellationToken) -> RunningTurn<'_> {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_owned(), token);
        RunningTurn { turns: self, id: id.to_owned() }
    }

    fn cancel(&self, id: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.get(id).map(tokio_util::sync::CancellationToken::cancel).is_some()
    }
}

impl Drop for RunningTurn<'_> {
    fn drop(&mut self) {
        self.turns.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// One lock per conversation with a turn in progress, so two turns of one
/// conversation (two browser tabs, a retry) never interleave their messages.
#[derive(Debug, Default)]
struct ConversationLocks {
    active: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl ConversationLocks {
    fn lock_for(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        active.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = active.get(conversation_id).and_then(Weak::upgrade) {
            return existing;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        active.insert(conversation_id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// One user message to answer.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub conversation: Conversation,
    pub text: String,
    pub is_admin: bool,
    /// The chat member who sent it (Telegram); `None` for operator doors and background tasks.
    pub user: Option<crate::workspace::ChatUser>,
    /// Images sent with the message (already stored under the data dir); the
    /// model sees them in this turn, the transcript keeps `[image: …]` references.
    pub images: Vec<media::ImageAttachment>,
    /// The user's message is stored once under this key: a message handled
    /// again (a Telegram update after a crash) is not in the history twice.
    pub once_key: Option<String>,
    /// Cancelled by the person (Ctrl-C in `valor chat`): the turn stops its
    /// model stream and tools, stores what was streamed ending in
    /// `STOPPED_MARK`, is recorded failed with `CANCELLED_RECORD` and ends
    /// with `Done` (no `Error`); its outcome's failure is `Cancelled`.
    /// `CancellationToken::new()` for a turn nobody can stop.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// How a turn ended (the same facts as its `Done` event).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub conversation: String,
    pub turn_id: Option<String>,
    pub reply: String,
    pub tool_calls: Vec<ToolCallReport>,
    /// Why the turn ended early, if it did.
    pub failure: Option<TurnFailure>,
}

impl TurnOutcome {
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// The reply when no model provider is configured.
pub const NO_MODEL_REPLY: &str = "I can't answer yet: no model provider is configured. \
Set ANTHROPIC_API_KEY (Anthropic) or OPENAI_API_KEY (OpenAI), or OPENAI_BASE_URL alone for a local \
OpenAI-compatible server (Ollama at http://127.0.0.1:11434/v1, vLLM, llama.cpp), then restart valor. \
`valor doctor` shows what is configured.";

impl Agent {
    pub fn new(parts: AgentParts) -> Self {
        Self {
            parts: Arc::new(parts),
            locks: Arc::default(),
            turns: tokio_util::task::TaskTracker::new(),
            interrupt: tokio_util::sync::CancellationToken::new(),
            running: Arc::default(),
        }
    }

    /// Stop the turn `turn_id` if it is in progress here (its answer so far is
    /// kept, marked stopped); false when no such turn is running.
    pub fn cancel_turn(&self, turn_id: &str) -> bool {
        self.running.cancel(turn_id)
    }

    pub fn store(&self) -> &Store {
        &self.parts.store
    }

    /// The resource monitor: turns in progress, samples, the high-water mark.
    pub fn monitor(&self) -> &ResourceMonitor {
        &self.parts.monitor
    }

    /// The chat's MCP servers, if the library has any.
    pub fn mcp(&self) -> Option<&tools::mcp::McpToolset> {
        self.parts.mcp.as_ref()
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.parts.tools
    }

    /// The configured model client and tier names (`None`: no provider configured).
    pub fn models(&self) -> Option<&ModelSet> {
        self.parts.models.as_ref()
    }

    pub fn provider_name(&self) -> Option<&'static str> {
        self.parts.models.as_ref().map(|m| m.client.provider_name())
    }

    /// True when the configured chat model can look at images.
    pub fn sees_images(&self) -> bool {
        self.provider_name().is_some_and(media::vision_capable)
    }

    pub fn classifier_name(&self) -> &'static str {
        self.parts.classifier.backend_name()
    }

    /// The conversation with this id or title, created (with that title) if none exists.
    pub async fn open_conversation(&self, id_or_title: &str, channel: &str) -> StorageResult<Conversation> {
        if let Some(found) = self.parts.store.find_conversation(id_or_title).await? {
            return Ok(found);
        }
        self.new_conversation(id_or_title, channel).await
    }

    /// A new conversation titled `title`, whatever other conversations are called.
    pub async fn new_conversation(&self, title: &str, channel: &str) -> StorageResult<Conversation> {
        let new = NewConversation { title: title.to_owned(), channel: channel.to_owned(), chat_id: None };
        self.parts.store.create_conversation(new).await
    }

    /// Run a turn on its own task; events arrive on the returned receiver.
    /// The turn finishes (and is persisted) even if the receiver is dropped.
    pub fn spawn_turn(&self, request: TurnRequest) -> mpsc::Receiver<AgentEvent> {
        let (sender, receiver) = mpsc::channel(256);
        let agent = self.clone();
        tokio::spawn(async move {
            agent.run_turn(request, &sender).await;
        });
        receiver
    }

    /// Run a turn to the end, sending events as it goes. Turns of the same
    /// conversation run one after another, in arrival order.
    pub async fn run_turn(&self, request: TurnRequest, events: &mpsc::Sender<AgentEvent>) -> TurnOutcome {
        let _tracked = self.turns.token();
        let _counted = self.parts.monitor.enter_turn();
        let lock = self.locks.lock_for(&request.conversation.id);
        let _turn_in_progress = lock.lock().await;
        turn::run(&self.parts, request, events, (&self.interrupt, &self.running)).await
    }

    /// Shutdown: let the turns in progress finish for `grace`, then
    /// interrupt the rest (each stores what it streamed, marked
    /// interrupted) and wait for them to do so, up to `save`.
    pub async fn stop_turns(&self, grace: std::time::Duration, save: std::time::Duration) {
        self.turns.close();
        if tokio::time::timeout(grace, self.turns.wait()).await.is_ok() {
            return;
        }
        tracing::warn!("{} turn(s) still running after {} s; interrupting them", self.turns.len(), grace.as_secs());
        self.interrupt.cancel();
        if tokio::time::timeout(save, self.turns.wait()).await.is_err() {
            tracing::warn!("{} interrupted turn(s) did not finish saving", self.turns.len());
        }
    }
}
