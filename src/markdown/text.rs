//! Markdown → the two text flavours: Telegram HTML (parse_mode "HTML") and
//! plain text (the terminal). One writer turns pulldown-cmark's events into
//! either; they differ only in markup:
//!
//! | Markdown | Telegram HTML | plain text |
//! |---|---|---|
//! | `**b**`, `*i*`, `~~s~~` | `<b>`, `<i>`, `<s>` | the text alone |
//! | heading | a bold line | its line, `═`/`─` under levels 1 and 2 |
//! | `` `code` `` | `<code>` | kept in backticks |
//! | fenced code | `<pre>` (`<code class="language-x">`) | kept fenced, with its language |
//! | blockquote | `<blockquote>` (outermost only) | lines prefixed `│ ` per level |
//! | link | `<a href>` for http, https, mailto, tg; else "label (address)" | "label (address)" |
//!
//! Both: lists as `•`/`1.` lines indented two spaces per level (task items
//! `☐`/`☑`), tables as aligned lines with a dashed line under the header
//! (column widths in characters; a `<pre>` block in Telegram), images as
//! their link, rules as a line.
//!
//! Invariants: in Telegram HTML every piece of text is escaped (`&`, `<`,
//! `>`, `"`), so raw HTML from the model is shown as text, never passed
//! through; tags always nest and close (the parser's events are balanced;
//! blockquotes, which Telegram cannot nest, are opened only at the outermost
//! level). Plain text is the model's text as written, markup removed: a
//! caller that prints it to a terminal still neutralises control characters.

use pulldown_cmark::{Alignment, CodeBlockKind, CowStr, Event, HeadingLevel, LinkType, Tag, TagEnd};

