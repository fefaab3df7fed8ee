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

/// What selection needs of one message, computed once.
#[derive(Debug, Clone, Copy)]
struct Info {
    tokens: u32,
    flags: u8,
}

const USER: u8 = 1;
const TOOL_USE: u8 = 2;
const TEXT_ANSWER: u8 = 4;
const NOTICE: u8 = 8;
/// In a tool exchange its turn can do without.
const OPTIONAL: u8 = 16;
const KEPT: u8 = 32;

impl Info {
    fn of(message: &StoredMessage, estimator: &TokenEstimator) -> Info {
        let (tokens, calls_tools) = estimator.message_tokens_and_tool_use(message);
        let flags = match message.role {
            MessageRole::User => USER,
            MessageRole::Assistant if calls_tools => TOOL_USE,
            MessageRole::Assistant if !message.text.trim().is_empty() => TEXT_ANSWER,
            MessageRole::System if priority::is_critical_notice(message) => NOTICE,
            _ => 0,
        };
        Info { tokens, flags }
    }

    fn is(self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Tokens of the messages in `range` not kept yet (without the optional
/// ones when `core_only`).
fn cost(infos: &[Info], range: std::ops::Range<usize>, core_only: bool) -> u32 {
    let skip = if core_only { KEPT | OPTIONAL } else { KEPT };
    infos[range].iter().filter(|i| i.flags & skip == 0).fold(0u32, |sum, i| sum.saturating_add(i.tokens))
}

/// Keeps the messages of `range` (without the optional ones when `core_only`).
fn keep(infos: &mut [Info], range: std::ops::Range<usize>, core_only: bool) -> u32 {
    let mut added = 0u32;
    for info in &mut infos[range] {
        if info.flags & KEPT == 0 && !(core_only && info.is(OPTIONAL)) {
            info.flags |= KEPT;
            added = added.saturating_add(info.tokens);
        }
    }
    added
}

/// Choose the history for a turn. `messages` are oldest first.
pub fn select(messages: &[StoredMessage], policy: &ContextPolicy) -> Selection {
    let mut infos: Vec<Info> = messages.iter().map(|m| Info::of(m, &policy.estimator)).collect();
    let total = infos.iter().fold(0u32, |sum, i| sum.saturating_add(i.tokens));
    if total <= policy.budget_tokens {
        return Selection { kept: (0..messages.len()).collect(), kept_tokens: total, ..Selection::default() };
    }
    // Something will be dropped: leave room for the summary.
    let budget = policy.budget_tokens.saturating_sub(policy.summary_reserve_tokens);
    let (turns, exchanges) = build_turns(messages, &mut infos);
    let mut used: u32 = 0;
    for info in infos.iter_mut().filter(|i| i.is(NOTICE)) {
        info.flags |= KEPT;
        used = used.saturating_add(info.tokens);
    }
    // The newest turns, whole.
    let mut recent_from = turns.len();
    let mut turns_seen = 0;
    while recent_from > 0 && turns_seen < policy.keep_recent_turns {
        recent_from -= 1;
        let turn = &turns[recent_from];
        used = used.saturating_add(keep(&mut infos, turn.start..turn.end, false));
        turns_seen += usize::from(infos[turn.start].is(USER));
    }
    // Pinned turns keep their question and answer.
    for turn in turns[..recent_from].iter().filter(|t| t.pinned) {
        used = used.saturating_add(keep(&mut infos, turn.start..turn.end, true));
    }
    // The window: whole turns (without their optional tool exchanges),
    // newest first, until one does not fit. Everything older is summarised.
    let mut window_start = recent_from;
    while window_start > 0 {
        let turn = &turns[window_start - 1];
        if used.saturating_add(cost(&infos, turn.start..turn.end, true)) > budget {
            break;
        }
        used = used.saturating_add(keep(&mut infos, turn.start..turn.end, true));
        window_start -= 1;
    }
    // Tool exchanges of the window's turns, newest first, as room allows.
    for turn in turns[window_start..recent_from].iter().rev() {
        for exchange in exchanges[turn.exchanges.clone()].iter().rev() {
            if used.saturating_add(cost(&infos, exchange.clone(), false)) <= budget {
                used = used.saturating_add(keep(&mut infos, exchange.clone(), false));
            }
        }
    }
    let boundary = turns.get(window_start).map_or(messages.len(), |turn| turn.start);
    let mut selection = Selection {
        kept: Vec::with_capacity(messages.len() - boundary + 8),
        dropped: Vec::with_capacity(boundary + 8),
        summarised: Vec::with_capacity(boundary),
        ..Selection::default()
    };
    for (index, info) in infos.iter().enumerate() {
        if info.is(KEPT) {
            selection.kept.push(index);
            selection.kept_tokens = selection.kept_tokens.saturating_add(info.tokens);
        } else {
            selection.dropped.push(index);
            selection.dropped_tokens = selection.dropped_tokens.saturating_add(info.tokens);
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
/// that follow it — never split. Marks the exchanges of answered turns
/// OPTIONAL.
fn build_turns(messages: &[StoredMessage], infos: &mut [Info]) -> (Vec<Turn>, Exchanges) {
    let mut turns = Vec::with_capacity(messages.len() / 2 + 1);
    let mut exchanges: Exchanges = Vec::new();
    let mut index = 0;
    while index < messages.len() {
        let start = index;
        index += 1;
        while index < messages.len() && !infos[index].is(USER) {
            index += 1;
        }
        let first_exchange = exchanges.len();
        let mut answered = false;
        let mut cursor = start;
        while cursor < index {
            if infos[cursor].is(TOOL_USE) {
                let exchange_start = cursor;
                cursor += 1;
                while cursor < index && matches!(messages[cursor].role, MessageRole::Tool | MessageRole::System) {
                    cursor += 1;
                }
                exchanges.push(exchange_start..cursor);
            } else {
                answered |= infos[cursor].is(TEXT_ANSWER);
                cursor += 1;
            }
        }
        if answered {
            for exchange in &exchanges[first_exchange..] {
                for info in &mut infos[exchange.clone()] {
                    info.flags |= OPTIONAL;
                }
            }
        } else {
            exchanges.truncate(first_exchange);
        }
        let pinned = infos[start].is(USER) && priority::is_pinned(&messages[start]);
        turns.push(Turn { start, end: index, exchanges: first_exchange..exchanges.len(), pinned });
    }
    (turns, exchanges)
}

#[cfg(test)]
mod tests;
