//! The turn loop. Persists the user message, labels and routes it, then
//! alternates model calls and tool calls (independent calls in parallel) until
//! the model answers or the step limit is reached. Every outcome — answer,
//! recoverable tool error, fatal error — is persisted and ends in `Done`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use super::context::{TokenCalibration, prepare};
use super::events::{AgentEvent, ToolCallReport, TurnFailure};
use super::prompt::{PromptContext, system_prompt, today};
use super::tools::{ToolContext, ToolError, ToolRegistry};
use super::{AgentParts, NO_MODEL_REPLY, TurnOutcome, TurnRequest};
use crate::llm::{ChatRequest, ContentBlock, LlmError, Message, Role, StreamEvent, Usage};
use crate::storage::{MessageRole, NewAuditEvent, NewMessage, NewTurn, StorageError, TurnFinish, TurnStatus};

/// Why a turn ended early; the message is what the user sees.
enum Failure {
    Model(LlmError),
    Tool(String),
    Storage(StorageError),
    /// valor shut down before the turn ended.
    Interrupted,
    /// The person stopped the turn (`TurnRequest::cancel`).
    Cancelled,
}

/// Ends an answer cut short by a shutdown, in the stored history.
pub const INTERRUPTED_MARK: &str = " […interrupted: valor was shutting down]";

/// Ends an answer the person stopped (Ctrl-C, a Stop button), in the stored history.
pub const STOPPED_MARK: &str = " [stopped]";

/// `turns.error` of a turn the person stopped.
pub const CANCELLED_RECORD: &str = "cancelled: stopped by the person";

/// `turns.error` of a turn found `running` when valor starts: a crash (or a
/// kill) ended it, since a clean stop finishes every turn it interrupts.
pub const CRASH_RECORD: &str = "interrupted: valor stopped before the turn ended (found at start-up)";

/// What a chat hears when the model is slow to start answering.
pub const WAITING_NOTICE: &str = "still waiting for the model…";

/// Longest failure detail kept in `turns.error`.
const MAX_RECORDED_ERROR_CHARS: usize = 500;

impl Failure {
    fn user_message(&self, model: Option<&ModelFacts<'_>>, is_admin: bool) -> String {
        match self {
            Failure::Model(error) => model_failure_message(error, model, is_admin),
            Failure::Tool(message) => format!("I had to stop: {message}"),
            Failure::Storage(_) => "I could not save this conversation, so I stopped. Please try again shortly.".into(),
            Failure::Interrupted => "valor is restarting, so I stopped here. Ask again in a moment.".into(),
            Failure::Cancelled => "Stopped.".into(),
        }
    }

    fn kind(&self) -> TurnFailure {
        match self {
            Failure::Model(LlmError::NotConfigured) => TurnFailure::NoModel,
            Failure::Model(error) if error.is_retryable() => TurnFailure::ModelUnavailable,
            Failure::Model(_) => TurnFailure::Model,
            Failure::Tool(_) => TurnFailure::Tool,
            Failure::Storage(_) => TurnFailure::Storage,
            Failure::Interrupted => TurnFailure::Interrupted,
            Failure::Cancelled => TurnFailure::Cancelled,
        }
    }

    /// What `turns.error` and the log keep: the class and the provider's
    /// own (already redacted) message, bounded.
    fn record(&self) -> String {
        let text = match self {
            Failure::Model(error) => format!("model:{}: {error}", error.kind()),
            Failure::Tool(message) => format!("tool: {message}"),
            Failure::Storage(error) => format!("storage: {error}"),
            Failure::Interrupted => "interrupted: valor shut down before the turn ended".into(),
            Failure::Cancelled => CANCELLED_RECORD.into(),
        };
        crate::llm::transport::truncate_chars(&text, MAX_RECORDED_ERROR_CHARS)
    }
}

/// The model a turn used, for failure messages.
pub struct ModelFacts<'a> {
    pub name: &'a str,
    pub endpoint: &'a super::ModelEndpoint,
}

