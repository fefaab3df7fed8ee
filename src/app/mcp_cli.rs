//! `valor mcp-servers list`: every library server, whether the chat uses
//! it, whether its credentials are present, whether it starts, and its tools.

use std::fmt::Write as _;

use crate::config::Settings;
use crate::workspace::mcp_client::McpClients;

pub async fn mcp_servers_command(settings: &Settings) -> anyhow::Result<String> {
    if settings.mcp_servers.is_empty() {
        return Ok("no MCP servers in the library: add `[[mcp_server]]` entries to valor.toml (see the README)".into());
    }
    // Every entry is tried here, also those only runs use.
    let library: Vec<_> = settings
        .mcp_servers
        .iter()
        .cloned()
        .map(|mut s| {
            s.chat = true;
            s
        })
        .collect();
    let http = crate::llm::transport::client_builder().build()?;
    let clients = McpClients::new(&library, settings.child_env.clone(), settings.mcp_client.clone(), http, None);
    let mut out = String::new();
    for (entry, server) in settings.mcp_servers.iter().zip(library.iter()) {
        let target = match (&entry.command, &entry.url) {
            (_, Some(url)) => url.clone(),
            (command, None) => format!("{} {}", command.as_deref().unwrap_or_default(), entry.args.join(" ")),
        };
        let uses = if entry.chat { "runs and chat" } else { "runs only" };
        let _ = writeln!(out, "{}  ({uses}; {})", entry.name, target.trim());
        let missing = server.missing_credentials();
        if !missing.is_empty() {
            let _ = writeln!(out, "  credentials: missing {} — not started, not offered", missing.join(", "));
            continue;
        }
        if !entry.credentials.is_empty() {
            let _ = writeln!(out, "  credentials: {} present", entry.credentials.join(", "));
        }
        match clients.tools(&entry.name).await {
            Ok(tools) => {
                let _ = writeln!(out, "  starts: yes, {} tool(s)", tools.len());
                for tool in tools.iter() {
                    let kind = if tool.read_only { "read-only" } else { "side effects: admin only" };
                    let name = crate::agent::tools::mcp::namespaced(&entry.name, &tool.name);
                    let _ = writeln!(out, "    {name}  ({kind})");
                }
            }
            Err(error) => {
                let _ = writeln!(out, "  starts: no — {error}");
            }
        }
    }
    clients.shutdown().await;
    Ok(out.trim_end().to_owned())
}
