//! Model Markdown → Telegram HTML (parse_mode "HTML"). pulldown-cmark parses
//! (CommonMark plus GFM tables, task lists and strikethrough); [`Writer`]
//! turns its events into the subset Telegram accepts: `b`, `i`, `s`,
//! `code`, `pre`, `pre><code class="language-x"`, `a href` and
//! `blockquote`. Headings become bold lines, lists `•`/`1.` lines indented
//! two spaces per level (task items `☐`/`☑`), tables an aligned `<pre>`
//! block (column widths in characters), images their link, rules a line.
//!
//! Invariants: every piece of text is escaped (`&`, `<`, `>`, `"`), so raw
//! HTML from the model is shown as text, never passed through; tags always
//! nest and close (the parser's events are balanced; blockquotes, which
//! Telegram cannot nest, are opened only at the outermost level); a link
//! becomes `<a href>` only for http, https, mailto and tg addresses —
//! any other keeps its label and shows the address as text after it.

use pulldown_cmark::{Alignment, CodeBlockKind, CowStr, Event, LinkType, Tag, TagEnd};

/// Link schemes Telegram is given as `<a href>` (compared in lower case).
const SAFE_SCHEMES: [&str; 4] = ["http://", "https://", "mailto:", "tg://"];

/// What a horizontal rule (`---`) shows.
const RULE: &str = "────────";

/// Escape text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Telegram's escaping: the four entities its HTML mode names (an apostrophe stays one character).
fn escape_into(out: &mut String, text: &str) {
    crate::markdown::escape_html_into(out, text, false);
}

/// Render a Markdown text (one message part) to Telegram HTML.
pub fn markdown_to_html(markdown: &str) -> String {
    let mut writer =
        Writer { out: String::with_capacity(markdown.len() + markdown.len() / 8 + 32), ..Writer::default() };
    for event in crate::markdown::parse(markdown) {
        writer.event(event);
    }
    writer.out
}

/// Inline Markdown of one line (the same renderer as [`markdown_to_html`]).
pub fn render_inline(text: &str) -> String {
    markdown_to_html(text)
}

/// The visible length of our own HTML in UTF-16 units, as Telegram counts a
/// message: tags removed, the four entities [`escape`] writes as one character.
pub fn visible_units(html: &str) -> usize {
    let (mut units, mut in_tag) = (0, false);
    let mut rest = html;
    while let Some(character) = rest.chars().next() {
        let mut used = character.len_utf8();
        match character {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            '&' => {
                used = rest.find(';').map_or(used, |end| end + 1);
                units += 1;
            }
            other => units += other.len_utf16(),
        }
        rest = &rest[used..];
    }
    units
}

/// An open link or image: where its label starts in the output, its
/// address, and whether it became `<a href>`.
#[derive(Debug)]
struct OpenLink {
    label_start: usize,
    address: String,
    tagged: bool,
}

/// A table being collected: cells as plain text (a `<pre>` holds no tags).
#[derive(Debug, Default)]
struct Table {
    alignments: Vec<Alignment>,
    rows: Vec<Vec<String>>,
}

