//! The external tools (`web_search`, `read_link`) against stand-ins: aimock
//! and local axum fakes. Success and failure paths (timeouts, 5xx, breaker
//! opening and recovering, malformed JSON), the SSRF refusals of
//! `read_link`, and the agent using each tool end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "tools/fakes.rs"]
mod fakes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Aimock, TestApp, silent_server, use_openai};
use serde_json::{Value, json};
use valor::agent::tools::notion_query::NotionConfig;
use valor::agent::tools::read_link::{AddressPolicy, ReadLinkLimits, Resolver, SystemResolver};
use valor::agent::tools::resilience::{CallPolicy, ExternalService};
use valor::agent::tools::web_search::WebSearchConfig;
use valor::agent::tools::{NotionQuery, ReadLink, Tool, ToolContext, ToolError, WebSearch};
use valor::monitoring::breaker::{BreakerConfig, BreakerState, CircuitBreakers, ManualClock};

struct Harness {
    context: ToolContext,
    breakers: CircuitBreakers,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = valor::storage::Store::open(&dir.path().join("valor.db")).await.unwrap();
    let context = ToolContext { store, conversation_id: "c".into(), turn_id: "t".into(), is_admin: true, user: None };
    let clock = ManualClock::default();
    let breakers = CircuitBreakers::new(
        BreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(30) },
        Arc::new(clock.clone()),
    );
    Harness { context, breakers, clock, _dir: dir }
}

fn fast_policy() -> CallPolicy {
    CallPolicy {
        attempt_timeout: Duration::from_millis(1500),
        max_retries: 1,
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(10),
    }
}

fn web_search(h: &Harness, base_url: String, policy: CallPolicy) -> WebSearch {
    let config = WebSearchConfig { base_url, api_key: "pplx-test-key".to_owned().into(), model: "sonar".into() };
    WebSearch::new(
        config,
        valor::llm::transport::client_builder().build().unwrap(),
        ExternalService::new("web_search", "web search", h.breakers.clone(), policy),
    )
}

async fn search(tool: &WebSearch, h: &Harness, query: &str) -> Result<String, ToolError> {
    tool.call(&h.context, json!({"query": query})).await
}

#[tokio::test]
async fn web_search_returns_the_answer_with_titled_sources() {
    let h = harness().await;
    let fake = fakes::perplexity().await;
    let tool = web_search(&h, format!("{}/ok", fake.url), fast_policy());
    let result = search(&tool, &h, "latest Rust release").await.unwrap();
    assert_eq!(
        result,
        "Rust 1.95 shipped on 2026-11-20. [1]\n\nSources:\n[1] Announcing Rust 1.95.0 — https://blog.rust-lang.org/2026/11/20/Rust-1.95.0/"
    );
    let (auth, body) = fake.state.last_request.lock().unwrap().clone().unwrap();
    assert_eq!(auth, "Bearer pplx-test-key");
    assert_eq!(body["model"], "sonar");
    assert_eq!(body["messages"][1]["content"], "latest Rust release");
}

#[tokio::test]
async fn web_search_against_aimock_returns_the_plain_answer() {
    let h = harness().await;
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "tallest lighthouse"},
        "response": {"content": "The Jeddah Light, 133 m."}}]))
        .await;
    let tool = web_search(&h, mock.url.clone(), fast_policy());
    assert_eq!(search(&tool, &h, "tallest lighthouse").await.unwrap(), "The Jeddah Light, 133 m.");
    assert_eq!(mock.requests_to("/chat/completions").await.len(), 1);
}

