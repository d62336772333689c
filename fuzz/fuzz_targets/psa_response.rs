//! `cargo fuzz run psa_response`: see unitsync::fuzzing::psa_response.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unitsync::fuzzing::psa_response(data));
