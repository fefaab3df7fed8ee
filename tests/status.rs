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

    // No model is configured in tests: the model component costs its 20 points.
    assert_eq!(status["health"]["score"], 80, "{status:#}");
    assert_eq!(status["health"]["level"], "healthy");
    let model = status["health"]["components"].as_array().unwrap().iter().find(|c| c["name"] == "model").unwrap();
    assert_eq!(model["penalty"], 20);
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
    assert_eq!(health["health"]["score"], 80);
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
