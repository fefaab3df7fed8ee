//! `[daydream]`: the periodic self-review (PRODUCT.md §7) — when it runs,
//! when it must not (office hours), and its readiness and cleanup limits.
//!
//! Invariant: `validate` accepts only a parseable cron expression and an
//! office-hours window of the form `HH:MM-HH:MM`.

use serde::Deserialize;

use super::ConfigError;
use super::settings::parse_timezone;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaydreamSettings {
    /// Schedule daydream sessions inside `valor serve` (`valor daydream run` works either way).
    pub enabled: bool,
    /// Cron expression (with seconds, in `timezone`). Default: every 6 hours.
    pub cron: String,
    /// Skip scheduled sessions inside this local window, e.g. `"09:00-18:00"` (None: never skip).
    pub office_hours: Option<String>,
    /// IANA time zone of `cron` and `office_hours` (None: UTC).
    pub timezone: Option<String>,
    /// Skip when more jobs than this are queued.
    pub max_queued_jobs: i64,
    /// Skip when less memory than this is available (`MemAvailable` in `/proc/meminfo`).
    pub min_available_memory_mb: u64,
    /// Child processes older than this are stopped by the cleanup phase.
    pub child_max_age_secs: u64,
    /// Temp and handoff files older than this are deleted.
    pub temp_max_age_hours: u64,
    /// Insight files kept per workspace (newest first).
    pub keep_insights: usize,
}

impl Default for DaydreamSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            cron: "0 0 */6 * * *".into(),
            office_hours: None,
            timezone: None,
            max_queued_jobs: 20,
            min_available_memory_mb: 256,
            child_max_age_secs: 6 * 3600,
            temp_max_age_hours: 24,
            keep_insights: 10,
        }
    }
}

/// A daily window in minutes after local midnight; `end < start` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficeHours {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl OfficeHours {
    /// Parse `"HH:MM-HH:MM"`.
    pub fn parse(text: &str) -> Option<OfficeHours> {
        let (start, end) = text.trim().split_once('-')?;
        let minute = |part: &str| {
            let (hours, minutes) = part.trim().split_once(':')?;
            let (hours, minutes) = (hours.parse::<u32>().ok()?, minutes.parse::<u32>().ok()?);
            (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
        };
        Some(OfficeHours { start_minute: minute(start)?, end_minute: minute(end)? })
    }

    /// Whether `minute_of_day` (local) is inside the window.
    pub fn contains(&self, minute_of_day: u32) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_minute || minute_of_day < self.end_minute
        }
    }
}

impl DaydreamSettings {
    /// The configured zone; UTC when none is set (`validate` rejects unknown names).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone.as_deref().and_then(|name| parse_timezone(name).ok()).unwrap_or(chrono_tz::Tz::UTC)
    }

    pub fn office_hours(&self) -> Option<OfficeHours> {
        self.office_hours.as_deref().and_then(OfficeHours::parse)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| ConfigError::Invalid(format!("`daydream.{key}` {why}"));
        if let Err(error) = <cron::Schedule as std::str::FromStr>::from_str(&self.cron) {
            return Err(invalid(
                "cron",
                &format!("is not a cron expression (sec min hour day month weekday): {error}"),
            ));
        }
        if let Some(text) = &self.office_hours
            && OfficeHours::parse(text).is_none()
        {
            return Err(invalid("office_hours", "must look like \"09:00-18:00\""));
        }
        if let Some(name) = &self.timezone
            && let Err(why) = parse_timezone(name)
        {
            return Err(invalid("timezone", &why));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::OfficeHours;

    #[test]
    fn office_hours_parse_and_wrap_past_midnight() {
        let day = OfficeHours::parse("09:00-18:00").unwrap_or(OfficeHours { start_minute: 0, end_minute: 0 });
        assert!(day.contains(9 * 60) && day.contains(17 * 60 + 59));
        assert!(!day.contains(18 * 60) && !day.contains(8 * 60 + 59));
        let night = OfficeHours::parse("22:00-06:00").unwrap_or(OfficeHours { start_minute: 0, end_minute: 0 });
        assert!(night.contains(23 * 60) && night.contains(60) && !night.contains(12 * 60));
        for bad in ["", "9-18", "25:00-18:00", "09:00"] {
            assert_eq!(OfficeHours::parse(bad), None, "{bad}");
        }
    }
}
