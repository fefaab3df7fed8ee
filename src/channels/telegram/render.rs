//! Model Markdown → Telegram HTML (parse_mode "HTML"). Only the tags Telegram
//! accepts are produced (`b`, `i`, `s`, `code`, `pre`, `a href`); every piece
//! of text is escaped (`&`, `<`, `>`, and `"` inside attributes), so no input
//! can produce HTML Telegram rejects. Markers without a partner stay literal;
//! `snake_case_words` are not italic.

/// Escape text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            other => out.push(other),
        }
    }
    out
}

/// Render a Markdown text (one message part) to Telegram HTML.
pub fn markdown_to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 32);
    let mut lines = markdown.lines().peekable();
    let mut first = true;
    while let Some(line) = lines.next() {
        if !first {
            out.push('\n');
        }
        first = false;
        if let Some(language) = fence_language(line) {
            let mut code = Vec::new();
            for inner in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                code.push(inner);
            }
            let body = escape(&code.join("\n"));
            match language {
                "" => out.push_str(&format!("<pre>{body}</pre>")),
                language => {
                    out.push_str(&format!("<pre><code class=\"language-{}\">{body}</code></pre>", escape(language)))
                }
            }
            continue;
        }
        out.push_str(&render_line(line));
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

fn render_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let hashes = trimmed.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        return format!("<b>{}</b>", render_inline(trimmed[hashes..].trim()));
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(item) = trimmed.strip_prefix(bullet) {
            let indent = &line[..line.len() - trimmed.len()];
            return format!("{indent}• {}", render_inline(item));
        }
    }
    render_inline(line)
}

/// Inline Markdown: code spans, bold, italic, strikethrough, links.
pub fn render_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        if let Some((html, used)) = inline_token(text, index, rest) {
            out.push_str(&html);
            index += used;
            continue;
        }
        let character = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape(&character.to_string()));
        index += character.len_utf8();
    }
    out
}

/// A markup token at `rest` (which starts at byte `index` of `text`): its HTML and byte length.
fn inline_token(text: &str, index: usize, rest: &str) -> Option<(String, usize)> {
    if let Some(inner) = rest.strip_prefix('`') {
        let end = inner.find('`').filter(|&end| end > 0)?;
        return Some((format!("<code>{}</code>", escape(&inner[..end])), end + 2));
    }
    for (marker, tag) in [("**", "b"), ("__", "b"), ("~~", "s")] {
        if let Some(found) = paired(text, index, rest, marker) {
            return Some((format!("<{tag}>{}</{tag}>", render_inline(found)), found.len() + 2 * marker.len()));
        }
    }
    for marker in ["*", "_"] {
        if let Some(found) = paired(text, index, rest, marker) {
            return Some((format!("<i>{}</i>", render_inline(found)), found.len() + 2));
        }
    }
    if rest.starts_with('[') {
        return link(rest);
    }
    None
}

/// `marker inner marker` at the start of `rest`, with word-boundary rules.
fn paired<'a>(text: &str, index: usize, rest: &'a str, marker: &str) -> Option<&'a str> {
    let body = rest.strip_prefix(marker)?;
    if body.starts_with(char::is_whitespace) || body.starts_with(marker) {
        return None;
    }
    let before = text[..index].chars().next_back();
    if marker.starts_with('_') && before.is_some_and(char::is_alphanumeric) {
        return None;
    }
    let mut search = 0;
    while let Some(found) = body[search..].find(marker) {
        let end = search + found;
        let after = body[end + marker.len()..].chars().next();
        let opens_word = end > 0 && !body[..end].ends_with(char::is_whitespace);
        let inside_word = marker.starts_with('_') && after.is_some_and(char::is_alphanumeric);
        let doubled = marker.len() == 1 && body[end + 1..].starts_with(marker);
        let closes = opens_word && !inside_word && !doubled;
        if closes {
            return Some(&body[..end]);
        }
        search = end + marker.len();
    }
    None
}

fn link(rest: &str) -> Option<(String, usize)> {
    let close = rest.find("](")?;
    let label = &rest[1..close];
    let url_start = close + 2;
    let url_end = url_start + rest[url_start..].find(')')?;
    let url = &rest[url_start..url_end];
    let safe = ["http://", "https://", "tg://", "mailto:"].iter().any(|scheme| url.starts_with(scheme));
    if label.is_empty() || label.contains('[') || !safe || url.contains(char::is_whitespace) {
        return None;
    }
    Some((format!("<a href=\"{}\">{}</a>", escape(url), render_inline(label)), url_end + 1))
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
}