#[tokio::test]
async fn web_search_5xx_is_retried_then_opens_the_breaker_which_recovers_after_a_probe() {
    let h = harness().await;
    let fake = fakes::perplexity().await;
    let tool = web_search(&h, format!("{}/switch", fake.url), fast_policy());
    let error = search(&tool, &h, "q").await.unwrap_err();
    assert_eq!(error, ToolError::RespondToModel("web search is unavailable right now".into()));
    assert_eq!(fake.hits(), 2, "one retry after the first 502");
    search(&tool, &h, "q").await.unwrap_err();
    assert_eq!(h.breakers.state("web_search"), BreakerState::Open);
    let refused = search(&tool, &h, "q").await.unwrap_err();
    assert!(refused.to_string().starts_with("web search is unavailable right now"), "{refused}");
    assert_eq!(fake.hits(), 4, "an open breaker makes no request");

    fake.state.healthy.store(true, Ordering::SeqCst);
    h.clock.advance(Duration::from_secs(30));
    assert!(search(&tool, &h, "q").await.unwrap().starts_with("Rust 1.95"));
    assert_eq!(h.breakers.state("web_search"), BreakerState::Closed);
}

#[tokio::test]
async fn web_search_malformed_json_is_reported_as_unreadable() {
    let h = harness().await;
    let fake = fakes::perplexity().await;
    let tool = web_search(&h, format!("{}/malformed", fake.url), fast_policy());
    let error = search(&tool, &h, "q").await.unwrap_err();
    assert_eq!(
        error,
        ToolError::RespondToModel("web search is unavailable right now (it sent an answer I could not read)".into())
    );
    assert_eq!(h.breakers.snapshot()[0].consecutive_failures, 1);
}

#[tokio::test]
async fn web_search_gives_up_on_a_hung_service_within_its_time_limit() {
    let h = harness().await;
    let (url, _server) = silent_server().await;
    let policy = CallPolicy { attempt_timeout: Duration::from_millis(200), max_retries: 1, ..fast_policy() };
    let tool = web_search(&h, url, policy);
    let started = std::time::Instant::now();
    let error = search(&tool, &h, "q").await.unwrap_err();
    assert_eq!(error.to_string(), "web search is unavailable right now");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// Resolves every name to one fixed address (a DNS answer the test controls).
struct FixedResolver(std::net::IpAddr);

#[async_trait::async_trait]
impl Resolver for FixedResolver {
    async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, port)])
    }
}

fn limits() -> ReadLinkLimits {
    ReadLinkLimits { max_bytes: 2 * 1024 * 1024, max_chars: 2000 }
}

fn read_link(h: &Harness, policy: AddressPolicy, resolver: Arc<dyn Resolver>) -> ReadLink {
    let service = ExternalService::new("read_link", "reading links", h.breakers.clone(), fast_policy());
    ReadLink::with_network(limits(), service, None, policy, resolver)
}

async fn read(tool: &ReadLink, h: &Harness, url: &str) -> Result<String, ToolError> {
    tool.call(&h.context, json!({"url": url})).await
}

#[tokio::test]
async fn read_link_refuses_local_private_and_metadata_addresses_and_other_schemes() {
    let h = harness().await;
    let tool = read_link(&h, AddressPolicy::public_only(), Arc::new(SystemResolver));
    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "file:///etc/passwd",
        "ftp://ftp.example.com/file",
    ] {
        let error = read(&tool, &h, url).await.expect_err(url);
        let text = error.to_string();
        assert!(
            text.contains("private or local address") || text.contains("only http:// and https://"),
            "{url}: {text}"
        );
    }
    let loopback_dns =
        read_link(&h, AddressPolicy::public_only(), Arc::new(FixedResolver("127.0.0.1".parse().unwrap())));
    let error = read(&loopback_dns, &h, "http://innocent.example/").await.unwrap_err();
    assert!(error.to_string().contains("private or local address (127.0.0.1)"), "{error}");
    assert_eq!(h.breakers.snapshot()[0].consecutive_failures, 0, "refusals are not service failures");
}

/// A page server on 127.0.0.2 that the test policy allows, while 127.0.0.1 stays refused.
async fn allowed_page_server(h: &Harness, loopback_target: String) -> (ReadLink, String) {
    let base = fakes::pages("127.0.0.2", loopback_target).await;
    let ip = "127.0.0.2".parse().unwrap();
    (read_link(h, AddressPolicy::public_and(vec![ip]), Arc::new(FixedResolver(ip))), base)
}

