//! Shared cells: [`Value`], [`Array`] (with a robust lock) and [`RawValue`], [`RawArray`]
//! (without), for any `T: bytemuck::Pod`.

mod array;
#[allow(unsafe_code)]
mod core;
mod raw;
mod value;

pub use array::{Array, ArrayGuard};
pub use raw::{RawArray, RawValue};
pub use value::{Value, ValueGuard};

/// Serialises a handle as its segment name; deserialising opens the segment by that name (with
/// all the checks of `open`), so a handle can travel to another process inside a message.
macro_rules! serde_by_name {
    ($ty:ident) => {
        impl<T: bytemuck::Pod> serde::Serialize for $ty<T> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
        impl<'de, T: bytemuck::Pod> serde::Deserialize<'de> for $ty<T> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $ty::open(&name).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_by_name;
