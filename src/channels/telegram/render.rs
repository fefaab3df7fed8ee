//! Telegram's view of the one Markdown writer (`markdown::to_telegram_html`,
//! which says what becomes what and its invariants): the HTML of a message
//! part, and its length as Telegram counts it. The tests here check the
//! output against what Telegram accepts.

pub use crate::markdown::escape_telegram as escape;

/// Render a Markdown text (one message part) to Telegram HTML.
pub fn markdown_to_html(markdown: &str) -> String {
    crate::markdown::to_telegram_html(markdown)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every `tests/fixtures/telegram_render/NAME.md` renders to the
    /// hand-checked `NAME.html` beside it (its one trailing newline aside).
    #[test]
    fn the_markdown_corpus_renders_to_its_golden_html() {
        crate::markdown::golden::check_corpus("telegram_render", "html", |markdown| {
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
