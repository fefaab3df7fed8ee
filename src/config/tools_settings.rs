//! The `[tools]` section: resilience limits for every external call a tool
//! makes, `read_link` limits, which tools non-admins may use and how much
//! they may spend.
//!
//! Invariant: the defaults are safe — tools with side effects (writing files,
//! starting work) are for admins unless `non_admin_tools` names them, and
//! paid tools stop for a non-admin chat at its daily spending limit.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsSettings {
    /// Longest one attempt of an external call may take (web search, Notion, images).
    pub request_timeout_secs: u64,
    /// Retries after the first attempt for transient failures (timeouts, 5xx, 429).
    pub max_retries: u32,
    /// First backoff delay between attempts; doubles per retry, capped at `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Consecutive failed calls after which a service's circuit breaker opens.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker refuses calls before one probe call is let through.
    pub breaker_cooldown_secs: u64,
    /// `read_link`: the largest page body read, in bytes.
    pub read_link_max_bytes: usize,
    /// `read_link`: the longest extract returned without summarising, in characters.
    pub read_link_max_chars: usize,
    /// Tool names non-admin users may use. Unset: every tool without side effects.
    pub non_admin_tools: Option<Vec<String>>,
    /// What a non-admin chat may spend on paid tools per UTC day, in US
    /// cents (by the tools' cost estimates); 0 = no paid tools for non-admins.
    pub non_admin_daily_spend_cents: u32,
}

impl Default for ToolsSettings {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            max_retries: 2,
            retry_base_ms: 300,
            retry_max_ms: 5_000,
            breaker_failure_threshold: 3,
            breaker_cooldown_secs: 30,
            read_link_max_bytes: 2 * 1024 * 1024,
            read_link_max_chars: 12_000,
            non_admin_tools: None,
            non_admin_daily_spend_cents: 100,
        }
    }
}

impl ToolsSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            ("tools.request_timeout_secs", self.request_timeout_secs == 0),
            ("tools.breaker_failure_threshold", self.breaker_failure_threshold == 0),
            ("tools.read_link_max_bytes", self.read_link_max_bytes < 1024),
            ("tools.read_link_max_chars", self.read_link_max_chars < 100),
        ];
        for (key, bad) in checks {
            if bad {
                return Err(ConfigError::Invalid(format!("`{key}` is too small")));
            }
        }
        Ok(())
    }
}

/// The `[mcp]` section: which `Host` and `Origin` headers the Streamable
/// HTTP endpoint `/mcp` accepts (DNS-rebinding protection).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Host names (optionally `host:port`) clients may use to reach `/mcp`.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (`scheme://host:port`, `:*` = any port).
    /// Requests without an `Origin` header (non-browser clients) are not affected.
    pub allowed_origins: Vec<String>,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
        }
    }
}
