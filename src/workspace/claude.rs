//! Runs the Claude Code CLI once, non-interactively, in a workspace:
//! `claude --output-format stream-json --verbose [--mcp-config F --strict-mcp-config]
//! [--permission-prompt-tool T] [--resume S] -p -- <task>`
//! (argv only, no shell; `--` so a task starting with `-` is never an option),
//! in its own process group, with a time limit. Parsed events go to the
//! caller as they arrive.
//!
//! Invariants: when the run ends — finished, cancelled or timed out — the
//! whole process group is killed (TERM, then KILL after a grace period), so
//! no `claude` process or a command it started outlives the run — also when
//! the run's future is dropped (a guard KILLs the group). The group
//! is signalled with the system `kill` command (argv only), which keeps this
//! crate free of `unsafe` and of extra process crates.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Workspace;
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
    /// Extra environment for the CLI (on top of valor's own).
    pub env: BTreeMap<String, String>,
    /// Between TERM and KILL when stopping the group.
    pub kill_grace: Duration,
    /// `--mcp-config FILE --strict-mcp-config`: this run's MCP servers only (see `mcp_config`).
    pub mcp_config: Option<std::path::PathBuf>,
    /// `--permission-prompt-tool`: the MCP tool that answers permission requests.
    pub permission_prompt_tool: Option<String>,
}

/// Why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Claude Code could not be started ({bin}): {reason}")]
    Spawn { bin: String, reason: String },
    #[error("the run was cancelled")]
    Cancelled(RunSummary),
    #[error("the run hit its time limit of {} s", .limit.as_secs())]
    TimedOut { limit: Duration, summary: RunSummary },
    #[error("Claude Code exited without a result ({status}): {stderr}")]
    NoResult { status: String, stderr: String, summary: RunSummary },
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
    let mut command = Command::new(&config.bin);
    command
        .args(arguments(config, task, resume))
        .current_dir(workspace.root())
        .envs(&config.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let spawn_error = |reason: String| RunError::Spawn { bin: config.bin.clone(), reason };
    let mut child = command.spawn().map_err(|error| spawn_error(error.to_string()))?;
    let Some(group) = child.id() else { return Err(spawn_error("it exited at once".into())) };
    // Should this future be dropped mid-run (its task aborted), the group is killed anyway.
    let mut guard = GroupGuard { group, armed: true };
    // The job records the pid, so the daydream can clean up after a hard crash.
    let _ = events.send(ClaudeEvent::Spawned { pid: group }).await;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(group, config.kill_grace, &mut child).await;
        return Err(spawn_error("its output could not be read".into()));
    };
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut summary = RunSummary::default();
    let deadline = tokio::time::sleep(config.time_limit);
    tokio::pin!(deadline);
    let stopped = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    for event in parse_line(&line) {
                        summary.apply(&event);
                        let _ = events.send(event).await;
                    }
                }
                Ok(None) | Err(_) => break None,
            },
            () = cancel.cancelled() => break Some(RunError::Cancelled(RunSummary::default())),
            () = &mut deadline => break Some(RunError::TimedOut { limit: config.time_limit, summary: RunSummary::default() }),
        }
    };
    kill_group(group, config.kill_grace, &mut child).await;
    guard.armed = false;
    let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|error| error.to_string());
    let stderr = tokio::time::timeout(Duration::from_secs(2), stderr_task).await.ok().and_then(Result::ok);
    match stopped {
        Some(RunError::Cancelled(_)) => Err(RunError::Cancelled(summary)),
        Some(RunError::TimedOut { limit, .. }) => Err(RunError::TimedOut { limit, summary }),
        Some(other) => Err(other),
        None if summary.result.is_some() => Ok(summary),
        None => {
            let stderr = stderr.unwrap_or_default();
            let tail: String = stderr.trim().chars().rev().take(500).collect::<Vec<_>>().into_iter().rev().collect();
            Err(RunError::NoResult { status, stderr: tail, summary })
        }
    }
}

/// Kills the process group when dropped while armed (a run whose future was dropped).
struct GroupGuard {
    group: u32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            // Synchronous and brief: `kill` returns at once. No TERM first: there is no time to wait.
            let targets = kill_targets(self.group, &descendants(self.group));
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .args(targets)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// TERM the group and every descendant, give them `grace` to exit, then KILL
/// whatever is left. Descendants are listed too because Claude Code starts its
/// Bash commands in process groups of their own; they are listed before the
/// TERM, as they are re-parented (and lose their ancestry) once the CLI exits.
async fn kill_group(group: u32, grace: Duration, child: &mut tokio::process::Child) {
    let mut known = descendants(group);
    signal("-TERM", &kill_targets(group, &known)).await;
    let _ = tokio::time::timeout(grace, child.wait()).await;
    known.extend(descendants(group));
    signal("-KILL", &kill_targets(group, &known)).await;
}

/// `kill` arguments: the group (negative) and each process.
fn kill_targets(group: u32, processes: &[u32]) -> Vec<String> {
    std::iter::once(format!("-{group}")).chain(processes.iter().map(u32::to_string)).collect()
}

/// Every live descendant of `root` (Linux `/proc`; empty elsewhere).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        index += 1;
    }
    found.remove(0);
    found
}

async fn signal(signal: &str, targets: &[String]) {
    let result = Command::new("kill")
        .arg(signal)
        .arg("--")
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::warn!("could not signal the Claude Code processes: {error}");
    }
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
    fn descendants_of_this_process_include_a_spawned_child() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert_eq!(kill_targets(7, &[8, 9]), ["-7", "8", "9"]);
    }

    #[test]
    fn empty_settings_add_no_flags() {
        let config = ClaudeRunConfig { permission_mode: String::new(), allowed_tools: Vec::new(), ..config() };
        assert_eq!(arguments(&config, "t", None), ["--output-format", "stream-json", "--verbose", "-p", "--", "t"]);
    }
}
