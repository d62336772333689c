//! The canonical text of `units.lock.yaml`, and unified diffs between two versions of it.

use similar::TextDiff;

use crate::config::Lock;

/// The comment lines at the top of every `units.lock.yaml` unitsync writes.
pub const LOCK_HEADER: &str = "\
# yaml-language-server: $schema=schema/units.lock.schema.json
# units.lock.yaml — written by `unitsync propose`, approved by merging its pull request.
# Change a value to approve another count; delete a line to leave that PSA line alone this time.
";

/// `units.lock.yaml` as unitsync writes it: the header comments, then one `  <id>: <units>` line
/// per mapping, sorted by id (the map is ordered). Ids that YAML would read as anything but a
/// plain string are double-quoted. The same lock always gives the same bytes, so diffs show only
/// real changes.
pub fn lock_text(lock: &Lock) -> String {
    let mut out = String::from(LOCK_HEADER);
    if lock.units.is_empty() {
        out.push_str("units: {}\n");
        return out;
    }
    out.push_str("units:\n");
    for (id, units) in &lock.units {
        out.push_str("  ");
        out.push_str(&yaml_key(id));
        out.push_str(": ");
        out.push_str(&units.to_string());
        out.push('\n');
    }
    out
}

/// A mapping key: plain when it is unmistakably a string, double-quoted otherwise.
pub(super) fn yaml_key(id: &str) -> String {
    let plain = id.chars().next().is_some_and(char::is_alphabetic)
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !is_reserved_word(id);
    if plain {
        return id.to_string();
    }
    let mut quoted = String::with_capacity(id.len() + 2);
    quoted.push('"');
    for c in id.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Words YAML 1.1 or 1.2 resolves to booleans or null (and `.inf`-like words are excluded by the
/// first-character rule).
fn is_reserved_word(id: &str) -> bool {
    matches!(
        id.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
    )
}

/// A unified diff (`--- a/path`, `+++ b/path`, hunks with three lines of context) from `old` to
/// `new`, or an empty string when they are equal.
pub fn lock_diff(old: &str, new: &str, path: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(
            yaml_key("bobs-dentistry/shadowprotect-desktop"),
            "bobs-dentistry/shadowprotect-desktop"
        );
        assert_eq!(yaml_key("x/ü-ber"), "x/ü-ber");
        assert_eq!(yaml_key("3cx/phones"), "\"3cx/phones\"");
        assert_eq!(yaml_key("null"), "\"null\"");
        assert_eq!(yaml_key("a: b"), "\"a: b\"");
        assert_eq!(yaml_key("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(yaml_key(""), "\"\"");
    }
}
