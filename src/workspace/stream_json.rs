//! Claude Code's `--output-format stream-json` lines, parsed into what valor
//! shows: tool uses (with the files they touch), turns, retries and the final
//! result. Pure: lines in, events and a running [`RunSummary`] out. Unknown
//! line types are ignored, so a newer CLI adding events breaks nothing.

use std::collections::BTreeSet;

use serde_json::Value;

/// One line, as valor cares about it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaudeEvent {
    /// Sent by the runner (not parsed from output): the CLI process started with this pid.
    Spawned { pid: u32 },
    /// `system/init`: the session started (or resumed); `mcp_servers` is each
    /// MCP server's name and connection status as the CLI reports it.
    Init { session_id: String, mcp_servers: Vec<(String, String)> },
    /// An assistant message used a tool; `file` is the path it writes, if any.
    ToolUse { name: String, detail: Option<String>, file: Option<String> },
    /// Assistant text.
    Text(String),
    /// A piece of streamed assistant text (Gemini CLI); the pieces make up the answer.
    TextDelta(String),
    /// `system/api_retry`: the model API is being retried.
    ApiRetry { attempt: Option<u64> },
    /// The final `result` line.
    Result { is_error: bool, text: String, session_id: Option<String>, turns: u64, cost_usd: f64 },
}

/// Tools whose input names a file they change.
const WRITING_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// The events in one line (an assistant message may hold several tool uses).
pub fn parse_line(line: &str) -> Vec<ClaudeEvent> {
    let Ok(value) = serde_json::from_str::<Value>(line) else { return Vec::new() };
    let text_of = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    match (value.get("type").and_then(Value::as_str), value.get("subtype").and_then(Value::as_str)) {
        (Some("system"), Some("init")) => {
            let mcp_servers = value
                .get("mcp_servers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|server| {
                    let field = |key: &str| server.get(key).and_then(Value::as_str).map(str::to_owned);
                    Some((field("name")?, field("status").unwrap_or_default()))
                })
                .collect();
            text_of("session_id").map(|session_id| ClaudeEvent::Init { session_id, mcp_servers }).into_iter().collect()
        }
        (Some("system"), Some("api_retry")) => {
            vec![ClaudeEvent::ApiRetry { attempt: value.get("attempt").and_then(Value::as_u64) }]
        }
        (Some("assistant"), _) => assistant_events(&value),
        (Some("result"), _) => vec![ClaudeEvent::Result {
            is_error: value.get("is_error").and_then(Value::as_bool).unwrap_or(true),
            text: text_of("result").unwrap_or_default(),
            session_id: text_of("session_id"),
            turns: value.get("num_turns").and_then(Value::as_u64).unwrap_or(0),
            cost_usd: value.get("total_cost_usd").and_then(Value::as_f64).unwrap_or(0.0),
        }],
        _ => Vec::new(),
    }
}

fn assistant_events(value: &Value) -> Vec<ClaudeEvent> {
    let Some(blocks) = value.pointer("/message/content").and_then(Value::as_array) else { return Vec::new() };
    blocks
        .iter()
        .filter_map(|block| match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("tool").to_owned();
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                let path = ["file_path", "notebook_path", "path"]
                    .iter()
                    .find_map(|key| input.get(*key).and_then(Value::as_str))
                    .map(str::to_owned);
                let detail = input.get("description").or_else(|| input.get("command")).and_then(Value::as_str);
                let file = if WRITING_TOOLS.contains(&name.as_str()) { path.clone() } else { None };
                let detail = detail.map(|d| d.chars().take(80).collect()).or(path);
                Some(ClaudeEvent::ToolUse { name, detail, file })
            }
            Some("text") => block.get("text").and_then(Value::as_str).map(|text| ClaudeEvent::Text(text.to_owned())),
            _ => None,
        })
        .collect()
}

/// What a run did so far; the last state is the run's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub session_id: Option<String>,
    /// A `system/init` line arrived (the session really started or resumed).
    pub initialized: bool,
    /// MCP server → connection status, from the last `system/init`.
    pub mcp_status: std::collections::BTreeMap<String, String>,
    pub tool_uses: u32,
    pub files_touched: BTreeSet<String>,
    pub last_text: Option<String>,
    /// The streamed answer so far (from [`ClaudeEvent::TextDelta`]).
    pub streamed_text: String,
    pub turns: u64,
    pub cost_usd: f64,
    /// Set by the final `result` line: (is_error, text).
    pub result: Option<(bool, String)>,
}

