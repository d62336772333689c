//! `unitsync validate`.

use super::{CommandError, GlobalArgs, Outcome};

pub fn run(_global: &GlobalArgs) -> Result<Outcome, CommandError> {
    Err(CommandError::internal("validate is not built yet"))
}
