//! Bearer tokens and what the public `/health` reveals when tokens are set.

use serde_json::Value;

use crate::common::TestApp;

const TOKEN: &str = "s3cret-api-token-for-auth-tests";

async fn with_tokens() -> TestApp {
    TestApp::spawn(|s| s.server.api_tokens = vec![TOKEN.to_owned().into()]).await
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let app = with_tokens().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let status = app
            .http
            .get(app.url("/api/conversations"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{scheme}");
    }
    for value in [format!("Basic {TOKEN}"), format!("Bearer{TOKEN}"), "Bearer ".into(), format!("Bearer {TOKEN}x")] {
        let status =
            app.http.get(app.url("/api/conversations")).header("authorization", &value).send().await.unwrap().status();
        assert_eq!(status, 401, "{value}");
    }
}

#[tokio::test]
async fn public_health_says_only_status_and_version_and_details_need_the_token() {
    let app = with_tokens().await;
    let public: Value = app.http.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    let keys: Vec<&str> = public.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["status", "version"], "{public}");
    assert_eq!(public["status"], "ok");
    let text = public.to_string();
    let data_dir = app.data_dir.as_ref().unwrap().path().to_string_lossy().into_owned();
    assert!(!text.contains(&data_dir) && !text.contains("127.0.0.1"), "{text}");

    let wrong: Value =
        app.http.get(app.url("/health")).bearer_auth("wrong").send().await.unwrap().json().await.unwrap();
    assert_eq!(wrong.as_object().unwrap().len(), 2, "a wrong token sees the public view: {wrong}");

    let full: Value = app.http.get(app.url("/health")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert!(full["components"].is_array() && full["health"].is_object(), "{full}");
}

#[tokio::test]
async fn in_loopback_mode_health_has_the_details() {
    let app = TestApp::spawn(|_| {}).await;
    let health = app.get_json("/health").await;
    assert!(health["components"].is_array() && health["database"] == "ok", "{health}");
}
