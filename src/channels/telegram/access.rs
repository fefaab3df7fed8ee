//! Who valor answers in Telegram, decided before anything else happens (no
//! model call, no reaction, no download). A pure function of the configured
//! rules, the bot's identity and the message, so every case is a table row.
//!
//! Rules: admins — everything; private chats — the DM whitelist by user id or
//! username (either matches); dev groups — every message; other listed groups
//! — only when the message addresses the bot (a `mention` entity equal to
//! `@botname`, a `text_mention` of the bot, a `/command@botname`, or a reply
//! to the bot); anything else is ignored silently. Mentions are matched by
//! entities, never substrings ("valorant" is not a mention).

use crate::config::TelegramSettings;

use super::api::BotIdentity;
use super::inbound::Incoming;

/// The outcome of the access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Answer, with this text (the bot's mention removed).
    Allow { text: String, reason: &'static str, is_admin: bool },
    /// Stay silent.
    Ignore { reason: &'static str },
}

/// Decide whether to answer `message`.
pub fn decide(rules: &TelegramSettings, bot: &BotIdentity, message: &Incoming) -> Access {
    let sender = Sender {
        chat_type: &message.chat_type,
        chat_id: message.chat_id,
        user_id: message.user_id,
        username: message.username.as_deref(),
    };
    match admits(rules, &sender, || addresses_bot(bot, message)) {
        Ok((reason, is_admin)) => allow(bot, message, reason, is_admin),
        Err(reason) => Access::Ignore { reason },
    }
}

/// Who wrote (or pressed a button) where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender<'a> {
    pub chat_type: &'a str,
    pub chat_id: i64,
    pub user_id: Option<i64>,
    pub username: Option<&'a str>,
}

/// A button press under one of the bot's messages addresses the bot: the
/// presser is admitted exactly as a `/command@bot` of theirs in that chat
/// would be. `Some(is_admin)` when admitted.
pub fn admits_press(rules: &TelegramSettings, sender: &Sender<'_>) -> Option<bool> {
    admits(rules, sender, || true).ok().map(|(_, is_admin)| is_admin)
}

