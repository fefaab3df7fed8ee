//! `/openapi.json` (what `/docs` renders) against the real server: every
//! route of the router (read from `src/http/mod.rs`) has an entry with its
//! methods; the turn's SSE events are documented with the fields a real
//! stream carries; the examples have the fields of real answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Aimock, TestApp, parse_sse, repo_root, use_anthropic};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The string literal starting at `text[0] == '"'` and the index after it.
fn literal(text: &str) -> (&str, usize) {
    let end = text[1..].find('"').expect("an unterminated string") + 1;
    (&text[1..end], end + 1)
}

/// The text inside the parentheses that open at `text[0] == '('`.
fn parenthesised(text: &str) -> &str {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..at];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {text}");
}

/// The router's routes → methods, as `src/http/mod.rs` declares them:
/// routes of the `api` router are nested under `/api`, services nested
/// with `nest_service` are listed without methods.
fn declared_routes() -> BTreeMap<String, BTreeSet<String>> {
    let source = std::fs::read_to_string(repo_root().join("src/http/mod.rs")).unwrap();
    let body = &source[source.find("pub fn router_with_mcp").expect("router_with_mcp is gone")..];
    assert!(body.contains(".nest(\"/api\", api)"), "the API is no longer nested at /api; update this test");
    let api_end = body.find("let mut router").expect("the router's shape changed; update this test");
    let mut routes = BTreeMap::new();
    for (at, _) in body.match_indices(".route(") {
        let args = parenthesised(&body[at + ".route".len()..]);
        let (path, rest) = literal(args.trim_start());
        let path = if at < api_end { format!("/api{path}") } else { path.to_owned() };
        let methods: BTreeSet<String> = METHODS
            .iter()
            .filter(|method| {
                args[rest..].match_indices(&format!("{method}(")).any(|(i, _)| {
                    let before = args[rest..][..i].chars().last();
                    before.is_none_or(|c| !c.is_alphanumeric() && c != '_')
                })
            })
            .map(|method| (*method).to_owned())
            .collect();
        assert!(!methods.is_empty(), "no method found for {path}: {args}");
        routes.insert(path, methods);
    }
    for (at, _) in body.match_indices(".nest_service(") {
        let (path, _) = literal(parenthesised(&body[at + ".nest_service".len()..]).trim_start());
        routes.insert(path.to_owned(), BTreeSet::new());
    }
    assert!(routes.len() >= 20, "only {} routes found; the parser is out of step with mod.rs", routes.len());
    routes
}

