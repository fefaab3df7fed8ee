//! From stored messages to the messages a turn sends: select under the
//! budget, then put the conversation's rolling summary of what lies before
//! the kept window first.
//!
//! The rolling summary (table `context_rolling_summaries`) covers the
//! dropped messages up to some id. The turns dropped since then are
//! *pending*: while fewer than [`REFRESH_TURNS`] of them are pending they
//! are added as extractive lines after the stored summary (no request);
//! from then on the next turn folds them in — previous summary + pending
//! turns, at most `summary::MAX_INPUT_BYTES` — by the small model tier
//! (time-limited) or, without one or when it fails, extractively, and
//! stores the result. So a long conversation asks for about one summary
//! per twelve turns, each of bounded size, whatever its length.

use std::time::Duration;

use serde_json::json;

use super::{ContextPolicy, TokenEstimator, select, summary};
use crate::agent::history::to_model_messages;
use crate::config::ContextSettings;
use crate::llm::{ChatModel, Message};
use crate::storage::{MessageRole, RollingSummary, Store, StoredMessage};

/// Pending dropped turns from which the rolling summary is refreshed.
pub const REFRESH_TURNS: usize = 12;

/// The history for one turn and what compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedContext {
    pub messages: Vec<Message>,
    /// Estimated tokens of the history sent (summary included).
    pub context_tokens: u64,
    /// Estimated tokens left out (before adding the summary).
    pub tokens_saved: u64,
    /// How the stored summary was written — "model" or "extractive" — or
    /// `None` when no summary was sent.
    pub summary_method: Option<String>,
    /// Tokens this turn spent on summary requests (0 without one).
    pub summary_tokens: u64,
}

/// The model that may write summaries, with the model name to ask for.
pub type Summarizer<'a> = Option<(&'a dyn ChatModel, &'a str)>;

pub fn policy_from(settings: &ContextSettings) -> ContextPolicy {
    ContextPolicy {
        budget_tokens: settings.budget_tokens,
        keep_recent_turns: settings.keep_recent_turns as usize,
        summary_reserve_tokens: settings.summary_tokens,
        estimator: TokenEstimator::default(),
    }
}

/// `estimator` is the token estimate for the model the turn will call
/// (calibrated by [`super::TokenCalibration`] when the provider has counted).
pub async fn prepare(
    store: &Store,
    settings: &ContextSettings,
    estimator: TokenEstimator,
    summarizer: Summarizer<'_>,
    conversation_id: &str,
    stored: &[StoredMessage],
) -> PreparedContext {
    let policy = ContextPolicy { estimator, ..policy_from(settings) };
    let selection = select(stored, &policy);
    let summarised = selection.summarised_messages(stored);
    let mut prepared = PreparedContext {
        messages: Vec::new(),
        context_tokens: u64::from(selection.kept_tokens),
        tokens_saved: u64::from(selection.dropped_tokens),
        summary_method: None,
        summary_tokens: 0,
    };
    if selection.dropped.is_empty() {
        prepared.messages = to_model_messages(stored);
        return prepared;
    }
    metrics::counter!("valor_context_tokens_saved_total").increment(u64::from(selection.dropped_tokens));
    let mut history = Vec::with_capacity(selection.kept.len() + 1);
    if !summarised.is_empty() {
        let max_chars = (settings.summary_tokens as f32 * policy.estimator.bytes_per_token) as usize;
        let summarizer = summarizer.filter(|_| settings.summarize_with_model);
        let limit = Duration::from_millis(settings.summary_timeout_ms);
        let rolled = roll(store, summarizer, &policy, limit, conversation_id, &summarised, max_chars).await;
        prepared.context_tokens += u64::from(policy.estimator.text_tokens(&rolled.text));
        prepared.summary_method = Some(rolled.method);
        prepared.summary_tokens = rolled.tokens;
        history.push(StoredMessage {
            id: 0,
            conversation_id: conversation_id.to_owned(),
            role: MessageRole::User,
            content: json!([{"type": "text", "text": rolled.text}]),
            text: String::new(),
            turn_id: None,
            created_at_ms: 0,
        });
    }
    history.extend(selection.kept_messages(stored).into_iter().cloned());
    prepared.messages = to_model_messages(&history);
    prepared
}

struct Rolled {
    text: String,
    method: String,
    tokens: u64,
}

/// The summary of `summarised` (the dropped messages before the kept
/// window, oldest first): the stored rolling summary, folded forward when
/// enough turns are pending, plus extractive lines for what is still pending.
async fn roll(
    store: &Store,
    summarizer: Summarizer<'_>,
    policy: &ContextPolicy,
    limit: Duration,
    conversation_id: &str,
    summarised: &[&StoredMessage],
    max_chars: usize,
) -> Rolled {
    let lines_room = max_chars.saturating_sub(summary::SUMMARY_HEADER.len() + 1);
    // The stored part leaves a quarter of the room for pending lines.
    let fold_room = lines_room * 3 / 4;
    let previous = match store.rolling_summary(conversation_id).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "could not read the rolling summary; folding from scratch");
            None
        }
    };
    let covered = previous.as_ref().map_or(i64::MIN, |p| p.last_message_id);
    let first_pending = summarised.partition_point(|m| m.id <= covered);
    let mut pending = &summarised[first_pending..];
    let pending_turns = pending.iter().filter(|m| m.role == MessageRole::User).count();
    let mut current = previous;
    let mut tokens = 0;
    if pending_turns >= REFRESH_TURNS {
        let previous_lines = current.as_ref().map_or("", |p| p.text.as_str());
        let mut written = None;
        if let Some((model, name)) = summarizer {
            let (input, count) = summary::fold_input(previous_lines, pending, fold_room);
            let bytes_per_token = policy.estimator.bytes_per_token;
            written = summary::by_model(model, name, &input, fold_room, bytes_per_token, limit)
                .await
                .map(|w| (w.lines, "model", count, w.tokens));
        }
        let (lines, method, count, spent) = written.unwrap_or_else(|| {
            (summary::extractive_lines(previous_lines, pending, fold_room), "extractive", pending.len(), 0)
        });
        tokens = spent;
        let folded = &pending[..count.clamp(1, pending.len())];
        let record = RollingSummary {
            conversation_id: conversation_id.to_owned(),
            method: method.to_owned(),
            text: lines,
            first_message_id: current.as_ref().map_or(folded[0].id, |p| p.first_message_id),
            last_message_id: folded[folded.len() - 1].id,
            message_count: current.as_ref().map_or(0, |p| p.message_count) + folded.len() as u64,
            folds: current.as_ref().map_or(0, |p| p.folds) + 1,
        };
        if let Err(error) = store.put_rolling_summary(&record).await {
            tracing::warn!(%error, "could not store the rolling summary; it will be folded again");
        }
        pending = &pending[folded.len()..];
        current = Some(record);
    }
    let stored_lines = current.as_ref().map_or("", |c| c.text.as_str());
    let tail_room = lines_room.saturating_sub(stored_lines.len() + 1);
    let tail = if pending.is_empty() { String::new() } else { summary::extractive_lines("", pending, tail_room) };
    Rolled {
        text: summary::render(stored_lines, &tail),
        method: current.map_or_else(|| "extractive".to_owned(), |c| c.method),
        tokens,
    }
}
