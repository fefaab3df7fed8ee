//! From stored messages to the messages a turn sends: select under the
//! budget, then put one summary of the dropped part first — a stored summary
//! for exactly that span if there is one, else a model-written one (small
//! tier, time-limited) or the extractive one, which is then stored.

use std::time::Duration;

use serde_json::json;

use super::{ContextPolicy, TokenEstimator, select, summary};
use crate::agent::history::to_model_messages;
use crate::config::ContextSettings;
use crate::llm::{ChatModel, Message};
use crate::storage::{MessageRole, NewContextSummary, Store, StoredMessage};

/// The history for one turn and what compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedContext {
    pub messages: Vec<Message>,
    /// Estimated tokens of the history sent (summary included).
    pub context_tokens: u64,
    /// Estimated tokens left out (before adding the summary).
    pub tokens_saved: u64,
    /// "model", "extractive", or `None` when nothing was dropped.
    pub summary_method: Option<String>,
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

/// Identifies exactly which messages a summary covers (ids are ascending).
pub fn span_key(dropped: &[&StoredMessage]) -> String {
    // FNV-1a over the ids: stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for message in dropped {
        for byte in message.id.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let first = dropped.first().map_or(0, |m| m.id);
    let last = dropped.last().map_or(0, |m| m.id);
    format!("{first}-{last}-{}-{hash:016x}", dropped.len())
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
    if selection.dropped.is_empty() {
        return PreparedContext {
            messages: to_model_messages(stored),
            context_tokens: u64::from(selection.kept_tokens),
            tokens_saved: 0,
            summary_method: None,
        };
    }
    let dropped = selection.dropped_messages(stored);
    let max_chars = (settings.summary_tokens as f32 * policy.estimator.bytes_per_token) as usize;
    let key = span_key(&dropped);
    let (text, method) = match store.get_context_summary(conversation_id, &key).await {
        Ok(Some(found)) => (found.text, found.method),
        _ => {
            let limit = Duration::from_millis(settings.summary_timeout_ms);
            let written = match summarizer.filter(|_| settings.summarize_with_model) {
                Some((model, name)) => summary::by_model(model, name, &dropped, max_chars, limit).await,
                None => None,
            };
            let (text, method) = match written {
                Some(text) => (text, "model"),
                None => (summary::extractive(&dropped, max_chars), "extractive"),
            };
            let record = NewContextSummary {
                conversation_id: conversation_id.to_owned(),
                span_key: key,
                method: method.to_owned(),
                text: text.clone(),
                first_message_id: dropped.first().map_or(0, |m| m.id),
                last_message_id: dropped.last().map_or(0, |m| m.id),
                message_count: dropped.len() as u64,
            };
            if let Err(error) = store.put_context_summary(record).await {
                tracing::warn!(%error, "could not store a context summary; it will be recomputed");
            }
            (text, method.to_owned())
        }
    };
    let summary_tokens = policy.estimator.text_tokens(&text);
    let mut history = Vec::with_capacity(selection.kept.len() + 1);
    history.push(StoredMessage {
        id: 0,
        conversation_id: conversation_id.to_owned(),
        role: MessageRole::User,
        content: json!([{"type": "text", "text": text}]),
        text: String::new(),
        turn_id: None,
        created_at_ms: 0,
    });
    history.extend(selection.kept_messages(stored).into_iter().cloned());
    metrics::counter!("valor_context_tokens_saved_total").increment(u64::from(selection.dropped_tokens));
    PreparedContext {
        messages: to_model_messages(&history),
        context_tokens: u64::from(selection.kept_tokens) + u64::from(summary_tokens),
        tokens_saved: u64::from(selection.dropped_tokens),
        summary_method: Some(method),
    }
}
