//! Model Markdown → Telegram HTML (parse_mode "HTML"). Only the tags Telegram
//! accepts are produced (`b`, `i`, `s`, `code`, `pre`, `a href`); every piece
//! of text is escaped (`&`, `<`, `>`, and `"` inside attributes), so no input
//! can produce HTML Telegram rejects. Markers without a partner stay literal;
//! `snake_case_words` are not italic.
//!
//! Linear time: each line gets lookup tables built in one backward pass (for
//! every position, the closing marker a left-to-right search from there
//! would accept, the next backtick, `](`, `)` and `[`), so finding a partner
//! is a table read instead of a scan of the rest of the line; plain text is
//! escaped in runs, straight into the output.

/// Escape text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => continue,
        };
        out.push_str(&text[plain..index]);
        out.push_str(entity);
        plain = index + 1;
    }
    out.push_str(&text[plain..]);
}

/// Render a Markdown text (one message part) to Telegram HTML.
pub fn markdown_to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 8 + 32);
    let mut lines = markdown.lines().peekable();
    let mut first = true;
    while let Some(line) = lines.next() {
        if !first {
            out.push('\n');
        }
        first = false;
        if let Some(language) = fence_language(line) {
            match language {
                "" => out.push_str("<pre>"),
                language => {
                    out.push_str("<pre><code class=\"language-");
                    escape_into(&mut out, language);
                    out.push_str("\">");
                }
            }
            let mut first_code = true;
            for inner in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                if !first_code {
                    out.push('\n');
                }
                first_code = false;
                escape_into(&mut out, inner);
            }
            out.push_str(if language.is_empty() { "</pre>" } else { "</code></pre>" });
            continue;
        }
        render_line(&mut out, line);
    }
    out
}

/// `Some(language)` when the line opens a fenced code block.
pub fn fence_language(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("```")?;
    let language = rest.trim();
    if language.chars().all(|c| c.is_alphanumeric() || matches!(c, '+' | '-' | '_' | '#' | '.')) {
        Some(language)
    } else {
        Some("")
    }
}

fn render_line(out: &mut String, line: &str) {
    let trimmed = line.trim_start();
    let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        out.push_str("<b>");
        render_inline_into(out, trimmed[hashes..].trim());
        out.push_str("</b>");
        return;
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(item) = trimmed.strip_prefix(bullet) {
            out.push_str(&line[..line.len() - trimmed.len()]);
            out.push_str("• ");
            render_inline_into(out, item);
            return;
        }
    }
    render_inline_into(out, line);
}

/// Inline Markdown: code spans, bold, italic, strikethrough, links.
pub fn render_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    render_inline_into(&mut out, text);
    out
}

fn render_inline_into(out: &mut String, text: &str) {
    if !text.bytes().any(|b| matches!(b, b'*' | b'_' | b'~' | b'`' | b'[')) {
        escape_into(out, text);
        return;
    }
    Inline::new(text).render(out, 0, text.len());
}

/// "No such position" in the lookup tables.
const NONE: usize = usize::MAX;

/// The emphasis markers, in the order they are tried at a position, and their tags.
const MARKERS: [(&str, &str); 5] = [("**", "b"), ("__", "b"), ("~~", "s"), ("*", "i"), ("_", "i")];

/// One text with its lookup tables (each of length `len + 1`, or empty when
/// what it looks for does not occur; read with [`lookup`]).
struct Inline<'a> {
    text: &'a str,
    /// Per marker (as in `MARKERS`): from position `s`, the closing marker a
    /// left-to-right search starting at `s` accepts (see `closers`).
    closer: [Vec<usize>; 5],
    /// The next position at or after `s` holding this byte / pair.
    backtick: Vec<usize>,
    link_middle: Vec<usize>,
    paren: Vec<usize>,
    bracket: Vec<usize>,
}

