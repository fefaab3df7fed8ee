//! Cron schedules from `[[schedule]]`: each slot enqueues one job. The
//! scheduler enqueues with the idempotency key `schedule:<name>:<slot>` and
//! then advances the persisted next run with a compare-and-swap, so a crash
//! in between, a restart or a second process on the same database never runs
//! a slot twice. After downtime the next run is the first slot after *now*:
//! missed slots collapse into one catch-up run.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone as _};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use super::Clock;
use crate::config::{ScheduleSettings, parse_timezone};
use crate::storage::{NewJob, StorageResult, Store};

/// First slot of `schedule`, read as wall-clock times in `timezone`,
/// strictly after the instant `after_ms`, if any. Across DST changes every
/// wall-clock slot runs once: one that a change skips (02:30 when clocks
/// jump from 02:00 to 03:00) runs at the instant it would have had in the
/// old offset (03:30), and one that a change repeats runs at its first
/// occurrence only.
pub fn next_run_after(schedule: &cron::Schedule, timezone: Tz, after_ms: i64) -> Option<i64> {
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?;
    // cron walks slots on a naive calendar (labelled UTC); each is then placed in the zone.
    let mut local = after.with_timezone(&timezone).naive_local();
    for _ in 0..8 {
        let slot = schedule.after(&local.and_utc()).next()?.naive_utc();
        if let Some(at) = place_in_zone(timezone, slot).map(|at| at.timestamp_millis())
            && at > after_ms
        {
            return Some(at);
        }
        local = slot;
    }
    None
}

/// The instant of a wall-clock time: the earlier one when it repeats, the old
/// offset's reading when a DST gap skips it (gaps are at most a few hours).
fn place_in_zone(timezone: Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    match timezone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at),
        LocalResult::None => (1..=3).find_map(|hours| {
            let shift = TimeDelta::hours(hours);
            timezone.from_local_datetime(&(local - shift)).earliest().map(|at| at + shift)
        }),
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub expression: String,
    pub schedule: cron::Schedule,
    /// The zone the cron fields are read in.
    pub timezone: Tz,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Conversation id or title (resolved when the scheduler syncs).
    pub conversation: Option<String>,
    pub priority: i64,
}

impl ScheduleSpec {
    /// Errors name the schedule and the key (config validation reports them first).
    pub fn from_settings(settings: &ScheduleSettings) -> Result<Self, String> {
        let name = &settings.name;
        let timezone = match &settings.timezone {
            Some(zone) => parse_timezone(zone).map_err(|why| format!("schedule {name:?}: timezone {why}"))?,
            None => Tz::UTC,
        };
        Ok(Self {
            name: settings.name.clone(),
            expression: settings.cron.clone(),
            schedule: cron::Schedule::from_str(&settings.cron)
                .map_err(|error| format!("schedule {name:?}: cron {error}"))?,
            timezone,
            kind: settings.kind.clone(),
            payload: if settings.payload.is_null() { serde_json::json!({}) } else { settings.payload.clone() },
            conversation: settings.conversation.clone(),
            priority: settings.priority,
        })
    }
}

#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    clock: Arc<dyn Clock>,
    specs: Vec<ScheduleSpec>,
    max_attempts: u32,
}

impl Scheduler {
    pub fn new(store: Store, clock: Arc<dyn Clock>, specs: Vec<ScheduleSpec>, max_attempts: u32) -> Self {
        Self { store, clock, specs, max_attempts }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Enqueue one job for every schedule whose slot is due; returns the
    /// ids of jobs this call created.
    pub async fn try_run_due(&self) -> StorageResult<Vec<i64>> {
        let mut created = Vec::new();
        for spec in &self.specs {
            if let Some(id) = self.run_if_due(spec).await? {
                created.push(id);
            }
        }
        Ok(created)
    }

    async fn run_if_due(&self, spec: &ScheduleSpec) -> StorageResult<Option<i64>> {
        let now = self.clock.now_ms();
        let Some(first) = next_run_after(&spec.schedule, spec.timezone, now) else { return Ok(None) };
        let state = match self.store.get_schedule(&spec.name).await {
            Ok(state) if state.cron == spec.expression => state,
            Ok(_) | Err(crate::storage::StorageError::NotFound { .. }) => {
                self.store.upsert_schedule(&spec.name, &spec.expression, first, now).await?
            }
            Err(other) => return Err(other),
        };
        if state.next_run_at_ms > now {
            return Ok(None);
        }
        let slot = state.next_run_at_ms;
        let conversation_id = match &spec.conversation {
            Some(name) => self.store.find_conversation(name).await?.map(|found| found.id),
            None => None,
        };
        let enqueued = self
            .store
            .enqueue_job(
                NewJob {
                    kind: spec.kind.clone(),
                    payload: spec.payload.clone(),
                    priority: spec.priority,
                    run_at_ms: None,
                    max_attempts: self.max_attempts,
                    conversation_id,
                    idempotency_key: Some(format!("schedule:{}:{slot}", spec.name)),
                },
                now,
            )
            .await?;
        // Catch-up once: the next slot is the first after now, not after the missed one.
        let next = next_run_after(&spec.schedule, spec.timezone, now).unwrap_or(i64::MAX);
        self.store.advance_schedule(&spec.name, slot, next, enqueued.job.id, now).await?;
        if enqueued.created {
            tracing::info!(schedule = %spec.name, job = enqueued.job.id, "scheduled job queued");
            return Ok(Some(enqueued.job.id));
        }
        Ok(None)
    }

    /// Check every `tick` until shutdown.
    pub async fn run(self, tick: Duration, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.try_run_due().await {
                tracing::warn!("running due schedules failed: {error}");
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
}
