//! How items become bytes in the ring: postcard for any serde type, and a lean path for
//! `Vec<u8>` (Python's `bytes`): one copy in, one copy out, in postcard's own encoding (a varint
//! length and the bytes), so either side may use either path.

use std::any::{Any, TypeId};
use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    /// Reused serialisation buffer: no allocation per put once it has grown.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A varint (LEB128) of `n` into `buf`; returns the bytes used.
pub(crate) fn varint(mut n: u64, buf: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = b;
            return i + 1;
        }
        buf[i] = b | 0x80;
        i += 1;
    }
}

/// Splits a varint-prefixed byte string into its bytes, checking the length.
pub(crate) fn unprefix(bytes: &[u8]) -> Result<&[u8], String> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let rest = &bytes[i + 1..];
            return if rest.len() as u64 == n {
                Ok(rest)
            } else {
                Err(format!("length {n} ≠ {} bytes", rest.len()))
            };
        }
    }
    Err("bad length prefix".into())
}

/// Serialises `item` and hands its bytes (as parts to concatenate) to `f`.
pub(crate) fn encode<T: Serialize + 'static, R>(
    item: &T,
    f: impl FnOnce(&[&[u8]]) -> R,
) -> Result<R, String> {
    if let Some(bytes) = (item as &dyn Any).downcast_ref::<Vec<u8>>() {
        let mut prefix = [0u8; 10];
        let n = varint(bytes.len() as u64, &mut prefix);
        return Ok(f(&[&prefix[..n], bytes]));
    }
    SCRATCH.with(|scratch| {
        // A Serialize impl that puts into a queue itself would find the buffer borrowed.
        let mut own = Vec::new();
        let mut guard = scratch.try_borrow_mut().ok();
        let buf = guard.as_deref_mut().unwrap_or(&mut own);
        buf.clear();
        let filled = postcard::to_extend(item, std::mem::take(buf))
            .map_err(|e| serialize_reason(item, e))?;
        *buf = filled;
        Ok(f(&[buf.as_slice()]))
    })
}

/// Whether items of `T` take the byte-string path (`Vec<u8>`).
pub(crate) fn is_bytes<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<Vec<u8>>()
}

/// Serialises `item` into `buf`, as [`encode`] would; the bytes used, or `None` if it did not
/// fit or did not serialise (ask [`encode`] why).
pub(crate) fn encode_into<T: Serialize>(item: &T, buf: &mut [u8]) -> Option<usize> {
    postcard::to_slice(item, buf).ok().map(|used| used.len())
}

/// Why `item` did not serialise. postcard drops the message a `Serialize` impl gives its
/// error, so on this cold path the impl runs once more against serde_json, which keeps it.
#[cold]
fn serialize_reason<T: Serialize>(item: &T, e: postcard::Error) -> String {
    match serde_json::to_writer(std::io::sink(), item) {
        Err(json) => json.to_string(),
        Ok(()) => e.to_string(),
    }
}

/// Deserialises an item from its bytes.
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    if is_bytes::<T>() {
        let mut slot: Option<T> = None;
        if let Some(out) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
            *out = Some(unprefix(bytes)?.to_vec());
        }
        return slot.ok_or_else(|| "internal: Vec<u8> fast path".to_owned());
    }
    postcard::from_bytes(bytes).map_err(|e| match crate::shm::by_name::take_open_error() {
        // A handle inside the item could not be opened: say which and why.
        Some(why) => format!("a {}: {why}", std::any::type_name::<T>()),
        None => format!(
            "{} bytes are not a {}: {e}",
            bytes.len(),
            std::any::type_name::<T>()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_fast_path_is_postcards_encoding() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let fast = encode(&v, |parts| parts.concat()).unwrap();
            assert_eq!(fast, postcard::to_allocvec(&v).unwrap(), "len {len}");
            assert_eq!(decode::<Vec<u8>>(&fast).unwrap(), v);
            assert_eq!(postcard::from_bytes::<Vec<u8>>(&fast).unwrap(), v);
        }
    }

    #[test]
    fn serde_values_round_trip_and_bad_bytes_are_errors() {
        let item = (String::from("hello"), vec![1u32, 2, 3], Some(2.5f64));
        let bytes = encode(&item, |parts| parts.concat()).unwrap();
        assert_eq!(
            decode::<(String, Vec<u32>, Option<f64>)>(&bytes).unwrap(),
            item
        );
        assert!(decode::<(String, Vec<u32>, Option<f64>)>(&bytes[..3]).is_err());
        assert!(decode::<Vec<u8>>(&[5, 1, 2]).is_err());
        assert!(decode::<Vec<u8>>(&[0xff; 12]).is_err());
    }
}
