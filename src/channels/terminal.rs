//! `valor chat`: one conversation in the terminal. Reads a line, streams the
//! reply as it arrives, shows tool calls as they happen. Input and output are
//! generic so tests drive it with in-memory buffers.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::agent::{Agent, AgentEvent, TurnRequest};

/// Chat until end of input or `/exit`. `interactive` shows a prompt.
pub async fn run<R, W>(
    agent: &Agent,
    conversation: &str,
    input: R,
    mut output: W,
    interactive: bool,
) -> anyhow::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let conversation = agent.open_conversation(conversation, "terminal").await?;
    if interactive {
        let greeting = format!("valor — conversation \"{}\". Type /exit to leave.\n", conversation.title);
        output.write_all(greeting.as_bytes()).await?;
    }
    let mut lines = input.lines();
    loop {
        if interactive {
            output.write_all(b"\nyou> ").await?;
            output.flush().await?;
        }
        let Some(line) = lines.next_line().await? else { break };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/exit" || text == "/quit" {
            break;
        }
        let mut events = agent.spawn_turn(TurnRequest {
            conversation: conversation.clone(),
            text: text.to_owned(),
            is_admin: true,
            user: None,
            images: Vec::new(),
            once_key: None,
        });
        output.write_all(b"valor> ").await?;
        while let Some(event) = events.recv().await {
            let rendered = match event {
                AgentEvent::TurnStarted { .. } => continue,
                AgentEvent::TextDelta { text } => text,
                AgentEvent::ToolStarted { name, input, .. } => format!("\n  [tool] {name} {input}\n"),
                AgentEvent::ToolFinished { name, is_error, output, .. } => {
                    let mark = if is_error { "failed" } else { "done" };
                    let first_line = output.lines().next().unwrap_or("").chars().take(100).collect::<String>();
                    format!("  [tool] {name} {mark}: {first_line}\n")
                }
                AgentEvent::Waiting { message } => format!("  [{message}]\n"),
                // The explanation follows as the reply's text: label it, do not print it twice.
                AgentEvent::Error { .. } => "\n  [error] ".to_owned(),
                AgentEvent::Done { .. } => "\n".to_owned(),
            };
            output.write_all(rendered.as_bytes()).await?;
            output.flush().await?;
        }
    }
    output.flush().await?;
    Ok(())
}
