//! How an answer's text appears in `valor chat`: its Markdown as plain text
//! (`markdown::to_plain`), block by block.
//!
//! A text run (the answer's text between tool calls) is split at its block
//! boundaries: a blank line outside a code fence ends every block before it.
//! On a terminal ([`Screen::Live`]) the open block streams as it arrives, as
//! written; once it is complete it is erased (cursor up over the rows it
//! took, clear to the end of the screen) and printed rendered. Through a
//! pipe ([`Screen::Pipe`]) only complete blocks are printed, rendered. A
//! rendered block is what `to_plain` makes of the run up to it, minus what
//! was already shown, so numbering and spacing carry across blocks.
//!
//! Invariants: everything printed but the cursor movements goes through
//! `escape_for_terminal`; a block taller than the screen is left as it
//! streamed (the rows to erase have scrolled away), never half-erased.

use unicode_width::UnicodeWidthChar as _;

use super::escape::escape_for_terminal;

/// Where the answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Screen {
    /// A terminal of this many columns and rows.
    Live { columns: usize, rows: usize },
    /// A pipe or a file.
    Pipe,
}

impl Screen {
    /// Standard output's screen: its size when it is a terminal (80 × 24
    /// when the terminal does not say, as a fresh pseudo-terminal may not).
    pub(super) fn of_stdout() -> Screen {
        use std::io::IsTerminal as _;
        match terminal_size::terminal_size() {
            Some((terminal_size::Width(columns), terminal_size::Height(rows))) if columns > 0 && rows > 0 => {
                Screen::Live { columns: usize::from(columns), rows: usize::from(rows) }
            }
            _ if std::io::stdout().is_terminal() => Screen::Live { columns: 80, rows: 24 },
            _ => Screen::Pipe,
        }
    }
}

/// One text run being shown.
#[derive(Debug)]
pub(super) struct TextRun {
    screen: Screen,
    /// The run's Markdown so far.
    source: String,
    /// Bytes of `source` whose blocks are complete and shown rendered.
    settled: usize,
    /// The rendering of `source[..settled]` as far as it was shown.
    shown: String,
    /// The cursor's column (Live): where the live text starts, and now.
    live_from: usize,
    column: usize,
    /// What was printed of the open block (escaped), to erase it.
    live: String,
}

impl TextRun {
    /// A run printed from the cursor's current `column`.
    pub(super) fn new(screen: Screen, column: usize) -> TextRun {
        TextRun {
            screen,
            source: String::new(),
            settled: 0,
            shown: String::new(),
            live_from: column,
            column,
            live: String::new(),
        }
    }

    pub(super) fn screen(&self) -> Screen {
        self.screen
    }

    /// More of the answer's text; what to print now.
    pub(super) fn push(&mut self, delta: &str) -> String {
        self.source.push_str(delta);
        // `settled` is a block boundary, outside any fence: only the open blocks are scanned.
        let complete = complete_blocks(&self.source[self.settled..]);
        if complete > 0 {
            return self.settle(self.settled + complete);
        }
        self.print_live(delta)
    }

    /// The run ended: what to print to show all of it rendered.
    pub(super) fn finish(&mut self) -> String {
        self.settle(self.source.len())
    }

    /// Show `source[..boundary]` rendered (erasing its live text), then
    /// stream what follows it live again.
    fn settle(&mut self, boundary: usize) -> String {
        let mut out = String::new();
        let erased = self.erase(&mut out);
        let rendered = crate::markdown::to_plain(&self.source[..boundary]);
        let added = match rendered.strip_prefix(self.shown.as_str()) {
            Some(rest) => rest.to_owned(),
            // A later block changed an earlier one (a link definition, say): shown is kept, the new block follows.
            None => {
                let block = crate::markdown::to_plain(&self.source[self.settled..boundary]);
                if self.shown.is_empty() || block.is_empty() { block } else { format!("\n\n{block}") }
            }
        };
        self.shown.push_str(&added);
        self.settled = boundary;
        if erased {
            let added = escape_for_terminal(&added);
            self.column = advance(self.screen, self.column, &added).1;
            out.push_str(&added);
        }
        // The block left on screen as it streamed: it stays, what follows starts after it.
        self.live_from = self.column;
        self.live.clear();
        let rest = self.source[boundary..].to_owned();
        out.push_str(&self.print_live(&rest));
        out
    }

