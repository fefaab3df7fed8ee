//! The jobs API and the promise flow through the real app: `/api/jobs…`
//! (404, 409, 401 paths included), and a model that queues a background task
//! whose result lands in the conversation exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Aimock, TestApp, use_anthropic};
use serde_json::{Value, json};
use valor::storage::{NewJob, wall_clock_ms};

fn echo_job(key: Option<&str>) -> NewJob {
    NewJob {
        kind: "echo".into(),
        payload: json!({"n": 1}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: key.map(str::to_owned),
    }
}

async fn post(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.post(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn jobs_can_be_listed_shown_cancelled_and_retried_with_clear_errors() {
    let app = TestApp::spawn(|s| s.jobs.workers = 0).await;
    let store = app.store().await;
    let first = store.enqueue_job(echo_job(None), wall_clock_ms()).await.unwrap().job.id;
    let second = store.enqueue_job(echo_job(Some("k")), wall_clock_ms()).await.unwrap().job.id;

    let (status, list) = get(&app, "/api/jobs").await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = list["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [second, first], "newest first");
    let (status, shown) = get(&app, &format!("/api/jobs/{first}")).await;
    assert_eq!((status, shown["status"].as_str(), shown["kind"].as_str()), (200, Some("queued"), Some("echo")));

    let (status, missing) = get(&app, "/api/jobs/999999").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, missing) = post(&app, "/api/jobs/999999/cancel").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = get(&app, "/api/jobs?status=bogus").await;
    assert_eq!(status, 400);

    let (status, cancelled) = post(&app, &format!("/api/jobs/{first}/cancel")).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, conflict) = post(&app, &format!("/api/jobs/{first}/cancel")).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["code"], "conflict");
    assert!(conflict["error"]["message"].as_str().unwrap().contains("already cancelled"), "{conflict}");

    let (status, retried) = post(&app, &format!("/api/jobs/{first}/retry")).await;
    assert_eq!((status, retried["status"].as_str(), retried["retries"].as_i64()), (200, Some("queued"), Some(1)));
    let (status, conflict) = post(&app, &format!("/api/jobs/{second}/retry")).await;
    assert_eq!(status, 409);
    assert!(conflict["error"]["message"].as_str().unwrap().contains("only failed or cancelled"), "{conflict}");

    let (_, queued) = get(&app, "/api/jobs?status=queued&limit=1").await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 1);
    let openapi = app.get_json("/openapi.json").await;
    for path in ["/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/cancel", "/api/jobs/{id}/retry"] {
        assert!(openapi["paths"][path].is_object(), "openapi lacks {path}");
    }
}

/// A finished job's progress is its end, not its first note: the card used to
/// read "100 % — started working on it" after success.
#[tokio::test]
async fn a_finished_job_no_longer_shows_its_first_progress_note() {
    let app = TestApp::spawn(|s| s.jobs.workers = 0).await;
    let store = app.store().await;
    let id = store.enqueue_job(echo_job(None), wall_clock_ms()).await.unwrap().job.id;
    let job = store.claim_job("w", wall_clock_ms(), 60_000, &Default::default()).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert!(store.update_job_progress(id, "w", "started working on it", Some(0), wall_clock_ms()).await.unwrap());
    let (_, running) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(
        (running["progress_text"].as_str(), running["progress_percent"].as_i64()),
        (Some("started working on it"), Some(0))
    );

    store.complete_job(id, "w", &json!({"reply": "done"}), wall_clock_ms()).await.unwrap().unwrap();
    let (_, done) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress_percent"], 100, "{done}");
    assert!(done["progress_text"].is_null(), "a finished job still shows its running note: {done}");
    assert!(!store.get_job(id).await.unwrap().summary().contains("started working"));
}

/// A code run that is still running shows the files it touched so far and
/// its current tool (from its live status), before its result exists.
#[tokio::test]
async fn a_running_code_run_shows_the_files_it_touched_so_far() {
    let app = TestApp::spawn(|s| s.jobs.workers = 0).await;
    let store = app.store().await;
    let web = valor::storage::NewConversation { title: "runs".into(), channel: "web".into(), chat_id: None };
    let conversation = store.create_conversation(web).await.unwrap().id;
    let new = NewJob {
        kind: "claude_code".into(),
        payload: json!({"task": "Add a greeting", "workspace": "shop"}),
        conversation_id: Some(conversation.clone()),
        ..echo_job(None)
    };
    let id = store.enqueue_job(new, wall_clock_ms()).await.unwrap().job.id;
    store.claim_job("w", wall_clock_ms(), 60_000, &Default::default()).await.unwrap().unwrap();
    let live = json!({"phase": "working", "headline": "Claude Code is starting in workspace \"shop\"",
        "tool": "Edit: src/greet.rs", "files": ["src/greet.rs", "README.md"], "file_count": 2, "note": null,
        "attempt": 1, "max_attempts": 3, "started_at_ms": wall_clock_ms(), "ended_at_ms": null});
    assert!(store.save_job_status_state((id, 0), &conversation, &live, false).await.unwrap());

    let (_, job) = get(&app, &format!("/api/jobs/{id}")).await;
    let run = &job["code_run"];
    assert_eq!(run["files_changed"], json!(["src/greet.rs", "README.md"]), "{job}");
    assert_eq!((run["tool"].as_str(), run["workspace"].as_str()), (Some("Edit: src/greet.rs"), Some("shop")), "{job}");
    assert!(run["branch"].is_null() && run["cost_usd"].is_null(), "{job}");
}

