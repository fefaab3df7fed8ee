//! Configuration: defaults, the shipped example file, the environment
//! contract, and errors that name the offending key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use secrecy::ExposeSecret;
use valor::config::{self, EnvSource, ProviderChoice, Tier, UserRef};

fn load_toml(text: &str, env: &[(&str, &str)]) -> Result<config::Settings, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valor.toml");
    std::fs::write(&path, text).unwrap();
    config::load(Some(&path), &EnvSource::from_pairs(env.iter().copied()))
}

#[test]
fn the_shipped_example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("valor.example.toml");
    let settings = config::load(Some(&path), &EnvSource::default()).unwrap();
    assert_eq!(settings.telegram.admins, vec![111111]);
    assert_eq!(settings.telegram.allowed_users, vec![UserRef::Username("alice".into()), UserRef::Id(222222)]);
    assert_eq!(settings.workspaces[0].name, "shop");
    assert_eq!(settings.intent.routes.code_task, Tier::Large);
    assert_eq!(settings.source_file.as_deref(), Some(path.as_path()));
}

#[test]
fn nothing_configured_gives_the_documented_defaults() {
    let settings = config::load(Some(Path::new("/dev/null")), &EnvSource::default()).unwrap();
    assert_eq!(settings.data_dir, Path::new("./data"));
    assert_eq!(settings.server.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
    assert!(!settings.server.auth_required());
    assert_eq!(settings.llm.provider, ProviderChoice::Auto);
    assert_eq!(settings.anthropic.base_url, "https://api.anthropic.com");
    assert_eq!(settings.telegram.api_url, "https://api.telegram.org");
    assert_eq!(settings.claude.bin, "claude");
}

#[test]
fn the_contract_environment_names_set_their_settings() {
    let env = [
        ("VALOR_DATA_DIR", "/tmp/valor-data"),
        ("VALOR_HTTP_ADDR", ":0"),
        ("VALOR_API_TOKENS", "one, two,,"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/"),
        ("OPENAI_API_KEY", "sk-oai"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("PERPLEXITY_API_KEY", "pplx"),
        ("PERPLEXITY_BASE_URL", "http://127.0.0.1:10"),
        ("OLLAMA_HOST", "127.0.0.1:11434"),
        ("NOTION_API_KEY", "secret_n"),
        ("NOTION_BASE_URL", "http://127.0.0.1:11"),
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_API_URL", "http://127.0.0.1:12"),
        ("VALOR_CLAUDE_BIN", "/opt/claude"),
    ];
    let s = load_toml("", &env).unwrap();
    assert_eq!(s.data_dir, Path::new("/tmp/valor-data"));
    assert_eq!(s.server.listen_addr().unwrap().to_string(), "127.0.0.1:0");
    let tokens: Vec<&str> = s.server.api_tokens.iter().map(|t| t.expose_secret()).collect();
    assert_eq!(tokens, ["one", "two"]);
    assert_eq!(s.anthropic.api_key.as_ref().unwrap().expose_secret(), "sk-ant");
    assert_eq!(s.anthropic.base_url, "http://127.0.0.1:9/");
    assert_eq!(s.openai.api_key.as_ref().unwrap().expose_secret(), "sk-oai");
    assert_eq!(s.openai.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(s.perplexity.api_key.as_ref().unwrap().expose_secret(), "pplx");
    assert_eq!(s.perplexity.base_url, "http://127.0.0.1:10");
    assert_eq!(s.ollama.base_url().as_deref(), Some("http://127.0.0.1:11434"));
    assert_eq!(s.notion.api_key.as_ref().unwrap().expose_secret(), "secret_n");
    assert_eq!(s.notion.base_url, "http://127.0.0.1:11");
    assert_eq!(s.telegram.bot_token.as_ref().unwrap().expose_secret(), "123:abc");
    assert_eq!(s.telegram.api_url, "http://127.0.0.1:12");
    assert_eq!(s.claude.bin, "/opt/claude");
}

#[test]
fn environment_beats_the_file_and_nested_keys_use_double_underscores() {
    let toml = "[agent]\nmax_steps = 3\n[server]\naddr = \"127.0.0.1:9000\"\n";
    let s = load_toml(toml, &[("VALOR__AGENT__MAX_STEPS", "12"), ("VALOR_HTTP_ADDR", "127.0.0.1:9001")]).unwrap();
    assert_eq!(s.agent.max_steps, 12);
    assert_eq!(s.server.addr, "127.0.0.1:9001");
    let s = load_toml("", &[("VALOR__INTENT__ROUTES__CHAT", "opus")]).unwrap();
    assert_eq!(s.intent.routes.chat, Tier::Large);
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let error = load_toml("[agent]\nmax_stepz = 3\n", &[]).unwrap_err().to_string();
    assert!(error.contains("max_stepz"), "{error}");
    let error = load_toml("[telegarm]\nadmins = [1]\n", &[]).unwrap_err().to_string();
    assert!(error.contains("telegarm"), "{error}");
    let error = load_toml("", &[("VALOR__AGENT__NOPE", "1")]).unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn invalid_values_are_errors_that_name_the_key() {
    let cases = [
        ("[agent]\nmax_steps = \"many\"\n", "max_steps"),
        ("[agent]\nmax_steps = 0\n", "agent.max_steps"),
        ("[server]\naddr = \"not an address\"\n", "server.addr"),
        ("[intent.routes]\nchat = \"huge\"\n", "chat"),
        ("[anthropic]\nbase_url = \"ftp://x\"\n", "anthropic.base_url"),
        ("[openai]\ntranscription_model = \" \"\n", "openai.transcription_model"),
        ("[[workspace]]\nname = \"a\"\npath = \"relative/dir\"\n", "workspace[0].path"),
        ("[git]\nauthor = \"valor\"\n", "git.author"),
        ("[git]\nbranch_prefix = \"../x\"\n", "git.branch_prefix"),
        ("[git]\nbranch_prefix = \"a b\"\n", "git.branch_prefix"),
    ];
    for (toml, key) in cases {
        let error = load_toml(toml, &[]).unwrap_err().to_string();
        assert!(error.contains(key), "error for {toml:?} does not name {key}: {error}");
    }
    let error = load_toml("", &[("VALOR_HTTP_ADDR", "nowhere")]).unwrap_err().to_string();
    assert!(error.contains("VALOR_HTTP_ADDR"), "{error}");
}

#[test]
fn time_zones_are_iana_names_and_a_wrong_one_names_its_key() {
    let schedule = "[[schedule]]\nname = \"a\"\ncron = \"0 0 9 * * *\"\n";
    let settings = load_toml(&format!("{schedule}timezone = \"Europe/Berlin\"\n"), &[]).unwrap();
    assert_eq!(settings.schedules[0].timezone.as_deref(), Some("Europe/Berlin"));
    let settings = load_toml("[daydream]\ntimezone = \"America/New_York\"\n", &[]).unwrap();
    assert_eq!(settings.daydream.timezone(), chrono_tz::Tz::America__New_York);
    assert_eq!(load_toml("", &[]).unwrap().daydream.timezone(), chrono_tz::Tz::UTC, "the default is UTC");
    let error = load_toml(&format!("{schedule}timezone = \"Mars/Olympus\"\n"), &[]).unwrap_err().to_string();
    assert!(error.contains("schedule[0].timezone") && error.contains("Mars/Olympus"), "{error}");
    let error = load_toml("[daydream]\ntimezone = \"CEST+2\"\n", &[]).unwrap_err().to_string();
    assert!(error.contains("daydream.timezone"), "{error}");
    let error = load_toml("[jobs]\nclaim_batch = 0\n", &[]).unwrap_err().to_string();
    assert!(error.contains("jobs.claim_batch"), "{error}");
}

#[test]
fn the_log_filter_comes_from_the_file_or_rust_log_and_a_bad_one_names_its_key() {
    let s = load_toml("[log]\nlevel = \"valor=debug,warn\"\n", &[]).unwrap();
    assert_eq!(s.log.level, "valor=debug,warn");
    let s = load_toml("[log]\nlevel = \"warn\"\n", &[("RUST_LOG", "sqlx=error,info")]).unwrap();
    assert_eq!(s.log.level, "sqlx=error,info", "RUST_LOG wins over the file");
    // (A bare word is a target name: `loud` means "target loud, every level".)
    for bad in ["valor=chatty", "info,sqlx=loud"] {
        let error = load_toml("", &[("RUST_LOG", bad)]).unwrap_err().to_string();
        assert!(error.contains("log.level") && error.contains("RUST_LOG"), "{bad}: {error}");
    }
    let error = load_toml("[log]\nlevel = \"valor=verbose\"\n", &[]).unwrap_err().to_string();
    assert!(error.contains("log.level"), "{error}");
}

#[test]
fn an_environment_address_error_names_the_variable() {
    let error = load_toml("", &[("VALOR_HTTP_ADDR", "nowhere")]).unwrap_err().to_string();
    assert!(error.contains("VALOR_HTTP_ADDR"), "{error}");
}

#[test]
fn an_explicit_config_file_that_does_not_exist_is_an_error() {
    let error = config::load(Some(Path::new("/nonexistent/valor.toml")), &EnvSource::default()).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/valor.toml"));
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let s = load_toml("", &[("ANTHROPIC_API_KEY", "sk-ant-very-secret"), ("VALOR_API_TOKENS", "tok-secret")]).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("sk-ant-very-secret"));
    assert!(!debug.contains("tok-secret"));
}

#[test]
fn the_resources_section_sets_the_high_water_mark_and_refuses_unknown_keys() {
    let settings =
        load_toml("[resources]\nmax_rss_mb = 256\nmax_active_turns = 4\ncleanup_interval_secs = 60\n", &[]).unwrap();
    assert_eq!(settings.resources.max_rss_mb, 256);
    assert_eq!(settings.resources.max_active_turns, 4);
    assert_eq!(settings.resources.cleanup_interval_secs, 60);
    assert_eq!(settings.resources.sample_interval_secs, 10, "unset keys keep their defaults");
    let unknown = load_toml("[resources]\nmax_rss = 256\n", &[]).unwrap_err().to_string();
    assert!(unknown.contains("max_rss"), "{unknown}");
    let zero = load_toml("[resources]\nmax_active_turns = 0\n", &[]).unwrap_err().to_string();
    assert!(zero.contains("resources.max_active_turns"), "{zero}");
    let example =
        config::load(Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("valor.example.toml")), &EnvSource::default())
            .unwrap();
    assert_eq!(example.resources.cleanup_interval_secs, 300, "the example documents the default");
}

/// A key pasted with its newline works; one with a space inside is refused naming the variable.
#[test]
fn pasted_keys_are_trimmed_and_a_key_with_inner_whitespace_names_its_variable() {
    let settings =
        load_toml("", &[("ANTHROPIC_API_KEY", "sk-ant-pasted\n"), ("TELEGRAM_BOT_TOKEN", " 123:abc ")]).unwrap();
    assert_eq!(settings.anthropic.api_key.as_ref().unwrap().expose_secret(), "sk-ant-pasted");
    assert_eq!(settings.telegram.bot_token.as_ref().unwrap().expose_secret(), "123:abc");
    let error = load_toml("", &[("OPENAI_API_KEY", "sk-open ai")]).unwrap_err().to_string();
    assert!(error.contains("OPENAI_API_KEY") && error.contains("contains a space"), "{error}");
    assert!(!error.contains("sk-open"), "{error}");
    let error = load_toml("[notion]\napi_key = \"secret_\\u0007x\"\n", &[]).unwrap_err().to_string();
    assert!(error.contains("`notion.api_key`"), "{error}");
}

#[test]
fn allowed_origins_must_be_origins_and_a_bad_one_names_its_key() {
    let settings = load_toml("[server]\nallowed_origins = [\"https://Chat.Example.com/\"]\n", &[]).unwrap();
    assert_eq!(settings.server.allowed_origins, ["https://Chat.Example.com/"]);
    assert_eq!(config::serialized_origin("https://Chat.Example.com/").as_deref(), Some("https://chat.example.com"));
    assert_eq!(config::serialized_origin("http://127.0.0.1:3000").as_deref(), Some("http://127.0.0.1:3000"));
    for bad in ["chat.example.com", "https://chat.example.com/path", "ftp://x", "https://u@x", "https://x/?q"] {
        assert_eq!(config::serialized_origin(bad), None, "{bad}");
        let error = load_toml(&format!("[server]\nallowed_origins = [{bad:?}]\n"), &[]).unwrap_err().to_string();
        assert!(error.contains("`server.allowed_origins`") && error.contains("not an origin"), "{error}");
    }
}

#[test]
fn a_blank_api_token_is_a_config_error_naming_its_key() {
    let error = load_toml("", &[("VALOR_API_TOKENS", "  ,  ")]).unwrap_err().to_string();
    assert!(error.contains("VALOR_API_TOKENS is set but holds no token"), "{error}");
    let error = load_toml("[server]\napi_tokens = [\"ok-token\", \"   \"]\n", &[]).unwrap_err().to_string();
    assert!(error.contains("`server.api_tokens`") && error.contains("blank token"), "{error}");
    let settings = load_toml("", &[("VALOR_API_TOKENS", "one, two,")]).unwrap();
    assert_eq!(settings.server.api_tokens.len(), 2);
}

/// Each config mistake reads as the person wrote it: where (the file or the
/// variable), the key without figment's profile, what was expected, and the
/// nearest valid key for a typo — never a source location inside valor.
#[test]
fn config_errors_say_where_what_and_the_nearest_key() {
    // (valor.toml, environment, how the message ends)
    type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str);
    let cases: [Case; 8] = [
        (
            "[telegram]\nadmin = [1]\n",
            &[],
            "valor.toml: unknown key `telegram.admin` — did you mean `telegram.admins`?",
        ),
        ("[telegramm]\nadmins = [1]\n", &[], "valor.toml: unknown key `telegramm` — did you mean `telegram`?"),
        (
            "[agent]\nmax_steps = \"lots\"\n",
            &[],
            "valor.toml: `agent.max_steps` must be a whole number (0 or more), not the string \"lots\"",
        ),
        (
            "[llm]\nprovider = \"olama\"\n",
            &[],
            "valor.toml: `llm.provider` cannot be `olama`; use one of `auto`, `anthropic`, `openai`, `none`",
        ),
        (
            "[agent]\nzzz = 1\n",
            &[],
            "valor.toml: unknown key `agent.zzz`; the keys there are `persona_file`, `max_steps`, `tool_timeout_secs`",
        ),
        (
            "",
            &[("VALOR__AGENT__MAX_STEPS", "lots")],
            "environment variable VALOR__AGENT__MAX_STEPS: `agent.max_steps` must be a whole number (0 or more), not the string \"lots\"",
        ),
        (
            "",
            &[("VALOR__AGENT__MAX_STEP", "3")],
            "environment variable VALOR__AGENT__MAX_STEP: unknown key `agent.max_step` — did you mean `agent.max_steps`?",
        ),
        (
            "[intent]\nuse_model = \"yes\"\n",
            &[],
            "valor.toml: `intent.use_model` must be true or false, not the string \"yes\"",
        ),
    ];
    for (toml, env, expected) in cases {
        let error = load_toml(toml, env).unwrap_err().to_string();
        assert!(error.ends_with(expected), "for {toml:?} {env:?}:\n got: {error}\nwant: …{expected}");
        assert!(!error.contains("src/") && !error.contains("default."), "{error}");
    }
}
