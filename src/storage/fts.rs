//! Turning user text into a safe FTS5 query. Whatever the user typed, the
//! result is only quoted phrase tokens joined by spaces (implicit AND), so
//! FTS5 operators (`NEAR`, `OR`, `*`, `-`, column filters, parentheses) in the
//! input are matched as literal words and can never make the query fail.

/// Quote each whitespace-separated token (`"` inside doubled) and join them
/// with spaces. `None` when nothing searchable is left.
pub(super) fn match_expression(user_text: &str) -> Option<String> {
    let quoted: Vec<String> =
        user_text.split_whitespace().map(|token| format!("\"{}\"", token.replace('"', "\"\""))).collect();
    if quoted.is_empty() { None } else { Some(quoted.join(" ")) }
}

#[cfg(test)]
mod tests {
    use super::match_expression;

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
        ];
        for (input, expected) in cases {
            assert_eq!(match_expression(input).as_deref(), *expected, "input {input:?}");
        }
    }
}
