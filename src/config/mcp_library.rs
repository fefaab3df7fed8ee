//! `[[mcp_server]]`: the MCP library — servers a Claude Code run may be
//! given and valor's own agent may use in the chat (a command to start, or a
//! URL), the credentials each needs and the task kinds it serves. Which of
//! them a run gets is decided per run by `workspace::mcp_config`; which the
//! chat gets, per turn, by the same rule (`agent::tools::mcp`), with
//! `[mcp_client]` bounding how the chat uses them.
//!
//! Credentials are named, not written here: `credentials = ["GITHUB_TOKEN"]`
//! is looked up in valor's environment when settings load (only `config`
//! reads the environment) and kept as secrets; a server whose credentials
//! are missing is left out of every run.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{ConfigError, EnvSource};

/// The name valor's own server has in every run's MCP config.
pub const VALOR_SERVER_NAME: &str = "valor";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSettings {
    /// The server's name in the run's config (Claude Code calls its tools `mcp__NAME__TOOL`).
    pub name: String,
    /// Start the server with this program (stdio), argv only…
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// …or reach it at this http(s) URL (Streamable HTTP).
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variables the server needs (e.g. `GITHUB_TOKEN`), read from valor's environment.
    /// A command server gets them in its environment.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Fixed, non-secret environment for a command server.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// HTTP headers for a URL server; `${NAME}` is replaced by credential NAME.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Task kinds it serves (e.g. `["github", "review"]`); empty: every task.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Offered to valor's own agent in the chat too (not only to Claude Code runs).
    #[serde(default = "yes")]
    pub chat: bool,
    /// Tools of this server known to change nothing (beside those the server
    /// itself annotates `readOnlyHint`); every other tool counts as having
    /// side effects (admin-only by default).
    #[serde(default)]
    pub read_only: Vec<String>,
    /// The credentials found when settings were loaded (not a key).
    #[serde(skip)]
    pub credential_values: BTreeMap<String, SecretString>,
}

fn yes() -> bool {
    true
}

impl McpServerSettings {
    /// The names in `credentials` that were not found in the environment.
    pub fn missing_credentials(&self) -> Vec<&str> {
        self.credentials.iter().filter(|name| !self.credential_values.contains_key(*name)).map(String::as_str).collect()
    }

    /// A URL server's headers with every `${NAME}` replaced by its credential.
    pub fn resolved_headers(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .map(|(key, template)| {
                let mut value = template.clone();
                for name in &self.credentials {
                    let secret = self.credential_values.get(name).map(|v| v.expose_secret().to_owned());
                    value = value.replace(&format!("${{{name}}}"), &secret.unwrap_or_default());
                }
                (key.clone(), value)
            })
            .collect()
    }

    /// What a command server adds to a child's environment: `env` and the credentials.
    pub fn server_env(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        for name in &self.credentials {
            let secret = self.credential_values.get(name).map(|v| v.expose_secret().to_owned());
            env.insert(name.clone(), secret.unwrap_or_default());
        }
        env
    }

    /// Look each named credential up in the environment.
    pub fn resolve_credentials(&mut self, env: &EnvSource) {
        for name in &self.credentials {
            if let Some(value) = env.get(name) {
                self.credential_values.insert(name.clone(), SecretString::from(value.to_owned()));
            }
        }
    }
}

/// `[mcp_client]`: how valor's own agent uses the library's servers in the chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpClientSettings {
    /// At most this many MCP tools are offered in one turn (the tool list the model sees stays small).
    pub max_tools_per_turn: usize,
    /// How long a server may take to start and list its tools.
    pub start_timeout_secs: u64,
    /// A server unused this long is stopped (started again on the next use).
    pub idle_secs: u64,
    /// Longest tool result handed to the model, in characters (the rest is cut, and said so).
    pub max_result_chars: usize,
}

impl Default for McpClientSettings {
    fn default() -> Self {
        Self { max_tools_per_turn: 12, start_timeout_secs: 20, idle_secs: 600, max_result_chars: 20_000 }
    }
}

impl McpClientSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("mcp_client.start_timeout_secs", self.start_timeout_secs),
            ("mcp_client.idle_secs", self.idle_secs),
            ("mcp_client.max_result_chars", self.max_result_chars as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

pub(super) fn validate_mcp_servers(servers: &[McpServerSettings]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (index, server) in servers.iter().enumerate() {
        let key = |field: &str| format!("mcp_server[{index}].{field}");
        let name_ok =
            !server.name.is_empty() && server.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(invalid(&key("name"), "must be letters, digits, _ or - (it becomes part of tool names)"));
        }
        if server.name == VALOR_SERVER_NAME {
            return Err(invalid(&key("name"), "\"valor\" is valor's own server, which every run gets"));
        }
        if !names.insert(server.name.as_str()) {
            return Err(invalid(&key("name"), "is used by two MCP servers"));
        }
        match (&server.command, &server.url) {
            (Some(command), None) if !command.trim().is_empty() => {}
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {}
            (None, Some(_)) => return Err(invalid(&key("url"), "must be an http:// or https:// URL")),
            _ => return Err(invalid(&key("command"), "needs exactly one of `command` or `url`")),
        }
        for header in server.headers.values() {
            let mut rest = header.as_str();
            while let Some(start) = rest.find("${") {
                let Some(end) = rest[start..].find('}') else { break };
                let name = &rest[start + 2..start + end];
                if !server.credentials.iter().any(|credential| credential == name) {
                    return Err(invalid(&key("headers"), &format!("uses ${{{name}}}, which is not in `credentials`")));
                }
                rest = &rest[start + end..];
            }
        }
    }
    Ok(())
}

fn invalid(key: &str, why: &str) -> ConfigError {
    ConfigError::Invalid(format!("`{key}` {why}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::from_toml_str;

    #[test]
    fn a_catalog_entry_loads_and_mistakes_name_their_key() {
        let settings = from_toml_str(
            "[[mcp_server]]\nname = \"github\"\ncommand = \"github-mcp\"\nargs = [\"stdio\"]\n\
             credentials = [\"GITHUB_TOKEN\"]\nkinds = [\"github\"]\n",
        )
        .unwrap();
        assert_eq!(settings.mcp_servers[0].name, "github");
        assert_eq!(settings.mcp_servers[0].credentials, ["GITHUB_TOKEN"]);
        for (toml, key) in [
            ("name = \"a\"\n", "mcp_server[0].command"),
            ("name = \"a\"\ncommand = \"x\"\nurl = \"http://h\"\n", "mcp_server[0].command"),
            ("name = \"a\"\nurl = \"ftp://h\"\n", "mcp_server[0].url"),
            ("name = \"valor\"\ncommand = \"x\"\n", "mcp_server[0].name"),
            ("name = \"a b\"\ncommand = \"x\"\n", "mcp_server[0].name"),
            ("name = \"a\"\nurl = \"https://h\"\nheaders = { Authorization = \"Bearer ${T}\" }\n", "headers"),
        ] {
            let error = from_toml_str(&format!("[[mcp_server]]\n{toml}")).unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
    }
}