/// One actionable line per provider failure. Admins (who can fix it) get
/// the model, the endpoint and the provider's own message; everyone else
/// the kind of trouble. Never a secret (provider messages are redacted).
pub fn model_failure_message(error: &LlmError, model: Option<&ModelFacts<'_>>, is_admin: bool) -> String {
    let detail = model.filter(|_| is_admin);
    let at = detail.map(|m| format!(" at {}", m.endpoint.url)).unwrap_or_default();
    match error {
        LlmError::NotConfigured => NO_MODEL_REPLY.to_owned(),
        LlmError::Auth(message) => match detail {
            Some(m) => format!(
                "The model provider{at} rejected valor's API key ({message}). Check {} with `valor doctor`.",
                m.endpoint.key_variable
            ),
            None => "The model provider rejected valor's API key; valor's owner needs to fix its configuration.".into(),
        },
        LlmError::RateLimited { .. } => {
            "The model provider is rate limiting me right now. Please try again in a minute.".into()
        }
        LlmError::Overloaded { .. } => "The model provider is overloaded right now. Please try again shortly.".into(),
        LlmError::ContextTooLong => {
            "This conversation has grown too long for the model. Start a fresh conversation and I'll pick it up.".into()
        }
        LlmError::BadRequest(message) | LlmError::InvalidResponse(message) => match detail {
            Some(m) => {
                let verb = if matches!(error, LlmError::BadRequest(_)) {
                    "refused the request"
                } else {
                    "sent an answer valor cannot read"
                };
                let mut line = format!("The model `{}`{at} {verb}: {message}.", m.name);
                if names_a_missing_model(message) {
                    line.push_str(&format!(
                        " Set model names the server has in `{}` (`valor doctor` checks them).",
                        m.endpoint.models_section
                    ));
                }
                line
            }
            None => "The model provider could not handle this request; valor's owner can see why in its log.".into(),
        },
        LlmError::Server { .. } | LlmError::Network(_) | LlmError::Timeout => match detail {
            Some(_) => format!("I can't reach the model provider{at} right now ({error}). Please try again shortly."),
            None => "I can't reach the model provider right now. Please try again shortly.".into(),
        },
    }
}

/// Whether a provider's refusal says the model name is unknown (Ollama:
/// "model \"x\" not found", OpenAI: "The model `x` does not exist").
fn names_a_missing_model(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("model")
        && ["not found", "does not exist", "no such model", "unknown model", "not available"]
            .iter()
            .any(|needle| lower.contains(needle))
}

struct TurnState<'a> {
    parts: &'a AgentParts,
    /// The turn's intent label (which MCP servers fit it).
    intent: &'static str,
    events: &'a mpsc::Sender<AgentEvent>,
    conversation_id: String,
    turn_id: String,
    reply: String,
    tool_calls: Vec<ToolCallReport>,
    usage: Usage,
    steps: u32,
    /// History tokens sent with the first request, and tokens compaction saved.
    context: (u64, u64),
}

/// Content blocks as the JSON stored with a message.
fn blocks_json(content: &[ContentBlock]) -> serde_json::Value {
    serde_json::to_value(content).unwrap_or_else(|_| json!([]))
}

impl TurnState<'_> {
    async fn emit(&self, event: AgentEvent) {
        // A consumer that went away must not stop the turn.
        let _ = self.events.send(event).await;
    }

    async fn persist(&self, role: MessageRole, content: &[ContentBlock], text: String) -> Result<(), Failure> {
        let content = blocks_json(content);
        self.parts
            .store
            .append_message(NewMessage {
                conversation_id: self.conversation_id.clone(),
                role,
                content,
                text,
                turn_id: Some(self.turn_id.clone()),
            })
            .await
            .map(|_| ())
            .map_err(Failure::Storage)
    }

    /// Every tool call is audit-logged (who, which tool, with what, outcome).
    async fn audit_tool_call(&self, id: &str, name: &str, input: &serde_json::Value, is_error: bool) {
        let event = NewAuditEvent {
            kind: "tool_call".into(),
            actor: format!("conversation:{}", self.conversation_id),
            subject: name.to_owned(),
            decision: if is_error { "error" } else { "ok" }.into(),
            detail: json!({"turn_id": self.turn_id, "tool_use_id": id, "input": input}),
        };
        if let Err(error) = self.parts.store.record_audit(event).await {
            tracing::warn!(%error, tool = name, "could not audit-log a tool call");
        }
    }

    async fn push_text(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.reply.push_str(&text);
        self.emit(AgentEvent::TextDelta { text }).await;
    }
}

