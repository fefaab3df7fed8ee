//! DNS rebinding and cross-site requests: one Host/Origin policy in front of
//! every route. In loopback mode (no tokens) only loopback Host names are
//! served; a state-changing request from a foreign Origin is refused in
//! every mode unless `[server] allowed_origins` lists it.

use reqwest::{Method, StatusCode};
use serde_json::json;
use valor::storage::{NewJob, wall_clock_ms};

use crate::common::TestApp;

fn echo_job() -> NewJob {
    NewJob {
        kind: "echo".into(),
        payload: json!({"n": 1}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: None,
    }
}

fn port(app: &TestApp) -> u16 {
    url::Url::parse(&app.base).unwrap().port().unwrap()
}

async fn send(app: &TestApp, method: Method, path: &str, headers: &[(&str, String)]) -> StatusCode {
    let mut request = app.http.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn in_loopback_mode_a_foreign_host_is_refused_on_every_route() {
    let app = TestApp::spawn(|_| {}).await;
    let port = port(&app);
    for path in ["/api/conversations", "/api/jobs", "/api/status", "/", "/health", "/api/approvals"] {
        let status = send(&app, Method::GET, path, &[("host", format!("evil.example:{port}"))]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path} with a rebound Host");
        let status = send(&app, Method::GET, path, &[("host", format!("127.0.0.2.nip.example:{port}"))]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path} with a name that only looks local");
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "127.0.0.1".to_owned()] {
        assert_eq!(
            send(&app, Method::GET, "/api/conversations", &[("host", host.clone())]).await,
            StatusCode::OK,
            "{host}"
        );
    }
    // The refusal is JSON and says why.
    let response = app.http.get(app.url("/api/conversations")).header("host", "evil.example").send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Host"), "{body}");
}

#[tokio::test]
async fn a_cross_site_post_cannot_cancel_a_job_or_start_a_turn() {
    // No workers: the queued job stays queued however long the test takes.
    let app = TestApp::spawn(|s| s.jobs.workers = 0).await;
    let port = port(&app);
    let store = app.store().await;
    let id = store.enqueue_job(echo_job(), wall_clock_ms()).await.unwrap().job.id;
    let cancel = format!("/api/jobs/{id}/cancel");
    let local = format!("127.0.0.1:{port}");
    for origin in [
        format!("http://evil.example:{port}"),
        "null".to_owned(),
        format!("http://user@127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        let headers = [("host", local.clone()), ("origin", origin.clone())];
        assert_eq!(send(&app, Method::POST, &cancel, &headers).await, StatusCode::FORBIDDEN, "Origin {origin}");
        let response = app
            .http
            .post(app.url("/api/messages"))
            .header("origin", &origin)
            .json(&json!({"text": "cross-site hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "Origin {origin}");
    }
    assert_eq!(app.get_json(&format!("/api/jobs/{id}")).await["status"], "queued");
    assert_eq!(app.get_json("/api/conversations").await["conversations"], json!([]), "a turn was started");
    // The page itself (same origin) may.
    let same = [("host", local.clone()), ("origin", format!("http://{local}"))];
    assert_eq!(send(&app, Method::POST, &cancel, &same).await, StatusCode::OK);
    let audit = store.list_audit(Some("origin"), 20).await.unwrap();
    assert!(audit.len() >= 8 && audit.iter().all(|event| event.decision == "denied"), "{audit:?}");
}

#[tokio::test]
async fn with_tokens_any_host_works_but_only_configured_origins_may_change_things() {
    let app = TestApp::spawn(|s| {
        s.server.api_tokens = vec!["t0ken-for-origin-tests".to_owned().into()];
        s.server.allowed_origins = vec!["https://chat.example.com".into()];
        s.jobs.workers = 0; // the job stays queued until the test cancels it
    })
    .await;
    let bearer = ("authorization", "Bearer t0ken-for-origin-tests".to_owned());
    let get = [("host", "valor.example.com".to_owned()), bearer.clone()];
    assert_eq!(send(&app, Method::GET, "/api/conversations", &get).await, StatusCode::OK);
    let id = app.store().await.enqueue_job(echo_job(), wall_clock_ms()).await.unwrap().job.id;
    let cancel = format!("/api/jobs/{id}/cancel");
    let foreign = [bearer.clone(), ("origin", "https://evil.example".to_owned())];
    assert_eq!(send(&app, Method::POST, &cancel, &foreign).await, StatusCode::FORBIDDEN);
    let configured = [bearer.clone(), ("origin", "https://chat.example.com".to_owned())];
    assert_eq!(send(&app, Method::POST, &cancel, &configured).await, StatusCode::OK);
}
