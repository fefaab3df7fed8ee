//! Summaries of dropped history, as lines (`- user: …`, `- valor: …`, or a
//! model's `- …`) under one header.
//!
//! The extractive summary is deterministic and cheap: it scores sentences
//! for what someone asks about later (paths, URLs, hosts and identifiers;
//! numbers with units, dates and times; decisions; names; error texts; and
//! above all the user's own instructions on how to be answered — "keep
//! status updates to three bullet points"), drops exact and near
//! duplicates (the newest wording of a repeated line is kept), and keeps
//! the best lines in their original order within a size limit. It can fold
//! new messages into a previous summary: the previous lines compete with
//! the new sentences on the same scores.
//!
//! A model summary folds too: its input is the previous summary plus the
//! newly dropped messages, at most [`MAX_INPUT_BYTES`]; it is asked for no
//! more than fits, and an answer that still runs over is cut at a line (or
//! sentence) boundary, never mid-line.

use std::collections::HashMap;
use std::time::Duration;

use crate::llm::{ChatModel, ChatRequest, Message};
use crate::storage::{MessageRole, StoredMessage};

/// First line of every summary the model sees.
pub const SUMMARY_HEADER: &str = "[Summary of earlier parts of this conversation, condensed by valor]";

/// The largest summary request (system prompt + previous summary + new
/// messages), in bytes, at any conversation length.
pub const MAX_INPUT_BYTES: usize = 16_000;

/// One message's share of a summary request, at most (a pasted log is cut
/// at a sentence boundary).
const MAX_MESSAGE_EXCERPT: usize = 2_000;

/// Longest line of an extractive summary.
const MAX_LINE: usize = 240;

/// Sentences scoring below this are not worth a line.
const MIN_SCORE: i32 = 2;

/// Word-set overlap (Jaccard) from which two lines say the same thing.
const NEAR_DUPLICATE: f32 = 0.6;

/// Decisions and commitments.
const DECISION_WORDS: &[&str] = &[
    "decided",
    "decide",
    "decision",
    "agreed",
    "agree",
    "chose",
    "chosen",
    "choose",
    "settled",
    "approved",
    "committed",
];

/// Words that mark a fact worth keeping.
const FACT_WORDS: &[&str] = &[
    "deadline",
    "due",
    "plan",
    "planned",
    "launch",
    "release",
    "version",
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
    "stored",
    "moved",
    "move",
    "switch",
    "owner",
    "owns",
    "owned",
    "signs",
    "signed",
    "port",
    "host",
    "responsible",
    "manager",
    "designer",
    "lead",
    "reviewer",
    "review",
    "must",
    "required",
    "limit",
    "timeout",
    "retention",
    "meeting",
    "birthday",
];

/// The user saying how things should be from now on.
const STANDING_MARKERS: &[&str] = &[
    "prefer",
    "from now on",
    "going forward",
    "in future",
    "in the future",
    "by default",
    "always",
    "never",
    "every time",
    "whenever",
    "don't ever",
    "please don't",
    "please do not",
    "i want you to",
    "i'd like you to",
    "i would like you to",
    "make sure you",
    "call me ",
];

/// What an answer looks like …
const ANSWER_NOUNS: &[&str] = &[
    "answer",
    "repl",
    "respon",
    "update",
    "summar",
    "bullet",
    "format",
    "tone",
    "english",
    "units",
    "emoji",
    "length",
    "words",
    "sentences",
    "paragraph",
];

/// … and the verbs that ask for it.
const DIRECTIVE_VERBS: &[&str] = &[
    "keep", "use", "write", "give", "send", "stick", "limit", "answer", "reply", "respond", "format", "prefer", "make",
];

const ERROR_MARKERS: &[&str] = &[
    "error",
    "failed",
    "failure",
    "exception",
    "panic",
    "traceback",
    "timed out",
    "refused",
    "denied",
    "not found",
    "unable to",
    "cannot ",
];

const NUMBER_WORDS: &[&str] =
    &["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];

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

/// A word without the punctuation around it (a trailing full stop is
/// punctuation, not part of a file name).
fn bare(word: &str) -> &str {
    word.trim_start_matches(['(', '"', '\'', '`', '*', '[', '<'])
        .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'', '`', '*', ']', '>'])
}

fn is_url(word: &str) -> bool {
    word.contains("://") || word.starts_with("www.")
}

