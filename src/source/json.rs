//! JSON records: a file, and the shared parsing used by the HTTP and command sources.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    BoxFuture, Field, Noun, RawRecord, RecordProblem, SourceError, UsageSource, read_file,
    validate_record,
};
use crate::config::{FieldNames, JsonSource};
use crate::plan::UsageRecord;

/// Reads `source.json`: `path` relative to the billing repo, the records array at the JSON
/// Pointer `records`, and `fields` as keys or JSON Pointers.
#[derive(Debug, Clone)]
pub struct JsonUsageSource {
    settings: JsonSource,
    path: PathBuf,
}

impl JsonUsageSource {
    pub fn new(settings: JsonSource, root: &Path) -> JsonUsageSource {
        let path = root.join(&settings.path);
        JsonUsageSource { settings, path }
    }

    /// The file read, as named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl UsageSource for JsonUsageSource {
    fn describe(&self) -> String {
        format!("JSON file {}", self.path.display())
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>> {
        Box::pin(async move {
            let (path, bytes) = read_file(self.path.clone()).await?;
            parse_json_records(
                &bytes,
                &path.display().to_string(),
                JsonDocument::File,
                self.settings.records.as_deref(),
                &self.settings.fields,
            )
        })
    }
}

/// Where a JSON document came from, for the settings and advice named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonDocument {
    /// `source.json`
    File,
    /// `source.http`
    Http,
    /// `source.command`
    Command,
}

impl JsonDocument {
    fn settings(self) -> &'static str {
        match self {
            JsonDocument::File => "source.json",
            JsonDocument::Http => "source.http",
            JsonDocument::Command => "source.command",
        }
    }

    fn syntax_hint(self) -> &'static str {
        match self {
            JsonDocument::File => "fix the file there",
            JsonDocument::Http => {
                "the endpoint must answer with JSON; check source.http.url and its credential"
            }
            JsonDocument::Command => {
                "the program must print only JSON on stdout (messages belong on stderr)"
            }
        }
    }
}

/// Parses a JSON document and reads the records array at the JSON Pointer `records` (the whole
/// document when `None` or empty). `origin` names the document in errors (a path, a URL without
/// credentials, a program's output).
pub fn parse_json_records(
    bytes: &[u8],
    origin: &str,
    document_kind: JsonDocument,
    records: Option<&str>,
    fields: &FieldNames,
) -> Result<Vec<UsageRecord>, SourceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SourceError::JsonShape {
            origin: origin.to_string(),
            problem: "the document is empty; it must hold a JSON array of usage records".into(),
        });
    }
    let document: Value = serde_json::from_slice(bytes).map_err(|e| SourceError::JsonSyntax {
        origin: origin.to_string(),
        line: e.line(),
        column: e.column(),
        problem: strip_position(&e.to_string()),
        hint: document_kind.syntax_hint(),
    })?;
    records_from_value(&document, origin, document_kind, records, fields)
}

/// serde_json appends ` at line L column C`; the error names the position itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Reads the records array at `records` in an already parsed document.
pub(crate) fn records_from_value(
    document: &Value,
    origin: &str,
    document_kind: JsonDocument,
    records: Option<&str>,
    fields: &FieldNames,
) -> Result<Vec<UsageRecord>, SourceError> {
    let setting = format!("{}.records", document_kind.settings());
    let shape = |problem: String| SourceError::JsonShape {
        origin: origin.to_string(),
        problem,
    };
    let pointer = records.map(str::trim).unwrap_or("");
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(SourceError::InvalidSettings {
            setting,
            problem: format!(
                "{pointer:?} is not a JSON Pointer; write it with a leading slash, such as \"/{pointer}\""
            ),
        });
    }
    let shown = if pointer.is_empty() {
        "the document".to_string()
    } else {
        pointer.to_string()
    };
    let array = match document.pointer(pointer) {
        None => {
            return Err(shape(format!(
                "nothing at {pointer}; set {setting} to the JSON Pointer of the records array"
            )));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(shape(format!(
                "{shown} is {}, not an array of records; set {setting} to the JSON Pointer of the records array",
                type_name(other)
            )));
        }
    };
    for field in [
        Field::Account,
        Field::LicenseType,
        Field::Units,
        Field::Unit,
    ] {
        let name = field.name(fields);
        if name.trim().is_empty() {
            return Err(SourceError::InvalidSettings {
                setting: format!("{}.fields.{}", document_kind.settings(), field.key()),
                problem: "is empty; name the key (or JSON Pointer) that holds it".into(),
            });
        }
    }

    let mut out = Vec::with_capacity(array.len());
    for (index, record) in array.iter().enumerate() {
        let record_pointer = format!("{pointer}/{index}");
        let located = |problem: RecordProblem| {
            let pointer = match problem.field() {
                Some(field) => field_pointer(&record_pointer, field.name(fields)),
                None => record_pointer.clone(),
            };
            SourceError::Record {
                origin: origin.to_string(),
                index,
                pointer,
                problem,
            }
        };
        if !record.is_object() {
            return Err(located(RecordProblem::NotAnObject {
                found: type_name(record),
            }));
        }
        let account = text_field(record, Field::Account, fields).map_err(&located)?;
        let license_type = text_field(record, Field::LicenseType, fields).map_err(&located)?;
        let unit = text_field(record, Field::Unit, fields).map_err(&located)?;
        let units = units_field(record, fields).map_err(&located)?;
        let raw = RawRecord {
            account: account.as_deref(),
            license_type: license_type.as_deref(),
            units: units.as_deref(),
            unit: unit.as_deref(),
        };
        out.push(validate_record(raw, fields, Noun::Field).map_err(&located)?);
    }
    Ok(out)
}

