//! Unit tests for the transport: status classification from recorded error
//! bodies, `retry-after` parsing, backoff arithmetic, the retry loop (with
//! paused time), the silence timeout, and key redaction over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::header::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::llm::sse::fixture;

fn config(max_retries: u32) -> TransportConfig {
    TransportConfig {
        base_url: "http://127.0.0.1:9".into(),
        api_key: Some(SecretString::from("sk-secret-key-42".to_owned())),
        request_timeout: Duration::from_secs(5),
        first_byte_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_retries,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(1000),
    }
}

#[test]
fn anthropic_prompt_too_long_is_context_too_long() {
    let body = fixture("anthropic_error_context_too_long.json");
    assert_eq!(classify_status(400, None, &body), LlmError::ContextTooLong);
}

#[test]
fn openai_context_length_exceeded_is_context_too_long_for_400_413_and_422() {
    let body = fixture("openai_error_context_length.json");
    for status in [400, 413, 422] {
        assert_eq!(classify_status(status, None, &body), LlmError::ContextTooLong, "status {status}");
    }
}

#[test]
fn other_client_errors_are_bad_requests_with_the_provider_message() {
    let body = fixture("openai_error_400_bad_tool.json");
    let err = classify_status(400, None, &body);
    assert!(
        matches!(&err, LlmError::BadRequest(message) if message.starts_with("Invalid schema for function 'get_weather'"))
    );
    assert_eq!(classify_status(404, None, "not json"), LlmError::BadRequest("HTTP 404".into()));
}

#[test]
fn long_provider_messages_are_truncated_to_about_300_characters() {
    let body = serde_json::json!({ "error": { "message": "é".repeat(1000) } }).to_string();
    let LlmError::BadRequest(message) = classify_status(422, None, &body) else { panic!("not a bad request") };
    assert_eq!(message.chars().count(), 301);
}

#[test]
fn unauthorized_and_forbidden_are_auth_errors() {
    let body = fixture("anthropic_error_401.json");
    assert_eq!(classify_status(401, None, &body), LlmError::Auth("invalid x-api-key".into()));
    assert!(matches!(classify_status(403, None, ""), LlmError::Auth(_)));
}

#[test]
fn rate_limit_and_overload_keep_the_requested_delay() {
    let wait = Some(Duration::from_secs(7));
    let body = fixture("anthropic_error_429.json");
    assert_eq!(classify_status(429, wait, &body), LlmError::RateLimited { retry_after: wait });
    let body = fixture("anthropic_error_529.json");
    assert_eq!(classify_status(529, wait, &body), LlmError::Overloaded { retry_after: wait });
    assert_eq!(classify_status(503, None, ""), LlmError::Overloaded { retry_after: None });
}

#[test]
fn other_server_errors_keep_their_status() {
    assert_eq!(classify_status(500, None, "oops"), LlmError::Server { status: 500 });
    assert_eq!(classify_status(502, None, ""), LlmError::Server { status: 502 });
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn retry_after_accepts_seconds_milliseconds_and_http_dates() {
    let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&chrono::Utc);
    assert_eq!(parse_retry_after(&headers(&[("retry-after", "12")]), now), Some(Duration::from_secs(12)));
    assert_eq!(
        parse_retry_after(&headers(&[("retry-after", "12"), ("retry-after-ms", "1500")]), now),
        Some(Duration::from_millis(1500))
    );
    let date = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
    assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
    let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]);
    assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after(&headers(&[("retry-after", "soon")]), now), None);
    assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn backoff_doubles_from_the_base_up_to_the_maximum() {
    let config = config(5);
    let delays: Vec<u128> = (0..6).map(|n| retry_delay(&config, n, None, 1.0).as_millis()).collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(retry_delay(&config, 1, None, 0.5), Duration::from_millis(100));
}

#[test]
fn retry_after_wins_when_longer_than_backoff_but_is_capped() {
    let config = config(5);
    assert_eq!(retry_delay(&config, 0, Some(Duration::from_secs(3)), 1.0), Duration::from_secs(3));
    assert_eq!(retry_delay(&config, 3, Some(Duration::from_millis(1)), 1.0), Duration::from_millis(800));
    assert_eq!(retry_delay(&config, 0, Some(Duration::from_secs(3600)), 1.0), MAX_RETRY_DELAY);
}

