//! `valor chat`: one conversation in the terminal. Reads a line (with line
//! editing and history on a terminal, `editor.rs`), streams the reply as it
//! arrives and shows tool calls as they happen.
//!
//! Invariants:
//! - Every text valor did not write itself (answers, tool input and output,
//!   stored titles) goes through `escape::escape_for_terminal`: the model
//!   never reaches the terminal's control sequences.
//! - Local commands (`/help`, `/new`, `/exit`) never reach the model.
//! - Ctrl-C while an answer streams cancels that turn's token: the agent
//!   stores what was streamed, marked stopped, and ends the turn with its
//!   `Done`; the next question is a turn of its own.
//! - A failed turn is shown once, as `[error] <plain words>`.
//! - Nothing here logs to the terminal: `main` sends chat-mode logs to
//!   `log_path` (see ARCHITECTURE.md).

mod answer;
mod editor;
mod escape;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use editor::HISTORY_LIMIT;
pub use escape::escape_for_terminal;

use crate::agent::{Agent, AgentEvent, TurnFailure, TurnRequest};
use crate::storage::Conversation;
use answer::{Screen, TextRun};

/// Where `valor chat` writes its log (never to the terminal it talks on).
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join("chat.log")
}

/// Where `valor chat` keeps the lines typed at its prompt.
pub fn history_path(data_dir: &Path) -> PathBuf {
    data_dir.join("chat_history")
}

const PROMPT: &str = "you> ";
const ANSWER_PREFIX: &str = "valor> ";
const HELP: &str = "\
Commands (answered here, never sent to the model):
  /help   this list
  /new    start a new conversation
  /exit   leave (or Ctrl-D)
Keys: arrows and Home/End edit the line, Up/Down and Ctrl-R search earlier lines,
Ctrl-C stops an answer while it streams.";
const INTERRUPT_HINT: &str = "(Ctrl-C stops an answer; to leave, press Ctrl-D or type /exit)";

/// One read from the person at the keyboard.
pub(crate) enum Line {
    Text(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D or end of input.
    End,
}

pub(crate) trait LineSource {
    async fn read_line(&mut self, prompt: &str) -> anyhow::Result<Line>;
}

/// Lines from a pipe or file (no prompt, no editing).
struct PlainLines<R>(tokio::io::Lines<R>);

impl<R: AsyncBufRead + Unpin> LineSource for PlainLines<R> {
    async fn read_line(&mut self, _prompt: &str) -> anyhow::Result<Line> {
        Ok(match self.0.next_line().await? {
            Some(line) => Line::Text(line),
            None => Line::End,
        })
    }
}

/// What stops a streaming answer.
#[derive(Clone, Copy)]
enum StopKey {
    /// SIGINT, which Ctrl-C sends while the line editor is not reading.
    CtrlC,
    /// Nothing (piped input).
    Never,
}

impl StopKey {
    async fn pressed(self) {
        match self {
            // Listening replaces the default action (exit) for as long as valor chat runs.
            StopKey::CtrlC if tokio::signal::ctrl_c().await.is_ok() => {}
            StopKey::CtrlC | StopKey::Never => std::future::pending().await,
        }
    }
}

/// Interactive chat on the terminal: line editing, history in
/// `history_path(data_dir)`, Ctrl-C stops an answer, Ctrl-D leaves.
/// `log_note` (where the log goes) is shown once at the start.
pub async fn run_interactive(agent: &Agent, conversation: &str, data_dir: &Path, log_note: &str) -> anyhow::Result<()> {
    let history = history_path(data_dir);
    let editor = editor::LineEditor::open(&history)?;
    let conversation = agent.open_conversation(conversation, "terminal").await?;
    let mut output = tokio::io::stdout();
    let greeting = format!(
        "valor — conversation \"{}\". /help lists commands; Ctrl-D leaves.\n{log_note}\n",
        escape_for_terminal(&conversation.title)
    );
    output.write_all(greeting.as_bytes()).await?;
    Chat { agent, conversation, output, stop: StopKey::CtrlC, screen: Screen::of_stdout() }.run(editor).await
}

/// Chat from lines on `input` (a pipe, a file) until its end or `/exit`:
/// no prompt, no greeting, answers on `output`.
pub async fn run<R, W>(agent: &Agent, conversation: &str, input: R, output: W) -> anyhow::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let conversation = agent.open_conversation(conversation, "terminal").await?;
    Chat { agent, conversation, output, stop: StopKey::Never, screen: Screen::Pipe }
        .run(PlainLines(input.lines()))
        .await
}

