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

/// A question/answer thread: user i asks, valor answers with a fact.
fn thread(turns: i64) -> Vec<StoredMessage> {
    let mut messages = Vec::new();
    for i in 0..turns {
        let id = messages.len() as i64 + 1;
        messages.push(message(id, MessageRole::User, &format!("What should setting number {i} be set to?")));
        messages.push(message(id + 1, MessageRole::Assistant, &format!("Setting number {i} should be {}.", i * 7)));
    }
    messages
}

fn answered(selection: &Selection, messages: &[StoredMessage]) -> Result<(), String> {
    for &index in &selection.kept {
        if messages[index].role == MessageRole::User {
            let answer = index + 1;
            if answer < messages.len() && !selection.kept.contains(&answer) {
                return Err(format!("kept question {index} without its answer"));
            }
        }
    }
    Ok(())
}

#[test]
fn a_kept_question_always_comes_with_its_answer() {
    let mut messages = thread(120);
    // Short acknowledgements between the questions (they made answers look cheaper to drop).
    messages[41] = message(42, MessageRole::Assistant, "ok");
    let total: u32 = messages.iter().map(|m| TokenEstimator::default().message_tokens(m)).sum();
    for budget in [100, 250, 400, total / 2, total - 30, total - 1] {
        let selection = select(&messages, &policy(budget));
        answered(&selection, &messages).unwrap_or_else(|e| panic!("budget {budget}: {e}"));
        // Whole turns fall out, oldest first: no kept turn is older than a dropped one.
        let first_kept = selection.kept[0];
        assert!(selection.dropped.iter().all(|&i| i < first_kept), "budget {budget}: {selection:?}");
        assert_eq!(selection.summarised, selection.dropped, "budget {budget}");
        assert!(selection.kept_tokens <= budget, "budget {budget}: {}", selection.kept_tokens);
    }
}

#[test]
fn old_tool_work_is_left_out_of_a_kept_turn_before_the_turn_itself() {
    let mut messages = chatter(40);
    // Turn at 20: a question, a tool call with a long result, the answer.
    messages[20] = message(21, MessageRole::User, "What does the deploy log say about the cache?");
    messages[21] = tool_call(22);
    messages.insert(22, tool_result(23, 22, &"log line with nothing in particular ".repeat(40)));
    messages.insert(23, message(24, MessageRole::Assistant, "The cache was warmed at 04:10."));
    let total: u32 = messages.iter().map(|m| TokenEstimator::default().message_tokens(m)).sum();
    let selection = select(&messages, &policy(total - 200));
    for index in [20, 23] {
        assert!(selection.kept.contains(&index), "question and answer stay: {selection:?}");
    }
    assert!(selection.dropped.contains(&21) && selection.dropped.contains(&22), "{selection:?}");
    // Left out of a kept turn is not summarised (the answer says what came of it).
    assert!(!selection.summarised.contains(&21));
}

