//! Turning user text into a safe FTS5 query. Whatever the user typed, the
//! result is only quoted phrase tokens joined by spaces (implicit AND), so
//! FTS5 operators (`NEAR`, `OR`, `*`, `-`, column filters, parentheses) in the
//! input are matched as literal words and can never make the query fail.

/// At most this many terms reach FTS5 (the rest are ignored): a query of
/// millions of terms would take a core and a reader for minutes (the search
/// is also stopped after a time budget or when its caller gives up).
pub const MAX_QUERY_TERMS: usize = 16;
/// At most this many bytes of query text are looked at (callers refuse more).
pub const MAX_QUERY_BYTES: usize = 512;

/// Quote each whitespace-separated token (`"` inside doubled) and join them
/// with spaces, keeping the first [`MAX_QUERY_TERMS`] distinct tokens of the
/// first [`MAX_QUERY_BYTES`] bytes. `None` when nothing searchable is left.
pub(super) fn match_expression(user_text: &str) -> Option<String> {
    let mut end = user_text.len().min(MAX_QUERY_BYTES);
    while !user_text.is_char_boundary(end) {
        end -= 1;
    }
    let mut tokens: Vec<&str> = Vec::new();
    for token in user_text[..end].split_whitespace() {
        if tokens.len() == MAX_QUERY_TERMS {
            break;
        }
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    let quoted: Vec<String> = tokens.iter().map(|token| format!("\"{}\"", token.replace('"', "\"\""))).collect();
    if quoted.is_empty() { None } else { Some(quoted.join(" ")) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{MAX_QUERY_BYTES, MAX_QUERY_TERMS, match_expression};

    #[test]
    fn each_case_turns_into_the_expected_expression() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("   \t\n ", None),
            ("hello", Some("\"hello\"")),
            ("  hello   world ", Some("\"hello\" \"world\"")),
            ("a\"b", Some("\"a\"\"b\"")),
            ("NEAR(", Some("\"NEAR(\"")),
            ("*", Some("\"*\"")),
            ("-x OR y", Some("\"-x\" \"OR\" \"y\"")),
            ("text:secret", Some("\"text:secret\"")),
            ("\"", Some("\"\"\"\"")),
            ("a a b a", Some("\"a\" \"b\"")),
        ];
        for (input, expected) in cases {
            assert_eq!(match_expression(input).as_deref(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn a_huge_query_is_cut_to_the_term_and_byte_limits() {
        let words: Vec<String> = (0..2_000_000).map(|n| format!("w{n}")).collect();
        let expression = match_expression(&words.join(" ")).unwrap();
        assert_eq!(expression.matches('"').count(), 2 * MAX_QUERY_TERMS, "{expression}");
        let long_word = "é".repeat(MAX_QUERY_BYTES);
        let expression = match_expression(&long_word).unwrap();
        assert!(expression.len() <= MAX_QUERY_BYTES + 2, "{} bytes", expression.len());
    }
}