/// A line typed at the prompt, understood.
#[derive(Debug, PartialEq)]
enum Input<'a> {
    Empty,
    Help,
    New,
    Exit,
    /// A single `/word` that is no command (a typo, most likely).
    UnknownCommand(&'a str),
    Question(&'a str),
}

fn parse_input(line: &str) -> Input<'_> {
    let text = line.trim();
    match text {
        "" => Input::Empty,
        "/help" | "/?" => Input::Help,
        "/new" => Input::New,
        "/exit" | "/quit" => Input::Exit,
        command if command.starts_with('/') && !command.contains(char::is_whitespace) && command.len() > 1 => {
            Input::UnknownCommand(command)
        }
        question => Input::Question(question),
    }
}

struct Chat<'a, W> {
    agent: &'a Agent,
    conversation: Conversation,
    output: W,
    stop: StopKey,
    /// Where answers are shown: a terminal (streamed, then rendered) or a pipe.
    screen: Screen,
}

impl<W: AsyncWrite + Unpin> Chat<'_, W> {
    async fn say(&mut self, text: &str) -> anyhow::Result<()> {
        self.output.write_all(text.as_bytes()).await?;
        self.output.flush().await?;
        Ok(())
    }

    async fn run(mut self, mut lines: impl LineSource) -> anyhow::Result<()> {
        loop {
            let line = match lines.read_line(PROMPT).await? {
                Line::Text(line) => line,
                Line::Interrupted => {
                    self.say(&format!("{INTERRUPT_HINT}\n")).await?;
                    continue;
                }
                Line::End => break,
            };
            match parse_input(&line) {
                Input::Empty => {}
                Input::Help => self.say(&format!("{HELP}\n")).await?,
                Input::New => self.start_new_conversation().await?,
                Input::Exit => break,
                Input::UnknownCommand(command) => {
                    let command = escape_for_terminal(command);
                    self.say(&format!("unknown command {command}; /help lists the commands\n")).await?;
                }
                Input::Question(question) => self.answer(question).await?,
            }
        }
        self.output.flush().await?;
        Ok(())
    }

    async fn start_new_conversation(&mut self) -> anyhow::Result<()> {
        let title = format!("terminal {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"));
        self.conversation = self.agent.new_conversation(&title, "terminal").await.context("starting a conversation")?;
        let title = escape_for_terminal(&self.conversation.title);
        self.say(&format!("started a new conversation \"{title}\"\n")).await
    }

    /// One turn: stream the answer; Ctrl-C cancels the turn's token.
    async fn answer(&mut self, question: &str) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let request = TurnRequest {
            conversation: self.conversation.clone(),
            text: question.to_owned(),
            is_admin: true,
            user: None,
            images: Vec::new(),
            once_key: None,
            cancel: cancel.clone(),
        };
        let (sender, mut events) = mpsc::channel(256);
        let agent = self.agent.clone();
        // On its own task: the turn ends and is stored even if this one fails to write.
        let turn = tokio::spawn(async move { agent.run_turn(request, &sender).await });
        self.say(ANSWER_PREFIX).await?;
        let stop = self.stop.pressed();
        tokio::pin!(stop);
        // The terminal's size now: it may have been resized since the last answer.
        let screen = if self.screen == Screen::Pipe { Screen::Pipe } else { Screen::of_stdout() };
        let mut view = AnswerView::new(screen);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        let shown = view.render(event);
                        self.say(&shown).await?;
                    }
                    None => break,
                },
                () = &mut stop, if !cancel.is_cancelled() => cancel.cancel(),
            }
        }
        let outcome = turn.await.context("the turn stopped unexpectedly")?;
        let end = if outcome.failure == Some(TurnFailure::Cancelled) { " [stopped]\n" } else { "\n" };
        self.say(end).await
    }
}

