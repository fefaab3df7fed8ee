//! The `valor` binary: parse arguments, load settings, init telemetry, hand
//! over to the library. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use valor::app::App;
use valor::cli::{Cli, Command, DaydreamCommand, JobsCommand, McpServersCommand, WorkspaceCommand};
use valor::config::{self, EnvSource};

fn main() -> ExitCode {
    // `.env` is optional; values already in the environment win.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref(), &EnvSource::from_process()) {
        Ok(settings) => settings,
        Err(error) => {
            report(&format!("valor: {error}"));
            return ExitCode::from(2);
        }
    };
    // `valor chat`'s terminal is the conversation: its log goes to a file.
    let log_note = match &cli.command {
        Command::Chat { .. } => Some(chat_logging(&settings)),
        _ => {
            valor::monitoring::init_tracing(&settings.log);
            None
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            report(&format!("valor: cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings, log_note)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => match error.downcast_ref::<DoctorFound>() {
            // The table already said what is wrong.
            Some(found) => ExitCode::from(found.0),
            None => {
                report(&format!("valor: {error:#}"));
                ExitCode::FAILURE
            }
        },
    }
}

/// Send logs to `<data_dir>/logs/chat.log`; the line saying where (or that they are off).
fn chat_logging(settings: &config::Settings) -> String {
    let path = valor::channels::terminal::log_path(&settings.data_dir);
    match valor::monitoring::init_tracing_to_file(&settings.log, &path) {
        Ok(()) => {
            let shown = std::path::absolute(&path).unwrap_or(path);
            format!("Logs go to {}", shown.display())
        }
        Err(error) => format!("Logs are off: cannot write {} ({error})", path.display()),
    }
}

/// `valor doctor` found a problem; the table already says which (the exit code says how bad).
#[derive(Debug)]
struct DoctorFound(u8);

impl std::fmt::Display for DoctorFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "valor doctor found a problem (exit code {})", self.0)
    }
}

impl std::error::Error for DoctorFound {}

/// An error for the person at the terminal; a closed stderr is not worth a panic.
fn report(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// Write `text` and a newline to stdout. A reader that went away
/// (`valor doctor | head`) ends the output quietly instead of panicking.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to standard output"),
    }
}

async fn run(command: Command, settings: config::Settings, log_note: Option<String>) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let shutdown = CancellationToken::new();
            let app = App::build(settings).await?;
            let running = app.start(shutdown.clone()).await?;
            tokio::spawn(wait_for_signal(shutdown));
            running.run_until_stopped().await
        }
        Command::Chat { conversation } => {
            let data_dir = settings.data_dir.clone();
            let app = App::build(settings).await?;
            let chatted = if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
                let note = log_note.unwrap_or_default();
                valor::channels::terminal::run_interactive(&app.agent, &conversation, &data_dir, &note).await
            } else {
                let stdin = tokio::io::BufReader::new(tokio::io::stdin());
                valor::channels::terminal::run(&app.agent, &conversation, stdin, tokio::io::stdout()).await
            };
            app.store.close().await;
            chatted?;
            Ok(())
        }
        Command::Mcp => {
            let app = App::build(settings).await?;
            let server = valor::mcp::McpServer::new(app.agent.tools().clone(), app.store.clone(), &app.settings);
            server.serve_stdio().await?;
            app.store.close().await;
            Ok(())
        }
        Command::Doctor => {
            let rows = valor::app::doctor(&settings).await;
            let width = rows.iter().map(|r| r.part.len()).max().unwrap_or(8);
            let mut table = vec![format!("{:width$}  {:13}  detail", "part", "state")];
            table.extend(
                rows.iter().map(|row| format!("{:width$}  {:13}  {}", row.part, row.state.as_str(), row.detail)),
            );
            print_out(&table.join("\n"))?;
            // Documented in the README: 1 misconfigured, 3 unreachable.
            match valor::app::doctor_exit_code(&rows) {
                0 => Ok(()),
                code => Err(DoctorFound(code).into()),
            }
        }
        Command::Migrate => {
            let path = settings.database_path();
            let store =
                valor::storage::Store::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            // Opening applies pending migrations; report the resulting schema version.
            store.migrate().await?;
            let report = store.pragma_report().await?;
            let version = report.schema_version.map_or_else(|| "none".to_owned(), |v| v.to_string());
            store.close().await;
            print_out(&format!("database {} is at schema version {version}", path.display()))
        }
        Command::Backup { path } => {
            let source = settings.database_path();
            let store = valor::app::open_existing_store(&settings).await?;
            store.backup_to(&path).await.with_context(|| format!("backing up to {}", path.display()))?;
            store.close().await;
            print_out(&format!("backed up {} to {}", source.display(), path.display()))
        }
        Command::Jobs { action } => {
            let action = match action {
                JobsCommand::List { status, limit } => valor::app::JobsAction::List { status, limit },
                JobsCommand::Show { id } => valor::app::JobsAction::Show { id },
                JobsCommand::Retry { id } => valor::app::JobsAction::Retry { id },
                JobsCommand::Cancel { id } => valor::app::JobsAction::Cancel { id },
            };
            print_out(&valor::app::jobs_command(&settings, action).await?)
        }
        Command::Workspace { action } => {
            let action = match action {
                WorkspaceCommand::List => valor::app::WorkspaceAction::List,
                WorkspaceCommand::Init { name } => valor::app::WorkspaceAction::Init { name },
                WorkspaceCommand::Runs { name } => valor::app::WorkspaceAction::Runs { name },
            };
            print_out(&valor::app::workspace_command(&settings, action).await?)
        }
        Command::McpServers { action: McpServersCommand::List } => {
            print_out(&valor::app::mcp_servers_command(&settings).await?)
        }
        Command::Daydream { action: DaydreamCommand::Run } => {
            print_out(&valor::app::daydream_run_command(settings).await?)
        }
    }
}

/// Cancel on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
    shutdown.cancel();
}