impl<'a> Inline<'a> {
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        Inline {
            text,
            closer: MARKERS.map(|(marker, _)| closers(text, marker)),
            backtick: next_match(bytes, b"`"),
            link_middle: next_match(bytes, b"]("),
            paren: next_match(bytes, b")"),
            bracket: next_match(bytes, b"["),
        }
    }

    /// Render `text[start..end]`; partners are looked for only inside it.
    fn render(&self, out: &mut String, start: usize, end: usize) {
        let bytes = self.text.as_bytes();
        let mut plain = start;
        let mut index = start;
        while index < end {
            if !matches!(bytes[index], b'*' | b'_' | b'~' | b'`' | b'[') {
                index += 1;
                continue;
            }
            escape_into(out, &self.text[plain..index]);
            match self.token(out, index, start, end) {
                Some(next) => index = next,
                None => {
                    // A marker without a partner is literal (all of them are ASCII).
                    escape_into(out, &self.text[index..index + 1]);
                    index += 1;
                }
            }
            plain = index;
        }
        escape_into(out, &self.text[plain..end]);
    }

    /// The markup token at `index` (inside `start..end`), rendered into
    /// `out`; returns where the text continues.
    fn token(&self, out: &mut String, index: usize, start: usize, end: usize) -> Option<usize> {
        let bytes = self.text.as_bytes();
        if bytes[index] == b'`' {
            let close = lookup(&self.backtick, index + 1);
            if close == NONE || close >= end || close == index + 1 {
                return None;
            }
            out.push_str("<code>");
            escape_into(out, &self.text[index + 1..close]);
            out.push_str("</code>");
            return Some(close + 1);
        }
        for (which, (marker, tag)) in MARKERS.iter().enumerate() {
            if let Some(close) = self.paired(which, marker, index, start, end) {
                out.push('<');
                out.push_str(tag);
                out.push('>');
                self.render(out, index + marker.len(), close);
                out.push_str("</");
                out.push_str(tag);
                out.push('>');
                return Some(close + marker.len());
            }
        }
        if bytes[index] == b'[' {
            return self.link(out, index, end);
        }
        None
    }

    /// Where `marker` at `index` closes inside `..end`, with word-boundary rules.
    fn paired(&self, which: usize, marker: &str, index: usize, start: usize, end: usize) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let length = marker.len();
        let body = index + length;
        if body > end || &bytes[index..body] != marker.as_bytes() {
            return None;
        }
        let opens_with = |at: usize| at + length <= end && &bytes[at..at + length] == marker.as_bytes();
        if body < end && (char_at(self.text, body).is_some_and(char::is_whitespace) || opens_with(body)) {
            return None;
        }
        let underscore = marker.starts_with('_');
        if underscore && index > start && char_before(self.text, index).is_some_and(char::is_alphanumeric) {
            return None;
        }
        let close = lookup(&self.closer[which], body);
        if close != NONE && close + length <= end {
            return Some(close);
        }
        // The tables judged a single marker just before `end` by what follows
        // `end` (the enclosing closer, e.g. `*` of `**`); inside this range
        // nothing follows it, so it may close here.
        let last = end.checked_sub(1)?;
        let closes_at_end = length == 1
            && last > body
            && bytes[last] == marker.as_bytes()[0]
            && !char_before(self.text, last).is_some_and(char::is_whitespace);
        closes_at_end.then_some(last)
    }

    fn link(&self, out: &mut String, index: usize, end: usize) -> Option<usize> {
        let close = lookup(&self.link_middle, index);
        if close == NONE || close + 2 > end {
            return None;
        }
        let url_start = close + 2;
        let url_end = lookup(&self.paren, url_start);
        if url_end == NONE || url_end >= end {
            return None;
        }
        let url = &self.text[url_start..url_end];
        let safe = ["http://", "https://", "tg://", "mailto:"].iter().any(|scheme| url.starts_with(scheme));
        let nested = lookup(&self.bracket, index + 1) < close;
        if close == index + 1 || nested || !safe || url.contains(char::is_whitespace) {
            return None;
        }
        out.push_str("<a href=\"");
        escape_into(out, url);
        out.push_str("\">");
        self.render(out, index + 1, close);
        out.push_str("</a>");
        Some(url_end + 1)
    }
}

/// For each position `at`, the first position `>= at` where `pattern`
/// starts (read with [`lookup`]; empty when it does not occur).
fn next_match(bytes: &[u8], pattern: &[u8]) -> Vec<usize> {
    if !bytes.contains(&pattern[0]) {
        return Vec::new();
    }
    let mut next = vec![NONE; bytes.len() + 1];
    for at in (0..bytes.len()).rev() {
        next[at] = if bytes[at..].starts_with(pattern) { at } else { next[at + 1] };
    }
    next
}

/// A table entry; `NONE` past the end or for an empty table.
fn lookup(table: &[usize], at: usize) -> usize {
    table.get(at).copied().unwrap_or(NONE)
}

/// For each start `s`: the closing `marker` a left-to-right search from `s`
/// accepts. The search takes the leftmost occurrence; one that does not
/// close (whitespace before it; for `_`/`__` a letter or digit after it; a
/// single marker doubled) is skipped whole and the search goes on after it.
fn closers(text: &str, marker: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let pattern = marker.as_bytes();
    let length = pattern.len();
    if !bytes.contains(&pattern[0]) {
        return Vec::new();
    }
    let mut closer = vec![NONE; bytes.len() + 1];
    let underscore = pattern[0] == b'_';
    for at in (0..bytes.len()).rev() {
        let found = at + length <= bytes.len() && &bytes[at..at + length] == pattern;
        closer[at] = if !found {
            closer[at + 1]
        } else {
            let after = at + length;
            let opens_word = at > 0 && !char_before(text, at).is_some_and(char::is_whitespace);
            let inside_word = underscore && char_at(text, after).is_some_and(char::is_alphanumeric);
            let doubled = length == 1 && bytes.get(after) == Some(&pattern[0]);
            if opens_word && !inside_word && !doubled { at } else { closer[after] }
        };
    }
    closer
}

fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|rest| rest.chars().next())
}

fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|before| before.chars().next_back())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("[bad](javascript:alert(1))", "[bad](javascript:alert(1))"),
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
                            assert!(["b", "i", "s", "code", "pre", "a"].contains(&name), "<{tag}> in {html:?}");
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
        fn output_is_valid_telegram_html_and_keeps_every_letter(
            // No "```" line (a fence's language is not shown): backticks come as `code` or after a letter.
            text in "([a-zé1 ]{0,4}|[*_~]|`[a-z<]{1,3}`|a`|\\*\\*|__|~~|<|&|\"|\n|# |- ){0,60}"
        ) {
            let html = markdown_to_html(&text);
            proptest::prop_assert_eq!(substance(&visible(&html)), substance(&text), "{:?} → {:?}", text, html);
        }
    }

    #[test]
    fn links_render_with_escaped_addresses_and_nested_labels() {
        let html = markdown_to_html("see [**the** docs](https://x.dev/?a=1&b=2) and [x](ftp://no)");
        assert_eq!(html, "see <a href=\"https://x.dev/?a=1&amp;b=2\"><b>the</b> docs</a> and [x](ftp://no)");
        assert_eq!(visible(&html), "see the docs and [x](ftp://no)");
    }
}