/// Events of one turn → what the terminal shows: text as rendered
/// Markdown (`answer.rs`), tool calls and errors as marked lines.
struct AnswerView {
    /// The text since the last tool call.
    run: TextRun,
    /// After an error the turn's remaining text is its explanation, already shown.
    failed: bool,
}

impl AnswerView {
    /// An answer on `screen`, printed after `ANSWER_PREFIX`.
    fn new(screen: Screen) -> AnswerView {
        AnswerView { run: TextRun::new(screen, ANSWER_PREFIX.len()), failed: false }
    }

    /// End the current text run; the next one starts on a line of its own.
    fn end_run(&mut self) -> String {
        let shown = self.run.finish();
        self.run = TextRun::new(self.run.screen(), 0);
        shown
    }

    fn render(&mut self, event: AgentEvent) -> String {
        match event {
            AgentEvent::TurnStarted { .. } => String::new(),
            AgentEvent::Done { .. } => self.run.finish(),
            AgentEvent::TextDelta { .. } if self.failed => String::new(),
            AgentEvent::TextDelta { text } => self.run.push(&text),
            AgentEvent::ToolStarted { name, input, .. } => {
                self.end_run() + &escape_for_terminal(&format!("\n  [tool] {name} {input}\n"))
            }
            AgentEvent::ToolFinished { name, is_error, output, .. } => {
                let mark = if is_error { "failed" } else { "done" };
                let first_line = output.lines().next().unwrap_or("").chars().take(100).collect::<String>();
                escape_for_terminal(&format!("  [tool] {name} {mark}: {first_line}\n"))
            }
            AgentEvent::Waiting { message } => escape_for_terminal(&format!("  [{message}]\n")),
            AgentEvent::Error { message, .. } => {
                self.failed = true;
                self.end_run() + &escape_for_terminal(&format!("\n[error] {message}"))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn local_commands_are_recognised_and_everything_else_is_a_question() {
        let cases = [
            ("", Input::Empty),
            ("   ", Input::Empty),
            ("/help", Input::Help),
            (" /help ", Input::Help),
            ("/new", Input::New),
            ("/exit", Input::Exit),
            ("/quit", Input::Exit),
            ("/hepl", Input::UnknownCommand("/hepl")),
            ("/etc/hosts: what is it for?", Input::Question("/etc/hosts: what is it for?")),
            ("/", Input::Question("/")),
            ("what does /help do", Input::Question("what does /help do")),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_input(line), expected, "line {line:?}");
        }
    }

    #[test]
    fn an_error_is_shown_once_and_its_repeated_text_is_not() {
        let mut view = AnswerView::new(Screen::Pipe);
        let shown: String = [
            AgentEvent::TextDelta { text: "Partial".into() },
            AgentEvent::Error { message: "The model is \u{1b}[31mdown".into(), failure: TurnFailure::Model },
            AgentEvent::TextDelta { text: "\n\n".into() },
            AgentEvent::TextDelta { text: "The model is down".into() },
        ]
        .into_iter()
        .map(|event| view.render(event))
        .collect();
        assert_eq!(shown, "Partial\n[error] The model is \\x1b[31mdown");
    }

    #[test]
    fn tool_calls_are_shown_escaped() {
        let mut view = AnswerView::new(Screen::Pipe);
        let started = view.render(AgentEvent::ToolStarted {
            id: "t1".into(),
            name: "read_link".into(),
            input: serde_json::json!({"url": "x\u{1b}[2J"}),
        });
        assert!(!started.contains('\u{1b}'), "{started:?}");
        let finished = view.render(AgentEvent::ToolFinished {
            id: "t1".into(),
            name: "read_link".into(),
            output: "page \u{7}title\nsecond line".into(),
            is_error: false,
        });
        assert_eq!(finished, "  [tool] read_link done: page \\x07title\n");
    }
}
