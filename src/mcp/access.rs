//! What an MCP call may do, decided from its `chat_id` (a conversation id or
//! title): the permissions that conversation's people have in valor.
//!
//! - Telegram conversations follow `[telegram]`'s rules: the private chat of
//!   an admin (a private chat's id is its user's id) acts as an admin; the
//!   private chat of a user whitelisted by id, a dev group or an allowed
//!   group acts as a non-admin (a group has non-admin members); any other
//!   chat is refused. Usernames in `allowed_users` cannot be checked without
//!   a message, so only ids count here.
//! - Background-job and daydream conversations (`job`, `daydream`) act as
//!   non-admins, like the jobs.
//! - Web, API and terminal conversations act as admins: only token holders
//!   and local users reach them.
//! - Any other channel is refused (deny by default).
//!
//! The registry then applies the tool permissions and the spending limit.

use crate::config::{TelegramSettings, UserRef};
use crate::storage::Conversation;

/// Whether a call in `conversation` acts as an admin (`Ok(true)`), as a
/// non-admin (`Ok(false)`), or is refused (`Err`, the reason for the client).
pub fn acts_as_admin(rules: &TelegramSettings, conversation: &Conversation) -> Result<bool, String> {
    match conversation.channel.as_str() {
        "telegram" => {
            let Some(chat_id) = conversation.chat_id else {
                return Err(format!("conversation {:?} has no Telegram chat", conversation.title));
            };
            if rules.admins.contains(&chat_id) {
                Ok(true)
            } else if rules.allowed_users.contains(&UserRef::Id(chat_id))
                || rules.dev_groups.contains(&chat_id)
                || rules.groups.contains(&chat_id)
            {
                Ok(false)
            } else {
                Err(format!(
                    "Telegram chat {chat_id} has no permission to use valor's tools (it is not an admin's or a \
                     whitelisted user's private chat by id, nor an allowed group)"
                ))
            }
        }
        // Background work: the jobs' and the daydream's own transcripts.
        "job" | "daydream" => Ok(false),
        "web" | "api" | "terminal" => Ok(true),
        // Deny by default: a channel this list does not know is never admin by accident.
        other => Err(format!(
            "conversation {:?} belongs to the channel {other:?}, which may not use valor's tools over MCP",
            conversation.title
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conversation(channel: &str, chat_id: Option<i64>) -> Conversation {
        Conversation {
            id: "c".into(),
            title: "t".into(),
            channel: channel.into(),
            chat_id,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn each_kind_of_conversation_gets_its_people_s_permissions() {
        let rules = TelegramSettings {
            admins: vec![1],
            allowed_users: vec![UserRef::Id(2), UserRef::Username("carol".into())],
            dev_groups: vec![-10],
            groups: vec![-20],
            ..TelegramSettings::default()
        };
        let cases = [
            (conversation("telegram", Some(1)), Ok(true)),
            (conversation("telegram", Some(2)), Ok(false)),
            (conversation("telegram", Some(-10)), Ok(false)),
            (conversation("telegram", Some(-20)), Ok(false)),
            (conversation("job", None), Ok(false)),
            (conversation("api", None), Ok(true)),
            (conversation("web", None), Ok(true)),
            (conversation("terminal", None), Ok(true)),
        ];
        for (conversation, expected) in cases {
            assert_eq!(acts_as_admin(&rules, &conversation), expected, "{conversation:?}");
        }
        let refused = acts_as_admin(&rules, &conversation("telegram", Some(3))).unwrap_err();
        assert!(refused.starts_with("Telegram chat 3 has no permission to use valor's tools"), "{refused}");
        assert!(acts_as_admin(&rules, &conversation("telegram", None)).is_err());
        assert_eq!(acts_as_admin(&rules, &conversation("daydream", None)), Ok(false));
        let unknown = acts_as_admin(&rules, &conversation("carrier-pigeon", None)).unwrap_err();
        assert!(unknown.contains("\"carrier-pigeon\", which may not use valor's tools"), "{unknown}");
    }
}
