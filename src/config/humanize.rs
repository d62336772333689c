//! JSON Schema validation errors → messages a person can act on.
//!
//! jsonschema reports in JSON Pointers and schema keywords ("'licence_type' was unexpected",
//! "is not valid under any of the schemas listed in the 'anyOf' keyword"). Here each error becomes
//! a sentence about the YAML the user wrote — `unknown key "licence_type" in mapping 2; did you
//! mean "license_type"?` — placed at the key or value it is about. For `anyOf`/`oneOf` (optional
//! fields, record references, one-key choices such as `psa:`) the branch the user evidently meant
//! is found and its errors are reported instead of the combinator's.

use std::collections::HashSet;
use std::path::Path;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::yaml::{YamlDoc, push_segment, segments};

/// `"text"`, escaped like JSON.
pub(crate) fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// A human name for the node at `pointer`: `mapping 2`, `account in mapping 2`,
/// `psa.connectwise.site`, `units."bobs-dentistry/x"`; `None` for the document itself.
pub(crate) fn context(pointer: &str) -> Option<String> {
    let segs = segments(pointer);
    context_of(&segs.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The longest a key is shown in a context (longer ones are cut with `…`): a context is repeated
/// in every message about the nodes below it.
const CONTEXT_SEGMENT_CHARS: usize = 40;
/// A context deeper than this shows its first and last segments around `…`.
const CONTEXT_SEGMENTS: usize = 8;

/// [`context`] from a pointer's unescaped segments.
pub(crate) fn context_of(segs: &[&str]) -> Option<String> {
    if segs.is_empty() {
        return None;
    }
    let mut out = String::new();
    let (rest, suffix) = match segs {
        [first, index, rest @ ..] if *first == "mappings" && index.parse::<usize>().is_ok() => {
            let n = index.parse::<usize>().unwrap_or(0) + 1;
            (rest, Some(format!("mapping {n}")))
        }
        _ => (segs, None),
    };
    let mut parent_is_units = false;
    for (i, seg) in rest.iter().enumerate() {
        if rest.len() > CONTEXT_SEGMENTS && i >= CONTEXT_SEGMENTS / 2 {
            if i == CONTEXT_SEGMENTS / 2 {
                out.push_str(".…");
            }
            if i < rest.len() - CONTEXT_SEGMENTS / 2 {
                continue;
            }
        }
        if let Ok(n) = seg.parse::<usize>() {
            out.push_str(&format!("[{n}]"));
        } else {
            if i > 0 {
                out.push('.');
            }
            // Cut without counting every character of a long key.
            let (shown, cut) = match seg.char_indices().nth(CONTEXT_SEGMENT_CHARS) {
                Some(_) => (seg.chars().take(CONTEXT_SEGMENT_CHARS - 1).collect(), true),
                None => (seg.to_string(), false),
            };
            let plain = shown
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let shown = if cut { format!("{shown}…") } else { shown };
            if plain && !parent_is_units {
                out.push_str(&shown);
            } else {
                out.push_str(&quote(&shown));
            }
        }
        parent_is_units = i == 0 && *seg == "units" && suffix.is_none();
    }
    Some(match (out.is_empty(), suffix) {
        (true, Some(s)) => s,
        (false, Some(s)) => format!("{out} in {s}"),
        (_, None) => out,
    })
}

/// How much work one [`suggest`] may do, in edit-distance table cells and characters read: far
/// more than any real typo needs, and a bound on what an adversarial file can cost.
pub(crate) const SUGGEST_WORK: usize = 4_000_000;

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut work = SUGGEST_WORK;
    suggest_within(word, candidates, &mut work)
}

/// [`suggest`], drawing on a shared `work` budget (see [`SUGGEST_WORK`]) so that many lookups
/// together stay bounded; once it runs out, the best candidate so far (if any) is the answer.
pub(crate) fn suggest_within<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    work: &mut usize,
) -> Option<&'a str> {
    let lower: Vec<char> = word.to_lowercase().chars().collect();
    let limit = match lower.len() {
        0..=3 => 1,
        4..=8 => 2,
        n => n / 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let reading = candidate.len() + 1;
        if reading > *work {
            break;
        }
        *work -= reading;
        if candidate == word {
            continue;
        }
        let other: Vec<char> = candidate.to_lowercase().chars().collect();
        // The distance is at least the difference in length.
        if lower.len().abs_diff(other.len()) > limit {
            continue;
        }
        let cells = lower.len().saturating_mul(other.len());
        if cells > *work {
            break;
        }
        *work -= cells;
        let d = levenshtein(&lower, &other);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(crate) fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A value as the user wrote it, for messages: strings quoted, collections by kind.
fn show(value: &Value) -> String {
    match value {
        Value::Object(_) => "a mapping".into(),
        Value::Array(_) => "a list".into(),
        Value::Null => "an empty value".into(),
        other => other.to_string(),
    }
}

fn type_name(ty: JsonType) -> &'static str {
    match ty {
        JsonType::Null => "empty",
        JsonType::Boolean => "true/false",
        JsonType::Integer => "a whole number",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "a list",
        JsonType::Object => "a mapping",
    }
}

