//! Building the daydream from settings (shared by the job handler and the
//! CLI) and `valor daydream run`: one session now, in this process, its
//! record printed. Office hours do not apply to a manual run.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::agent::outbox::Outbox;
use crate::config::Settings;
use crate::jobs::{Clock, Daydream};
use crate::storage::{DaydreamSession, Store};

/// The daydream with the agent's models and the jobs' outbox.
pub fn build_daydream(
    settings: &Settings,
    store: &Store,
    agent: &Agent,
    clock: Arc<dyn Clock>,
    outbox: Arc<dyn Outbox>,
) -> Daydream {
    Daydream::from_settings(settings, store.clone(), clock, outbox, agent.models().cloned())
}

/// Run one session; returns the text to print.
pub async fn daydream_run_command(settings: Settings) -> anyhow::Result<String> {
    let app = super::App::build(settings).await?;
    let daydream =
        build_daydream(&app.settings, &app.store, &app.agent, app.jobs.clock.clone(), app.jobs.outbox.clone());
    let session = daydream.run_session("manual", &CancellationToken::new()).await?;
    app.store.close().await;
    Ok(describe(&session))
}

fn describe(session: &DaydreamSession) -> String {
    let mut lines = vec![format!(
        "daydream session {}: {}{}",
        session.id,
        session.outcome,
        session.reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default()
    )];
    for phase in &session.phases {
        lines.push(format!("  {:<10} {:<8} {:>6} ms  {}", phase.name, phase.status, phase.duration_ms, phase.detail));
    }
    for file in &session.insight_files {
        lines.push(format!("  insight file: {file}"));
    }
    lines.join("\n")
}
