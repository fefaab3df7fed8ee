//! A delegated run's CLI gets an allow-listed environment, never valor's
//! secrets: the real binary runs with keys, a bot token, API tokens and
//! `VALOR_*` set, and a stand-in CLI records the environment it was given.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;
use valor::storage::{NewConversation, NewJob, Store, wall_clock_ms};

use crate::common::{Aimock, spawn_listening};

const BIN: &str = env!("CARGO_BIN_EXE_valor");

/// Secrets valor is started with; none may reach a child.
const SECRETS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "sk-ant-leak-anthropic"),
    ("OPENAI_API_KEY", "sk-leak-openai"),
    ("NOTION_API_KEY", "secret_leak_notion"),
    ("VALOR_API_TOKENS", "leak-api-token-0123456789"),
    ("VALOR_SOMETHING_PRIVATE", "leak-valor-private"),
];

#[tokio::test]
async fn a_delegated_run_sees_only_the_allow_listed_environment_and_its_own_settings() {
    let mock = Aimock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("shop");
    std::fs::create_dir_all(&workspace).unwrap();
    let dump = dir.path().join("cli-env.txt");
    let script = dir.path().join("fake-claude");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {}\n\
             echo '{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-env\"}}'\n\
             echo '{{\"type\":\"result\",\"is_error\":false,\"result\":\"env dumped\",\"session_id\":\"s-env\",\"num_turns\":1,\"total_cost_usd\":0}}'\n",
            dump.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("valor.toml"),
        format!(
            "[claude]\nbin = {:?}\nenv = {{ CLI_SETTING = \"from-claude-env\" }}\n\n\
             [[workspace]]\nname = \"shop\"\npath = {:?}\n",
            script.display().to_string(),
            workspace.display().to_string()
        ),
    )
    .unwrap();
    let store = Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "env".into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    let job = NewJob {
        kind: "claude_code".into(),
        payload: json!({"task": "Dump the environment", "workspace": "shop"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 1,
        conversation_id: Some(conversation),
        idempotency_key: None,
    };
    let id = store.enqueue_job(job, wall_clock_ms()).await.unwrap().job.id;

    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("LANG", "C.UTF-8")
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("VALOR__INTENT__USE_MODEL", "false")
        .env("VALOR__JOBS__POLL_INTERVAL_MS", "50")
        .envs(SECRETS.iter().copied())
        .kill_on_drop(true);
    let _valor = spawn_listening(command).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = store.get_job(id).await.unwrap();
        if job.status.is_finished() {
            assert_eq!(job.status.as_str(), "succeeded", "{job:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = std::fs::read_to_string(&dump).unwrap();
    for (name, value) in SECRETS {
        assert!(!env.contains(value), "{name}'s value reached the CLI:\n{env}");
    }
    let names: Vec<&str> = env.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).collect();
    assert!(!names.iter().any(|name| name.starts_with("VALOR")), "{names:?}");
    assert!(env.contains("CLI_SETTING=from-claude-env"), "the configured env is given:\n{env}");
    assert!(env.contains("LANG=C.UTF-8") && names.contains(&"PATH") && names.contains(&"HOME"), "{env}");
}
