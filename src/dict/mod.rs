//! [`Dict`] and [`List`]: Python's `Manager().dict()` and `Manager().list()`, in shared memory.
//!
//! Layers, bottom-up: `table.rs` (the storage layout and its operations, pure), `store.rs`
//! (the root segment, its lock, storage generations and how they grow, the repair after a
//! holder's death), `codec.rs` (serde ↔ bytes), and the typed handles `dict.rs` and `list.rs`.

mod codec;
#[allow(clippy::module_inception)]
mod dict;
mod error;
mod list;
#[allow(unsafe_code)]
mod store;
mod table;

pub use dict::Dict;
pub use error::{DictError, ListError};
pub use list::List;
