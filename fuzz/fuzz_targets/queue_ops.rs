//! A random sequence of queue operations checked against a VecDeque model.
//! See `shmkit::fuzzing::queue_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmkit::fuzzing::queue_ops(data));
