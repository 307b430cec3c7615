//! Arbitrary bytes as a segment's whole contents, opened as Value/Array/RawValue/RawArray:
//! opening must only ever return Ok or Err. See `shmkit::fuzzing::open_segment_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::open_segment_bytes(data));