/// Escape text for Telegram HTML.
pub fn escape_telegram(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Telegram's escaping: the four entities its HTML mode names (an apostrophe stays one character).
fn escape_into(out: &mut String, text: &str) {
    super::escape_html_into(out, text, false);
}

/// Link schemes Telegram is given as `<a href>` (compared in lower case).
const SAFE_SCHEMES: [&str; 4] = ["http://", "https://", "mailto:", "tg://"];

/// What a horizontal rule (`---`) shows.
const RULE: &str = "────────";

/// What starts each line of a quote in plain text, per level.
const QUOTE_MARK: &str = "│ ";

/// Render Markdown to Telegram HTML.
pub fn to_telegram_html(markdown: &str) -> String {
    render(markdown, Flavour::TelegramHtml)
}

/// Render Markdown to plain text (for a terminal).
pub fn to_plain(markdown: &str) -> String {
    render(markdown, Flavour::Plain)
}

fn render(markdown: &str, flavour: Flavour) -> String {
    let mut writer =
        Writer { flavour, out: String::with_capacity(markdown.len() + markdown.len() / 8 + 32), ..Writer::default() };
    for event in super::parse(markdown) {
        writer.event(event);
    }
    writer.out
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    #[default]
    TelegramHtml,
    Plain,
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

/// The event → text writer. Separators are owed, not written (`pending`),
/// so nothing trails a message and a closing tag comes right after its
/// content.
#[derive(Debug, Default)]
struct Writer {
    flavour: Flavour,
    out: String,
    /// Newlines owed before the next content (1 within a list, 2 between blocks).
    pending: usize,
    /// One entry per open list: the next item's number, `None` for bullets.
    lists: Vec<Option<u64>>,
    links: Vec<OpenLink>,
    quote_depth: usize,
    /// The open code block: its text so far and what closes it.
    code: Option<(String, &'static str)>,
    /// The open heading: where its text starts and its level (plain text underlines it).
    heading: Option<(usize, HeadingLevel)>,
    table: Option<Table>,
}

impl Writer {
    fn html(&self) -> bool {
        self.flavour == Flavour::TelegramHtml
    }

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
                    let (code, close) = (std::mem::take(code), *close);
                    self.code = None;
                    let text = code.strip_suffix('\n').unwrap_or(&code);
                    match self.flavour {
                        Flavour::TelegramHtml => {
                            escape_into(&mut self.out, text);
                            self.out.push_str(close);
                        }
                        Flavour::Plain if text.is_empty() => self.put_lines(&format!("\n{close}")),
                        Flavour::Plain => self.put_lines(&format!("\n{text}\n{close}")),
                    }
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
                self.tag("<code>", "`");
                self.put(&text);
                self.out.push_str(if self.html() { "</code>" } else { "`" });
            }
            Event::FootnoteReference(name) => self.text(&format!("[^{name}]")),
            Event::SoftBreak | Event::HardBreak => {
                self.pending = 1;
                self.flush();
            }
            Event::Rule => {
                self.tag(RULE, RULE);
                self.pending = 2;
            }
            Event::TaskListMarker(checked) => {
                if let Some(kept) = self.out.strip_suffix("• ").map(str::len) {
                    self.out.truncate(kept);
                }
                self.tag(if checked { "☑ " } else { "☐ " }, if checked { "☑ " } else { "☐ " });
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock | Tag::MetadataBlock(_) => {}
            Tag::Heading { level, .. } => {
                self.tag("<b>", "");
                self.heading = Some((self.out.len(), level));
            }
            Tag::Strong => self.tag("<b>", ""),
            Tag::Emphasis => self.tag("<i>", ""),
            Tag::Strikethrough => self.tag("<s>", ""),
            Tag::Superscript | Tag::Subscript => {}
            Tag::BlockQuote(_) => self.start_quote(),
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
            TagEnd::Heading(_) => self.end_heading(),
            TagEnd::Strong => self.close("</b>"),
            TagEnd::Emphasis => self.close("</i>"),
            TagEnd::Strikethrough => self.close("</s>"),
            TagEnd::Superscript | TagEnd::Subscript | TagEnd::TableHead | TagEnd::TableRow | TagEnd::TableCell => {}
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                if self.quote_depth == 0 && self.html() {
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

    /// Write the owed newlines (none at the very start), then what continues
    /// the line: in plain text the quote marks, then, inside a list, the
    /// indentation of the item.
    fn flush(&mut self) {
        if self.pending > 0 && !self.out.is_empty() {
            for _ in 0..self.pending {
                self.newline();
            }
            for _ in 0..self.lists.len() {
                self.out.push_str("  ");
            }
        }
        self.pending = 0;
    }

    /// A line break, and in plain text the new line's quote marks (a blank
    /// line in a quote keeps them, without the trailing space).
    fn newline(&mut self) {
        if !self.html() && self.out.ends_with(QUOTE_MARK) {
            self.out.truncate(self.out.len() - 1);
        }
        self.out.push('\n');
        if !self.html() {
            for _ in 0..self.quote_depth {
                self.out.push_str(QUOTE_MARK);
            }
        }
    }

    /// Open markup: `html` in Telegram HTML, `plain` in plain text.
    fn tag(&mut self, html: &str, plain: &str) {
        self.flush();
        self.out.push_str(if self.html() { html } else { plain });
    }

    /// Close markup (Telegram HTML only).
    fn close(&mut self, html: &str) {
        if self.html() {
            self.out.push_str(html);
        }
    }

    /// Text as the flavour writes it: escaped in HTML, as it is in plain text.
    fn put(&mut self, text: &str) {
        match self.flavour {
            Flavour::TelegramHtml => escape_into(&mut self.out, text),
            Flavour::Plain => self.out.push_str(text),
        }
    }

    /// Plain lines, each continued by the quote marks and list indentation
    /// (a code block or table inside a quote or list).
    fn put_lines(&mut self, text: &str) {
        let mut lines = text.split('\n');
        if let Some(first) = lines.next() {
            self.out.push_str(first);
        }
        for line in lines {
            self.newline();
            if !line.is_empty() {
                for _ in 0..self.lists.len() {
                    self.out.push_str("  ");
                }
            }
            self.out.push_str(line);
        }
    }

    fn text(&mut self, text: &str) {
        self.flush();
        self.put(text);
    }

    fn start_quote(&mut self) {
        if self.html() {
            self.quote_depth += 1;
            if self.quote_depth == 1 {
                self.tag("<blockquote>", "");
                self.pending = 0;
            }
        } else {
            // The owed lines carry the outer quote's marks; this level adds its own.
            self.flush();
            self.quote_depth += 1;
            self.out.push_str(QUOTE_MARK);
        }
    }

    fn end_heading(&mut self) {
        let Some((start, level)) = self.heading.take() else { return };
        if self.html() {
            self.out.push_str("</b>");
        } else {
            let width = self.out[start..].chars().count();
            let line = match level {
                HeadingLevel::H1 => Some('═'),
                HeadingLevel::H2 => Some('─'),
                _ => None,
            };
            if let Some(line) = line.filter(|_| width > 0) {
                self.newline();
                self.out.extend(std::iter::repeat_n(line, width));
            }
        }
        self.pending = 2;
    }

    fn start_item(&mut self) {
        if self.pending > 0 && !self.out.is_empty() {
            for _ in 0..self.pending {
                self.newline();
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
        match self.flavour {
            Flavour::Plain => {
                // Kept fenced: the code copies as it is, its language shown.
                let fence = format!("```{}", if plain { "" } else { language });
                self.tag(&fence, &fence);
                self.code = Some((String::new(), "```"));
            }
            Flavour::TelegramHtml if plain => {
                self.tag("<pre>", "");
                self.code = Some((String::new(), "</pre>"));
            }
            Flavour::TelegramHtml => {
                self.tag("<pre><code class=\"language-", "");
                escape_into(&mut self.out, language);
                self.out.push_str("\">");
                self.code = Some((String::new(), "</code></pre>"));
            }
        }
    }

    fn start_link(&mut self, link_type: LinkType, address: CowStr<'_>) {
        let address = match link_type {
            LinkType::Email => format!("mailto:{address}"),
            _ => address.into_string(),
        };
        let lower = address.to_ascii_lowercase();
        let tagged =
            self.html() && SAFE_SCHEMES.iter().any(|scheme| lower.starts_with(scheme)) && self.links.is_empty();
        if tagged {
            self.tag("<a href=\"", "");
            escape_into(&mut self.out, &address);
            self.out.push_str("\">");
        } else {
            self.flush();
        }
        self.links.push(OpenLink { label_start: self.out.len(), address, tagged });
    }

    fn end_link(&mut self) {
        let Some(link) = self.links.pop() else { return };
        let shown = match self.flavour {
            Flavour::TelegramHtml => escape_telegram(&link.address),
            Flavour::Plain => link.address.strip_prefix("mailto:").unwrap_or(&link.address).to_owned(),
        };
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
        match self.flavour {
            Flavour::TelegramHtml => {
                self.tag("<pre>", "");
                escape_into(&mut self.out, &lines.join("\n"));
                self.out.push_str("</pre>");
            }
            Flavour::Plain => {
                self.flush();
                self.put_lines(&lines.join("\n"));
            }
        }
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

    /// The corpus Telegram's HTML is checked against, as plain text:
    /// `tests/fixtures/telegram_render/NAME.txt`.
    #[test]
    fn the_markdown_corpus_renders_to_its_golden_plain_text() {
        super::super::golden::check_corpus("telegram_render", "txt", to_plain);
    }

    #[test]
    fn markdown_renders_to_plain_text() {
        let cases = [
            ("plain text", "plain text"),
            ("a < b && c > d", "a < b && c > d"),
            ("**bold** and *italic* and ~~gone~~", "bold and italic and gone"),
            ("`a<b>` code", "`a<b>` code"),
            ("# Title\n\ntext", "Title\n═════\n\ntext"),
            ("## Über\ntext", "Über\n────\n\ntext"),
            ("### Small", "Small"),
            ("- one\n- two\n  - nested", "• one\n• two\n  • nested"),
            ("3. three\n4. four", "3. three\n4. four"),
            ("- [x] done\n- [ ] open", "☑ done\n☐ open"),
            ("> quoted\n> more\n>\n> > inner", "│ quoted\n│ more\n│\n│ │ inner"),
            ("[docs](https://x.dev/a) and <https://y.dev>", "docs (https://x.dev/a) and https://y.dev"),
            ("mail <me@x.dev>", "mail me@x.dev"),
            ("![chart](/api/files/1)", "chart (/api/files/1)"),
            ("```rust\nfn main() {}\n```", "```rust\nfn main() {}\n```"),
            ("```\n```", "```\n```"),
            ("- item\n\n  ```sh\n  ls\n  ```", "• item\n\n  ```sh\n  ls\n  ```"),
            ("| a | bb |\n|---|---:|\n| 1 | 2 |", "a | bb\n--+---\n1 |  2"),
            ("above\n\n---\n\nbelow", "above\n\n────────\n\nbelow"),
            ("<b>raw</b>", "<b>raw</b>"),
        ];
        for (markdown, plain) in cases {
            assert_eq!(to_plain(markdown), plain, "rendering {markdown:?}");
        }
    }

    /// What must survive: the letters (digits may be list numbers, renumbered).
    fn letters(text: &str) -> String {
        text.chars().filter(|c| c.is_alphabetic()).collect()
    }

    proptest::proptest! {
        #[test]
        fn plain_text_keeps_every_letter_and_drops_emphasis_marks(
            text in "([a-zé1 ]{0,4}|\\*\\*[a-z]{1,3}\\*\\* |_[a-z]{1,3}_ |~~[a-z]{1,3}~~ |`[a-z<]{1,3}`|\n|\n\n|# |- |> |1\\. ){0,60}"
        ) {
            let plain = to_plain(&text);
            proptest::prop_assert_eq!(letters(&plain), letters(&text), "{:?} → {:?}", text, plain);
            proptest::prop_assert!(!plain.contains("**") && !plain.contains("~~"), "{:?} → {:?}", text, plain);
        }
    }
}
