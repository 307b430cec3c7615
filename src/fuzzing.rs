//! Harnesses for the fuzz targets in `fuzz/` (and for replaying their findings in tests).
//! Not part of the public API.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cell::{Array, RawArray, RawValue, Value};
use crate::shm::{SegmentName, remove};
use crate::sys;

/// Writes `data[1..]` as the whole content of a fresh segment and opens it as one of the four
/// cell kinds (chosen by `data[0]`), then, if that succeeds, locks it briefly and reads every
/// element. Opening must return `Ok` or `Err`; it must never panic, hang or fault.
///
/// If bit 3 of `data[0]` is set, the contents are instead a valid image of a real segment of the
/// chosen kind, patched by the rest of `data` read as (offset: u16, xor: u8) triples, so the
/// fuzzer starts from deep inside the format. If bit 0 is set, the harness then writes a correct
/// state word and header checksum, so the fuzzer also reaches the checks behind them (kind,
/// type, layout, the lock).
pub fn open_segment_bytes(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let mut contents = if ctrl & 8 != 0 {
        let Some(mut image) = valid_image((ctrl >> 1) & 3) else {
            return;
        };
        for patch in rest.chunks_exact(3) {
            let at = usize::from(u16::from_le_bytes([patch[0], patch[1]]));
            if let Some(b) = image.get_mut(at) {
                *b ^= patch[2];
            }
        }
        image
    } else {
        rest[..rest.len().min(1 << 16)].to_vec()
    };
    if ctrl & 1 != 0 {
        crate::shm::fix_header_for_fuzzing(&mut contents);
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "fuzz-{}-{}",
        sys::current_pid(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(seg_name) = SegmentName::new(&name) else {
        return;
    };
    let Ok(mut file) = sys::shm_create_exclusive(&seg_name.os_name()) else {
        return;
    };
    let written = file.write_all(&contents);
    drop(file);
    if written.is_ok() {
        let short = Duration::from_millis(1);
        match (ctrl >> 1) & 3 {
            0 => exercise_value::<f64>(&name, short),
            1 => exercise_array::<i32>(&name, short),
            2 => {
                if let Ok(v) = RawValue::<u64>::open_timeout(&name, Duration::ZERO) {
                    let _ = v.get();
                }
            }
            _ => {
                if let Ok(a) = RawArray::<u8>::open_timeout(&name, Duration::ZERO) {
                    let _ = a.to_vec();
                }
            }
        }
    }
    let _ = remove(&name);
}

/// The bytes of a freshly created segment of each kind the harness opens.
fn valid_image(kind: u8) -> Option<Vec<u8>> {
    let read = |name: &str| std::fs::read(format!("{}/shmkit-{name}", sys::SHM_DIR)).ok();
    match kind {
        0 => read(Value::new(1.0f64).ok()?.name()),
        1 => read(Array::from_slice(&[1i32, 2, 3]).ok()?.name()),
        2 => read(RawValue::new(7u64).ok()?.name()),
        _ => read(RawArray::from_slice(&[1u8; 10]).ok()?.name()),
    }
}

fn exercise_value<T: bytemuck::Pod>(name: &str, short: Duration) {
    if let Ok(v) = Value::<T>::open_timeout(name, Duration::ZERO) {
        if let Ok(g) | Err(crate::TryLockError::OwnerDied(g)) = v.try_lock_for(short) {
            let _ = *g;
        }
    }
}

fn exercise_array<T: bytemuck::Pod>(name: &str, short: Duration) {
    if let Ok(a) = Array::<T>::open_timeout(name, Duration::ZERO) {
        if let Ok(g) | Err(crate::TryLockError::OwnerDied(g)) = a.try_lock_for(short) {
            let _ = g
                .iter()
                .fold(0u64, |acc, x| acc ^ bytemuck::bytes_of(x).len() as u64);
        }
    }
}