async fn count_attempts(config: &TransportConfig, failure: LlmError) -> (u32, Result<(), LlmError>) {
    let attempts = Arc::new(AtomicU32::new(0));
    let result = with_retries(config, || {
        let attempts = attempts.clone();
        let failure = failure.clone();
        async move {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(failure)
        }
    })
    .await;
    (attempts.load(Ordering::SeqCst), result)
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_max_retries_times() {
    let (attempts, result) = count_attempts(&config(3), LlmError::Overloaded { retry_after: None }).await;
    assert_eq!(attempts, 4);
    assert_eq!(result, Err(LlmError::Overloaded { retry_after: None }));
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_are_returned_after_one_attempt() {
    let (attempts, result) = count_attempts(&config(3), LlmError::Auth("bad key".into())).await;
    assert_eq!(attempts, 1);
    assert!(matches!(result, Err(LlmError::Auth(_))));
}

#[tokio::test(start_paused = true)]
async fn the_retry_loop_waits_for_retry_after() {
    let started = tokio::time::Instant::now();
    let wait = Some(Duration::from_secs(20));
    let (attempts, _) = count_attempts(&config(1), LlmError::RateLimited { retry_after: wait }).await;
    assert_eq!(attempts, 2);
    assert!(started.elapsed() >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_ends_with_a_timeout_after_the_last_chunk() {
    let first = futures::stream::iter(vec![Ok(Bytes::from_static(b"data: 1\n\n"))]);
    let body = first.chain(futures::stream::pending());
    let mut stream = with_silence_timeout(body, Duration::from_secs(30));
    assert_eq!(stream.next().await.unwrap().unwrap(), Bytes::from_static(b"data: 1\n\n"));
    assert_eq!(stream.next().await.unwrap(), Err(LlmError::Timeout));
    assert!(stream.next().await.is_none());
}

/// A one-shot HTTP server that answers 401 echoing the key it was sent.
async fn echoing_unauthorized_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; 8192];
        let read = socket.read(&mut buffer).await.unwrap();
        let request = String::from_utf8_lossy(&buffer[..read]).to_string();
        let key = request.lines().find_map(|line| line.strip_prefix("x-api-key: ")).unwrap_or("").to_owned();
        let body =
            serde_json::json!({ "error": { "message": format!("Incorrect API key provided: {key}") } }).to_string();
        let response = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_failing_request_never_puts_the_api_key_in_the_error() {
    let mut config = config(0);
    config.base_url = echoing_unauthorized_server().await;
    let transport = Transport::new(config).unwrap();
    let key = transport.api_key().unwrap().to_owned();
    let err = transport
        .send_json(|client| client.post(transport.url("/v1/messages")).header("x-api-key", key.as_str()).body("{}"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, LlmError::Auth(_)), "{err:?}");
    assert!(shown.contains("Incorrect API key provided: [redacted]"), "{shown}");
    assert!(!shown.contains("sk-secret-key-42"), "{shown}");
    assert!(!format!("{err:?}").contains("sk-secret-key-42"));
}

#[tokio::test]
async fn a_closed_port_is_a_network_error_without_the_key() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = config(0);
    config.base_url = format!("http://{address}");
    let transport = Transport::new(config).unwrap();
    let key = transport.api_key().unwrap().to_owned();
    let url = format!("{}/v1/messages?key={key}", transport.url(""));
    let err = transport.send_json(|client| client.post(&url).bearer_auth(&key)).await.unwrap_err();
    assert!(matches!(err, LlmError::Network(_)), "{err:?}");
    assert!(!err.to_string().contains("sk-secret-key-42"), "{err}");
}

#[test]
fn a_key_echoed_in_an_error_body_is_redacted() {
    let body = fixture("openai_error_401.json");
    let err = redact(classify_status(401, None, &body), Some("sk-proj-SECRETKEY123"));
    assert!(matches!(&err, LlmError::Auth(message) if message.starts_with("Incorrect API key provided: [redacted].")));
    assert!(!err.to_string().contains("SECRETKEY"));
}