impl RunSummary {
    pub fn apply(&mut self, event: &ClaudeEvent) {
        match event {
            ClaudeEvent::Init { session_id, mcp_servers } => {
                self.session_id = Some(session_id.clone());
                self.initialized = true;
                self.mcp_status = mcp_servers.iter().cloned().collect();
            }
            ClaudeEvent::ToolUse { file, .. } => {
                self.tool_uses += 1;
                if let Some(file) = file {
                    self.files_touched.insert(file.clone());
                }
            }
            ClaudeEvent::Text(text) => self.last_text = Some(text.clone()),
            ClaudeEvent::TextDelta(piece) => self.streamed_text.push_str(piece),
            ClaudeEvent::ApiRetry { .. } | ClaudeEvent::Spawned { .. } => {}
            ClaudeEvent::Result { is_error, text, session_id, turns, cost_usd } => {
                if session_id.is_some() {
                    self.session_id.clone_from(session_id);
                }
                self.turns = *turns;
                self.cost_usd = *cost_usd;
                // A CLI that streams its answer leaves the result line's text empty.
                let text = if text.is_empty() && !*is_error { self.streamed_text.clone() } else { text.clone() };
                self.result = Some((*is_error, text));
            }
        }
    }
}

/// The progress line for an event of `program`'s run, if it is worth showing.
pub fn progress_line(program: &str, event: &ClaudeEvent, summary: &RunSummary) -> Option<String> {
    match event {
        ClaudeEvent::Init { .. } => Some(format!("{program} started")),
        ClaudeEvent::ToolUse { name, detail, .. } => {
            let files = summary.files_touched.len();
            let detail = detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            Some(format!("step {} — {name}{detail} ({files} file(s) touched)", summary.tool_uses))
        }
        ClaudeEvent::ApiRetry { attempt } => {
            Some(format!("the model API is busy; retrying (attempt {})", attempt.unwrap_or(0)))
        }
        ClaudeEvent::Text(_) | ClaudeEvent::TextDelta(_) | ClaudeEvent::Result { .. } | ClaudeEvent::Spawned { .. } => {
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_line_type_becomes_its_event() {
        let cases: Vec<(&str, Vec<ClaudeEvent>)> = vec![
            (
                r#"{"type":"system","subtype":"init","session_id":"s1","tools":[],
                    "mcp_servers":[{"name":"valor","status":"connected"},{"name":"gh","status":"failed"}]}"#,
                vec![ClaudeEvent::Init {
                    session_id: "s1".into(),
                    mcp_servers: vec![("valor".into(), "connected".into()), ("gh".into(), "failed".into())],
                }],
            ),
            (
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Write","input":{"file_path":"/w/a.txt","content":"x"}},{"type":"text","text":"ok"}]}}"#,
                vec![
                    ClaudeEvent::ToolUse {
                        name: "Write".into(),
                        detail: Some("/w/a.txt".into()),
                        file: Some("/w/a.txt".into()),
                    },
                    ClaudeEvent::Text("ok".into()),
                ],
            ),
            (
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"cargo test","description":"run tests"}}]}}"#,
                vec![ClaudeEvent::ToolUse { name: "Bash".into(), detail: Some("run tests".into()), file: None }],
            ),
            (
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Read","input":{"file_path":"/w/b"}}]}}"#,
                vec![ClaudeEvent::ToolUse { name: "Read".into(), detail: Some("/w/b".into()), file: None }],
            ),
            (
                r#"{"type":"system","subtype":"api_retry","attempt":2}"#,
                vec![ClaudeEvent::ApiRetry { attempt: Some(2) }],
            ),
            (
                r#"{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1","num_turns":3,"total_cost_usd":0.25}"#,
                vec![ClaudeEvent::Result {
                    is_error: false,
                    text: "done".into(),
                    session_id: Some("s1".into()),
                    turns: 3,
                    cost_usd: 0.25,
                }],
            ),
            (r#"{"type":"user","message":{"content":[{"type":"tool_result"}]}}"#, vec![]),
            (r#"{"type":"system","subtype":"task_started"}"#, vec![]),
            ("not json", vec![]),
            ("", vec![]),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line), expected, "{line}");
        }
    }

    #[test]
    fn the_summary_counts_tools_files_and_keeps_the_result() {
        let mut summary = RunSummary::default();
        for line in [
            r#"{"type":"system","subtype":"init","session_id":"s1"}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Write","input":{"file_path":"/w/a"}}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Edit","input":{"file_path":"/w/a"}}]}}"#,
            r#"{"type":"result","is_error":false,"result":"all good","session_id":"s1","num_turns":2,"total_cost_usd":0.5}"#,
        ] {
            for event in parse_line(line) {
                summary.apply(&event);
            }
        }
        assert_eq!(summary.session_id.as_deref(), Some("s1"));
        assert!(summary.initialized);
        assert_eq!(summary.tool_uses, 2);
        assert_eq!(summary.files_touched.len(), 1);
        assert_eq!((summary.turns, summary.cost_usd), (2, 0.5));
        assert_eq!(summary.result, Some((false, "all good".into())));
    }

    #[test]
    fn a_result_without_is_error_counts_as_an_error() {
        let events = parse_line(r#"{"type":"result","result":"?"}"#);
        assert!(matches!(events.as_slice(), [ClaudeEvent::Result { is_error: true, .. }]));
    }
}
