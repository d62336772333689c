//! `cargo fuzz run usage_source`: see unitsync::fuzzing::usage_source.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unitsync::fuzzing::usage_source(data));
