//! The one integration-test binary (one link instead of one per file).

mod autotask_client;
mod connectwise_client;
mod connectwise_e2e;
mod gitops;
mod render;
mod sandbox;
mod schedule;
mod sources;
mod validate;
