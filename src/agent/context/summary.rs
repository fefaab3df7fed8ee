//! Summaries of dropped history. The extractive summary is deterministic and
//! cheap: it keeps the sentences most likely to carry facts (numbers and
//! dates, names, file paths, decisions), in their original order, within a
//! size limit. A model-written summary is used when a model is available and
//! answers within the time limit; otherwise the extractive one.

use std::time::Duration;

use crate::llm::{ChatModel, ChatRequest, Message};
use crate::storage::{MessageRole, StoredMessage};

/// First line of every summary the model sees.
pub const SUMMARY_HEADER: &str = "[Summary of earlier parts of this conversation, condensed by valor]";

/// Words that mark a decision, commitment or fact worth keeping.
const FACT_WORDS: &[&str] = &[
    "decided",
    "decide",
    "agreed",
    "agree",
    "chose",
    "choose",
    "will",
    "must",
    "should",
    "deadline",
    "due",
    "plan",
    "planned",
    "launch",
    "release",
    "budget",
    "price",
    "cost",
    "password",
    "key",
    "token",
    "named",
    "called",
    "lives",
    "located",
    "moved",
    "use",
    "using",
    "switch",
    "owner",
    "responsible",
    "meeting",
    "prefer",
    "never",
    "always",
];

struct Candidate<'a> {
    order: usize,
    role: &'a str,
    sentence: &'a str,
    score: u32,
}

/// Split text into sentences (on `.`/`!`/`?` followed by a space, and on newlines).
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let bytes = line.as_bytes();
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(byte, b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
                pieces.push(&line[start..=i]);
                start = i + 2;
            }
        }
        pieces.push(&line[start.min(line.len())..]);
    }
    pieces.into_iter().map(str::trim).filter(|s| s.len() >= 8)
}

/// How likely a sentence is to carry a fact someone will ask about later.
fn score(sentence: &str) -> u32 {
    let mut score = 0;
    if sentence.bytes().any(|b| b.is_ascii_digit()) {
        score += 3;
    }
    let mut words = sentence.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '(' || c == ')');
    let _first = words.next();
    for word in words {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '/' && c != '.' && c != '_' && c != '-');
        if bare.len() > 1 && bare.chars().next().is_some_and(char::is_uppercase) {
            score += 1; // a name or proper noun
        }
        if (bare.contains('/') || bare.contains('_') || (bare.contains('.') && bare.len() > 4)) && bare.len() > 3 {
            score += 2; // a path, file or identifier
        }
        let lower = bare.to_ascii_lowercase();
        if FACT_WORDS.contains(&lower.as_str()) {
            score += 2;
        }
    }
    if sentence.contains('`') {
        score += 1;
    }
    score
}

/// A deterministic summary of `dropped` (oldest first) within `max_chars`.
pub fn extractive(dropped: &[&StoredMessage], max_chars: usize) -> String {
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for message in dropped {
        let role = match message.role {
            MessageRole::User => "user",
            MessageRole::Assistant => "valor",
            MessageRole::Tool => "tool",
            MessageRole::System => "notice",
        };
        for sentence in sentences(&message.text) {
            let mut value = score(sentence);
            if message.role == MessageRole::Tool {
                value /= 2;
            }
            if value >= 2 {
                candidates.push(Candidate { order: candidates.len(), role, sentence, score: value });
            }
        }
    }
    // Best first; among equals, older first (facts planted early are the ones that get lost).
    candidates.sort_by(|a, b| b.score.cmp(&a.score).then(a.order.cmp(&b.order)));
    let mut chosen: Vec<&Candidate<'_>> = Vec::new();
    let mut used = SUMMARY_HEADER.len();
    let mut seen = std::collections::HashSet::new();
    for candidate in &candidates {
        let line_len = candidate.role.len() + candidate.sentence.len().min(240) + 5;
        if used + line_len > max_chars {
            continue;
        }
        if seen.insert(candidate.sentence) {
            used += line_len;
            chosen.push(candidate);
        }
    }
    chosen.sort_by_key(|c| c.order);
    let mut summary = String::with_capacity(used);
    summary.push_str(SUMMARY_HEADER);
    for candidate in chosen {
        summary.push_str("\n- ");
        summary.push_str(candidate.role);
        summary.push_str(": ");
        let cut = floor_char_boundary(candidate.sentence, 240);
        summary.push_str(&candidate.sentence[..cut]);
    }
    summary
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

const SUMMARY_PROMPT: &str = "Condense the conversation excerpt into a short list of facts for your own later \
reference. Keep every name, number, date, amount, decision, commitment and file path exactly as written. \
No commentary, no preamble: one fact per line starting with '- '.";

/// A model-written summary, or `None` if the model fails or exceeds `limit`.
pub async fn by_model(
    model: &dyn ChatModel,
    model_name: &str,
    dropped: &[&StoredMessage],
    max_chars: usize,
    limit: Duration,
) -> Option<String> {
    let mut excerpt = String::new();
    for message in dropped {
        if message.text.trim().is_empty() || message.role == MessageRole::Tool {
            continue;
        }
        excerpt.push_str(message.role.as_str());
        excerpt.push_str(": ");
        excerpt.push_str(&message.text);
        excerpt.push('\n');
    }
    let mut request = ChatRequest::new(model_name, SUMMARY_PROMPT, vec![Message::user_text(excerpt)]);
    request.max_tokens = u32::try_from(max_chars / 3).unwrap_or(1024).max(64);
    request.temperature = Some(0.0);
    let response = tokio::time::timeout(limit, model.complete(&request)).await.ok()?.ok()?;
    let text = response.message.text();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let cut = floor_char_boundary(text, max_chars);
    Some(format!("{SUMMARY_HEADER}\n{}", &text[..cut]))
}
