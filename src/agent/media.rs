//! Images in conversations. An image is stored once as a file under
//! `<data_dir>/media/` and referred to by its path relative to the data dir
//! (`media/telegram/42/7.jpg`). The transcript keeps only the text reference
//! `[image: <path>]`; the image bytes travel to the model only in the turn
//! the image arrived with (or when `analyze_image` loads it again).
//!
//! Invariants: a reference never leaves the data dir (no absolute paths, no
//! `..`) and is read through no symlink (the opened file's real path must be
//! the reference under the canonical data dir); a chat member who is not an
//! admin sees only their own chat's media and generated images
//! ([`may_view`]), and "not yours" reads exactly like "not there"; only the
//! four image types both providers accept are sent.

use std::path::{Component, Path, PathBuf};

/// Images larger than this are not sent to a model (providers cap at ~5–20 MB).
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// An image attached to a user message: where it is stored and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAttachment {
    /// Path relative to the data dir, e.g. `media/telegram/42/7.jpg`.
    pub reference: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Providers whose chat models take images: Anthropic, and OpenAI (or a
/// compatible server — a text-only model there answers with an error, which
/// reaches the user as the model's failure).
pub fn vision_capable(provider: &str) -> bool {
    matches!(provider, "anthropic" | "openai")
}

/// The text the transcript keeps in place of an image.
pub fn placeholder(reference: &str) -> String {
    format!("[image: {reference}]")
}

/// The image type of `bytes` from its first bytes, if it is one models accept.
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The image references (`[image: …]`) in the successful tool results of a
/// turn, in order: images a tool made for the user (channels show them).
pub fn produced_images(tool_calls: &[crate::agent::ToolCallReport]) -> Vec<String> {
    let mut references = Vec::new();
    for call in tool_calls.iter().filter(|call| !call.is_error && call.name == "generate_image") {
        let mut rest = call.output.as_str();
        while let Some(start) = rest.find("[image: ") {
            let after = &rest[start + "[image: ".len()..];
            let Some(end) = after.find(']') else { break };
            references.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    references
}

/// `reference` resolved inside `data_dir`, or `None` if it would leave it.
pub fn resolve(data_dir: &Path, reference: &str) -> Option<PathBuf> {
    let relative = Path::new(reference.trim());
    let inside = relative.components().all(|component| matches!(component, Component::Normal(_)));
    (inside && relative.components().next().is_some()).then(|| data_dir.join(relative))
}

/// Store `bytes` at `<data_dir>/<reference>` (folders created) and return the attachment.
pub async fn save(data_dir: &Path, reference: String, bytes: Vec<u8>) -> Result<ImageAttachment, String> {
    let media_type = sniff_media_type(&bytes).ok_or("the file is not a PNG, JPEG, GIF or WebP image")?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!("the image is larger than {} MB", MAX_IMAGE_BYTES / (1024 * 1024)));
    }
    let path = resolve(data_dir, &reference).ok_or("the image path leaves the data folder")?;
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder).await.map_err(|error| error.to_string())?;
    }
    tokio::fs::write(&path, &bytes).await.map_err(|error| error.to_string())?;
    Ok(ImageAttachment { reference, media_type: media_type.to_owned(), bytes })
}

/// Who asks to see a stored image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Admins (and the API, web chat and terminal, whose callers are admins): the whole data dir.
    Admin,
    /// A chat member who is not an admin, in this Telegram chat (`None`: no chat).
    Member(Option<i64>),
}

/// Whether `viewer` may see `reference`: admins anything under the data
/// dir; others only `media/telegram/<their chat>/…` and `media/generated/…`
/// (unguessable names the agent made).
pub fn may_view(reference: &str, viewer: Viewer) -> bool {
    let Viewer::Member(chat) = viewer else { return true };
    let parts: Vec<&str> = reference.trim().split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    match parts.as_slice() {
        ["media", "generated", _, ..] => true,
        ["media", "telegram", owner, _, ..] => chat.is_some_and(|chat| *owner == chat.to_string()),
        _ => false,
    }
}

