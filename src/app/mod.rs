//! The composition root: builds every part from [`Settings`], spawns every
//! long-lived task, owns shutdown. Nothing else spawns long-lived tasks.
//!
//! Invariants: without API tokens the HTTP server only binds a loopback
//! address; all tasks share one cancellation token; `run` reports which task
//! ended first and why.

mod daydream_cli;
mod doctor;
mod housekeeping;
mod jobs_cli;
mod mcp_cli;
mod providers;
pub mod tools;
mod workspace_cli;

pub use daydream_cli::{build_daydream, daydream_run_command};
pub use doctor::{DoctorRow, DoctorState, doctor, exit_code as doctor_exit_code};
pub use jobs_cli::{JobsAction, jobs_command};
pub use mcp_cli::mcp_servers_command;
pub use providers::{build_classifier, build_models, model_status, resolve_provider};
pub use workspace_cli::{WorkspaceAction, workspace_command};

/// The database of a valor that already ran, for commands that read it
/// (`valor backup`, `valor jobs`): refused when there is none, so a command
/// run in the wrong folder never creates an empty database and "succeeds".
pub async fn open_existing_store(settings: &Settings) -> anyhow::Result<Store> {
    let path = settings.database_path();
    if !path.is_file() {
        anyhow::bail!("{}", missing_database(&path));
    }
    Store::open(&path).await.with_context(|| format!("opening {}", path.display()))
}

/// Why there is no database, and how to point valor at the right one.
pub fn missing_database(path: &std::path::Path) -> String {
    format!(
        "there is no valor database at {} — run this where `valor serve` keeps its data, or point \
         VALOR_DATA_DIR (or `data_dir` in valor.toml) at that folder",
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display()
    )
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::outbox::TranscriptOutbox;
use crate::agent::prompt::load_persona;
use crate::agent::{Agent, AgentParts, ToolRegistry};
use crate::channels::telegram::TelegramChannel;
use crate::channels::telegram::deliver::TelegramOutbox;
use crate::config::{Settings, is_loopback};
use crate::http::{HttpState, TokenSet};
use crate::jobs::{AgentTaskHandler, HandlerRegistry, JobSystem, ScheduleSpec, Scheduler, SystemClock, WorkerConfig};
use crate::mcp::run::{RunMcpServer, require_run_token};
use crate::monitoring::resources::ResourceMonitor;
use crate::monitoring::{ComponentStatus, LiveComponents};
use crate::storage::Store;
use crate::workspace::mcp_config::{RUN_MCP_PATH, RunAccess};

/// Everything built, nothing running yet.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub agent: Agent,
    pub jobs: JobSystem,
    pub components: Vec<ComponentStatus>,
    /// Claude Code runs' access to valor's MCP server (`/mcp-run`).
    pub run_access: RunAccess,
}

