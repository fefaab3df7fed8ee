//! Intent recognition and model routing. A cheap classifier labels each
//! message — Ollama when configured, else the main provider's small tier,
//! else (and whenever those fail or time out) a deterministic word rule —
//! and the configured route map turns the label into a model tier.
//!
//! Invariant: classification never fails and never blocks a turn for longer
//! than the configured time limit; the label is a hint, not a gate.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{IntentRoutes, Tier};
use crate::llm::ollama::OllamaClient;
use crate::llm::{ChatModel, ChatRequest, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentLabel {
    Chat,
    Question,
    Search,
    Image,
    CodeTask,
    ProjectManagement,
    Admin,
}

impl IntentLabel {
    pub const ALL: [IntentLabel; 7] = [
        IntentLabel::Chat,
        IntentLabel::Question,
        IntentLabel::Search,
        IntentLabel::Image,
        IntentLabel::CodeTask,
        IntentLabel::ProjectManagement,
        IntentLabel::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntentLabel::Chat => "chat",
            IntentLabel::Question => "question",
            IntentLabel::Search => "search",
            IntentLabel::Image => "image",
            IntentLabel::CodeTask => "code_task",
            IntentLabel::ProjectManagement => "project_management",
            IntentLabel::Admin => "admin",
        }
    }

    /// The tier the configuration routes this label to.
    pub fn tier(self, routes: &IntentRoutes) -> Tier {
        match self {
            IntentLabel::Chat => routes.chat,
            IntentLabel::Question => routes.question,
            IntentLabel::Search => routes.search,
            IntentLabel::Image => routes.image,
            IntentLabel::CodeTask => routes.code_task,
            IntentLabel::ProjectManagement => routes.project_management,
            IntentLabel::Admin => routes.admin,
        }
    }
}

impl FromStr for IntentLabel {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let normalized = text.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        IntentLabel::ALL.into_iter().find(|label| label.as_str() == normalized).ok_or(())
    }
}

/// Who produced the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentSource {
    Ollama,
    Model,
    Fallback,
}

impl IntentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentSource::Ollama => "ollama",
            IntentSource::Model => "model",
            IntentSource::Fallback => "fallback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub label: IntentLabel,
    pub source: IntentSource,
}

const CLASSIFIER_PROMPT: &str = "You label chat messages for routing. Labels: \
chat (small talk, thanks, greetings), question (asks for an explanation or fact), \
search (needs current information from the web), image (make or look at an image), \
code_task (change, fix, review or run code), project_management (tasks, priorities, \
deadlines, status), admin (about the bot itself: status, settings, jobs). \
Answer with one JSON object only: {\"intent\": \"<label>\"}.";

/// Which model labels messages.
pub enum ClassifierBackend {
    Ollama {
        client: OllamaClient,
        model: String,
    },
    /// The main provider's small tier (a client without retries).
    Model {
        model: Arc<dyn ChatModel>,
        model_name: String,
    },
    Fallback,
}

pub struct IntentClassifier {
    backend: ClassifierBackend,
    time_limit: Duration,
}

impl std::fmt::Debug for IntentClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            ClassifierBackend::Ollama { model, .. } => format!("ollama:{model}"),
            ClassifierBackend::Model { model_name, .. } => format!("model:{model_name}"),
            ClassifierBackend::Fallback => "fallback".into(),
        };
        f.debug_struct("IntentClassifier").field("backend", &backend).field("time_limit", &self.time_limit).finish()
    }
}

impl IntentClassifier {
    pub fn new(backend: ClassifierBackend, time_limit: Duration) -> Self {
        Self { backend, time_limit }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            ClassifierBackend::Ollama { .. } => "ollama",
            ClassifierBackend::Model { .. } => "model",
            ClassifierBackend::Fallback => "fallback",
        }
    }

    /// Label a message. Never fails: any model problem falls back to the word rule.
    pub async fn classify(&self, text: &str) -> Intent {
        let attempt = async {
            match &self.backend {
                ClassifierBackend::Ollama { client, model } => client
                    .chat_json(model, CLASSIFIER_PROMPT, text)
                    .await
                    .ok()
                    .and_then(|value| label_from_json(&value))
                    .map(|label| Intent { label, source: IntentSource::Ollama }),
                ClassifierBackend::Model { model, model_name } => {
                    let mut request =
                        ChatRequest::new(model_name.clone(), CLASSIFIER_PROMPT, vec![Message::user_text(text)]);
                    request.max_tokens = 32;
                    request.json_output = true;
                    request.temperature = Some(0.0);
                    let response = model.complete(&request).await.ok()?;
                    let value =
                        serde_json::from_str::<serde_json::Value>(extract_json(&response.message.text())).ok()?;
                    label_from_json(&value).map(|label| Intent { label, source: IntentSource::Model })
                }
                ClassifierBackend::Fallback => None,
            }
        };
        let labelled = tokio::time::timeout(self.time_limit, attempt).await.ok().flatten();
        labelled.unwrap_or_else(|| Intent { label: fallback_label(text), source: IntentSource::Fallback })
    }
}

