//! Command-line interface definition (parsed by the thin `main`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "valor", version, about = "valor — a personal AI coworker")]
pub struct Cli {
    /// Path to valor.toml (default: $VALOR_CONFIG, else ./valor.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything: HTTP API, web chat and the agent.
    Serve,
    /// Chat with the agent in the terminal (one conversation, streamed).
    Chat {
        /// Conversation id or title to continue (default: "terminal").
        #[arg(long, default_value = "terminal")]
        conversation: String,
    },
    /// Check configuration, database and services; print what is ready.
    Doctor,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Serve valor's tools over MCP on stdin/stdout (logs go to stderr).
    Mcp,
    /// Write a consistent copy of the database to PATH while valor may be running.
    Backup { path: PathBuf },
    /// Background jobs: list, show, retry or cancel.
    Jobs {
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// Project workspaces: list them, install Claude Code subagents into one, list its run branches.
    Workspace {
        #[command(subcommand)]
        action: WorkspaceCommand,
    },
    /// The `[[mcp_server]]` library: each server, its credentials, whether it starts, its tools.
    McpServers {
        #[command(subcommand)]
        action: McpServersCommand,
    },
    /// The daydream self-review (PRODUCT.md §7).
    Daydream {
        #[command(subcommand)]
        action: DaydreamCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Every configured workspace: path, chats, allowed users, subagents present.
    List,
    /// Install the subagent templates (Stripe, Sentry, GitHub, Render, Notion, Linear) into
    /// NAME's `.claude/agents/`; files already there are kept and listed as skipped.
    Init { name: String },
    /// NAME's run branches (one per line of code work), newest first: state, base, head, last
    /// job, push and pull request, what the last merge/push/discard did.
    Runs { name: String },
}

#[derive(Debug, Subcommand)]
pub enum McpServersCommand {
    /// Start each server once (then stop it) and print what it offers.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DaydreamCommand {
    /// Run one daydream session now (office hours do not apply) and print its record.
    Run,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Newest first.
    List {
        /// Only this status: queued, running, succeeded, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Everything about one job.
    Show { id: i64 },
    /// Queue a failed or cancelled job again.
    Retry { id: i64 },
    /// Cancel a queued job, or ask a running one to stop.
    Cancel { id: i64 },
}
