//! The health score now: gathers the facts (a database ping, the queue
//! backlog, the breakers, the model provider, Telegram, the newest resource
//! sample) and scores them with `monitoring::health_score`. One function for
//! `/health`, `/api/status`, the `valor_health_score` gauge and Telegram's
//! `/status`, so they all agree.

use crate::monitoring::ComponentStatus;
use crate::monitoring::health_score::{HealthInputs, HealthScore, health_score};

use super::Agent;

/// Score the app's state now (and set the `valor_health_score` gauge).
/// `telegram_connected` counts only when a bot token is configured.
pub async fn current_health(agent: &Agent, telegram_connected: bool) -> HealthScore {
    let store = agent.store();
    let database_fault = match store.ping().await {
        Ok(()) => None,
        // A fault (file deleted, replaced, corrupted) says what happened itself.
        Err(error) if store.fault().is_some() => Some(error.to_string()),
        Err(error) => Some(format!("does not answer: {error}")),
    };
    let queued_jobs = match store.count_jobs_by_status().await {
        Ok(counts) => counts.get("queued").copied().unwrap_or(0),
        Err(_) => 0,
    };
    let monitor = agent.monitor();
    let breakers = agent.tools().breakers().snapshot();
    let score = health_score(&HealthInputs {
        database_fault: database_fault.as_deref(),
        model_configured: agent.provider_name().is_some(),
        telegram: monitor.telegram_configured().then_some(telegram_connected),
        breakers: &breakers,
        queued_jobs,
        rss_bytes: monitor.latest().map_or(0, |sample| sample.rss_bytes),
        max_rss_bytes: monitor.max_rss_bytes(),
        active_turns: monitor.active_turns(),
        max_active_turns: monitor.max_active_turns(),
    });
    metrics::gauge!("valor_health_score").set(f64::from(score.score));
    score
}

/// Whether the start-up component list has Telegram on (connected).
pub fn telegram_on(components: &[ComponentStatus]) -> bool {
    components.iter().any(|component| component.name == "telegram" && component.on)
}
