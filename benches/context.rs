//! Context selection cost: choosing the history for a turn from 1,000 and
//! 10,000 stored messages — selection alone; selection plus the extractive
//! lines an ordinary condensed turn adds for the turns pending since the
//! last fold; selection plus an extractive fold (the stored summary and the
//! pending turns); and, as the worst case, selection plus an extractive
//! summary of the whole dropped span at once. Run: `cargo bench --bench context`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use valor::agent::context::{ContextPolicy, REFRESH_TURNS, select, summary};
use valor::storage::{MessageRole, StoredMessage};

const LINES: &[&str] = &[
    "can you rephrase that last paragraph a bit more casually",
    "We decided to launch the mobile app on 14 March.",
    "Sure, here is a shorter version of that.",
    "The config lives in src/config/settings.rs now.",
    "what do you think about tabs versus spaces?",
    "ok",
    "Our designer on this project is called Mirela Petrova.",
    "Happy to help with that.",
];

fn conversation(count: usize) -> Vec<StoredMessage> {
    (0..count)
        .map(|i| {
            let role = match i % 10 {
                0 if i % 500 == 0 => MessageRole::System,
                n if n % 2 == 0 => MessageRole::User,
                _ => MessageRole::Assistant,
            };
            let text = LINES[i % LINES.len()];
            StoredMessage {
                id: i as i64 + 1,
                conversation_id: "bench".into(),
                role,
                content: json!([{"type": "text", "text": text}]),
                text: text.into(),
                turn_id: None,
                created_at_ms: i as i64,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let policy = ContextPolicy { budget_tokens: 4_000, ..ContextPolicy::default() };
    for count in [1_000, 10_000] {
        let messages = conversation(count);
        let selection = select(&messages, &policy);
        eprintln!("{count} messages → {} kept", selection.kept.len());
        // The newest turns before the window, as pending since the last fold.
        let summarised = selection.summarised_messages(&messages);
        let pending_from = summarised.len().saturating_sub(REFRESH_TURNS * 2);
        let stored = summary::extractive_lines("", &summarised[..pending_from], 1_500);
        c.bench_function(&format!("select {count} messages"), |b| b.iter(|| select(black_box(&messages), &policy)));
        c.bench_function(&format!("select + pending lines, {count} messages"), |b| {
            b.iter(|| {
                let selection = select(black_box(&messages), &policy);
                let summarised = selection.summarised_messages(&messages);
                let pending = &summarised[summarised.len().saturating_sub(REFRESH_TURNS * 2)..];
                summary::extractive_lines("", pending, 500)
            })
        });
        c.bench_function(&format!("select + extractive fold, {count} messages"), |b| {
            b.iter(|| {
                let selection = select(black_box(&messages), &policy);
                let summarised = selection.summarised_messages(&messages);
                let pending = &summarised[summarised.len().saturating_sub(REFRESH_TURNS * 2)..];
                summary::extractive_lines(&stored, pending, 1_500)
            })
        });
        c.bench_function(&format!("select + whole-span extractive summary, {count} messages"), |b| {
            b.iter(|| {
                let selection = select(black_box(&messages), &policy);
                summary::extractive(&selection.summarised_messages(&messages), 2_100)
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
