//! `List<T>`: a list of serde items in shared memory.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::error::ListError;
use super::store::{Access, Control, Fail, Store};
use super::table::{self, Change};
use crate::error::{Error, Result};
use crate::shm::{Kind, TypeInfo};

/// Python's `Manager().list()`, in shared memory: a list of serde items that every process
/// with a handle reads and changes directly, with no server process.
///
/// Every call is atomic under the list's process-shared lock, which survives its holder being
/// killed: [`push`](Self::push) from many processes keeps every item exactly once,
/// [`extend`](Self::extend) adds all its items or none, [`update`](Self::update) is an atomic
/// read-modify-write of one item. `push`, `pop`, `get`, `set`, `truncate` and `len` take
/// constant time; `insert` and `remove` rewrite the list (linear, as a `Vec`'s), and so do
/// the occasional pushes that grow it. The storage grows while other processes hold handles
/// and keep working, and a process killed at any moment leaves the list consistent (see
/// `src/dict/store.rs`). An item takes at most 1 GiB serialised. Handles are
/// `Send + Sync + Clone` and serialise as the list's name.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let l = shmkit::List::<u32>::new()?;
/// l.push(1)?;
/// l.extend([2, 3])?;
/// l.update(0, |x| x * 10)?;
/// assert_eq!(l.to_vec()?, vec![10, 2, 3]);
/// assert_eq!(l.pop()?, Some(3));
/// # Ok(()) }
/// ```
pub struct List<T> {
    store: Arc<Store>,
    _items: PhantomData<fn(T) -> T>,
}

fn failed(f: Fail) -> ListError {
    match f {
        Fail::Error(e) => ListError::Failed(e),
        Fail::Timeout => ListError::Failed(Error::Op("the list's lock timed out".into())),
    }
}

fn encode<T: Serialize>(item: &T) -> Result<Vec<u8>, ListError> {
    let bytes = codec::encode(item).map_err(ListError::Serialize)?;
    let size = table::entry_size(0, bytes.len() as u64);
    if size > table::MAX_ENTRY {
        return Err(ListError::TooLarge(size));
    }
    Ok(bytes)
}

fn decode_item<T: DeserializeOwned>(mem: &Access<'_>, e: &table::Entry) -> Result<T, String> {
    codec::decode(e.value(mem).unwrap_or_default())
}

