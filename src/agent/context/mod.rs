//! Context intelligence: which stored messages a turn sends to the model.
//!
//! History is grouped into turns: a user message with everything it caused
//! (valor's replies, tool calls with their results, notices) up to the next
//! user message. A turn is kept or dropped as a whole, so a kept question
//! always comes with its answer. Kept, in this order, whatever the budget:
//! valor's notices (failures, job outcomes; not job progress), the newest
//! `keep_recent_turns` turns in full, pinned turns ("remember: …") with their
//! answer. Then the window: older turns newest-first, each without its tool
//! exchanges, until one does not fit; then, as room allows, the tool
//! exchanges of the window's turns (a call with its results, never split).
//! Everything older than the window is covered by the conversation's rolling
//! summary (see `prepare` and `summary`).
//!
//! Selection is a pure function of the messages and the policy, linear in
//! the number of messages. The kept window is contiguous, so what falls out
//! of it is always older than what stays: the rolling summary only ever
//! needs the turns that left the window since its last fold.

mod prepare;
mod priority;
pub mod summary;
mod tokens;

pub use prepare::{PreparedContext, REFRESH_TURNS, Summarizer, policy_from, prepare};
pub use tokens::{TokenCalibration, TokenEstimator, request_bytes};

use crate::storage::{MessageRole, StoredMessage};

/// How much history a turn may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextPolicy {
    /// Tokens available for history (system prompt and tools excluded).
    pub budget_tokens: u32,
    /// The newest user turns (with everything after them) kept unconditionally.
    pub keep_recent_turns: usize,
    /// Tokens set aside for the summary of what is dropped.
    pub summary_reserve_tokens: u32,
    pub estimator: TokenEstimator,
}

impl Default for ContextPolicy {
    fn default() -> Self {
        Self {
            budget_tokens: 24_000,
            keep_recent_turns: 2,
            summary_reserve_tokens: 600,
            estimator: TokenEstimator::default(),
        }
    }
}

/// A user message and everything it caused until the next user message:
/// valor's replies, its tool calls with their results, notices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Turn {
    start: usize,
    /// Exclusive.
    end: usize,
    /// Its tool exchanges that may be left out while the turn is kept (only
    /// when the turn has a text answer; otherwise they are its answer).
    exchanges: std::ops::Range<usize>,
    pinned: bool,
}

/// The outcome: which messages to send and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Indexes into the input, ascending.
    pub kept: Vec<usize>,
    /// Indexes of dropped messages, ascending.
    pub dropped: Vec<usize>,
    /// The dropped messages older than the kept window, ascending: what the
    /// summary covers (a subset of `dropped`; the rest are tool exchanges
    /// left out of kept turns, summarised once their turn leaves the window).
    pub summarised: Vec<usize>,
    pub kept_tokens: u32,
    pub dropped_tokens: u32,
}

impl Selection {
    pub fn kept_messages<'a>(&self, messages: &'a [StoredMessage]) -> Vec<&'a StoredMessage> {
        self.kept.iter().map(|&i| &messages[i]).collect()
    }

    pub fn dropped_messages<'a>(&self, messages: &'a [StoredMessage]) -> Vec<&'a StoredMessage> {
        self.dropped.iter().map(|&i| &messages[i]).collect()
    }

    pub fn summarised_messages<'a>(&self, messages: &'a [StoredMessage]) -> Vec<&'a StoredMessage> {
        self.summarised.iter().map(|&i| &messages[i]).collect()
    }
}

/// Tokens of the messages in `range` not kept yet.
fn cost(range: std::ops::Range<usize>, keep: &[bool], tokens: &[u32], skip: Option<&[bool]>) -> u32 {
    range.filter(|&i| !keep[i] && !skip.is_some_and(|skip| skip[i])).fold(0u32, |sum, i| sum.saturating_add(tokens[i]))
}

fn mark(range: std::ops::Range<usize>, keep: &mut [bool], skip: Option<&[bool]>) {
    for i in range {
        if !skip.is_some_and(|skip| skip[i]) {
            keep[i] = true;
        }
    }
}

