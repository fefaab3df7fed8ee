//! Observability: tracing subscriber setup (text or JSON, to stderr) and the
//! Prometheus metrics recorder, `ComponentStatus`, circuit breakers, the
//! resource monitor (`resources.rs`) and the health score (`health_score.rs`).
//!
//! Invariant: logs go to stderr (stdout belongs to `valor chat` and
//! `valor mcp`), except in `valor chat`, whose terminal is the conversation:
//! there they go to a file (`init_tracing_to_file`) or nowhere; secrets are
//! never logged (settings hold them as `SecretString`).

pub mod allocator;
pub mod breaker;
pub mod health_score;
pub mod resources;

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, LogSettings};

/// `log.level` as a filter. The MCP SDK (rmcp) logs every session at info
/// (a server's whole instructions text among it), so it is held at warn
/// unless the level names `rmcp` itself.
fn log_filter(level: &str) -> Targets {
    let filter = level.parse::<Targets>().unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    if level.contains("rmcp") { filter } else { filter.with_target("rmcp", tracing::Level::WARN) }
}

/// Install the global tracing subscriber, filtered by `log.level` (a
/// `target=level` list, which `RUST_LOG` sets when present; `config`
/// validated it). Safe to call more than once (later calls are ignored).
pub fn init_tracing(settings: &LogSettings) {
    let filter = log_filter(&settings.level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
}

/// A log file grown past this at start is moved aside to `<name>.1`
/// (replacing the one before), so the file and its predecessor stay bounded.
pub const LOG_FILE_ROTATE_BYTES: u64 = 8 * 1024 * 1024;

/// Install the global tracing subscriber writing to `path` (appended; its
/// directory created; moved aside first when larger than
/// `LOG_FILE_ROTATE_BYTES`), filtered and formatted as `init_tracing`, without
/// colours. On an error nothing is installed: the caller says logs are off.
pub fn init_tracing_to_file(settings: &LogSettings, path: &std::path::Path) -> std::io::Result<()> {
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)?;
    }
    if std::fs::metadata(path).is_ok_and(|meta| meta.len() > LOG_FILE_ROTATE_BYTES) {
        let mut previous = path.as_os_str().to_owned();
        previous.push(".1");
        std::fs::rename(path, previous)?;
    }
    let file = std::sync::Arc::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?);
    let filter = log_filter(&settings.level);
    let layer = tracing_subscriber::fmt::layer().with_writer(file).with_target(false).with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    Ok(())
}

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
/// `None` if another recorder was installed first.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    METRICS.get_or_init(|| PrometheusBuilder::new().install_recorder().ok()).clone()
}

/// Fold the histogram values recorded since the last call into their
/// summaries. The recorder keeps every raw value (one per turn, per job)
/// until this runs or `/metrics` is scraped, so without it an unscraped
/// valor grows by ~8 bytes per turn forever. The housekeeping sampler calls
/// it every `resources.sample_interval_secs`.
pub fn metrics_upkeep() {
    if let Some(handle) = METRICS.get().and_then(Option::as_ref) {
        handle.run_upkeep();
    }
}

/// Whether one part of valor is running, and why not if it is off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentStatus {
    pub name: &'static str,
    pub on: bool,
    /// What it uses when on ("anthropic claude-sonnet-4-5"), or how to turn it on.
    pub detail: String,
}

/// The component lines as they are now, shared by `/health`, `/api/status`
/// and housekeeping; a part that comes up late (Telegram after an outage)
/// replaces its line. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveComponents(std::sync::Arc<std::sync::RwLock<Vec<ComponentStatus>>>);

impl LiveComponents {
    pub fn new(components: Vec<ComponentStatus>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(components)))
    }

    pub fn snapshot(&self) -> Vec<ComponentStatus> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replace the line of `status.name` (or add it).
    pub fn set(&self, status: ComponentStatus) {
        let mut components = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match components.iter_mut().find(|component| component.name == status.name) {
            Some(slot) => *slot = status,
            None => components.push(status),
        }
    }
}

impl ComponentStatus {
    pub fn on(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, on: true, detail: detail.into() }
    }

    pub fn off(name: &'static str, why: impl Into<String>) -> Self {
        Self { name, on: false, detail: why.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_sdk_is_held_at_warn_unless_the_level_names_it() {
        use tracing::Level;
        let filter = log_filter("info");
        assert!(filter.would_enable("valor::agent", &Level::INFO));
        assert!(!filter.would_enable("rmcp::service", &Level::INFO));
        assert!(filter.would_enable("rmcp::service", &Level::WARN));
        assert!(log_filter("info,rmcp=debug").would_enable("rmcp::service", &Level::DEBUG));
    }
}
