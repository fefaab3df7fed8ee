//! Drives a provider's server-sent-event folding state machine over a byte
//! stream and yields neutral [`StreamEvent`]s.
//!
//! Invariants: the output ends right after the one `Finished` event, or with
//! exactly one error; a body that ends before the folder finished is
//! `Network("stream ended early")`.

use std::collections::VecDeque;
use std::pin::Pin;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;

use super::transport::ByteStream;
use super::{EventStream, LlmError, StreamEvent};

/// A provider's wire-format state machine: one SSE event in, zero or more
/// neutral events out. Returning a `Finished` event ends the stream.
pub trait SseFolder: Send + 'static {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<StreamEvent>, LlmError>;
}

struct DriveState<F> {
    events: Pin<Box<dyn futures::Stream<Item = Result<eventsource_stream::Event, EventStreamError<LlmError>>> + Send>>,
    folder: F,
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    done: bool,
}

/// Parses `body` as SSE and feeds each event to `folder`.
pub fn fold_sse_stream<F: SseFolder>(body: ByteStream, folder: F) -> EventStream {
    let state = DriveState { events: Box::pin(body.eventsource()), folder, pending: VecDeque::new(), done: false };
    let stream = futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            if state.done {
                return None;
            }
            let next = state.events.next().await;
            let items = next_items(&mut state, next);
            state.pending.extend(items);
        }
    });
    Box::pin(stream)
}

/// What one SSE item contributes to the output; marks the state done when
/// the stream is over (finished, failed or ended early).
fn next_items<F: SseFolder>(
    state: &mut DriveState<F>,
    next: Option<Result<eventsource_stream::Event, EventStreamError<LlmError>>>,
) -> Vec<Result<StreamEvent, LlmError>> {
    let event = match next {
        None => {
            state.done = true;
            return vec![Err(LlmError::Network("stream ended early".into()))];
        }
        Some(Err(err)) => {
            state.done = true;
            return vec![Err(sse_error(err))];
        }
        Some(Ok(event)) => event,
    };
    match state.folder.on_event(&event.event, &event.data) {
        Ok(events) => {
            if events.iter().any(|event| matches!(event, StreamEvent::Finished(_))) {
                state.done = true;
            }
            events.into_iter().map(Ok).collect()
        }
        Err(err) => {
            state.done = true;
            vec![Err(err)]
        }
    }
}

fn sse_error(err: EventStreamError<LlmError>) -> LlmError {
    match err {
        EventStreamError::Transport(err) => err,
        EventStreamError::Utf8(err) => LlmError::InvalidResponse(format!("stream is not UTF-8: {err}")),
        EventStreamError::Parser(err) => LlmError::InvalidResponse(format!("stream is not valid SSE: {err}")),
    }
}

/// Splits `text` into chunks of `size` bytes as a [`ByteStream`] (tests and fixtures).
#[cfg(test)]
pub fn chunked_body(text: &str, size: usize) -> ByteStream {
    let chunks: Vec<Result<bytes::Bytes, LlmError>> =
        text.as_bytes().chunks(size).map(|chunk| Ok(bytes::Bytes::copy_from_slice(chunk))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// The text of `tests/fixtures/llm/{name}`.
#[cfg(test)]
#[allow(clippy::expect_used)]
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/llm/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect("fixture file is readable")
}

/// Every item of `stream`, in order.
#[cfg(test)]
pub async fn collect(stream: EventStream) -> Vec<Result<StreamEvent, LlmError>> {
    stream.collect().await
}
