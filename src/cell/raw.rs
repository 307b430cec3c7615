//! `RawValue<T>` and `RawArray<T>`: shared cells without a lock (Python's `RawValue` and
//! `RawArray`, or `lock=False`), for callers who synchronise themselves.
//!
//! Every access copies one element through relaxed atomic *words* (`align_of::<T>()` bytes,
//! at most 8), and no reference to shared memory is ever made. So a reader racing with a
//! writer, in this process or another, may see a *torn* value: each word entirely old or
//! entirely new, words mixed. That is a valid `T`, because `T: Pod` accepts any bit pattern,
//! and it is never undefined behaviour. A `RawValue<u64>` (or any `T` of one word) is never
//! torn. Use them when a higher-level protocol (a [`Value`](crate::Value)'s lock, a barrier,
//! a single writer that finishes before readers start) orders the accesses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::core::CellCore;
use crate::error::Result;
use crate::shm::{DEFAULT_OPEN_WAIT, Kind, SegmentName};
use crate::sync::OutOfRange;

/// One value of type `T` in shared memory with no lock: Python's `RawValue` (or
/// `Value(..., lock=False)`), for callers who order their accesses themselves.
///
/// Each access copies the value through relaxed atomic words (`align_of::<T>()` bytes, at
/// most 8): a reader racing with a writer may see some words old and some new (never a torn
/// word, and never undefined behaviour, since `T: Pod` accepts any bits). A `T` of one word,
/// such as `u64`, is never torn.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let flag = shmkit::RawValue::new(0u32)?;
/// flag.set(1); // another process opens it by name and watches it
/// assert_eq!(shmkit::RawValue::<u32>::open(flag.name())?.get(), 1);
/// # Ok(()) }
/// ```
pub struct RawValue<T> {
    core: Arc<CellCore<T>>,
}

/// A fixed-length array of `T` in shared memory with no lock: Python's `RawArray`. Each
/// element is copied as [`RawValue`] copies its value.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let a = shmkit::RawArray::from_slice(&[1u16, 2, 3])?;
/// a.set(0, 7)?;
/// assert_eq!(a.to_vec(), [7, 2, 3]);
/// assert!(a.get(3).is_err()); // out of range
/// # Ok(()) }
/// ```
pub struct RawArray<T> {
    core: Arc<CellCore<T>>,
}

impl<T: Pod> RawValue<T> {
    /// Creates an anonymous raw value.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the segment cannot be created or mapped.
    pub fn new(init: T) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::anonymous()?,
            Kind::RawValue,
            1,
            Some(std::slice::from_ref(&init)),
        ))
    }

    /// Creates the raw value `name`; fails if it exists. This process owns the name.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists) or [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, init: T) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::new(name)?,
            Kind::RawValue,
            1,
            Some(std::slice::from_ref(&init)),
        ))
    }

    /// Opens the existing raw value `name`, checking kind and type.
    ///
    /// # Errors
    /// As [`Value::open`](crate::Value::open).
    pub fn open(name: &str) -> Result<Self> {
        Self::open_timeout(name, DEFAULT_OPEN_WAIT)
    }

    /// Like [`open`](Self::open), waiting at most `wait` for the creator to publish the segment.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Self> {
        Self::wrap(CellCore::open(
            SegmentName::new(name)?,
            Kind::RawValue,
            Some(1),
            wait,
        ))
    }

    fn wrap(core: Result<CellCore<T>>) -> Result<Self> {
        Ok(RawValue {
            core: Arc::new(core?),
        })
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Reads the value (word by word; a concurrent writer may leave it torn between words).
    pub fn get(&self) -> T {
        self.core.read(0).unwrap_or_else(T::zeroed)
    }

    /// Writes the value (word by word).
    pub fn set(&self, value: T) {
        self.core.write(0, value);
    }
}

impl<T: Pod> RawArray<T> {
    /// Creates an anonymous raw array of `len` zeroed elements.
    ///
    /// # Errors
    /// [`Error::TooLarge`](crate::Error::TooLarge), [`Error::NoSpace`](crate::Error::NoSpace) or [`Error::Io`](crate::Error::Io).
    pub fn new(len: usize) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::anonymous()?,
            Kind::RawArray,
            len,
            None,
        ))
    }

    /// Creates an anonymous raw array holding a copy of `values`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::anonymous()?,
            Kind::RawArray,
            values.len(),
            Some(values),
        ))
    }

    /// Creates the raw array `name` with `len` zeroed elements; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::TooLarge`](crate::Error::TooLarge), [`Error::NoSpace`](crate::Error::NoSpace) or [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::new(name)?,
            Kind::RawArray,
            len,
            None,
        ))
    }

    /// Opens the existing raw array `name`, whatever its length.
    ///
    /// # Errors
    /// As [`Array::open`](crate::Array::open).
    pub fn open(name: &str) -> Result<Self> {
        Self::open_timeout(name, DEFAULT_OPEN_WAIT)
    }

    /// Like [`open`](Self::open), waiting at most `wait` for the creator to publish the segment.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Self> {
        Self::wrap(CellCore::open(
            SegmentName::new(name)?,
            Kind::RawArray,
            None,
            wait,
        ))
    }

    fn wrap(core: Result<CellCore<T>>) -> Result<Self> {
        Ok(RawArray {
            core: Arc::new(core?),
        })
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads element `index` (word by word, as [`RawValue::get`]).
    ///
    /// # Errors
    /// [`OutOfRange`].
    pub fn get(&self, index: usize) -> std::result::Result<T, OutOfRange> {
        self.core.read(index).ok_or(OutOfRange {
            index,
            len: self.len(),
        })
    }

    /// Writes element `index` (word by word).
    ///
    /// # Errors
    /// [`OutOfRange`] (nothing written).
    pub fn set(&self, index: usize, value: T) -> std::result::Result<(), OutOfRange> {
        if self.core.write(index, value) {
            Ok(())
        } else {
            Err(OutOfRange {
                index,
                len: self.len(),
            })
        }
    }

    /// Copies all elements out, element by element.
    pub fn to_vec(&self) -> Vec<T> {
        self.core.read_all()
    }
}

macro_rules! raw_common {
    ($ty:ident) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                $ty {
                    core: Arc::clone(&self.core),
                }
            }
        }
        impl<T: Pod> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.name())
                    .field("type", &std::any::type_name::<T>())
                    .finish()
            }
        }
        super::serde_by_name!($ty);
    };
}
raw_common!(RawValue);
raw_common!(RawArray);
