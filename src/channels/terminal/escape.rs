//! What `valor chat` prints of text it did not write (model answers, tool
//! output, stored titles): every control character is shown as an escape
//! (`\x1b`, `\u{9b}`), never sent to the terminal, so text from the model —
//! or from another person it quotes — cannot move the cursor, clear the
//! screen, set the window title or hide what follows.
//!
//! Invariant: the output contains no C0 control but `\n` and `\t`, no DEL,
//! no C1 control and no bidirectional override; `\r\n` becomes `\n`.

use std::fmt::Write as _;

/// `text` made safe to write to a terminal (newlines and tabs kept).
pub fn escape_for_terminal(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => shown.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            c if c.is_ascii_control() => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
            c => shown.push(c),
        }
    }
    shown
}

/// Unicode's explicit direction controls: they reorder what is displayed
/// after them, so a line can show something other than what it says.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_and_text_is_kept() {
        let cases = [
            ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
            ("two\nlines\tand a tab", "two\nlines\tand a tab"),
            ("\u{1b}[2Jcleared", r"\x1b[2Jcleared"),
            ("title\u{1b}]0;pwned\u{7}", r"title\x1b]0;pwned\x07"),
            ("back\u{8}space and del\u{7f}", r"back\x08space and del\x7f"),
            ("carriage\rreturn", r"carriage\x0dreturn"),
            ("windows\r\nline", "windows\nline"),
            ("nul\u{0}byte", r"nul\x00byte"),
            ("c1 csi \u{9b}2J", r"c1 csi \u{9b}2J"),
            ("bidi \u{202e}txet", r"bidi \u{202e}txet"),
            ("isolate \u{2066}x\u{2069}", r"isolate \u{2066}x\u{2069}"),
            (r"a literal \x1b stays as typed", r"a literal \x1b stays as typed"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_for_terminal(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn nothing_a_terminal_would_interpret_survives() {
        let every_char: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = escape_for_terminal(&every_char);
        let bad = shown.chars().find(|&c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c));
        assert_eq!(bad, None);
    }
}
