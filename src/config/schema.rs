//! JSON Schemas for the billing repo's files, generated from the Rust types so they cannot drift.
//! `unitsync schema` writes them to `schema/`; a test fails when the committed copies differ.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use super::{Lock, MappingsFile, Settings, TrueUps};

/// Which file a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Settings,
    Mappings,
    Lock,
    TrueUps,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::Settings,
        FileKind::Mappings,
        FileKind::Lock,
        FileKind::TrueUps,
    ];

    /// File name under `schema/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            FileKind::Settings => "unitsync.schema.json",
            FileKind::Mappings => "mappings.schema.json",
            FileKind::Lock => "units.lock.schema.json",
            FileKind::TrueUps => "true-ups.schema.json",
        }
    }

    pub fn schema(self) -> Schema {
        match self {
            FileKind::Settings => generate::<Settings>("unitsync.yaml: settings"),
            FileKind::Mappings => {
                generate::<MappingsFile>("mappings.yaml: vendor account → PSA line")
            }
            FileKind::Lock => generate::<Lock>("units.lock.yaml: approved unit counts"),
            FileKind::TrueUps => {
                generate::<TrueUps>("true-ups.yaml: approved one-time corrections")
            }
        }
    }

    /// The schema as the pretty JSON text committed under `schema/` (with a final newline).
    pub fn schema_text(self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema()).expect("schemas serialise");
        text.push('\n');
        text
    }
}

fn generate<T: JsonSchema>(title: &str) -> Schema {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema
}
