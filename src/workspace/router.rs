//! Which executor and model tier a delegated code task gets, and why.
//! Interactive work (someone in the chat is waiting) goes to Claude Code;
//! batch/background maintenance goes to the Gemini CLI when `[gemini]` is
//! enabled, else to Claude Code on the background tier. The effort the
//! model asked for picks the tier (quick → small, normal → medium, deep →
//! large; background work without an effort uses `routing.background_tier`).
//!
//! Invariant: a pure function of the task's traits and the settings; the
//! resulting [`Route`] (with its reason) is stored in the job's payload, so
//! the job record shows what was chosen and why.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{GeminiSettings, RoutingSettings, Tier};

/// The program that does the code work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    ClaudeCode,
    GeminiCli,
}

impl Executor {
    /// The name people see.
    pub fn label(self) -> &'static str {
        match self {
            Executor::ClaudeCode => "Claude Code",
            Executor::GeminiCli => "Gemini CLI",
        }
    }

    /// The job kind that runs it.
    pub fn job_kind(self) -> &'static str {
        match self {
            Executor::ClaudeCode => super::CLAUDE_CODE_KIND,
            Executor::GeminiCli => super::GEMINI_CLI_KIND,
        }
    }
}

/// How much thinking a task needs (asked for by the model; default normal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// A small, well-defined change.
    Quick,
    #[default]
    Normal,
    /// Hard debugging, design or a wide change.
    Deep,
}

/// What the router knows about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTraits {
    /// Batch or maintenance work nobody is waiting for in the chat.
    pub background: bool,
    /// `None`: the model did not say.
    pub effort: Option<Effort>,
}

/// The router's decision, recorded in the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub executor: Executor,
    pub tier: Tier,
    pub model: String,
    pub reason: String,
}

impl Route {
    /// The route a job stored in its payload (`"route"`), if any.
    pub fn from_payload(payload: &serde_json::Value) -> Option<Route> {
        payload.get("route").and_then(|value| serde_json::from_value(value.clone()).ok())
    }
}

/// The executors and models the router may choose from.
#[derive(Debug, Clone)]
pub struct Router {
    routing: RoutingSettings,
    gemini: GeminiSettings,
}

impl Router {
    pub fn new(routing: RoutingSettings, gemini: GeminiSettings) -> Self {
        Self { routing, gemini }
    }

    pub fn route(&self, task: TaskTraits) -> Route {
        let (tier, tier_reason) = match (task.effort, task.background) {
            (Some(Effort::Quick), _) => (Tier::Small, "quick effort"),
            (Some(Effort::Normal), _) | (None, false) => (Tier::Medium, "normal effort"),
            (Some(Effort::Deep), _) => (Tier::Large, "deep effort"),
            (None, true) => (self.routing.background_tier, "background default tier"),
        };
        let (executor, why) = match (task.background, self.gemini.enabled) {
            (false, _) => (Executor::ClaudeCode, "interactive work (the chat is waiting)"),
            (true, true) => (Executor::GeminiCli, "background/batch maintenance and the Gemini CLI is enabled"),
            (true, false) => (Executor::ClaudeCode, "background/batch maintenance but the Gemini CLI is not enabled"),
        };
        let model = match executor {
            Executor::ClaudeCode => self.routing.claude_models.for_tier(tier),
            Executor::GeminiCli => self.gemini.models.for_tier(tier),
        }
        .to_owned();
        let reason = format!("{why} → {}; {tier_reason} → {} tier ({model})", executor.label(), tier.as_str());
        Route { executor, tier, model, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(gemini: bool) -> Router {
        Router::new(RoutingSettings::default(), GeminiSettings { enabled: gemini, ..GeminiSettings::default() })
    }

    fn traits(background: bool, effort: Option<Effort>) -> TaskTraits {
        TaskTraits { background, effort }
    }

    #[test]
    fn interactive_work_goes_to_claude_code_and_background_work_to_gemini_when_enabled() {
        type Case = (bool, TaskTraits, Executor, Tier, &'static str);
        let cases: [Case; 8] = [
            (true, traits(false, None), Executor::ClaudeCode, Tier::Medium, "sonnet"),
            (true, traits(false, Some(Effort::Quick)), Executor::ClaudeCode, Tier::Small, "haiku"),
            (true, traits(false, Some(Effort::Deep)), Executor::ClaudeCode, Tier::Large, "opus"),
            (true, traits(true, None), Executor::GeminiCli, Tier::Small, "gemini-2.5-flash-lite"),
            (true, traits(true, Some(Effort::Normal)), Executor::GeminiCli, Tier::Medium, "gemini-2.5-flash"),
            (true, traits(true, Some(Effort::Deep)), Executor::GeminiCli, Tier::Large, "gemini-2.5-pro"),
            (false, traits(true, None), Executor::ClaudeCode, Tier::Small, "haiku"),
            (false, traits(false, None), Executor::ClaudeCode, Tier::Medium, "sonnet"),
        ];
        for (gemini, task, executor, tier, model) in cases {
            let route = router(gemini).route(task);
            assert_eq!((route.executor, route.tier, route.model.as_str()), (executor, tier, model), "{task:?}");
        }
    }

    #[test]
    fn the_reason_says_why_and_survives_the_payload() {
        let route = router(false).route(traits(true, None));
        assert!(route.reason.contains("Gemini CLI is not enabled") && route.reason.contains("haiku"), "{route:?}");
        let payload = serde_json::json!({ "route": route });
        assert_eq!(payload["route"]["executor"], "claude_code");
        assert_eq!(Route::from_payload(&payload), Some(route));
        assert_eq!(Route::from_payload(&serde_json::json!({})), None);
    }
}