#[tokio::test]
async fn the_jobs_api_requires_the_bearer_token_when_tokens_are_configured() {
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.server.api_tokens = vec!["right-token".to_owned().into()];
    })
    .await;
    for (method, path) in [("GET", "/api/jobs"), ("GET", "/api/jobs/1"), ("POST", "/api/jobs/1/cancel")] {
        let request = app.http.request(method.parse().unwrap(), app.url(path));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    let ok = app.http.get(app.url("/api/jobs")).bearer_auth("right-token").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_queued_task_answers_at_once_and_its_result_arrives_in_the_conversation_exactly_once() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "dig into the moon landings", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "queue_task", "arguments": {"task": "Summarise every crewed lunar landing"}}]}},
        {"match": {"userMessage": "dig into the moon landings", "hasToolResult": true},
         "response": {"content": "On it — I'll report back."}},
        {"match": {"userMessage": "Summarise every crewed lunar landing"},
         "response": {"content": "Six crewed landings, Apollo 11 to 17, 1969–1972."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.jobs.workers = 0;
    })
    .await;

    let reply = app.send_ok("moon", "Please dig into the moon landings in the background").await;
    assert_eq!(reply["reply"], "On it — I'll report back.");
    let call = &reply["tool_calls"][0];
    assert_eq!(call["name"], "queue_task");
    let output = call["output"].as_str().unwrap();
    let (status, jobs) = get(&app, "/api/jobs").await;
    assert_eq!(status, 200);
    let job = &jobs["jobs"][0];
    let id = job["id"].as_i64().unwrap();
    assert!(output.contains(&format!("job #{id}")), "the model was not told the job id: {output}");
    assert_eq!((job["kind"].as_str(), job["status"].as_str()), (Some("agent_task"), Some("queued")));
    let conversation = reply["conversation"].as_str().unwrap().to_owned();
    assert_eq!(job["conversation_id"], conversation.as_str());

    // Drain twice: the second pass must neither rerun the job nor repeat the notice.
    let worker = app.job_worker("test-worker");
    let outcome = worker.try_execute_next().await.unwrap().expect("the queued task did not run");
    assert_eq!(outcome.job_id, id);
    assert!(worker.try_execute_next().await.unwrap().is_none());
    let second_worker = app.job_worker("another-worker");
    assert!(second_worker.try_execute_next().await.unwrap().is_none());

    let (_, done) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["reply"], "Six crewed landings, Apollo 11 to 17, 1969–1972.");
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let notices: Vec<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].starts_with(&format!("✅ **Job #{id}** · done · ")), "{notices:?}");
    // Its headline says what the job is, which stays true once it is done (not "started working on it").
    assert!(notices[0].ends_with("\nTask: Summarise every crewed lunar landing"), "{notices:?}");
    assert!(notices[1].starts_with(&format!("Job #{id} (agent_task) finished.")), "{notices:?}");
    assert!(notices[1].contains("Six crewed landings"), "{notices:?}");
    // The recorder is global to the test process: other tests' agent tasks count here too.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let succeeded = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"valor_jobs_total{kind="agent_task",outcome="succeeded"} "#))
        .and_then(|count| count.trim().parse::<u64>().ok());
    assert!(succeeded >= Some(1), "job outcome metric missing: {metrics}");
    // The background turn ran in its own conversation, not in the user's.
    let roles: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "user").count(), 1);
}