pub(super) async fn run(
    parts: &AgentParts,
    request: TurnRequest,
    events: &mpsc::Sender<AgentEvent>,
    (interrupt, running): (&tokio_util::sync::CancellationToken, &super::RunningTurns),
) -> TurnOutcome {
    let started = Instant::now();
    let conversation_id = request.conversation.id.clone();
    let intent = parts.classifier.classify(&request.text).await;
    let tier = intent.label.tier(&parts.routes);
    let (provider, model_name) = match &parts.models {
        Some(models) => (models.client.provider_name(), models.tiers.for_tier(tier).to_owned()),
        None => ("none", "none".to_owned()),
    };
    let new_turn = NewTurn {
        conversation_id: conversation_id.clone(),
        intent: intent.label.as_str().into(),
        intent_source: intent.source.as_str().into(),
        tier: tier.as_str().into(),
        provider: provider.into(),
        model: model_name.clone(),
    };
    // The user's message is stored with the turn's start, in one commit.
    let user_text = user_text_with_image_references(&request);
    let opening = NewMessage {
        conversation_id: conversation_id.clone(),
        role: MessageRole::User,
        content: blocks_json(&[ContentBlock::Text { text: user_text.clone() }]),
        text: user_text,
        turn_id: None,
    };
    let turn = match parts.store.start_turn_once(new_turn, Some(opening), request.once_key.as_deref()).await {
        Ok(turn) => turn,
        Err(error) => return storage_failure_before_turn(events, conversation_id, error).await,
    };
    let _running = running.register(&turn.id, request.cancel.clone());
    tracing::info!(turn = %turn.id, conversation = %conversation_id, intent = intent.label.as_str(),
        intent_source = intent.source.as_str(), model = %model_name, "turn started");
    let mut state = TurnState {
        parts,
        intent: intent.label.as_str(),
        events,
        conversation_id: conversation_id.clone(),
        turn_id: turn.id.clone(),
        reply: String::new(),
        tool_calls: Vec::new(),
        usage: Usage::default(),
        steps: 0,
        context: (0, 0),
    };
    state
        .emit(AgentEvent::TurnStarted {
            conversation: conversation_id.clone(),
            turn_id: turn.id.clone(),
            intent: intent.label.as_str().into(),
            model: model_name.clone(),
        })
        .await;
    let result = match &parts.models {
        Some(_) => tokio::select! {
            result = run_steps(&mut state, &request, &model_name) => result,
            () = interrupt.cancelled() => Err(Failure::Interrupted),
            () = request.cancel.cancelled() => Err(Failure::Cancelled),
        },
        None => Err(Failure::Model(LlmError::NotConfigured)),
    };
    store_cut_answer(&state, &result).await;
    let failure = result.as_ref().err().map(Failure::kind);
    let status = match &result {
        Ok(()) => TurnStatus::Completed,
        Err(Failure::Cancelled) => TurnStatus::Cancelled,
        Err(Failure::Interrupted) => TurnStatus::Interrupted,
        Err(_) => TurnStatus::Failed,
    };
    let error = match result {
        Ok(()) => None,
        Err(Failure::Cancelled) => {
            // The person asked for it: no error event, no notice, the streamed text is the reply.
            tracing::info!(turn = %turn.id, "turn stopped by the person");
            Some(Failure::Cancelled.record())
        }
        Err(failure) => {
            let facts =
                parts.models.as_ref().map(|models| ModelFacts { name: &model_name, endpoint: &models.endpoint });
            let message = failure.user_message(facts.as_ref(), request.is_admin);
            let record = failure.record();
            tracing::warn!(turn = %turn.id, error = %record, "turn ended early");
            state.emit(AgentEvent::Error { message: message.clone(), failure: failure.kind() }).await;
            if !state.reply.is_empty() {
                state.push_text("\n\n".into()).await;
            }
            state.push_text(message.clone()).await;
            let notice = [ContentBlock::Text { text: message.clone() }];
            // Best effort: the notice is for people reading the transcript (the model sees it marked as a notice).
            let _ = state.persist(MessageRole::System, &notice, message).await;
            Some(record)
        }
    };
    let finish = TurnFinish {
        status,
        steps: state.steps,
        input_tokens: state.usage.input_tokens,
        output_tokens: state.usage.output_tokens,
        error,
        context_tokens: state.context.0,
        tokens_saved: state.context.1,
    };
    if let Err(error) = parts.store.finish_turn(&turn.id, finish).await {
        tracing::error!(turn = %turn.id, %error, "could not record the end of a turn");
    }
    metrics::counter!("valor_turns_total", "status" => status.as_str()).increment(1);
    metrics::histogram!("valor_turn_seconds").record(started.elapsed().as_secs_f64());
    let done = AgentEvent::Done {
        conversation: conversation_id.clone(),
        reply: state.reply.clone(),
        tool_calls: state.tool_calls.clone(),
        stopped: status == TurnStatus::Cancelled,
    };
    state.emit(done).await;
    TurnOutcome {
        conversation: conversation_id,
        turn_id: Some(turn.id),
        reply: state.reply,
        tool_calls: state.tool_calls,
        failure,
    }
}

