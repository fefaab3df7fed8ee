//! Markdown → the web chat's HTML, safe by construction: the writer emits
//! only the tags below, each attribute value escaped, and text is always
//! escaped (`&`, `<`, `>`, `"`, `'`).
//!
//! - raw HTML (blocks and inline) becomes visible text;
//! - `<a href>` only for http, https and mailto addresses, always with
//!   `rel="noopener noreferrer" target="_blank"`; any other link keeps its
//!   label and shows its address as text after it;
//! - `<img>` only for the chat's own addresses (a path on this server,
//!   `/…`, never `//host`); an http(s) image becomes a link to it, so no
//!   outside image is fetched by showing a message (no tracking pixels);
//! - fenced code is `<pre><code class="language-x">` (the language only
//!   from `[A-Za-z0-9+#._-]`) in a block with its language label and a copy
//!   button; task items are disabled checkboxes; tables sit in a scrolling
//!   wrapper and align by class (no `style`).

use pulldown_cmark::{Alignment, CodeBlockKind, CowStr, Event, HeadingLevel, LinkType, Tag, TagEnd};

/// Render a Markdown text to the web chat's HTML.
pub fn to_html(markdown: &str) -> String {
    let mut writer = Writer { out: String::with_capacity(markdown.len() * 5 / 4 + 16), ..Writer::default() };
    for event in super::parse(markdown) {
        writer.event(event);
    }
    writer.out
}

/// The web's escaping: apostrophes too (attribute values may be single-quoted by a browser's serialiser).
fn escape_into(out: &mut String, text: &str) {
    super::escape_html_into(out, text, true);
}

/// The address when a link may point there: http, https or mailto.
fn link_target(link_type: LinkType, address: &str) -> Option<String> {
    let address = match link_type {
        LinkType::Email => format!("mailto:{address}"),
        _ => address.trim().to_owned(),
    };
    let lower = address.to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme));
    (allowed && !address.chars().any(char::is_control)).then_some(address)
}

/// Whether an image address is the chat's own: a path on this server.
fn own_image(address: &str) -> bool {
    address.starts_with('/')
        && !address.starts_with("//")
        && !address.contains('\\')
        && !address.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A language label safe in a class name and as text.
fn language(info: &str) -> Option<&str> {
    let word = info.split_whitespace().next()?;
    let word = word.split(',').next().unwrap_or(word);
    let ok = !word.is_empty()
        && word.len() <= 32
        && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '.' | '_' | '-'));
    ok.then_some(word)
}

fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// An open link: whether it became `<a href>`, else its address (shown after the label).
#[derive(Debug)]
struct OpenLink {
    tagged: bool,
    address: String,
    label_start: usize,
}

/// An open image: its address and the alt text collected so far.
#[derive(Debug)]
struct OpenImage {
    address: String,
    alt: String,
}

#[derive(Debug, Default)]
struct Writer {
    out: String,
    links: Vec<OpenLink>,
    /// Images can nest in image descriptions; only the outermost is rendered.
    images: Vec<OpenImage>,
    /// The open code block: its language and text so far.
    code: Option<(Option<String>, String)>,
    /// Where each open list item starts in `out` (a task marker adds a class there).
    items: Vec<usize>,
    /// The open table's column alignments, whether its head is open, and the next cell's column.
    table: Option<(Vec<Alignment>, bool, usize)>,
}