/// The event → Telegram HTML writer. Separators are owed, not written
/// (`pending`), so nothing trails a message and a closing tag comes right
/// after its content.
#[derive(Debug, Default)]
struct Writer {
    out: String,
    /// Newlines owed before the next content (1 within a list, 2 between blocks).
    pending: usize,
    /// One entry per open list: the next item's number, `None` for bullets.
    lists: Vec<Option<u64>>,
    links: Vec<OpenLink>,
    quote_depth: usize,
    /// The open code block: its text so far and its closing tags.
    code: Option<(String, &'static str)>,
    table: Option<Table>,
}

impl Writer {
    fn event(&mut self, event: Event<'_>) {
        if let Some(table) = &mut self.table {
            if event == Event::End(TagEnd::Table) {
                let table = std::mem::take(table);
                self.table = None;
                self.write_table(&table);
            } else {
                table.event(event);
            }
            return;
        }
        if let Some((code, close)) = &mut self.code {
            match event {
                Event::Text(text) => code.push_str(&text),
                Event::End(TagEnd::CodeBlock) => {
                    let text = code.strip_suffix('\n').unwrap_or(code);
                    escape_into(&mut self.out, text);
                    self.out.push_str(close);
                    self.code = None;
                    self.pending = 2;
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.text(&text),
            Event::Code(text) => {
                self.push("<code>");
                escape_into(&mut self.out, &text);
                self.out.push_str("</code>");
            }
            Event::FootnoteReference(name) => self.text(&format!("[^{name}]")),
            Event::SoftBreak | Event::HardBreak => {
                self.pending = 1;
                self.flush();
            }
            Event::Rule => {
                self.push(RULE);
                self.pending = 2;
            }
            Event::TaskListMarker(checked) => {
                if let Some(kept) = self.out.strip_suffix("• ").map(str::len) {
                    self.out.truncate(kept);
                }
                self.push(if checked { "☑ " } else { "☐ " });
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock | Tag::MetadataBlock(_) => {}
            Tag::Heading { .. } | Tag::Strong => self.push("<b>"),
            Tag::Emphasis => self.push("<i>"),
            Tag::Strikethrough => self.push("<s>"),
            Tag::Superscript | Tag::Subscript => {}
            Tag::BlockQuote(_) => {
                self.quote_depth += 1;
                if self.quote_depth == 1 {
                    self.push("<blockquote>");
                    self.pending = 0;
                }
            }
            Tag::CodeBlock(kind) => self.start_code(&kind),
            Tag::List(first) => {
                if !self.lists.is_empty() {
                    self.pending = self.pending.max(1);
                }
                self.lists.push(first);
            }
            Tag::Item => self.start_item(),
            Tag::Table(alignments) => {
                self.flush();
                self.table = Some(Table { alignments, rows: Vec::new() });
            }
            Tag::TableHead | Tag::TableRow | Tag::TableCell => {}
            Tag::FootnoteDefinition(name) => self.text(&format!("[^{name}]: ")),
            Tag::DefinitionList | Tag::DefinitionListTitle | Tag::DefinitionListDefinition => {}
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                self.start_link(link_type, dest_url);
            }
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph
            | TagEnd::HtmlBlock
            | TagEnd::MetadataBlock(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::CodeBlock
            | TagEnd::Table => {
                // An HTML block's text ends with its line break.
                let kept = self.out.trim_end_matches('\n').len();
                self.out.truncate(kept);
                self.pending = 2;
            }
            TagEnd::Heading(_) => {
                self.out.push_str("</b>");
                self.pending = 2;
            }
            TagEnd::Strong => self.out.push_str("</b>"),
            TagEnd::Emphasis => self.out.push_str("</i>"),
            TagEnd::Strikethrough => self.out.push_str("</s>"),
            TagEnd::Superscript | TagEnd::Subscript | TagEnd::TableHead | TagEnd::TableRow | TagEnd::TableCell => {}
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                if self.quote_depth == 0 {
                    self.pending = 0;
                    self.out.push_str("</blockquote>");
                }
                self.pending = 2;
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.pending = if self.lists.is_empty() { 2 } else { self.pending.max(1) };
            }
            TagEnd::Item => self.pending = self.pending.max(1),
            TagEnd::Link | TagEnd::Image => self.end_link(),
        }
    }

    /// Write the owed newlines (none at the very start), then, inside a
    /// list, the indentation that continues the item.
    fn flush(&mut self) {
        if self.pending > 0 && !self.out.is_empty() {
            for _ in 0..self.pending {
                self.out.push('\n');
            }
            for _ in 0..self.lists.len() {
                self.out.push_str("  ");
            }
        }
        self.pending = 0;
    }

    fn push(&mut self, html: &str) {
        self.flush();
        self.out.push_str(html);
    }

    fn text(&mut self, text: &str) {
        self.flush();
        escape_into(&mut self.out, text);
    }

    fn start_item(&mut self) {
        if self.pending > 0 && !self.out.is_empty() {
            for _ in 0..self.pending {
                self.out.push('\n');
            }
        }
        self.pending = 0;
        for _ in 1..self.lists.len() {
            self.out.push_str("  ");
        }
        match self.lists.last_mut() {
            Some(Some(number)) => {
                self.out.push_str(&format!("{number}. "));
                *number += 1;
            }
            Some(None) | None => self.out.push_str("• "),
        }
    }

    fn start_code(&mut self, kind: &CodeBlockKind<'_>) {
        let language = match kind {
            CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or_default(),
            CodeBlockKind::Indented => "",
        };
        let plain = language.is_empty()
            || !language.chars().all(|c| c.is_alphanumeric() || matches!(c, '+' | '-' | '_' | '#' | '.'));
        if plain {
            self.push("<pre>");
            self.code = Some((String::new(), "</pre>"));
        } else {
            self.push("<pre><code class=\"language-");
            escape_into(&mut self.out, language);
            self.out.push_str("\">");
            self.code = Some((String::new(), "</code></pre>"));
        }
    }

    fn start_link(&mut self, link_type: LinkType, address: CowStr<'_>) {
        let address = match link_type {
            LinkType::Email => format!("mailto:{address}"),
            _ => address.into_string(),
        };
        let lower = address.to_ascii_lowercase();
        let tagged = SAFE_SCHEMES.iter().any(|scheme| lower.starts_with(scheme)) && self.links.is_empty();
        if tagged {
            self.push("<a href=\"");
            escape_into(&mut self.out, &address);
            self.out.push_str("\">");
        } else {
            self.flush();
        }
        self.links.push(OpenLink { label_start: self.out.len(), address, tagged });
    }

    fn end_link(&mut self) {
        let Some(link) = self.links.pop() else { return };
        let shown = escape(&link.address);
        let label = &self.out[link.label_start..];
        let empty = label.is_empty();
        let same = label == shown;
        if empty {
            self.out.push_str(&shown);
        }
        if link.tagged {
            self.out.push_str("</a>");
        } else if !empty && !same && !link.address.is_empty() {
            self.out.push_str(" (");
            self.out.push_str(&shown);
            self.out.push(')');
        }
    }

    /// The table as aligned monospace lines, a dashed line under the header.
    fn write_table(&mut self, table: &Table) {
        let columns = table.rows.iter().map(Vec::len).max().unwrap_or(0).max(table.alignments.len());
        let mut widths = vec![0; columns];
        for row in &table.rows {
            for (column, cell) in row.iter().enumerate() {
                widths[column] = widths[column].max(cell.chars().count());
            }
        }
        let mut lines = Vec::with_capacity(table.rows.len() + 1);
        for (index, row) in table.rows.iter().enumerate() {
            let cells: Vec<String> = (0..columns)
                .map(|column| {
                    let cell = row.get(column).map_or("", String::as_str);
                    let alignment = table.alignments.get(column).copied().unwrap_or(Alignment::None);
                    pad(cell, widths[column], alignment)
                })
                .collect();
            lines.push(cells.join(" | ").trim_end().to_owned());
            if index == 0 {
                lines.push(widths.iter().map(|&width| "-".repeat(width)).collect::<Vec<_>>().join("-+-"));
            }
        }
        self.push("<pre>");
        escape_into(&mut self.out, &lines.join("\n"));
        self.out.push_str("</pre>");
        self.pending = 2;
    }
}

impl Table {
    /// An event inside the table: rows and cells open, everything else adds
    /// its visible text to the current cell.
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(Tag::TableHead | Tag::TableRow) => self.rows.push(Vec::new()),
            Event::Start(Tag::TableCell) => {
                if let Some(row) = self.rows.last_mut() {
                    row.push(String::new());
                }
            }
            Event::Text(text)
            | Event::Code(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.add(&text),
            Event::SoftBreak | Event::HardBreak => self.add(" "),
            Event::TaskListMarker(checked) => self.add(if checked { "☑ " } else { "☐ " }),
            Event::FootnoteReference(name) => self.add(&format!("[^{name}]")),
            Event::Start(_) | Event::End(_) | Event::Rule => {}
        }
    }

    fn add(&mut self, text: &str) {
        if let Some(cell) = self.rows.last_mut().and_then(|row| row.last_mut()) {
            cell.push_str(text);
        }
    }
}

/// `cell` padded with spaces to `width` characters, placed by `alignment`.
fn pad(cell: &str, width: usize, alignment: Alignment) -> String {
    let room = width.saturating_sub(cell.chars().count());
    let (left, right) = match alignment {
        Alignment::Right => (room, 0),
        Alignment::Center => (room / 2, room - room / 2),
        Alignment::None | Alignment::Left => (0, room),
    };
    format!("{}{cell}{}", " ".repeat(left), " ".repeat(right))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every `tests/fixtures/telegram_render/NAME.md` renders to the
    /// hand-checked `NAME.html` beside it (its one trailing newline aside).
    #[test]
    fn the_markdown_corpus_renders_to_its_golden_html() {
        crate::markdown::golden::check_corpus("telegram_render", |markdown| {
            let html = markdown_to_html(markdown);
            visible(&html);
            html
        });
    }

    #[test]
    fn markdown_renders_to_telegram_html() {
        let cases = [
            ("plain text", "plain text"),
            ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
            ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
            ("**bold** and *italic*", "<b>bold</b> and <i>italic</i>"),
            ("__bold__ and _italic_", "<b>bold</b> and <i>italic</i>"),
            ("~~gone~~", "<s>gone</s>"),
            ("snake_case_name stays", "snake_case_name stays"),
            ("2 * 3 * 4", "2 * 3 * 4"),
            ("**unclosed bold", "**unclosed bold"),
            ("`a<b>` code", "<code>a&lt;b&gt;</code> code"),
            ("`**not bold**`", "<code>**not bold**</code>"),
            ("**bold with `code`**", "<b>bold with <code>code</code></b>"),
            ("[docs](https://x.dev/a?b=1&c=\"2\")", "<a href=\"https://x.dev/a?b=1&amp;c=&quot;2&quot;\">docs</a>"),
            ("[bad](javascript:alert(1))", "bad (javascript:alert(1))"),
            ("# Title", "<b>Title</b>"),
            ("- one\n- two", "• one\n• two"),
            ("say \"hi\"", "say &quot;hi&quot;"),
            (
                "```rust\nfn main() { a < b }\n```",
                "<pre><code class=\"language-rust\">fn main() { a &lt; b }</code></pre>",
            ),
            ("```\nplain & code\n```", "<pre>plain &amp; code</pre>"),
            ("```python\nunclosed = 1", "<pre><code class=\"language-python\">unclosed = 1</code></pre>"),
            (
                "before\n\n```sh\nls\n```\n\nafter",
                "before\n\n<pre><code class=\"language-sh\">ls</code></pre>\n\nafter",
            ),
        ];
        for (markdown, html) in cases {
            assert_eq!(markdown_to_html(markdown), html, "rendering {markdown:?}");
        }
    }

    /// The text a Telegram user sees: tags removed, entities decoded. Panics
    /// on what Telegram would reject: unknown tags or entities, tags that do
    /// not nest, a bare `>`.
    fn visible(html: &str) -> String {
        let (mut open, mut seen, mut rest) = (Vec::new(), String::new(), html);
        while let Some(next) = rest.chars().next() {
            let used = match next {
                '<' => {
                    let end = rest.find('>').unwrap_or_else(|| panic!("unclosed tag in {html:?}"));
                    let tag = &rest[1..end];
                    match tag.strip_prefix('/') {
                        Some(name) => assert_eq!(open.pop(), Some(name), "tags do not nest in {html:?}"),
                        None => {
                            let name = tag.split(' ').next().unwrap_or_default();
                            let allowed = ["b", "i", "u", "s", "code", "pre", "a", "blockquote"];
                            assert!(allowed.contains(&name), "<{tag}> in {html:?}");
                            if let Some(address) = tag.strip_prefix("a href=\"") {
                                let safe = ["http://", "https://", "mailto:", "tg://"];
                                assert!(safe.iter().any(|scheme| address.starts_with(scheme)), "<{tag}> in {html:?}");
                            }
                            open.push(name);
                        }
                    }
                    end + 1
                }
                '&' => {
                    let end = rest.find(';').unwrap_or_else(|| panic!("bare & in {html:?}"));
                    seen.push(match &rest[..=end] {
                        "&amp;" => '&',
                        "&lt;" => '<',
                        "&gt;" => '>',
                        "&quot;" => '"',
                        other => panic!("entity {other} in {html:?}"),
                    });
                    end + 1
                }
                '>' => panic!("bare > in {html:?}"),
                other => {
                    seen.push(other);
                    other.len_utf8()
                }
            };
            rest = &rest[used..];
        }
        assert!(open.is_empty(), "unclosed {open:?} in {html:?}");
        seen
    }

    /// What must survive rendering: letters, digits and the escaped characters.
    fn substance(text: &str) -> String {
        text.chars().filter(|c| c.is_alphanumeric() || matches!(c, '<' | '>' | '&' | '"')).collect()
    }

    proptest::proptest! {
        #[test]
        fn any_markdown_renders_to_balanced_allowed_tags_with_everything_escaped(
            text in "([a-z ]{0,4}|[*_~`|>#<&\"\\\\!\\[\\]()-]|\n|\n\n|    |> |- |1\\. |- \\[ \\] |- \\[x\\] |```|```rs\n|~~~\n|---\n|\\|[a-z]\\|[a-z]\\|\n|\\|-\\|-\\|\n|<div>|</b>|<a href=\"x\">|&amp;|&#60;|\\[a\\]\\((https://x|javascript:y|tg://z)\\)|!\\[i\\]\\(http://p\\)|<https://q>){0,50}"
        ) {
            let html = markdown_to_html(&text);
            visible(&html);
        }

        #[test]
        fn output_is_valid_telegram_html_and_keeps_every_letter(
            // No "```" line (a fence's language is not shown): backticks come as `code` or after a letter.
            text in "([a-zé1 ]{0,4}|[*_~]|`[a-z<]{1,3}`|a`|\\*\\*|__|~~|<|&|\"|\n|# |- ){0,60}"
        ) {
            // "~~~" opens a fence in CommonMark (its info string is not shown either).
            proptest::prop_assume!(!text.contains("~~~"));
            let html = markdown_to_html(&text);
            proptest::prop_assert_eq!(substance(&visible(&html)), substance(&text), "{:?} → {:?}", text, html);
        }
    }

    #[test]
    fn links_render_with_escaped_addresses_and_nested_labels() {
        let html = markdown_to_html("see [**the** docs](https://x.dev/?a=1&b=2) and [x](ftp://no)");
        assert_eq!(html, "see <a href=\"https://x.dev/?a=1&amp;b=2\"><b>the</b> docs</a> and x (ftp://no)");
        assert_eq!(visible(&html), "see the docs and x (ftp://no)");
    }
}
