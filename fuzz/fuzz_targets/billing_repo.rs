//! `cargo fuzz run billing_repo`: see unitsync::fuzzing::billing_repo.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unitsync::fuzzing::billing_repo(data));