fn type_names(kind: &TypeKind) -> Vec<String> {
    match kind {
        TypeKind::Single(t) => vec![type_name(*t).to_string()],
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(|t| type_name(t).to_string())
            .collect(),
    }
}

/// One humanised problem before it is placed in the file.
struct Problem {
    pointer: String,
    at_key: bool,
    message: String,
    hint: Option<String>,
    /// A `required` error: the property that is missing.
    missing: Option<String>,
    /// An unknown key whose likely intended name was suggested.
    suggested: Option<String>,
}

impl Problem {
    fn new(pointer: &str, message: String) -> Problem {
        Problem {
            pointer: pointer.to_string(),
            at_key: false,
            message,
            hint: None,
            missing: None,
            suggested: None,
        }
    }
}

/// Turns the schema errors of one file into diagnostics.
pub(crate) fn schema_diagnostics<'a>(
    file: &Path,
    doc: &YamlDoc,
    schema: &Value,
    errors: impl Iterator<Item = ValidationError<'a>>,
) -> (Vec<Diagnostic>, Vec<String>) {
    let mut problems = Vec::new();
    for err in errors {
        humanize(&err, schema, &mut problems);
    }
    // `licence_type` reported as unknown with "did you mean license_type" already says that
    // `license_type` is missing.
    let suggested: HashSet<(String, String)> = problems
        .iter()
        .filter_map(|p| {
            let parent = p.pointer.rsplit_once('/').map_or("", |(a, _)| a);
            p.suggested.clone().map(|s| (parent.to_string(), s))
        })
        .collect();
    problems.retain(|p| match &p.missing {
        Some(m) => !suggested.contains(&(p.pointer.clone(), m.clone())),
        None => true,
    });
    let pointers = problems.iter().map(|p| p.pointer.clone()).collect();
    let mut out: Vec<Diagnostic> = problems
        .into_iter()
        .map(|p| {
            let pos = if p.at_key {
                doc.key_pos(&p.pointer)
            } else {
                doc.value_pos(&p.pointer)
            };
            Diagnostic::error(file, pos, p.message).with_opt_hint(p.hint)
        })
        .collect();
    out.dedup();
    (out, pointers)
}

