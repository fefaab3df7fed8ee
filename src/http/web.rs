//! The embedded web chat and docs page: files under `web/` compiled into the
//! binary (no CDN, works offline).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const DOCS_HTML: &str = include_str!("../../web/docs.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const DASHBOARD_JS: &str = include_str!("../../web/dashboard.js");
/// highlight.js 11.12.0, its "common" build (36 languages; BSD-3-Clause,
/// `web/vendor/highlight.js.LICENSE`): syntax colours for fenced code.
const HIGHLIGHT_JS: &str = include_str!("../../web/vendor/highlight.min.js");

/// The chat page runs only its own scripts (never inline ones), loads
/// images only from here, and connects only here: a second wall behind the
/// Markdown renderer's escaping.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// The web chat (with the Jobs and Status tabs), with the server's message length limit for the composer's counter.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The web chat page", content_type = "text/html")))]
pub async fn index(axum::extract::State(state): axum::extract::State<super::HttpState>) -> Response {
    let page = INDEX_HTML.replace("{{max_message_chars}}", &state.settings.max_message_chars.to_string());
    ([(header::CONTENT_SECURITY_POLICY, PAGE_POLICY)], Html(page)).into_response()
}

/// This page: the API described from `/openapi.json`, with examples and the event streams.
#[utoipa::path(get, path = "/docs", tag = "web",
    responses((status = 200, description = "The API docs page", content_type = "text/html")))]
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

/// The web chat's script and style sheet, compiled into the binary.
#[utoipa::path(get, path = "/assets/{file}", tag = "web",
    params(("file" = String, Path, description = "app.js, app.css or dashboard.js")),
    responses((status = 200, description = "The file (JavaScript or CSS)"), (status = 404, description = "No such asset")))]
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "highlight.min.js" => (HIGHLIGHT_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
