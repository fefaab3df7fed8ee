//! A code run's outcome as the conversation keeps it for the model: a few
//! lines — how it ended (or the failure reason), workspace, summary, files
//! changed, branch with commit and diff stat, cost. `notify` writes it into
//! the transcript once per round (the transcript's copy of the final notice),
//! so the next turn's history says what the run did.
//!
//! Invariants: pure; only `claude_code` and `gemini_cli` jobs have one; the
//! text never exceeds [`MAX_OUTCOME_CHARS`] however long the run's summary,
//! file list or error is (it is sent with every later turn).

use serde_json::Value;

use crate::llm::transport::truncate_chars;
use crate::storage::{Job, JobStatus};
use crate::workspace::{CLAUDE_CODE_KIND, GEMINI_CLI_KIND};

/// A finished run's git line when the workspace is not a git repository.
const NOT_COMMITTED: &str = "Not a git repository: nothing was committed.";
/// The longest outcome text.
pub const MAX_OUTCOME_CHARS: usize = 1_600;
/// The run's own summary is cut here.
const MAX_SUMMARY_CHARS: usize = 700;
/// A failure reason is cut here.
const MAX_ERROR_CHARS: usize = 500;
/// Files named before "… and N more".
const MAX_FILES: usize = 15;
/// The list of files changed stops naming files here.
const MAX_FILES_CHARS: usize = 500;
/// One file path or the diff stat line is cut here.
const MAX_LINE_CHARS: usize = 160;

/// The outcome of a finished code run (`None` for other kinds and unfinished jobs).
pub fn code_run_outcome(job: &Job) -> Option<String> {
    if job.kind != CLAUDE_CODE_KIND && job.kind != GEMINI_CLI_KIND {
        return None;
    }
    let result = job.result.as_ref().filter(|value| value.is_object());
    let text = |key: &str| {
        result.and_then(|r| r.get(key)).and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty())
    };
    let mut lines = vec![match job.status {
        JobStatus::Succeeded => format!("Job #{} ({}) finished.", job.id, job.kind),
        JobStatus::Failed => format!(
            "Job #{} ({}) failed after {} attempt(s): {}",
            job.id,
            job.kind,
            job.attempts,
            truncate_chars(job.error.as_deref().unwrap_or("unknown error").trim(), MAX_ERROR_CHARS)
        ),
        JobStatus::Cancelled => format!("Job #{} ({}) was cancelled.", job.id, job.kind),
        JobStatus::Queued | JobStatus::Running => return None,
    }];
    let workspace = text("workspace").or_else(|| job.payload.get("workspace").and_then(Value::as_str));
    if let Some(name) = workspace {
        lines.push(format!("Workspace {name}"));
    }
    if let Some(summary) = text("summary") {
        lines.push(format!("Summary: {}", truncate_chars(summary, MAX_SUMMARY_CHARS)));
    }
    if let Some(files) = result.and_then(|r| r.get("files_changed")).and_then(Value::as_array) {
        lines.push(format!("Files changed: {}", files_line(files)));
    }
    match git_line(result) {
        Some(line) => lines.push(line),
        // A finished run without a branch worked in place (the final notice says the same).
        None if job.status == JobStatus::Succeeded => lines.push(NOT_COMMITTED.to_owned()),
        None => {}
    }
    let cost = result.and_then(|r| r.get("cost_usd")).and_then(Value::as_f64).filter(|cost| *cost > 0.0);
    let turns = result.and_then(|r| r.get("turns")).and_then(Value::as_u64).filter(|turns| *turns > 0);
    let spent: Vec<String> =
        [cost.map(|cost| format!("cost ${cost:.4}")), turns.map(|turns| format!("{turns} turn(s)"))]
            .into_iter()
            .flatten()
            .collect();
    if !spent.is_empty() {
        lines.push(spent.join(" · "));
    }
    Some(truncate_chars(&lines.join("\n"), MAX_OUTCOME_CHARS))
}

fn files_line(files: &[Value]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut chars = 0;
    for file in files.iter().filter_map(Value::as_str).take(MAX_FILES) {
        let name = truncate_chars(file, MAX_LINE_CHARS);
        chars += name.chars().count() + 2;
        if chars > MAX_FILES_CHARS && !names.is_empty() {
            break;
        }
        names.push(name);
    }
    if names.is_empty() {
        return "none".to_owned();
    }
    let more = files.len().saturating_sub(names.len());
    let mut line = names.join(", ");
    if more > 0 {
        line.push_str(&format!(" … and {more} more"));
    }
    line
}

