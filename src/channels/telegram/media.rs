//! Files sent to valor, handled after the access check: documents are saved
//! into the chat's inbox folder (`<data_dir>/telegram/<chat>/inbox/`), named
//! `<message id>-<sanitised name>` so nothing is overwritten and no name can
//! leave the folder. Photos (largest size) are stored under
//! `<data_dir>/media/telegram/<chat>/<message id>.<ext>` and go to the turn
//! as an image when the chat model can see images; otherwise, like voice
//! notes (no transcription provider yet), they get a clear reply and are not
//! downloaded.

use std::path::PathBuf;

use super::Shared;
use super::inbound::{Incoming, Media, MediaKind};
use crate::agent::media::{self, ImageAttachment};

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
        MediaKind::Voice => MediaOutcome::Reply(
            "I can't listen to voice notes yet: no transcription provider is connected to this build. \
             Please type your message."
                .into(),
        ),
        MediaKind::Document => save_document(shared, message, media).await,
    }
}

async fn save_photo(shared: &Shared, message: &Incoming, photo: &Media) -> MediaOutcome {
    if photo.file_size.is_some_and(|size| size > media::MAX_IMAGE_BYTES as u64) {
        return MediaOutcome::Reply("That photo is too large for me to look at.".into());
    }
    let downloaded = async {
        let file_path = shared.api.get_file(&photo.file_id).await.map_err(|error| error.to_string())?;
        shared.api.download(&file_path, MAX_DOWNLOAD_BYTES).await.map_err(|error| error.to_string())
    }
    .await;
    let bytes = match downloaded {
        Ok(bytes) => bytes.to_vec(),
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
    let folder = shared.data_dir.join("telegram").join(message.chat_id.to_string()).join("inbox");
    let path = folder.join(format!("{}-{name}", message.message_id));
    let downloaded = async {
        let file_path = shared.api.get_file(&media.file_id).await.map_err(|error| error.to_string())?;
        let bytes = shared.api.download(&file_path, MAX_DOWNLOAD_BYTES).await.map_err(|error| error.to_string())?;
        tokio::fs::create_dir_all(&folder).await.map_err(|error| error.to_string())?;
        tokio::fs::write(&path, &bytes).await.map_err(|error| error.to_string())?;
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
