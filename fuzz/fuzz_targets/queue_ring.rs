//! Arbitrary bytes as a queue's positions, counts, lock and ring contents, then gets and puts:
//! only Ok or Err may come back. See `shmkit::fuzzing::queue_ring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::queue_ring(data));
