//! Daydream (PRODUCT.md §7): a periodic self-review run as the job kind
//! `daydream`, in six recorded phases — (1) readiness: skip when the queue
//! is busy, memory is short, or (scheduled runs) inside office hours;
//! (2) cleanup: stale child processes, old temp/handoff files, old insight
//! files; (3) context: per workspace git activity, stack, TODOs, test
//! layout, plus 7-day job outcomes; (4) analysis: the model, or a recorded
//! deterministic fallback; (5) output: an insight file per workspace and a
//! summary notice to the admin chat through the [`Outbox`]; (6) post-cleanup
//! and the session record (`daydream_sessions`).
//!
//! Invariants: every session that starts ends in exactly one stored record
//! (completed, skipped or failed) with one entry per phase it reached; a
//! skipped session touches nothing but its record; files are written only
//! under `<data_dir>/insights/`.

mod analysis;
mod cleanup;
mod context;

pub use analysis::{PROMPT_HEADING, deterministic_analysis, render_context};
pub use cleanup::{CleanupReport, prune_insights};
pub use context::{WorkspaceContext, gather as gather_workspace_context};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::handler::{JobContext, JobError, JobHandler};
use super::{Clock, ScheduleSpec};
use crate::agent::ModelSet;
use crate::agent::outbox::{Notice, NoticeKind, Outbox};
use crate::config::{DaydreamSettings, Settings, WorkspaceSettings};
use crate::storage::{DaydreamPhase, DaydreamSession, NewConversation, StorageError, StorageResult, Store};
use analysis::JobHealth;

/// The job kind.
pub const DAYDREAM_KIND: &str = "daydream";
const WEEK_MS: i64 = 7 * 86_400_000;

/// Where the summary goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminChat {
    /// The private Telegram chat of this admin id.
    Telegram(i64),
    /// A transcript conversation titled "daydream".
    Transcript,
}

/// Everything a daydream session needs; built once by the app.
#[derive(Debug, Clone)]
pub struct Daydream {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub outbox: Arc<dyn Outbox>,
    pub models: Option<ModelSet>,
    pub settings: DaydreamSettings,
    pub workspaces: Vec<WorkspaceSettings>,
    pub data_dir: PathBuf,
    pub admin_chat: AdminChat,
    /// The environment git starts from (see `workspace::child`).
    pub child_env: crate::config::ChildEnv,
    /// Run branches, whose merged and discarded worktrees the cleanup removes.
    pub branches: crate::workspace::runs::RunBranches,
}

/// How a phase went, before it is timed into a [`DaydreamPhase`].
enum Step<T> {
    Ok(String, T),
    Skip(String),
}

impl Daydream {
    /// The parts from settings; the summary goes to the first Telegram admin when a bot is configured.
    pub fn from_settings(
        settings: &Settings,
        store: Store,
        clock: Arc<dyn Clock>,
        outbox: Arc<dyn Outbox>,
        models: Option<ModelSet>,
    ) -> Daydream {
        let admin_chat = match (&settings.telegram.bot_token, settings.telegram.admins.first()) {
            (Some(_), Some(admin)) => AdminChat::Telegram(*admin),
            _ => AdminChat::Transcript,
        };
        Daydream {
            store,
            clock,
            outbox,
            models,
            settings: settings.daydream.clone(),
            workspaces: settings.workspaces.clone(),
            data_dir: settings.data_dir.clone(),
            admin_chat,
            child_env: settings.child_env.clone(),
            branches: crate::workspace::runs::RunBranches::from_settings(settings),
        }
    }

    /// The `[daydream]` schedule as a scheduler entry (`None` when disabled).
    pub fn schedule_spec(settings: &DaydreamSettings) -> Option<ScheduleSpec> {
        if !settings.enabled {
            return None;
        }
        let schedule = <cron::Schedule as std::str::FromStr>::from_str(&settings.cron).ok()?;
        Some(ScheduleSpec {
            name: DAYDREAM_KIND.into(),
            expression: settings.cron.clone(),
            schedule,
            timezone: settings.timezone(),
            kind: DAYDREAM_KIND.into(),
            payload: json!({"trigger": "schedule"}),
            conversation: None,
            priority: -10,
        })
    }

    fn insights_root(&self) -> PathBuf {
        self.data_dir.join("insights")
    }

