//! Cutting a long Markdown reply into parts Telegram accepts (at most 4096
//! characters of visible text each). Cuts fall between paragraphs and code
//! blocks; a block longer than a part is cut at lines, then words, then
//! characters; a code block cut in two is closed and reopened with its
//! language. Lengths are counted in UTF-16 units of the Markdown source;
//! a part whose rendering shows more than that (a table's padding, a rule)
//! is cut again, smaller, until what Telegram displays fits.
//!
//! Invariant: every part's rendered HTML ([`markdown_to_html`]) shows at
//! most `limit` UTF-16 units.

use super::render::{markdown_to_html, visible_units};

/// `Some(language)` when the line opens a fenced code block (split's own
/// block finder; the renderer parses with pulldown-cmark).
fn fence_language(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("```")?;
    let language = rest.trim();
    if language.chars().all(|c| c.is_alphanumeric() || matches!(c, '+' | '-' | '_' | '#' | '.')) {
        Some(language)
    } else {
        Some("")
    }
}

/// Telegram's limit for one message's text.
pub const MESSAGE_LIMIT: usize = 4096;

fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Paragraph(String),
    /// Opening fence line's language and the code lines.
    Code {
        language: String,
        lines: Vec<String>,
    },
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut lines = markdown.lines();
    let flush = |paragraph: &mut Vec<&str>, found: &mut Vec<Block>| {
        if !paragraph.is_empty() {
            found.push(Block::Paragraph(paragraph.join("\n")));
            paragraph.clear();
        }
    };
    while let Some(line) = lines.next() {
        if let Some(language) = fence_language(line) {
            flush(&mut paragraph, &mut found);
            let mut code = Vec::new();
            for inner in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                code.push(inner.to_owned());
            }
            found.push(Block::Code { language: language.to_owned(), lines: code });
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut found);
        } else {
            paragraph.push(line);
        }
    }
    flush(&mut paragraph, &mut found);
    found
}

fn fenced(language: &str, lines: &[String]) -> String {
    format!("```{language}\n{}\n```", lines.join("\n"))
}