    /// Remove the live text from the screen (into `out`); false when it
    /// cannot be (taller than the screen) and stays.
    fn erase(&mut self, out: &mut String) -> bool {
        let Screen::Live { rows, .. } = self.screen else { return true };
        if self.live.is_empty() {
            return true;
        }
        let (down, _) = advance(self.screen, self.live_from, &self.live);
        if down + 1 >= rows {
            return false;
        }
        out.push('\r');
        if down > 0 {
            out.push_str(&format!("\x1b[{down}A"));
        }
        if self.live_from > 0 {
            out.push_str(&format!("\x1b[{}C", self.live_from));
        }
        out.push_str("\x1b[J");
        self.column = self.live_from;
        self.live.clear();
        true
    }

    /// Stream `raw` (more of the open block) as written, on a terminal only;
    /// the open block's first text is set apart from what was shown before it.
    fn print_live(&mut self, raw: &str) -> String {
        if raw.is_empty() || self.screen == Screen::Pipe {
            return String::new();
        }
        let lead = if self.live.is_empty() && !self.shown.is_empty() { "\n\n" } else { "" };
        let text = format!("{lead}{}", escape_for_terminal(raw));
        self.column = advance(self.screen, self.column, &text).1;
        self.live.push_str(&text);
        text
    }
}

/// Where printing `text` from `column` leaves the cursor: rows down, column.
/// A line that reaches the last column wraps with its next character.
fn advance(screen: Screen, mut column: usize, text: &str) -> (usize, usize) {
    let Screen::Live { columns, .. } = screen else { return (0, 0) };
    let mut down = 0;
    for character in text.chars() {
        let width = match character {
            '\n' => {
                down += 1;
                column = 0;
                continue;
            }
            // A tab moves to the next stop, never past the last column.
            '\t' => (8 - column % 8).min(columns.saturating_sub(column)),
            other => other.width().unwrap_or(0),
        };
        if column + width > columns {
            down += 1;
            column = 0;
        }
        column += width;
    }
    (down, column)
}

