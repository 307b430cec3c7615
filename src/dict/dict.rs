//! `Dict<K, V>`: a hash map of serde keys and values in shared memory.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::error::DictError;
use super::store::{Access, Control, Fail, Store};
use super::table::{self, Change};
use crate::error::{Error, Result};
use crate::shm::{Kind, TypeInfo};

/// Python's `Manager().dict()`, in shared memory: a hash map of serde keys and values that
/// every process with a handle reads and changes directly, with no server process.
///
/// Every call is atomic: it runs under the dict's process-shared lock, which survives its
/// holder being killed. [`update`](Self::update) is an atomic read-modify-write, so
/// `d[k] += 1` from many processes loses nothing (Python's Manager needs a separate lock for
/// that). The storage grows by moving to a larger segment while other processes hold handles
/// and keep working, and the space of removed entries is reused when it does. A process killed
/// at any moment (in the middle of growing too) leaves the dict consistent: every call that
/// returned is there, and no entry is torn (see `src/dict/store.rs`).
///
/// Keys are hashed by their serialised bytes (postcard), so two keys are the same key when
/// their serialised forms are equal. A key and value take at most 1 GiB serialised. Handles
/// are `Send + Sync + Clone`, serialise as the dict's name, and can be passed to `Process`,
/// pool tasks and through queues. Opening a dict with other `K` or `V` is `TypeMismatch`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let d = shmkit::Dict::<String, u64>::new()?;
/// d.insert("apples".into(), 3)?;
/// d.update("apples".into(), |n| Some(n.unwrap_or(0) + 1))?; // d["apples"] += 1, atomically
/// assert_eq!(d.get(&"apples".into())?, Some(4));
/// assert_eq!(d.len()?, 1);
/// # Ok(()) }
/// ```
#[allow(clippy::type_complexity)]
pub struct Dict<K, V> {
    store: Arc<Store>,
    _types: PhantomData<fn(K, V) -> (K, V)>, // invariant in both, Send and Sync
}

fn failed(f: Fail) -> DictError {
    match f {
        Fail::Error(e) => DictError::Failed(e),
        Fail::Timeout => DictError::Failed(Error::Op("the dict's lock timed out".into())),
    }
}

fn decode_value<V: DeserializeOwned>(mem: &Access<'_>, e: &table::Entry) -> Result<V, String> {
    codec::decode(e.value(mem).unwrap_or_default())
}

/// `update`'s plan under the lock: the current value, given to `f`, and what `f` returned,
/// serialised. `Err(Ok(_))`: the call fails and nothing changes; `Err(Err(_))`: the storage.
#[allow(clippy::type_complexity)]
fn plan<V: Serialize + DeserializeOwned>(
    mem: &Access<'_>,
    k: &[u8],
    f: &mut Option<impl FnOnce(Option<V>) -> Option<V>>,
) -> Result<(Option<Vec<u8>>, Option<V>), Result<DictError, Change>> {
    let h = table::header(mem, table::DICT).map_err(|r| Err(Change::Corrupt(r)))?;
    let p = table::probe(mem, &h, k, table::hash(k)).map_err(|r| Err(Change::Corrupt(r)))?;
    let old = match p.found {
        None => None,
        Some((_, e)) => {
            Some(decode_value::<V>(mem, &e).map_err(|why| Ok(DictError::Deserialize(why)))?)
        }
    };
    let f = f.take().ok_or_else(|| {
        Ok(DictError::Failed(Error::Op(
            "internal: update ran twice".into(),
        )))
    })?;
    let new = f(old);
    let bytes = new
        .as_ref()
        .map(codec::encode)
        .transpose()
        .map_err(|why| Ok(DictError::Serialize(why)))?;
    if let Some(b) = &bytes {
        too_large(table::entry_size(k.len() as u64, b.len() as u64)).map_err(Ok)?;
    }
    Ok((bytes, new))
}

fn too_large(bytes: u64) -> Result<(), DictError> {
    if bytes > table::MAX_ENTRY {
        return Err(DictError::TooLarge(bytes));
    }
    Ok(())
}