#[test]
fn a_turn_whose_only_answer_is_tool_work_keeps_it() {
    let mut messages = chatter(40);
    messages[30] = message(31, MessageRole::User, "search for the invoice");
    messages[31] = tool_call(32);
    messages.insert(32, tool_result(33, 32, "invoice 2231 found"));
    let total: u32 = messages.iter().map(|m| TokenEstimator::default().message_tokens(m)).sum();
    let selection = select(&messages, &policy(total - 100));
    assert!(selection.kept.contains(&30));
    assert!(selection.kept.contains(&31) && selection.kept.contains(&32), "{selection:?}");
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

fn refs(messages: &[StoredMessage]) -> Vec<&StoredMessage> {
    messages.iter().collect()
}

#[test]
fn a_trailing_full_stop_is_not_a_path_and_a_real_path_is() {
    let dropped = [
        message(1, MessageRole::User, "Sounds good."),
        message(2, MessageRole::Assistant, "Nice work."),
        message(3, MessageRole::User, "the upstream block is in /etc/nginx/conf.d/upstream.conf on the proxy"),
    ];
    let summary = summary::extractive(&refs(&dropped), 400);
    assert!(summary.contains("/etc/nginx/conf.d/upstream.conf"), "{summary}");
    assert!(!summary.contains("Sounds good") && !summary.contains("Nice work"), "{summary}");
}

#[test]
fn how_the_user_wants_answers_outranks_filler_and_repeats_count_once() {
    let mut dropped = Vec::new();
    for i in 0..30 {
        dropped.push(message(dropped.len() as i64 + 1, MessageRole::User, "The build took 12 minutes again today."));
        dropped.push(message(dropped.len() as i64 + 1, MessageRole::Assistant, "The build took 12 minutes again."));
        dropped.push(message(dropped.len() as i64 + 1, MessageRole::User, &format!("I had {i} coffees, Tom says hi.")));
    }
    dropped.insert(7, message(900, MessageRole::User, "Please keep status updates to three bullet points."));
    dropped.insert(9, message(901, MessageRole::Assistant, "The upload failed with: error 413 Payload Too Large."));
    dropped.insert(11, message(902, MessageRole::User, "The dashboard is at https://grafana.example.net/d/ops."));
    let summary = summary::extractive(&refs(&dropped), 420);
    for fact in ["three bullet points", "error 413 Payload Too Large", "https://grafana.example.net/d/ops"] {
        assert!(summary.contains(fact), "{fact} missing from {summary}");
    }
    assert_eq!(summary.matches("The build took").count(), 1, "near-duplicates: {summary}");
}

#[test]
fn folding_keeps_the_previous_lines_and_adds_the_new_ones() {
    let first = [message(1, MessageRole::User, "We decided to launch the mobile app on 14 March.")];
    let lines = summary::extractive_lines("", &refs(&first), 600);
    let next = [
        message(2, MessageRole::User, "lol fair enough"),
        message(3, MessageRole::User, "The marketing budget for the launch is 42,000 EUR."),
    ];
    let folded = summary::extractive_lines(&lines, &refs(&next), 600);
    assert!(folded.contains("14 March") && folded.contains("42,000 EUR"), "{folded}");
    assert!(!folded.contains("fair enough"));
    // Folding the same material again adds nothing.
    assert_eq!(summary::extractive_lines(&folded, &refs(&next), 600), folded);
    // A model's lines are carried over as they are.
    let model = "- The billing rewrite launches on 14 March.";
    assert!(summary::extractive_lines(model, &refs(&next), 600).starts_with(model));
}

#[test]
fn an_answer_too_long_is_cut_at_a_line_or_sentence_boundary() {
    let answer = "- first fact, 14 March\n- second fact, 42,000 EUR\n- third fact that does not fit";
    assert_eq!(summary::fit_lines(answer, 50), "- first fact, 14 March\n- second fact, 42,000 EUR");
    let one_line = "- The launch is on 14 March. The budget is 42,000 EUR. The designer is Mirela.";
    assert_eq!(summary::fit_lines(one_line, 60), "- The launch is on 14 March. The budget is 42,000 EUR.…");
    let words = "- alpha beta gamma delta epsilon";
    assert_eq!(summary::fit_lines(words, 20), "- alpha beta…");
}

#[test]
fn the_fold_request_is_bounded_at_any_length_and_stops_at_a_whole_turn() {
    let messages: Vec<StoredMessage> = (0..4_000)
        .map(|i| {
            let role = if i % 2 == 0 { MessageRole::User } else { MessageRole::Assistant };
            message(i + 1, role, &format!("message {i}: {}", "words of a long conversation ".repeat(i as usize % 90)))
        })
        .collect();
    let previous = "- user: an earlier fact\n".repeat(70);
    let (input, covered) = summary::fold_input(&previous, &refs(&messages), 1_500);
    assert!(summary::summary_prompt(1_500).len() + input.len() <= summary::MAX_INPUT_BYTES, "{} bytes", input.len());
    assert!(covered > 2 && covered < messages.len());
    assert_eq!(messages[covered].role, MessageRole::User, "stops before a turn, not inside one");
    assert!(input.contains("an earlier fact"));
}
