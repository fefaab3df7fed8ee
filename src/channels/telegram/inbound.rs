//! Reading an inbound Bot API `Update` into the few facts valor acts on.
//! Entity offsets are UTF-16 code units (as Telegram counts them); they are
//! converted to byte ranges here, and nowhere else.

use serde_json::Value;

/// A `MessageEntity` with its byte range in the message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: String,
    pub start: usize,
    pub end: usize,
    /// For `text_mention`: the mentioned user's id.
    pub user_id: Option<i64>,
}

/// What kind of file a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Document,
    Photo,
    Voice,
}

/// A file attached to a message (downloaded only after the access check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    pub file_id: String,
    pub file_name: Option<String>,
    pub file_size: Option<u64>,
}

fn media_of(message: &Value) -> Option<Media> {
    let file = |kind, value: &Value| {
        Some(Media {
            kind,
            file_id: value["file_id"].as_str()?.to_owned(),
            file_name: value["file_name"].as_str().map(str::to_owned),
            file_size: value["file_size"].as_u64(),
        })
    };
    if message["document"].is_object() {
        return file(MediaKind::Document, &message["document"]);
    }
    if let Some(largest) = message["photo"].as_array().and_then(|sizes| sizes.last()) {
        return file(MediaKind::Photo, largest);
    }
    if message["voice"].is_object() {
        return file(MediaKind::Voice, &message["voice"]);
    }
    None
}

/// One incoming message (its text, or a file's caption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub update_id: i64,
    pub chat_id: i64,
    /// "private", "group", "supergroup" or "channel".
    pub chat_type: String,
    /// A group's title (`None` in private chats).
    pub chat_title: Option<String>,
    pub message_id: i64,
    /// When it was sent (UNIX seconds).
    pub date: i64,
    /// The forum topic, for messages in a topic of a forum supergroup.
    pub thread_id: Option<i64>,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub text: String,
    pub entities: Vec<Entity>,
    /// The author of the message this one replies to.
    pub reply_to_user_id: Option<i64>,
    pub media: Option<Media>,
}

impl Incoming {
    /// The text an entity covers.
    pub fn entity_text(&self, entity: &Entity) -> &str {
        self.text.get(entity.start..entity.end).unwrap_or("")
    }
}

/// Byte index of the UTF-16 offset `units` in `text` (clamped to the end).
pub fn utf16_to_byte(text: &str, units: usize) -> usize {
    let mut seen = 0;
    for (index, character) in text.char_indices() {
        if seen >= units {
            return index;
        }
        seen += character.len_utf16();
    }
    text.len()
}

/// The message of an update (text or caption), if it has one.
pub fn parse_update(update: &Value) -> Option<Incoming> {
    let update_id = update["update_id"].as_i64()?;
    let message = update.get("message")?;
    let (text, entities) = match message.get("text").and_then(Value::as_str) {
        Some(text) => (text, &message["entities"]),
        None => (message.get("caption").and_then(Value::as_str).unwrap_or(""), &message["caption_entities"]),
    };
    let entities = entities
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|entity| {
                    let offset = usize::try_from(entity["offset"].as_u64()?).ok()?;
                    let length = usize::try_from(entity["length"].as_u64()?).ok()?;
                    Some(Entity {
                        kind: entity["type"].as_str()?.to_owned(),
                        start: utf16_to_byte(text, offset),
                        end: utf16_to_byte(text, offset + length),
                        user_id: entity["user"]["id"].as_i64(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Incoming {
        update_id,
        chat_id: message["chat"]["id"].as_i64()?,
        chat_type: message["chat"]["type"].as_str().unwrap_or("private").to_owned(),
        chat_title: message["chat"]["title"].as_str().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned),
        message_id: message["message_id"].as_i64()?,
        date: message["date"].as_i64().unwrap_or_default(),
        thread_id: message["message_thread_id"].as_i64().filter(|_| message["is_topic_message"] == true),
        user_id: message["from"]["id"].as_i64(),
        username: message["from"]["username"].as_str().map(str::to_owned),
        text: text.to_owned(),
        entities,
        reply_to_user_id: message["reply_to_message"]["from"]["id"].as_i64(),
        media: media_of(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_become_byte_offsets() {
        let text = "😀 @valor_bot hi";
        assert_eq!(utf16_to_byte(text, 0), 0);
        assert_eq!(utf16_to_byte(text, 3), 5); // the emoji is 2 UTF-16 units, 4 bytes
        assert_eq!(utf16_to_byte(text, 100), text.len());
    }

    #[test]
    fn an_update_with_a_mention_entity_is_read() {
        let update = serde_json::json!({"update_id": 5, "message": {"message_id": 9, "date": 1,
            "chat": {"id": -100, "type": "supergroup"}, "from": {"id": 1, "is_bot": false, "first_name": "A", "username": "al"},
            "text": "é @valor_bot go", "entities": [{"type": "mention", "offset": 2, "length": 10}]}});
        let incoming = parse_update(&update).unwrap_or_else(|| panic!("parsed"));
        assert_eq!(incoming.entity_text(&incoming.entities[0]), "@valor_bot");
        assert_eq!(incoming.chat_type, "supergroup");
        assert_eq!(incoming.username.as_deref(), Some("al"));
    }

    #[test]
    fn updates_without_a_message_are_skipped() {
        assert_eq!(parse_update(&serde_json::json!({"update_id": 1, "edited_message": {}})), None);
    }
}
