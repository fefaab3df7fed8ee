//! A thin Bot API client for the handful of methods valor uses, on the app's
//! reqwest (rustls). Every call is `POST {api_url}/bot{token}/{method}` with a
//! JSON body; answers are `{"ok":true,"result":…}` or `{"ok":false,
//! "error_code":…,"description":…,"parameters":{"retry_after":N}}`.
//!
//! Why not frankenstein: it builds here (same reqwest 0.13 + rustls), but the
//! channel stores each update's raw JSON, branches on `error_code` and
//! `retry_after`, and uses six methods; a typed client of the whole API added
//! compile time without removing code of ours. Invariant: the token never
//! appears in an error or a log line.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::llm::transport::{FilePart, client_builder, multipart_body, multipart_boundary};

/// A failed Bot API call, classified for the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 429: wait this long before the next call to this chat.
    #[error("rate limited by Telegram for {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Telegram answered `ok: false`.
    #[error("Telegram refused {method}: {code} {description}")]
    Refused { method: String, code: i64, description: String },
    /// Could not connect: the request certainly did not reach Telegram.
    #[error("Telegram unreachable for {method}: {detail}")]
    Network { method: String, detail: String },
    /// Sent, but no usable answer (timeout, cut connection, malformed body):
    /// Telegram may or may not have acted on it.
    #[error("no answer from Telegram for {method}: {detail}")]
    NoAnswer { method: String, detail: String },
}

impl ApiError {
    /// Telegram could not parse the HTML entities of a message.
    pub fn is_entity_error(&self) -> bool {
        matches!(self, ApiError::Refused { code: 400, description, .. } if description.contains("can't parse entities"))
    }

    /// Telegram counted the text as longer than a message may be.
    pub fn is_too_long(&self) -> bool {
        matches!(self, ApiError::Refused { code: 400, description, .. }
            if description.contains("message is too long") || description.contains("MESSAGE_TOO_LONG"))
    }

    /// This Bot API server does not know the method (an older server).
    pub fn is_unknown_method(&self) -> bool {
        matches!(self, ApiError::Refused { code: 404, .. })
            || matches!(self, ApiError::Refused { code: 400, description, .. } if description.contains("method not found"))
    }

    /// An edit that changed nothing (the text is already there).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, ApiError::Refused { code: 400, description, .. } if description.contains("message is not modified"))
    }
}

/// A request that got no answer: `Network` when the connection was never
/// made (safe to resend), else `NoAnswer` (timed out or cut after sending:
/// Telegram may have acted on it). The URL (with the token) is left out.
fn sent_error(method: &str, error: &reqwest::Error) -> ApiError {
    let method = method.to_owned();
    if error.is_connect() {
        ApiError::Network { method, detail: "cannot connect".into() }
    } else if error.is_timeout() {
        ApiError::NoAnswer { method, detail: "timed out".into() }
    } else {
        ApiError::NoAnswer { method, detail: "the connection was cut".into() }
    }
}

/// The bot's own identity from `getMe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: i64,
    pub username: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    result: Option<Value>,
    error_code: Option<i64>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi").field("base", &self.base).finish_non_exhaustive()
    }
}

