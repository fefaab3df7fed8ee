//! Typed settings: compiled-in defaults, then an optional `valor.toml`, then
//! `VALOR__SECTION__KEY` variables, then the contract environment names of
//! PRODUCT.md §12 (`VALOR_DATA_DIR`, `ANTHROPIC_API_KEY`, …).
//!
//! Invariants: this is the only module that reads the process environment
//! (through [`EnvSource`]); unknown keys and invalid values are errors that
//! name the key; secrets are [`SecretString`] and never printed.

mod child_env;
mod daydream_settings;
mod env;
mod errors;
mod executor_settings;
mod mcp_library;
mod resources_settings;
mod secrets;
mod settings;
mod tools_settings;

pub use child_env::ChildEnv;
pub use daydream_settings::{DaydreamSettings, OfficeHours};
pub use env::EnvSource;
pub use executor_settings::{GeminiSettings, RoutingSettings};
pub use mcp_library::{McpClientSettings, McpServerSettings, VALOR_SERVER_NAME};
pub use resources_settings::ResourcesSettings;
pub use settings::*;
pub use tools_settings::{McpSettings, ToolsSettings};

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};

/// A configuration problem, always naming the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Where settings come from. `config_path` is `--config` if given.
pub fn load(config_path: Option<&Path>, env: &EnvSource) -> Result<Settings, ConfigError> {
    let explicit = config_path.map(Path::to_path_buf).or_else(|| env.get("VALOR_CONFIG").map(PathBuf::from));
    let file = match explicit {
        Some(path) if !path.exists() => return Err(ConfigError::MissingFile { path }),
        Some(path) => Some(path),
        None => Some(PathBuf::from("valor.toml")).filter(|p| p.exists()),
    };
    let mut figment = Figment::new();
    if let Some(path) = &file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = env::merge_environment(figment, env)?;
    let mut settings: Settings =
        figment.extract().map_err(|error| errors::describe(error, &env::keys_from_environment(env)))?;
    settings.source_file = file;
    settings.child_env = env.child_env();
    for server in &mut settings.mcp_servers {
        server.resolve_credentials(env);
    }
    secrets::tidy(&mut settings)?;
    settings.validate()?;
    Ok(settings)
}

/// Parse settings from TOML text alone (no environment); used by tests and `valor doctor`.
pub fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
    let mut settings: Settings = Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|error| errors::describe(error, &Default::default()))?;
    secrets::tidy(&mut settings)?;
    settings.validate()?;
    Ok(settings)
}
