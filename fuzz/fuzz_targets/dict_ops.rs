//! Random dict and list operations checked against a HashMap and a Vec.
//! See `shmkit::fuzzing::dict_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::dict_ops(data));