/// What was streamed before a shutdown or a stop is kept in the history,
/// marked, for people and the model. A stopped turn is stored even when
/// nothing was streamed, so its question stays a turn of its own and is not
/// merged into the next one.
async fn store_cut_answer(state: &TurnState<'_>, result: &Result<(), Failure>) {
    let streamed = state.reply.trim_end();
    let partial = match result {
        Err(Failure::Interrupted) if !streamed.trim().is_empty() => format!("{streamed}{INTERRUPTED_MARK}"),
        Err(Failure::Cancelled) => format!("{streamed}{STOPPED_MARK}").trim_start().to_owned(),
        _ => return,
    };
    let _ = state.persist(MessageRole::Assistant, &[ContentBlock::Text { text: partial.clone() }], partial).await;
}

async fn storage_failure_before_turn(
    events: &mpsc::Sender<AgentEvent>,
    conversation: String,
    error: StorageError,
) -> TurnOutcome {
    tracing::error!(%error, "could not start a turn");
    let reply = Failure::Storage(error).user_message(None, false);
    let _ = events.send(AgentEvent::Error { message: reply.clone(), failure: TurnFailure::Storage }).await;
    let _ = events
        .send(AgentEvent::Done {
            conversation: conversation.clone(),
            reply: reply.clone(),
            tool_calls: vec![],
            stopped: false,
        })
        .await;
    TurnOutcome { conversation, turn_id: None, reply, tool_calls: vec![], failure: Some(TurnFailure::Storage) }
}

