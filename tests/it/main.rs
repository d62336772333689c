//! The one integration-test binary (one link instead of one per file).

mod action;
mod autotask_client;
mod autotask_e2e;
mod autotask_sandbox;
mod cli_local;
mod connectwise_client;
mod connectwise_e2e;
mod exit_codes;
mod faults;
mod fuzz_corpus;
mod gitops;
mod history_cli;
mod init;
mod modules;
mod notify;
mod ops;
mod render;
mod sandbox;
mod schedule;
mod secrets;
mod sources;
mod status;
mod storagecraft;
mod support;
mod validate;
