//! The Telegram channel driven from outside: the real app polls a fake Bot
//! API (tests/common/telegram.rs, faithful to the published shapes) and asks
//! aimock for answers. Assertions are on what a Telegram user would see —
//! the bot's messages, edits and reactions as the fake recorded them — and
//! on what the model received (aimock's journal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "telegram/approvals.rs"]
mod approvals;
#[path = "common/claude.rs"]
mod claude_support;
#[path = "telegram/code_work.rs"]
mod code_work;
mod common;
#[path = "telegram/crash.rs"]
mod crash;
#[path = "telegram/delivery.rs"]
mod delivery;
#[path = "common/telegram.rs"]
mod fake_telegram;
#[path = "telegram/intake.rs"]
mod intake;
#[path = "telegram/jobs.rs"]
mod jobs;
#[path = "telegram/media.rs"]
mod media;
#[path = "telegram/pacing.rs"]
mod pacing;
#[path = "telegram/run_status.rs"]
mod run_status;
#[path = "telegram/shedding.rs"]
mod shedding;
#[path = "telegram/status.rs"]
mod status;
#[path = "telegram/streaming.rs"]
mod streaming;
#[path = "telegram/voice.rs"]
mod voice;
#[path = "telegram/webhook.rs"]
mod webhook;
#[path = "telegram/workspace_access.rs"]
mod workspace_access;

use common::Aimock;
use fake_telegram::{FakeTelegram, Person, TOKEN};
use serde_json::{Value, json};
use valor::config::{ProviderChoice, Settings, UserRef};

pub const ADMIN: Person = Person { id: 1, username: "root" };
pub const ALICE: Person = Person { id: 100, username: "alice" };
pub const BOB: Person = Person { id: 200, username: "Bob" };
pub const STRANGER: Person = Person { id: 666, username: "mallory" };
pub const DEV_GROUP: i64 = -1001;
pub const GROUP: i64 = -1002;

/// Point the app at the fake Bot API with a small, fast configuration.
pub fn use_telegram(settings: &mut Settings, fake: &FakeTelegram) {
    let telegram = &mut settings.telegram;
    telegram.bot_token = Some(TOKEN.to_owned().into());
    telegram.api_url = fake.url.clone();
    telegram.poll_timeout_secs = 1;
    telegram.typing_interval_ms = 200;
    telegram.admins = vec![ADMIN.id];
    telegram.allowed_users = vec![UserRef::Id(ALICE.id), UserRef::Username("bob".into())];
    telegram.dev_groups = vec![DEV_GROUP];
    telegram.groups = vec![GROUP];
}

pub fn configure(mock: &Aimock, fake: &FakeTelegram) -> impl FnOnce(&mut Settings) {
    let (mock_url, fake) = (mock.url.clone(), fake.clone());
    move |settings| {
        settings.llm.provider = ProviderChoice::Openai;
        settings.openai.api_key = Some("sk-openai-test-secret".to_owned().into());
        settings.openai.base_url = format!("{mock_url}/v1");
        use_telegram(settings, &fake);
    }
}

/// A fixture answering `question` with `answer`.
pub async fn script(mock: &Aimock, question: &str, answer: &str) {
    mock.add_fixtures(json!([{"match": {"userMessage": question}, "response": {"content": answer}}])).await;
}

/// The user text of each model request, in order.
pub async fn questions(mock: &Aimock) -> Vec<String> {
    mock.requests_to("/v1/chat/completions")
        .await
        .iter()
        .map(|request| {
            let messages = request["body"]["messages"].as_array().cloned().unwrap_or_default();
            let last = messages.iter().rev().find(|m| m["role"] == "user").cloned().unwrap_or(Value::Null);
            match &last["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
                _ => String::new(),
            }
        })
        .collect()
}
