//! Shared cells: [`Value`], [`Array`] (with a robust lock) and [`RawValue`], [`RawArray`]
//! (without), for any `T: bytemuck::Pod`.

mod array;
#[allow(unsafe_code)]
mod core;
mod raw;
mod value;
#[allow(unsafe_code)]
mod words;

pub use array::{Array, ArrayGuard};
pub use raw::{RawArray, RawValue};
pub use value::{Value, ValueGuard};

/// Serde as the segment's name, for the four cell handle types.
macro_rules! serde_by_name {
    ($ty:ident) => {
        impl<T: bytemuck::Pod> crate::shm::by_name::Handle for $ty<T> {
            fn hand_over(&self) -> std::sync::Arc<dyn crate::shm::by_name::HandOver> {
                self.core.clone()
            }
        }
        crate::shm::serde_by_name!(impl[T: bytemuck::Pod] $ty<T>);
    };
}
pub(crate) use serde_by_name;