/// Load a stored image by reference (checked: inside the data dir, reached
/// through no symlink, an image, not too large).
pub async fn load(data_dir: &Path, reference: &str) -> Result<ImageAttachment, String> {
    let missing = format!("no image at {reference}");
    // Resolved under the canonical data dir, so the opened file's real path
    // must equal it; a path that leaves the dir says so even without one.
    let root = tokio::fs::canonicalize(data_dir).await;
    let path = resolve(root.as_deref().unwrap_or(data_dir), reference).ok_or("that path leaves valor's data folder")?;
    if root.is_err() {
        return Err(missing);
    }
    let bytes = tokio::task::spawn_blocking(move || read_exactly(&path))
        .await
        .map_err(|error| error.to_string())?
        .ok_or(missing)?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!("the image is larger than {} MB", MAX_IMAGE_BYTES / (1024 * 1024)));
    }
    let media_type = sniff_media_type(&bytes).ok_or("that file is not a PNG, JPEG, GIF or WebP image")?;
    Ok(ImageAttachment { reference: reference.trim().to_owned(), media_type: media_type.to_owned(), bytes })
}

/// The bytes of the canonical `path` if the file the kernel opened is
/// `path` itself (no symlink on the way), a regular file, at most
/// [`MAX_IMAGE_BYTES`] + 1.
fn read_exactly(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(path).ok()?;
    let opened = std::fs::read_link(Path::new("/proc/self/fd").join(file.as_raw_fd().to_string())).ok()?;
    if opened != path || !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES as u64 + 1).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_recognised_by_their_first_bytes() {
        assert_eq!(sniff_media_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_media_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_media_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_media_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_media_type(b"%PDF-1.7"), None);
    }

    fn call(name: &str, output: &str, is_error: bool) -> crate::agent::ToolCallReport {
        crate::agent::ToolCallReport {
            id: "t".into(),
            name: name.into(),
            input: serde_json::json!({}),
            output: output.into(),
            is_error,
        }
    }

    #[test]
    fn only_successful_generate_image_results_count_as_produced_images() {
        let calls = [
            call("generate_image", "Generated. [image: media/generated/a.png]", false),
            call("generate_image", "failed [image: media/generated/b.png]", true),
            call("search_history", "user said [image: media/telegram/1/2.jpg]", false),
        ];
        assert_eq!(produced_images(&calls), vec!["media/generated/a.png".to_owned()]);
    }

    #[test]
    fn members_see_only_their_own_chats_media() {
        let member = Viewer::Member(Some(-100));
        assert!(may_view("media/telegram/-100/7.jpg", member));
        assert!(may_view("media/generated/a.png", member));
        assert!(!may_view("media/telegram/-200/7.jpg", member));
        assert!(!may_view("media/telegram/-1000/7.jpg", member));
        assert!(!may_view("media/screenshots/job-1-x.png", member));
        assert!(!may_view("media/telegram/-100", member));
        assert!(!may_view("media/telegram/7.jpg", Viewer::Member(None)));
        assert!(may_view("media/screenshots/job-1-x.png", Viewer::Admin));
    }

    #[tokio::test]
    async fn an_image_reached_through_a_symlink_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let png = b"\x89PNG\r\n\x1a\n0000";
        std::fs::create_dir_all(dir.path().join("media/telegram/1")).unwrap();
        std::fs::write(dir.path().join("media/telegram/1/a.png"), png).unwrap();
        assert!(load(dir.path(), "media/telegram/1/a.png").await.is_ok());
        std::os::unix::fs::symlink(dir.path().join("media/telegram/1"), dir.path().join("media/telegram/2")).unwrap();
        let error = load(dir.path(), "media/telegram/2/a.png").await.unwrap_err();
        assert_eq!(error, "no image at media/telegram/2/a.png");
    }

    #[test]
    fn references_cannot_leave_the_data_dir() {
        let root = Path::new("/data");
        assert_eq!(resolve(root, "media/a/b.png"), Some(PathBuf::from("/data/media/a/b.png")));
        assert_eq!(resolve(root, "../etc/passwd"), None);
        assert_eq!(resolve(root, "/etc/passwd"), None);
        assert_eq!(resolve(root, "media/../../x"), None);
        assert_eq!(resolve(root, ""), None);
    }
}
