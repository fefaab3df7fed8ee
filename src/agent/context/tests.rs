//! Selection rules on small hand-built histories.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn message(id: i64, role: MessageRole, text: &str) -> StoredMessage {
    StoredMessage {
        id,
        conversation_id: "c".into(),
        role,
        content: json!([{"type": "text", "text": text}]),
        text: text.into(),
        turn_id: None,
        created_at_ms: id,
    }
}

fn tool_call(id: i64) -> StoredMessage {
    StoredMessage {
        id,
        conversation_id: "c".into(),
        role: MessageRole::Assistant,
        content: json!([{"type": "tool_use", "id": format!("t{id}"), "name": "search_history", "input": {"query": "x"}}]),
        text: String::new(),
        turn_id: None,
        created_at_ms: id,
    }
}

fn tool_result(id: i64, call: i64, output: &str) -> StoredMessage {
    StoredMessage {
        id,
        conversation_id: "c".into(),
        role: MessageRole::Tool,
        content: json!([{"type": "tool_result", "tool_use_id": format!("t{call}"), "content": output, "is_error": false}]),
        text: output.into(),
        turn_id: None,
        created_at_ms: id,
    }
}

fn chatter(count: i64) -> Vec<StoredMessage> {
    (0..count)
        .map(|i| {
            let role = if i % 2 == 0 { MessageRole::User } else { MessageRole::Assistant };
            message(i + 1, role, &format!("ordinary conversation line number {i} with some words in it"))
        })
        .collect()
}

fn policy(budget: u32) -> ContextPolicy {
    ContextPolicy {
        budget_tokens: budget,
        keep_recent_turns: 2,
        summary_reserve_tokens: 50,
        ..ContextPolicy::default()
    }
}

#[test]
fn a_history_that_fits_is_sent_whole() {
    let messages = chatter(10);
    let selection = select(&messages, &policy(10_000));
    assert_eq!(selection.kept, (0..10).collect::<Vec<_>>());
    assert!(selection.dropped.is_empty());
}

#[test]
fn over_budget_the_oldest_ordinary_messages_go_first_and_the_newest_turns_stay() {
    let messages = chatter(100);
    let selection = select(&messages, &policy(300));
    assert!(!selection.dropped.is_empty());
    assert!(selection.kept_tokens <= 300, "kept {} tokens", selection.kept_tokens);
    // The last two user turns and everything after them.
    assert!(selection.kept.ends_with(&[96, 97, 98, 99]));
    // What is dropped is the oldest part.
    assert_eq!(selection.dropped[0], 0);
    assert!(selection.dropped.iter().all(|&i| i < selection.kept[0]));
}

#[test]
fn critical_messages_are_kept_whatever_the_budget() {
    let mut messages = chatter(100);
    messages[3] = message(4, MessageRole::System, "The model provider was down at 10:00.");
    messages[6] = message(7, MessageRole::User, "Remember: the staging VPN code is 4471.");
    let selection = select(&messages, &policy(50));
    assert!(selection.kept.contains(&3));
    assert!(selection.kept.contains(&6));
}

#[test]
fn a_code_runs_outcome_outlives_compaction_and_its_progress_lines_go_first() {
    let mut messages = chatter(100);
    messages[10] = message(11, MessageRole::System, "Job #3: step 1 — Write: hello.txt (1 file(s) touched)");
    messages[11] = message(12, MessageRole::System, "Job #3: step 2 — Bash: make test (1 file(s) touched)");
    let outcome = "Job #3 (claude_code) finished.\nWorkspace shop\nSummary: Added hello.txt.\nFiles changed: hello.txt";
    messages[12] = message(13, MessageRole::System, outcome);
    messages[13] = message(14, MessageRole::System, "Job #4 (claude_code) failed after 1 attempt(s): time limit");
    let selection = select(&messages, &policy(80));
    assert!(selection.kept.contains(&12) && selection.kept.contains(&13), "outcomes are kept: {selection:?}");
    assert!(selection.dropped.contains(&10) && selection.dropped.contains(&11), "progress goes: {selection:?}");
}

