//! Local stand-ins for the tools' external services: a Perplexity-style
//! chat API (with citations, failures and a switch to recover) and a web
//! page server for `read_link`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub struct FakeState {
    pub hits: Arc<AtomicU32>,
    pub healthy: Arc<AtomicBool>,
    pub last_request: Arc<std::sync::Mutex<Option<(String, Value)>>>,
}

pub struct Fake {
    pub url: String,
    pub state: FakeState,
}

impl Fake {
    pub fn hits(&self) -> u32 {
        self.state.hits.load(Ordering::SeqCst)
    }
}

async fn serve(router: Router, ip: &str) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn answer() -> Value {
    json!({
        "id": "pplx-1", "model": "sonar",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Rust 1.95 shipped on 2026-11-20. [1]"}}],
        "citations": ["https://blog.rust-lang.org/2026/11/20/Rust-1.95.0/"],
        "search_results": [{"title": "Announcing Rust 1.95.0",
                            "url": "https://blog.rust-lang.org/2026/11/20/Rust-1.95.0/"}]
    })
}

async fn ok(State(state): State<FakeState>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    *state.last_request.lock().unwrap() = Some((auth, body.0));
    axum::Json(answer()).into_response()
}

async fn switch(State(state): State<FakeState>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.healthy.load(Ordering::SeqCst) {
        axum::Json(answer()).into_response()
    } else {
        (StatusCode::BAD_GATEWAY, "upstream down").into_response()
    }
}

async fn malformed(State(state): State<FakeState>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    ([(header::CONTENT_TYPE, "application/json")], "{\"choices\": [").into_response()
}

/// Perplexity stand-in: `/ok`, `/switch` (502 until `healthy`), `/malformed`, each + `/chat/completions`.
pub async fn perplexity() -> Fake {
    let state = FakeState::default();
    let router = Router::new()
        .route("/ok/chat/completions", post(ok))
        .route("/switch/chat/completions", post(switch))
        .route("/malformed/chat/completions", post(malformed))
        .with_state(state.clone());
    Fake { url: serve(router, "127.0.0.1").await, state }
}

const ARTICLE: &str = r#"<!doctype html><html><head><title>The Lighthouse Report</title>
<script>window.tracking = "<not text>";</script><style>p { margin: 0 }</style></head>
<body><nav><a href="/">Home</a></nav><h1>Keeper's log</h1>
<p>The lamp was relit at 21:40 after the storm.</p><p>Fuel left: 40 litres.</p>
<footer>Copyright</footer></body></html>"#;

/// A page server on `ip` (use 127.0.0.2 so tests can allow it without allowing 127.0.0.1):
/// `/article`, `/plain`, `/big` (3 MiB), `/to-loopback` (302 to `loopback_target`),
/// `/loop` (redirects to itself), `/image`.
pub async fn pages(ip: &str, loopback_target: String) -> String {
    let router = Router::new()
        .route("/article", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], ARTICLE) }))
        .route("/plain", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "just text") }))
        .route(
            "/big",
            get(|| async {
                let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; 64 * 1024])));
                let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
                ([(header::CONTENT_TYPE, "text/html")], body)
            }),
        )
        .route(
            "/to-loopback",
            get(move || {
                let target = loopback_target.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
            }),
        )
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }))
        .route("/image", get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 16]) }));
    serve(router, ip).await
}

fn notion_page(title: &str, status: &str, priority: &str) -> Value {
    json!({"object": "page", "id": title, "properties": {
        "Task": {"id": "title", "type": "title", "title": [{"type": "text", "plain_text": title}]},
        "Status": {"id": "s", "type": "status", "status": {"name": status}},
        "Priority": {"id": "p", "type": "select", "select": {"name": priority}}
    }})
}

async fn notion_query(
    State(state): State<FakeState>,
    axum::extract::Path(database): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let version = headers.get("notion-version").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    *state.last_request.lock().unwrap() = Some((auth, json!({"notion_version": version, "database": database})));
    match database.as_str() {
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response(),
        "garbled" => ([(header::CONTENT_TYPE, "application/json")], "{\"object\": \"list\"}").into_response(),
        _ => axum::Json(json!({"object": "list", "has_more": false, "results": [
            notion_page("Ship the harbour app", "In progress", "High"),
            notion_page("Paint the lighthouse", "Not started", "Low")
        ]}))
        .into_response(),
    }
}

/// Notion stand-in: `POST /v1/databases/{id}/query` (`broken` → 500, `garbled` → no results).
pub async fn notion() -> Fake {
    let state = FakeState::default();
    let router = Router::new().route("/v1/databases/{id}/query", post(notion_query)).with_state(state.clone());
    Fake { url: serve(router, "127.0.0.1").await, state }
}
