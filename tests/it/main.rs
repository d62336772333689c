//! The one integration-test binary (one link instead of one per file).

mod render;
mod sources;