/// `/etc/nginx/conf.d/upstream.conf`, `src/shop/checkout.rs`, `~/notes`,
/// `Hiring/Backend-2027`.
fn is_path(word: &str) -> bool {
    if word.len() < 3 || !word.contains('/') {
        return false;
    }
    let rooted = word.starts_with('/') || word.starts_with("~/") || word.starts_with("./");
    let inner = word.split('/').filter(|part| part.chars().any(char::is_alphanumeric)).count() >= 2;
    (rooted && word.chars().filter(|c| c.is_alphanumeric()).count() >= 2) || inner
}

/// `settings.rs`, `db-prod-2.internal`, `example.com`: a dot between a name
/// and a short alphabetic ending (a version like `4.2` is a number).
fn is_file_or_host(word: &str) -> bool {
    let Some((name, ending)) = word.rsplit_once('.') else { return false };
    word.len() >= 5
        && !name.is_empty()
        && name.chars().last().is_some_and(char::is_alphanumeric)
        && (1..=10).contains(&ending.len())
        && ending.chars().all(|c| c.is_ascii_alphabetic())
}

fn is_identifier(word: &str) -> bool {
    word.len() > 3 && word.contains('_') && word.chars().filter(|c| c.is_alphanumeric()).count() >= 3
}

/// How likely a sentence is to carry a fact or instruction someone needs later.
fn score(sentence: &str, role: MessageRole) -> i32 {
    let lower = sentence.to_lowercase();
    let mut score = 0;
    let (mut numbers, mut quantity, mut names, mut facts) = (false, false, 0, 0);
    let mut words = sentence.split_whitespace().map(bare).filter(|w| !w.is_empty()).peekable();
    let mut first = true;
    while let Some(word) = words.next() {
        if is_url(word) || is_path(word) {
            score += 4;
        } else if is_file_or_host(word) || is_identifier(word) {
            score += 3;
        }
        let is = |list: &[&str]| list.iter().any(|known| known.eq_ignore_ascii_case(word));
        if word.bytes().any(|b| b.is_ascii_digit()) || is(NUMBER_WORDS) {
            numbers = true;
            // With a unit or attached letters/separators: "30 days", "95k", "15:00", "42,000 EUR".
            let attached = word.chars().any(|c| !c.is_ascii_digit());
            let unit = words.peek().is_some_and(|next| next.chars().next().is_some_and(char::is_alphabetic));
            quantity |= attached || unit;
        }
        if !first && word.len() > 1 && word != "I" && word.chars().next().is_some_and(char::is_uppercase) {
            names += 1;
        }
        if is(DECISION_WORDS) {
            score += 4;
        } else if is(FACT_WORDS) {
            facts += 1;
        }
        first = false;
    }
    score += if quantity {
        3
    } else if numbers {
        2
    } else {
        0
    };
    score += names.min(3) + 2 * facts.min(2);
    if ERROR_MARKERS.iter().any(|marker| lower.contains(marker)) {
        score += 4;
    }
    let standing = STANDING_MARKERS.iter().any(|marker| lower.contains(marker));
    let about_answers = ANSWER_NOUNS.iter().any(|noun| lower.contains(noun))
        && DIRECTIVE_VERBS.iter().any(|verb| lower.split(|c: char| !c.is_alphabetic()).any(|w| w == *verb));
    if standing {
        score += 4;
    }
    if about_answers {
        score += 3;
    }
    // How the user wants to be answered outranks everything but the loudest facts.
    if role == MessageRole::User && (standing || about_answers) {
        score += 3;
    }
    if sentence.contains('`') {
        score += 1;
    }
    if sentence.ends_with('?') {
        score -= 2;
    }
    if role == MessageRole::Tool {
        score /= 2;
    }
    score
}

fn role_label(role: MessageRole) -> &'static str {
    match role {
        MessageRole::User => "user",
        MessageRole::Assistant => "valor",
        MessageRole::Tool => "tool",
        MessageRole::System => "notice",
    }
}

fn role_of_label(label: &str) -> Option<MessageRole> {
    match label {
        "user" => Some(MessageRole::User),
        "valor" => Some(MessageRole::Assistant),
        "tool" => Some(MessageRole::Tool),
        "notice" => Some(MessageRole::System),
        _ => None,
    }
}

struct Candidate<'a> {
    order: usize,
    /// "" for a line of a model summary.
    role: &'a str,
    sentence: &'a str,
    score: i32,
}

impl Candidate<'_> {
    fn line_len(&self) -> usize {
        let role = if self.role.is_empty() { 0 } else { self.role.len() + 2 };
        3 + role + self.sentence.len().min(MAX_LINE + 3)
    }
}

/// Lowercase alphanumeric words, hashed (FNV-1a), no allocation per word.
fn word_hashes(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|word| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for c in word.chars().flat_map(char::to_lowercase) {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    })
}