async fn run_steps(state: &mut TurnState<'_>, request: &TurnRequest, model_name: &str) -> Result<(), Failure> {
    let parts = state.parts;
    let Some(models) = &parts.models else { return Err(Failure::Model(LlmError::NotConfigured)) };
    // The stored rows (content as JSON trees) are the turn's largest
    // allocation and grow with the conversation; they are dropped here,
    // before the model is awaited, so a turn waiting on its model holds only
    // the messages it sends (the load harness's RSS growth over 10,000 turns).
    let prepared = {
        let stored = parts
            .store
            .recent_messages(&state.conversation_id, parts.context.max_loaded_messages.max(1))
            .await
            .map_err(Failure::Storage)?;
        let summarizer = Some((models.client.as_ref(), models.tiers.small.as_str()));
        let estimator = parts.calibration.estimator_for(model_name);
        prepare(&parts.store, &parts.context, estimator, summarizer, &state.conversation_id, &stored).await
    };
    state.context = (prepared.context_tokens, prepared.tokens_saved);
    if prepared.summary_tokens > 0
        && let Err(error) = parts.store.add_turn_summary_tokens(&state.turn_id, prepared.summary_tokens).await
    {
        tracing::warn!(%error, "could not record the tokens spent on the summary");
    }
    let mut messages = prepared.messages;
    attach_images(&mut messages, &request.images);
    // The registry plus the MCP tools that fit this turn (the library's servers).
    let registry = match &parts.mcp {
        Some(mcp) => std::borrow::Cow::Owned(
            mcp.registry_for_turn(&parts.tools, &request.text, state.intent, request.is_admin).await,
        ),
        None => std::borrow::Cow::Borrowed(&parts.tools),
    };
    let tools = registry.specs_for(request.is_admin);
    let requester = crate::workspace::Requester { user: request.user.clone(), is_admin: request.is_admin };
    let context = PromptContext {
        channel: &request.conversation.channel,
        conversation_title: &request.conversation.title,
        workspace: parts.projects.scope_for(&request.conversation, &requester).await,
        run_branch_prefix: parts.projects.branch_prefix(),
        date: today(),
        unavailable: parts.tools.unavailable(),
    };
    let system = system_prompt(&parts.persona, &context, &tools);
    let tool_context = ToolContext {
        store: parts.store.clone(),
        conversation_id: state.conversation_id.clone(),
        turn_id: state.turn_id.clone(),
        is_admin: request.is_admin,
        user: request.user.clone(),
    };
    while state.steps < parts.settings.max_steps {
        state.steps += 1;
        // The request owns the history for the call and hands it back (no copy per step).
        let mut chat = ChatRequest::new(model_name, system.clone(), std::mem::take(&mut messages));
        chat.tools = tools.clone();
        chat.max_tokens = parts.max_tokens;
        let response = stream_one_step(state, models.client.as_ref(), &chat).await?;
        if state.steps == 1 {
            calibrate(&parts.calibration, &models.client, &chat, response.usage.input_tokens);
        }
        messages = chat.messages;
        state.usage.input_tokens += response.usage.input_tokens;
        state.usage.output_tokens += response.usage.output_tokens;
        let assistant = response.message;
        state.persist(MessageRole::Assistant, &assistant.content, assistant.text()).await?;
        let calls: Vec<(String, String, serde_json::Value)> =
            assistant.tool_uses().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
        messages.push(assistant);
        if calls.is_empty() {
            return Ok(());
        }
        let results = run_tools(state, &registry, &tool_context, calls).await?;
        let text = results
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolResult { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        state.persist(MessageRole::Tool, &results, text).await?;
        messages.push(Message { role: Role::User, content: results });
    }
    let note = format!(
        "I stopped after {} steps without finishing. Ask me to continue, or narrow the request.",
        parts.settings.max_steps
    );
    let separator = if state.reply.is_empty() { "" } else { "\n\n" };
    state.push_text(format!("{separator}{note}")).await;
    state.persist(MessageRole::Assistant, &[ContentBlock::Text { text: note.clone() }], note).await
}

/// The stored user text: the message plus one `[image: …]` reference per image.
fn user_text_with_image_references(request: &TurnRequest) -> String {
    let mut text = request.text.clone();
    for image in &request.images {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&super::media::placeholder(&image.reference));
    }
    text
}

/// The turn's images go into its (last, just stored) user message, for this turn only.
fn attach_images(messages: &mut [Message], images: &[super::media::ImageAttachment]) {
    if let Some(last) = messages.last_mut().filter(|message| message.role == Role::User) {
        last.content.extend(images.iter().map(|image| ContentBlock::image(image.media_type.clone(), &image.bytes)));
    }
}

