//! Hostile bytes over a live dict's and list's storage, then operations: Ok or Err only.
//! See `shmkit::fuzzing::dict_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::dict_bytes(data));
