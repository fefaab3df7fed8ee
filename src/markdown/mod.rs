//! Markdown, parsed once with pulldown-cmark and rendered per channel: the
//! web chat's HTML ([`to_html`], `html.rs`) here, Telegram's HTML in
//! `channels/telegram/render.rs` (over the same [`parse`]). A leaf module:
//! it uses nothing else of valor.
//!
//! Invariants: every channel parses with the same [`options`] (CommonMark
//! plus GFM tables, strikethrough and task lists); no renderer passes raw
//! HTML from the text through.

mod html;

pub use html::to_html;

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
