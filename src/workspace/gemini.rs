//! Runs the Gemini CLI (npm `@google/gemini-cli`) once, non-interactively,
//! in a workspace: `gemini -m MODEL --output-format stream-json
//! --approval-mode MODE --prompt=<task>` (argv only, no shell; the task is
//! glued to `--prompt=` so one starting with `-` is never an option). The
//! model is always explicit: left to choose, the CLI spends a long time
//! probing models first. The process — own group, time limit, group kill —
//! is `process::run_streaming`'s job, as for Claude Code.
//!
//! Its stream-json lines (`init`, `message`, `tool_use`, `tool_result`,
//! `error`, `result`) are parsed into the same events as Claude Code's, so
//! progress and results are reported the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Workspace;
use super::process::{ProcessSpec, RunError, run_streaming};
use super::stream_json::{ClaudeEvent, RunSummary};

/// How runs are started (from `[gemini]` settings; the model comes from the route).
#[derive(Debug, Clone)]
pub struct GeminiRunConfig {
    pub bin: String,
    pub time_limit: Duration,
    pub approval_mode: String,
    /// The CLI's whole environment: valor's allow-listed base (`ChildEnv`)
    /// plus the configured `env` (nothing else of valor's is inherited).
    pub env: BTreeMap<String, String>,
    pub kill_grace: Duration,
}

/// Tools whose `file_path` parameter names a file they change.
const WRITING_TOOLS: &[&str] = &["write_file", "replace", "edit"];

/// The argv after the program name.
pub fn arguments(config: &GeminiRunConfig, model: &str, task: &str) -> Vec<String> {
    vec![
        "-m".to_owned(),
        model.to_owned(),
        "--output-format".to_owned(),
        "stream-json".to_owned(),
        "--approval-mode".to_owned(),
        config.approval_mode.clone(),
        format!("--prompt={task}"),
    ]
}

/// The events in one stream-json line (unknown types are ignored).
pub fn parse_line(line: &str) -> Vec<ClaudeEvent> {
    let Ok(value) = serde_json::from_str::<Value>(line) else { return Vec::new() };
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    match value.get("type").and_then(Value::as_str) {
        Some("init") => text("session_id")
            .map(|session_id| ClaudeEvent::Init { session_id, mcp_servers: Vec::new() })
            .into_iter()
            .collect(),
        Some("message") if value.get("role").and_then(Value::as_str) == Some("assistant") => {
            text("content").map(ClaudeEvent::TextDelta).into_iter().collect()
        }
        Some("tool_use") => {
            let name = text("tool_name").unwrap_or_else(|| "tool".into());
            let parameters = value.get("parameters").cloned().unwrap_or(Value::Null);
            let path = ["file_path", "absolute_path", "dir_path", "path"]
                .iter()
                .find_map(|key| parameters.get(*key).and_then(Value::as_str))
                .map(str::to_owned);
            let file = if WRITING_TOOLS.contains(&name.as_str()) { path.clone() } else { None };
            let detail = parameters
                .get("description")
                .or_else(|| parameters.get("command"))
                .and_then(Value::as_str)
                .map(|detail| detail.chars().take(80).collect())
                .or(path);
            vec![ClaudeEvent::ToolUse { name, detail, file }]
        }
        Some("result") => {
            let is_error = value.get("status").and_then(Value::as_str) != Some("success");
            let error = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
            vec![ClaudeEvent::Result { is_error, text: error.to_owned(), session_id: None, turns: 0, cost_usd: 0.0 }]
        }
        _ => Vec::new(),
    }
}

/// Run once; events are sent as parsed.
pub async fn run_gemini(
    config: &GeminiRunConfig,
    workspace: &Workspace,
    model: &str,
    task: &str,
    cancel: &CancellationToken,
    events: mpsc::Sender<ClaudeEvent>,
) -> Result<RunSummary, RunError> {
    let spec = ProcessSpec {
        program: "Gemini CLI",
        bin: &config.bin,
        args: arguments(config, model, task),
        env: &config.env,
        time_limit: config.time_limit,
        kill_grace: config.kill_grace,
    };
    run_streaming(spec, workspace, parse_line, cancel, events).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GeminiRunConfig {
        GeminiRunConfig {
            bin: "gemini".into(),
            time_limit: Duration::from_secs(60),
            approval_mode: "auto_edit".into(),
            env: BTreeMap::new(),
            kill_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_task_is_glued_to_its_option_and_the_model_is_explicit() {
        assert_eq!(
            arguments(&config(), "gemini-2.5-flash", "--yolo; rm -rf /"),
            [
                "-m",
                "gemini-2.5-flash",
                "--output-format",
                "stream-json",
                "--approval-mode",
                "auto_edit",
                "--prompt=--yolo; rm -rf /"
            ]
        );
    }

    #[test]
    fn stream_json_lines_become_events_and_fold_into_a_summary() {
        let lines = [
            r#"{"type":"init","timestamp":"t","session_id":"s-1","model":"gemini-2.5-flash"}"#,
            r#"{"type":"message","role":"user","content":"Create hello.txt"}"#,
            r#"{"type":"tool_use","tool_name":"write_file","tool_id":"w1","parameters":{"file_path":"/w/hello.txt","content":"hi"}}"#,
            r#"{"type":"tool_use","tool_name":"run_shell_command","tool_id":"r1","parameters":{"command":"make test"}}"#,
            r#"{"type":"tool_result","tool_id":"w1","status":"success"}"#,
            r#"{"type":"message","role":"assistant","content":"Created ","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"hello.txt.","delta":true}"#,
            "not json",
            r#"{"type":"result","status":"success","stats":{"tool_calls":2}}"#,
        ];
        let mut summary = RunSummary::default();
        let events: Vec<ClaudeEvent> = lines.iter().flat_map(|line| parse_line(line)).collect();
        for event in &events {
            summary.apply(event);
        }
        assert_eq!(events[0], ClaudeEvent::Init { session_id: "s-1".into(), mcp_servers: Vec::new() });
        assert_eq!(
            events[1],
            ClaudeEvent::ToolUse {
                name: "write_file".into(),
                detail: Some("/w/hello.txt".into()),
                file: Some("/w/hello.txt".into())
            }
        );
        assert_eq!(
            events[2],
            ClaudeEvent::ToolUse { name: "run_shell_command".into(), detail: Some("make test".into()), file: None }
        );
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(summary.session_id.as_deref(), Some("s-1"));
        assert_eq!(summary.tool_uses, 2);
        assert_eq!(summary.result, Some((false, "Created hello.txt.".into())));
    }

    #[test]
    fn an_error_result_carries_its_message() {
        let line =
            r#"{"type":"result","status":"error","error":{"type":"FatalAuthenticationError","message":"no key"}}"#;
        let mut summary = RunSummary::default();
        for event in parse_line(line) {
            summary.apply(&event);
        }
        assert_eq!(summary.result, Some((true, "no key".into())));
    }
}
