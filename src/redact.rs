//! Keeping secrets out of messages: the one place that turns text a server (or a library's
//! error) sends back into text unitsync may print, log or commit.
//!
//! A [`Redactor`] knows the secrets of one connection (PSA keys, the GitHub token, the usage
//! source's credential, the SMTP login) and removes them in every form a server could echo them
//! in: as they are, percent-encoded (as in a query string: upper- or lower-case hex, `+` or `%20`
//! for a space) and in base64 (Basic auth, SMTP `AUTH`). It also puts the text on one line, so a
//! server cannot add lines or terminal control sequences to a message.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Longest response-body excerpt quoted in an error.
const MAX_BODY_EXCERPT: usize = 600;

/// Removes the secrets it was made with, in every form, from text quoted back to the user.
pub(crate) struct Redactor {
    /// Every form of every secret, longest first (so a secret inside a longer one, such as a key
    /// inside a Basic value, never leaves part of the longer one behind).
    needles: Vec<SecretString>,
}

impl Redactor {
    pub fn new(secrets: Vec<SecretString>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for secret in &secrets {
            let value = secret.expose_secret();
            if value.is_empty() {
                continue;
            }
            let strict = percent_encode(value);
            let forms = [
                value.to_string(),
                lower_percent_escapes(&strict),
                form_encode(value),
                base64::engine::general_purpose::STANDARD.encode(value),
                strict,
            ];
            for form in forms {
                if !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactor {
            needles: needles.into_iter().map(SecretString::from).collect(),
        }
    }

    /// `text` with every secret replaced by `[redacted]`, on one line.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            out = out.replace(needle.expose_secret(), "[redacted]");
        }
        single_line(&out)
    }

    /// Whether `text` holds any of the secrets.
    pub fn finds(&self, text: &str) -> bool {
        self.needles
            .iter()
            .any(|needle| text.contains(needle.expose_secret()))
    }

    /// A bounded, redacted excerpt of a response body.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let redacted = self.redact(text.trim());
        if redacted.chars().count() > MAX_BODY_EXCERPT {
            let cut: String = redacted.chars().take(MAX_BODY_EXCERPT).collect();
            format!("{cut}…")
        } else if redacted.is_empty() {
            "(empty body)".into()
        } else {
            redacted
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so a space is `%20`, never
/// `+`), with upper-case hex digits.
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` as `Url::query_pairs_mut` writes it: `*-._` and
/// alphanumerics stay, a space is `+`, everything else is `%XX`.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%2F` → `%2f`: the same encoding with lower-case hex digits.
fn lower_percent_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Line breaks, tabs and other control characters (with the spaces around them) become single
/// spaces.
pub(crate) fn single_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.split(char::is_control)
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_removes_every_secret() {
        let r = Redactor::new(vec![
            SecretString::from("pub-key"),
            SecretString::from("priv-key"),
        ]);
        assert_eq!(
            r.redact("x pub-key y priv-key"),
            "x [redacted] y [redacted]"
        );
        assert!(r.finds("a priv-key"));
        assert!(!r.finds("a priv key"));
    }

    #[test]
    fn redactor_removes_encoded_forms_and_keeps_one_line() {
        let r = Redactor::new(vec![SecretString::from("api user@x.example/+=~*")]);
        for text in [
            "api user@x.example/+=~*",
            "api%20user%40x.example%2F%2B%3D~%2A",
            "api%20user%40x.example%2f%2b%3d~%2a",
            "api+user%40x.example%2F%2B%3D%7E*",
            "YXBpIHVzZXJAeC5leGFtcGxlLys9fio=",
        ] {
            assert_eq!(r.redact(&format!("a {text} b")), "a [redacted] b", "{text}");
        }
        assert_eq!(
            r.redact("line one\r\n\tline\u{1b}[2J two\n"),
            "line one line [2J two"
        );
    }

    #[test]
    fn a_secret_inside_a_longer_one_leaves_nothing_behind() {
        let r = Redactor::new(vec![
            SecretString::from("abc"),
            SecretString::from("xxabcxx"),
        ]);
        assert_eq!(r.redact("[xxabcxx]"), "[[redacted]]");
    }
}