/// Choose the history for a turn. `messages` are oldest first.
pub fn select(messages: &[StoredMessage], policy: &ContextPolicy) -> Selection {
    let tokens: Vec<u32> = messages.iter().map(|m| policy.estimator.message_tokens(m)).collect();
    let total = tokens.iter().fold(0u32, |sum, t| sum.saturating_add(*t));
    if total <= policy.budget_tokens {
        return Selection { kept: (0..messages.len()).collect(), kept_tokens: total, ..Selection::default() };
    }
    // Something will be dropped: leave room for the summary.
    let budget = policy.budget_tokens.saturating_sub(policy.summary_reserve_tokens);
    let (turns, exchanges, in_exchange) = build_turns(messages);
    let mut keep = vec![false; messages.len()];
    let mut used: u32 = 0;
    for (index, message) in messages.iter().enumerate() {
        if priority::is_critical_notice(message) {
            keep[index] = true;
            used = used.saturating_add(tokens[index]);
        }
    }
    // The newest turns, whole.
    let mut recent_from = turns.len();
    let mut turns_seen = 0;
    while recent_from > 0 && turns_seen < policy.keep_recent_turns {
        recent_from -= 1;
        let turn = &turns[recent_from];
        used = used.saturating_add(cost(turn.start..turn.end, &keep, &tokens, None));
        mark(turn.start..turn.end, &mut keep, None);
        if messages[turn.start].role == MessageRole::User {
            turns_seen += 1;
        }
    }
    // Pinned turns keep their question and answer.
    for turn in turns[..recent_from].iter().filter(|t| t.pinned) {
        used = used.saturating_add(cost(turn.start..turn.end, &keep, &tokens, Some(&in_exchange)));
        mark(turn.start..turn.end, &mut keep, Some(&in_exchange));
    }
    // The window: whole turns (without their optional tool exchanges),
    // newest first, until one does not fit. Everything older is summarised.
    let mut window_start = recent_from;
    while window_start > 0 {
        let turn = &turns[window_start - 1];
        let extra = cost(turn.start..turn.end, &keep, &tokens, Some(&in_exchange));
        if used.saturating_add(extra) > budget {
            break;
        }
        used += extra;
        mark(turn.start..turn.end, &mut keep, Some(&in_exchange));
        window_start -= 1;
    }
    // Tool exchanges of the window's turns, newest first, as room allows.
    for turn in turns[window_start..recent_from].iter().rev() {
        for exchange in exchanges[turn.exchanges.clone()].iter().rev() {
            let extra = cost(exchange.clone(), &keep, &tokens, None);
            if used.saturating_add(extra) <= budget {
                used += extra;
                mark(exchange.clone(), &mut keep, None);
            }
        }
    }
    let boundary = turns.get(window_start).map_or(messages.len(), |turn| turn.start);
    let mut selection = Selection::default();
    for (index, kept) in keep.into_iter().enumerate() {
        if kept {
            selection.kept.push(index);
            selection.kept_tokens = selection.kept_tokens.saturating_add(tokens[index]);
        } else {
            selection.dropped.push(index);
            selection.dropped_tokens = selection.dropped_tokens.saturating_add(tokens[index]);
            if index < boundary {
                selection.summarised.push(index);
            }
        }
    }
    selection
}

type Exchanges = Vec<std::ops::Range<usize>>;

/// Group messages into turns (a leading run without a user message is a
/// turn of its own) and find each answered turn's tool exchanges: an
/// assistant message that calls tools with the results (and any notices)
/// that follow it — never split.
fn build_turns(messages: &[StoredMessage]) -> (Vec<Turn>, Exchanges, Vec<bool>) {
    let mut turns = Vec::with_capacity(messages.len() / 2 + 1);
    let mut exchanges: Exchanges = Vec::new();
    let mut in_exchange = vec![false; messages.len()];
    let mut index = 0;
    while index < messages.len() {
        let start = index;
        index += 1;
        while index < messages.len() && messages[index].role != MessageRole::User {
            index += 1;
        }
        let first_exchange = exchanges.len();
        let mut answered = false;
        let mut cursor = start;
        while cursor < index {
            if priority::has_tool_use(&messages[cursor]) {
                let exchange_start = cursor;
                cursor += 1;
                while cursor < index && matches!(messages[cursor].role, MessageRole::Tool | MessageRole::System) {
                    cursor += 1;
                }
                exchanges.push(exchange_start..cursor);
            } else {
                answered |= priority::is_text_answer(&messages[cursor]);
                cursor += 1;
            }
        }
        if answered {
            for exchange in &exchanges[first_exchange..] {
                in_exchange[exchange.clone()].fill(true);
            }
        } else {
            exchanges.truncate(first_exchange);
        }
        let pinned = priority::is_pinned(&messages[start]);
        turns.push(Turn { start, end: index, exchanges: first_exchange..exchanges.len(), pinned });
    }
    (turns, exchanges, in_exchange)
}

#[cfg(test)]
mod tests;