impl<K, V> Dict<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    fn ty() -> TypeInfo {
        TypeInfo::of_channel::<Control, K, V>()
    }

    fn wrap(store: Store) -> Self {
        Dict {
            store: Arc::new(store),
            _types: PhantomData,
        }
    }

    /// Creates an anonymous, empty dict.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the segment cannot be created.
    pub fn new() -> Result<Self> {
        Ok(Self::wrap(Store::create(None, Kind::Dict, Self::ty())?))
    }

    /// Creates the empty dict `name`; fails if it exists. This process owns the name: when its
    /// last handle here is dropped, the dict is removed.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Ok(Self::wrap(Store::create(
            Some(name),
            Kind::Dict,
            Self::ty(),
        )?))
    }

    /// Opens the dict `name`, checking that it is a `Dict` of these `K` and `V`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), [`Error::TypeMismatch`](crate::Error::TypeMismatch), [`Error::Corrupt`](crate::Error::Corrupt), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::wrap(Store::open(name, Kind::Dict, Self::ty())?))
    }

    /// Opens the dict `name`, or creates it (empty) if there is none.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(name: &str) -> Result<Self> {
        super::store::open_or_create(name, Self::open, Self::create)
    }

    /// Runs `f` with the serialised key, under the lock, with the storage at hand.
    fn keyed<R>(
        &self,
        key: &K,
        mut f: impl FnMut(&[u8], &mut Access<'_>) -> Result<R, Change>,
    ) -> Result<R, DictError> {
        codec::with_encoded(key, |k| {
            self.store.with(None, |mem| f(k, mem)).map_err(failed)
        })
        .map_err(DictError::Serialize)?
    }

    /// The value of `key`, if present. Allocates only what decoding the value needs.
    ///
    /// # Errors
    /// [`DictError::Serialize`] (the key), [`DictError::Deserialize`], [`DictError::Failed`].
    pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
        let r = self.keyed(key, |k, mem| {
            let h = table::header(mem, table::DICT)?;
            let p = table::probe(mem, &h, k, table::hash(k))?;
            Ok(p.found.map(|(_, e)| decode_value::<V>(mem, &e)))
        })?;
        r.transpose().map_err(DictError::Deserialize)
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn contains_key(&self, key: &K) -> Result<bool, DictError> {
        self.keyed(key, |k, mem| {
            let h = table::header(mem, table::DICT)?;
            Ok(table::probe(mem, &h, k, table::hash(k))?.found.is_some())
        })
    }

    /// Inserts `value` under `key`; returns the value it replaced.
    ///
    /// # Errors
    /// [`DictError::Serialize`], [`DictError::TooLarge`], [`DictError::Deserialize`] (the old
    /// value; the new one is in), [`DictError::Failed`].
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, DictError> {
        let v = codec::encode(&value).map_err(DictError::Serialize)?;
        let old = codec::with_encoded(&key, |k| {
            too_large(table::entry_size(k.len() as u64, v.len() as u64))?;
            self.store
                .with(None, |mem| {
                    let old = table::insert(mem, k, &v)?;
                    Ok(old.map(|e| decode_value::<V>(mem, &e)))
                })
                .map_err(failed)
        })
        .map_err(DictError::Serialize)??;
        old.transpose().map_err(DictError::Deserialize)
    }

    /// Removes `key`; returns its value, if it was present.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
        let r = self.keyed(key, |k, mem| {
            let old = table::remove(mem, k)?;
            Ok(old.map(|e| decode_value::<V>(mem, &e)))
        })?;
        r.transpose().map_err(DictError::Deserialize)
    }

    /// The atomic read-modify-write: `f` gets the current value of `key` (or `None`) and
    /// returns the new one (`None` removes the key), all under the dict's lock, so no other
    /// process's change comes in between. Returns what `f` returned. `f` must not use this
    /// dict (it would wait for itself: a `Deadlock` error).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); if the current value does not deserialise, `f` is not
    /// called.
    pub fn update(
        &self,
        key: K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, DictError> {
        let mut f = Some(f);
        // `f`'s result and its bytes (`None`: remove), kept across a rebuild of the storage.
        let mut planned: Option<(Option<Vec<u8>>, Option<V>)> = None;
        let mut error: Option<DictError> = None;
        self.keyed(&key, |k, mem| {
            if planned.is_none() && error.is_none() {
                match plan(mem, k, &mut f) {
                    Ok(p) => planned = Some(p),
                    Err(Ok(e)) => error = Some(e),
                    Err(Err(change)) => return Err(change),
                }
            }
            match planned.as_ref().map(|p| &p.0) {
                Some(Some(bytes)) => drop(table::insert(mem, k, bytes)?),
                Some(None) => drop(table::remove(mem, k)?),
                None => {}
            }
            Ok(())
        })?;
        match error {
            Some(e) => Err(e),
            None => Ok(planned.and_then(|p| p.1)),
        }
    }

    /// The value of `key`, inserting `f()` first if it is absent (Python's `setdefault`).
    ///
    /// # Errors
    /// As [`update`](Self::update).
    #[doc(alias = "setdefault")]
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> Result<V, DictError> {
        let mut f = Some(f);
        let mut made: Option<(Vec<u8>, V)> = None;
        let mut error: Option<DictError> = None;
        let found = self.keyed(&key, |k, mem| {
            let h = table::header(mem, table::DICT)?;
            if let Some((_, e)) = table::probe(mem, &h, k, table::hash(k))?.found {
                return Ok(Some(decode_value::<V>(mem, &e)));
            }
            if made.is_none() && error.is_none() {
                let Some(f) = f.take() else {
                    return Ok(None);
                };
                let v = f();
                match codec::encode(&v) {
                    Ok(b) => match too_large(table::entry_size(k.len() as u64, b.len() as u64)) {
                        Ok(()) => made = Some((b, v)),
                        Err(e) => error = Some(e),
                    },
                    Err(why) => error = Some(DictError::Serialize(why)),
                }
            }
            if let Some((bytes, _)) = &made {
                table::insert(mem, k, bytes)?;
            }
            Ok(None)
        })?;
        if let Some(e) = error {
            return Err(e);
        }
        match (found, made) {
            (Some(v), _) => v.map_err(DictError::Deserialize),
            (None, Some((_, v))) => Ok(v),
            (None, None) => Err(DictError::Failed(Error::Op("internal: setdefault".into()))),
        }
    }

    /// Inserts every pair (each one atomically; the whole is not).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); the pairs before the failing one are in.
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), DictError> {
        for (k, v) in pairs {
            self.insert(k, v)?;
        }
        Ok(())
    }

    /// The number of entries.
    ///
    /// # Errors
    /// [`DictError::Failed`].
    pub fn len(&self) -> Result<usize, DictError> {
        self.store
            .with(None, |mem| {
                Ok(table::header(mem, table::DICT)?.live as usize)
            })
            .map_err(failed)
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    /// [`DictError::Failed`].
    pub fn is_empty(&self) -> Result<bool, DictError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry (and gives their space back at once).
    ///
    /// # Errors
    /// [`DictError::Failed`].
    pub fn clear(&self) -> Result<(), DictError> {
        self.store
            .replace(None, |_| Ok((Vec::new(), ())))
            .map_err(failed)
    }

    /// Every entry, decoded from one consistent snapshot (taken under the lock).
    fn snapshot<R>(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<R, String>,
    ) -> Result<Vec<R>, DictError> {
        let r = self
            .store
            .with(None, |mem| {
                let entries = table::dict_entries(mem)?;
                Ok(entries
                    .iter()
                    .map(|e| {
                        f(
                            e.key(mem).unwrap_or_default(),
                            e.value(mem).unwrap_or_default(),
                        )
                    })
                    .collect::<Result<Vec<R>, String>>())
            })
            .map_err(failed)?;
        r.map_err(DictError::Deserialize)
    }

    /// The keys (a consistent snapshot).
    ///
    /// # Errors
    /// [`DictError::Deserialize`], [`DictError::Failed`].
    pub fn keys(&self) -> Result<Vec<K>, DictError> {
        self.snapshot(|k, _| codec::decode(k))
    }

    /// The values (a consistent snapshot).
    ///
    /// # Errors
    /// As [`keys`](Self::keys).
    pub fn values(&self) -> Result<Vec<V>, DictError> {
        self.snapshot(|_, v| codec::decode(v))
    }

    /// The pairs (a consistent snapshot).
    ///
    /// # Errors
    /// As [`keys`](Self::keys).
    pub fn items(&self) -> Result<Vec<(K, V)>, DictError> {
        self.snapshot(|k, v| Ok((codec::decode(k)?, codec::decode(v)?)))
    }

    /// A copy as a `HashMap` (a consistent snapshot; Python's `dict(d)`).
    ///
    /// # Errors
    /// As [`keys`](Self::keys).
    pub fn to_hash_map(&self) -> Result<HashMap<K, V>, DictError> {
        Ok(self.items()?.into_iter().collect())
    }
}

impl<K, V> Dict<K, V> {
    /// The dict's name; [`Dict::open`] with it opens this dict in another process.
    pub fn name(&self) -> &str {
        self.store.name()
    }
}

impl<K, V> Clone for Dict<K, V> {
    fn clone(&self) -> Self {
        Dict {
            store: Arc::clone(&self.store),
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for Dict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dict")
            .field("name", &self.name())
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish()
    }
}

impl<K, V> crate::shm::by_name::Handle for Dict<K, V> {
    fn hand_over(&self) -> Arc<dyn crate::shm::by_name::HandOver> {
        self.store.root().clone()
    }
}

crate::shm::serde_by_name!(impl[K: Serialize + DeserializeOwned + Hash + Eq + 'static, V: Serialize + DeserializeOwned + 'static] Dict<K, V>);