#[tokio::test]
async fn every_route_of_the_router_is_in_the_api_document_with_its_methods() {
    let app = TestApp::spawn(|_| {}).await;
    let doc = app.get_json("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    let (mut missing, mut undescribed): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (path, methods) in declared_routes() {
        let Some(item) = paths.get(&path) else {
            missing.push(path);
            continue;
        };
        if methods.is_empty() {
            assert!(METHODS.iter().any(|m| item[m].is_object()), "{path} documents no method");
        }
        for method in methods {
            let operation = &item[&method];
            if !operation.is_object() {
                missing.push(format!("{} {path}", method.to_uppercase()));
                continue;
            }
            let said = [&operation["summary"], &operation["description"]]
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<String>();
            if said.trim().is_empty() {
                undescribed.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "routes without an entry in /openapi.json (and so in /docs): {missing:?}");
    assert!(undescribed.is_empty(), "routes without a summary or description: {undescribed:?}");
    // The docs page is served and reads the document.
    let page = app.http.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/openapi.json") && page.contains("x-sse-events"), "the docs page does not render events");
}

/// Field names of an object, recursively (arrays: their first element); scalars have none.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => items.first().map(shape).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Like `shape`, but a documented `null` or scalar matches anything (an
/// optional field can be absent from the real answer's nested objects only
/// if the example shows it as null).
fn same_shape(documented: &Value, real: &Value, at: &str) {
    match (documented, real) {
        (Value::Object(doc), Value::Object(real)) => {
            let (a, b): (BTreeSet<_>, BTreeSet<_>) = (doc.keys().collect(), real.keys().collect());
            assert_eq!(a, b, "the example at {at} has other fields than the real answer");
            for (key, value) in doc {
                same_shape(value, &real[key], &format!("{at}.{key}"));
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (doc, real) => assert_eq!(doc, real, "at {at}"),
    }
}

fn example(doc: &Value, pointer: &str) -> Value {
    doc.pointer(pointer).unwrap_or_else(|| panic!("no example at {pointer}")).clone()
}

#[tokio::test]
async fn the_turn_events_and_the_examples_match_what_the_server_sends() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "launch date", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": "launch"}}]}},
        {"match": {"userMessage": "launch date", "hasToolResult": true},
         "response": {"content": "We agreed the launch is on **March 3**."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.jobs.workers = 0;
    })
    .await;
    let doc = app.get_json("/openapi.json").await;
    let post = &doc["paths"]["/api/messages"]["post"];

    // Every event the stream can send is documented (names from AgentEvent::name in events.rs).
    let events = std::fs::read_to_string(repo_root().join("src/agent/events.rs")).unwrap();
    let name_fn = &events[events.find("pub fn name(&self)").unwrap()..];
    let name_fn = &name_fn[..name_fn.find("\n    }\n").unwrap()];
    let mut emitted: BTreeSet<&str> =
        name_fn.match_indices("=> \"").map(|(i, _)| literal(&name_fn[i + 3..]).0).collect();
    // The web's own event beside the agent's: the answer so far, rendered.
    emitted.insert("text_html");
    let documented: BTreeMap<&str, &Value> = post["x-sse-events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            assert!(!event["description"].as_str().unwrap().is_empty());
            (event["event"].as_str().unwrap(), &event["data"])
        })
        .collect();
    assert_eq!(emitted.len(), 8, "{emitted:?}");
    assert_eq!(documented.keys().copied().collect::<BTreeSet<_>>(), emitted, "documented events ≠ events sent");

    // A real streamed turn: each event's data has the documented fields.
    let streamed = app.send_streamed("docs", "What was the launch date again?").await;
    let names: Vec<&str> = streamed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"turn_started"));
    assert_eq!(names.last(), Some(&"done"));
    assert!(names.contains(&"tool_started") && names.contains(&"text_delta"), "{names:?}");
    for (name, data) in &streamed {
        same_shape(&shape(documented[name.as_str()]), &shape(data), name);
    }
    // The documented stream is valid SSE of the same events.
    let wire = example(&doc, "/paths/~1api~1messages/post/responses/200/content/text~1event-stream/example");
    let parsed = parse_sse(wire.as_str().unwrap());
    assert_eq!(parsed.first().unwrap().0, "turn_started");
    for (name, data) in &parsed {
        assert_eq!(&shape(documented[name.as_str()]), &shape(data), "{name}");
    }

    // The JSON examples have the fields of the real answers.
    let reply = app.send_ok("docs", "What was the launch date again?").await;
    let documented = example(&doc, "/paths/~1api~1messages/post/responses/200/content/application~1json/example");
    same_shape(&shape(&documented), &shape(&reply), "POST /api/messages");
    let conversations = app.get_json("/api/conversations").await;
    let documented = example(&doc, "/paths/~1api~1conversations/get/responses/200/content/application~1json/example");
    same_shape(&shape(&documented), &shape(&conversations), "GET /api/conversations");
    let store = app.store().await;
    let job = valor::storage::NewJob {
        kind: "claude_code".into(),
        payload: json!({"task": "Add a hello file", "workspace": "shop"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 2,
        conversation_id: None,
        idempotency_key: None,
    };
    let now = valor::storage::wall_clock_ms();
    let id = store.enqueue_job(job, now).await.unwrap().job.id;
    store.claim_job("w", now, 60_000, &Default::default()).await.unwrap().unwrap();
    let result = json!({"summary": "Added hello.txt.", "files_changed": ["hello.txt"], "branch": "valor/1-x",
        "base_branch": "main", "commit": "abc", "diff_stat": "1 file changed", "cost_usd": 0.01, "turns": 2});
    store.complete_job(id, "w", &result, now).await.unwrap().unwrap();
    let real = app.get_json(&format!("/api/jobs/{id}")).await;
    let documented = example(&doc, "/paths/~1api~1jobs~1{id}/get/responses/200/content/application~1json/example");
    let (mut documented, mut real) = (shape(&documented), shape(&real));
    // The raw result is free-form; its typed view, code_run, is what is compared.
    documented["result"] = Value::Null;
    real["result"] = Value::Null;
    same_shape(&documented, &real, "GET /api/jobs/{id}");
    let missing = app.http.get(app.url("/api/jobs/999999")).send().await.unwrap().json::<Value>().await.unwrap();
    let documented = example(&doc, "/paths/~1api~1jobs~1{id}/get/responses/404/content/application~1json/example");
    same_shape(&shape(&documented), &shape(&missing), "GET /api/jobs/{id} 404");
}
