//! Wire details of the fake Bot API (tests/common/telegram.rs): answer
//! envelopes, the entities Telegram's server computes for incoming text, and
//! Telegram's HTML check (only its tags; only `&lt; &gt; &amp; &quot;`), which
//! turns any escaping mistake of ours into the 400 real Telegram would give.

use axum::Json;
use serde_json::{Value, json};

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Entities as Telegram computes them: `@username` mentions and a leading
/// `/command[@bot]`, with offsets in UTF-16 units.
pub(super) fn entities_of(text: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let utf16_at = |byte: usize| text[..byte].encode_utf16().count();
    for (position, &(byte, character)) in chars.iter().enumerate() {
        let boundary = position == 0 || !chars[position - 1].1.is_alphanumeric() && chars[position - 1].1 != '_';
        if !boundary || !(character == '@' || (character == '/' && position == 0)) {
            continue;
        }
        let mut end = byte + 1;
        for &(next_byte, next) in &chars[position + 1..] {
            if next.is_ascii_alphanumeric() || next == '_' || (character == '/' && next == '@') {
                end = next_byte + next.len_utf8();
            } else {
                break;
            }
        }
        let name_len = end - byte - 1;
        let (kind, long_enough) =
            if character == '@' { ("mention", name_len >= 5) } else { ("bot_command", name_len >= 1) };
        if long_enough {
            found.push(json!({"type": kind, "offset": utf16_at(byte), "length": utf16_at(end) - utf16_at(byte)}));
        }
    }
    found
}

pub(super) fn ok(result: Value) -> Json<Value> {
    Json(json!({"ok": true, "result": result}))
}

pub(super) fn error(code: i64, description: &str, retry_after: Option<u64>) -> Json<Value> {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    Json(body)
}

/// Visible text of Telegram HTML, or the parse error Telegram would give.
pub(super) fn parse_html(text: &str) -> Result<String, String> {
    let allowed = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "tg-spoiler",
        "blockquote",
        "span",
    ];
    let mut visible = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['<', '&']) {
        visible.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.starts_with('&') {
            let end = rest.find(';').ok_or("Bad Request: can't parse entities: unclosed character reference")?;
            visible.push(match &rest[..=end] {
                "&lt;" => '<',
                "&gt;" => '>',
                "&amp;" => '&',
                "&quot;" => '"',
                other => return Err(format!("Bad Request: can't parse entities: unsupported entity {other}")),
            });
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest.find('>').ok_or("Bad Request: can't parse entities: unclosed start tag")?;
        let tag = &rest[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("Bad Request: can't parse entities: unmatched end tag {name}"));
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if !allowed.contains(&name) {
                return Err(format!("Bad Request: can't parse entities: unsupported start tag \"{name}\""));
            }
            stack.push(name.to_owned());
        }
        rest = &rest[end + 1..];
    }
    visible.push_str(rest);
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Bad Request: can't parse entities: can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(visible)
}

pub(super) fn visible_text(params: &Value) -> Result<String, Json<Value>> {
    let text = params["text"].as_str().unwrap_or("");
    let visible = if params["parse_mode"] == "HTML" {
        parse_html(text).map_err(|e| error(400, &e, None))?
    } else {
        text.to_owned()
    };
    if visible.trim().is_empty() {
        return Err(error(400, "Bad Request: message text is empty", None));
    }
    if visible.encode_utf16().count() > 4096 {
        return Err(error(400, "Bad Request: message is too long", None));
    }
    Ok(visible)
}

/// A stored message as the Bot API returns it (without our bookkeeping field).
pub(super) fn public(message: &Value) -> Value {
    let mut message = message.clone();
    if let Some(map) = message.as_object_mut() {
        map.remove("html");
    }
    message
}