impl App {
    /// Open the database (creating and migrating it) and build the agent.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with_tools(settings, |_| {}).await
    }

    /// Like [`App::build`], letting the caller adjust the tool registry
    /// before the agent gets it (tests swap in tools with test-only network
    /// policies; production code calls [`App::build`]).
    pub async fn build_with_tools(
        mut settings: Settings,
        adjust: impl FnOnce(&mut ToolRegistry),
    ) -> anyhow::Result<App> {
        // Install the metrics recorder before anything records.
        let _ = crate::monitoring::metrics_handle();
        providers::adopt_served_models(&mut settings).await;
        let database = settings.database_path();
        let store =
            Store::open(&database).await.with_context(|| format!("opening the database {}", database.display()))?;
        let breakers = tools::build_breakers(&settings);
        let models = build_models(&settings, &breakers).context("configuring the model provider")?;
        let mut tools =
            tools::build_tools(&settings, models.as_ref(), breakers.clone()).context("configuring the tools")?;
        adjust(&mut tools);
        let mcp = crate::workspace::mcp_client::McpClients::new(
            &settings.mcp_servers,
            settings.child_env.clone(),
            settings.mcp_client.clone(),
            crate::llm::transport::client_builder().build().context("building the MCP client's HTTP client")?,
            Some(store.clone()),
        );
        let mcp = (!mcp.is_empty()).then(|| {
            let limit = std::time::Duration::from_secs(settings.agent.tool_timeout_secs.max(1));
            crate::agent::tools::mcp::McpToolset::new(mcp, breakers.clone(), limit)
        });
        let agent = Agent::new(AgentParts {
            store: store.clone(),
            models,
            tools,
            classifier: build_classifier(&settings).context("configuring intent classification")?,
            persona: load_persona(settings.agent.persona_file.as_deref())?,
            settings: settings.agent.clone(),
            context: settings.context.clone(),
            routes: settings.intent.routes.clone(),
            max_tokens: settings.llm.max_tokens,
            waiting_notice: std::time::Duration::from_secs(settings.llm.waiting_notice_secs.max(1)),
            monitor: ResourceMonitor::new(&settings.resources, settings.telegram.bot_token.is_some()),
            calibration: Default::default(),
            projects: crate::agent::project::ProjectDirectory::new(
                crate::workspace::Workspaces::new(settings.workspaces.clone(), &settings.data_dir),
                settings.child_env.clone(),
                settings.git.branch_prefix.clone(),
            ),
            mcp,
        });
        let run_access = RunAccess::default();
        let jobs = build_job_system(&settings, &store, &agent, &run_access);
        let components = component_statuses(&settings, &agent);
        Ok(App { settings, store, agent, jobs, components, run_access })
    }

    /// Bind the HTTP listener (refusing a non-loopback address without tokens)
    /// and start serving. Returns once listening.
    pub async fn start(self, shutdown: CancellationToken) -> anyhow::Result<RunningApp> {
        let addr = self.settings.server.listen_addr()?;
        if !self.settings.server.auth_required() && !is_loopback(&addr) {
            anyhow::bail!(
                "refusing to listen on {addr}: no API tokens are configured, so valor only binds a loopback \
                 address (like 127.0.0.1:8080). Set VALOR_API_TOKENS to serve on other interfaces."
            );
        }
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the HTTP listener on {addr}"))?;
        // Before any worker claims a job again: stop CLI process groups a valor killed hard left running
        // (their jobs' leases expire and they run again; the old run must not keep editing the workspace).
        let swept = crate::workspace::orphans::sweep_children(
            &self.store,
            "startup",
            None,
            crate::workspace::process::KILL_GRACE,
        )
        .await
        .context("stopping child processes left by a valor that was killed")?;
        if !swept.stopped.is_empty() {
            tracing::warn!("stopped {} child process group(s) left by a valor that was killed", swept.stopped.len());
        }
        // Before any turn starts: a turn still `running` was left by a crash (a clean stop finishes its turns).
        let crashed = self
            .store
            .interrupt_running_turns(crate::agent::CRASH_RECORD)
            .await
            .context("marking turns a killed valor left running")?;
        if crashed > 0 {
            tracing::warn!("marked {crashed} turn(s) left running by a valor that was killed as interrupted");
        }
        let local_addr = listener.local_addr()?;
        let components = LiveComponents::new(self.components.clone());
        let telegram_slot = TelegramSlot::default();
        let telegram = start_telegram(&self.settings, &self.agent, &components, &telegram_slot, &shutdown).await;
        let state = HttpState {
            agent: self.agent.clone(),
            settings: Arc::new(self.settings.server.clone()),
            tokens: Arc::new(TokenSet::new(&self.settings.server.api_tokens)),
            started: Instant::now(),
            components: components.clone(),
            workspaces: crate::workspace::Workspaces::new(self.settings.workspaces.clone(), &self.settings.data_dir),
        };
        tracing::info!("valor {} listening on http://{local_addr}", env!("CARGO_PKG_VERSION"));
        for component in &components.snapshot() {
            let state = if component.on { "on" } else { "off" };
            tracing::info!("{}: {state} — {}", component.name, component.detail);
        }
        let grace = self.settings.server.shutdown_grace();
        let mcp = crate::mcp::McpServer::new(self.agent.tools().clone(), self.store.clone(), &self.settings);
        let mcp = axum::Router::new().fallback_service(mcp.http_service(&self.settings.mcp, shutdown.child_token()));
        self.run_access.set_listen_addr(local_addr);
        let run_mcp = RunMcpServer::new(
            self.agent.tools().clone(),
            self.store.clone(),
            self.jobs.outbox.clone(),
            std::time::Duration::from_secs(self.settings.agent.tool_timeout_secs),
            self.settings.data_dir.clone(),
        )
        .http_service(&self.settings.mcp, shutdown.child_token());
        let run_mcp = axum::Router::new().nest_service(
            RUN_MCP_PATH,
            axum::Router::new()
                .fallback_service(run_mcp)
                .layer(axum::middleware::from_fn_with_state(self.run_access.clone(), require_run_token)),
        );
        let pending = self.store.pending_approvals(None).await.context("reloading pending approvals")?;
        if !pending.is_empty() {
            tracing::info!("{} pending approval(s) reloaded; they can still be answered", pending.len());
        }
        let mut router = crate::http::router_with_mcp(state, Some(mcp)).merge(run_mcp);
        if telegram.is_some()
            && let Some(webhook) = crate::channels::telegram::webhook::router(&self.settings.telegram, &telegram_slot)
        {
            router = router.merge(webhook);
        }
        // One Host/Origin policy in front of everything merged above.
        let policy = crate::http::OriginPolicy::new(
            self.settings.server.api_tokens.is_empty(),
            &self.settings.server.allowed_origins,
            self.store.clone(),
        );
        let router = crate::http::guard_origins(router, policy);
        let http_shutdown = shutdown.clone();
        let http = tokio::spawn(async move {
            let server = crate::http::serve(listener, router, http_shutdown.clone());
            tokio::pin!(server);
            tokio::select! {
                result = &mut server => result.context("the HTTP server stopped"),
                () = async { http_shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!("in-flight HTTP requests did not finish within {} s; closing them", grace.as_secs());
                    Ok(())
                }
            }
        });
        let mut workers: Vec<JoinHandle<()>> = (0..self.settings.jobs.workers)
            .map(|index| {
                let worker = self.jobs.worker(&format!("{}-w{index}", std::process::id()), shutdown.clone());
                tokio::spawn(worker.run(index == 0))
            })
            .collect();
        let mut specs = self
            .settings
            .schedules
            .iter()
            .map(ScheduleSpec::from_settings)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| anyhow::anyhow!("parsing [[schedule]]: {why}"))?;
        // `[daydream]` is one more schedule (a `[[schedule]]` of the same name wins).
        if let Some(daydream) = crate::jobs::Daydream::schedule_spec(&self.settings.daydream)
            && !specs.iter().any(|spec| spec.name == daydream.name)
        {
            specs.push(daydream);
        }
        if !specs.is_empty() {
            let scheduler =
                Scheduler::new(self.store.clone(), self.jobs.clock.clone(), specs, self.settings.jobs.max_attempts);
            workers.push(tokio::spawn(scheduler.run(std::time::Duration::from_secs(1), shutdown.clone())));
        }
        let housekeeping = housekeeping::Housekeeping::from_settings(&self.settings, self.agent.clone(), components);
        workers.push(tokio::spawn(housekeeping.run(shutdown.clone())));
        let run_access = self.run_access;
        Ok(RunningApp {
            local_addr,
            shutdown,
            http,
            workers,
            grace,
            jobs: self.jobs,
            telegram,
            agent: self.agent.clone(),
            store: self.store,
            run_access,
        })
    }
}

