//! The OpenAPI document, derived from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::approvals;
use super::branches;
use super::daydream;
use super::events;
use super::health;
use super::jobs;
use super::status;

#[derive(OpenApi)]
#[openapi(
    info(title = "valor", description = "valor's HTTP API: chat turns (JSON or SSE), conversations, health."),
    paths(
        api::post_message,
        api::list_conversations,
        api::rename_conversation,
        api::delete_conversation,
        api::list_messages,
        events::conversation_events,
        api::list_turns,
        api::cancel_turn,
        health::health,
        health::ready,
        health::metrics,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        jobs::retry_job,
        status::status,
        daydream::list_sessions,
        approvals::list_approvals,
        approvals::answer_approval,
        branches::list_branches,
        branches::branch_action,
    ),
    components(schemas(
        api::SendMessage,
        api::MessageReply,
        api::ToolCallView,
        api::TurnInfo,
        api::ConversationList,
        api::ConversationView,
        api::RenameConversation,
        api::MessageList,
        api::MessageView,
        api::TurnList,
        api::TurnView,
        api::TurnCancelled,
        jobs::JobView,
        jobs::JobList,
        status::StatusReport,
        status::ResourcesView,
        daydream::DaydreamSessionList,
        daydream::DaydreamSessionView,
        daydream::DaydreamPhaseView,
        approvals::ApprovalView,
        approvals::ApprovalList,
        approvals::ApprovalAnswerBody,
        branches::BranchView,
        branches::BranchList,
        branches::BranchActionQueued,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