#[tokio::test]
async fn valor_serve_runs_configured_schedules() {
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.schedules = vec![valor::config::ScheduleSettings {
            name: "every-second".into(),
            cron: "* * * * * *".into(),
            kind: "report".into(),
            payload: json!({"what": "tick"}),
            conversation: None,
            priority: 0,
            timezone: Some("Asia/Tokyo".into()),
        }];
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = get(&app, "/api/jobs").await;
        if let Some(job) = list["jobs"].as_array().unwrap().first() {
            assert_eq!((job["kind"].as_str(), &job["payload"]), (Some("report"), &json!({"what": "tick"})));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the scheduler never queued a job");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A background task that meets a passing model outage is tried again with
/// the queue's backoff and then succeeds; one the provider refuses fails at
/// once with the reason.
#[tokio::test]
async fn a_passing_model_outage_is_retried_and_a_refusal_fails_at_once() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "research it", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "queue_task", "arguments": {"task": "Find the boiling point of water"}}]}},
        {"match": {"userMessage": "research it", "hasToolResult": true}, "response": {"content": "Queued."}},
        {"match": {"userMessage": "Find the boiling point of water"}, "response": {"content": "100 °C at sea level."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.jobs.workers = 0;
        s.jobs.backoff_base_ms = 10;
        s.jobs.backoff_max_ms = 10;
        s.llm.max_retries = 0;
    })
    .await;
    let worker = app.job_worker("test-worker");

    app.send_ok("outage", "research it").await;
    let (_, jobs) = get(&app, "/api/jobs").await;
    let id = jobs["jobs"][0]["id"].as_i64().unwrap();
    assert_eq!(jobs["jobs"][0]["max_attempts"], 3, "the default of jobs.max_attempts, as in valor.example.toml");
    mock.queue_error(529, "overloaded_error", "Overloaded").await;
    worker.try_execute_next().await.unwrap().expect("the first attempt ran");
    let (_, job) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "queued", "an overloaded model is a passing outage: {job}");
    assert_eq!(job["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    worker.try_execute_next().await.unwrap().expect("the retry ran");
    let (_, job) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["reply"], "100 °C at sea level.");
    let conversation = job["conversation_id"].as_str().unwrap();
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let said: Vec<&str> = messages["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        said.iter()
            .any(|text| text.contains(&format!("**Job #{id}**")) && text.contains("trying again (attempt 2 of 3)")),
        "the chat is told about the re-run: {said:?}"
    );

    mock.add_fixtures(json!([
        {"match": {"userMessage": "look it up too", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "queue_task", "arguments": {"task": "Find the melting point of iron"}}]}},
        {"match": {"userMessage": "look it up too", "hasToolResult": true}, "response": {"content": "Queued."}},
    ]))
    .await;
    app.send_ok("refused", "look it up too").await;
    let (_, jobs) = get(&app, "/api/jobs?status=queued").await;
    let id = jobs["jobs"][0]["id"].as_i64().unwrap();
    mock.queue_error(401, "authentication_error", "invalid x-api-key").await;
    worker.try_execute_next().await.unwrap().expect("the job ran");
    let (_, job) = get(&app, &format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "a refused key is not retried: {job}");
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].as_str().unwrap().contains("rejected valor's API key"), "{job}");
}

/// Cancelling a running background task stops its turn the way Stop does:
/// the turn is recorded `cancelled` (not left `running`), what was streamed
/// is kept marked stopped, and the job ends cancelled.
#[tokio::test]
async fn cancelling_a_running_agent_task_stops_its_turn_and_records_it_cancelled() {
    let mock = Aimock::start_with(&["-l", "150", "-c", "5"]).await;
    let answer = "A background answer that streams slowly, five characters at a time, for many seconds.";
    mock.add_fixtures(json!([{"match": {"userMessage": "slow background"}, "response": {"content": answer}}])).await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.jobs.workers = 0;
        s.jobs.lease_secs = 3;
    })
    .await;
    let store = app.store().await;
    let job = NewJob {
        kind: "agent_task".into(),
        payload: json!({"task": "a slow background task"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: None,
    };
    let id = store.enqueue_job(job, wall_clock_ms()).await.unwrap().job.id;
    let worker = app.job_worker("w");
    let run = tokio::spawn(async move { worker.try_execute_next().await.unwrap() });

    let title = format!("job #{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let conversation = loop {
        let found = store.find_conversation(&title).await.unwrap();
        if let Some(conversation) = found {
            let streamed = mock.requests_to("/v1/messages").await.len();
            if streamed > 0 {
                break conversation;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the task's turn never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = post(&app, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(status, 200);
    let outcome = tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    assert_eq!(outcome.job_id, id);
    assert_eq!(store.get_job(id).await.unwrap().status.as_str(), "cancelled");

    let turns = store.list_turns(&conversation.id).await.unwrap();
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert_eq!(turns[0].status, valor::storage::TurnStatus::Cancelled, "{turns:?}");
    assert!(turns[0].finished_at_ms.is_some(), "{turns:?}");
    let messages = store.recent_messages(&conversation.id, 10).await.unwrap();
    let partial =
        messages.iter().find(|m| m.role == valor::storage::MessageRole::Assistant).expect("what was streamed is kept");
    let text = partial.text.strip_suffix(valor::agent::STOPPED_MARK).expect("marked stopped");
    assert!(!text.is_empty() && answer.starts_with(text.trim_end()), "{:?}", partial.text);
}
