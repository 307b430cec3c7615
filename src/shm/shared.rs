//! `ShmShared`: what may be viewed through a shared reference in memory that another process
//! writes, and [`shm_shared!`], which declares such a type and has the compiler check it.
//!
//! A control block (a lock's words, a queue's positions) is read through `&T` by every process
//! mapping the segment. That is sound only if every bit pattern is a valid `T` and every change
//! goes through atomics, never a plain write the compiler may assume no one else makes. The
//! trait is implemented here for the atomic integers; a struct gets it only through
//! `shm_shared!`, which makes it `#[repr(C)]` and asserts, at compile time, that each field is
//! itself `ShmShared` and that there is no padding, so the layout is the sum of its fields.

use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

/// Types that may be viewed through a shared reference in memory another process writes.
///
/// # Safety
/// Implementors must be `#[repr(C)]` or `#[repr(transparent)]`, valid for any bit pattern,
/// `Sync`, and mutated only through atomics. Implement it for a struct with [`shm_shared!`],
/// which checks the fields, not by hand.
pub(crate) unsafe trait ShmShared: Sync {
    /// A description of the fields, part of the type's fingerprint in the segment header.
    const LAYOUT: &'static str;
}

// SAFETY: the atomic integers have the layout of their integer, accept any bit pattern, and are
// mutated only atomically.
unsafe impl ShmShared for AtomicU8 {
    const LAYOUT: &'static str = "u8";
}
// SAFETY: as for `AtomicU8`.
unsafe impl ShmShared for AtomicU16 {
    const LAYOUT: &'static str = "u16";
}
// SAFETY: as for `AtomicU8`.
unsafe impl ShmShared for AtomicU32 {
    const LAYOUT: &'static str = "u32";
}
// SAFETY: as for `AtomicU8`.
unsafe impl ShmShared for AtomicU64 {
    const LAYOUT: &'static str = "u64";
}
// SAFETY: an array of `ShmShared` elements has no padding between them and inherits the rest.
unsafe impl<T: ShmShared, const N: usize> ShmShared for [T; N] {
    // The element's layout and the size (in the fingerprint) describe the array.
    const LAYOUT: &'static str = T::LAYOUT;
}

/// Requires `T: ShmShared`; called in a const context by [`shm_shared!`] for each field type.
pub(crate) const fn assert_field<T: ShmShared>() {}

/// Declares a `#[repr(C)]` struct for a segment's control block and implements
/// [`ShmShared`] for it, after checking at compile time that every field is `ShmShared` (an
/// atomic, an array of them, or another such struct) and that the struct has no padding.
macro_rules! shm_shared {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        const _: () = {
            $( $crate::shm::assert_field::<$ty>(); )*
            assert!(
                ::std::mem::size_of::<$name>() == 0 $( + ::std::mem::size_of::<$ty>() )*,
                concat!(stringify!($name), " has padding: reorder its fields or add reserved words"),
            );
            assert!(::std::mem::align_of::<$name>() <= 8, "a control block aligns to at most 8");
        };

        // SAFETY: `#[repr(C)]`, every field `ShmShared` and no padding, all checked at compile
        // time just above: any bit pattern is a valid value and all mutation is atomic.
        #[allow(unsafe_code)]
        unsafe impl $crate::shm::ShmShared for $name {
            const LAYOUT: &'static str = concat!(
                stringify!($name), " { ", $( stringify!($field), ": ", stringify!($ty), "; ", )* "}"
            );
        }
    };
}
pub(crate) use shm_shared;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64};

    shm_shared! {
        /// A nested block, as the queue's wait lists are.
        struct Inner {
            a: AtomicU32,
            b: AtomicU32,
        }
    }

    shm_shared! {
        struct Outer {
            x: AtomicU64,
            inner: [Inner; 2],
        }
    }

    #[test]
    fn checked_blocks_have_the_size_of_their_fields() {
        assert_eq!(std::mem::size_of::<Outer>(), 24);
        let o = Outer {
            x: AtomicU64::new(1),
            inner: [const {
                Inner {
                    a: AtomicU32::new(2),
                    b: AtomicU32::new(3),
                }
            }; 2],
        };
        use super::ShmShared;
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(Outer::LAYOUT, "Outer { x: AtomicU64; inner: [Inner; 2]; }");
        assert_eq!(o.inner[1].b.load(Relaxed) + o.x.load(Relaxed) as u32, 4);
    }
}
