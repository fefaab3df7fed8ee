//! The line editor of an interactive `valor chat`: rustyline (arrow keys,
//! Home/End, word moves, history search with Ctrl-R), its history kept in a
//! file under the data directory, bounded to `HISTORY_LIMIT` lines.
//!
//! rustyline blocks, so each read runs on tokio's blocking pool; the editor
//! is moved there and back. While it reads, the terminal is in raw mode:
//! Ctrl-C arrives as a key (`Line::Interrupted`), not as SIGINT.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

use super::{Line, LineSource};

/// Lines kept in the history file; older ones are dropped.
pub const HISTORY_LIMIT: usize = 1000;

pub(super) struct LineEditor {
    /// `None` only while a read is in progress on the blocking pool.
    editor: Option<Editor<(), DefaultHistory>>,
    history_file: PathBuf,
}

impl LineEditor {
    /// An editor with the history of earlier sessions from `history_file`
    /// (created on the first line; its directory must exist).
    pub(super) fn open(history_file: &Path) -> anyhow::Result<Self> {
        let config = Config::builder()
            .max_history_size(HISTORY_LIMIT)
            .context("history size")?
            .history_ignore_dups(true)
            .context("history duplicates")?
            // A line starting with a space (a secret, say) stays out of the file.
            .history_ignore_space(true)
            .auto_add_history(false)
            .build();
        let mut editor: Editor<(), DefaultHistory> = Editor::with_config(config).context("starting the line editor")?;
        match editor.load_history(history_file) {
            Ok(()) => {}
            Err(ReadlineError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, file = %history_file.display(), "could not read the chat history"),
        }
        Ok(Self { editor: Some(editor), history_file: history_file.to_path_buf() })
    }

    fn remember(editor: &mut Editor<(), DefaultHistory>, line: &str, file: &Path) {
        if line.trim().is_empty() {
            return;
        }
        if !matches!(editor.add_history_entry(line), Ok(true)) {
            return;
        }
        if let Err(error) = editor.append_history(file) {
            tracing::warn!(%error, file = %file.display(), "could not save the chat history");
        }
    }
}

impl LineSource for LineEditor {
    async fn read_line(&mut self, prompt: &str) -> anyhow::Result<Line> {
        let mut editor = self.editor.take().context("the line editor is already reading")?;
        let prompt = prompt.to_owned();
        let file = self.history_file.clone();
        let (editor, read) = tokio::task::spawn_blocking(move || {
            let read = editor.readline(&prompt);
            if let Ok(line) = &read {
                Self::remember(&mut editor, line, &file);
            }
            (editor, read)
        })
        .await
        .context("the line editor stopped")?;
        self.editor = Some(editor);
        match read {
            Ok(line) => Ok(Line::Text(line)),
            Err(ReadlineError::Interrupted) => Ok(Line::Interrupted),
            Err(ReadlineError::Eof) => Ok(Line::End),
            Err(error) => Err(error).context("reading from the terminal"),
        }
    }
}
