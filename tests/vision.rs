//! Images: `analyze_image` against aimock (OpenAI vision parts, Anthropic
//! image blocks) — images from the data dir and from links fetched with
//! `read_link`'s checks — and the agent using it end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{Aimock, TestApp, use_anthropic, use_openai};
use secrecy::SecretString;
use serde_json::{Value, json};
use valor::agent::tools::analyze_image::VisionModel;
use valor::agent::tools::read_link::{AddressPolicy, ReadLinkLimits, Resolver};
use valor::agent::tools::resilience::{CallPolicy, ExternalService};
use valor::agent::tools::{AnalyzeImage, ReadLink};
use valor::llm::openai::OpenAiClient;
use valor::llm::transport::TransportConfig;

/// A tiny valid PNG header (enough for type sniffing; models are stand-ins).
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

fn image_parts(request: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for message in request["body"]["messages"].as_array().into_iter().flatten() {
        for part in message["content"].as_array().into_iter().flatten() {
            if let Some(url) = part.pointer("/image_url/url").and_then(Value::as_str) {
                urls.push(url.to_owned());
            }
        }
    }
    urls
}

async fn vision_requests(mock: &Aimock) -> Vec<Vec<String>> {
    mock.journal().await.iter().map(image_parts).filter(|parts| !parts.is_empty()).collect()
}

fn data_dir_with_image(reference: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(reference);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, PNG).unwrap();
    dir
}

fn colour_fixtures(image: &str) -> Value {
    json!([
        {"match": {"userMessage": "what colour is the square", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "analyze_image", "arguments": {"image": image, "question": "Which colour is the square?"}}]}},
        {"match": {"userMessage": "Which colour is the square?"}, "response": {"content": "The square is red."}},
        {"match": {"userMessage": "what colour is the square", "hasToolResult": true},
         "response": {"content": "It's a red square."}}
    ])
}

#[tokio::test]
async fn the_agent_analyzes_a_stored_image_with_openai_vision() {
    let mock = Aimock::start().await;
    mock.add_fixtures(colour_fixtures("media/chat/square.png")).await;
    let app = TestApp::spawn_in(data_dir_with_image("media/chat/square.png"), |s| use_openai(s, &mock)).await;
    let reply = app.send_ok("img", "what colour is the square in media/chat/square.png?").await;
    assert_eq!(reply["reply"], "It's a red square.");
    assert_eq!(reply["tool_calls"][0]["output"], "The square is red.");
    let sent = vision_requests(&mock).await;
    assert_eq!(sent.len(), 1, "exactly one vision call");
    assert!(sent[0][0].starts_with("data:image/png;base64,iVBORw0KGgo"), "{:?}", sent[0]);
    let health = app.get_json("/health").await;
    assert!(health["breakers"].as_array().unwrap().iter().any(|b| b["service"] == "vision"), "{health}");
}

#[tokio::test]
async fn the_agent_analyzes_a_stored_image_with_anthropic_vision() {
    let mock = Aimock::start().await;
    mock.add_fixtures(colour_fixtures("media/chat/square.png")).await;
    let app = TestApp::spawn_in(data_dir_with_image("media/chat/square.png"), |s| use_anthropic(s, &mock)).await;
    let reply = app.send_ok("img", "what colour is the square?").await;
    assert_eq!(reply["reply"], "It's a red square.");
    assert_eq!(reply["tool_calls"][0]["output"], "The square is red.");
    // aimock's journal shows Anthropic bodies in OpenAI shape without image
    // blocks; the image block itself is checked by the wire-format unit test.
    let requests = mock.requests_to("/v1/messages").await;
    let vision: Vec<&Value> = requests
        .iter()
        .filter(|r| r["body"]["messages"][0]["content"].as_str().unwrap().starts_with("You look at images"))
        .collect();
    assert_eq!(vision.len(), 1, "{requests:?}");
    assert_eq!(vision[0]["body"]["messages"][1]["content"], "Which colour is the square?");
}

#[tokio::test]
async fn a_path_outside_the_data_dir_or_a_non_image_goes_back_to_the_model_as_an_error() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "peek outside", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "analyze_image", "arguments": {"image": "../../etc/passwd", "question": "?"}}]}},
        {"match": {"userMessage": "peek outside", "hasToolResult": true}, "response": {"content": "I can't."}},
        {"match": {"userMessage": "read the db", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "analyze_image", "arguments": {"image": "valor.db", "question": "?"}}]}},
        {"match": {"userMessage": "read the db", "hasToolResult": true}, "response": {"content": "Not an image."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_openai(s, &mock)).await;
    let reply = app.send_ok("img", "peek outside").await;
    assert_eq!(reply["tool_calls"][0]["is_error"], true);
    assert!(reply["tool_calls"][0]["output"].as_str().unwrap().contains("leaves valor's data folder"));
    let reply = app.send_ok("img2", "read the db").await;
    assert_eq!(reply["tool_calls"][0]["is_error"], true);
    assert!(reply["tool_calls"][0]["output"].as_str().unwrap().contains("not a PNG, JPEG, GIF or WebP"));
    assert!(vision_requests(&mock).await.is_empty());
}

