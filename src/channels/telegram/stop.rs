//! Stopping a running answer from Telegram: `/stop` in the chat, or the
//! "⏹ Stop" button under the streamed preview (callback data
//! `turn:stop:<turn_id>`). Either cancels the turn (`Agent::cancel_turn`):
//! what was streamed stays, marked stopped, as the final answer, and the
//! final edit removes the button.
//!
//! Only the person who asked, or an admin, may stop an answer. `/stop` is
//! taken at intake, not queued behind the chat's running turn (a chat's
//! messages are handled one after another, so a queued `/stop` would only
//! run once the answer it means had ended).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::storage::StorageResult;

use super::Shared;
use super::access::{self, Access, admits_press};
use super::inbound::Incoming;

const BUTTON_PREFIX: &str = "turn:stop:";

/// The turn each chat is answering now and who asked.
#[derive(Debug, Default)]
pub(super) struct ChatTurns {
    running: std::sync::Mutex<HashMap<i64, ChatTurn>>,
}

#[derive(Debug, Clone)]
struct ChatTurn {
    turn_id: String,
    asker: Option<i64>,
}

/// Forgets a chat's running turn when the answer ends (however it ends).
pub(super) struct Running<'a> {
    turns: &'a ChatTurns,
    chat_id: i64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.turns.lock().remove(&self.chat_id);
    }
}

impl ChatTurns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, ChatTurn>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn start(&self, chat_id: i64, turn_id: &str, asker: Option<i64>) -> Running<'_> {
        self.lock().insert(chat_id, ChatTurn { turn_id: turn_id.to_owned(), asker });
        Running { turns: self, chat_id }
    }
}

/// The inline keyboard with the Stop button of turn `turn_id`.
pub(super) fn button(turn_id: &str) -> Value {
    json!({"inline_keyboard": [[{"text": "⏹ Stop", "callback_data": format!("{BUTTON_PREFIX}{turn_id}")}]]})
}

/// The turn id of a Stop button's callback data.
pub(super) fn pressed(data: &str) -> Option<&str> {
    data.strip_prefix(BUTTON_PREFIX).filter(|id| !id.is_empty())
}

enum Outcome {
    Stopped,
    NothingRunning,
    NotYours,
}

/// Stop `chat_id`'s running turn (`turn_id`, if given, must be it) for `user_id`.
fn stop(shared: &Shared, chat_id: i64, turn_id: Option<&str>, user_id: i64, is_admin: bool) -> Outcome {
    let running = shared.chat_turns.lock().get(&chat_id).cloned();
    let Some(turn) = running.filter(|turn| turn_id.is_none_or(|id| id == turn.turn_id)) else {
        return Outcome::NothingRunning;
    };
    if !is_admin && turn.asker != Some(user_id) {
        tracing::warn!(chat = chat_id, user = user_id, "telegram: stop refused: not the asker");
        return Outcome::NotYours;
    }
    if shared.agent.cancel_turn(&turn.turn_id) {
        tracing::info!(chat = chat_id, user = user_id, turn = %turn.turn_id, "telegram: answer stopped");
        Outcome::Stopped
    } else {
        Outcome::NothingRunning
    }
}

/// `/stop` (or `/stop@bot`) as the whole message.
fn is_stop_command(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    let name = first.split('@').next().unwrap_or("");
    name.eq_ignore_ascii_case("/stop") && words.next().is_none()
}

/// Handle a `/stop` message at intake; false when `message` is something
/// else (then it is stored and handled in order like any message).
pub(super) async fn take_command(shared: &Shared, update_id: i64, message: &Incoming) -> StorageResult<bool> {
    if !is_stop_command(&message.text) {
        return Ok(false);
    }
    let Access::Allow { is_admin, .. } = access::decide(&shared.settings, &shared.bot, message) else {
        return Ok(false); // ignored the ordinary way (and audit-logged there)
    };
    let Some(user_id) = message.user_id else { return Ok(false) };
    let text = match stop(shared, message.chat_id, None, user_id, is_admin) {
        Outcome::Stopped => "⏹ Stopped.",
        Outcome::NothingRunning => "Nothing is running here.",
        Outcome::NotYours => "Only the person who asked (or an admin) can stop this answer.",
    };
    let key = format!("stop:{update_id}");
    let replies =
        super::deliver::build_replies((message.chat_id, message.thread_id), Some(message.message_id), text, None, &key);
    shared.store.telegram_queue_replies(&replies).await?;
    shared.outbox_ready.notify_one();
    Ok(true)
}

/// A press of a Stop button: stop the turn if the presser may, and say so.
pub(super) async fn press(shared: &Shared, query: &Value, turn_id: &str) {
    let Some(query_id) = query["id"].as_str() else { return };
    let message = &query["message"];
    let text = match (message["chat"]["id"].as_i64(), query["from"]["id"].as_i64()) {
        (Some(chat_id), Some(user_id)) => {
            let sender = access::Sender {
                chat_type: message["chat"]["type"].as_str().unwrap_or(""),
                chat_id,
                user_id: Some(user_id),
                username: query["from"]["username"].as_str(),
            };
            match admits_press(&shared.settings, &sender) {
                None => "Only the person who asked (or an admin) can stop this answer.",
                Some(is_admin) => match stop(shared, chat_id, Some(turn_id), user_id, is_admin) {
                    Outcome::Stopped => "Stopping…",
                    Outcome::NothingRunning => "This answer has already ended.",
                    Outcome::NotYours => "Only the person who asked (or an admin) can stop this answer.",
                },
            }
        }
        _ => "This button no longer works.",
    };
    if let Err(error) = shared.api.answer_callback_query(query_id, text).await {
        tracing::warn!("telegram: answerCallbackQuery failed: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_stop_is_the_command() {
        assert!(is_stop_command("/stop"));
        assert!(is_stop_command(" /STOP@valor_bot "));
        assert!(!is_stop_command("/stop it now"), "with words it is an ordinary message");
        assert!(!is_stop_command("/stopwatch"));
        assert!(!is_stop_command("please /stop"));
        assert_eq!(pressed("turn:stop:abc"), Some("abc"));
        assert_eq!(pressed("turn:stop:"), None);
        assert_eq!(pressed("job:cancel:1"), None);
    }
}