/// The subschema at a canonical schema location (`/$defs/Mapping/properties/id`).
fn subschema<'s>(schema: &'s Value, location: &str) -> Option<&'s Value> {
    let mut node = schema;
    for seg in segments(location) {
        node = match node {
            Value::Object(map) => map.get(&seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The schema object that holds the keyword an error comes from.
fn owner<'s>(schema: &'s Value, err: &ValidationError<'_>) -> Option<&'s Value> {
    let path = err.schema_path().as_str();
    let parent = path.rsplit_once('/').map_or("", |(a, _)| a);
    subschema(schema, parent)
}

/// The property names a schema object allows.
fn property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// For a one-key choice (`psa: { connectwise: … }`): the keys of its branches.
fn choice_keys(branches: &[Value]) -> Option<Vec<String>> {
    branches
        .iter()
        .map(|b| {
            let required = b.get("required")?.as_array()?;
            match required.as_slice() {
                [Value::String(key)] if b.get("type") == Some(&Value::from("object")) => {
                    Some(key.clone())
                }
                _ => None,
            }
        })
        .collect()
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

/// A branch that failed only because the value has another type altogether (a string where it
/// wants a number or a mapping), as opposed to one of the right type with something wrong inside.
fn type_mismatch(errors: &[ValidationError<'_>], here: &str) -> bool {
    !errors.is_empty()
        && errors.iter().all(|e| {
            e.instance_path().as_str() == here
                && match e.kind() {
                    ValidationErrorKind::Type { .. } => true,
                    ValidationErrorKind::AnyOf { context }
                    | ValidationErrorKind::OneOfNotValid { context } => context
                        .iter()
                        .filter(|b| !is_null_branch(b))
                        .all(|b| type_mismatch(b, here)),
                    _ => false,
                }
        })
}

fn is_null_branch(errors: &[ValidationError<'_>]) -> bool {
    matches!(errors, [e] if matches!(e.kind(), ValidationErrorKind::Type { kind: TypeKind::Single(JsonType::Null) }))
}

fn humanize(err: &ValidationError<'_>, schema: &Value, out: &mut Vec<Problem>) {
    let pointer = err.instance_path().as_str().to_string();
    let instance: &Value = err.instance();
    let ctx = context(&pointer);
    let subject = |what: &str| match &ctx {
        Some(c) => format!("{c}: {what}"),
        None => what.to_string(),
    };
    let within = match &ctx {
        Some(c) => format!(" in {c}"),
        None => String::new(),
    };
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let allowed = owner(schema, err).map(property_names).unwrap_or_default();
            for key in unexpected {
                let mut p = Problem::new(
                    &push_segment(&pointer, key),
                    format!("unknown key {}{within}", quote(key)),
                );
                p.at_key = true;
                match suggest(key, allowed.iter().map(String::as_str)) {
                    Some(s) => {
                        p.message.push_str(&format!("; did you mean {}?", quote(s)));
                        p.suggested = Some(s.to_string());
                    }
                    None if !allowed.is_empty() => {
                        let names: Vec<String> = allowed.iter().map(|a| quote(a)).collect();
                        p.hint = Some(format!("allowed keys here: {}", names.join(", ")));
                    }
                    None => {}
                }
                out.push(p);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            let mut p = Problem::new(&pointer, format!("missing key {}{within}", quote(&name)));
            p.missing = Some(name);
            out.push(p);
        }
        ValidationErrorKind::Type { kind } => {
            let expected = type_names(kind);
            let mut p = Problem::new(
                &pointer,
                subject(&format!("{} is not {}", show(instance), one_of(&expected))),
            );
            if matches!(kind, TypeKind::Single(JsonType::Boolean)) && instance.is_string() {
                p.hint = Some(
                    "write true or false; YAML 1.2 reads yes/no/on/off as text, not booleans"
                        .into(),
                );
            }
            out.push(p);
        }
        ValidationErrorKind::Enum { options } => {
            let values: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default();
            out.push(not_one_of(&pointer, instance, &values, &subject));
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(not_one_of(
                &pointer,
                instance,
                &[expected_value.to_string()],
                &subject,
            ));
        }
        ValidationErrorKind::MinLength { limit: 1 } => {
            out.push(Problem::new(&pointer, subject("must not be empty")));
        }
        ValidationErrorKind::MinItems { limit } => {
            out.push(Problem::new(
                &pointer,
                subject(&format!(
                    "needs at least {}",
                    super::diagnostic::plural(*limit as usize, "entry")
                )),
            ));
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(Problem::new(
                &pointer,
                subject(&format!(
                    "{} is below the minimum of {limit}",
                    show(instance)
                )),
            ));
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(Problem::new(
                &pointer,
                subject(&format!(
                    "{} is above the maximum of {limit}",
                    show(instance)
                )),
            ));
        }
        ValidationErrorKind::Pattern { .. } => {
            let field = segments(&pointer).pop().unwrap_or_default();
            let (what, hint) = match field.as_str() {
                "refresh" => (
                    "is not a schedule",
                    "write \"daily at HH:MM\" or \"monthly on day D at HH:MM\"",
                ),
                "sync" => (
                    "is not a schedule",
                    "write \"on-merge\", \"daily at HH:MM\" or \"monthly on day D at HH:MM\"",
                ),
                "id" if pointer.starts_with("/true_ups/") => (
                    "is not a true-up id",
                    "true-up ids are tu- and 8 hexadecimal digits, as propose writes them; keep the id propose gave",
                ),
                "id" => (
                    "is not a valid mapping id",
                    "ids use lower-case letters, digits and . _ / -, and start with a letter or digit",
                ),
                "month" => (
                    "is not a billing month",
                    "write previous (the month before today, UTC), current, or a month such as 2026-11",
                ),
                _ => ("has the wrong form", "see the schema for this field"),
            };
            let mut p = Problem::new(&pointer, subject(&format!("{} {what}", show(instance))));
            p.hint = Some(hint.into());
            out.push(p);
        }
        ValidationErrorKind::AnyOf { context: branches }
        | ValidationErrorKind::OneOfNotValid { context: branches } => {
            combinator(err, &pointer, instance, branches, schema, out, &subject);
        }
        _ => {
            out.push(Problem::new(&pointer, subject(&err.to_string())));
        }
    }
}

fn not_one_of(
    pointer: &str,
    instance: &Value,
    values: &[String],
    subject: &dyn Fn(&str) -> String,
) -> Problem {
    let mut message = subject(&format!("{} is not {}", show(instance), one_of(values)));
    let mut hint = None;
    if let Some(text) = instance.as_str() {
        let bare: Vec<String> = values
            .iter()
            .map(|v| v.trim_matches('"').to_string())
            .collect();
        if let Some(s) = suggest(text, bare.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean {}?", quote(s)));
        } else if matches!(
            text.to_ascii_lowercase().as_str(),
            "yes" | "no" | "on" | "off" | "y" | "n"
        ) {
            hint = Some(format!(
                "YAML 1.2 reads {} as text, not a boolean; write one of {}",
                quote(text),
                one_of(values)
            ));
        }
    }
    let mut p = Problem::new(pointer, message);
    p.hint = hint;
    p
}

fn combinator(
    err: &ValidationError<'_>,
    pointer: &str,
    instance: &Value,
    branches: &[Vec<ValidationError<'static>>],
    schema: &Value,
    out: &mut Vec<Problem>,
    subject: &dyn Fn(&str) -> String,
) {
    let keyword_schema = subschema(schema, err.schema_path().as_str());
    let branch_schemas: Vec<Value> = keyword_schema
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let here = depth(pointer);
    // Branches other than "or nothing" (the `null` of an optional field).
    let live: Vec<(usize, &Vec<ValidationError<'static>>)> = branches
        .iter()
        .enumerate()
        .filter(|(_, b)| !is_null_branch(b))
        .collect();
    // A branch that got past this node: its errors are about what is inside, so it is the one the
    // user meant.
    let deeper = live
        .iter()
        .find(|(_, b)| !b.is_empty() && b.iter().all(|e| depth(e.instance_path().as_str()) > here));
    if let Some((_, b)) = deeper {
        for e in b.iter() {
            humanize(e, schema, out);
        }
        return;
    }
    // A one-key choice such as `psa: { connectwise: … }` or `source: { csv: … }`.
    if let Some(keys) = choice_keys(&branch_schemas) {
        let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
        let mut problems = Vec::new();
        match instance.as_object() {
            Some(map) => {
                let unknown: Vec<&String> = map.keys().filter(|k| !keys.contains(k)).collect();
                let known: Vec<&String> = map.keys().filter(|k| keys.contains(k)).collect();
                for key in &unknown {
                    let within = context(pointer).map_or(String::new(), |c| format!(" in {c}"));
                    let mut p = Problem::new(
                        &push_segment(pointer, key),
                        format!("unknown key {}{within}", quote(key)),
                    );
                    p.at_key = true;
                    match suggest(key, keys.iter().map(String::as_str)) {
                        Some(s) => p.message.push_str(&format!("; did you mean {}?", quote(s))),
                        None => p.hint = Some(format!("expected one of {}", one_of(&quoted))),
                    }
                    problems.push(p);
                }
                if known.len() > 1 {
                    let names: Vec<String> = known.iter().map(|k| quote(k)).collect();
                    let mut p = Problem::new(
                        &push_segment(pointer, known[1]),
                        subject(&format!("choose one of {}, not several", one_of(&names))),
                    );
                    p.at_key = true;
                    problems.push(p);
                }
                if map.is_empty() {
                    problems.push(Problem::new(
                        pointer,
                        subject(&format!("needs one of {}", one_of(&quoted))),
                    ));
                }
                if problems.is_empty() && known.len() == 1 {
                    // The right key, with errors inside: report those.
                    if let Some((_, b)) = live.iter().find(|(i, _)| keys.get(*i) == Some(known[0]))
                    {
                        for e in b.iter() {
                            humanize(e, schema, out);
                        }
                        return;
                    }
                }
            }
            None => {
                let mut p = Problem::new(
                    pointer,
                    subject(&format!("{} is not a mapping", show(instance))),
                );
                let forms: Vec<String> = keys.iter().map(|k| format!("{k}: {{ … }}")).collect();
                p.hint = Some(format!("write one of: {}", forms.join(", ")));
                problems.push(p);
            }
        }
        out.extend(problems);
        return;
    }
    let fitting: Vec<_> = live
        .iter()
        .filter(|(_, b)| !type_mismatch(b, pointer))
        .collect();
    if let [(_, only)] = fitting.as_slice() {
        for e in only.iter() {
            humanize(e, schema, out);
        }
        return;
    }
    if let [(_, only)] = live.as_slice() {
        for e in only.iter() {
            humanize(e, schema, out);
        }
        return;
    }
    // Several shapes were possible and none fits: say which shapes are allowed.
    let mut expected = Vec::new();
    for (_, b) in &live {
        expectations(b, &mut expected);
    }
    expected.dedup();
    if err.schema_path().as_str().starts_with("/$defs/RecordRef/") {
        expected = vec![
            "an id (whole number)".into(),
            "an identifier (string)".into(),
            "{ id | identifier | name: … }".into(),
        ];
    }
    let values: Vec<String> = expected.clone();
    if expected.iter().all(|e| e.starts_with('"')) {
        out.push(not_one_of(pointer, instance, &values, subject));
        return;
    }
    out.push(Problem::new(
        pointer,
        subject(&format!("{} is not {}", show(instance), one_of(&expected))),
    ));
}

/// What the failed branches of a combinator wanted, in words.
fn expectations(errors: &[ValidationError<'_>], out: &mut Vec<String>) {
    for e in errors {
        let found: Vec<String> = match e.kind() {
            ValidationErrorKind::Type { kind } => type_names(kind),
            ValidationErrorKind::Constant { expected_value } => vec![expected_value.to_string()],
            ValidationErrorKind::Enum { options } => options
                .as_array()
                .map(|a| a.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default(),
            ValidationErrorKind::Minimum { limit } => vec![format!("a number ≥ {limit}")],
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context } => {
                let mut inner = Vec::new();
                for b in context.iter().filter(|b| !is_null_branch(b)) {
                    expectations(b, &mut inner);
                }
                inner
            }
            _ => Vec::new(),
        };
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_read_naturally() {
        assert_eq!(context(""), None);
        assert_eq!(context("/mappings/1").as_deref(), Some("mapping 2"));
        assert_eq!(
            context("/mappings/0/company/name").as_deref(),
            Some("company.name in mapping 1")
        );
        assert_eq!(
            context("/units/bobs~1x").as_deref(),
            Some("units.\"bobs/x\"")
        );
        assert_eq!(
            context("/notifications/email/to/0").as_deref(),
            Some("notifications.email.to[0]")
        );
    }

    #[test]
    fn long_and_deep_contexts_are_cut() {
        let long = "k".repeat(100_000);
        assert_eq!(
            context_of(&["source", &long]).unwrap(),
            format!("source.{}…", "k".repeat(CONTEXT_SEGMENT_CHARS - 1))
        );
        let deep: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let deep: Vec<&str> = deep.iter().map(String::as_str).collect();
        assert_eq!(
            context_of(&deep).unwrap(),
            "k0.k1.k2.k3.….k296.k297.k298.k299"
        );
    }

    #[test]
    fn suggestions_stop_when_the_work_budget_runs_out() {
        let names = ["license_type", "account"];
        let mut work = 0;
        assert_eq!(suggest_within("licence_type", names, &mut work), None);
        let mut work = SUGGEST_WORK;
        assert_eq!(
            suggest_within("licence_type", names, &mut work),
            Some("license_type")
        );
        assert!(work < SUGGEST_WORK);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["license_type", "account", "company", "id"];
        assert_eq!(suggest("licence_type", names), Some("license_type"));
        assert_eq!(suggest("acount", names), Some("account"));
        assert_eq!(suggest("zzz", names), None);
        assert_eq!(suggest("Company", names), Some("company"));
    }
}
