//! A job's live status message: one message per job and round (`retries`),
//! edited in place while the job runs and a last time to its end state; the
//! result stays its own message (the final notice, `notify.rs`).
//!
//! [`RunStatus`] is what the message shows — phase (starting / working /
//! finishing, then done / failed / cancelled), the run's first line, the
//! current tool, the files touched so far (bounded), the latest note and the
//! elapsed time — rendered by [`RunStatus::render`] (pure). The state is
//! stored per round (`job_status_messages`), so the end state, written by
//! the final-notice pass ([`end_status`]), also reaches a message whose run
//! crashed, and a re-run after a crash continues the same message (edited
//! back to "starting" with its attempt number). While it runs it shows a
//! Cancel button (`agent::outbox::cancel_button`); the end
//! state has none.
//!
//! Markdown safety: tool names, details and file names come from the CLI;
//! they are shown as code spans with backticks replaced and newlines
//! flattened, and cut to a bounded length, so no input breaks the message.

use serde::{Deserialize, Serialize};

use crate::agent::outbox::{Outbox, StatusNotice, cancel_button};
use crate::storage::{Job, JobStatus, StorageResult, Store};

/// Files named in the message; the rest are counted.
const FILES_SHOWN: usize = 5;
/// Files kept in the stored state.
const FILES_KEPT: usize = 20;
/// Characters of one file name, tool detail or note.
const PIECE_CHARS: usize = 80;
const NOTE_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Starting,
    Working,
    Finishing,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Phase::Starting => ("⏳", "starting"),
            Phase::Working => ("⚙️", "working"),
            Phase::Finishing => ("⏳", "finishing"),
            Phase::Done => ("✅", "done"),
            Phase::Failed => ("❌", "failed"),
            Phase::Cancelled => ("⏹", "cancelled"),
        }
    }

    pub fn is_end(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled)
    }
}

/// What a job's status message shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub phase: Phase,
    /// The run's first line ("Claude Code is starting in workspace …").
    pub headline: String,
    /// The tool in use now, with its detail (a path, a command).
    pub tool: Option<String>,
    /// Files touched so far (the first `FILES_KEPT`, relative to the workspace).
    pub files: Vec<String>,
    /// How many files were touched in all.
    pub file_count: usize,
    /// The latest remark (a retry, a resumed session that was replaced, …).
    pub note: Option<String>,
    pub attempt: i64,
    pub max_attempts: i64,
    pub started_at_ms: i64,
    /// Set with an end phase.
    pub ended_at_ms: Option<i64>,
}

impl RunStatus {
    pub fn set_files<'a>(&mut self, files: impl ExactSizeIterator<Item = &'a str>) {
        self.file_count = files.len();
        self.files = files.take(FILES_KEPT).map(str::to_owned).collect();
    }

    /// The message text for job `job_id` at `now_ms` (an ended status shows its end time).
    pub fn render(&self, job_id: i64, now_ms: i64) -> String {
        let (icon, phase) = self.phase.label();
        let elapsed = format_elapsed(self.ended_at_ms.unwrap_or(now_ms).saturating_sub(self.started_at_ms));
        let mut lines = vec![format!("{icon} **Job #{job_id}** · {phase} · {elapsed}")];
        if self.attempt > 1 {
            lines[0].push_str(&format!(" · attempt {} of {}", self.attempt, self.max_attempts));
        }
        if !self.headline.is_empty() {
            lines.push(one_line(&self.headline, NOTE_CHARS));
        }
        if let (Some(tool), false) = (&self.tool, self.phase.is_end()) {
            lines.push(format!("Tool: {}", code(tool)));
        }
        if self.file_count > 0 {
            let shown: Vec<String> = self.files.iter().take(FILES_SHOWN).map(|file| code(file)).collect();
            let more = self.file_count.saturating_sub(shown.len());
            let more = if more > 0 { format!(" +{more} more") } else { String::new() };
            lines.push(format!("Files ({}): {}{more}", self.file_count, shown.join(", ")));
        }
        if let Some(note) = &self.note {
            lines.push(one_line(note, NOTE_CHARS));
        }
        lines.join("\n")
    }
}