fn exact_key(text: &str) -> u64 {
    word_hashes(text).fold(0x9e37_79b9_7f4a_7c15, |key, word| key.rotate_left(7) ^ word)
}

fn word_set(text: &str) -> Vec<u64> {
    let mut set: Vec<u64> = word_hashes(text).collect();
    set.sort_unstable();
    set.dedup();
    set
}

fn similar(a: &[u64], b: &[u64]) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    common as f32 >= NEAR_DUPLICATE * union as f32
}

/// Summary lines (no header) for `previous` lines plus `new` messages
/// (oldest first), at most `max_chars` bytes.
pub fn extractive_lines(previous: &str, new: &[&StoredMessage], max_chars: usize) -> String {
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for line in previous.lines() {
        let Some(body) = line.strip_prefix("- ") else { continue };
        let (role, sentence) = match body.split_once(": ").filter(|(label, _)| role_of_label(label).is_some()) {
            Some((label, sentence)) => (label, sentence),
            None => ("", body),
        };
        let score = match role_of_label(role) {
            Some(role) => score(sentence, role),
            // A model's line: it was condensed once already and is kept over new material.
            None => score(sentence, MessageRole::Assistant).max(MIN_SCORE + 3),
        };
        candidates.push(Candidate { order: candidates.len(), role, sentence, score });
    }
    for message in new {
        let role = role_label(message.role);
        for sentence in sentences(&message.text) {
            let value = score(sentence, message.role);
            if value >= MIN_SCORE {
                candidates.push(Candidate { order: candidates.len(), role, sentence, score: value });
            }
        }
    }
    // Exact repeats: the newest occurrence stands for all of them.
    let mut newest: HashMap<u64, usize> = HashMap::with_capacity(candidates.len());
    for candidate in &candidates {
        newest.insert(exact_key(candidate.sentence), candidate.order);
    }
    candidates.retain(|c| newest.get(&exact_key(c.sentence)) == Some(&c.order));
    // Best first; among equals, older first (facts planted early are the ones that get lost).
    candidates.sort_by(|a, b| b.score.cmp(&a.score).then(a.order.cmp(&b.order)));
    let mut chosen: Vec<(&Candidate<'_>, Vec<u64>)> = Vec::new();
    let mut used = 0;
    for candidate in &candidates {
        if max_chars.saturating_sub(used) < 24 {
            break;
        }
        let line_len = candidate.line_len();
        if used + line_len > max_chars {
            continue;
        }
        let words = word_set(candidate.sentence);
        if chosen.iter().any(|(_, other)| similar(&words, other)) {
            continue;
        }
        used += line_len;
        chosen.push((candidate, words));
    }
    chosen.sort_by_key(|(c, _)| c.order);
    let mut lines = String::with_capacity(used);
    for (candidate, _) in chosen {
        if !lines.is_empty() {
            lines.push('\n');
        }
        lines.push_str("- ");
        if !candidate.role.is_empty() {
            lines.push_str(candidate.role);
            lines.push_str(": ");
        }
        lines.push_str(&cut_at_boundary(candidate.sentence, MAX_LINE));
    }
    lines
}

/// A deterministic summary of `dropped` (oldest first), header included,
/// within `max_chars`.
pub fn extractive(dropped: &[&StoredMessage], max_chars: usize) -> String {
    render(&extractive_lines("", dropped, max_chars.saturating_sub(SUMMARY_HEADER.len() + 1)), "")
}

/// The summary the model sees: the header, then the lines.
pub fn render(lines: &str, more: &str) -> String {
    let mut text = String::with_capacity(SUMMARY_HEADER.len() + lines.len() + more.len() + 2);
    text.push_str(SUMMARY_HEADER);
    for part in [lines, more] {
        if !part.is_empty() {
            text.push('\n');
            text.push_str(part);
        }
    }
    text
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

/// `text` if it fits in `max` bytes, else cut after its last sentence
/// that fits — or its last whole word — with "…".
pub fn cut_at_boundary(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let room = floor_char_boundary(text, max.saturating_sub('…'.len_utf8()));
    let head = &text[..room];
    let sentence_end = head.rfind(['.', '!', '?']).filter(|&i| i > room / 2).map(|i| i + 1);
    let cut = sentence_end.or_else(|| head.rfind(char::is_whitespace)).unwrap_or(room);
    format!("{}…", head[..cut].trim_end()).into()
}

/// Whole lines of `text` that fit in `max` bytes; a first line longer than
/// that is cut at a sentence or word boundary.
pub fn fit_lines(text: &str, max: usize) -> String {
    let mut fitted = String::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()) {
        let extra = line.len() + usize::from(!fitted.is_empty());
        if fitted.len() + extra > max {
            if fitted.is_empty() {
                fitted.push_str(&cut_at_boundary(line, max));
            }
            break;
        }
        if !fitted.is_empty() {
            fitted.push('\n');
        }
        fitted.push_str(line);
    }
    fitted
}

/// The instructions of a fold request asking for at most `max_chars`.
pub fn summary_prompt(max_chars: usize) -> String {
    format!(
        "You keep a running summary of a conversation between a user and valor, their assistant, for valor's \
own later reference. You get the summary so far and the part of the conversation that has just been condensed. \
Answer with the updated summary: keep every line of the summary so far that still holds, add what the new part \
adds, and replace what it changed. Keep every name, number, date, amount, decision, commitment, error text, file \
path and URL exactly as written, and every instruction the user gave about how to answer them. One fact per \
line starting with '- '; no commentary, no preamble. At most {max_chars} characters in all."
    )
}

/// A fold request's input: the previous summary and as many of `new`'s
/// messages (whole turns when possible) as fit in [`MAX_INPUT_BYTES`]
/// together with the prompt. Returns the text and how many messages of
/// `new` it covers (tool results are covered but not shown; the answer
/// after them says what came of them).
pub fn fold_input(previous: &str, new: &[&StoredMessage], max_chars: usize) -> (String, usize) {
    let room = MAX_INPUT_BYTES.saturating_sub(summary_prompt(max_chars).len());
    let mut input = String::with_capacity(room.min(MAX_INPUT_BYTES));
    input.push_str("Summary so far:\n");
    input.push_str(if previous.trim().is_empty() { "(nothing yet)" } else { previous.trim() });
    input.push_str("\n\nNewly condensed part of the conversation:\n");
    let (mut covered, mut turn_end, mut turn_input_len) = (0, 0, input.len());
    for (index, message) in new.iter().enumerate() {
        if message.role == MessageRole::User {
            (turn_end, turn_input_len) = (index, input.len());
        }
        let text = message.text.trim();
        if message.role == MessageRole::Tool || text.is_empty() {
            covered = index + 1;
            continue;
        }
        let line = format!("{}: {}\n", role_label(message.role), cut_at_boundary(text, MAX_MESSAGE_EXCERPT));
        if input.len() + line.len() > room {
            // Stop at the last whole turn that fit, if there was one.
            if turn_end > 0 {
                covered = turn_end;
                input.truncate(turn_input_len);
            }
            return (input, covered);
        }
        input.push_str(&line);
        covered = index + 1;
    }
    (input, covered)
}

/// A model-written summary and what writing it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The summary lines, no header, at most the size asked for.
    pub lines: String,
    /// Input plus output tokens of the request (the provider's count, or
    /// the estimate when it reports none).
    pub tokens: u64,
}

