//! `notion_query`: queries a Notion database (REST `POST
//! /v1/databases/{id}/query`) for tasks, status and priorities and returns
//! a concise Markdown table (title first, then the other properties).
//!
//! Invariant: every call goes through the `notion` service (breaker, time
//! limit, retries); the key is sent only as a bearer header.

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::resilience::{ExternalService, send_for_json};
use super::{ToolContext, ToolError, TypedTool};
use crate::llm::LlmError;

/// The Notion API version valor speaks.
pub const NOTION_VERSION: &str = "2022-06-28";
/// Most rows returned.
const MAX_ROWS: u32 = 50;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotionQueryInput {
    /// The Notion database id. Optional when the workspace has one configured.
    #[serde(default)]
    pub database_id: Option<String>,
    /// Only rows whose Status (or status-like select) equals this, e.g. "In progress".
    #[serde(default)]
    pub status: Option<String>,
    /// How many rows (1–50, default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct NotionConfig {
    /// e.g. `https://api.notion.com` (no trailing slash, no `/v1`).
    pub base_url: String,
    pub api_key: SecretString,
    /// Used when the call names no database (the only configured workspace database).
    pub default_database: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotionQuery {
    config: NotionConfig,
    client: reqwest::Client,
    service: ExternalService,
}

impl NotionQuery {
    pub fn new(config: NotionConfig, client: reqwest::Client, service: ExternalService) -> Self {
        Self { config, client, service }
    }

    fn request(&self, database: &str, limit: u32) -> reqwest::RequestBuilder {
        let url = format!("{}/v1/databases/{database}/query", self.config.base_url.trim_end_matches('/'));
        self.client
            .post(url)
            .bearer_auth(self.config.api_key.expose_secret())
            .header("Notion-Version", NOTION_VERSION)
            .json(&json!({"page_size": limit}))
    }
}

#[async_trait::async_trait]
impl TypedTool for NotionQuery {
    type Input = NotionQueryInput;
    const NAME: &'static str = "notion_query";
    const DESCRIPTION: &'static str = "List tasks from the workspace's Notion database with their status, \
        priority and dates, optionally only those with a given status.";

    async fn run(&self, _context: &ToolContext, input: NotionQueryInput) -> Result<String, ToolError> {
        let database = input
            .database_id
            .filter(|id| !id.trim().is_empty())
            .or_else(|| self.config.default_database.clone())
            .ok_or_else(|| ToolError::RespondToModel("database_id is required: no default Notion database".into()))?;
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ToolError::RespondToModel("database_id must be a Notion id (letters, digits, dashes)".into()));
        }
        let limit = input.limit.unwrap_or(20).clamp(1, MAX_ROWS);
        let body =
            self.service.call(|| async { send_for_json(self.request(&database, limit)).await.and_then(check) }).await?;
        Ok(render_table(&body, input.status.as_deref()))
    }
}

fn check(body: Value) -> Result<Value, LlmError> {
    if body.get("results").is_some_and(Value::is_array) {
        Ok(body)
    } else {
        Err(LlmError::InvalidResponse("no results array".into()))
    }
}

/// One property value as short text.
fn property_text(property: &Value) -> String {
    let kind = property.get("type").and_then(Value::as_str).unwrap_or_default();
    let value = &property[kind];
    let rich = |items: &Value| {
        items.as_array().map(|parts| parts.iter().filter_map(|p| p["plain_text"].as_str()).collect::<String>())
    };
    match kind {
        "title" | "rich_text" => rich(value).unwrap_or_default(),
        "status" | "select" => value["name"].as_str().unwrap_or_default().to_owned(),
        "multi_select" => value
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        "date" => value["start"].as_str().unwrap_or_default().to_owned(),
        "number" => value.as_f64().map(|n| n.to_string()).unwrap_or_default(),
        "checkbox" => if value.as_bool() == Some(true) { "yes" } else { "no" }.to_owned(),
        "people" => value
            .as_array()
            .map(|people| people.iter().filter_map(|p| p["name"].as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        "url" | "email" | "phone_number" => value.as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    }
    .replace('|', "/")
}

/// A Markdown table of the rows (title column first), filtered by status.
pub fn render_table(body: &Value, status: Option<&str>) -> String {
    let rows: Vec<&serde_json::Map<String, Value>> = body["results"]
        .as_array()
        .map(|results| results.iter().filter_map(|page| page["properties"].as_object()).collect())
        .unwrap_or_default();
    let Some(first) = rows.first() else { return "The database has no matching rows.".into() };
    let title = first.iter().find(|(_, p)| p["type"] == "title").map(|(name, _)| name.clone());
    let mut columns: Vec<String> = title.into_iter().collect();
    columns.extend(
        first
            .iter()
            .filter(|(_, p)| p["type"] == "status" || (p["type"] != "title" && !property_text(p).is_empty()))
            .map(|(name, _)| name.clone())
            .take(5),
    );
    let wanted = status.map(str::to_lowercase);
    let lines: Vec<String> = rows
        .iter()
        .filter(|row| match &wanted {
            None => true,
            Some(wanted) => row
                .values()
                .filter(|p| p["type"] == "status" || p["type"] == "select")
                .any(|p| property_text(p).to_lowercase() == *wanted),
        })
        .map(|row| {
            let cells: Vec<String> =
                columns.iter().map(|column| row.get(column).map(property_text).unwrap_or_default()).collect();
            format!("| {} |", cells.join(" | "))
        })
        .collect();
    if lines.is_empty() {
        return "The database has no matching rows.".into();
    }
    let header = format!("| {} |\n|{}", columns.join(" | "), " --- |".repeat(columns.len()));
    format!("{header}\n{}", lines.join("\n"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn page(title: &str, status: &str, priority: &str) -> Value {
        json!({"object": "page", "properties": {
            "Name": {"type": "title", "title": [{"plain_text": title}]},
            "Status": {"type": "status", "status": {"name": status}},
            "Priority": {"type": "select", "select": {"name": priority}}
        }})
    }

    #[test]
    fn rows_become_a_table_with_the_title_first_and_can_be_filtered_by_status() {
        let body = json!({"results": [page("Ship v2", "In progress", "High"), page("Write docs", "Done", "Low")]});
        assert_eq!(
            render_table(&body, None),
            "| Name | Priority | Status |\n| --- | --- | --- |\n| Ship v2 | High | In progress |\n| Write docs | Low | Done |"
        );
        assert_eq!(render_table(&body, Some("done")).lines().count(), 3);
        assert_eq!(render_table(&json!({"results": []}), None), "The database has no matching rows.");
    }
}
