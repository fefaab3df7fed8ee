//! System prompt assembly: persona + where we are talking + the tools on
//! offer + the current date. Pure functions, so the prompt is testable.

use std::path::Path;

use crate::llm::ToolSpec;

/// The persona shipped in the binary.
pub const DEFAULT_PERSONA: &str = include_str!("persona.md");

/// Load the persona: the configured file if any, else the embedded default.
pub fn load_persona(file: Option<&Path>) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match file {
        None => Ok(DEFAULT_PERSONA.to_owned()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the persona file {} (agent.persona_file)", path.display()))?;
            anyhow::ensure!(!text.trim().is_empty(), "the persona file {} is empty", path.display());
            Ok(text)
        }
    }
}

/// Facts about the conversation that go into the system prompt.
#[derive(Debug, Clone, Default)]
pub struct PromptContext<'a> {
    /// "web", "api", "terminal", "telegram".
    pub channel: &'a str,
    pub conversation_title: &'a str,
    pub workspace: Option<&'a str>,
    /// Today's date, e.g. "Thursday, 26 November 2026".
    pub date: String,
    /// Capabilities configured but off here, and why.
    pub unavailable: &'a [(&'static str, String)],
}

pub fn system_prompt(persona: &str, context: &PromptContext<'_>, tools: &[ToolSpec]) -> String {
    let mut prompt = String::with_capacity(persona.len() + 512);
    prompt.push_str(persona.trim_end());
    prompt.push_str("\n\n## Context\n");
    prompt.push_str(&format!("- Today is {}.\n", context.date));
    prompt.push_str(&format!("- Channel: {}.\n", context.channel));
    prompt.push_str(&format!("- Conversation: {}.\n", context.conversation_title));
    match context.workspace {
        Some(name) => prompt.push_str(&format!("- Workspace: {name}.\n")),
        None => prompt.push_str("- No project workspace is linked to this chat.\n"),
    }
    if tools.is_empty() {
        prompt.push_str("\n## Tools\nNo tools are available in this turn.\n");
    } else {
        prompt.push_str("\n## Tools\n");
        for tool in tools {
            let summary = tool.description.split(". ").next().unwrap_or(&tool.description);
            prompt.push_str(&format!("- {}: {}\n", tool.name, summary.trim_end_matches('.')));
        }
    }
    if !context.unavailable.is_empty() {
        prompt.push_str(
            "\n## Unavailable here
If the user asks for one of these, say that it is unavailable and why; do not promise it.\n",
        );
        for (what, why) in context.unavailable {
            prompt.push_str(&format!("- {what}: {why}\n"));
        }
    }
    prompt
}

/// Today's date in the form the prompt uses.
pub fn today() -> String {
    chrono::Utc::now().format("%A, %-d %B %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "Search things. More detail.".into(),
            input_schema: serde_json::json!({}),
        }
    }

    #[test]
    fn prompt_contains_persona_date_channel_and_tools() {
        let context = PromptContext {
            channel: "web",
            conversation_title: "launch",
            workspace: None,
            date: "Thursday, 26 November 2026".into(),
            unavailable: &[],
        };
        let prompt = system_prompt(DEFAULT_PERSONA, &context, &[tool("search_history")]);
        assert!(prompt.starts_with("# Valor"));
        assert!(prompt.contains("Today is Thursday, 26 November 2026."));
        assert!(prompt.contains("Channel: web."));
        assert!(prompt.contains("- search_history: Search things\n"));
        assert!(prompt.contains("No project workspace"));
    }

    #[test]
    fn a_missing_persona_file_is_an_error_naming_the_file() {
        let error = load_persona(Some(Path::new("/nonexistent/persona.md"))).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("/nonexistent/persona.md")));
    }
}
