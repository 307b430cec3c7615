//! Keys and values as bytes: postcard, with a per-thread buffer so that a lookup encodes its key
//! without allocating.

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Serialises `item` into a reused buffer and passes its bytes to `f`.
pub(crate) fn with_encoded<T: Serialize, R>(
    item: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    // Taken out (and put back) rather than borrowed: `f` may use a dict itself.
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    buf.clear();
    let buf = postcard::to_extend(item, buf).map_err(|e| e.to_string())?;
    let r = f(&buf);
    SCRATCH.with(|s| *s.borrow_mut() = buf);
    Ok(r)
}

/// Serialises `item` into a new vector.
pub(crate) fn encode<T: Serialize>(item: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(item).map_err(|e| e.to_string())
}

/// Deserialises a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| {
        format!(
            "{} bytes are not a {}: {e}",
            bytes.len(),
            std::any::type_name::<T>()
        )
    })
}
