//! The health score, 0–100: a pure function of the components' facts
//! (database, model provider and circuit breakers, Telegram, queue backlog,
//! resources against the high-water mark). Shown in `/health`, `/api/status`,
//! the web dashboard and the `valor_health_score` gauge.
//!
//! Invariants: the score is 100 minus the components' penalties, each capped
//! at its weight; the weights add up to 100; every component is listed with
//! a plain-language note, also when it costs nothing.

use super::breaker::{BreakerSnapshot, BreakerState};

/// The breaker service name of the chat model (`llm::watched`).
pub const MODEL_SERVICE: &str = "model";

/// Everything the score is computed from.
#[derive(Debug, Clone, Copy)]
pub struct HealthInputs<'a> {
    /// `None` when the database answers and is the file opened; else why not.
    pub database_fault: Option<&'a str>,
    pub model_configured: bool,
    /// `None`: no bot token (not expected); `Some(connected)` otherwise.
    pub telegram: Option<bool>,
    pub breakers: &'a [BreakerSnapshot],
    pub queued_jobs: i64,
    pub rss_bytes: u64,
    pub max_rss_bytes: u64,
    pub active_turns: usize,
    pub max_active_turns: usize,
}

/// One component's share of the score.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ComponentScore {
    pub name: &'static str,
    /// Points lost (0 = healthy), at most `weight`.
    pub penalty: u8,
    pub weight: u8,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HealthScore {
    /// 0–100.
    pub score: u8,
    /// healthy (≥ 80) | degraded (≥ 50) | unhealthy
    pub level: &'static str,
    pub components: Vec<ComponentScore>,
}

const DATABASE: u8 = 40;
/// A model that does not answer is valor not answering: its loss alone
/// makes the level "degraded".
const MODEL: u8 = 30;
const BREAKERS: u8 = 10;
const TELEGRAM: u8 = 10;
const QUEUE: u8 = 5;
const RESOURCES: u8 = 5;
/// Queued jobs at which the queue starts to cost points, and where it costs all.
const BACKLOG_WARN: i64 = 100;
const BACKLOG_FULL: i64 = 1000;

pub fn health_score(inputs: &HealthInputs<'_>) -> HealthScore {
    let components = vec![
        database(inputs),
        model(inputs),
        breakers(inputs.breakers.iter().filter(|b| b.service != MODEL_SERVICE)),
        telegram(inputs.telegram),
        queue(inputs.queued_jobs),
        resources(inputs),
    ];
    let lost: u32 = components.iter().map(|c| u32::from(c.penalty)).sum();
    let score = u8::try_from(100u32.saturating_sub(lost)).unwrap_or(0);
    // Without its database valor loses what it is told: unhealthy whatever the rest.
    let level = match score {
        _ if inputs.database_fault.is_some() => "unhealthy",
        80..=100 => "healthy",
        50..=79 => "degraded",
        _ => "unhealthy",
    };
    HealthScore { score, level, components }
}

fn component(name: &'static str, weight: u8, penalty: u8, note: impl Into<String>) -> ComponentScore {
    ComponentScore { name, penalty: penalty.min(weight), weight, note: note.into() }
}

fn database(inputs: &HealthInputs<'_>) -> ComponentScore {
    match inputs.database_fault {
        None => component("database", DATABASE, 0, "answers"),
        Some(fault) => component("database", DATABASE, DATABASE, fault),
    }
}

/// No provider, or the model breaker open, costs everything; probing costs half.
fn model(inputs: &HealthInputs<'_>) -> ComponentScore {
    if !inputs.model_configured {
        return component("model", MODEL, MODEL, "no model provider is configured");
    }
    let Some(breaker) = inputs.breakers.iter().find(|b| b.service == MODEL_SERVICE) else {
        return component("model", MODEL, 0, "a provider is configured");
    };
    let last = breaker.last_error.as_deref().map(|error| format!(" (last: {error})")).unwrap_or_default();
    let failures = breaker.consecutive_failures;
    match breaker.state {
        BreakerState::Open => component("model", MODEL, MODEL, format!("failing: {failures} call(s) in a row{last}")),
        BreakerState::HalfOpen => {
            component("model", MODEL, MODEL / 2, format!("probing after {failures} failure(s){last}"))
        }
        BreakerState::Closed if failures > 0 => {
            component("model", MODEL, 0, format!("answers; {failures} failure(s) since the last success{last}"))
        }
        BreakerState::Closed => component("model", MODEL, 0, "answers"),
    }
}