#[tokio::test]
async fn read_link_extracts_the_readable_text_of_a_page() {
    let h = harness().await;
    let (tool, base) = allowed_page_server(&h, String::new()).await;
    let port = base.rsplit(':').next().unwrap();
    let text = read(&tool, &h, &format!("http://news.example:{port}/article")).await.unwrap();
    assert_eq!(
        text,
        format!(
            "Title: The Lighthouse Report\nURL: http://news.example:{port}/article\n\nKeeper's log\n\n\
             The lamp was relit at 21:40 after the storm.\n\nFuel left: 40 litres."
        )
    );
    assert!(read(&tool, &h, &format!("{base}/plain")).await.unwrap().ends_with("just text"));
    let error = read(&tool, &h, &format!("{base}/image")).await.unwrap_err();
    assert!(error.to_string().contains("not a text page"), "{error}");
}

#[tokio::test]
async fn read_link_refuses_a_redirect_to_loopback_and_endless_redirects() {
    let h = harness().await;
    let target = fakes::pages("127.0.0.1", String::new()).await;
    let (tool, base) = allowed_page_server(&h, format!("{target}/article")).await;
    let port = base.rsplit(':').next().unwrap();
    let error = read(&tool, &h, &format!("http://public.example:{port}/to-loopback")).await.unwrap_err();
    assert!(error.to_string().contains("private or local address (127.0.0.1)"), "{error}");
    let error = read(&tool, &h, &format!("{base}/loop")).await.unwrap_err();
    assert!(error.to_string().contains("redirects more than 5 times"), "{error}");
}

#[tokio::test]
async fn read_link_refuses_a_body_over_the_size_cap() {
    let h = harness().await;
    let (tool, base) = allowed_page_server(&h, String::new()).await;
    let error = read(&tool, &h, &format!("{base}/big")).await.unwrap_err();
    assert!(error.to_string().contains("larger than 2097152 bytes"), "{error}");
}

#[tokio::test]
async fn read_link_reports_an_unreachable_site_in_one_line() {
    let h = harness().await;
    let (url, _server) = silent_server().await;
    let ip = "127.0.0.1".parse().unwrap();
    let service = ExternalService::new(
        "read_link",
        "reading links",
        h.breakers.clone(),
        CallPolicy { attempt_timeout: Duration::from_millis(200), max_retries: 0, ..fast_policy() },
    );
    let tool =
        ReadLink::with_network(limits(), service, None, AddressPolicy::public_and(vec![ip]), Arc::new(SystemResolver));
    let error = read(&tool, &h, &url).await.unwrap_err();
    assert_eq!(error.to_string(), "reading links is unavailable right now");
}

#[tokio::test]
async fn the_agent_searches_the_web_and_answers_from_the_result() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "who won the regatta", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "web_search", "arguments": {"query": "regatta 2026 winner"}}]}},
        {"match": {"userMessage": "regatta 2026 winner"}, "response": {"content": "Team Aurora won the 2026 regatta."}},
        {"match": {"userMessage": "who won the regatta", "hasToolResult": true},
         "response": {"content": "According to the web search, Team Aurora won."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_openai(s, &mock);
        s.perplexity.api_key = Some("pplx-test".to_owned().into());
        s.perplexity.base_url = mock.url.clone();
    })
    .await;
    let reply = app.send_ok("regatta", "who won the regatta this year?").await;
    assert_eq!(reply["reply"], "According to the web search, Team Aurora won.");
    let call = &reply["tool_calls"][0];
    assert_eq!(call["name"], "web_search");
    assert_eq!(call["output"], "Team Aurora won the 2026 regatta.");
    let last = mock.requests_to("/v1/chat/completions").await.pop().unwrap();
    let tool_result: Vec<&Value> =
        last["body"]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").collect();
    assert!(tool_result[0]["content"].as_str().unwrap().contains("Team Aurora"));

    let health = app.get_json("/health").await;
    let breakers = health["breakers"].as_array().unwrap();
    assert!(breakers.iter().any(|b| b["service"] == "web_search" && b["state"] == "closed"), "{health}");
}