/// Where the Telegram channel lands once `getMe` answers (at start or
/// later); the webhook route reads it.
pub type TelegramSlot = Arc<std::sync::OnceLock<TelegramChannel>>;

/// Connect the Telegram channel when a token is set (getMe), and say on the
/// component line whether it is on and as which bot, or why not. When
/// Telegram cannot be reached (network, 5xx), returns the task that keeps
/// trying with backoff and runs the channel once connected; a rejected
/// token is an error naming `TELEGRAM_BOT_TOKEN` and is not retried.
async fn start_telegram(
    settings: &Settings,
    agent: &Agent,
    components: &LiveComponents,
    slot: &TelegramSlot,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<anyhow::Result<()>>> {
    settings.telegram.bot_token.as_ref()?;
    let transcriber = match providers::build_transcriber(settings) {
        Ok(transcriber) => transcriber,
        Err(error) => {
            tracing::warn!("voice notes will not be transcribed: {error}");
            None
        }
    };
    match TelegramChannel::connect(settings, agent.clone(), transcriber.clone()).await {
        Ok(channel) => {
            telegram_connected(components, slot, &channel);
            Some(tokio::spawn(channel.run(shutdown.clone())))
        }
        Err(error) if error.is_transient() => {
            tracing::warn!("telegram: cannot reach the Bot API ({error}); retrying in the background");
            telegram_connecting(components, &error);
            let (settings, agent, components, slot, shutdown) =
                (settings.clone(), agent.clone(), components.clone(), slot.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                let mut delay = TELEGRAM_RETRY_FIRST;
                let mut attempt = 1u32;
                let channel = loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    attempt += 1;
                    match TelegramChannel::connect(&settings, agent.clone(), transcriber.clone()).await {
                        Ok(channel) => break channel,
                        Err(error) if error.is_transient() => {
                            tracing::warn!(attempt, "telegram: still cannot reach the Bot API ({error})");
                            telegram_connecting(&components, &error);
                            delay = (delay * 2).min(TELEGRAM_RETRY_MAX);
                        }
                        Err(error) => {
                            telegram_refused(&components, &error);
                            return Ok(());
                        }
                    }
                };
                tracing::info!(attempt, "telegram: connected as @{}", channel.bot().username);
                telegram_connected(&components, &slot, &channel);
                channel.run(shutdown).await
            }))
        }
        Err(error) => {
            telegram_refused(components, &error);
            None
        }
    }
}