/// The value a field name selects: a key of the record, or a JSON Pointer into it.
fn lookup<'v>(record: &'v Value, name: &str) -> Option<&'v Value> {
    if name.starts_with('/') {
        record.pointer(name)
    } else {
        record.get(name)
    }
}

fn field_pointer(record_pointer: &str, name: &str) -> String {
    if name.starts_with('/') {
        format!("{record_pointer}{name}")
    } else {
        format!(
            "{record_pointer}/{}",
            name.replace('~', "~0").replace('/', "~1")
        )
    }
}

/// A text field: strings as they are, numbers as written (account ids are often numbers).
fn text_field(
    record: &Value,
    field: Field,
    fields: &FieldNames,
) -> Result<Option<String>, RecordProblem> {
    let name = field.name(fields);
    match lookup(record, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(RecordProblem::WrongType {
            field,
            noun: Noun::Field,
            name: name.to_string(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

/// Units: a number, or a string holding one.
fn units_field(record: &Value, fields: &FieldNames) -> Result<Option<String>, RecordProblem> {
    match lookup(record, &fields.units) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // A number's shortest round-trip text: 135.5 stays exactly 135.5.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(RecordProblem::WrongType {
            field: Field::Units,
            noun: Noun::Field,
            name: fields.units.clone(),
            expected: "a number or a numeric string",
            found: type_name(other),
        }),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        text: &str,
        records: Option<&str>,
        fields: &FieldNames,
    ) -> Result<Vec<UsageRecord>, String> {
        parse_json_records(
            text.as_bytes(),
            "usage.json",
            JsonDocument::File,
            records,
            fields,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn nested_fields_and_records_pointer() {
        let fields = FieldNames {
            account: "/customer/name".into(),
            license_type: "sku".into(),
            units: "/usage/qty".into(),
            unit: "/usage/unit".into(),
        };
        let doc = r#"{"data":{"items":[
            {"customer":{"name":"Bob's Dentistry"},"sku":"SP Desktop","usage":{"qty":4}},
            {"customer":{"name":"DigitalTorch"},"sku":"Cloud","usage":{"qty":"135.5","unit":"GB"}}
        ]}}"#;
        let records = parse(doc, Some("/data/items"), &fields).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].units.to_string(), "135.5");
        let bad =
            r#"{"data":{"items":[{"customer":{"name":"Bob"},"sku":"SP","usage":{"qty":-2}}]}}"#;
        assert_eq!(
            parse(bad, Some("/data/items"), &fields).unwrap_err(),
            "usage.json: record at index 0 (/data/items/0/usage/qty): units -2 (field \"/usage/qty\") is negative; a vendor cannot bill fewer than zero units, so fix the source data"
        );
    }

    #[test]
    fn escapes_plain_keys_in_pointers() {
        let fields = FieldNames {
            units: "a/b".into(),
            ..FieldNames::default()
        };
        let err = parse(
            r#"[{"account":"A","license_type":"L","a/b":true}]"#,
            None,
            &fields,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "usage.json: record at index 0 (/0/a~1b): the units (field \"a/b\") must be a number or a numeric string, not a boolean"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("[\n  {\"account\": }\n]", None, &FieldNames::default()).unwrap_err();
        assert_eq!(
            err,
            "usage.json:2:15: not valid JSON: expected value; fix the file there"
        );
    }
}
