//! `generate_image`: makes an image with OpenAI's images API
//! (`POST {openai.base_url}/images/generations`), saves it under
//! `<data_dir>/media/generated/<id>.png` and answers with an
//! `[image: media/generated/<id>.png]` reference, which channels that can
//! show images (Telegram) send as a photo (`agent::media::produced_images`).
//!
//! Invariants: costs money, so it carries a cost estimate (non-admins are
//! held to the daily spending limit); every call goes through the `image_generation`
//! service (breaker, time limit, retries); the key is only a bearer header.

use std::path::PathBuf;

use base64::Engine as _;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::resilience::{ExternalService, send_for_json};
use super::{ToolContext, ToolError, TypedTool};
use crate::agent::media;
use crate::llm::LlmError;
use crate::llm::transport::classify_reqwest_error;

/// The images model asked (OpenAI's current one; it always answers `b64_json`).
pub const IMAGE_MODEL: &str = "gpt-image-1";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateImageInput {
    /// A detailed description of the image to make.
    pub prompt: String,
}

/// Where the images API is.
#[derive(Debug, Clone)]
pub struct GenerateImageConfig {
    /// e.g. `https://api.openai.com/v1` (no trailing slash needed).
    pub base_url: String,
    pub api_key: SecretString,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GenerateImage {
    config: GenerateImageConfig,
    client: reqwest::Client,
    service: ExternalService,
}

impl GenerateImage {
    pub fn new(config: GenerateImageConfig, client: reqwest::Client, service: ExternalService) -> Self {
        Self { config, client, service }
    }

    /// One attempt: ask for the image and return its bytes.
    async fn generate(&self, prompt: &str) -> Result<Vec<u8>, LlmError> {
        let url = format!("{}/images/generations", self.config.base_url.trim_end_matches('/'));
        let request = self
            .client
            .post(url)
            .bearer_auth(self.config.api_key.expose_secret())
            .json(&json!({ "model": IMAGE_MODEL, "prompt": prompt, "n": 1, "size": "1024x1024" }));
        let body = send_for_json(request).await?;
        let first = body.pointer("/data/0").ok_or_else(|| invalid("the answer has no image"))?;
        if let Some(data) = first.get("b64_json").and_then(Value::as_str) {
            return base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|_| invalid("the image is not valid base64"));
        }
        let link = first.get("url").and_then(Value::as_str).ok_or_else(|| invalid("the answer has no image"))?;
        // A link from the provider itself (not from a user): a plain, size-capped download.
        let response = self.client.get(link).send().await.map_err(|error| classify_reqwest_error(&error))?;
        let bytes = response.bytes().await.map_err(|error| classify_reqwest_error(&error))?;
        if bytes.len() > media::MAX_IMAGE_BYTES {
            return Err(invalid("the image is too large"));
        }
        Ok(bytes.to_vec())
    }
}

fn invalid(what: &str) -> LlmError {
    LlmError::InvalidResponse(what.to_owned())
}

#[async_trait::async_trait]
impl TypedTool for GenerateImage {
    type Input = GenerateImageInput;
    const NAME: &'static str = "generate_image";
    const DESCRIPTION: &'static str = "Create an image from a text description (OpenAI images). The image is \
        saved and shown to the user; describe subject, style and composition in the prompt.";

    /// About one standard 1024×1024 image.
    fn cost_microusd(&self) -> u64 {
        40_000
    }

    async fn run(&self, _context: &ToolContext, input: GenerateImageInput) -> Result<String, ToolError> {
        let prompt = input.prompt.trim();
        if prompt.is_empty() {
            return Err(ToolError::RespondToModel("prompt must not be empty".into()));
        }
        let bytes = self.service.call(|| self.generate(prompt)).await?;
        let reference = format!("media/generated/{}.png", uuid::Uuid::now_v7());
        let image = media::save(&self.config.data_dir, reference, bytes).await.map_err(|error| {
            tracing::warn!("generate_image: could not store the image: {error}");
            ToolError::RespondToModel(format!("the generated image could not be used: {error}"))
        })?;
        Ok(format!("Generated the image; it is shown to the user. {}", media::placeholder(&image.reference)))
    }
}
