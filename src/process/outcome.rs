//! Telling whether a function's result is an `Err`, whatever its type.
//!
//! A child or pool worker reports a returned `Err` as a failure. The result's type is only
//! known as `R: Serialize`, so it is asked through serde's data model, which every `Serialize`
//! type speaks and which is stable: serde serialises `Result` as the enum `"Result"` whose
//! variant `"Err"` is a newtype variant. [`is_err`] serialises the value into a [`Probe`] that
//! answers that one question at the top level and stops, reading nothing further.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// Whether `value` is a `Result::Err` (an enum named `Result` whose variant is `Err`).
pub(crate) fn is_err<R: Serialize + ?Sized>(value: &R) -> bool {
    value.serialize(Probe).unwrap_or(false)
}

/// A serializer that answers "is this an `Err`?" and serialises nothing.
struct Probe;

/// Returned for every compound value: not a `Result`, stop there.
#[derive(Debug)]
struct NotAResult;

impl fmt::Display for NotAResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a Result")
    }
}

impl std::error::Error for NotAResult {}

impl ser::Error for NotAResult {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotAResult
    }
}

macro_rules! not_err {
    ($($method:ident($($ty:ty),*);)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<bool, NotAResult> {
            Ok(false)
        })*
    };
}

impl ser::Serializer for Probe {
    type Ok = bool;
    type Error = NotAResult;
    type SerializeSeq = Impossible<bool, NotAResult>;
    type SerializeTuple = Impossible<bool, NotAResult>;
    type SerializeTupleStruct = Impossible<bool, NotAResult>;
    type SerializeTupleVariant = Impossible<bool, NotAResult>;
    type SerializeMap = Impossible<bool, NotAResult>;
    type SerializeStruct = Impossible<bool, NotAResult>;
    type SerializeStructVariant = Impossible<bool, NotAResult>;

    not_err! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<bool, NotAResult> {
        Ok(false)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotAResult> {
        Ok(false)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<bool, NotAResult> {
        Ok(name == "Result" && variant == "Err")
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAResult> {
        Err(NotAResult)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAResult> {
        Err(NotAResult)
    }
}

#[cfg(test)]
mod tests {
    use super::is_err;

    #[test]
    fn only_an_err_is_an_err() {
        assert!(is_err(&Err::<u8, String>("no".into())));
        assert!(is_err(&Err::<(), ()>(())));
        assert!(!is_err(&Ok::<u8, String>(1)));
        assert!(!is_err(&1u64));
        assert!(!is_err(&"Err"));
        assert!(
            !is_err(&vec![Err::<u8, u8>(1)]),
            "only the top level counts"
        );
        assert!(!is_err(&Some(Err::<u8, u8>(1))));
        assert!(!is_err(&(1, 2)));
    }
}
