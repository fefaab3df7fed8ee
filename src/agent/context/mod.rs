//! Context intelligence: which stored messages a turn sends to the model.
//!
//! History is grouped into atomic units (a message, or an assistant tool call
//! together with its results — never split), each given a priority:
//! CRITICAL (valor's notices and errors, pinned notes), HIGH (questions,
//! recent tool work), MEDIUM (ordinary conversation), LOW (acknowledgements,
//! old tool output). The newest turns are always kept; the rest is filled
//! newest-first by priority under a token budget; what is dropped is
//! replaced by one summary (see `summary`).
//!
//! Invariants: every CRITICAL unit and the newest `keep_recent_turns` user
//! turns are kept whatever the budget; selection is a pure function of the
//! messages and the policy, linear in the number of messages.

mod prepare;
mod priority;
pub mod summary;
mod tokens;

pub use prepare::{PreparedContext, Summarizer, policy_from, prepare, span_key};
pub use priority::Priority;
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

/// A contiguous run of messages that stands or falls together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    start: usize,
    /// Exclusive.
    end: usize,
    tokens: u32,
    priority: Priority,
}

/// The outcome: which messages to send and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Indexes into the input, ascending.
    pub kept: Vec<usize>,
    /// Indexes of dropped messages, ascending.
    pub dropped: Vec<usize>,
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
}

/// Choose the history for a turn. `messages` are oldest first.
pub fn select(messages: &[StoredMessage], policy: &ContextPolicy) -> Selection {
    let units = build_units(messages, &policy.estimator);
    let mut keep = vec![false; units.len()];
    let mut used: u32 = 0;

    // The newest turns: from the end back to the start of the Nth-newest user message.
    let mut turns_seen = 0;
    for (index, unit) in units.iter().enumerate().rev() {
        if turns_seen >= policy.keep_recent_turns {
            break;
        }
        keep[index] = true;
        used = used.saturating_add(unit.tokens);
        if messages[unit.start].role == MessageRole::User {
            turns_seen += 1;
        }
    }
    for (index, unit) in units.iter().enumerate() {
        if unit.priority == Priority::Critical && !keep[index] {
            keep[index] = true;
            used = used.saturating_add(unit.tokens);
        }
    }
    let total: u32 = units.iter().fold(0u32, |sum, unit| sum.saturating_add(unit.tokens));
    // Reserve room for a summary only when something will have to be dropped.
    let budget = if total <= policy.budget_tokens {
        policy.budget_tokens
    } else {
        policy.budget_tokens.saturating_sub(policy.summary_reserve_tokens)
    };
    for priority in [Priority::High, Priority::Medium, Priority::Low] {
        for (index, unit) in units.iter().enumerate().rev() {
            if !keep[index] && unit.priority == priority && used.saturating_add(unit.tokens) <= budget {
                keep[index] = true;
                used += unit.tokens;
            }
        }
    }
    let mut selection = Selection::default();
    for (unit, kept) in units.iter().zip(keep) {
        let (list, tokens) = if kept {
            (&mut selection.kept, &mut selection.kept_tokens)
        } else {
            (&mut selection.dropped, &mut selection.dropped_tokens)
        };
        list.extend(unit.start..unit.end);
        *tokens = tokens.saturating_add(unit.tokens);
    }
    selection
}

/// Group messages into units: an assistant message that calls tools takes the
/// tool-result messages that follow it.
fn build_units(messages: &[StoredMessage], estimator: &TokenEstimator) -> Vec<Unit> {
    let recent_tool_horizon = messages.len().saturating_sub(priority::RECENT_MESSAGES);
    let mut units = Vec::with_capacity(messages.len());
    let mut index = 0;
    while index < messages.len() {
        let start = index;
        let calls_tools = priority::has_tool_use(&messages[index]);
        index += 1;
        if calls_tools {
            while index < messages.len() && messages[index].role == MessageRole::Tool {
                index += 1;
            }
        }
        let members = &messages[start..index];
        let tokens = members.iter().map(|m| estimator.message_tokens(m)).fold(0u32, u32::saturating_add);
        let priority =
            members.iter().map(|m| priority::of(m, start >= recent_tool_horizon)).max().unwrap_or(Priority::Medium);
        units.push(Unit { start, end: index, tokens, priority });
    }
    units
}

#[cfg(test)]
mod tests;
