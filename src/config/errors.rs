//! Configuration errors for people: the key as they wrote it, where it came
//! from (the file, or the environment variable), what was expected, and the
//! nearest valid key for a typo — never figment's profile prefix or a
//! source location inside valor.

use std::collections::BTreeMap;

use figment::Source;
use figment::error::{Actual, Kind};

use super::ConfigError;

/// `error` (one or more problems) as one message; `from_env` maps a
/// settings key (`agent.max_steps`) to the environment variable that set it.
pub(super) fn describe(error: figment::Error, from_env: &BTreeMap<String, String>) -> ConfigError {
    let messages: Vec<String> = error.into_iter().map(|one| describe_one(&one, from_env)).collect();
    ConfigError::Invalid(messages.join("; "))
}

fn describe_one(error: &figment::Error, from_env: &BTreeMap<String, String>) -> String {
    let key = error.path.join(".");
    let origin = match from_env.iter().find(|(set, _)| key == **set || key.starts_with(&format!("{set}."))) {
        Some((_, variable)) => format!("environment variable {variable}"),
        None => match error.metadata.as_ref().and_then(|metadata| metadata.source.as_ref()) {
            Some(Source::File(path)) => path.display().to_string(),
            _ => "the settings".to_owned(),
        },
    };
    let what = match &error.kind {
        Kind::UnknownField(field, expected) => {
            let parent = error.path.split_last().map(|(_, parent)| parent.join(".")).unwrap_or_default();
            let full = |name: &str| if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") };
            match nearest(field, expected) {
                Some(close) => format!("unknown key `{key}` — did you mean `{}`?", full(close)),
                None if expected.is_empty() => format!("unknown key `{key}`"),
                None => format!("unknown key `{key}`; the keys there are {}", list(expected)),
            }
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("`{key}` must be {}, not {}", expected_text(expected), actual_text(actual))
        }
        Kind::UnknownVariant(value, expected) => format!("`{key}` cannot be `{value}`; use one of {}", list(expected)),
        Kind::MissingField(field) => {
            let full = if key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
            format!("`{full}` is missing")
        }
        Kind::InvalidLength(length, expected) => format!("`{key}` has {length} items; expected {expected}"),
        Kind::DuplicateField(field) => format!("`{key}.{field}` is set twice"),
        Kind::Message(message) => format!("`{key}`: {message}"),
        other => format!("`{key}`: {other}"),
    };
    format!("{origin}: {what}")
}

/// The expected key closest to `given`, when it is close enough to be a typo.
fn nearest<'a>(given: &str, expected: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    expected
        .iter()
        .map(|name| (edit_distance(&given, name), *name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 4) && *distance < name.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`.
/// Written here rather than taken from a crate: a new dependency renames
/// every symbol of valor and voids the start-up link order (BENCHMARKS.md).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: distance between a[..i] and b[..j]; three rows are enough for a swap.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

fn list(names: &[&str]) -> String {
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

/// serde's type names in words.
fn expected_text(expected: &str) -> String {
    let plain = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "string" => "a string",
        "a sequence" => "a list, like [1, 2]",
        other => return other.to_owned(),
    };
    plain.to_owned()
}

fn actual_text(actual: &Actual) -> String {
    match actual {
        Actual::Str(text) => format!("the string {text:?}"),
        Actual::Bool(value) => format!("the boolean {value}"),
        Actual::Signed(value) => format!("the number {value}"),
        Actual::Unsigned(value) => format!("the number {value}"),
        Actual::Float(value) => format!("the number {value}"),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, nearest};

    #[test]
    fn edit_distance_counts_inserts_deletes_replacements_and_swaps() {
        for (a, b, distance) in [
            ("", "", 0),
            ("admin", "admins", 1),
            ("admins", "admin", 1),
            ("telegarm", "telegram", 1),
            ("kitten", "sitting", 3),
            ("abc", "", 3),
        ] {
            assert_eq!(edit_distance(a, b), distance, "{a} → {b}");
        }
        assert_eq!(nearest("max_stepz", &["persona_file", "max_steps"]), Some("max_steps"));
        assert_eq!(nearest("zzz", &["persona_file", "max_steps"]), None);
    }
}
