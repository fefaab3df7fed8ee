//! Runs one coding-CLI process (Claude Code, Gemini CLI) to completion:
//! argv only (no shell), in the workspace root, in its own process group,
//! with a time limit; stdout is read line by line, each line parsed by the
//! executor's parser into [`ClaudeEvent`]s that go to the caller as they
//! arrive, and folded into the run's [`RunSummary`].
//!
//! Invariants: when the run ends — finished, cancelled or timed out — the
//! whole process group is killed (TERM, then KILL after a grace period), so
//! no CLI process or a command it started outlives the run — also when the
//! run's future is dropped (a guard KILLs the group). The group is signalled
//! with the system `kill` command (argv only), which keeps this crate free of
//! `unsafe` and of extra process crates.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Workspace;
use super::stream_json::{ClaudeEvent, RunSummary};

/// Why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{program} could not be started ({bin}): {reason} — {}", install_hint(.program))]
    Spawn { program: &'static str, bin: String, reason: String },
    #[error("the run was cancelled")]
    Cancelled(RunSummary),
    #[error("the run hit its time limit of {} s", .limit.as_secs())]
    TimedOut { limit: Duration, summary: RunSummary },
    #[error("{program} exited without a result ({status}): {stderr}")]
    NoResult { program: &'static str, status: String, stderr: String, summary: RunSummary },
}

/// How the owner makes `program` startable (shown in the job, the chat and the log).
fn install_hint(program: &str) -> &'static str {
    match program {
        "Claude Code" => {
            "install Claude Code (npm install -g @anthropic-ai/claude-code) or set VALOR_CLAUDE_BIN (`[claude] bin`) to its path"
        }
        "Gemini CLI" => "install the Gemini CLI (npm install -g @google/gemini-cli) or set `[gemini] bin` to its path",
        _ => "check that the program is installed and its configured path is right",
    }
}

/// One process to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec<'a> {
    /// For messages: "Claude Code", "Gemini CLI".
    pub program: &'static str,
    pub bin: &'a str,
    pub args: Vec<String>,
    /// The whole environment (nothing of valor's own is inherited).
    pub env: &'a BTreeMap<String, String>,
    pub time_limit: Duration,
    /// Between TERM and KILL when stopping the group.
    pub kill_grace: Duration,
}

/// Run once; events are sent as parsed (a closed receiver only stops the sending).
pub async fn run_streaming(
    spec: ProcessSpec<'_>,
    workspace: &Workspace,
    parse: fn(&str) -> Vec<ClaudeEvent>,
    cancel: &CancellationToken,
    events: mpsc::Sender<ClaudeEvent>,
) -> Result<RunSummary, RunError> {
    let mut command = super::child::command(spec.bin, spec.env);
    command
        .args(&spec.args)
        .current_dir(workspace.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let spawn_error = |reason: String| RunError::Spawn { program: spec.program, bin: spec.bin.to_owned(), reason };
    let mut child = command.spawn().map_err(|error| spawn_error(error.to_string()))?;
    let Some(group) = child.id() else { return Err(spawn_error("it exited at once".into())) };
    // Should this future be dropped mid-run (its task aborted), the group is killed anyway.
    let mut guard = GroupGuard { group, armed: true };
    // The job records the pid, so the next start (or the daydream) can stop the group after a hard crash.
    let _ = events.send(ClaudeEvent::Spawned { pid: group }).await;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        stop_child_group(group, spec.kill_grace, &mut child).await;
        return Err(spawn_error("its output could not be read".into()));
    };
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut summary = RunSummary::default();
    let deadline = tokio::time::sleep(spec.time_limit);
    tokio::pin!(deadline);
    let stopped = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    for event in parse(&line) {
                        summary.apply(&event);
                        let _ = events.send(event).await;
                    }
                }
                Ok(None) | Err(_) => break None,
            },
            () = cancel.cancelled() => break Some(RunError::Cancelled(RunSummary::default())),
            () = &mut deadline => break Some(RunError::TimedOut { limit: spec.time_limit, summary: RunSummary::default() }),
        }
    };
    stop_child_group(group, spec.kill_grace, &mut child).await;
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
            Err(RunError::NoResult { program: spec.program, status, stderr: tail, summary })
        }
    }
}

/// Between TERM and KILL when stopping a run's group (also a left-over one).
pub const KILL_GRACE: Duration = Duration::from_secs(3);

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
            let _ = super::child::kill_blocking()
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
pub(super) async fn stop_child_group(group: u32, grace: Duration, child: &mut tokio::process::Child) {
    stop_group(group, grace, async {
        let _ = child.wait().await;
    })
    .await;
}

/// [`stop_child_group`] for a group valor holds no handle to (a child of a valor
/// killed hard): the grace ends early once its leader is gone.
pub(super) async fn stop_orphan_group(group: u32, grace: Duration) {
    stop_group(group, grace, async {
        while super::orphans::ProcessIdentity::of(i64::from(group)).is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

async fn stop_group(group: u32, grace: Duration, exited: impl std::future::Future<Output = ()>) {
    let mut known = descendants(group);
    signal("-TERM", &kill_targets(group, &known)).await;
    let _ = tokio::time::timeout(grace, exited).await;
    known.extend(descendants(group));
    signal("-KILL", &kill_targets(group, &known)).await;
}

/// `kill` arguments: the group (negative), its leader (also when it leads no group of its own) and each process.
fn kill_targets(group: u32, processes: &[u32]) -> Vec<String> {
    [format!("-{group}"), group.to_string()].into_iter().chain(processes.iter().map(u32::to_string)).collect()
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
    let result = super::child::kill()
        .arg(signal)
        .arg("--")
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::warn!("could not signal the CLI's processes: {error}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn descendants_of_this_process_include_a_spawned_child() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert_eq!(kill_targets(7, &[8, 9]), ["-7", "7", "8", "9"]);
    }
}
