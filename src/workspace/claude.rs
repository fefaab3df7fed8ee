//! Runs the Claude Code CLI once, non-interactively, in a workspace:
//! `claude --output-format stream-json --verbose [--mcp-config F --strict-mcp-config]
//! [--permission-prompt-tool T] [--resume S] -p -- <task>`
//! (argv only, no shell; `--` so a task starting with `-` is never an option).
//! The process itself — own process group, time limit, the group killed when
//! the run ends or its future is dropped — is `process::run_streaming`'s job.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Workspace;
pub use super::process::RunError;
use super::process::{ProcessSpec, run_streaming};
use super::stream_json::{ClaudeEvent, RunSummary, parse_line};

/// How runs are started (from `[claude]` settings).
#[derive(Debug, Clone)]
pub struct ClaudeRunConfig {
    pub bin: String,
    pub time_limit: Duration,
    /// `--permission-mode` (empty: the CLI's default).
    pub permission_mode: String,
    /// `--allowedTools` (empty: none added).
    pub allowed_tools: Vec<String>,
    /// The CLI's whole environment: valor's allow-listed base (`ChildEnv`)
    /// plus the configured `env` (nothing else of valor's is inherited).
    pub env: BTreeMap<String, String>,
    /// Between TERM and KILL when stopping the group.
    pub kill_grace: Duration,
    /// `--mcp-config FILE --strict-mcp-config`: this run's MCP servers only (see `mcp_config`).
    pub mcp_config: Option<std::path::PathBuf>,
    /// `--permission-prompt-tool`: the MCP tool that answers permission requests.
    pub permission_prompt_tool: Option<String>,
}

/// The argv after the program name.
pub fn arguments(config: &ClaudeRunConfig, task: &str, resume: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["--output-format", "stream-json", "--verbose"].map(str::to_owned).to_vec();
    if !config.permission_mode.is_empty() {
        args.extend(["--permission-mode".to_owned(), config.permission_mode.clone()]);
    }
    if !config.allowed_tools.is_empty() {
        args.push(format!("--allowedTools={}", config.allowed_tools.join(",")));
    }
    if let Some(file) = &config.mcp_config {
        args.extend(["--mcp-config".to_owned(), file.display().to_string(), "--strict-mcp-config".to_owned()]);
    }
    if let Some(tool) = &config.permission_prompt_tool {
        args.extend(["--permission-prompt-tool".to_owned(), tool.clone()]);
    }
    if let Some(session) = resume {
        args.extend(["--resume".to_owned(), session.to_owned()]);
    }
    args.extend(["-p".to_owned(), "--".to_owned(), task.to_owned()]);
    args
}

/// Run once; events are sent as parsed (a closed receiver only stops the sending).
pub async fn run_claude(
    config: &ClaudeRunConfig,
    workspace: &Workspace,
    task: &str,
    resume: Option<&str>,
    cancel: &CancellationToken,
    events: mpsc::Sender<ClaudeEvent>,
) -> Result<RunSummary, RunError> {
    let spec = ProcessSpec {
        program: "Claude Code",
        bin: &config.bin,
        args: arguments(config, task, resume),
        env: &config.env,
        time_limit: config.time_limit,
        kill_grace: config.kill_grace,
    };
    run_streaming(spec, workspace, parse_line, cancel, events).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> ClaudeRunConfig {
        ClaudeRunConfig {
            bin: "claude".into(),
            time_limit: Duration::from_secs(60),
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec!["Bash".into(), "Write".into()],
            env: BTreeMap::new(),
            kill_grace: Duration::from_secs(1),
            mcp_config: None,
            permission_prompt_tool: None,
        }
    }

    #[test]
    fn the_task_is_one_argument_after_a_double_dash() {
        let config = ClaudeRunConfig {
            mcp_config: Some("/data/tmp/mcp/1-x.json".into()),
            permission_prompt_tool: Some("mcp__valor__approve".into()),
            ..config()
        };
        let args = arguments(&config, "--dangerously-skip-permissions; rm -rf /", Some("s-1"));
        assert_eq!(
            args,
            [
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools=Bash,Write",
                "--mcp-config",
                "/data/tmp/mcp/1-x.json",
                "--strict-mcp-config",
                "--permission-prompt-tool",
                "mcp__valor__approve",
                "--resume",
                "s-1",
                "-p",
                "--",
                "--dangerously-skip-permissions; rm -rf /",
            ]
        );
    }

    #[test]
    fn empty_settings_add_no_flags() {
        let config = ClaudeRunConfig { permission_mode: String::new(), allowed_tools: Vec::new(), ..config() };
        assert_eq!(arguments(&config, "t", None), ["--output-format", "stream-json", "--verbose", "-p", "--", "t"]);
    }
}