/// The external services' breakers (the model's has its own component).
fn breakers<'a>(breakers: impl Iterator<Item = &'a BreakerSnapshot>) -> ComponentScore {
    let breakers: Vec<&BreakerSnapshot> = breakers.collect();
    let open: Vec<&str> =
        breakers.iter().filter(|b| b.state == BreakerState::Open).map(|b| b.service.as_str()).collect();
    let half_open = breakers.iter().filter(|b| b.state == BreakerState::HalfOpen).count();
    let penalty = open.len().saturating_mul(5).saturating_add(half_open.saturating_mul(2));
    let penalty = u8::try_from(penalty).unwrap_or(u8::MAX);
    let note = match (open.is_empty(), half_open) {
        (true, 0) => format!("{} service(s) besides the model, all closed", breakers.len()),
        (true, probing) => format!("{probing} probing after failures"),
        (false, _) => format!("open: {}", open.join(", ")),
    };
    component("breakers", BREAKERS, penalty, note)
}

fn telegram(state: Option<bool>) -> ComponentScore {
    match state {
        None => component("telegram", TELEGRAM, 0, "not configured"),
        Some(true) => component("telegram", TELEGRAM, 0, "connected"),
        Some(false) => component("telegram", TELEGRAM, TELEGRAM, "configured but not connected"),
    }
}

fn queue(queued: i64) -> ComponentScore {
    let penalty = if queued >= BACKLOG_FULL {
        QUEUE
    } else if queued >= BACKLOG_WARN {
        QUEUE / 2
    } else {
        0
    };
    component("queue", QUEUE, penalty, format!("{queued} job(s) waiting"))
}

