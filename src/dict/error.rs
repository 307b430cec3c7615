//! The errors of `Dict` and `List` operations.

use crate::error::Error;

/// Why a [`Dict`](crate::Dict) operation failed. The dict is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DictError {
    /// A key or value could not be serialised.
    #[error("a key or value could not be serialised: {0}")]
    Serialize(String),
    /// Stored bytes could not be deserialised as the dict's types (every process must use the
    /// same `K` and `V`).
    #[error("stored bytes are not the dict's key or value type: {0}")]
    Deserialize(String),
    /// A key and value larger than the limit (1 GiB serialised).
    #[error("an entry of {0} bytes is larger than the 1 GiB limit")]
    TooLarge(u64),
    /// An OS error, or a dict found corrupt (written by a broken or hostile process).
    #[error("dict operation failed: {0}")]
    Failed(#[source] Error),
}

/// Why a [`List`](crate::List) operation failed. The list is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// An index past the end (Python's `IndexError`).
    #[error("index {index} out of range for a list of {len}")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The list's length then.
        len: usize,
    },
    /// An item could not be serialised.
    #[error("an item could not be serialised: {0}")]
    Serialize(String),
    /// Stored bytes could not be deserialised as the list's item type.
    #[error("stored bytes are not the list's item type: {0}")]
    Deserialize(String),
    /// An item larger than the limit (1 GiB serialised).
    #[error("an item of {0} bytes is larger than the 1 GiB limit")]
    TooLarge(u64),
    /// An OS error, or a list found corrupt (written by a broken or hostile process).
    #[error("list operation failed: {0}")]
    Failed(#[source] Error),
}

crate::error::failed_into_error!(DictError);
crate::error::failed_into_error!(ListError);