fn telegram_connected(components: &LiveComponents, slot: &TelegramSlot, channel: &TelegramChannel) {
    components.set(ComponentStatus::on("telegram", format!("@{}", channel.bot().username)));
    let _ = slot.set(channel.clone());
}

fn telegram_connecting(components: &LiveComponents, error: &crate::channels::telegram::StartError) {
    components.set(ComponentStatus::off("telegram", format!("connecting — {error}")));
}

/// Not worth retrying (a rejected token): an ERROR naming the variable.
fn telegram_refused(components: &LiveComponents, error: &crate::channels::telegram::StartError) {
    tracing::error!("telegram: {error} — check TELEGRAM_BOT_TOKEN");
    components.set(ComponentStatus::off("telegram", format!("{error} — check TELEGRAM_BOT_TOKEN")));
}

/// How long interrupted turns get to store what they streamed.
const TURN_SAVE_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Backoff between `getMe` attempts while Telegram cannot be reached.
const TELEGRAM_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const TELEGRAM_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// A started app: where it listens and how to stop it.
#[derive(Debug)]
pub struct RunningApp {
    pub local_addr: SocketAddr,
    pub shutdown: CancellationToken,
    http: JoinHandle<anyhow::Result<()>>,
    /// Job workers; on shutdown they hand their running jobs back.
    workers: Vec<JoinHandle<()>>,
    grace: std::time::Duration,
    /// For building extra workers (tests drain the queue with `try_execute_next`).
    pub jobs: JobSystem,
    /// The Telegram channel (polling, handling, delivery); ends on shutdown.
    telegram: Option<JoinHandle<anyhow::Result<()>>>,
    agent: Agent,
    store: Store,
    /// Claude Code runs' tokens for `/mcp-run` (tests mint one to call it as a run would).
    pub run_access: RunAccess,
}

impl RunningApp {
    /// The app's own store: its writes reach the app's change feed (live streams).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wait until a task ends (or shutdown is requested), then stop everything.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let outcome = match self.http.await {
            Ok(result) => result,
            Err(join_error) => Err(anyhow::anyhow!("the HTTP task panicked: {join_error}")),
        };
        if let Err(error) = &outcome {
            tracing::error!("{error:#}");
        }
        self.shutdown.cancel();
        // Turns of every door get the grace period; then what they streamed is stored, marked interrupted.
        self.agent.stop_turns(self.grace, TURN_SAVE_TIME).await;
        if let Some(mcp) = self.agent.mcp() {
            mcp.clients().shutdown().await;
        }
        if let Some(telegram) = self.telegram {
            match telegram.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!("the Telegram channel stopped: {error:#}"),
                Err(join_error) => tracing::error!("the Telegram task panicked: {join_error}"),
            }
        }
        for worker in self.workers {
            match tokio::time::timeout(self.grace, worker).await {
                Ok(Ok(())) => {}
                Ok(Err(join_error)) => tracing::error!("a job worker panicked: {join_error}"),
                Err(_) => tracing::warn!("a job worker did not stop within {} s", self.grace.as_secs()),
            }
        }
        self.store.close().await;
        tracing::info!("valor stopped");
        outcome
    }
}

/// The queue's workers share these: the agent-task handler and the transcript outbox.
fn build_job_system(settings: &Settings, store: &Store, agent: &Agent, run_access: &RunAccess) -> JobSystem {
    let mut handlers = HandlerRegistry::default();
    handlers.register(Arc::new(AgentTaskHandler::new(agent.clone())));
    // Notices for Telegram conversations go to their chat; all others into the transcript.
    let outbox: Arc<dyn crate::agent::outbox::Outbox> = Arc::new(TelegramOutbox::new(
        store.clone(),
        store.outbox_ready(),
        Arc::new(TranscriptOutbox::new(store.clone())),
    ));
    let clock: Arc<dyn crate::jobs::Clock> = Arc::new(SystemClock);
    let daydream = build_daydream(settings, store, agent, clock.clone(), outbox.clone());
    handlers.register(Arc::new(crate::jobs::DaydreamHandler::new(Arc::new(daydream))));
    if !settings.workspaces.is_empty() {
        handlers.register(Arc::new(claude_code_handler(settings, run_access)));
        let workspaces = crate::workspace::Workspaces::new(settings.workspaces.clone(), &settings.data_dir);
        let branches = crate::workspace::runs::RunBranches::from_settings(settings);
        handlers.register(Arc::new(crate::jobs::BranchActionHandler::new(workspaces, branches)));
        if settings.gemini.enabled {
            handlers.register(Arc::new(gemini_cli_handler(settings)));
        }
    }
    JobSystem {
        store: store.clone(),
        clock,
        handlers: Arc::new(handlers),
        outbox,
        config: WorkerConfig::from_settings(&settings.jobs),
    }
}