    /// Run one session and store its record. `trigger` is `schedule`, `manual` or `job`;
    /// only scheduled sessions honour office hours.
    pub async fn run_session(&self, trigger: &str, cancel: &CancellationToken) -> StorageResult<DaydreamSession> {
        let started_at_ms = self.clock.now_ms();
        let mut session = DaydreamSession {
            id: 0,
            trigger: trigger.to_owned(),
            outcome: "completed".into(),
            reason: None,
            phases: Vec::new(),
            insight_files: Vec::new(),
            summary: None,
            started_at_ms,
            finished_at_ms: started_at_ms,
        };
        if let Err(reason) = self.run_phases(trigger, cancel, &mut session).await {
            session.outcome = "failed".into();
            session.reason = Some(reason);
        }
        session.finished_at_ms = self.clock.now_ms();
        let stored = self.store.insert_daydream_session(&session).await?;
        tracing::info!(session = stored.id, outcome = %stored.outcome, reason = ?stored.reason, "daydream session ended");
        Ok(stored)
    }

    async fn run_phases(
        &self,
        trigger: &str,
        cancel: &CancellationToken,
        session: &mut DaydreamSession,
    ) -> Result<(), String> {
        let timer = Instant::now();
        match self.readiness(trigger).await.map_err(|error| error.to_string())? {
            Step::Skip(reason) => {
                record(session, "readiness", "skipped", timer, &reason);
                session.outcome = "skipped".into();
                session.reason = Some(reason);
                return Ok(());
            }
            Step::Ok(detail, ()) => record(session, "readiness", "ok", timer, &detail),
        }
        let stopped = |session: &mut DaydreamSession| {
            cancel.is_cancelled().then(|| {
                session.reason = Some("cancelled".into());
                "cancelled".to_owned()
            })
        };
        let timer = Instant::now();
        let report = self.cleanup().await.map_err(|error| error.to_string())?;
        record(session, "cleanup", "ok", timer, &report.describe());
        if let Some(reason) = stopped(session) {
            return Err(reason);
        }

        let timer = Instant::now();
        let (contexts, jobs) = self.context().await.map_err(|error| error.to_string())?;
        let detail = format!(
            "{} workspace(s): {}; {} job kind(s) finished in the last 7 days",
            contexts.len(),
            contexts.iter().map(|c| format!("{} ({} commits)", c.name, c.commits)).collect::<Vec<_>>().join(", "),
            jobs.stats.len()
        );
        record(session, "context", "ok", timer, &detail);
        if let Some(reason) = stopped(session) {
            return Err(reason);
        }

        let timer = Instant::now();
        let (analyses, detail) = self.analysis(&contexts, &jobs).await;
        record(session, "analysis", "ok", timer, &detail);
        if let Some(reason) = stopped(session) {
            return Err(reason);
        }

        let timer = Instant::now();
        let (files, summary, detail) = self.output(&contexts, &analyses, &jobs, session.started_at_ms).await?;
        session.insight_files = files;
        session.summary = Some(summary);
        record(session, "output", "ok", timer, &detail);

        let timer = Instant::now();
        let pruned = prune_insights(&self.insights_root(), self.settings.keep_insights.max(1));
        record(session, "record", "ok", timer, &format!("{pruned} old insight file(s) pruned; session recorded"));
        Ok(())
    }

    async fn readiness(&self, trigger: &str) -> StorageResult<Step<()>> {
        let now = self.clock.now_ms();
        if trigger == "schedule"
            && let Some(hours) = self.settings.office_hours()
        {
            let local_minute = local_minute_of_day(now, self.settings.timezone());
            if hours.contains(local_minute) {
                let window = self.settings.office_hours.clone().unwrap_or_default();
                return Ok(Step::Skip(format!("inside office hours ({window})")));
            }
        }
        let queued = self.store.count_queued_jobs().await?;
        if queued > self.settings.max_queued_jobs {
            return Ok(Step::Skip(format!(
                "the queue is busy: {queued} jobs queued (threshold {})",
                self.settings.max_queued_jobs
            )));
        }
        let memory = match available_memory_mb() {
            Some(available) if available < self.settings.min_available_memory_mb => {
                return Ok(Step::Skip(format!(
                    "memory is short: {available} MiB available (threshold {} MiB)",
                    self.settings.min_available_memory_mb
                )));
            }
            Some(available) => format!("{available} MiB available"),
            None => "available memory unknown (no /proc/meminfo)".to_owned(),
        };
        Ok(Step::Ok(format!("{queued} job(s) queued; {memory}"), ()))
    }