#[tokio::test]
async fn without_a_perplexity_key_web_search_is_not_offered() {
    let app = TestApp::spawn(|_| {}).await;
    let health = app.get_json("/health").await;
    let tools = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "tools").unwrap().clone();
    let names = tools["detail"].as_str().unwrap();
    assert!(!names.contains("web_search") && names.contains("read_link"), "{names}");
}

#[tokio::test]
async fn the_agent_reads_a_link_and_answers_from_the_page() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "what does the keeper say", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "read_link", "arguments": {"url": "http://lighthouse.example/article"}}]}},
        {"match": {"userMessage": "what does the keeper say", "hasToolResult": true},
         "response": {"content": "The lamp was relit at 21:40; 40 litres of fuel are left."}}
    ]))
    .await;
    let base = fakes::pages("127.0.0.2", String::new()).await;
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    struct PortResolver(SocketAddr);
    #[async_trait::async_trait]
    impl Resolver for PortResolver {
        async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(vec![self.0])
        }
    }
    let app = TestApp::spawn_with_tools(
        tempfile::tempdir().unwrap(),
        |s| use_openai(s, &mock),
        move |registry| {
            let service =
                ExternalService::new("read_link", "reading links", registry.breakers().clone(), fast_policy());
            let resolver = Arc::new(PortResolver(SocketAddr::new(ip, port)));
            registry.register(Arc::new(ReadLink::with_network(
                limits(),
                service,
                None,
                AddressPolicy::public_and(vec![ip]),
                resolver,
            )));
        },
    )
    .await;
    let reply = app.send_ok("link", "what does the keeper say on http://lighthouse.example/article").await;
    assert_eq!(reply["reply"], "The lamp was relit at 21:40; 40 litres of fuel are left.");
    let output = reply["tool_calls"][0]["output"].as_str().unwrap();
    assert!(output.contains("Title: The Lighthouse Report") && output.contains("Fuel left: 40 litres."), "{output}");
}

fn notion(h: &Harness, base_url: String) -> NotionQuery {
    let config = NotionConfig {
        base_url,
        api_key: "secret_notion".to_owned().into(),
        default_database: Some("tasks-db".into()),
    };
    NotionQuery::new(
        config,
        valor::llm::transport::client_builder().build().unwrap(),
        ExternalService::new("notion", "Notion", h.breakers.clone(), fast_policy()),
    )
}

#[tokio::test]
async fn notion_query_returns_a_concise_table_of_the_default_database() {
    let h = harness().await;
    let fake = fakes::notion().await;
    let tool = notion(&h, fake.url.clone());
    let table = tool.call(&h.context, json!({})).await.unwrap();
    assert_eq!(
        table,
        "| Task | Priority | Status |\n| --- | --- | --- |\n| Ship the harbour app | High | In progress |\n\
         | Paint the lighthouse | Low | Not started |"
    );
    let (auth, seen) = fake.state.last_request.lock().unwrap().clone().unwrap();
    assert_eq!(auth, "Bearer secret_notion");
    assert_eq!(seen, json!({"notion_version": "2022-06-28", "database": "tasks-db"}));
    let filtered = tool.call(&h.context, json!({"status": "in progress"})).await.unwrap();
    assert!(filtered.contains("Ship the harbour app") && !filtered.contains("Paint"), "{filtered}");
}

#[tokio::test]
async fn notion_query_failures_are_one_line_and_count_against_the_breaker() {
    let h = harness().await;
    let fake = fakes::notion().await;
    let tool = notion(&h, fake.url.clone());
    let error = tool.call(&h.context, json!({"database_id": "broken"})).await.unwrap_err();
    assert_eq!(error.to_string(), "Notion is unavailable right now");
    assert_eq!(fake.hits(), 2, "one retry");
    let error = tool.call(&h.context, json!({"database_id": "garbled"})).await.unwrap_err();
    assert!(error.to_string().contains("could not read"), "{error}");
    assert_eq!(h.breakers.state("notion"), BreakerState::Open);
    let error = tool.call(&h.context, json!({"database_id": "../../etc"})).await.unwrap_err();
    assert!(error.to_string().contains("must be a Notion id"), "{error}");
}

