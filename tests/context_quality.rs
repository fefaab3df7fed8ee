//! The compaction quality check: long conversations with facts planted early
//! (tests/fixtures/context_probes/probes.json) are compacted under a small
//! budget with the deterministic summariser, and each probe question's fact
//! must still be present — in a kept message or in the summary. Prints the
//! retained share; fails below 95 %.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use serde::Deserialize;
use serde_json::json;
use valor::agent::context::{ContextPolicy, Priority, select, summary};
use valor::storage::{MessageRole, StoredMessage};

#[derive(Deserialize)]
struct Probes {
    budget_tokens: u32,
    filler_user: Vec<String>,
    filler_assistant: Vec<String>,
    conversations: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Conversation {
    name: String,
    filler_turns: usize,
    facts: Vec<Fact>,
}

#[derive(Deserialize)]
struct Fact {
    at_turn: usize,
    message: String,
    question: String,
    expect: String,
}

fn load() -> Probes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/context_probes/probes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stored(id: usize, role: MessageRole, text: &str) -> StoredMessage {
    StoredMessage {
        id: id as i64,
        conversation_id: "probe".into(),
        role,
        content: json!([{"type": "text", "text": text}]),
        text: text.into(),
        turn_id: None,
        created_at_ms: id as i64,
    }
}

fn build(probes: &Probes, conversation: &Conversation) -> Vec<StoredMessage> {
    let mut messages = Vec::new();
    for turn in 0..conversation.filler_turns {
        let (user, assistant) = match conversation.facts.iter().find(|f| f.at_turn == turn) {
            Some(fact) => (fact.message.clone(), "Noted.".to_owned()),
            None => (
                probes.filler_user[(turn * 5 + 3) % probes.filler_user.len()].clone(),
                probes.filler_assistant[(turn * 7 + 1) % probes.filler_assistant.len()].clone(),
            ),
        };
        messages.push(stored(messages.len() + 1, MessageRole::User, &user));
        messages.push(stored(messages.len() + 1, MessageRole::Assistant, &assistant));
    }
    messages
}

#[test]
fn compacted_context_retains_at_least_95_percent_of_planted_facts() {
    let probes = load();
    let policy = ContextPolicy { budget_tokens: probes.budget_tokens, ..ContextPolicy::default() };
    let summary_chars = (policy.summary_reserve_tokens as f32 * policy.estimator.bytes_per_token) as usize;
    let (mut retained, mut total) = (0, 0);
    let mut lost = Vec::new();
    for conversation in &probes.conversations {
        let base = build(&probes, conversation);
        for fact in &conversation.facts {
            let mut messages = base.clone();
            messages.push(stored(messages.len() + 1, MessageRole::User, &fact.question));
            let selection = select(&messages, &policy);
            assert!(!selection.dropped.is_empty(), "{}: the budget must force compaction", conversation.name);
            assert!(selection.kept_tokens <= policy.budget_tokens, "{}: over budget", conversation.name);
            let summary = summary::extractive(&selection.dropped_messages(&messages), summary_chars);
            assert!(summary.len() <= summary_chars);
            let in_kept = selection.kept_messages(&messages).iter().any(|m| m.text.contains(&fact.expect));
            total += 1;
            if in_kept || summary.contains(&fact.expect) {
                retained += 1;
            } else {
                lost.push(format!("{}: {}", conversation.name, fact.expect));
            }
        }
    }
    let share = retained as f64 / total as f64;
    eprintln!("context quality: {retained}/{total} probe facts retained ({:.1} %)", share * 100.0);
    assert!(share >= 0.95, "only {retained}/{total} facts retained; lost: {lost:?}");
}

#[test]
fn every_critical_message_survives_compaction() {
    let probes = load();
    let mut messages = build(&probes, &probes.conversations[0]);
    messages[100] = stored(101, MessageRole::System, "The model provider was unreachable at 03:12.");
    messages[401] = stored(402, MessageRole::System, "Job 12 failed: the build timed out.");
    let policy = ContextPolicy { budget_tokens: 500, ..ContextPolicy::default() };
    let selection = select(&messages, &policy);
    assert!(selection.kept.contains(&100) && selection.kept.contains(&401));
    assert_eq!(Priority::Critical, Priority::Critical.max(Priority::Low));
}