#[test]
fn acknowledgements_are_dropped_before_ordinary_messages_and_questions_are_kept_longest() {
    let mut messages = chatter(40);
    messages[20] = message(21, MessageRole::Assistant, "Noted.");
    messages[22] = message(23, MessageRole::User, "What is the plan for the migration?");
    // Room for roughly all but a couple of messages.
    let total: u32 = messages.iter().map(|m| TokenEstimator::default().message_tokens(m)).sum();
    let selection = select(&messages, &policy(total - 40));
    assert!(selection.dropped.contains(&20), "the acknowledgement should go first");
    assert!(selection.kept.contains(&22), "the question should stay");
}

#[test]
fn a_tool_call_and_its_results_are_kept_or_dropped_together() {
    let mut messages = chatter(60);
    messages[10] = tool_call(11);
    messages[11] = tool_result(12, 11, "search output that is long enough to matter for the budget");
    messages[12] = tool_result(13, 11, "second result of the same call");
    for budget in [60, 120, 200, 400, 800, 5000] {
        let selection = select(&messages, &policy(budget));
        let kept: Vec<bool> = [10, 11, 12].iter().map(|i| selection.kept.contains(i)).collect();
        assert!(kept.iter().all(|&k| k) || kept.iter().all(|&k| !k), "split at budget {budget}: {kept:?}");
    }
}

#[test]
fn the_extractive_summary_keeps_fact_sentences_in_order_within_the_limit() {
    let dropped = [
        message(1, MessageRole::User, "hi there, how are you doing today"),
        message(2, MessageRole::User, "We decided to ship the billing rewrite on 14 March."),
        message(3, MessageRole::Assistant, "sounds good to me, let me know"),
        message(4, MessageRole::User, "The config lives in src/config/settings.rs now."),
    ];
    let refs: Vec<&StoredMessage> = dropped.iter().collect();
    let summary = summary::extractive(&refs, 400);
    assert!(summary.starts_with(summary::SUMMARY_HEADER));
    let march = summary.find("14 March").unwrap();
    let path = summary.find("src/config/settings.rs").unwrap();
    assert!(march < path, "chronological order: {summary}");
    assert!(!summary.contains("how are you"));
    assert!(summary.len() <= 400);
    let tiny = summary::extractive(&refs, 120);
    assert!(tiny.len() <= 120, "{tiny}");
}

fn request_of(text: &str) -> crate::llm::ChatRequest {
    crate::llm::ChatRequest::new("model-a", "", vec![crate::llm::Message::user_text(text)])
}

#[test]
fn calibration_learns_a_models_ratio_and_leaves_others_on_the_default() {
    let calibration = TokenCalibration::default();
    let request = request_of(&"x".repeat(2000));
    // 2000 bytes read as 1000 tokens (+4 overhead): 2 bytes per token.
    assert_eq!(calibration.observe("model-a", &request, 1004), Some(2.0));
    assert_eq!(calibration.estimator_for("model-a").bytes_per_token, 2.0);
    assert_eq!(calibration.estimator_for("model-b"), TokenEstimator::default());
    // A later count moves the ratio part of the way, not all of it.
    let moved = calibration.observe("model-a", &request, 504).unwrap();
    assert!((moved - (2.0 * 0.7 + 4.0 * 0.3)).abs() < 1e-4, "{moved}");
}

#[test]
fn calibration_ignores_implausible_counts_and_images() {
    let calibration = TokenCalibration::default();
    let request = request_of(&"x".repeat(2000));
    assert_eq!(calibration.observe("m", &request, 4), None, "no tokens beyond the overhead");
    assert_eq!(calibration.observe("m", &request, 20), None, "100 bytes per token is no tokenizer");
    let mut with_image = request_of("look");
    with_image.messages[0]
        .content
        .push(crate::llm::ContentBlock::Image { media_type: "image/png".into(), data_base64: "AAAA".into() });
    assert_eq!(calibration.observe("m", &with_image, 10), None);
    assert!(!calibration.is_calibrated("m"));
}

#[test]
fn the_count_endpoint_is_claimed_once_per_model() {
    let calibration = TokenCalibration::default();
    assert!(calibration.claim_count("m"));
    assert!(!calibration.claim_count("m"));
    assert!(calibration.claim_count("n"));
}
