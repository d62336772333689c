//! `cargo fuzz run sandbox_conditions`: see unitsync::fuzzing::sandbox_conditions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unitsync::fuzzing::sandbox_conditions(data));