    async fn cleanup(&self) -> StorageResult<CleanupReport> {
        let mut report = CleanupReport::default();
        let max_age_ms = i64::try_from(self.settings.child_max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        cleanup::stale_children(&self.store, self.clock.now_ms(), max_age_ms, &mut report).await?;
        let dirs = vec![self.data_dir.join("tmp"), self.data_dir.join("handoff")];
        let max_age = Duration::from_secs(self.settings.temp_max_age_hours.saturating_mul(3600));
        let root = self.insights_root();
        let keep = self.settings.keep_insights.max(1);
        let (temp, insights) =
            tokio::task::spawn_blocking(move || (cleanup::old_files(&dirs, max_age), prune_insights(&root, keep)))
                .await
                .map_err(|error| StorageError::Invalid(format!("cleanup task failed: {error}")))?;
        report.temp_files_deleted = temp;
        report.insight_files_deleted = insights;
        let workspaces = crate::workspace::Workspaces::new(self.workspaces.clone(), &self.data_dir);
        match self.branches.clean(&self.store, &workspaces).await {
            Ok(removed) => report.worktrees_removed = removed,
            Err(crate::workspace::runs::RunBranchError::Storage(error)) => return Err(error),
            Err(error) => tracing::warn!("daydream: run worktrees not cleaned: {error}"),
        }
        Ok(report)
    }

    async fn context(&self) -> StorageResult<(Vec<WorkspaceContext>, JobHealth)> {
        let mut contexts = Vec::new();
        for workspace in &self.workspaces {
            contexts.push(context::gather(&workspace.name, &workspace.path, &self.child_env).await);
        }
        let since = self.clock.now_ms().saturating_sub(WEEK_MS);
        let jobs = JobHealth {
            stats: self.store.job_stats_since(since).await?,
            errors: self.store.job_error_patterns_since(since, 5).await?,
        };
        Ok((contexts, jobs))
    }

    /// One analysis per workspace (the model's, else deterministic) and a description of how it was made.
    async fn analysis(&self, contexts: &[WorkspaceContext], jobs: &JobHealth) -> (Vec<String>, String) {
        let mut analyses = Vec::new();
        let mut notes = Vec::new();
        for context in contexts {
            let facts = render_context(context, jobs);
            let text = match &self.models {
                Some(models) => match analysis::model_analysis(models, &facts).await {
                    Ok(text) => {
                        notes.push(format!("{}: model {}", context.name, models.tiers.medium));
                        text
                    }
                    Err(error) => {
                        notes.push(format!("{}: model failed ({error}); deterministic analysis", context.name));
                        deterministic_analysis(context, jobs)
                    }
                },
                None => {
                    notes.push(format!("{}: no model configured; deterministic analysis", context.name));
                    deterministic_analysis(context, jobs)
                }
            };
            analyses.push(text);
        }
        if notes.is_empty() {
            notes.push("no workspaces configured; nothing to analyse".into());
        }
        (analyses, notes.join("; "))
    }

    async fn output(
        &self,
        contexts: &[WorkspaceContext],
        analyses: &[String],
        jobs: &JobHealth,
        started_at_ms: i64,
    ) -> Result<(Vec<String>, String, String), String> {
        let stamp = chrono::DateTime::from_timestamp_millis(started_at_ms)
            .map(|time| time.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| started_at_ms.to_string());
        let mut files = Vec::new();
        for (context, analysis) in contexts.iter().zip(analyses) {
            let dir = self.insights_root().join(safe_file_name(&context.name));
            let path = dir.join(format!("{stamp}.md"));
            let body = format!(
                "# Daydream — {} ({stamp})\n\n{}\n\n## Facts\n\n{}",
                context.name,
                analysis.trim(),
                render_context(context, jobs)
            );
            tokio::fs::create_dir_all(&dir).await.map_err(|error| format!("creating {}: {error}", dir.display()))?;
            tokio::fs::write(&path, body).await.map_err(|error| format!("writing {}: {error}", path.display()))?;
            files.push(path.display().to_string());
        }
        let summary = summary_text(contexts, analyses, &files);
        let delivered = match self.post_summary(&summary, started_at_ms).await {
            Ok(conversation) => format!("summary posted to conversation {conversation}"),
            Err(error) => format!("summary not delivered: {error}"),
        };
        Ok((files.clone(), summary, format!("{} insight file(s) written; {delivered}", files.len())))
    }

    async fn post_summary(&self, text: &str, started_at_ms: i64) -> Result<String, String> {
        let conversation = self.admin_conversation().await.map_err(|error| error.to_string())?;
        let notice = Notice {
            conversation_id: conversation.clone(),
            kind: NoticeKind::Info,
            text: text.to_owned(),
            dedupe_key: format!("daydream:{started_at_ms}"),
        };
        self.outbox.post(notice).await.map_err(|error| error.to_string())?;
        Ok(conversation)
    }

    /// The admin's Telegram conversation (the channel's chat mapping, else a new
    /// conversation for that chat), or the "daydream" transcript conversation.
    async fn admin_conversation(&self) -> StorageResult<String> {
        let (title, channel, chat_id) = match self.admin_chat {
            AdminChat::Telegram(admin) => {
                // The key format of `channels::telegram::commands::conversation_key` (jobs never import channels).
                if let Some(id) = self.store.kv_get(&format!("telegram:conversation:{admin}")).await? {
                    return Ok(id);
                }
                ("daydream".to_owned(), "telegram", Some(admin))
            }
            AdminChat::Transcript => ("daydream".to_owned(), "daydream", None),
        };
        if let Some(found) = self.store.find_conversation(&title).await?
            && found.chat_id == chat_id
        {
            return Ok(found.id);
        }
        let created =
            self.store.create_conversation(NewConversation { title, channel: channel.to_owned(), chat_id }).await?;
        Ok(created.id)
    }
}

fn record(session: &mut DaydreamSession, name: &str, status: &str, started: Instant, detail: &str) {
    session.phases.push(DaydreamPhase {
        name: name.to_owned(),
        status: status.to_owned(),
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        detail: detail.to_owned(),
    });
}

/// The chat summary: per workspace, the first recommendations.
fn summary_text(contexts: &[WorkspaceContext], analyses: &[String], files: &[String]) -> String {
    let mut text = format!("**Daydream** reviewed {} workspace(s).", contexts.len());
    for ((context, analysis), file) in contexts.iter().zip(analyses).zip(files) {
        let recommendations: Vec<&str> = analysis
            .lines()
            .skip_while(|line| !line.to_lowercase().contains("recommendation"))
            .skip(1)
            .filter(|line| line.trim_start().starts_with(['-', '*', '1', '2', '3']))
            .take(3)
            .collect();
        text.push_str(&format!(
            "\n\n**{}** — {} commit(s) this week, {} TODO/FIXME.\n{}\n(insights: `{file}`)",
            context.name,
            context.commits,
            context.todo_count + context.fixme_count,
            recommendations.join("\n")
        ));
    }
    text
}

/// A workspace name usable as one path component.
fn safe_file_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if cleaned.is_empty() { "workspace".into() } else { cleaned }
}

