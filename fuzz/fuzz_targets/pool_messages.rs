//! Arbitrary bytes as a pool worker's results message and as a chunk of task arguments: only
//! values and errors may come back. See `shmkit::fuzzing::pool_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::pool_messages(data));