impl Writer {
    fn event(&mut self, event: Event<'_>) {
        if let Some((_, code)) = &mut self.code {
            match event {
                Event::Text(text) => code.push_str(&text),
                Event::End(TagEnd::CodeBlock) => self.end_code(),
                _ => {}
            }
            return;
        }
        if !self.images.is_empty() {
            let alt = match event {
                Event::Start(Tag::Image { dest_url, .. }) => {
                    self.images.push(OpenImage { address: dest_url.into_string(), alt: String::new() });
                    return;
                }
                Event::End(TagEnd::Image) => return self.end_image(),
                Event::Text(text) | Event::Code(text) | Event::Html(text) | Event::InlineHtml(text) => text,
                Event::SoftBreak | Event::HardBreak => CowStr::Borrowed(" "),
                _ => return,
            };
            if let Some(image) = self.images.last_mut() {
                image.alt.push_str(&alt);
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
            | Event::DisplayMath(text) => escape_into(&mut self.out, &text),
            Event::Code(text) => {
                self.out.push_str("<code>");
                escape_into(&mut self.out, &text);
                self.out.push_str("</code>");
            }
            Event::FootnoteReference(name) => escape_into(&mut self.out, &format!("[^{name}]")),
            Event::SoftBreak => self.out.push('\n'),
            Event::HardBreak => self.out.push_str("<br>\n"),
            Event::Rule => self.out.push_str("<hr>\n"),
            Event::TaskListMarker(checked) => self.task_marker(checked),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.out.push_str("<p>"),
            Tag::Heading { level, .. } => self.out.push_str(&format!("<h{}>", heading_number(level))),
            Tag::BlockQuote(_) => self.out.push_str("<blockquote>\n"),
            Tag::CodeBlock(kind) => {
                let language = match &kind {
                    CodeBlockKind::Fenced(info) => language(info).map(str::to_owned),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some((language, String::new()));
            }
            // Raw HTML is shown as its source text.
            Tag::HtmlBlock => self.out.push_str("<p class=\"raw-html\">"),
            Tag::List(Some(1)) => self.out.push_str("<ol>\n"),
            Tag::List(Some(start)) => self.out.push_str(&format!("<ol start=\"{start}\">\n")),
            Tag::List(None) => self.out.push_str("<ul>\n"),
            Tag::Item => {
                self.items.push(self.out.len());
                self.out.push_str("<li>");
            }
            Tag::Table(alignments) => {
                self.table = Some((alignments, false, 0));
                self.out.push_str("<div class=\"table-wrap\"><table>\n");
            }
            Tag::TableHead => {
                if let Some((_, head, column)) = &mut self.table {
                    *head = true;
                    *column = 0;
                }
                self.out.push_str("<thead>\n<tr>");
            }
            Tag::TableRow => {
                if let Some((_, _, column)) = &mut self.table {
                    *column = 0;
                }
                self.out.push_str("<tr>");
            }
            Tag::TableCell => self.start_cell(),
            Tag::Emphasis => self.out.push_str("<em>"),
            Tag::Strong => self.out.push_str("<strong>"),
            Tag::Strikethrough => self.out.push_str("<del>"),
            Tag::Superscript => self.out.push_str("<sup>"),
            Tag::Subscript => self.out.push_str("<sub>"),
            Tag::Link { link_type, dest_url, .. } => self.start_link(link_type, &dest_url),
            Tag::Image { dest_url, .. } => {
                self.images.push(OpenImage { address: dest_url.into_string(), alt: String::new() });
            }
            Tag::FootnoteDefinition(name) => {
                self.out.push_str("<div class=\"footnote\">");
                escape_into(&mut self.out, &format!("[^{name}]: "));
            }
            Tag::DefinitionList => self.out.push_str("<dl>\n"),
            Tag::DefinitionListTitle => self.out.push_str("<dt>"),
            Tag::DefinitionListDefinition => self.out.push_str("<dd>"),
            Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.out.push_str("</p>\n"),
            TagEnd::Heading(level) => self.out.push_str(&format!("</h{}>\n", heading_number(level))),
            TagEnd::BlockQuote(_) => self.out.push_str("</blockquote>\n"),
            TagEnd::CodeBlock => self.end_code(),
            TagEnd::List(ordered) => self.out.push_str(if ordered { "</ol>\n" } else { "</ul>\n" }),
            TagEnd::Item => {
                self.items.pop();
                self.out.push_str("</li>\n");
            }
            TagEnd::Table => {
                self.table = None;
                self.out.push_str("</tbody>\n</table></div>\n");
            }
            TagEnd::TableHead => {
                if let Some((_, head, _)) = &mut self.table {
                    *head = false;
                }
                self.out.push_str("</tr>\n</thead>\n<tbody>\n");
            }
            TagEnd::TableRow => self.out.push_str("</tr>\n"),
            TagEnd::TableCell => {
                let head = self.table.as_ref().is_some_and(|(_, head, _)| *head);
                self.out.push_str(if head { "</th>" } else { "</td>" });
            }
            TagEnd::Emphasis => self.out.push_str("</em>"),
            TagEnd::Strong => self.out.push_str("</strong>"),
            TagEnd::Strikethrough => self.out.push_str("</del>"),
            TagEnd::Superscript => self.out.push_str("</sup>"),
            TagEnd::Subscript => self.out.push_str("</sub>"),
            TagEnd::Link => self.end_link(),
            TagEnd::Image => self.end_image(),
            TagEnd::FootnoteDefinition => self.out.push_str("</div>\n"),
            TagEnd::DefinitionList => self.out.push_str("</dl>\n"),
            TagEnd::DefinitionListTitle => self.out.push_str("</dt>\n"),
            TagEnd::DefinitionListDefinition => self.out.push_str("</dd>\n"),
            TagEnd::MetadataBlock(_) => {}
        }
    }

    fn start_cell(&mut self) {
        let Some((alignments, head, column)) = &mut self.table else { return };
        let class = match alignments.get(*column).copied().unwrap_or(Alignment::None) {
            Alignment::None => "",
            Alignment::Left => " class=\"align-left\"",
            Alignment::Center => " class=\"align-center\"",
            Alignment::Right => " class=\"align-right\"",
        };
        *column += 1;
        let cell = if *head { "th" } else { "td" };
        self.out.push_str(&format!("<{cell}{class}>"));
    }

    /// A task item's checkbox; its `<li>` gets the class `task`.
    fn task_marker(&mut self, checked: bool) {
        if let Some(&start) = self.items.last()
            && self.out[start..].starts_with("<li>")
        {
            self.out.replace_range(start..start + 4, "<li class=\"task\">");
        }
        self.out.push_str(if checked {
            "<input type=\"checkbox\" disabled checked> "
        } else {
            "<input type=\"checkbox\" disabled> "
        });
    }

    fn end_code(&mut self) {
        let Some((language, text)) = self.code.take() else { return };
        self.out.push_str("<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">");
        escape_into(&mut self.out, language.as_deref().unwrap_or("text"));
        self.out.push_str(
            "</span><button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button></div><pre>",
        );
        match &language {
            Some(language) => {
                self.out.push_str("<code class=\"language-");
                escape_into(&mut self.out, language);
                self.out.push_str("\">");
            }
            None => self.out.push_str("<code>"),
        }
        escape_into(&mut self.out, text.strip_suffix('\n').unwrap_or(&text));
        self.out.push_str("</code></pre></div>\n");
    }

    fn start_link(&mut self, link_type: LinkType, address: &CowStr<'_>) {
        match link_target(link_type, address) {
            Some(target) => {
                self.out.push_str("<a href=\"");
                escape_into(&mut self.out, &target);
                self.out.push_str("\" rel=\"noopener noreferrer\" target=\"_blank\">");
                self.links.push(OpenLink { tagged: true, address: target, label_start: self.out.len() });
            }
            None => {
                let address = address.to_string();
                self.links.push(OpenLink { tagged: false, address, label_start: self.out.len() });
            }
        }
    }

    fn end_link(&mut self) {
        let Some(link) = self.links.pop() else { return };
        let mut shown = String::new();
        escape_into(&mut shown, &link.address);
        let label = &self.out[link.label_start..];
        let (empty, same) = (label.is_empty(), label == shown);
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

    /// The chat's own image as `<img>`; an outside one as a link to it; anything else as text.
    fn end_image(&mut self) {
        let Some(image) = self.images.pop() else { return };
        if !self.images.is_empty() {
            // A nested image adds its description to the outer one's.
            if let Some(outer) = self.images.last_mut() {
                outer.alt.push_str(&image.alt);
            }
            return;
        }
        let address = image.address.trim();
        if own_image(address) {
            self.out.push_str("<img src=\"");
            escape_into(&mut self.out, address);
            self.out.push_str("\" alt=\"");
            escape_into(&mut self.out, &image.alt);
            self.out.push_str("\" loading=\"lazy\">");
            return;
        }
        let label = if image.alt.trim().is_empty() { "image" } else { image.alt.trim() };
        match link_target(LinkType::Inline, address).filter(|target| !target.starts_with("mailto:")) {
            Some(target) => {
                self.out.push_str("<a class=\"image-link\" href=\"");
                escape_into(&mut self.out, &target);
                self.out.push_str("\" rel=\"noopener noreferrer\" target=\"_blank\">🖼 ");
                escape_into(&mut self.out, label);
                self.out.push_str("</a>");
            }
            None => {
                escape_into(&mut self.out, &format!("🖼 {label}"));
                if !address.is_empty() {
                    escape_into(&mut self.out, &format!(" ({address})"));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every `tests/fixtures/web_render/NAME.md` renders to the hand-checked
    /// `NAME.html` beside it (its one trailing newline aside). A missing
    /// golden is written and fails the test: read it, then run again.
    #[test]
    fn the_markdown_corpus_renders_to_its_golden_html() {
        crate::markdown::golden::check_corpus("web_render", "html", |markdown| {
            let html = to_html(markdown);
            assert_inert(&html);
            html
        });
    }

    /// Tags and attributes the writer may emit.
    const TAGS: [&str; 36] = [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "div",
        "span",
        "button",
        "pre",
        "code",
        "ol",
        "ul",
        "li",
        "input",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "em",
        "strong",
        "del",
        "sup",
        "sub",
        "a",
        "img",
        "br",
        "hr",
        "dl",
        "dt",
        "dd",
        "figure",
    ];
    const ATTRIBUTES: [&str; 12] = [
        "class",
        "type",
        "aria-label",
        "start",
        "disabled",
        "checked",
        "href",
        "rel",
        "target",
        "src",
        "alt",
        "loading",
    ];

    /// Every tag is on the list with listed attributes only, links go to
    /// http(s)/mailto, images to this server; nothing can run.
    fn assert_inert(html: &str) {
        let mut rest = html;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').map(|end| open + end).unwrap_or_else(|| panic!("unclosed tag: {html}"));
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let name = tag.split_whitespace().next().unwrap_or_default();
            assert!(TAGS.contains(&name), "tag <{name}> in {html}");
            let mut attributes = &tag[name.len()..];
            while !attributes.trim().is_empty() {
                attributes = attributes.trim_start();
                let end = attributes.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(attributes.len());
                let attribute = &attributes[..end];
                assert!(ATTRIBUTES.contains(&attribute), "attribute {attribute} in <{tag}> of {html}");
                attributes = &attributes[end..];
                if let Some(quoted) = attributes.strip_prefix("=\"") {
                    let end = quoted.find('"').unwrap_or_else(|| panic!("unquoted value in <{tag}>"));
                    let value = &quoted[..end];
                    assert!(!value.contains(['<', '>', '\'']), "raw character in {attribute}={value:?}");
                    let lower = value.to_ascii_lowercase();
                    if attribute == "href" {
                        assert!(
                            ["http://", "https://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme)),
                            "href {value:?} in {html}"
                        );
                    }
                    if attribute == "src" {
                        assert!(value.starts_with('/') && !value.starts_with("//"), "src {value:?} in {html}");
                    }
                    attributes = &quoted[end + 1..];
                }
            }
            if name == "a" && !tag.starts_with('/') && tag.contains("href") {
                assert!(tag.contains("rel=\"noopener noreferrer\"") && tag.contains("target=\"_blank\""), "{tag}");
            }
        }
    }

    /// Scripts, handlers, dangerous addresses and entity tricks: none comes out active.
    #[test]
    fn the_xss_corpus_never_renders_active_content() {
        let corpus = [
            "<script>window.__xss = 1</script>",
            "text <script>window.__xss = 1</script> inline",
            "<img src=x onerror=\"window.__xss = 1\">",
            "<svg onload=window.__xss=1>",
            "<iframe src=\"javascript:window.__xss=1\"></iframe>",
            "[click](javascript:window.__xss=1)",
            "[click](JaVaScRiPt:window.__xss=1)",
            "[click](javascript&#58;window.__xss=1)",
            "[click](&#106;avascript:window.__xss=1)",
            "[click]( javascript:alert(1))",
            "[click](vbscript:msgbox)",
            "[click](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==)",
            "<javascript:alert(1)>",
            "[ref]\n\n[ref]: javascript:alert(1)",
            "![x](javascript:alert(1))",
            "![x\" onerror=\"window.__xss=1](/a.png)",
            "![x](/a.png\" onerror=\"window.__xss=1)",
            "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
            "![x](//evil.example/p.gif)",
            "[a](https://x.example/\" onmouseover=\"window.__xss=1)",
            "[a](<https://x.example/\"onmouseover=x>)",
            "```html\n<script>window.__xss = 1</script>\n```",
            "```\"><script>window.__xss=1</script>\nx\n```",
            "`<img src=x onerror=alert(1)>`",
            "&lt;script&gt;window.__xss = 1&lt;/script&gt;",
            "&#60;script&#62;window.__xss = 1&#60;/script&#62;",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<style>body{display:none}</style>",
            "<details open ontoggle=window.__xss=1>",
            "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
            "- [ ] <input onfocus=alert(1) autofocus>",
            "> <object data=\"javascript:alert(1)\">",
            "<!-- comment --><b onmouseover=alert(1)>x</b>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        ];
        for markdown in corpus {
            let html = to_html(markdown);
            assert_inert(&html);
            let lower = html.to_ascii_lowercase();
            for needle in ["<script", "<svg", "<iframe", "<style", "<object", "<math", "<details", "<input onfocus"] {
                assert!(!lower.contains(needle), "{needle} in {html} (from {markdown:?})");
            }
        }
    }

    #[test]
    fn languages_are_plain_words_or_nothing() {
        assert_eq!(language("rust"), Some("rust"));
        assert_eq!(language("c++ title=x"), Some("c++"));
        assert_eq!(language("rust,ignore"), Some("rust"));
        for bad in ["", "   ", "a\"b", "x<y", "j`s", "ok'no"] {
            assert_eq!(language(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_web_and_mail_links_and_own_images_are_active() {
        assert!(link_target(LinkType::Inline, "https://example.com").is_some());
        assert!(link_target(LinkType::Inline, " HTTP://example.com").is_some());
        assert_eq!(link_target(LinkType::Email, "a@b.c").as_deref(), Some("mailto:a@b.c"));
        for bad in ["javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,x", "vbscript:x", "/relative", "ftp://x"] {
            assert_eq!(link_target(LinkType::Inline, bad), None, "{bad}");
        }
        assert!(own_image("/media/generated/a.png"));
        for bad in ["//evil.example/p.gif", "/\\evil.example", "https://x/p.gif", "data:image/png;base64,x", "a.png"] {
            assert!(!own_image(bad), "{bad}");
        }
    }
}