/// Cut `text` into pieces of at most `limit` units: at newlines, then
/// spaces, then anywhere (between characters).
fn cut_text(text: &str, limit: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while units(rest) > limit {
        let mut end = 0;
        let mut used = 0;
        for (index, character) in rest.char_indices() {
            if used + character.len_utf16() > limit {
                break;
            }
            used += character.len_utf16();
            end = index + character.len_utf8();
        }
        let window = &rest[..end];
        let at_boundary = rest[end..].starts_with(['\n', ' ']);
        let cut = if at_boundary {
            end
        } else {
            window.rfind('\n').or_else(|| window.rfind(' ')).filter(|&at| at > 0).unwrap_or(end)
        };
        pieces.push(rest[..cut].to_owned());
        rest = rest[cut..].strip_prefix(['\n', ' ']).unwrap_or(&rest[cut..]);
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

fn block_pieces(block: Block, limit: usize) -> Vec<String> {
    match block {
        Block::Paragraph(text) => cut_text(&text, limit),
        Block::Code { language, lines } => {
            let whole = fenced(&language, &lines);
            if units(&whole) <= limit {
                return vec![whole];
            }
            // Room for "```lang\n" + "\n```" around each piece.
            let budget = limit.saturating_sub(units(&language) + 8).max(1);
            let mut pieces = Vec::new();
            let mut current: Vec<String> = Vec::new();
            let mut current_units = 0;
            for line in lines
                .iter()
                .flat_map(|line| if units(line) > budget { cut_text(line, budget) } else { vec![line.clone()] })
            {
                let added = units(&line) + usize::from(!current.is_empty());
                if !current.is_empty() && current_units + added > budget {
                    pieces.push(fenced(&language, &current));
                    current.clear();
                    current_units = 0;
                }
                current_units += units(&line) + usize::from(!current.is_empty());
                current.push(line);
            }
            if !current.is_empty() || pieces.is_empty() {
                pieces.push(fenced(&language, &current));
            }
            pieces
        }
    }
}

/// Split a Markdown reply into parts of at most `limit` UTF-16 units, each
/// also showing at most `limit` units once rendered.
pub fn split_markdown(markdown: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    for part in split_source(markdown, limit) {
        fit_rendered(part, limit, &mut parts);
    }
    parts
}

/// Keep `part` if its rendering fits `limit`; else cut it again with a
/// limit smaller than its own length (in proportion to the overshoot), so
/// the pieces shrink every round and the recursion ends.
fn fit_rendered(part: String, limit: usize, parts: &mut Vec<String>) {
    let source = units(&part);
    let shown = visible_units(&markdown_to_html(&part));
    if shown <= limit || source <= 1 {
        parts.push(part);
        return;
    }
    let smaller = (source * limit / shown).min(source - 1).max(1);
    let pieces = split_source(&part, smaller);
    if pieces.len() == 1 && pieces[0] == part {
        parts.push(part);
        return;
    }
    for piece in pieces {
        fit_rendered(piece, limit, parts);
    }
}

/// The split by source length alone.
fn split_source(markdown: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for block in blocks(markdown) {
        for piece in block_pieces(block, limit) {
            if current.is_empty() {
                current = piece;
            } else if units(&current) + 2 + units(&piece) <= limit {
                current.push_str("\n\n");
                current.push_str(&piece);
            } else {
                parts.push(std::mem::replace(&mut current, piece));
            }
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The text without fence lines and whitespace: what must survive a split.
    fn substance(text: &str) -> String {
        text.lines()
            .filter(|line| !line.trim_start().starts_with("```"))
            .flat_map(|line| line.chars())
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    #[test]
    fn short_replies_stay_whole() {
        assert_eq!(split_markdown("hello\n\nworld", 4096), ["hello\n\nworld"]);
        assert_eq!(split_markdown("", 4096), Vec::<String>::new());
    }

    #[test]
    fn cuts_fall_between_paragraphs() {
        let text = format!("{}\n\n{}\n\n{}", "a".repeat(30), "b".repeat(30), "c".repeat(30));
        assert_eq!(split_markdown(&text, 70), [format!("{}\n\n{}", "a".repeat(30), "b".repeat(30)), "c".repeat(30)]);
    }

    #[test]
    fn a_long_paragraph_is_cut_at_spaces() {
        let parts = split_markdown("one two three four five six", 10);
        assert_eq!(parts, ["one two", "three four", "five six"]);
    }

    #[test]
    fn a_word_longer_than_a_part_is_cut_anywhere() {
        assert_eq!(split_markdown("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn a_cut_code_block_is_closed_and_reopened_with_its_language() {
        let code: Vec<String> = (0..6).map(|i| format!("line {i}")).collect();
        let text = format!("intro\n\n```rust\n{}\n```", code.join("\n"));
        let parts = split_markdown(&text, 40);
        assert!(parts.len() >= 3, "{parts:?}");
        for part in &parts[1..] {
            assert!(part.starts_with("```rust\n") && part.ends_with("\n```"), "part not fenced: {part:?}");
        }
        assert_eq!(substance(&parts.join("\n")), substance(&text));
    }

    #[test]
    fn counting_uses_utf16_units() {
        let emoji = "😀".repeat(3); // 6 UTF-16 units
        assert_eq!(split_markdown(&emoji, 4), ["😀😀", "😀"]);
    }

    proptest! {
        #[test]
        fn no_part_is_too_long_and_no_text_is_lost(
            chunks in prop::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9 é😀<&*_]{0,300}",
                    "[a-z ]{0,40}\n[a-z ]{0,40}",
                    Just(String::new()),
                    "[a-z<> ]{0,200}".prop_map(|code| format!("```py\n{code}\n{code}\n```")),
                    // Tables and rules show more than their source (padding, the rule's line).
                    prop::collection::vec("[a-z]{0,12}", 2..8).prop_map(|cells| {
                        let rows: Vec<String> = cells.chunks(2).map(|row| format!("|{}|", row.join("|"))).collect();
                        format!("|h|i|\n|-|-|\n{}", rows.join("\n"))
                    }),
                    Just("---".to_owned()),
                ],
                0..40,
            ),
            limit in 30usize..400,
        ) {
            let text = chunks.join("\n\n");
            let parts = split_markdown(&text, limit);
            for part in &parts {
                prop_assert!(units(part) <= limit, "part of {} units > {limit}: {part:?}", units(part));
                let shown = visible_units(&markdown_to_html(part));
                prop_assert!(shown <= limit, "part showing {shown} units > {limit}: {part:?}");
            }
            prop_assert_eq!(substance(&parts.join("\n")), substance(&text));
        }
    }
}