/// Minutes after local midnight in `timezone` at `now_ms` (its offset that day, DST included).
pub fn local_minute_of_day(now_ms: i64, timezone: chrono_tz::Tz) -> u32 {
    use chrono::Timelike as _;
    chrono::DateTime::from_timestamp_millis(now_ms)
        .map(|at| at.with_timezone(&timezone))
        .map_or(0, |local| local.hour() * 60 + local.minute())
}

/// `MemAvailable` from `/proc/meminfo`, in MiB.
fn available_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available_mb(&text)
}

fn parse_mem_available_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The `daydream` job kind. Payload: `{"trigger": "schedule" | "manual"}` (default `job`).
#[derive(Debug, Clone)]
pub struct DaydreamHandler {
    daydream: Arc<Daydream>,
}

impl DaydreamHandler {
    pub fn new(daydream: Arc<Daydream>) -> Self {
        Self { daydream }
    }
}

#[async_trait::async_trait]
impl JobHandler for DaydreamHandler {
    fn kind(&self) -> &'static str {
        DAYDREAM_KIND
    }

    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let trigger = payload.get("trigger").and_then(serde_json::Value::as_str).unwrap_or("job");
        let session = self
            .daydream
            .run_session(trigger, &context.cancel)
            .await
            .map_err(|error| JobError::Retry(error.to_string()))?;
        if context.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        Ok(json!({"session_id": session.id, "outcome": session.outcome, "reason": session.reason}))
    }
}

#[cfg(test)]
mod tests {
    use super::{local_minute_of_day, parse_mem_available_mb, safe_file_name};

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving_time() {
        use chrono_tz::Tz;
        let ten_past_nine_utc = (9 * 60 + 10) * 60_000;
        assert_eq!(local_minute_of_day(ten_past_nine_utc, Tz::UTC), 9 * 60 + 10);
        assert_eq!(local_minute_of_day(ten_past_nine_utc, Tz::Europe__Berlin), 10 * 60 + 10, "CET is UTC+1");
        assert_eq!(local_minute_of_day(ten_past_nine_utc, Tz::Pacific__Honolulu), 23 * 60 + 10);
        // 2026-07-01 09:10 UTC: Berlin is on summer time (UTC+2).
        let july = 1_782_897_000_000;
        assert_eq!(local_minute_of_day(july, Tz::Europe__Berlin), 11 * 60 + 10);
    }

    #[test]
    fn meminfo_available_is_read_in_mebibytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2097152 kB\n";
        assert_eq!(parse_mem_available_mb(meminfo), Some(2048));
        assert_eq!(parse_mem_available_mb("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn workspace_names_become_one_safe_path_component() {
        assert_eq!(safe_file_name("valor"), "valor");
        assert_eq!(safe_file_name("../etc"), "___etc");
        assert_eq!(safe_file_name(""), "workspace");
    }
}
