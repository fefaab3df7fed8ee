//! Daydream phase 4: insights and recommendations from the gathered context.
//! The model (medium tier) writes them when one is configured; otherwise, or
//! when the call fails, a deterministic analysis derived from the same facts
//! is used, and the session records which one it was.
//!
//! Invariant: the context rendering (`render_context`) is the only text the
//! model sees, so what the model was told is also what the insight file shows.

use std::fmt::Write as _;

use super::context::WorkspaceContext;
use crate::agent::ModelSet;
use crate::llm::{ChatRequest, Message};
use crate::storage::JobKindStats;

/// The first line of every prompt (aimock fixtures in tests match on it).
pub const PROMPT_HEADING: &str = "Daydream review of workspace";

const SYSTEM: &str = "You are valor's daydream: a quiet periodic review of a software workspace. From the facts \
given, write Markdown with two sections, `## Insights` (architectural observations, grounded in the facts) and \
`## Recommendations` (at most five concrete, small next steps). Be brief; do not invent facts.";

/// Job outcomes of the last 7 days, shared by every workspace's analysis.
#[derive(Debug, Clone, Default)]
pub struct JobHealth {
    pub stats: Vec<JobKindStats>,
    /// (kind, error, count), most frequent first.
    pub errors: Vec<(String, String, i64)>,
}

/// Markdown facts about a workspace and the job queue.
pub fn render_context(context: &WorkspaceContext, jobs: &JobHealth) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{PROMPT_HEADING} {} ({})\n", context.name, context.path.display());
    let _ = writeln!(out, "### Git activity (last 7 days)");
    match &context.git_error {
        Some(error) => {
            let _ = writeln!(out, "- unavailable: {error}");
        }
        None => {
            let _ = writeln!(out, "- {} commit(s) by {}", context.commits, join_or_none(&context.authors));
            for subject in &context.recent_subjects {
                let _ = writeln!(out, "  - {subject}");
            }
        }
    }
    let languages: Vec<String> = context.languages.iter().map(|(name, files)| format!("{name} ({files})")).collect();
    let _ = writeln!(out, "\n### Stack\n- languages by files: {}", join_or_none(&languages));
    let _ = writeln!(out, "- build/stack markers: {}", join_or_none(&context.stack));
    let _ = writeln!(out, "- files scanned: {}", context.files_scanned);
    let _ = writeln!(out, "\n### Open markers\n- TODO: {}, FIXME: {}", context.todo_count, context.fixme_count);
    for example in &context.todo_examples {
        let _ = writeln!(out, "  - {example}");
    }
    let _ = writeln!(out, "\n### Tests\n- {} test file(s) in {}", context.test_files, join_or_none(&context.test_dirs));
    let _ = writeln!(out, "\n### Background jobs (last 7 days)");
    if jobs.stats.is_empty() {
        let _ = writeln!(out, "- no finished jobs");
    }
    for kind in &jobs.stats {
        let total = kind.succeeded + kind.failed + kind.cancelled;
        let _ = writeln!(
            out,
            "- {}: {total} finished, {} succeeded ({}%), {} failed, {} cancelled",
            kind.kind,
            kind.succeeded,
            percent(kind.succeeded, total),
            kind.failed,
            kind.cancelled
        );
    }
    for (kind, error, count) in &jobs.errors {
        let _ = writeln!(out, "- error ×{count} in {kind}: {}", error.chars().take(160).collect::<String>());
    }
    out
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

fn percent(part: i64, total: i64) -> i64 {
    if total == 0 { 0 } else { part * 100 / total }
}

/// The analysis written without a model: rules over the same facts.
pub fn deterministic_analysis(context: &WorkspaceContext, jobs: &JobHealth) -> String {
    let mut insights = Vec::new();
    let mut recommendations = Vec::new();
    match (&context.git_error, context.commits) {
        (Some(_), _) => insights.push("Git history is not readable here, so recent activity is unknown.".to_owned()),
        (None, 0) => insights.push("No commits in the last 7 days: the workspace is quiet.".to_owned()),
        (None, commits) => {
            insights.push(format!("{commits} commit(s) in the last 7 days by {} author(s).", context.authors.len()))
        }
    }
    if let Some((language, files)) = context.languages.iter().find(|(name, _)| name != "Markdown" && name != "Config") {
        insights.push(format!("Mostly {language} ({files} file(s)); stack: {}.", join_or_none(&context.stack)));
    }
    let markers = context.todo_count + context.fixme_count;
    if markers > 0 {
        insights.push(format!("{} TODO and {} FIXME marker(s) are open.", context.todo_count, context.fixme_count));
        recommendations.push(format!(
            "Triage the {markers} TODO/FIXME marker(s): turn the important ones into issues, delete the stale ones."
        ));
    }
    if context.test_files == 0 {
        insights.push("No test files were found.".to_owned());
        recommendations.push("Add a first test around the most changed code.".to_owned());
    } else {
        insights.push(format!("{} test file(s) ({}).", context.test_files, join_or_none(&context.test_dirs)));
    }
    for kind in jobs.stats.iter().filter(|kind| kind.failed > 0) {
        let total = kind.succeeded + kind.failed + kind.cancelled;
        recommendations.push(format!(
            "Background `{}` jobs failed {} of {total} time(s) this week; look at the most frequent error.",
            kind.kind, kind.failed
        ));
    }
    if recommendations.is_empty() {
        recommendations.push("Nothing urgent; keep the current pace.".to_owned());
    }
    let bullet = |items: &[String]| items.iter().map(|item| format!("- {item}")).collect::<Vec<_>>().join("\n");
    format!("## Insights\n{}\n\n## Recommendations\n{}\n", bullet(&insights), bullet(&recommendations))
}

/// Ask the model (medium tier); `Err` carries a one-line reason.
pub async fn model_analysis(models: &ModelSet, facts: &str) -> Result<String, String> {
    let mut request = ChatRequest::new(models.tiers.medium.clone(), SYSTEM, vec![Message::user_text(facts)]);
    request.max_tokens = 1500;
    let response = models.client.complete(&request).await.map_err(|error| error.to_string())?;
    let text = response.message.text().trim().to_owned();
    if text.is_empty() {
        return Err("the model returned no text".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::{JobHealth, deterministic_analysis, render_context};
    use crate::jobs::daydream::context::WorkspaceContext;
    use crate::storage::JobKindStats;

    #[test]
    fn the_deterministic_analysis_recommends_triage_tests_and_job_fixes() {
        let context = WorkspaceContext {
            name: "demo".into(),
            commits: 3,
            authors: vec!["Ann".into()],
            languages: vec![("Rust".into(), 4)],
            todo_count: 2,
            fixme_count: 1,
            ..Default::default()
        };
        let jobs = JobHealth {
            stats: vec![JobKindStats { kind: "agent_task".into(), succeeded: 3, failed: 1, cancelled: 0 }],
            errors: vec![("agent_task".into(), "rate limited".into(), 1)],
        };
        let analysis = deterministic_analysis(&context, &jobs);
        assert!(analysis.contains("3 commit(s)") && analysis.contains("Mostly Rust"), "{analysis}");
        assert!(analysis.contains("Triage the 3 TODO/FIXME") && analysis.contains("Add a first test"), "{analysis}");
        assert!(analysis.contains("`agent_task` jobs failed 1 of 4"), "{analysis}");
        let facts = render_context(&context, &jobs);
        assert!(facts.contains("75%") && facts.contains("error ×1 in agent_task: rate limited"), "{facts}");
    }
}
