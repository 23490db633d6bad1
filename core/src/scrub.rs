//! The one scrubber of secrets: every [`crate::types::Secret`] made in this process (the Spotinst token, the
//! etcd password, the etcd auth tokens) is remembered here, and every text that leaves the process (the report,
//! human or JSON, and every log line) passes [`scrub`], which replaces each of them with `<redacted>`.
//!
//! This catches what no type can: a server echoing a request header or body into its error answer (some proxies
//! echo `Authorization`), which then travels inside an error message. It must never print what it holds, and it
//! holds only what a `Secret` held (values shorter than 4 bytes are not remembered: replacing them would mangle
//! ordinary text and they guard nothing).

use std::borrow::Cow;
use std::sync::Mutex;

/// The secrets of this process.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Remembers `secret` so that [`scrub`] hides it.
pub(crate) fn remember(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    if let Ok(mut s) = SECRETS.lock()
        && !s.iter().any(|known| known == secret)
    {
        s.push(secret.to_owned());
    }
}

/// `text` with every remembered secret replaced by `<redacted>`, as it is and as JSON escapes it.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.lock() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for form in [secret.as_str(), escaped] {
            if !form.is_empty() && out.contains(form) {
                out = Cow::Owned(out.replace(form, REDACTED));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Secret;

    #[test]
    fn a_secret_is_hidden_raw_and_json_escaped() {
        let _s = Secret::new("pa\"ss-9f3k");
        let _short = Secret::new("ab");
        let text = r#"{"error":"bad header Authorization: pa\"ss-9f3k"} and pa"ss-9f3k; ab stays"#;
        let clean = scrub(text);
        assert!(!clean.contains("9f3k"), "{clean}");
        assert!(clean.contains("ab stays"), "{clean}");
    }
}
