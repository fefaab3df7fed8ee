//! Markdown, parsed once with pulldown-cmark and rendered per channel: the
//! web chat's HTML ([`to_html`], `html.rs`), Telegram's HTML
//! ([`to_telegram_html`]) and the terminal's plain text ([`to_plain`]),
//! both from one writer (`text.rs`). A leaf module: it uses nothing else of
//! valor.
//!
//! Invariants: every channel parses with the same [`options`] (CommonMark
//! plus GFM tables, strikethrough and task lists); no renderer passes raw
//! HTML from the text through.

mod html;
mod text;

pub use html::to_html;
pub use text::{escape_telegram, to_plain, to_telegram_html};

use pulldown_cmark::{Options, Parser};

/// The parse options every channel uses: CommonMark plus GFM tables,
/// strikethrough and task lists (no raw-HTML extensions, no attributes).
pub fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// The events of `markdown` under [`options`].
pub fn parse(markdown: &str) -> Parser<'_> {
    Parser::new_ext(markdown, options())
}

/// Append `text` to `out` with `&`, `<`, `>` and `"` as entities, and `'`
/// too when `apostrophe` is set: the one escaper of every channel's HTML.
pub(crate) fn escape_html_into(out: &mut String, text: &str, apostrophe: bool) {
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' if apostrophe => "&#39;",
            _ => continue,
        };
        out.push_str(&text[plain..index]);
        out.push_str(entity);
        plain = index + 1;
    }
    out.push_str(&text[plain..]);
}

/// Golden-corpus checks shared by every channel's renderer tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod golden {
    /// Every `tests/fixtures/CORPUS/NAME.md` renders (through `render`, which
    /// may also assert on the output) to the hand-checked `NAME.EXTENSION`
    /// beside it, its one trailing newline aside. A missing golden is written
    /// and fails the check: read it, then run again.
    pub(crate) fn check_corpus(corpus: &str, extension: &str, render: impl Fn(&str) -> String) {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(corpus);
        let mut sources: Vec<_> = std::fs::read_dir(&directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
            .collect();
        sources.sort();
        assert!(sources.len() >= 10, "corpus missing in {}", directory.display());
        let mut wrong = Vec::new();
        for source in &sources {
            let html = render(&std::fs::read_to_string(source).unwrap());
            let golden = source.with_extension(extension);
            if !golden.exists() {
                std::fs::write(&golden, format!("{html}\n")).unwrap();
                wrong.push(format!("{}: written, check it", golden.display()));
                continue;
            }
            let expected = std::fs::read_to_string(&golden).unwrap();
            if html != expected.strip_suffix('\n').unwrap_or(&expected) {
                wrong.push(format!("{}:\n  got      {html:?}\n  expected {expected:?}", source.display()));
            }
        }
        assert!(wrong.is_empty(), "{} of {} differ:\n{}", wrong.len(), sources.len(), wrong.join("\n"));
    }
}