/// "0 s", "42 s", "3 min 05 s", "2 h 07 min".
pub fn format_elapsed(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A piece of CLI output as a Markdown code span: one line, no backticks, bounded.
fn code(text: &str) -> String {
    format!("`{}`", one_line(text, PIECE_CHARS).replace('`', "'"))
}

/// `text` on one line (whitespace runs become one space), cut to `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= limit {
        return flat;
    }
    let cut: String = flat.chars().take(limit.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// The status key of a job's round: one message per key.
fn status_key(job: &Job) -> String {
    format!("job:{}:{}", job.id, job.retries)
}

/// The stored status of the job's round, if it has one and it has not ended.
pub(super) async fn load(store: &Store, job: &Job) -> StorageResult<Option<RunStatus>> {
    let Some((state, ended)) = store.job_status_state(job.id, job.retries).await? else { return Ok(None) };
    if ended {
        return Ok(None);
    }
    Ok(serde_json::from_value(state).ok())
}

/// Store `status` and show it in the job's conversation (with Cancel while it
/// runs). Nothing happens once the round has ended.
pub(super) async fn show(
    store: &Store,
    outbox: &dyn Outbox,
    job: &Job,
    status: &RunStatus,
    now_ms: i64,
) -> StorageResult<()> {
    let Some(conversation_id) = job.conversation_id.clone() else { return Ok(()) };
    let state = serde_json::to_value(status).unwrap_or_default();
    if !store.save_job_status_state((job.id, job.retries), &conversation_id, &state, status.phase.is_end()).await? {
        return Ok(());
    }
    let buttons = if status.phase.is_end() { Vec::new() } else { vec![cancel_button(job.id)] };
    let notice = StatusNotice { conversation_id, key: status_key(job), text: status.render(job.id, now_ms), buttons };
    if let Err(error) = outbox.post_status(notice).await {
        tracing::warn!(job = job.id, "the status message was not updated: {error}");
    }
    Ok(())
}

/// A finished job's status message shows its end state (done / failed /
/// cancelled, elapsed until it finished), without the button. Jobs that
/// never showed a status have none.
pub(super) async fn end_status(store: &Store, outbox: &dyn Outbox, job: &Job) -> StorageResult<()> {
    let Some(mut status) = load(store, job).await? else { return Ok(()) };
    status.phase = match job.status {
        JobStatus::Succeeded => Phase::Done,
        JobStatus::Failed => Phase::Failed,
        JobStatus::Cancelled => Phase::Cancelled,
        JobStatus::Queued | JobStatus::Running => return Ok(()),
    };
    let finished = job.finished_at_ms.unwrap_or(job.updated_at_ms);
    status.ended_at_ms = Some(finished.max(status.started_at_ms));
    show(store, outbox, job, &status, finished).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_reads_naturally_at_every_scale() {
        let cases = [
            (-5, "0 s"),
            (0, "0 s"),
            (999, "0 s"),
            (42_500, "42 s"),
            (59_999, "59 s"),
            (60_000, "1 min 00 s"),
            (185_000, "3 min 05 s"),
            (3_599_000, "59 min 59 s"),
            (3_600_000, "1 h 00 min"),
            (7_620_000, "2 h 07 min"),
            (90_000_000, "25 h 00 min"),
        ];
        for (ms, expected) in cases {
            assert_eq!(format_elapsed(ms), expected, "{ms} ms");
        }
    }

    fn working() -> RunStatus {
        RunStatus {
            phase: Phase::Working,
            headline: "Claude Code is starting in workspace \"shop\"".into(),
            tool: Some("Bash: make test".into()),
            attempt: 1,
            max_attempts: 3,
            started_at_ms: 1_000,
            ..RunStatus::default()
        }
    }

    #[test]
    fn a_running_status_shows_phase_elapsed_tool_and_files() {
        let mut status = working();
        status.set_files(["src/a.rs", "b.txt"].into_iter());
        let text = status.render(7, 66_000);
        assert_eq!(
            text,
            "⚙️ **Job #7** · working · 1 min 05 s\nClaude Code is starting in workspace \"shop\"\n\
             Tool: `Bash: make test`\nFiles (2): `src/a.rs`, `b.txt`"
        );
    }

    #[test]
    fn the_files_list_is_bounded_and_counts_the_rest() {
        let mut status = working();
        let names: Vec<String> = (0..40).map(|n| format!("file{n}.rs")).collect();
        status.set_files(names.iter().map(String::as_str));
        assert_eq!((status.files.len(), status.file_count), (FILES_KEPT, 40));
        let text = status.render(1, 2_000);
        let files = text.lines().find(|line| line.starts_with("Files")).unwrap();
        assert_eq!(files, "Files (40): `file0.rs`, `file1.rs`, `file2.rs`, `file3.rs`, `file4.rs` +35 more");
    }

    #[test]
    fn cli_text_cannot_break_the_markdown_or_the_layout() {
        let mut status = working();
        status.tool = Some("Bash: echo `rm -rf` \n\n ```\n**bold** <b>".into());
        let long = "x".repeat(500);
        status.set_files(["__init__.py", "a*b*c.rs", "we`ird.md", long.as_str()].into_iter());
        let text = status.render(3, 2_000);
        assert_eq!(text.lines().count(), 4, "{text}");
        let tool = text.lines().nth(2).unwrap();
        assert_eq!(tool, "Tool: `Bash: echo 'rm -rf' ''' **bold** <b>`");
        let files = text.lines().nth(3).unwrap();
        assert!(files.starts_with("Files (4): `__init__.py`, `a*b*c.rs`, `we'ird.md`, `xxx"), "{files}");
        // Every CLI piece is one code span: backticks only at span edges, each span bounded.
        for line in text.lines().skip(2) {
            let spans: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
            assert!(spans.iter().all(|span| span.chars().count() <= PIECE_CHARS), "{line}");
        }
        assert!(text.chars().count() < 1_000);
    }

    #[test]
    fn the_end_state_shows_the_outcome_and_the_time_until_the_end() {
        let mut status = working();
        status.set_files(["hello.txt"].into_iter());
        status.phase = Phase::Done;
        status.ended_at_ms = Some(13_000);
        let text = status.render(9, 999_999);
        assert!(text.starts_with("✅ **Job #9** · done · 12 s\n"), "{text}");
        assert!(!text.contains("Tool:"), "{text}");
        assert!(text.contains("`hello.txt`"));
        status.phase = Phase::Cancelled;
        assert!(status.render(9, 0).contains("cancelled · 12 s"));
        status.attempt = 2;
        assert!(status.render(9, 0).lines().next().unwrap().ends_with("· attempt 2 of 3"));
    }
}
