//! `[resources]`: the resource monitor's high-water marks (turns beyond
//! `max_active_turns` queue; above the memory mark or with a full queue new
//! non-admin work is refused politely) and its sampling and cleanup periods.
//!
//! Invariant: every value is validated here, once; the monitor trusts them.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesSettings {
    /// Resident memory (MiB) above which new non-admin work is refused.
    pub max_rss_mb: u64,
    /// Turns running at once (all channels and jobs). A Telegram message
    /// beyond it waits for a slot in a queue (first come, first served).
    pub max_active_turns: usize,
    /// Telegram messages waiting for a turn slot at most; beyond it a
    /// non-admin's message is refused politely ("busy").
    pub max_queued_turns: usize,
    /// How often the monitor samples memory, CPU, turns and the queue (the last hour is kept).
    pub sample_interval_secs: u64,
    /// How often the periodic cleanup runs (temp files, finished jobs past retention).
    pub cleanup_interval_secs: u64,
    /// Files under `<data_dir>/tmp` older than this are deleted by the cleanup.
    pub temp_max_age_hours: u64,
}

impl Default for ResourcesSettings {
    fn default() -> Self {
        Self {
            max_rss_mb: 512,
            max_active_turns: 32,
            max_queued_turns: 1000,
            sample_interval_secs: 10,
            cleanup_interval_secs: 300,
            temp_max_age_hours: 24,
        }
    }
}

impl ResourcesSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("resources.max_rss_mb", self.max_rss_mb),
            ("resources.max_active_turns", self.max_active_turns as u64),
            ("resources.max_queued_turns", self.max_queued_turns as u64),
            ("resources.sample_interval_secs", self.sample_interval_secs),
            ("resources.cleanup_interval_secs", self.cleanup_interval_secs),
            ("resources.temp_max_age_hours", self.temp_max_age_hours),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("`{key}` must be at least 1")));
            }
        }
        Ok(())
    }
}