#[tokio::test]
async fn the_agent_lists_notion_tasks_and_answers_from_them() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "what is in progress", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "notion_query", "arguments": {"status": "In progress"}}]}},
        {"match": {"userMessage": "what is in progress", "hasToolResult": true},
         "response": {"content": "One task is in progress: Ship the harbour app."}}
    ]))
    .await;
    let fake = fakes::notion().await;
    let app = TestApp::spawn(|s| {
        use_openai(s, &mock);
        s.notion.api_key = Some("secret_notion".to_owned().into());
        s.notion.base_url = fake.url.clone();
        s.workspaces.push(valor::config::WorkspaceSettings {
            name: "harbour".into(),
            path: "/tmp/harbour".into(),
            chats: vec![],
            notion_database: Some("harbour-db".into()),
            allowed_users: vec![],
            default_branch: None,
        });
    })
    .await;
    let reply = app.send_ok("tasks", "what is in progress in Notion?").await;
    assert_eq!(reply["reply"], "One task is in progress: Ship the harbour app.");
    let output = reply["tool_calls"][0]["output"].as_str().unwrap();
    assert!(output.contains("| Ship the harbour app | High | In progress |"), "{output}");
    assert_eq!(fake.state.last_request.lock().unwrap().clone().unwrap().1["database"], "harbour-db");
}