/// Asks the model for the updated summary of `input` (from [`fold_input`]),
/// at most `max_chars`; `None` if it fails, answers nothing or exceeds `limit`.
pub async fn by_model(
    model: &dyn ChatModel,
    model_name: &str,
    input: &str,
    max_chars: usize,
    bytes_per_token: f32,
    limit: Duration,
) -> Option<Written> {
    let system = summary_prompt(max_chars);
    let request_bytes = system.len() + input.len();
    let mut request = ChatRequest::new(model_name, system, vec![Message::user_text(input)]);
    // What fits, in tokens at this model's ratio, and no more.
    request.max_tokens = ((max_chars as f32 / bytes_per_token.max(1.0)).ceil() as u32).max(64);
    request.temperature = Some(0.0);
    metrics::counter!("valor_context_summary_requests_total").increment(1);
    let response = tokio::time::timeout(limit, model.complete(&request)).await.ok()?.ok()?;
    let text = response.message.text();
    let lines = fit_lines(text.trim(), max_chars);
    if lines.is_empty() {
        return None;
    }
    let estimate = |bytes: usize| (bytes as f32 / bytes_per_token.max(1.0)).ceil() as u64;
    let input_tokens = match response.usage.input_tokens {
        0 => estimate(request_bytes),
        counted => counted,
    };
    let output_tokens = match response.usage.output_tokens {
        0 => estimate(text.len()),
        counted => counted,
    };
    let tokens = input_tokens + output_tokens;
    metrics::counter!("valor_context_summary_tokens_total").increment(tokens);
    Some(Written { lines, tokens })
}
