//! Speech to text with OpenAI's audio API: `POST {base_url}/audio/transcriptions`
//! (multipart: `file`, `model`, `response_format=json`) answers `{"text": …}`.
//! Uses the model transport (time limit, retries with backoff honouring
//! `retry-after`, status classification, key redaction), so a failure is a
//! classified [`LlmError`] without the key.

use bytes::Bytes;
use serde_json::Value;

use super::LlmError;
use super::transport::{FilePart, Transport, TransportConfig, multipart_body, multipart_boundary};

/// One audio file to transcribe.
#[derive(Debug, Clone, Copy)]
pub struct Audio<'a> {
    pub bytes: &'a [u8],
    /// With an extension the API recognises (`voice.ogg`): it picks the decoder by it.
    pub file_name: &'a str,
    pub content_type: &'a str,
}

/// A configured transcription endpoint and model (e.g. `whisper-1`,
/// `gpt-4o-mini-transcribe`).
#[derive(Debug, Clone)]
pub struct Transcriber {
    transport: Transport,
    model: String,
}

impl Transcriber {
    pub fn new(config: TransportConfig, model: impl Into<String>) -> Result<Self, LlmError> {
        Ok(Self { transport: Transport::new(config)?, model: model.into() })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The words spoken in `audio`, trimmed (empty when nothing was heard).
    pub async fn transcribe(&self, audio: Audio<'_>) -> Result<String, LlmError> {
        let boundary = multipart_boundary();
        let fields = [("model", self.model.as_str()), ("response_format", "json")];
        let file = FilePart {
            field: "file",
            file_name: audio.file_name,
            content_type: audio.content_type,
            bytes: audio.bytes,
        };
        // `Bytes`: each retry clones a pointer, not the audio.
        let body = Bytes::from(multipart_body(&boundary, &fields, file));
        let url = self.transport.url("/audio/transcriptions");
        let key = self.transport.api_key().unwrap_or_default().to_owned();
        let answer = self
            .transport
            .send_json(|client| {
                client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                    .body(body.clone())
            })
            .await?;
        answer
            .get("text")
            .and_then(Value::as_str)
            .map(|text| text.trim().to_owned())
            .ok_or_else(|| LlmError::InvalidResponse("the transcription answer has no text".into()))
    }
}
