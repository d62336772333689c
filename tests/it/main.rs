//! The one integration-test binary (one link instead of one per file).

mod connectwise_client;
mod render;
mod sandbox;
mod sources;