/// One model call, streaming its text to the channel as it arrives.
/// Teaches the token estimate this model's ratio: from the answer's own
/// input-token usage, else (once per model) from the provider's count
/// endpoint, asked in the background so the turn never waits for it.
fn calibrate(
    calibration: &TokenCalibration,
    client: &std::sync::Arc<dyn crate::llm::ChatModel>,
    chat: &ChatRequest,
    input_tokens: u64,
) {
    if input_tokens > 0 {
        calibration.observe(&chat.model, chat, input_tokens);
        return;
    }
    if calibration.is_calibrated(&chat.model) || !calibration.claim_count(&chat.model) {
        return;
    }
    let (calibration, client, chat) = (calibration.clone(), client.clone(), chat.clone());
    tokio::spawn(async move {
        match tokio::time::timeout(COUNT_TIMEOUT, client.count_input_tokens(&chat)).await {
            Ok(Ok(Some(tokens))) => {
                calibration.observe(&chat.model, &chat, tokens);
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "token count unavailable; keeping the estimate"),
            Err(_) => tracing::debug!("token count timed out; keeping the estimate"),
        }
    });
}

/// How long a background token count may take.
const COUNT_TIMEOUT: Duration = Duration::from_secs(10);

async fn stream_one_step(
    state: &mut TurnState<'_>,
    model: &dyn crate::llm::ChatModel,
    chat: &ChatRequest,
) -> Result<crate::llm::ChatResponse, Failure> {
    // Until the model's first event: say once that it is slow.
    let notice = state.parts.waiting_notice;
    let mut first = std::pin::pin!(async {
        let mut stream = model.stream(chat).await?;
        let item = stream.next().await;
        Ok::<_, LlmError>((stream, item))
    });
    let started = tokio::select! {
        started = &mut first => started,
        () = tokio::time::sleep(notice) => {
            state.emit(AgentEvent::Waiting { message: WAITING_NOTICE.into() }).await;
            first.await
        }
    };
    let (mut stream, mut item) = started.map_err(Failure::Model)?;
    let mut separated = state.reply.is_empty();
    while let Some(event) = item {
        match event.map_err(Failure::Model)? {
            StreamEvent::TextDelta(text) => {
                if !separated && !text.is_empty() {
                    state.push_text("\n\n".into()).await;
                    separated = true;
                }
                state.push_text(text).await;
            }
            StreamEvent::Finished(response) => return Ok(response),
        }
        item = stream.next().await;
    }
    Err(Failure::Model(LlmError::Network("the model's answer ended early".into())))
}

/// Run a step's tool calls in parallel; results come back in call order.
async fn run_tools(
    state: &mut TurnState<'_>,
    registry: &ToolRegistry,
    context: &ToolContext,
    calls: Vec<(String, String, serde_json::Value)>,
) -> Result<Vec<ContentBlock>, Failure> {
    let limit = Duration::from_secs(state.parts.settings.tool_timeout_secs.max(1));
    for (id, name, input) in &calls {
        state.emit(AgentEvent::ToolStarted { id: id.clone(), name: name.clone(), input: input.clone() }).await;
    }
    let outcomes = futures::future::join_all(
        calls.iter().map(|(_, name, input)| registry.call(context, name, input.clone(), limit)),
    )
    .await;
    let mut blocks = Vec::with_capacity(calls.len());
    let mut fatal = None;
    for ((id, name, input), outcome) in calls.into_iter().zip(outcomes) {
        let (output, is_error) = match outcome {
            Ok(output) => (output, false),
            Err(ToolError::RespondToModel(message)) => (message, true),
            Err(ToolError::Fatal(message)) => {
                fatal.get_or_insert_with(|| message.clone());
                (message, true)
            }
        };
        metrics::counter!("valor_tool_calls_total", "tool" => name.clone(), "error" => is_error.to_string())
            .increment(1);
        state.audit_tool_call(&id, &name, &input, is_error).await;
        state
            .emit(AgentEvent::ToolFinished { id: id.clone(), name: name.clone(), output: output.clone(), is_error })
            .await;
        state.tool_calls.push(ToolCallReport { id: id.clone(), name, input, output: output.clone(), is_error });
        blocks.push(ContentBlock::ToolResult { tool_use_id: id, content: output, is_error });
    }
    match fatal {
        Some(message) => {
            // Keep the transcript consistent (every call has a result) before stopping.
            let _ = state.persist(MessageRole::Tool, &blocks, String::new()).await;
            Err(Failure::Tool(message))
        }
        None => Ok(blocks),
    }
}
