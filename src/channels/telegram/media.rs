//! Files sent to valor, handled after the access check: documents are saved
//! into the chat's inbox folder (`<data_dir>/telegram/<chat>/inbox/`), named
//! `<message id>-<sanitised name>` so nothing is overwritten and no name can
//! leave the folder. Photos (largest size) are stored under
//! `<data_dir>/media/telegram/<chat>/<message id>.<ext>` and go to the turn
//! as an image when the chat model can see images. Voice notes are saved to
//! the inbox as `<message id>-voice.ogg` and transcribed (OpenAI
//! `audio/transcriptions`); the turn runs on the transcript. Without a vision
//! model or a transcriber, photos and voice notes get a clear reply and are
//! not downloaded; a failed transcription keeps the saved file and says so.

use std::path::PathBuf;

use super::Shared;
use super::inbound::{Incoming, Media, MediaKind};
use crate::agent::media::{self, ImageAttachment};
use crate::llm::LlmError;
use crate::llm::transcription::{Audio, Transcriber};

/// Telegram's Bot API serves files up to 20 MB.
const MAX_DOWNLOAD_BYTES: u64 = 20 * 1024 * 1024;

/// What became of an attached file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MediaOutcome {
    /// Saved here; the caption (if any) goes to the agent with this note.
    Saved { path: PathBuf, note: String },
    /// Tell the user this (no model call).
    Reply(String),
    /// A photo, stored; the turn sees it (the caption is the question).
    Image(ImageAttachment),
    /// A voice note, saved and transcribed: the words heard.
    Heard(String),
}

/// A file name that stays inside its folder: no separators, no leading dots.
pub(super) fn safe_file_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' }).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() { "file".to_owned() } else { trimmed.chars().take(100).collect() }
}

pub(super) async fn receive(shared: &Shared, message: &Incoming, media: &Media) -> MediaOutcome {
    match media.kind {
        MediaKind::Photo if shared.agent.sees_images() => save_photo(shared, message, media).await,
        MediaKind::Photo => MediaOutcome::Reply(
            "I can't look at images yet: no vision-capable model is configured \
             (set ANTHROPIC_API_KEY or OPENAI_API_KEY). \
             Describe what you need in words, or send it as a document to keep it."
                .into(),
        ),
        MediaKind::Voice => match &shared.transcriber {
            Some(transcriber) => transcribe_voice(shared, transcriber, message, media).await,
            None => MediaOutcome::Reply(
                "I can't listen to voice notes: speech-to-text needs OpenAI (set OPENAI_API_KEY). \
                 Please type your message."
                    .into(),
            ),
        },
        MediaKind::Document => save_document(shared, message, media).await,
    }
}

/// `getFile`, then the download (at most the Bot API's 20 MB).
async fn fetch(shared: &Shared, media: &Media) -> Result<Vec<u8>, String> {
    let file_path = shared.api.get_file(&media.file_id).await.map_err(|error| error.to_string())?;
    shared.api.download(&file_path, MAX_DOWNLOAD_BYTES).await.map_err(|error| error.to_string())
}

/// Where a received file of this message is kept.
fn inbox_path(shared: &Shared, message: &Incoming, name: &str) -> PathBuf {
    let folder = shared.data_dir.join("telegram").join(message.chat_id.to_string()).join("inbox");
    folder.join(format!("{}-{name}", message.message_id))
}

async fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder).await.map_err(|error| error.to_string())?;
    }
    tokio::fs::write(path, bytes).await.map_err(|error| error.to_string())
}

