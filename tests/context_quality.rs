//! The compaction quality check. Each conversation of
//! tests/fixtures/context_probes/probes.json (filler turns around planted
//! facts: long question/answer threads, stated preferences, paths and
//! errors, near-duplicate filler) is played turn by turn through the real
//! context pipeline — selection, the rolling summary stored in SQLite —
//! under a small budget, summaries asked of a scripted model on a loopback
//! port (tests/common/summariser.rs). At the end every probe question is
//! asked, and its fact must be in what the model is sent.
//!
//! Measured and asserted: retention with the extractive summary (≥ 97.5 %)
//! and with a model summary (100 %: the scripted summariser keeps every fact
//! it is shown, so anything lost was never shown to it); summary requests
//! per 100 turns once condensed (≤ 10); the largest summary request
//! (≤ 16 KB); and that no turn's history holds a user turn without its answer (the
//! requests the model receives through the app are checked the same way
//! in tests/context_turns.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "common/summariser.rs"]
mod summariser;

use serde::Deserialize;
use serde_json::json;
use summariser::{Script, ScriptedModel, request_text, unanswered_user_turns};
use valor::agent::context::{self, ContextPolicy, TokenEstimator, select, summary};
use valor::agent::history::NOTICE_PREFIX;
use valor::config::ContextSettings;
use valor::llm::ChatModel;
use valor::storage::{MessageRole, NewConversation, Store, StoredMessage};

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
    #[serde(default)]
    filler_user: Vec<String>,
    #[serde(default)]
    filler_assistant: Vec<String>,
    facts: Vec<Fact>,
}

#[derive(Deserialize)]
struct Fact {
    at_turn: usize,
    message: String,
    /// valor's answer when the fact is planted as an answer to `message`.
    answer: Option<String>,
    question: String,
    expect: String,
}

fn load() -> Probes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/context_probes/probes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The (user, answer) pairs of a conversation, in order.
fn script(probes: &Probes, conversation: &Conversation) -> Vec<(String, String)> {
    let users = if conversation.filler_user.is_empty() { &probes.filler_user } else { &conversation.filler_user };
    let answers = if conversation.filler_assistant.is_empty() {
        &probes.filler_assistant
    } else {
        &conversation.filler_assistant
    };
    let own = !conversation.filler_user.is_empty();
    (0..conversation.filler_turns)
        .map(|turn| match conversation.facts.iter().find(|f| f.at_turn == turn) {
            Some(fact) => (fact.message.clone(), fact.answer.clone().unwrap_or_else(|| "Noted.".to_owned())),
            // A conversation's own filler keeps each question with its answer.
            None if own => (users[turn % users.len()].clone(), answers[turn % users.len() % answers.len()].clone()),
            None => (users[(turn * 5 + 3) % users.len()].clone(), answers[(turn * 7 + 1) % answers.len()].clone()),
        })
        .collect()
}

fn settings(probes: &Probes, with_model: bool) -> ContextSettings {
    ContextSettings {
        budget_tokens: probes.budget_tokens,
        summarize_with_model: with_model,
        summary_timeout_ms: 10_000,
        ..ContextSettings::default()
    }
}

#[derive(Default)]
struct Outcome {
    retained: usize,
    total: usize,
    lost: Vec<String>,
    /// Turns sent with a summary, and fold requests during them.
    condensed_turns: usize,
    torn: Vec<String>,
}