fn resources(inputs: &HealthInputs<'_>) -> ComponentScore {
    let rss_share = if inputs.max_rss_bytes == 0 { 0.0 } else { inputs.rss_bytes as f64 / inputs.max_rss_bytes as f64 };
    let memory = if rss_share > 1.0 {
        RESOURCES
    } else if rss_share >= 0.8 {
        RESOURCES / 2
    } else {
        0
    };
    let turns = if inputs.active_turns >= inputs.max_active_turns { RESOURCES / 2 } else { 0 };
    let note = format!(
        "memory {:.0} % of the mark, {} of {} turns",
        rss_share * 100.0,
        inputs.active_turns,
        inputs.max_active_turns
    );
    component("resources", RESOURCES, memory.saturating_add(turns), note)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn healthy() -> HealthInputs<'static> {
        HealthInputs {
            database_fault: None,
            model_configured: true,
            telegram: None,
            breakers: &[],
            queued_jobs: 0,
            rss_bytes: 20 * MIB,
            max_rss_bytes: 512 * MIB,
            active_turns: 0,
            max_active_turns: 32,
        }
    }

    fn breaker(service: &str, state: BreakerState) -> BreakerSnapshot {
        BreakerSnapshot { service: service.into(), state, consecutive_failures: 0, last_error: None }
    }

    #[test]
    fn the_weights_add_up_to_one_hundred() {
        assert_eq!(
            u32::from(DATABASE)
                + u32::from(MODEL)
                + u32::from(BREAKERS)
                + u32::from(TELEGRAM)
                + u32::from(QUEUE)
                + u32::from(RESOURCES),
            100
        );
    }

    #[test]
    fn each_fact_costs_its_documented_points() {
        let open_two = [breaker("web_search", BreakerState::Open), breaker("notion", BreakerState::Open)];
        let open_three =
            [breaker("a", BreakerState::Open), breaker("b", BreakerState::Open), breaker("c", BreakerState::Open)];
        let probing = [breaker("web_search", BreakerState::HalfOpen), breaker("notion", BreakerState::Closed)];
        let model_open = [breaker(MODEL_SERVICE, BreakerState::Open)];
        let model_probing = [breaker(MODEL_SERVICE, BreakerState::HalfOpen)];
        let model_closed = [breaker(MODEL_SERVICE, BreakerState::Closed)];
        let cases: Vec<(&str, HealthInputs<'_>, u8, &str)> = vec![
            ("all well", healthy(), 100, "healthy"),
            ("database down", HealthInputs { database_fault: Some("does not answer"), ..healthy() }, 60, "unhealthy"),
            ("no model", HealthInputs { model_configured: false, ..healthy() }, 70, "degraded"),
            ("telegram connected", HealthInputs { telegram: Some(true), ..healthy() }, 100, "healthy"),
            ("telegram down", HealthInputs { telegram: Some(false), ..healthy() }, 90, "healthy"),
            ("two breakers open", HealthInputs { breakers: &open_two, ..healthy() }, 90, "healthy"),
            ("breaker penalty is capped", HealthInputs { breakers: &open_three, ..healthy() }, 90, "healthy"),
            ("one breaker probing", HealthInputs { breakers: &probing, ..healthy() }, 98, "healthy"),
            ("the model failing", HealthInputs { breakers: &model_open, ..healthy() }, 70, "degraded"),
            ("the model probing", HealthInputs { breakers: &model_probing, ..healthy() }, 85, "healthy"),
            ("the model answers again", HealthInputs { breakers: &model_closed, ..healthy() }, 100, "healthy"),
            ("99 queued", HealthInputs { queued_jobs: 99, ..healthy() }, 100, "healthy"),
            ("100 queued", HealthInputs { queued_jobs: 100, ..healthy() }, 98, "healthy"),
            ("1000 queued", HealthInputs { queued_jobs: 1000, ..healthy() }, 95, "healthy"),
            ("memory at 80 %", HealthInputs { rss_bytes: 410 * MIB, ..healthy() }, 98, "healthy"),
            ("memory over the mark", HealthInputs { rss_bytes: 600 * MIB, ..healthy() }, 95, "healthy"),
            ("turns at the mark", HealthInputs { active_turns: 32, ..healthy() }, 98, "healthy"),
            (
                "memory and turns at the mark are capped",
                HealthInputs { rss_bytes: 600 * MIB, active_turns: 40, ..healthy() },
                95,
                "healthy",
            ),
            (
                "everything wrong",
                HealthInputs {
                    database_fault: Some("deleted"),
                    model_configured: false,
                    telegram: Some(false),
                    breakers: &open_three,
                    queued_jobs: 5000,
                    rss_bytes: 600 * MIB,
                    active_turns: 40,
                    ..healthy()
                },
                0,
                "unhealthy",
            ),
            (
                "no database and no model",
                HealthInputs { database_fault: Some("deleted"), model_configured: false, ..healthy() },
                30,
                "unhealthy",
            ),
        ];
        for (name, inputs, score, level) in cases {
            let result = health_score(&inputs);
            assert_eq!((result.score, result.level), (score, level), "{name}");
            assert_eq!(result.components.len(), 6, "{name}: every component is listed");
        }
    }

    #[test]
    fn notes_name_what_is_wrong() {
        let open = [breaker("web_search", BreakerState::Open)];
        let result = health_score(&HealthInputs { breakers: &open, ..healthy() });
        let breakers = result.components.iter().find(|c| c.name == "breakers").unwrap();
        assert_eq!(breakers.note, "open: web_search");
        assert_eq!(breakers.penalty, 5);

        let failing = [BreakerSnapshot {
            service: MODEL_SERVICE.into(),
            state: BreakerState::Open,
            consecutive_failures: 3,
            last_error: Some("could not reach the model provider: connection refused".into()),
        }];
        let result = health_score(&HealthInputs { breakers: &failing, ..healthy() });
        let model = result.components.iter().find(|c| c.name == "model").unwrap();
        assert_eq!(
            model.note,
            "failing: 3 call(s) in a row (last: could not reach the model provider: connection refused)"
        );
        let breakers = result.components.iter().find(|c| c.name == "breakers").unwrap();
        assert_eq!(breakers.penalty, 0, "the model's breaker is scored once, as the model");

        // The Status tab lists every breaker; the note counts the others and says so.
        let closed = [
            breaker(MODEL_SERVICE, BreakerState::Closed),
            breaker("read_link", BreakerState::Closed),
            breaker("vision", BreakerState::Closed),
        ];
        let result = health_score(&HealthInputs { breakers: &closed, ..healthy() });
        let breakers = result.components.iter().find(|c| c.name == "breakers").unwrap();
        assert_eq!(breakers.note, "2 service(s) besides the model, all closed");
    }
}
