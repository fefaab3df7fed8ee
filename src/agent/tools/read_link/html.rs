//! A small readable-text extractor for HTML: keeps the title, headings,
//! paragraphs, list items and other visible text; drops scripts, styles,
//! navigation, headers/footers, forms and comments; decodes common
//! entities. Not a full HTML parser — good enough for "what does this page
//! say", and it never panics on malformed input.

/// The page title and its readable text (blocks separated by blank lines).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extract {
    pub title: Option<String>,
    pub text: String,
}

/// Elements whose whole content is dropped.
const SKIPPED: &[&str] =
    &["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "template", "iframe", "button"];
/// Elements whose content is raw text (may contain `<` that is not a tag).
const RAW_TEXT: &[&str] = &["script", "style"];
/// Elements that start a new block of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "table",
    "dt",
    "dd",
    "hr",
];

pub fn extract(html: &str) -> Extract {
    let mut blocks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut title: Option<String> = None;
    let mut in_title = false;
    let mut skip_depth: Vec<String> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if rest.starts_with('<') {
            let Some(end) = rest.find('>') else { break };
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            let self_closing = tag.ends_with('/');
            if !closing && !self_closing && RAW_TEXT.contains(&name.as_str()) {
                rest = skip_raw_text(rest, &name);
                continue;
            }
            if let Some(open) = skip_depth.last() {
                if closing && *open == name {
                    skip_depth.pop();
                } else if !closing && !self_closing && SKIPPED.contains(&name.as_str()) {
                    skip_depth.push(name);
                }
                continue;
            }
            if !closing && !self_closing && RAW_TEXT.contains(&name.as_str()) {
                // Raw text: no tags inside, so jump straight past `</name`.
                rest = skip_raw_text(rest, &name);
                continue;
            }
            if !closing && !self_closing && SKIPPED.contains(&name.as_str()) {
                skip_depth.push(name);
                continue;
            }
            if name == "title" {
                in_title = !closing;
                continue;
            }
            if BLOCKS.contains(&name.as_str()) {
                flush(&mut current, &mut blocks);
            }
            continue;
        }
        let end = rest.find('<').unwrap_or(rest.len());
        let chunk = decode_entities(&rest[..end]);
        rest = &rest[end..];
        if !skip_depth.is_empty() {
            continue;
        }
        if in_title {
            let text = collapse(&chunk);
            if !text.is_empty() && title.is_none() {
                title = Some(text);
            }
            continue;
        }
        current.push_str(&chunk);
    }
    flush(&mut current, &mut blocks);
    Extract { title, text: blocks.join("\n\n") }
}

/// `rest` after the closing tag of raw-text element `name` (or empty).
fn skip_raw_text<'a>(rest: &'a str, name: &str) -> &'a str {
    let needle = format!("</{name}");
    let lower = rest.to_ascii_lowercase();
    match lower.find(&needle) {
        Some(start) => {
            let after = &rest[start..];
            after.find('>').map_or("", |end| &after[end + 1..])
        }
        None => "",
    }
}

fn flush(current: &mut String, blocks: &mut Vec<String>) {
    let text = collapse(current);
    if !text.is_empty() {
        blocks.push(text);
    }
    current.clear();
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(';').filter(|end| *end <= 10);
        let decoded = end.and_then(|end| decode_one(&rest[1..end]));
        match (end, decoded) {
            (Some(end), Some(c)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" | "#39" => Some('\''),
        "nbsp" => Some(' '),
        "mdash" => Some('—'),
        "ndash" => Some('–'),
        "hellip" => Some('…'),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix('x').or_else(|| number.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_headings_and_paragraphs_are_kept_and_scripts_styles_and_nav_dropped() {
        let html = r#"<!doctype html><html><head><title>Release  notes</title>
            <style>body { color: red }</style><script>var secret = "x<y";</script></head>
            <body><nav><a href="/">Home</a> <a href="/blog">Blog</a></nav>
            <h1>Version 2</h1><!-- hidden comment --><p>Faster &amp; <b>smaller</b>.</p>
            <ul><li>One</li><li>Two &#8211; three</li></ul><footer>© 2026</footer></body></html>"#;
        let extract = extract(html);
        assert_eq!(extract.title.as_deref(), Some("Release notes"));
        assert_eq!(extract.text, "Version 2\n\nFaster & smaller.\n\nOne\n\nTwo – three");
    }

    #[test]
    fn malformed_html_never_panics() {
        for html in ["<", "<p", "&", "&#xZZ;", "<script>never closed", "<!-- open", "a < b > c", "<title>"] {
            let _ = extract(html);
        }
        assert_eq!(extract("plain & simple").text, "plain & simple");
    }
}