async fn transcribe_voice(
    shared: &Shared,
    transcriber: &Transcriber,
    message: &Incoming,
    voice: &Media,
) -> MediaOutcome {
    if voice.file_size.is_some_and(|size| size > MAX_DOWNLOAD_BYTES) {
        return MediaOutcome::Reply(
            "That voice note is larger than the 20 MB bots may download; please send a shorter one.".into(),
        );
    }
    let path = inbox_path(shared, message, "voice.ogg");
    let saved = async {
        let bytes = fetch(shared, voice).await?;
        write_file(&path, &bytes).await?;
        Ok::<Vec<u8>, String>(bytes)
    }
    .await;
    let bytes = match saved {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(chat = message.chat_id, "telegram: fetching a voice note failed: {error}");
            return MediaOutcome::Reply("I couldn't download that voice note from Telegram; please try again.".into());
        }
    };
    let audio = Audio { bytes: &bytes, file_name: "voice.ogg", content_type: "audio/ogg" };
    match transcriber.transcribe(audio).await {
        Ok(heard) if heard.is_empty() => MediaOutcome::Reply(
            "I couldn't make out any words in that voice note; please try again or type your message.".into(),
        ),
        Ok(heard) => MediaOutcome::Heard(heard),
        Err(error) => {
            tracing::warn!(chat = message.chat_id, kind = error.kind(), "telegram: transcription failed: {error}");
            let why = match &error {
                LlmError::Auth(_) => "the OpenAI key was refused".to_owned(),
                LlmError::BadRequest(detail) => format!("the speech-to-text service refused it ({detail})"),
                _ => "the speech-to-text service is unavailable right now".to_owned(),
            };
            MediaOutcome::Reply(format!(
                "I couldn't transcribe your voice note: {why}. I kept it in this chat's inbox; \
                 please try again later or type your message."
            ))
        }
    }
}

async fn save_photo(shared: &Shared, message: &Incoming, photo: &Media) -> MediaOutcome {
    if photo.file_size.is_some_and(|size| size > media::MAX_IMAGE_BYTES as u64) {
        return MediaOutcome::Reply("That photo is too large for me to look at.".into());
    }
    let bytes = match fetch(shared, photo).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(chat = message.chat_id, "telegram: downloading a photo failed: {error}");
            return MediaOutcome::Reply("I couldn't download that photo from Telegram; please try again.".into());
        }
    };
    let extension = match media::sniff_media_type(&bytes) {
        Some("image/png") => "png",
        Some("image/gif") => "gif",
        Some("image/webp") => "webp",
        _ => "jpg",
    };
    let reference = format!("media/telegram/{}/{}.{extension}", message.chat_id, message.message_id);
    match media::save(&shared.data_dir, reference, bytes).await {
        Ok(image) => MediaOutcome::Image(image),
        Err(error) => {
            tracing::warn!(chat = message.chat_id, "telegram: storing a photo failed: {error}");
            MediaOutcome::Reply(format!("I couldn't use that photo: {error}."))
        }
    }
}

async fn save_document(shared: &Shared, message: &Incoming, media: &Media) -> MediaOutcome {
    if media.file_size.is_some_and(|size| size > MAX_DOWNLOAD_BYTES) {
        return MediaOutcome::Reply("That file is larger than the 20 MB bots may download.".into());
    }
    let name = safe_file_name(media.file_name.as_deref().unwrap_or("document"));
    let path = inbox_path(shared, message, &name);
    let downloaded = async {
        let bytes = fetch(shared, media).await?;
        write_file(&path, &bytes).await?;
        Ok::<usize, String>(bytes.len())
    }
    .await;
    match downloaded {
        Ok(size) => {
            let note = format!("Saved `{name}` ({} KB) to this chat's inbox.", size.div_ceil(1024));
            MediaOutcome::Saved { path, note }
        }
        Err(error) => {
            tracing::warn!(chat = message.chat_id, "telegram: saving a document failed: {error}");
            MediaOutcome::Reply("I couldn't download that file from Telegram; please try again.".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn file_names_cannot_leave_the_inbox() {
        for (given, expected) in [
            ("notes.txt", "notes.txt"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("..", "file"),
            (".hidden", "hidden"),
            ("a/b\\c", "a_b_c"),
            ("", "file"),
            ("отчёт 2024.pdf", "отчёт 2024.pdf"),
        ] {
            assert_eq!(safe_file_name(given), expected, "{given:?}");
        }
    }
}
