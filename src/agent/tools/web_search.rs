//! `web_search`: asks Perplexity's chat API (OpenAI-compatible
//! `POST {base}/chat/completions`) and returns its answer followed by the
//! sources it cites (`search_results` with titles, else bare `citations`).
//!
//! Invariant: every call goes through the `web_search` service (breaker,
//! time limit, retries); the key is sent only as a bearer header and never
//! appears in a result.

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::resilience::{ExternalService, send_for_json};
use super::{ToolContext, ToolError, TypedTool};
use crate::llm::LlmError;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebSearchInput {
    /// What to look up on the web, as a full question or keywords.
    pub query: String,
}

/// Where Perplexity is and which model answers.
#[derive(Debug, Clone)]
pub struct WebSearchConfig {
    /// Base URL without trailing slash, e.g. `https://api.perplexity.ai`.
    pub base_url: String,
    pub api_key: SecretString,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct WebSearch {
    config: WebSearchConfig,
    client: reqwest::Client,
    service: ExternalService,
}

impl WebSearch {
    pub fn new(config: WebSearchConfig, client: reqwest::Client, service: ExternalService) -> Self {
        Self { config, client, service }
    }

    fn request(&self, query: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        self.client.post(url).bearer_auth(self.config.api_key.expose_secret()).json(&json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": "Answer concisely and factually, citing your sources."},
                {"role": "user", "content": query}
            ]
        }))
    }
}

#[async_trait::async_trait]
impl TypedTool for WebSearch {
    type Input = WebSearchInput;
    const NAME: &'static str = "web_search";
    const DESCRIPTION: &'static str = "Search the web for current information and get a short answer with its \
        sources. Use it for news, prices, releases, documentation or anything that may have changed recently.";

    /// One Perplexity request with its tokens.
    fn cost_microusd(&self) -> u64 {
        6_000
    }

    async fn run(&self, _context: &ToolContext, input: WebSearchInput) -> Result<String, ToolError> {
        let query = input.query.trim();
        if query.is_empty() {
            return Err(ToolError::RespondToModel("query must not be empty".into()));
        }
        self.service.call(|| async { send_for_json(self.request(query)).await.and_then(|body| render(&body)) }).await
    }
}

/// The answer text plus a numbered source list, from a Perplexity response body.
pub fn render(body: &Value) -> Result<String, LlmError> {
    let answer = body
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::InvalidResponse("no choices[0].message.content".into()))?
        .trim();
    let mut sources: Vec<String> = Vec::new();
    if let Some(results) = body.get("search_results").and_then(Value::as_array) {
        for result in results {
            let Some(url) = result.get("url").and_then(Value::as_str) else { continue };
            match result.get("title").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
                Some(title) => sources.push(format!("{} — {url}", title.trim())),
                None => sources.push(url.to_owned()),
            }
        }
    }
    if sources.is_empty()
        && let Some(citations) = body.get("citations").and_then(Value::as_array)
    {
        sources.extend(citations.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if sources.is_empty() {
        return Ok(answer.to_owned());
    }
    let list: Vec<String> = sources.iter().enumerate().map(|(i, source)| format!("[{}] {source}", i + 1)).collect();
    Ok(format!("{answer}\n\nSources:\n{}", list.join("\n")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn search_results_with_titles_become_a_numbered_source_list() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": "Rust 1.95 is out. [1]"}}],
            "citations": ["https://blog.rust-lang.org/a"],
            "search_results": [{"title": "Announcing Rust 1.95", "url": "https://blog.rust-lang.org/a"},
                               {"url": "https://example.org/b"}]
        });
        assert_eq!(
            render(&body).unwrap(),
            "Rust 1.95 is out. [1]\n\nSources:\n[1] Announcing Rust 1.95 — https://blog.rust-lang.org/a\n[2] https://example.org/b"
        );
    }

    #[test]
    fn bare_citations_are_used_when_there_are_no_search_results() {
        let body = json!({"choices": [{"message": {"content": "Yes."}}], "citations": ["https://a.example"]});
        assert_eq!(render(&body).unwrap(), "Yes.\n\nSources:\n[1] https://a.example");
    }

    #[test]
    fn an_answer_without_sources_is_returned_as_is_and_a_missing_answer_is_invalid() {
        assert_eq!(render(&json!({"choices": [{"message": {"content": " Plain. "}}]})).unwrap(), "Plain.");
        assert!(matches!(render(&json!({"id": "x"})), Err(LlmError::InvalidResponse(_))));
    }
}