/// The rules: `Ok((reason, is_admin))` or `Err(reason)` to stay silent.
fn admits(
    rules: &TelegramSettings,
    sender: &Sender<'_>,
    addressed: impl FnOnce() -> bool,
) -> Result<(&'static str, bool), &'static str> {
    let is_admin = sender.user_id.is_some_and(|id| rules.admins.contains(&id));
    match sender.chat_type {
        "private" => {
            if is_admin {
                Ok(("admin", true))
            } else if whitelisted(rules, sender) {
                Ok(("dm whitelist", false))
            } else {
                Err("private chat not whitelisted")
            }
        }
        "group" | "supergroup" => {
            if rules.dev_groups.contains(&sender.chat_id) {
                Ok(("dev group", is_admin))
            } else if !addressed() {
                Err("group message does not address the bot")
            } else if rules.groups.contains(&sender.chat_id) {
                Ok(("allowed group, addressed", is_admin))
            } else if is_admin {
                Ok(("admin, addressed", true))
            } else {
                Err("group not allowed")
            }
        }
        _ => Err("unsupported chat type"),
    }
}

fn allow(bot: &BotIdentity, message: &Incoming, reason: &'static str, is_admin: bool) -> Access {
    Access::Allow { text: strip_mentions(bot, message), reason, is_admin }
}

fn whitelisted(rules: &TelegramSettings, sender: &Sender<'_>) -> bool {
    rules.allowed_users.iter().any(|allowed| allowed.matches(sender.user_id, sender.username))
}

fn is_bot_mention(bot: &BotIdentity, text: &str) -> bool {
    text.strip_prefix('@').is_some_and(|name| name.eq_ignore_ascii_case(&bot.username))
}

fn command_target(text: &str) -> Option<&str> {
    text.split_once('@').map(|(_, target)| target)
}

/// Does the message address the bot (entity mention, command, or reply)?
pub fn addresses_bot(bot: &BotIdentity, message: &Incoming) -> bool {
    if message.reply_to_user_id == Some(bot.id) {
        return true;
    }
    message.entities.iter().any(|entity| {
        let text = message.entity_text(entity);
        match entity.kind.as_str() {
            "mention" => is_bot_mention(bot, text),
            "text_mention" => entity.user_id == Some(bot.id),
            "bot_command" => command_target(text).is_some_and(|target| target.eq_ignore_ascii_case(&bot.username)),
            _ => false,
        }
    })
}

/// The text without the bot's `@mention`s; `/cmd@bot` becomes `/cmd`.
pub fn strip_mentions(bot: &BotIdentity, message: &Incoming) -> String {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for entity in &message.entities {
        let text = message.entity_text(entity);
        match entity.kind.as_str() {
            "mention" if is_bot_mention(bot, text) => {
                // "@bot, do this" → "do this": the punctuation after a mention goes too.
                let after = message.text.get(entity.end..).unwrap_or("");
                let end = if after.starts_with([',', ':']) { entity.end + 1 } else { entity.end };
                cuts.push((entity.start, end));
            }
            "bot_command" => {
                let for_this_bot = command_target(text).is_some_and(|t| t.eq_ignore_ascii_case(&bot.username));
                if let (true, Some(at)) = (for_this_bot, text.find('@')) {
                    cuts.push((entity.start + at, entity.end));
                }
            }
            _ => {}
        }
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(message.text.len());
    let mut position = 0;
    for (start, end) in cuts {
        if start >= position {
            out.push_str(message.text.get(position..start).unwrap_or(""));
            position = end;
        }
    }
    out.push_str(message.text.get(position..).unwrap_or(""));
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::inbound::Entity;
    use super::*;
    use crate::config::UserRef;

    const BOT: i64 = 777;
    const DEV: i64 = -1001;
    const GROUP: i64 = -1002;
    const OTHER: i64 = -1003;

    fn rules() -> TelegramSettings {
        TelegramSettings {
            admins: vec![1],
            allowed_users: vec![UserRef::Id(2), UserRef::Username("Carol".into())],
            dev_groups: vec![DEV],
            groups: vec![GROUP],
            ..TelegramSettings::default()
        }
    }

    fn bot() -> BotIdentity {
        BotIdentity { id: BOT, username: "valor_bot".into() }
    }

    /// A message with entities found like Telegram does (mentions, commands).
    fn message(chat_id: i64, user: i64, username: &str, text: &str) -> Incoming {
        let mut entities = Vec::new();
        for (start, word) in text.match_indices(['@', '/']) {
            let rest = &text[start + word.len()..];
            let length = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@')).unwrap_or(rest.len());
            let before_ok = start == 0 || text[..start].ends_with(' ');
            if before_ok && length > 0 {
                let kind = if word == "@" { "mention" } else { "bot_command" };
                entities.push(Entity { kind: kind.into(), start, end: start + 1 + length, user_id: None });
            }
        }
        Incoming {
            update_id: 1,
            chat_id,
            chat_type: if chat_id < 0 { "supergroup".into() } else { "private".into() },
            chat_title: None,
            message_id: 10,
            date: 0,
            thread_id: None,
            user_id: Some(user),
            username: Some(username.into()),
            text: text.into(),
            entities,
            reply_to_user_id: None,
            media: None,
        }
    }

    fn outcome(access: &Access) -> (bool, &str) {
        match access {
            Access::Allow { text, .. } => (true, text.as_str()),
            Access::Ignore { reason } => (false, reason),
        }
    }

    #[test]
    fn a_button_press_is_admitted_like_an_addressed_command_of_the_presser() {
        let press = |chat_type, chat_id, user_id, username| Sender { chat_type, chat_id, user_id, username };
        let cases = [
            (press("private", 1, Some(1), None), Some(true), "admin"),
            (press("private", 2, Some(2), None), Some(false), "dm whitelist by id"),
            (press("private", 3, Some(3), Some("carol")), Some(false), "dm whitelist by username"),
            (press("private", 4, Some(4), Some("mallory")), None, "stranger in private"),
            (press("supergroup", DEV, Some(4), Some("mallory")), Some(false), "anyone in a dev group"),
            (
                press("supergroup", GROUP, Some(4), Some("mallory")),
                Some(false),
                "allowed group: a press addresses the bot",
            ),
            (press("supergroup", OTHER, Some(4), Some("mallory")), None, "other group: only admins"),
            (press("supergroup", OTHER, Some(1), None), Some(true), "admin in another group"),
            (press("channel", OTHER, Some(1), None), None, "unsupported chat type"),
            (press("private", 1, None, None), None, "no presser"),
        ];
        for (sender, expected, case) in cases {
            assert_eq!(admits_press(&rules(), &sender), expected, "{case}");
        }
    }

    #[test]
    fn the_access_table_holds() {
        let cases: &[(i64, i64, &str, &str, bool, &str)] = &[
            // chat, user, username, text, answered, text the agent sees (or reason)
            (1, 1, "root", "hello", true, "hello"),
            (2, 2, "bob", "hi there", true, "hi there"),
            (3, 3, "carol", "by username, any case", true, "by username, any case"),
            (4, 4, "mallory", "let me in", false, "private chat not whitelisted"),
            (DEV, 4, "mallory", "anything in the dev group", true, "anything in the dev group"),
            (GROUP, 4, "mallory", "no mention here", false, "group message does not address the bot"),
            (GROUP, 4, "mallory", "@valor_bot what's up?", true, "what's up?"),
            (GROUP, 4, "mallory", "hey @VALOR_BOT, status please", true, "hey status please"),
            (GROUP, 4, "mallory", "I love valorant and valor_bot", false, "group message does not address the bot"),
            (GROUP, 4, "mallory", "ask @valor_bots instead", false, "group message does not address the bot"),
            (GROUP, 4, "mallory", "email me at x@valor_bot", false, "group message does not address the bot"),
            (GROUP, 4, "mallory", "/status@valor_bot", true, "/status"),
            (GROUP, 4, "mallory", "/status@other_bot", false, "group message does not address the bot"),
            (OTHER, 4, "mallory", "@valor_bot hi", false, "group not allowed"),
            (OTHER, 1, "root", "@valor_bot hi", true, "hi"),
            (OTHER, 1, "root", "not addressed", false, "group message does not address the bot"),
        ];
        for (chat, user, username, text, answered, expected) in cases {
            let access = decide(&rules(), &bot(), &message(*chat, *user, username, text));
            assert_eq!(outcome(&access), (*answered, *expected), "chat {chat} user {user}: {text:?}");
        }
    }

    #[test]
    fn a_reply_to_the_bot_addresses_it_in_a_group() {
        let mut reply = message(GROUP, 4, "mallory", "and then?");
        reply.reply_to_user_id = Some(BOT);
        assert_eq!(outcome(&decide(&rules(), &bot(), &reply)), (true, "and then?"));
        reply.reply_to_user_id = Some(5);
        assert!(!matches!(decide(&rules(), &bot(), &reply), Access::Allow { .. }));
    }

    #[test]
    fn a_text_mention_of_the_bot_id_addresses_it() {
        let mut mention = message(GROUP, 4, "mallory", "Valor help");
        mention.entities.push(Entity { kind: "text_mention".into(), start: 0, end: 5, user_id: Some(BOT) });
        assert!(matches!(decide(&rules(), &bot(), &mention), Access::Allow { .. }));
    }

    #[test]
    fn admins_are_flagged_and_channels_ignored() {
        let access = decide(&rules(), &bot(), &message(1, 1, "root", "hi"));
        assert!(matches!(access, Access::Allow { is_admin: true, .. }));
        let mut channel = message(-5, 1, "root", "post");
        channel.chat_type = "channel".into();
        assert_eq!(decide(&rules(), &bot(), &channel), Access::Ignore { reason: "unsupported chat type" });
    }
}
