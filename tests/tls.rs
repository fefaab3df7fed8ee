//! HTTPS with valor's one TLS crypto provider (ring, installed by
//! `llm::transport::client_builder`; reqwest is built without a provider of
//! its own). A local rustls server with a test certificate
//! (`tests/fixtures/tls/`: a test CA, and a `localhost`/127.0.0.1 leaf it
//! signed, valid until 2126) stands in for a real HTTPS endpoint:
//! - a client trusting the test CA completes a real handshake and gets the answer;
//! - valor's own clients (system roots) refuse the untrusted certificate with a
//!   certificate error, never a "no crypto provider" panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;
use valor::llm::LlmError;
use valor::llm::transport::{Transport, TransportConfig, client_builder};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A TLS server on 127.0.0.1 answering every request with `200 ok`; it uses
/// ring explicitly, so the process-wide provider is left to valor to install.
fn spawn_tls_server() -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/localhost.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/localhost.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || serve_one(config, stream));
        }
    });
    address
}

fn serve_one(config: Arc<rustls::ServerConfig>, stream: std::net::TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // A client that refuses the certificate ends the handshake: nothing to answer.
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn test_ca() -> reqwest::Certificate {
    reqwest::Certificate::from_pem(&std::fs::read(format!("{FIXTURES}/ca.pem")).unwrap()).unwrap()
}

#[tokio::test]
async fn a_client_trusting_the_test_ca_completes_a_tls_handshake() {
    let address = spawn_tls_server();
    let client = client_builder()
        .tls_certs_only([test_ca()])
        .resolve("localhost", address)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client.get(format!("https://localhost:{}/", address.port())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    // The provider valor installed is the process default; it is ring's
    // (aws-lc-rs is not compiled in: see `cargo tree -i aws-lc-rs`).
    let installed = rustls::crypto::CryptoProvider::get_default().expect("client_builder installs a provider");
    let ring = rustls::crypto::ring::default_provider();
    assert_eq!(
        installed.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>(),
        ring.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_same_certificate_for_the_wrong_name_is_refused() {
    let address = spawn_tls_server();
    let client = client_builder().tls_certs_only([test_ca()]).resolve("valor.invalid", address).build().unwrap();
    let error = client.get(format!("https://valor.invalid:{}/", address.port())).send().await.unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("certificate"), "expected a certificate error, got: {chain}");
}

#[tokio::test]
async fn a_model_transport_refuses_an_untrusted_certificate_with_a_clear_error() {
    let address = spawn_tls_server();
    let transport = Transport::new(TransportConfig {
        base_url: format!("https://127.0.0.1:{}", address.port()),
        api_key: Some(SecretString::from("sk-test-secret-key")),
        request_timeout: Duration::from_secs(10),
        first_byte_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_retries: 0,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(10),
    })
    .unwrap();
    let url = transport.url("/v1/messages");
    let error = transport.send_json(|client| client.post(&url).body("{}")).await.unwrap_err();
    match &error {
        LlmError::Network(message) => {
            assert!(message.to_lowercase().contains("certificate"), "not a certificate error: {message}");
            assert!(!message.contains("sk-test-secret-key"));
        }
        other => panic!("expected a network error naming the certificate, got {other:?}"),
    }
}

#[test]
fn every_client_constructor_builds_without_a_provider_of_its_own() {
    // Each constructor reaches reqwest only through `client_builder`.
    valor::llm::ollama::OllamaClient::new("http://127.0.0.1:11434".into(), Duration::from_secs(1)).unwrap();
    valor::channels::telegram::api::BotApi::new("https://api.telegram.org", SecretString::from("1:token")).unwrap();
    client_builder().build().unwrap();
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error;
    while let Some(source) = current.source() {
        text.push_str(": ");
        text.push_str(&source.to_string());
        current = source;
    }
    text.to_lowercase()
}
