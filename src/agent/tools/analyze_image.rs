//! `analyze_image`: asks the configured chat model (Anthropic or OpenAI
//! vision) a question about one image — an image from the chat (its
//! `[image: media/…]` reference), any image file inside valor's data dir, or
//! an http(s) link fetched through `read_link`'s SSRF-safe fetcher.
//!
//! Invariants: a path never leaves the data dir (`agent::media::resolve`)
//! and a non-admin sees only their own chat's images (`media::may_view`);
//! links get exactly `read_link`'s address checks and size cap (no second
//! fetcher); the model call goes through the `vision` service (breaker, time
//! limit, retries).

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::read_link::ReadLink;
use super::resilience::ExternalService;
use super::{ToolContext, ToolError, TypedTool};
use crate::agent::media::{self, ImageAttachment};
use crate::llm::{ChatModel, ChatRequest, ContentBlock, Message, Role};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeImageInput {
    /// The image: a chat image reference such as `media/telegram/42/7.jpg`
    /// (from an `[image: …]` note), a path inside valor's data folder, or an
    /// http(s) link to an image.
    pub image: String,
    /// What to find out about the image.
    pub question: String,
}

/// The vision model: the chat model client and the model name to ask.
#[derive(Clone)]
pub struct VisionModel {
    pub client: Arc<dyn ChatModel>,
    pub model_name: String,
}

#[derive(Clone)]
pub struct AnalyzeImage {
    data_dir: PathBuf,
    model: VisionModel,
    service: ExternalService,
    links: ReadLink,
}

impl AnalyzeImage {
    pub fn new(data_dir: PathBuf, model: VisionModel, service: ExternalService, links: ReadLink) -> Self {
        Self { data_dir, model, service, links }
    }

    /// Who is asking: an admin, or a member of the conversation's Telegram chat.
    async fn viewer(&self, context: &ToolContext) -> Result<media::Viewer, ToolError> {
        if context.is_admin {
            return Ok(media::Viewer::Admin);
        }
        let conversation = context
            .store
            .get_conversation(&context.conversation_id)
            .await
            .map_err(|error| ToolError::RespondToModel(format!("the conversation could not be read: {error}")))?;
        Ok(media::Viewer::Member(conversation.chat_id.filter(|_| conversation.channel == "telegram")))
    }

    async fn image(&self, image: &str, viewer: media::Viewer) -> Result<ImageAttachment, ToolError> {
        let image = image.trim();
        if image.starts_with("http://") || image.starts_with("https://") {
            let bytes = self.links.fetch_image(image).await?;
            if bytes.len() > media::MAX_IMAGE_BYTES {
                return Err(ToolError::RespondToModel("the image is too large to analyze".into()));
            }
            let media_type = media::sniff_media_type(&bytes)
                .ok_or_else(|| ToolError::RespondToModel("the link is not a PNG, JPEG, GIF or WebP image".into()))?;
            return Ok(ImageAttachment { reference: image.to_owned(), media_type: media_type.to_owned(), bytes });
        }
        if media::resolve(&self.data_dir, image).is_some() && !media::may_view(image, viewer) {
            // Exactly what a missing file says: nothing tells whether another chat's file exists.
            return Err(ToolError::RespondToModel(format!("no image at {image}")));
        }
        media::load(&self.data_dir, image).await.map_err(ToolError::RespondToModel)
    }
}

#[async_trait::async_trait]
impl TypedTool for AnalyzeImage {
    type Input = AnalyzeImageInput;
    const NAME: &'static str = "analyze_image";
    const DESCRIPTION: &'static str = "Look at an image and answer a question about it: an image from this chat \
        (the path in an `[image: …]` note), an image file in valor's data folder, or an http(s) link to an image.";

    /// One vision call of the medium-tier model.
    fn cost_microusd(&self) -> u64 {
        10_000
    }

    async fn run(&self, context: &ToolContext, input: AnalyzeImageInput) -> Result<String, ToolError> {
        let question = input.question.trim();
        let question = if question.is_empty() { "Describe this image." } else { question };
        let viewer = self.viewer(context).await?;
        let image = self.image(&input.image, viewer).await?;
        let message = Message {
            role: Role::User,
            content: vec![
                ContentBlock::Text { text: question.to_owned() },
                ContentBlock::image(image.media_type, &image.bytes),
            ],
        };
        let request = ChatRequest::new(
            self.model.model_name.clone(),
            "You look at images carefully and answer questions about them precisely and concisely.",
            vec![message],
        );
        let response = self.service.call(|| self.model.client.complete(&request)).await?;
        let answer = response.message.text();
        if answer.trim().is_empty() {
            return Err(ToolError::RespondToModel("the vision model gave no answer".into()));
        }
        Ok(answer.trim().to_owned())
    }
}
