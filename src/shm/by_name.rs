//! How a handle travels to another process: as its segment's name.
//!
//! Every handle to a shared object (`Value`, `Array`, `Queue`, `Lock`, ...) implements serde by
//! serialising its segment name, and deserialising *opens* the segment by that name, with all
//! the checks of `open` (kind, element type, length). So a handle can be an argument of
//! [`Process::start`](crate::Process::start) or a pool task, or be sent through a `Queue`. The
//! receiver gets a handle of its own to the same memory; the sender's handles are unaffected.
//! [`serde_by_name!`] writes those two impls, once for every handle type.

/// Implements `Serialize` (as `self.name()`) and `Deserialize` (as `<$ty>::open(name)`) for a
/// handle type: `serde_by_name!(impl[T: Pod] Value<T>)`, or `serde_by_name!(impl[] Lock)`.
macro_rules! serde_by_name {
    (impl[$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de, $($generics)*> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                <$ty>::open(&name).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_by_name;
