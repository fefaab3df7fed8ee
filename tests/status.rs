//! The health score and resource monitor seen from outside: `/api/status`
//! (authenticated, in the OpenAPI document), the score in `/health`, and the
//! gauges in `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestApp;
use serde_json::Value;

/// `/api/status` once the sampler has recorded at least one sample.
async fn sampled_status(app: &TestApp) -> Value {
    for _ in 0..200 {
        let status = app.get_json("/api/status").await;
        if status["samples"].as_array().is_some_and(|samples| !samples.is_empty()) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sampler recorded nothing within 2 s");
}

#[tokio::test]
async fn the_status_report_has_score_components_resources_queue_and_samples() {
    let app = TestApp::spawn(|_| {}).await;
    let status = sampled_status(&app).await;

    // No model is configured in tests: the model component costs its 30 points.
    assert_eq!(status["health"]["score"], 70, "{status:#}");
    assert_eq!(status["health"]["level"], "degraded");
    let model = status["health"]["components"].as_array().unwrap().iter().find(|c| c["name"] == "model").unwrap();
    assert_eq!(model["penalty"], 30);
    assert!(status["components"].as_array().unwrap().iter().any(|c| c["name"] == "database" && c["on"] == true));
    let sample = &status["samples"][0];
    assert!(sample["rss_bytes"].as_u64().unwrap() > 1024 * 1024, "{sample}");
    assert!(sample["at_ms"].as_i64().unwrap() > 0);
    assert_eq!(
        status["resources"]["latest"]["rss_bytes"],
        status["samples"].as_array().unwrap().last().unwrap()["rss_bytes"]
    );
    assert_eq!(status["resources"]["active_turns"], 0);
    assert_eq!(status["resources"]["max_active_turns"], 32);
    assert_eq!(status["resources"]["pressure"], Value::Null);
    assert_eq!(status["queue"]["queued"], 0);
    assert_eq!(status["queue"]["running"], 0);
    assert!(status["breakers"].is_array());
}

#[tokio::test]
async fn health_keeps_its_status_and_adds_the_score() {
    let app = TestApp::spawn(|_| {}).await;
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["health"]["score"], 70);
    assert_eq!(health["health"]["components"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn metrics_export_the_score_memory_and_queue_depth() {
    let app = TestApp::spawn(|_| {}).await;
    sampled_status(&app).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in ["valor_health_score", "valor_rss_bytes", "valor_cpu_percent", "valor_queue_depth{status=\"queued\"}"] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn the_status_route_needs_a_token_and_is_documented() {
    let app = TestApp::spawn(|s| s.server.api_tokens = vec!["right-token".to_owned().into()]).await;
    let refused = app.http.get(app.url("/api/status")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = app.http.get(app.url("/api/status")).bearer_auth("right-token").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    let openapi = app.get_json("/openapi.json").await;
    assert!(openapi["paths"]["/api/status"]["get"].is_object());
    assert!(openapi["components"]["schemas"]["StatusReport"].is_object());
}

fn model_component(health: &Value) -> Value {
    health["components"].as_array().unwrap().iter().find(|c| c["name"] == "model").cloned().unwrap()
}

/// The model's breaker is fed by real turns: three failed turns make the
/// score degraded everywhere it is shown, a fourth turn fails at once without
/// reaching the provider, and the idle probe closes the breaker by itself.
#[tokio::test]
async fn a_failing_model_lowers_the_score_everywhere_and_recovers_by_itself() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(serde_json::json!([
        {"match": {"userMessage": "ping"}, "response": {"content": "OK"}},
        {"match": {"userMessage": "are you back?"}, "response": {"content": "Yes, I am back."}},
    ]))
    .await;
    let app = TestApp::spawn(|settings| {
        common::use_anthropic(settings, &mock);
        settings.llm.max_retries = 0;
        settings.tools.breaker_failure_threshold = 3;
        settings.tools.breaker_cooldown_secs = 2;
    })
    .await;
    let healthy = app.get_json("/health").await;
    assert_eq!(healthy["health"]["score"], 100, "{healthy:#}");
    assert_eq!(model_component(&healthy["health"])["note"], "answers");

    for attempt in 0..3 {
        mock.queue_error(500, "api_error", "internal failure in the model server").await;
        let reply: Value = app.send("c1", &format!("hello {attempt}")).await.json().await.unwrap();
        assert!(reply.to_string().contains("model"), "{reply}");
    }
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["health"]["score"], 70);
    assert_eq!(health["health"]["level"], "degraded");
    let model = model_component(&health["health"]);
    assert_eq!(model["penalty"], 30);
    let note = model["note"].as_str().unwrap();
    assert!(note.starts_with("failing: 3 call(s) in a row"), "{note}");
    assert!(note.contains("HTTP 500"), "{note}");
    let status = app.get_json("/api/status").await;
    let breaker = status["breakers"].as_array().unwrap().iter().find(|b| b["service"] == "model").unwrap().clone();
    assert_eq!(breaker["state"], "open", "{status:#}");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("valor_breaker_state{service=\"model\"} 2"), "{metrics}");

    // While open, a turn fails at once with the known reason and the provider is left alone.
    let asked = mock.requests_to("/v1/messages").await.len();
    let reply: Value = app.send("c1", "still there?").await.json().await.unwrap();
    assert!(reply.to_string().contains("model"), "{reply}");
    assert_eq!(mock.requests_to("/v1/messages").await.len(), asked, "the open breaker let a call through");

    // Nobody writes; the idle probe finds the model answering again.
    let mut recovered = None;
    for _ in 0..100 {
        let health = app.get_json("/health").await;
        if health["health"]["score"] == 100 {
            recovered = Some(health);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = recovered.expect("the model breaker closed within 10 s");
    assert_eq!(health["status"], "ok");
    assert_eq!(model_component(&health["health"])["note"], "answers");
    let probes = mock.requests_to("/v1/messages").await;
    assert!(probes.len() > asked, "a probe reached the provider");
    let reply = app.send_ok("c1", "are you back?").await;
    assert_eq!(reply["reply"], "Yes, I am back.");
}

/// The database file deleted under a running server: health says unhealthy
/// with the reason, /ready answers 503, and a new message is refused instead
/// of being written into the unlinked file.
#[tokio::test]
async fn a_deleted_database_makes_valor_unhealthy_and_refuse_new_messages() {
    let app = TestApp::spawn(|_| {}).await;
    assert_eq!(app.get_json("/health").await["status"], "ok");
    let path = app.data_dir.as_ref().unwrap().path().join("valor.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "unhealthy", "{health:#}");
    assert_eq!(health["health"]["level"], "unhealthy");
    let database = health["health"]["components"].as_array().unwrap().iter().find(|c| c["name"] == "database").unwrap();
    assert!(database["note"].as_str().unwrap().contains("was deleted while valor was running"), "{database}");
    let ready = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    let response = app.send("after", "is anyone there?").await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_failed", "{body}");
}