impl<T: Serialize + DeserializeOwned + 'static> List<T> {
    fn ty() -> TypeInfo {
        TypeInfo::of_channel::<Control, T, ()>()
    }

    fn wrap(store: Store) -> Self {
        List {
            store: Arc::new(store),
            _items: PhantomData,
        }
    }

    /// Creates an anonymous, empty list.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the segment cannot be created.
    pub fn new() -> Result<Self> {
        Ok(Self::wrap(Store::create(None, Kind::List, Self::ty())?))
    }

    /// Creates the empty list `name`; fails if it exists. This process owns the name.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Ok(Self::wrap(Store::create(
            Some(name),
            Kind::List,
            Self::ty(),
        )?))
    }

    /// Opens the list `name`, checking that it is a `List` of this `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), [`Error::TypeMismatch`](crate::Error::TypeMismatch), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::wrap(Store::open(name, Kind::List, Self::ty())?))
    }

    /// Opens the list `name`, or creates it (empty) if there is none.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(name: &str) -> Result<Self> {
        super::store::open_or_create(name, Self::open, Self::create)
    }

    fn with<R>(&self, f: impl FnMut(&mut Access<'_>) -> Result<R, Change>) -> Result<R, ListError> {
        self.store.with(None, f).map_err(failed)
    }

    /// Appends `item` (Python's `append`).
    ///
    /// # Errors
    /// [`ListError::Serialize`], [`ListError::TooLarge`], [`ListError::Failed`].
    #[doc(alias = "append")]
    pub fn push(&self, item: T) -> Result<(), ListError> {
        let bytes = encode(&item)?;
        self.with(|mem| table::push(mem, &[&bytes]))
    }

    /// Appends every item, all or none: other processes see them all at once.
    ///
    /// # Errors
    /// As [`push`](Self::push); then none is in.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), ListError> {
        let encoded = items
            .into_iter()
            .map(|i| encode(&i))
            .collect::<Result<Vec<_>, _>>()?;
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        self.with(|mem| table::push(mem, &parts))
    }

    /// The number of items.
    ///
    /// # Errors
    /// [`ListError::Failed`].
    pub fn len(&self) -> Result<usize, ListError> {
        self.with(|mem| Ok(table::header(mem, table::LIST)?.live as usize))
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// [`ListError::Failed`].
    pub fn is_empty(&self) -> Result<bool, ListError> {
        Ok(self.len()? == 0)
    }

    /// Item `index`, or `None` past the end.
    ///
    /// # Errors
    /// [`ListError::Deserialize`], [`ListError::Failed`].
    pub fn get(&self, index: usize) -> Result<Option<T>, ListError> {
        let r = self.with(|mem| {
            let h = table::header(mem, table::LIST)?;
            if index as u64 >= h.live {
                return Ok(None);
            }
            let e = table::list_entry(mem, &h, index as u64)?;
            Ok(Some(decode_item::<T>(mem, &e)))
        })?;
        r.transpose().map_err(ListError::Deserialize)
    }

    /// Removes and returns the last item, or `None` if the list is empty.
    ///
    /// # Errors
    /// As [`get`](Self::get); an item that does not deserialise is still removed.
    pub fn pop(&self) -> Result<Option<T>, ListError> {
        let r = self.with(|mem| {
            let h = table::header(mem, table::LIST)?;
            if h.live == 0 {
                return Ok(None);
            }
            let e = table::list_entry(mem, &h, h.live - 1)?;
            let item = decode_item::<T>(mem, &e);
            table::truncate(mem, h.live - 1)?;
            Ok(Some(item))
        })?;
        r.transpose().map_err(ListError::Deserialize)
    }

    /// Replaces item `index`; returns the old one.
    ///
    /// # Errors
    /// [`ListError::OutOfRange`], and as [`push`](Self::push).
    pub fn set(&self, index: usize, item: T) -> Result<T, ListError> {
        let bytes = encode(&item)?;
        let r = self.with(|mem| {
            let h = table::header(mem, table::LIST)?;
            if index as u64 >= h.live {
                return Ok(Err(h.live as usize));
            }
            let old = table::set(mem, index as u64, &bytes)?;
            Ok(Ok(decode_item::<T>(mem, &old)))
        })?;
        match r {
            Err(len) => Err(ListError::OutOfRange { index, len }),
            Ok(old) => old.map_err(ListError::Deserialize),
        }
    }

    /// The atomic read-modify-write of item `index`: `f` gets it and returns its new value,
    /// under the list's lock. Returns the new value's copy as stored (decoded again). `f`
    /// must not use this list.
    ///
    /// # Errors
    /// [`ListError::OutOfRange`], and as [`set`](Self::set).
    pub fn update(&self, index: usize, f: impl FnOnce(T) -> T) -> Result<(), ListError> {
        let mut f = Some(f);
        let mut planned: Option<Vec<u8>> = None;
        let mut error: Option<ListError> = None;
        self.with(|mem| {
            if planned.is_none() && error.is_none() {
                let h = table::header(mem, table::LIST)?;
                if index as u64 >= h.live {
                    error = Some(ListError::OutOfRange {
                        index,
                        len: h.live as usize,
                    });
                    return Ok(());
                }
                let e = table::list_entry(mem, &h, index as u64)?;
                let old = match decode_item::<T>(mem, &e) {
                    Ok(v) => v,
                    Err(why) => {
                        error = Some(ListError::Deserialize(why));
                        return Ok(());
                    }
                };
                let Some(f) = f.take() else {
                    return Ok(());
                };
                match encode(&f(old)) {
                    Ok(b) => planned = Some(b),
                    Err(e) => {
                        error = Some(e);
                        return Ok(());
                    }
                }
            }
            if let Some(bytes) = &planned {
                table::set(mem, index as u64, bytes)?;
            }
            Ok(())
        })?;
        error.map_or(Ok(()), Err)
    }

    /// Inserts `item` before item `index` (`index == len` appends). Rewrites the list.
    ///
    /// # Errors
    /// [`ListError::OutOfRange`] if `index > len`, and as [`push`](Self::push).
    pub fn insert(&self, index: usize, item: T) -> Result<(), ListError> {
        let bytes = encode(&item)?;
        let mut len = 0;
        let r = self.store.replace(None, |mem| {
            let mut items = all_bytes(mem)?;
            len = items.len();
            if index > items.len() {
                return Err(Change::Corrupt(String::new()));
            }
            items.insert(index, bytes);
            Ok((items, ()))
        });
        match r {
            Err(Fail::Error(Error::Corrupt { reason, .. })) if reason.is_empty() => {
                Err(ListError::OutOfRange { index, len })
            }
            other => other.map_err(failed),
        }
    }

    /// Removes and returns item `index`. Rewrites the list.
    ///
    /// # Errors
    /// [`ListError::OutOfRange`], [`ListError::Deserialize`] (the item is removed all the
    /// same), [`ListError::Failed`].
    pub fn remove(&self, index: usize) -> Result<T, ListError> {
        let mut len = 0;
        let r = self.store.replace(None, |mem| {
            let mut items = all_bytes(mem)?;
            len = items.len();
            if index >= items.len() {
                return Err(Change::Corrupt(String::new()));
            }
            let gone = items.remove(index);
            Ok((items, gone))
        });
        match r {
            Err(Fail::Error(Error::Corrupt { reason, .. })) if reason.is_empty() => {
                Err(ListError::OutOfRange { index, len })
            }
            other => codec::decode(&other.map_err(failed)?).map_err(ListError::Deserialize),
        }
    }

    /// Shortens the list to `len` items (no-op if it is not longer).
    ///
    /// # Errors
    /// [`ListError::Failed`].
    pub fn truncate(&self, len: usize) -> Result<(), ListError> {
        self.with(|mem| Ok(table::truncate(mem, len as u64)?))
    }

    /// Removes every item.
    ///
    /// # Errors
    /// [`ListError::Failed`].
    pub fn clear(&self) -> Result<(), ListError> {
        self.store
            .replace(None, |_| Ok((Vec::new(), ())))
            .map_err(failed)
    }

    /// Every item, decoded from one consistent snapshot (Python's `list(l)`).
    ///
    /// # Errors
    /// [`ListError::Deserialize`], [`ListError::Failed`].
    pub fn to_vec(&self) -> Result<Vec<T>, ListError> {
        let r = self.with(|mem| {
            let entries = table::list_entries(mem)?;
            Ok(entries
                .iter()
                .map(|e| decode_item::<T>(mem, e))
                .collect::<Result<Vec<T>, String>>())
        })?;
        r.map_err(ListError::Deserialize)
    }

    /// An iterator over a consistent snapshot of the items (taken now).
    ///
    /// # Errors
    /// As [`to_vec`](Self::to_vec).
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>, ListError> {
        Ok(self.to_vec()?.into_iter())
    }
}

/// Every item's bytes, in order.
fn all_bytes(mem: &Access<'_>) -> Result<Vec<Vec<u8>>, Change> {
    let entries = table::list_entries(mem)?;
    entries
        .iter()
        .map(|e| {
            e.value(mem)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| Change::Corrupt("an item past the storage".into()))
        })
        .collect()
}

impl<T> List<T> {
    /// The list's name; [`List::open`] with it opens this list in another process.
    pub fn name(&self) -> &str {
        self.store.name()
    }
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List {
            store: Arc::clone(&self.store),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("List")
            .field("name", &self.name())
            .field("item", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> crate::shm::by_name::Handle for List<T> {
    fn hand_over(&self) -> Arc<dyn crate::shm::by_name::HandOver> {
        self.store.root().clone()
    }
}

crate::shm::serde_by_name!(impl[T: Serialize + DeserializeOwned + 'static] List<T>);