/// How much of `open` (text that starts a block, outside any code fence)
/// is complete blocks: the bytes up to just after its last blank line
/// outside a code fence, 0 when none.
fn complete_blocks(open: &str) -> usize {
    let mut fence: Option<(char, usize)> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in open.split_inclusive('\n') {
        offset += line.len();
        if !line.ends_with('\n') {
            break; // an unfinished line ends nothing
        }
        let text = line.trim_end();
        let unindented = text.trim_start_matches(' ');
        let marker = unindented.chars().next().filter(|c| matches!(c, '`' | '~'));
        let run = marker.map_or(0, |marker| unindented.chars().take_while(|&c| c == marker).count());
        match (fence, marker) {
            (None, Some(marker)) if run >= 3 && text.len() - unindented.len() <= 3 => fence = Some((marker, run)),
            (Some((open, length)), Some(marker))
                if marker == open && run >= length && unindented[run..].trim().is_empty() =>
            {
                fence = None;
            }
            (None, _) if text.is_empty() => end = offset,
            _ => {}
        }
    }
    end
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WIDE: Screen = Screen::Live { columns: 80, rows: 24 };

    /// What a terminal shows after `printed`: lines of text, with `\r`,
    /// cursor up / forward and clear-to-end applied (no wrapping: lines are
    /// kept shorter than the test's screen).
    fn screen_after(printed: &str) -> String {
        let mut lines: Vec<Vec<char>> = vec![Vec::new()];
        let (mut row, mut column) = (0usize, 0usize);
        let mut chars = printed.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => column = 0,
                '\n' => {
                    row += 1;
                    column = 0;
                    if lines.len() <= row {
                        lines.push(Vec::new());
                    }
                }
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['));
                    let mut number = String::new();
                    let command = loop {
                        let next = chars.next().unwrap();
                        if next.is_ascii_digit() {
                            number.push(next);
                        } else {
                            break next;
                        }
                    };
                    let n: usize = number.parse().unwrap_or(1);
                    match command {
                        'A' => row -= n,
                        'C' => column += n,
                        'J' => {
                            lines[row].truncate(column);
                            lines.truncate(row + 1);
                        }
                        other => panic!("unexpected command {other}"),
                    }
                }
                c => {
                    let line = &mut lines[row];
                    while line.len() < column {
                        line.push(' ');
                    }
                    if column < line.len() {
                        line[column] = c;
                    } else {
                        line.push(c);
                    }
                    column += 1;
                }
            }
        }
        lines.iter().map(|line| line.iter().collect::<String>()).collect::<Vec<_>>().join("\n")
    }

    fn stream(screen: Screen, prefix: &str, markdown: &str, piece: usize) -> String {
        let mut run = TextRun::new(screen, prefix.chars().count());
        let mut printed = prefix.to_owned();
        let chars: Vec<char> = markdown.chars().collect();
        for delta in chars.chunks(piece) {
            printed.push_str(&run.push(&delta.iter().collect::<String>()));
        }
        printed.push_str(&run.finish());
        printed
    }

    const ANSWER: &str = "# Plan\n\nWe ship **Friday**, see [notes](https://x.dev/n).\n\n\
        | step | who |\n|---|---|\n| build | Ann |\n| test | Bo |\n\n\
        ```sh\nmake\n\nmake test\n```\n\n1. one\n2. *two*";

    #[test]
    fn a_streamed_answer_ends_on_screen_exactly_as_its_rendering_at_any_piece_size() {
        let rendered = crate::markdown::to_plain(ANSWER);
        assert!(rendered.contains("step  | who") && !rendered.contains("**"), "{rendered}");
        for piece in [1, 3, 7, 40, 1000] {
            let printed = stream(WIDE, "valor> ", ANSWER, piece);
            assert_eq!(screen_after(&printed), format!("valor> {rendered}"), "pieces of {piece}:\n{printed:?}");
            // Through a pipe: no cursor movement, the rendering once.
            assert_eq!(stream(Screen::Pipe, "", ANSWER, piece), rendered, "pieces of {piece}");
        }
    }

    #[test]
    fn the_open_block_streams_as_written_and_a_pipe_waits_for_it() {
        let mut live = TextRun::new(WIDE, 0);
        assert_eq!(live.push("We ship **Fri"), "We ship **Fri");
        let mut pipe = TextRun::new(Screen::Pipe, 0);
        assert_eq!(pipe.push("We ship **Fri"), "");
        assert_eq!(pipe.push("day**.\n\nNext"), "We ship Friday.");
        assert_eq!(pipe.finish(), "\n\nNext");
    }

    #[test]
    fn a_blank_line_inside_a_code_fence_ends_no_block() {
        let code = "```\na\n\nb\n```\n\nafter\n";
        assert_eq!(complete_blocks(code), code.find("after").unwrap());
        assert_eq!(complete_blocks("```\na\n\nb\n"), 0);
        assert_eq!(complete_blocks("~~~~\n```\n\n~~~~\n\nx"), 16);
        // From a boundary on (what `TextRun` scans): offsets within the open part.
        assert_eq!(complete_blocks(&"one\n\ntwo\n\n"[5..]), 5);
        assert_eq!(complete_blocks("one\n\n"), 5);
        assert_eq!(complete_blocks(&"one\n\n"[5..]), 0);
    }

    #[test]
    fn a_block_taller_than_the_screen_stays_as_it_streamed() {
        let small = Screen::Live { columns: 10, rows: 3 };
        let mut run = TextRun::new(small, 0);
        let mut printed = run.push("**a** b c d e f g h i j k l m n o p q r s t");
        printed.push_str(&run.push("\n\nnext"));
        assert!(!printed.contains('\x1b'), "nothing erased: {printed:?}");
        assert!(printed.ends_with("\n\nnext"), "{printed:?}");
    }

    #[test]
    fn control_characters_from_the_model_are_escaped_live_and_rendered() {
        let printed = stream(WIDE, "", "look \x1b]0;pwned\x07 here\n\nnext", 4);
        assert!(!printed.contains("\x1b]0"), "{printed:?}");
        assert!(screen_after(&printed).contains(r"look \x1b]0;pwned\x07 here"), "{printed:?}");
    }

    #[test]
    fn wide_characters_and_wrapping_move_the_cursor_as_a_terminal_does() {
        let narrow = Screen::Live { columns: 4, rows: 10 };
        assert_eq!(advance(narrow, 0, "abcd"), (0, 4));
        assert_eq!(advance(narrow, 0, "abcde"), (1, 1));
        assert_eq!(advance(narrow, 0, "abcd\nx"), (1, 1));
        assert_eq!(advance(narrow, 0, "日本語"), (1, 2));
        assert_eq!(advance(narrow, 2, "\tx"), (1, 1));
    }
}