/// The run's branch, commit and diff stat, worded as the final notice words
/// them: `Branch `valor/7-x` · commit 1a2b3c4 · 1 file changed, 1 insertion(+)`.
fn git_line(result: Option<&Value>) -> Option<String> {
    let field = |key: &str| result.and_then(|r| r.get(key)).and_then(Value::as_str).map(str::trim);
    let branch = field("branch").filter(|branch| !branch.is_empty())?;
    let mut line = format!("Branch `{}`", truncate_chars(branch, MAX_LINE_CHARS));
    let stat = field("diff_stat").map(|stat| stat.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or(""));
    if stat == Some("") {
        line.push_str(": nothing new to commit.");
        return Some(line);
    }
    if let Some(commit) = field("commit").filter(|commit| !commit.is_empty()) {
        line.push_str(&format!(" · commit {}", truncate_chars(commit, 40)));
    }
    if let Some(stat) = stat {
        line.push_str(&format!(" · {}", truncate_chars(stat, MAX_LINE_CHARS)));
    }
    Some(line)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(kind: &str, status: JobStatus, result: Option<Value>, error: Option<&str>) -> Job {
        Job {
            id: 7,
            kind: kind.into(),
            payload: json!({"task": "Add a greeting", "workspace": "shop"}),
            priority: 0,
            status,
            run_at_ms: 0,
            attempts: 1,
            max_attempts: 2,
            retries: 0,
            worker_id: None,
            lease_until_ms: None,
            cancel_requested: false,
            progress_text: None,
            progress_percent: None,
            result,
            error: error.map(str::to_owned),
            conversation_id: Some("c".into()),
            idempotency_key: None,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_finished_run_reads_as_a_few_lines_with_branch_commit_and_diff_stat() {
        let result = json!({
            "reply": "long reply", "summary": "Added hello.txt.", "files_changed": ["hello.txt", "src/a.rs"],
            "cost_usd": 0.01234, "turns": 3, "workspace": "shop", "executor": "claude_code",
            "branch": "valor/7-add-a-greeting", "commit": "0123456789ab", "base_branch": "main",
            "diff_stat": " 2 files changed, 2 insertions(+), 1 deletion(-)\n"
        });
        let text = code_run_outcome(&job(CLAUDE_CODE_KIND, JobStatus::Succeeded, Some(result), None)).unwrap();
        assert_eq!(
            text,
            "Job #7 (claude_code) finished.\n\
             Workspace shop\n\
             Summary: Added hello.txt.\n\
             Files changed: hello.txt, src/a.rs\n\
             Branch `valor/7-add-a-greeting` · commit 0123456789ab · 2 files changed, 2 insertions(+), 1 deletion(-)\n\
             cost $0.0123 · 3 turn(s)"
        );
        let unchanged = json!({"summary": "Nothing to do.", "files_changed": [], "branch": "valor/7-x",
            "commit": "abc", "diff_stat": ""});
        let text = code_run_outcome(&job(CLAUDE_CODE_KIND, JobStatus::Succeeded, Some(unchanged), None)).unwrap();
        assert!(text.contains("\nBranch `valor/7-x`: nothing new to commit."), "{text}");
    }

    #[test]
    fn a_run_outside_git_names_summary_and_files_and_says_nothing_was_committed() {
        let result = json!({"summary": "Wrote todo.txt.", "files_changed": [], "cost_usd": 0.0, "turns": 0,
            "workspace": "shop", "executor": "gemini_cli"});
        let text = code_run_outcome(&job(GEMINI_CLI_KIND, JobStatus::Succeeded, Some(result), None)).unwrap();
        assert_eq!(
            text,
            "Job #7 (gemini_cli) finished.\nWorkspace shop\nSummary: Wrote todo.txt.\nFiles changed: none\n\
             Not a git repository: nothing was committed."
        );
    }

    #[test]
    fn a_failed_or_cancelled_run_says_why_and_where() {
        let failed = job(CLAUDE_CODE_KIND, JobStatus::Failed, None, Some("Claude Code could not be started"));
        assert_eq!(
            code_run_outcome(&failed).unwrap(),
            "Job #7 (claude_code) failed after 1 attempt(s): Claude Code could not be started\nWorkspace shop"
        );
        let partial = json!({"branch": "valor/7-x", "commit": "abc123"});
        let failed = job(CLAUDE_CODE_KIND, JobStatus::Failed, Some(partial), Some("time limit"));
        assert!(code_run_outcome(&failed).unwrap().ends_with("Workspace shop\nBranch `valor/7-x` · commit abc123"));
        let cancelled = job(CLAUDE_CODE_KIND, JobStatus::Cancelled, None, None);
        assert_eq!(code_run_outcome(&cancelled).unwrap(), "Job #7 (claude_code) was cancelled.\nWorkspace shop");
    }

    #[test]
    fn other_kinds_and_unfinished_runs_have_no_outcome() {
        assert_eq!(code_run_outcome(&job("agent_task", JobStatus::Succeeded, Some(json!("x")), None)), None);
        assert_eq!(code_run_outcome(&job(CLAUDE_CODE_KIND, JobStatus::Running, None, None)), None);
    }

    #[test]
    fn huge_summaries_file_lists_and_errors_stay_bounded() {
        let files: Vec<String> = (0..500).map(|n| format!("src/{}/file{n}.rs", "deep/".repeat(40))).collect();
        let result = json!({"summary": "word ".repeat(5_000), "files_changed": files, "workspace": "shop",
            "diff_stat": "x".repeat(10_000)});
        let text = code_run_outcome(&job(CLAUDE_CODE_KIND, JobStatus::Succeeded, Some(result), None)).unwrap();
        assert!(text.chars().count() <= MAX_OUTCOME_CHARS + 1, "{} chars", text.chars().count());
        assert!(text.contains("… and 497 more"), "{text}");
        let failed = job(CLAUDE_CODE_KIND, JobStatus::Failed, None, Some(&"e".repeat(20_000)));
        let text = code_run_outcome(&failed).unwrap();
        assert!(text.chars().count() < MAX_ERROR_CHARS + 100, "{} chars", text.chars().count());
    }
}
