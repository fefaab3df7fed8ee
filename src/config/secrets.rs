//! Provider keys and the bot token as they were pasted: surrounding
//! whitespace (a trailing newline from `echo` or a copied line) is trimmed at
//! load, an all-blank value counts as unset, and whitespace or control
//! characters inside (anything but visible ASCII) are a configuration error naming the variable — an
//! HTTP client would otherwise fail on the header and valor would report
//! "cannot connect".

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::settings::{Settings, invalid};

/// Trim every secret of `settings` and refuse malformed ones.
pub(super) fn tidy(settings: &mut Settings) -> Result<(), ConfigError> {
    let secrets: [(&str, &str, &mut Option<SecretString>); 5] = [
        ("anthropic.api_key", "ANTHROPIC_API_KEY", &mut settings.anthropic.api_key),
        ("openai.api_key", "OPENAI_API_KEY", &mut settings.openai.api_key),
        ("perplexity.api_key", "PERPLEXITY_API_KEY", &mut settings.perplexity.api_key),
        ("notion.api_key", "NOTION_API_KEY", &mut settings.notion.api_key),
        ("telegram.bot_token", "TELEGRAM_BOT_TOKEN", &mut settings.telegram.bot_token),
    ];
    for (key, variable, secret) in secrets {
        let Some(value) = secret.as_ref() else { continue };
        let trimmed = value.expose_secret().trim();
        if trimmed.is_empty() {
            *secret = None;
            continue;
        }
        // What an HTTP header value can carry as a key: visible ASCII only.
        if !trimmed.chars().all(|c| c.is_ascii_graphic()) {
            let why = format!(
                "(or {variable}) contains a space, a line break or a character an HTTP header cannot carry \
                 inside the key"
            );
            return Err(invalid(key, &why));
        }
        if trimmed.len() != value.expose_secret().len() {
            *secret = Some(SecretString::from(trimmed.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with_openai_key(key: &str) -> Settings {
        let mut settings = Settings::default();
        settings.openai.api_key = Some(SecretString::from(key.to_owned()));
        settings
    }

    #[test]
    fn each_pasted_key_is_trimmed_dropped_or_refused() {
        let cases: &[(&str, Result<Option<&str>, &str>)] = &[
            ("sk-plain", Ok(Some("sk-plain"))),
            ("sk-newline\n", Ok(Some("sk-newline"))),
            ("  sk-spaces \t\r\n", Ok(Some("sk-spaces"))),
            (" \n ", Ok(None)),
            ("sk-two words", Err("`openai.api_key` (or OPENAI_API_KEY) contains a space")),
            ("sk-line\nbreak", Err("`openai.api_key` (or OPENAI_API_KEY) contains a space, a line break")),
            ("sk-\u{7}bell", Err("OPENAI_API_KEY")),
            ("sk-café", Err("an HTTP header cannot carry")),
        ];
        for (pasted, expected) in cases {
            let mut settings = with_openai_key(pasted);
            match (tidy(&mut settings), expected) {
                (Ok(()), Ok(kept)) => {
                    let now = settings.openai.api_key.as_ref().map(|key| key.expose_secret().to_owned());
                    assert_eq!(now.as_deref(), *kept, "{pasted:?}");
                }
                (Err(error), Err(said)) => {
                    let text = error.to_string();
                    assert!(text.contains(said), "{pasted:?}: {text}");
                    assert!(!text.contains("sk-"), "the key itself is in the error: {text}");
                }
                (outcome, expected) => panic!("{pasted:?}: got {outcome:?}, expected {expected:?}"),
            }
        }
    }
}