/// The agent door of the spending limit: a non-admin turn (as Telegram runs
/// them for non-admins) asks for two paid searches under a one-cent limit;
/// the first (≈ 0.6 ¢) runs, the second is refused as a tool error the model
/// sees. An admin turn in the same chat is not limited.
#[tokio::test]
async fn a_non_admin_turn_stops_at_its_chat_s_daily_spending_limit_and_an_admin_turn_does_not() {
    let mock = Aimock::start().await;
    let two_searches = json!({"toolCalls": [
        {"name": "web_search", "arguments": {"query": "tide tables"}},
        {"name": "web_search", "arguments": {"query": "harbour fees"}}]});
    mock.add_fixtures(json!([
        {"match": {"userMessage": "search twice", "hasToolResult": false}, "response": two_searches},
        {"match": {"userMessage": "tide tables"}, "response": {"content": "High tide at 06:12."}},
        {"match": {"userMessage": "harbour fees"}, "response": {"content": "Mooring costs 20 EUR."}},
        {"match": {"userMessage": "search twice", "hasToolResult": true}, "response": {"content": "Done."}}
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(dir.path());
    use_openai(&mut settings, &mock);
    settings.perplexity.api_key = Some("pplx-test".to_owned().into());
    settings.perplexity.base_url = mock.url.clone();
    settings.tools.non_admin_daily_spend_cents = 1;
    settings.jobs.workers = 0;
    let app = valor::app::App::build(settings).await.unwrap();
    let conversation = app
        .store
        .create_conversation(valor::storage::NewConversation {
            title: "harbour chat".into(),
            channel: "telegram".into(),
            chat_id: Some(4242),
        })
        .await
        .unwrap();
    let turn = |is_admin: bool| {
        let request = valor::agent::TurnRequest {
            conversation: conversation.clone(),
            text: "please search twice".into(),
            is_admin,
            images: Vec::new(),
            user: None,
            once_key: None,
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
        let agent = app.agent.clone();
        async move {
            let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
            let outcome = agent.run_turn(request, &sender).await;
            drop(sender);
            drain.await.unwrap();
            outcome
        }
    };

    let outcome = turn(false).await;
    assert_eq!(outcome.reply, "Done.");
    let (ran, refused): (Vec<_>, Vec<_>) = outcome.tool_calls.iter().partition(|call| !call.is_error);
    assert_eq!((ran.len(), refused.len()), (1, 1), "{:#?}", outcome.tool_calls);
    assert!(["High tide at 06:12.", "Mooring costs 20 EUR."].contains(&ran[0].output.as_str()), "{ran:?}");
    assert!(
        refused[0].output.starts_with(
            "web_search is refused: this chat's spending on paid tools is limited to $0.01 a day for non-admins \
             ($0.006 used today, this call costs about $0.006)"
        ),
        "{}",
        refused[0].output
    );
    // Only one search reached Perplexity; the refusal went back to the model.
    let searches = mock.requests_to("/chat/completions").await;
    let to_perplexity = searches.iter().filter(|r| r["body"]["model"] == app.settings.perplexity.model.as_str());
    assert_eq!(to_perplexity.count(), 1);
    let last = mock.requests_to("/v1/chat/completions").await.pop().unwrap();
    assert!(last["body"].to_string().contains("web_search is refused"), "{last}");
    assert_eq!(app.store.spent_since("telegram:4242", 0).await.unwrap(), 6_000);

    let outcome = turn(true).await;
    assert!(outcome.tool_calls.iter().all(|call| !call.is_error), "{:#?}", outcome.tool_calls);
    assert_eq!(app.store.spent_since("telegram:4242", 0).await.unwrap(), 18_000);
}

/// `read_link` with a summarizer on the OpenAI wire (aimock): `max_chars`
/// small enough that the article is "long".
fn summarising_read_link(h: &Harness, model_url: String) -> ReadLink {
    let config = valor::llm::transport::TransportConfig {
        base_url: model_url,
        api_key: Some("sk-test".to_owned().into()),
        request_timeout: Duration::from_secs(10),
        first_byte_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_retries: 0,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
    };
    let model = Arc::new(valor::llm::openai::OpenAiClient::new(config).unwrap());
    let summarizer = valor::agent::tools::read_link::Summarizer { model, model_name: "small-model".into() };
    let service = ExternalService::new("read_link", "reading links", h.breakers.clone(), fast_policy());
    let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let limits = ReadLinkLimits { max_bytes: 1024 * 1024, max_chars: 40 };
    ReadLink::with_network(
        limits,
        service,
        Some(summarizer),
        AddressPolicy::public_and(vec![ip]),
        Arc::new(FixedResolver(ip)),
    )
}

#[tokio::test]
async fn read_link_summarises_a_long_page_with_the_model_and_falls_back_to_the_extract_when_it_fails() {
    let h = harness().await;
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "Summarise this web page"},
        "response": {"content": "- The lamp was relit at 21:40.\n- 40 litres of fuel left."}}]))
        .await;
    let base = fakes::pages("127.0.0.2", String::new()).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://news.example:{port}/article");
    let tool = summarising_read_link(&h, format!("{}/v1", mock.url));
    assert!(tool.cost_microusd() > 0, "summaries cost money");

    let summary = read(&tool, &h, &url).await.unwrap();
    assert_eq!(
        summary,
        format!(
            "Title: The Lighthouse Report\nURL: {url}\nSummary of a long page:\n\n\
             - The lamp was relit at 21:40.\n- 40 litres of fuel left."
        )
    );
    let asked = mock.requests_to("/v1/chat/completions").await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["body"]["model"], "small-model");
    let prompt = asked[0]["body"]["messages"].to_string();
    assert!(prompt.contains("Title: The Lighthouse Report") && prompt.contains("Fuel left: 40 litres."), "{prompt}");

    // The model fails (a 500, no retries here): the cut extract comes back instead.
    mock.queue_error(500, "server_error", "the model is down").await;
    let fallback = read(&tool, &h, &url).await.unwrap();
    assert!(fallback.starts_with(&format!("Title: The Lighthouse Report\nURL: {url}\n\n")), "{fallback}");
    assert!(!fallback.contains("Summary of a long page"), "{fallback}");
    let body = fallback.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    assert!(body.starts_with("Keeper's log") && body.chars().count() <= 41, "{body:?}");

    // An unreachable model gives the same fallback, and the page fetch is not blamed.
    let unreachable = summarising_read_link(&h, format!("{}/v1", common::closed_port_url().await));
    let fallback = read(&unreachable, &h, &url).await.unwrap();
    assert!(fallback.starts_with("Title: The Lighthouse Report") && !fallback.contains("Summary"), "{fallback}");
    assert!(h.breakers.snapshot().iter().all(|b| b.consecutive_failures == 0));
}