#[tokio::test]
async fn without_a_model_provider_analyze_image_is_not_offered() {
    let app = TestApp::spawn(|_| {}).await;
    let health = app.get_json("/health").await;
    let tools = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "tools").unwrap().clone();
    assert!(!tools["detail"].as_str().unwrap().contains("analyze_image"), "{tools}");
}

struct FixedResolver(SocketAddr);

#[async_trait::async_trait]
impl Resolver for FixedResolver {
    async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(vec![self.0])
    }
}

/// An image host on 127.0.0.3: `/square.png` (an image) and `/page` (HTML).
async fn image_host() -> SocketAddr {
    let router = Router::new()
        .route("/square.png", get(|| async { ([("content-type", "image/png")], PNG.to_vec()) }))
        .route("/page", get(|| async { ([("content-type", "text/html")], "<p>hi</p>") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

fn policy() -> CallPolicy {
    CallPolicy {
        attempt_timeout: Duration::from_secs(5),
        max_retries: 0,
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(1),
    }
}

#[tokio::test]
async fn the_agent_analyzes_an_image_link_fetched_with_read_links_address_checks() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "describe the linked image", "hasToolResult": false},
         "response": {"toolCalls": [
            {"name": "analyze_image", "arguments": {"image": "http://pics.example/square.png", "question": "Which colour is the square?"}},
            {"name": "analyze_image", "arguments": {"image": "http://pics.example/page", "question": "Which colour is the square?"}},
            {"name": "analyze_image", "arguments": {"image": "http://127.0.0.1:9/x.png", "question": "Which colour is the square?"}}
         ]}},
        {"match": {"userMessage": "Which colour is the square?"}, "response": {"content": "The square is red."}},
        {"match": {"userMessage": "describe the linked image", "hasToolResult": true}, "response": {"content": "Red."}}
    ]))
    .await;
    let host = image_host().await;
    let base_url = format!("{}/v1", mock.url);
    let app = TestApp::spawn_with_tools(
        tempfile::tempdir().unwrap(),
        |s| use_openai(s, &mock),
        move |registry| {
            let breakers = registry.breakers().clone();
            let links = ReadLink::with_network(
                ReadLinkLimits { max_bytes: 100_000, max_chars: 1000 },
                ExternalService::new("read_link", "reading links", breakers.clone(), policy()),
                None,
                AddressPolicy::public_and(vec![host.ip()]),
                Arc::new(FixedResolver(host)),
            );
            let client = OpenAiClient::new(TransportConfig {
                base_url,
                api_key: Some(SecretString::from("sk-test")),
                request_timeout: Duration::from_secs(10),
                first_byte_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(2),
                max_retries: 0,
                retry_base: Duration::from_millis(1),
                retry_max: Duration::from_millis(1),
            })
            .unwrap();
            let model = VisionModel { client: Arc::new(client), model_name: "gpt-4o-mini".into() };
            let service = ExternalService::new("vision", "image analysis", breakers, policy());
            registry.register(Arc::new(AnalyzeImage::new(std::env::temp_dir(), model, service, links)));
        },
    )
    .await;
    let reply = app.send_ok("link", "describe the linked image").await;
    let calls = reply["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["output"], "The square is red.", "{reply}");
    assert_eq!(calls[1]["is_error"], true);
    assert!(calls[1]["output"].as_str().unwrap().contains("not an image (text/html)"), "{reply}");
    assert_eq!(calls[2]["is_error"], true);
    assert!(calls[2]["output"].as_str().unwrap().contains("private or local address"), "{reply}");
    assert_eq!(vision_requests(&mock).await.len(), 1);
}

fn png_base64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(PNG)
}

#[tokio::test]
async fn generate_image_saves_the_openai_image_under_media_generated_and_reports_its_reference() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "draw me a lighthouse", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "generate_image", "arguments": {"prompt": "A lighthouse at dusk, watercolour"}}]}},
        {"match": {"userMessage": "A lighthouse at dusk, watercolour"}, "response": {"image": {"b64Json": png_base64()}}},
        {"match": {"userMessage": "draw me a lighthouse", "hasToolResult": true}, "response": {"content": "Here it is."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_openai(s, &mock)).await;
    let reply = app.send_ok("draw", "draw me a lighthouse").await;
    assert_eq!(reply["reply"], "Here it is.");
    let output = reply["tool_calls"][0]["output"].as_str().unwrap();
    let reference = output.split("[image: ").nth(1).unwrap().trim_end_matches(']');
    assert!(reference.starts_with("media/generated/") && reference.ends_with(".png"), "{output}");
    let saved = app.data_dir.as_ref().unwrap().path().join(reference);
    assert_eq!(std::fs::read(saved).unwrap(), PNG);
    let asked = mock.requests_to("/v1/images/generations").await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["body"]["model"], "gpt-image-1");
}

#[tokio::test]
async fn generate_image_is_offered_only_with_an_openai_key() {
    let mock = Aimock::start().await;
    let anthropic_only = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let tools = anthropic_only.get_json("/health").await;
    let detail = tools["components"].as_array().unwrap().iter().find(|c| c["name"] == "tools").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!detail.contains("generate_image") && detail.contains("analyze_image"), "{detail}");
    let with_openai = TestApp::spawn(|s| use_openai(s, &mock)).await;
    let tools = with_openai.get_json("/health").await;
    assert!(tools.to_string().contains("generate_image"));
}