impl BotApi {
    pub fn new(api_url: &str, token: SecretString) -> Result<BotApi, ApiError> {
        let http = client_builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| ApiError::Network { method: "client".into(), detail: error.to_string() })?;
        Ok(BotApi { http, base: api_url.trim_end_matches('/').to_owned(), token })
    }

    /// Call `method` with `params`; `timeout` bounds the whole request.
    pub async fn call(&self, method: &str, params: &Value, timeout: Duration) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose_secret());
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .json(params)
            .send()
            .await
            .map_err(|error| sent_error(method, &error))?;
        Self::answer(method, response).await
    }

    /// Upload a photo (`sendPhoto`, multipart/form-data) with an optional
    /// caption (`html` selects parse_mode HTML). Returns the new message id.
    pub async fn send_photo(
        &self,
        (chat_id, thread): (i64, Option<i64>),
        (photo, file_name): (&[u8], &str),
        caption: &str,
        html: bool,
    ) -> Result<i64, ApiError> {
        let (chat_id, thread) = (chat_id.to_string(), thread.map(|thread| thread.to_string()));
        let mut fields = vec![("chat_id", chat_id.as_str())];
        if let Some(thread) = &thread {
            fields.push(("message_thread_id", thread));
        }
        if !caption.is_empty() {
            fields.push(("caption", caption));
            if html {
                fields.push(("parse_mode", "HTML"));
            }
        }
        let boundary = multipart_boundary();
        let file = FilePart { field: "photo", file_name, content_type: "application/octet-stream", bytes: photo };
        let body = multipart_body(&boundary, &fields, file);
        let url = format!("{}/bot{}/sendPhoto", self.base, self.token.expose_secret());
        let response = self
            .http
            .post(url)
            .timeout(Duration::from_secs(120))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .map_err(|error| sent_error("sendPhoto", &error))?;
        let message = Self::answer("sendPhoto", response).await?;
        message["message_id"]
            .as_i64()
            .ok_or_else(|| ApiError::NoAnswer { method: "sendPhoto".into(), detail: "no message_id".into() })
    }

    /// A Bot API answer envelope → result, or the classified error.
    async fn answer(method: &str, response: reqwest::Response) -> Result<Value, ApiError> {
        let network = |detail: String| ApiError::Network { method: method.to_owned(), detail };
        let status = response.status().as_u16();
        let envelope: Envelope =
            response.json().await.map_err(|_| network(format!("HTTP {status} without a Bot API answer")))?;
        if envelope.ok {
            return Ok(envelope.result.unwrap_or(Value::Null));
        }
        let code = envelope.error_code.unwrap_or(i64::from(status));
        if code == 429 {
            let seconds = envelope.parameters.and_then(|p| p.retry_after).unwrap_or(1);
            return Err(ApiError::RateLimited { retry_after: Duration::from_secs(seconds) });
        }
        Err(ApiError::Refused {
            method: method.to_owned(),
            code,
            description: envelope.description.unwrap_or_default(),
        })
    }

    pub async fn get_me(&self) -> Result<BotIdentity, ApiError> {
        let me = self.call("getMe", &json!({}), Duration::from_secs(10)).await?;
        let id = me["id"].as_i64();
        let username = me["username"].as_str();
        match (id, username) {
            (Some(id), Some(username)) => Ok(BotIdentity { id, username: username.to_owned() }),
            _ => Err(ApiError::Network { method: "getMe".into(), detail: "the answer has no id or username".into() }),
        }
    }

    /// Long poll: held by Telegram up to `timeout_secs` when nothing is waiting.
    pub async fn get_updates(&self, offset: Option<i64>, timeout_secs: u64) -> Result<Vec<Value>, ApiError> {
        let mut params = json!({"timeout": timeout_secs, "allowed_updates": ["message", "callback_query"]});
        if let Some(offset) = offset {
            params["offset"] = json!(offset);
        }
        let result = self.call("getUpdates", &params, Duration::from_secs(timeout_secs + 10)).await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// Send `text`; `html` selects parse_mode HTML. Returns the new message id.
    /// `thread` is the forum topic (`message_thread_id`), if any; `reply_markup`
    /// e.g. an inline keyboard.
    pub async fn send_message(
        &self,
        chat_id: i64,
        thread: Option<i64>,
        text: &str,
        html: bool,
        reply_to: Option<i64>,
        reply_markup: Option<&Value>,
    ) -> Result<i64, ApiError> {
        let mut params = json!({"chat_id": chat_id, "text": text, "link_preview_options": {"is_disabled": true}});
        if let Some(markup) = reply_markup {
            params["reply_markup"] = markup.clone();
        }
        if let Some(thread) = thread {
            params["message_thread_id"] = json!(thread);
        }
        if html {
            params["parse_mode"] = json!("HTML");
        }
        if let Some(message_id) = reply_to {
            params["reply_parameters"] = json!({"message_id": message_id, "allow_sending_without_reply": true});
        }
        let message = self.call("sendMessage", &params, Duration::from_secs(30)).await?;
        message["message_id"]
            .as_i64()
            .ok_or_else(|| ApiError::Network { method: "sendMessage".into(), detail: "no message_id".into() })
    }

    /// Stream a draft of a message being written (Bot API 9.3, private
    /// chats): changes with the same non-zero `draft_id` are animated; the
    /// draft is ephemeral and the finished text must be sent with sendMessage.
    pub async fn send_message_draft(
        &self,
        (chat_id, thread): (i64, Option<i64>),
        draft_id: i64,
        text: &str,
        html: bool,
    ) -> Result<(), ApiError> {
        let mut params = json!({"chat_id": chat_id, "draft_id": draft_id, "text": text});
        if let Some(thread) = thread {
            params["message_thread_id"] = json!(thread);
        }
        if html {
            params["parse_mode"] = json!("HTML");
        }
        self.call("sendMessageDraft", &params, Duration::from_secs(30)).await.map(|_| ())
    }

    /// Acknowledge a button press; `text` is shown to the presser as a short notification.
    pub async fn answer_callback_query(&self, callback_query_id: &str, text: &str) -> Result<(), ApiError> {
        let params = json!({"callback_query_id": callback_query_id, "text": text});
        self.call("answerCallbackQuery", &params, Duration::from_secs(30)).await.map(|_| ())
    }

    /// Replace a message's text and its inline keyboard (`None` removes it).
    /// "Not modified" (the same text and keyboard already) counts as success.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
        html: bool,
        reply_markup: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut params = json!({"chat_id": chat_id, "message_id": message_id, "text": text,
                                "link_preview_options": {"is_disabled": true}});
        if let Some(markup) = reply_markup {
            params["reply_markup"] = markup.clone();
        }
        if html {
            params["parse_mode"] = json!("HTML");
        }
        match self.call("editMessageText", &params, Duration::from_secs(30)).await {
            Err(error) if error.is_not_modified() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Webhook mode: Telegram will POST updates to `url` with `secret` as `secret_token`.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), ApiError> {
        let params = json!({"url": url, "secret_token": secret, "allowed_updates": ["message", "callback_query"]});
        self.call("setWebhook", &params, Duration::from_secs(10)).await.map(|_| ())
    }

    /// Long polling needs no webhook (`getUpdates` is refused while one is set).
    /// Pending updates are kept.
    pub async fn delete_webhook(&self) -> Result<(), ApiError> {
        self.call("deleteWebhook", &json!({"drop_pending_updates": false}), Duration::from_secs(10)).await.map(|_| ())
    }

    /// The server path of a file (`getFile`), for `download`.
    pub async fn get_file(&self, file_id: &str) -> Result<String, ApiError> {
        let file = self.call("getFile", &json!({"file_id": file_id}), Duration::from_secs(10)).await?;
        file["file_path"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::NoAnswer { method: "getFile".into(), detail: "no file_path".into() })
    }

    /// Download a file by its `getFile` path, refusing more than `max_bytes`.
    pub async fn download(&self, file_path: &str, max_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}/file/bot{}/{file_path}", self.base, self.token.expose_secret());
        let failed = |detail: &str| ApiError::NoAnswer { method: "download".into(), detail: detail.to_owned() };
        let mut response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|_| failed("the download failed"))?;
        if !response.status().is_success() {
            let code = i64::from(response.status().as_u16());
            return Err(ApiError::Refused {
                method: "download".into(),
                code,
                description: "file not available".into(),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| failed("the download was cut"))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(failed("the file is larger than allowed"));
            }
        }
        Ok(bytes)
    }

    /// Register the command list shown in Telegram's "/" menu.
    pub async fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), ApiError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(command, description)| json!({"command": command, "description": description}))
            .collect();
        self.call("setMyCommands", &json!({"commands": list}), Duration::from_secs(10)).await.map(|_| ())
    }

    pub async fn send_chat_action(&self, chat_id: i64, thread: Option<i64>, action: &str) -> Result<(), ApiError> {
        let mut params = json!({"chat_id": chat_id, "action": action});
        if let Some(thread) = thread {
            params["message_thread_id"] = json!(thread);
        }
        self.call("sendChatAction", &params, Duration::from_secs(10)).await.map(|_| ())
    }

    /// Set the bot's reaction to a message (replacing only the bot's own).
    pub async fn set_reaction(&self, chat_id: i64, message_id: i64, emoji: &str) -> Result<(), ApiError> {
        let params = json!({"chat_id": chat_id, "message_id": message_id,
                            "reaction": [{"type": "emoji", "emoji": emoji}]});
        self.call("setMessageReaction", &params, Duration::from_secs(10)).await.map(|_| ())
    }
}