/// Plays one conversation through `context::prepare` (summaries asked of
/// the scripted model), then asks every probe question.
async fn play(probes: &Probes, conversation: &Conversation, model: &ScriptedModel, with_model: bool) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let id = store
        .create_conversation(NewConversation { title: conversation.name.clone(), channel: "api".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    let id_of = id.clone();
    let settings = settings(probes, with_model);
    let client = model.client();
    let summarizer: context::Summarizer<'_> = Some((&client as &dyn ChatModel, "claude-haiku-4-5"));
    let estimator = TokenEstimator::default();
    // Messages live in memory (the pipeline reads them as loaded); the
    // rolling summary lives in the store, as in valor.
    let mut messages: Vec<StoredMessage> = Vec::new();
    let message = |id: usize, role: MessageRole, text: &str| StoredMessage {
        id: id as i64,
        conversation_id: id_of.clone(),
        role,
        content: json!([{"type": "text", "text": text}]),
        text: text.to_owned(),
        turn_id: None,
        created_at_ms: id as i64,
    };
    let mut outcome = Outcome::default();
    for (user, answer) in script(probes, conversation) {
        messages.push(message(messages.len() + 1, MessageRole::User, &user));
        let loaded = &messages[messages.len().saturating_sub(settings.max_loaded_messages as usize)..];
        let prepared = context::prepare(&store, &settings, estimator, summarizer, &id, loaded).await;
        outcome.condensed_turns += usize::from(prepared.summary_method.is_some());
        assert!(prepared.context_tokens <= u64::from(probes.budget_tokens), "{}: over budget", conversation.name);
        // The request body valor would send for this turn.
        let body = json!({"messages": serde_json::to_value(&prepared.messages).unwrap()});
        for problem in unanswered_user_turns(&body, summary::SUMMARY_HEADER, NOTICE_PREFIX) {
            outcome.torn.push(format!("{}: {problem}", conversation.name));
        }
        messages.push(message(messages.len() + 1, MessageRole::Assistant, &answer));
    }
    for fact in &conversation.facts {
        let mut asked = messages.clone();
        asked.push(message(asked.len() + 1, MessageRole::User, &fact.question));
        let prepared = context::prepare(&store, &settings, estimator, summarizer, &id, &asked).await;
        outcome.condensed_turns += usize::from(prepared.summary_method.is_some());
        let sent = serde_json::to_string(&prepared.messages).unwrap();
        outcome.total += 1;
        if sent.contains(&fact.expect.replace('"', "\\\"")) {
            outcome.retained += 1;
        } else {
            outcome.lost.push(format!("{}: {}", conversation.name, fact.expect));
        }
    }
    store.close().await;
    outcome
}

fn facts_of(probes: &Probes) -> Vec<String> {
    probes.conversations.iter().flat_map(|c| c.facts.iter().map(|f| f.expect.clone())).collect()
}

async fn measure(with_model: bool) -> (Outcome, Vec<summariser::Seen>) {
    let probes = load();
    let mut all = Outcome::default();
    let mut summaries = Vec::new();
    // The conversations are independent (own database, own model): played side by side.
    let played = futures::future::join_all(probes.conversations.iter().map(|conversation| async {
        let answers = script(&probes, conversation);
        let model = ScriptedModel::start(Script { facts: facts_of(&probes), answers }).await;
        let outcome = play(&probes, conversation, &model, with_model).await;
        (outcome, model)
    }))
    .await;
    for (outcome, model) in played {
        all.retained += outcome.retained;
        all.total += outcome.total;
        all.lost.extend(outcome.lost);
        all.condensed_turns += outcome.condensed_turns;
        all.torn.extend(outcome.torn);
        summaries.extend(model.summaries());
    }
    (all, summaries)
}

#[tokio::test]
async fn extractive_rolling_summary_retains_at_least_97_5_percent_of_planted_facts() {
    let (outcome, summaries) = measure(false).await;
    let share = outcome.retained as f64 / outcome.total as f64;
    eprintln!(
        "context quality (extractive): {}/{} probe facts retained ({:.1} %)",
        outcome.retained,
        outcome.total,
        share * 100.0
    );
    assert!(summaries.is_empty(), "no model summary was allowed");
    assert!(
        outcome.torn.is_empty(),
        "user turns sent without their answer: {:?}",
        &outcome.torn[..3.min(outcome.torn.len())]
    );
    assert!(share >= 0.975, "only {}/{} facts retained; lost: {:?}", outcome.retained, outcome.total, outcome.lost);
}

#[tokio::test]
async fn model_rolling_summary_retains_every_fact_with_few_bounded_requests() {
    let (outcome, summaries) = measure(true).await;
    let largest = summaries.iter().map(|s| request_text(&s.body).len()).max().unwrap_or(0);
    let per_100 = summaries.len() as f64 * 100.0 / outcome.condensed_turns as f64;
    let mean = summaries.iter().map(|s| request_text(&s.body).len()).sum::<usize>() / summaries.len().max(1);
    eprintln!(
        "context quality (model): {}/{} probe facts retained; {} summary requests in {} condensed turns \
         ({per_100:.1} per 100 turns), input mean {mean} B, largest {largest} B",
        outcome.retained,
        outcome.total,
        summaries.len(),
        outcome.condensed_turns
    );
    assert!(
        outcome.torn.is_empty(),
        "user turns sent without their answer: {:?}",
        &outcome.torn[..3.min(outcome.torn.len())]
    );
    assert_eq!(outcome.retained, outcome.total, "lost: {:?}", outcome.lost);
    assert!(
        !summaries.is_empty() && per_100 <= 10.0,
        "{} requests in {} turns",
        summaries.len(),
        outcome.condensed_turns
    );
    assert!(largest <= summary::MAX_INPUT_BYTES, "a summary request of {largest} bytes");
    // The model is asked for what fits the summary's share of the budget.
    for seen in &summaries {
        assert!(seen.body["max_tokens"].as_u64().unwrap() <= 600, "{}", seen.body["max_tokens"]);
    }
}

#[test]
fn every_critical_message_survives_compaction() {
    let probes = load();
    let mut messages: Vec<StoredMessage> = script(&probes, &probes.conversations[0])
        .into_iter()
        .flat_map(|(user, answer)| [(MessageRole::User, user), (MessageRole::Assistant, answer)])
        .enumerate()
        .map(|(index, (role, text))| StoredMessage {
            id: index as i64 + 1,
            conversation_id: "probe".into(),
            role,
            content: json!([{"type": "text", "text": text}]),
            text,
            turn_id: None,
            created_at_ms: index as i64,
        })
        .collect();
    for (index, text) in
        [(100, "The model provider was unreachable at 03:12."), (401, "Job 12 failed: the build timed out.")]
    {
        messages[index].role = MessageRole::System;
        messages[index].text = text.into();
    }
    let policy = ContextPolicy { budget_tokens: 500, ..ContextPolicy::default() };
    let selection = select(&messages, &policy);
    assert!(selection.kept.contains(&100) && selection.kept.contains(&401));
}
