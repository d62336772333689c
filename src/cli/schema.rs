//! `unitsync schema`: writes the JSON Schemas that editors and `validate` use.

use std::path::PathBuf;

use clap::Args;

use super::{CommandError, GlobalArgs, Outcome};
use crate::config::schema::FileKind;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Folder to write into, relative to -C DIR.
    #[arg(long, default_value = "schema")]
    pub out: PathBuf,
    /// Only check that the files there are up to date; exit 1 when not.
    #[arg(long)]
    pub check: bool,
}

pub fn run(global: &GlobalArgs, args: &SchemaArgs) -> Result<Outcome, CommandError> {
    let dir = global.dir.join(&args.out);
    let mut stale = Vec::new();
    for kind in FileKind::ALL {
        let path = dir.join(kind.schema_file());
        let text = kind.schema_text();
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(text.as_str()) {
            continue;
        }
        if args.check {
            stale.push(path.display().to_string());
            continue;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| CommandError::user(format!("cannot create {}: {e}", dir.display())))?;
        std::fs::write(&path, text)
            .map_err(|e| CommandError::user(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    if stale.is_empty() {
        Ok(Outcome::Done)
    } else {
        Err(
            CommandError::user(format!("out of date: {}", stale.join(", ")))
                .hinted("run `unitsync schema` and commit the result"),
        )
    }
}