fn label_from_json(value: &serde_json::Value) -> Option<IntentLabel> {
    let text = value.get("intent").or_else(|| value.get("label"))?.as_str()?;
    IntentLabel::from_str(text).ok()
}

/// Small models sometimes wrap JSON in prose or a code fence: take the outermost object.
fn extract_json(text: &str) -> &str {
    match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) if start < end => &text[start..=end],
        _ => text,
    }
}

/// The deterministic rule: whole-word keywords, checked from the most to the
/// least specific label.
pub fn fallback_label(text: &str) -> IntentLabel {
    let trimmed = text.trim();
    if trimmed.starts_with('/') {
        return IntentLabel::Admin;
    }
    if trimmed.contains("```") {
        return IntentLabel::CodeTask;
    }
    let lower = trimmed.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric() && c != '_').filter(|w| !w.is_empty()).collect();
    let has = |list: &[&str]| words.iter().any(|word| list.contains(word));
    const CODE: &[&str] = &[
        "fix",
        "bug",
        "bugs",
        "refactor",
        "implement",
        "compile",
        "compiler",
        "deploy",
        "commit",
        "merge",
        "pr",
        "test",
        "tests",
        "failing",
        "stacktrace",
        "traceback",
        "function",
        "code",
        "repo",
        "branch",
        "build",
    ];
    const IMAGE: &[&str] =
        &["image", "images", "picture", "photo", "draw", "drawing", "logo", "illustration", "screenshot"];
    const SEARCH: &[&str] = &["search", "google", "latest", "news", "today", "current", "price", "weather", "lookup"];
    const PROJECT: &[&str] = &[
        "task",
        "tasks",
        "priority",
        "priorities",
        "sprint",
        "deadline",
        "roadmap",
        "ticket",
        "tickets",
        "notion",
        "backlog",
        "milestone",
    ];
    const ADMIN: &[&str] = &["status", "health", "jobs", "settings", "config", "restart"];
    const QUESTION: &[&str] =
        &["what", "why", "how", "when", "where", "who", "which", "explain", "can", "could", "is", "are", "does", "do"];
    if has(CODE) {
        IntentLabel::CodeTask
    } else if has(IMAGE) {
        IntentLabel::Image
    } else if has(PROJECT) {
        IntentLabel::ProjectManagement
    } else if has(SEARCH) || lower.contains("look up") {
        IntentLabel::Search
    } else if words.len() <= 3 && has(ADMIN) {
        IntentLabel::Admin
    } else if trimmed.ends_with('?') || words.first().is_some_and(|w| QUESTION.contains(w)) {
        IntentLabel::Question
    } else {
        IntentLabel::Chat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_labels_follow_the_word_rules() {
        let cases = [
            ("hi there!", IntentLabel::Chat),
            ("thanks, that helped", IntentLabel::Chat),
            ("What is a monad?", IntentLabel::Question),
            ("fix the failing checkout test", IntentLabel::CodeTask),
            ("draw a logo for the shop", IntentLabel::Image),
            ("search the latest rust release notes", IntentLabel::Search),
            ("what are our priorities this sprint", IntentLabel::ProjectManagement),
            ("/status", IntentLabel::Admin),
            ("status", IntentLabel::Admin),
            ("here is my snippet ```let x = 1;```", IntentLabel::CodeTask),
            // Whole words only: "testimony" is not "test", "contest" neither.
            ("I read a testimony about the contest", IntentLabel::Chat),
        ];
        for (text, expected) in cases {
            assert_eq!(fallback_label(text), expected, "{text:?}");
        }
    }

    #[test]
    fn labels_parse_from_model_json_in_several_spellings() {
        assert_eq!(label_from_json(&serde_json::json!({"intent": "code_task"})), Some(IntentLabel::CodeTask));
        assert_eq!(
            label_from_json(&serde_json::json!({"intent": "Project Management"})),
            Some(IntentLabel::ProjectManagement)
        );
        assert_eq!(label_from_json(&serde_json::json!({"label": "search"})), Some(IntentLabel::Search));
        assert_eq!(label_from_json(&serde_json::json!({"intent": "dance"})), None);
        assert_eq!(extract_json("Sure: {\"intent\": \"chat\"} done"), "{\"intent\": \"chat\"}");
    }

    #[test]
    fn routes_map_labels_to_configured_tiers() {
        let routes = IntentRoutes::default();
        assert_eq!(IntentLabel::Chat.tier(&routes), Tier::Small);
        assert_eq!(IntentLabel::CodeTask.tier(&routes), Tier::Large);
    }

    #[tokio::test]
    async fn the_fallback_backend_labels_without_a_model() {
        let classifier = IntentClassifier::new(ClassifierBackend::Fallback, Duration::from_millis(10));
        let intent = classifier.classify("fix the build").await;
        assert_eq!(intent, Intent { label: IntentLabel::CodeTask, source: IntentSource::Fallback });
    }
}
