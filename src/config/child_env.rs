//! The environment valor's child processes start from (Claude Code, the
//! Gemini CLI, git): an allow-list of what valor's own environment holds —
//! the search path, home, user, locale, temp dir, proxies and CA bundles —
//! and nothing else. valor's secrets (`ANTHROPIC_API_KEY`,
//! `TELEGRAM_BOT_TOKEN`, `VALOR_API_TOKENS`, every `VALOR_*`) never reach a
//! child; what a CLI needs beyond the base is named in its settings
//! (`[claude] env`, `[gemini] env`).

use std::collections::BTreeMap;

use super::EnvSource;

/// Variables a child inherits when valor has them (besides `LC_*`).
const CHILD_INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// The allow-listed part of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnv {
    vars: BTreeMap<String, String>,
}

impl Default for ChildEnv {
    /// From the real process environment (settings built without [`super::load`]).
    fn default() -> Self {
        EnvSource::from_process().child_env()
    }
}

impl ChildEnv {
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The base with `extra` on top (a configured value wins): a CLI's whole environment.
    pub fn with(&self, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut all = self.vars.clone();
        all.extend(extra.iter().map(|(key, value)| (key.clone(), value.clone())));
        all
    }
}

fn inherited(name: &str) -> bool {
    CHILD_INHERITED.contains(&name) || name.starts_with("LC_")
}

impl EnvSource {
    /// What of this environment a child process may inherit.
    pub fn child_env(&self) -> ChildEnv {
        ChildEnv { vars: self.vars().filter(|(name, _)| inherited(name)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_variables_are_inherited() {
        let env = EnvSource::from_pairs([
            ("PATH", "/usr/bin"),
            ("HOME", "/home/v"),
            ("LC_ALL", "C.UTF-8"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("VALOR_API_TOKENS", "tok"),
            ("VALOR__SERVER__ADDR", "0.0.0.0:1"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
        ]);
        let child = env.child_env();
        let names: Vec<&str> = child.vars().keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LC_ALL", "PATH"]);
        let extra = BTreeMap::from([("HOME".to_owned(), "/run/home".to_owned()), ("X".to_owned(), "1".to_owned())]);
        let all = env.child_env().with(&extra);
        assert_eq!(all["HOME"], "/run/home", "a configured value wins");
        assert_eq!(all.len(), 4);
    }
}