/// Delegated Claude Code runs in the configured workspaces (`[claude]`).
fn claude_code_handler(settings: &Settings, access: &RunAccess) -> crate::jobs::ClaudeCodeHandler {
    let workspaces = crate::workspace::Workspaces::new(settings.workspaces.clone(), &settings.data_dir);
    let config = crate::workspace::claude::ClaudeRunConfig {
        bin: settings.claude.bin.clone(),
        time_limit: std::time::Duration::from_secs(settings.claude.time_limit_secs),
        permission_mode: settings.claude.permission_mode.clone(),
        allowed_tools: settings.claude.allowed_tools.clone(),
        env: settings.child_env.with(&settings.claude.env),
        kill_grace: crate::workspace::process::KILL_GRACE,
        mcp_config: None,
        permission_prompt_tool: None,
    };
    let mcp = crate::workspace::mcp_config::RunMcpSetup {
        catalog: settings.mcp_servers.clone(),
        access: access.clone(),
        dir: settings.data_dir.join("tmp").join("mcp"),
        approvals: settings.claude.approvals,
        approval_timeout: std::time::Duration::from_secs(settings.claude.approval_timeout_secs),
    };
    let branches = crate::workspace::runs::RunBranches::from_settings(settings);
    let policy = crate::agent::streaming::StreamPolicy::default();
    crate::jobs::ClaudeCodeHandler::new(workspaces, branches, config, policy, mcp)
}

/// Delegated Gemini CLI runs (`[gemini]`, enabled), for background work the router sends there.
fn gemini_cli_handler(settings: &Settings) -> crate::jobs::GeminiCliHandler {
    let workspaces = crate::workspace::Workspaces::new(settings.workspaces.clone(), &settings.data_dir);
    let gemini = &settings.gemini;
    let config = crate::workspace::gemini::GeminiRunConfig {
        bin: gemini.bin.clone(),
        time_limit: std::time::Duration::from_secs(gemini.time_limit_secs),
        approval_mode: gemini.approval_mode.clone(),
        env: settings.child_env.with(&gemini.env),
        kill_grace: crate::workspace::process::KILL_GRACE,
    };
    let model = gemini.models.small.clone();
    let branches = crate::workspace::runs::RunBranches::from_settings(settings);
    let policy = crate::agent::streaming::StreamPolicy::default();
    crate::jobs::GeminiCliHandler::new(workspaces, branches, config, model, policy)
}

fn component_statuses(settings: &Settings, agent: &Agent) -> Vec<ComponentStatus> {
    let mut list = vec![
        ComponentStatus::on("database", settings.database_path().display().to_string()),
        model_status(settings),
        ComponentStatus::on("intent", format!("classifier: {}", agent.classifier_name())),
        ComponentStatus::on("tools", agent.tools().names().join(", ")),
    ];
    for (what, why) in agent.tools().unavailable() {
        list.push(ComponentStatus::off(what, why.clone()));
    }
    list.push(match settings.jobs.workers {
        0 => ComponentStatus::off("jobs", "jobs.workers = 0: jobs are queued but nothing runs them"),
        workers => ComponentStatus::on("jobs", format!("{workers} worker(s), lease {} s", settings.jobs.lease_secs)),
    });
    list.push(if settings.server.auth_required() {
        ComponentStatus::on("api auth", format!("{} bearer token(s)", settings.server.api_tokens.len()))
    } else {
        ComponentStatus::off("api auth", "no VALOR_API_TOKENS — serving loopback only, without authentication")
    });
    list.push(match settings.telegram.bot_token {
        None => ComponentStatus::off("telegram", "set TELEGRAM_BOT_TOKEN"),
        Some(_) => ComponentStatus::off("telegram", "connects when the server starts"),
    });
    list
}
