//! Copying `Pod` values in and out of shared memory through atomic words, for the lock-free
//! [`RawValue`](crate::RawValue) and [`RawArray`](crate::RawArray).
//!
//! Two threads (of one process or of two) may read and write a raw cell at the same time. A
//! plain or volatile copy racing with a write is a data race, which Rust's memory model makes
//! undefined behaviour. So each element is copied as a run of relaxed atomic loads or stores
//! of its *word*: `align_of::<T>()` bytes, capped at 8 (a `Pod` type's size is a multiple of its
//! alignment, and every element of the payload is aligned to it). A reader racing with a writer
//! therefore sees, word by word, either the old or the new contents: a value mixing old and
//! new words, which `T: Pod` accepts as a valid `T`, and never undefined behaviour.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;

/// The bytes of each atomic word an element of `T` is copied in.
pub(crate) const fn word_size<T>() -> usize {
    let a = std::mem::align_of::<T>();
    if a >= 8 { 8 } else { a }
}

macro_rules! copy_words {
    ($atomic:ty, $int:ty, $src:expr, $dst:expr, load) => {
        for (k, chunk) in $dst
            .chunks_exact_mut(std::mem::size_of::<$int>())
            .enumerate()
        {
            // SAFETY: the caller guarantees `src` is valid and aligned to `word_size::<T>()`, which
            // is this word's size, for `size_of::<T>()` bytes; word `k` lies inside them. All
            // accesses to this memory are atomic words of this same size (`read`/`write` below).
            let word = unsafe { <$atomic>::from_ptr($src.cast::<$int>().add(k)) };
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
    };
    ($atomic:ty, $int:ty, $dst:expr, $src:expr, store) => {
        for (k, chunk) in $src.chunks_exact(std::mem::size_of::<$int>()).enumerate() {
            // SAFETY: as for the loads above.
            let word = unsafe { <$atomic>::from_ptr($dst.cast::<$int>().add(k)) };
            let bytes = chunk.try_into().expect("chunks_exact gives whole words");
            word.store(<$int>::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    };
}

/// Reads the `T` at `src` word by word.
///
/// # Safety
/// `src` is valid for reads and writes of a `T` for the duration of the call and aligned for
/// `T`; every concurrent access to that memory goes through [`read`] or [`write`] with the same
/// `T` (or, in another process, the same word size).
pub(crate) unsafe fn read<T: Pod>(src: NonNull<T>) -> T {
    let mut out = T::zeroed();
    let dst = bytemuck::bytes_of_mut(&mut out);
    let src = src.as_ptr();
    match word_size::<T>() {
        8 => copy_words!(AtomicU64, u64, src, dst, load),
        4 => copy_words!(AtomicU32, u32, src, dst, load),
        2 => copy_words!(AtomicU16, u16, src, dst, load),
        _ => copy_words!(AtomicU8, u8, src, dst, load),
    }
    out
}

/// Writes `value` to `dst` word by word.
///
/// # Safety
/// As for [`read`].
pub(crate) unsafe fn write<T: Pod>(dst: NonNull<T>, value: T) {
    let src = bytemuck::bytes_of(&value);
    let dst = dst.as_ptr();
    match word_size::<T>() {
        8 => copy_words!(AtomicU64, u64, dst, src, store),
        4 => copy_words!(AtomicU32, u32, dst, src, store),
        2 => copy_words!(AtomicU16, u16, dst, src, store),
        _ => copy_words!(AtomicU8, u8, dst, src, store),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, PartialEq, Debug)]
    #[repr(C)]
    struct Odd {
        a: [u8; 3],
    }

    fn round_trip<T: Pod + PartialEq + std::fmt::Debug>(v: T) {
        let mut slot = T::zeroed();
        let p = NonNull::from(&mut slot);
        // SAFETY: `slot` is a live, aligned, private `T`.
        unsafe { write(p, v) };
        // SAFETY: as above.
        assert_eq!(unsafe { read(p) }, v);
    }

    #[test]
    fn values_of_every_word_size_round_trip() {
        assert_eq!(word_size::<u8>(), 1);
        assert_eq!(word_size::<[u16; 3]>(), 2);
        assert_eq!(word_size::<f32>(), 4);
        assert_eq!(word_size::<[u64; 4]>(), 8);
        assert_eq!(word_size::<u128>(), 8);
        round_trip(0xabu8);
        round_trip(Odd { a: [1, 2, 3] });
        round_trip([7u16, 8, 9]);
        round_trip(1.5f32);
        round_trip([u64::MAX, 0, 42, 7]);
        round_trip(u128::MAX - 5);
    }

    /// A reader racing with a writer that alternates two values sees, in every word, one of
    /// the two: never a torn word.
    #[test]
    fn a_racing_reader_sees_each_word_old_or_new() {
        let cell: &'static mut [u64; 8] = Box::leak(Box::new([0u64; 8]));
        let p = NonNull::from(cell);
        let addr = p.as_ptr() as usize;
        let writer = std::thread::spawn(move || {
            let p = NonNull::new(addr as *mut [u64; 8]).unwrap();
            for i in 0..20_000u64 {
                let v = if i % 2 == 0 { [u64::MAX; 8] } else { [0; 8] };
                // SAFETY: the leaked array lives forever; all accesses are `read`/`write`.
                unsafe { write(p, v) };
            }
        });
        for _ in 0..20_000 {
            // SAFETY: as for the writer.
            let seen = unsafe { read(p) };
            assert!(seen.iter().all(|&w| w == 0 || w == u64::MAX), "{seen:?}");
        }
        writer.join().unwrap();
    }
}
