//! `RedisQueue<T>` and `RedisLease<T>`: see the [module docs](super).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::renew::Renewer;
use crate::error::{Error, Result};
use crate::queue::{AckError, GetError, GetTimeoutError, PutError, TryGetError};
use crate::sys;

pub(super) const GROUP: &str = "shmkit";
const FIELD: &[u8] = b"d";

/// How a [`RedisQueue`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// How long a lease lasts without [`renew`](RedisLease::renew): after it, another consumer
    /// takes the entry over (its consumer is taken for dead). Default 30 s.
    pub lease: Duration,
    /// Deliveries after which an entry goes to the dead-letter stream (`None`: no limit).
    /// Default 20.
    pub max_deliveries: Option<u32>,
    /// The largest serialised item `put` sends (Redis takes up to 512 MiB). Default 8 MiB.
    pub max_size: usize,
    /// How long connecting, and any reply beyond a get's own wait, may take. Default 5 s.
    pub io_timeout: Duration,
    /// Whether a lease is renewed in the background (every third of the lease time, on a
    /// connection of its own) until it is acked, released or dropped, so a long task keeps it;
    /// the renewals stop when the process dies. Default true.
    pub auto_renew: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            lease: Duration::from_secs(30),
            max_deliveries: Some(20),
            max_size: 8 << 20,
            io_timeout: Duration::from_secs(5),
            auto_renew: true,
        }
    }
}

pub(super) struct Inner {
    client: Client,
    /// One connection per handle, made again after an I/O error (a server restart, say).
    conn: Mutex<Option<Connection>>,
    name: String,
    stream: String,
    dead: String,
    consumer: String,
    pub(super) opts: RedisOptions,
    take: redis::Script,
    /// Started by the first lease that needs renewing.
    renewer: std::sync::OnceLock<Option<Renewer>>,
}

/// One round trip for the usual get: take over the oldest entry whose lease ran out (idle
/// at least ARGV[3] ms), else read a new one, without waiting. Returns `{1, entry, holder,
/// deliveries}` for a take-over, `{0, entry}` for a new entry, nil for none.
/// KEYS: the stream. ARGV: group, consumer, lease in ms.
const TAKE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', 1)
if #p > 0 then
  local id = p[1][1]
  local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
  if #c > 0 and c[1] then
    return {1, c[1], p[1][2], p[1][4] + 1}
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if r and r[1] and r[1][2] and r[1][2][1] then
  return {0, r[1][2][1]}
end
return nil
";

/// A queue of serde values on a Redis stream, shared by processes on any number of hosts: the
/// shared-memory [`Queue`](crate::Queue)'s calls, with leases (see the [module docs](super)).
///
/// Each handle holds one connection; a blocking get holds it while it waits, so give each
/// thread its own handle ([`try_clone`](Self::try_clone)).
///
/// ```no_run
/// # fn main() -> shmkit::Result<()> {
/// let jobs = shmkit::redis::RedisQueue::<String>::connect("redis://127.0.0.1/", "jobs")?;
/// jobs.put("resize photo 17".into()).map_err(shmkit::Error::from)?;
/// let lease = jobs.get_leased().map_err(shmkit::Error::from)?; // on any host
/// lease.ack().map_err(shmkit::Error::from)?;
/// # Ok(()) }
/// ```
pub struct RedisQueue<T> {
    inner: Arc<Inner>,
    _items: PhantomData<fn(T) -> T>,
}

/// A consumer name of this process, unique in its group: `<host>-<pid>-<random>`.
fn consumer_name() -> Result<String> {
    let random = sys::random_u128().map_err(|e| Error::io("getrandom", e))?;
    Ok(format!(
        "{}-{}-{:08x}",
        sys::hostname(),
        sys::current_pid(),
        random as u32
    ))
}

fn redis_error(op: &'static str, e: &RedisError) -> Error {
    Error::io(op, std::io::Error::other(e.to_string()))
}

/// When a get gives up.
#[derive(Clone, Copy)]
enum Until {
    Now,
    At(Instant),
    Never,
}

/// Why a get found nothing, or failed.
enum Fail {
    Empty,
    Corrupt(String),
    Error(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

/// An entry taken from the stream, with its delivery count and, if it was taken over, the
/// consumer that held it before.
struct Taken {
    entry: Entry,
    deliveries: u32,
    previous: Option<String>,
}

/// A stream entry as read: its id, and its fields if they are a shmkit item's.
struct Entry {
    id: String,
    item: std::result::Result<Vec<u8>, String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses `[id, [field, value, ...]]`; anything else is hostile or broken.
fn entry(v: &Value) -> Option<Entry> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    // The item is field `d` (a dead letter also has `from` and `why`).
    let item = match parts.get(1) {
        Some(Value::Array(fields)) => fields
            .chunks_exact(2)
            .find_map(|pair| match pair {
                [Value::BulkString(f), Value::BulkString(bytes)] if f == FIELD => {
                    Some(bytes.clone())
                }
                _ => None,
            })
            .ok_or_else(|| format!("entry {id} is not a shmkit item (fields {fields:?})")),
        _ => Err(format!("entry {id} has no fields")),
    };
    Some(Entry { id, item })
}

impl Inner {
    /// The same queue and consumer, on a connection of its own.
    fn sibling(&self) -> Inner {
        Inner {
            client: self.client.clone(),
            conn: Mutex::new(None),
            name: self.name.clone(),
            stream: self.stream.clone(),
            dead: self.dead.clone(),
            consumer: self.consumer.clone(),
            opts: self.opts.clone(),
            take: self.take.clone(),
            renewer: std::sync::OnceLock::new(),
        }
    }

    /// The thread renewing this handle's leases, started on first use.
    fn renewer(&self) -> Option<&Renewer> {
        self.renewer
            .get_or_init(|| Renewer::start(self.sibling()))
            .as_ref()
    }

    /// Runs `f` on this handle's connection (made first if there is none), with replies
    /// awaited at most `wait` beyond the I/O timeout. An I/O error drops the connection, so
    /// the next call connects again.
    fn with<R>(
        &self,
        op: &'static str,
        wait: Duration,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(self.opts.io_timeout)
                .map_err(|e| redis_error("connect to redis", &e))?;
            *slot = Some(c);
        }
        let conn = slot
            .as_mut()
            .ok_or_else(|| Error::Op("no connection".into()))?;
        let deadline = Some(self.opts.io_timeout + wait);
        conn.set_read_timeout(deadline)
            .and_then(|()| conn.set_write_timeout(Some(self.opts.io_timeout)))
            .map_err(|e| redis_error(op, &e))?;
        f(conn).map_err(|e| {
            if e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout() {
                *slot = None;
            }
            redis_error(op, &e)
        })
    }

    fn ensure_group(&self) -> Result<()> {
        let created = self.with("XGROUP CREATE", Duration::ZERO, |c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<Value>(c)
        });
        match created {
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            other => other.map(drop),
        }
    }

    fn put(&self, bytes: &[u8]) -> Result<()> {
        self.with("XADD", Duration::ZERO, |c| {
            redis::cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg(FIELD)
                .arg(bytes)
                .query::<Value>(c)
        })
        .map(drop)
    }

    /// An entry whose lease ran out, taken over by this consumer (with its delivery count
    /// and the consumer that held it), else a new entry; without waiting ([`TAKE`]).
    fn take_or_read(&self) -> Result<Option<Taken>, Fail> {
        let idle = self.opts.lease.as_millis() as u64;
        let reply = self.with("EVALSHA", Duration::ZERO, |c| {
            self.take
                .key(&self.stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(idle)
                .invoke::<Value>(c)
        })?;
        let bad = || Fail::Corrupt(format!("the take script replied {reply:?}"));
        let parts = match &reply {
            Value::Nil => return Ok(None),
            Value::Array(parts) => parts,
            _ => return Err(bad()),
        };
        let entry = parts.get(1).and_then(entry).ok_or_else(bad)?;
        match (parts.first(), parts.get(2).and_then(text), parts.get(3)) {
            (Some(Value::Int(0)), _, _) => Ok(Some(Taken {
                entry,
                deliveries: 1,
                previous: None,
            })),
            (Some(Value::Int(1)), Some(holder), Some(Value::Int(n))) => Ok(Some(Taken {
                entry,
                deliveries: (*n).clamp(1, i64::from(u32::MAX)) as u32,
                previous: Some(holder),
            })),
            _ => Err(bad()),
        }
    }

    /// A new entry for this consumer, waiting at most `block`.
    fn read_new(&self, block: Duration) -> Result<Option<Entry>, Fail> {
        let reply = self.with("XREADGROUP", block, |c| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block.as_millis().max(1) as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(">")
                .query::<Value>(c)
        })?;
        let bad = || Fail::Corrupt(format!("XREADGROUP replied {reply:?}"));
        match &reply {
            Value::Nil => Ok(None),
            Value::Array(streams) => {
                let Some(Value::Array(s)) = streams.first() else {
                    return Ok(None);
                };
                let Some(Value::Array(entries)) = s.get(1) else {
                    return Err(bad());
                };
                entries
                    .first()
                    .map(|e| entry(e).ok_or_else(bad))
                    .transpose()
            }
            Value::Map(streams) => {
                let Some((_, Value::Array(entries))) = streams.first() else {
                    return Ok(None);
                };
                entries
                    .first()
                    .map(|e| entry(e).ok_or_else(bad))
                    .transpose()
            }
            _ => Err(bad()),
        }
    }

    /// Acks and deletes `id`; whether it was still pending (not acked by another consumer
    /// that took it over).
    fn ack(&self, id: &str) -> Result<bool> {
        let (acked, _deleted): (i64, i64) = self.with("XACK", Duration::ZERO, |c| {
            redis::pipe()
                .cmd("XACK")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(id)
                .cmd("XDEL")
                .arg(&self.stream)
                .arg(id)
                .query(c)
        })?;
        Ok(acked == 1)
    }

    /// Sets `id`'s idle time: 0 renews this consumer's lease, `lease` and more hands it back.
    pub(super) fn touch(&self, id: &str, idle: Option<Duration>) -> Result<bool> {
        let claimed = self.with("XCLAIM", Duration::ZERO, |c| {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&self.stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(0)
                .arg(id);
            if let Some(idle) = idle {
                cmd.arg("IDLE").arg(idle.as_millis() as u64);
            }
            cmd.arg("JUSTID").query::<Value>(c)
        })?;
        Ok(matches!(claimed, Value::Array(ids) if !ids.is_empty()))
    }

    /// Moves `id` (with `bytes`, its item or whatever fields it had) to the dead-letter stream,
    /// then acks it.
    fn dead_letter(&self, id: &str, bytes: &[u8], why: &str) -> Result<()> {
        self.with("XADD", Duration::ZERO, |c| {
            redis::cmd("XADD")
                .arg(&self.dead)
                .arg("*")
                .arg(FIELD)
                .arg(bytes)
                .arg("from")
                .arg(id)
                .arg("why")
                .arg(why)
                .query::<Value>(c)
        })?;
        log::warn!("redis queue {}: entry {id} dead-lettered: {why}", self.name);
        self.ack(id).map(drop)
    }
}

/// An entry taken under a lease from a [`RedisQueue`]: [`ack`](Self::ack) finishes it; dropped
/// or [`release`](Self::release)d it is delivered again at once. While it is held, a
/// background thread renews it (unless [`auto_renew`](RedisOptions::auto_renew) is off); if its
/// process dies, or it is not renewed within the lease time, it is delivered again to whoever
/// asks (at least once).
#[must_use = "a lease that is dropped hands its item back; call ack() once done"]
pub struct RedisLease<T> {
    inner: Arc<Inner>,
    id: String,
    deliveries: u32,
    previous: Option<String>,
    item: Option<T>,
    /// Whether the handle's renewer renews this lease.
    renewing: bool,
}

impl<T> RedisLease<T> {
    /// How many times the entry has been delivered, this time included.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// The consumer that held the entry before this delivery (it released the entry, or its
    /// lease ran out: it died, hung, or lost Redis), or `None` for a first delivery. A consumer
    /// name is `<host>-<pid>-<random>`.
    pub fn previous_consumer(&self) -> Option<&str> {
        self.previous.as_deref()
    }

    /// The stream entry's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Finishes the entry: `XACK` and `XDEL`. Returns the item.
    ///
    /// # Errors
    /// [`AckError::Lost`] if another consumer took the entry over and acked it first (the
    /// item was handled twice: at least once); [`AckError::Failed`].
    pub fn ack(mut self) -> Result<T, AckError> {
        self.stop_renewing();
        let item = self.item.take();
        let acked = self.inner.ack(&self.id).map_err(AckError::Failed)?;
        match (acked, item) {
            (true, Some(item)) => Ok(item),
            _ => Err(AckError::Lost),
        }
    }

    /// Hands the entry back now: the next get (on any host) takes it over.
    ///
    /// # Errors
    /// [`AckError::Failed`].
    pub fn release(mut self) -> Result<(), AckError> {
        self.stop_renewing();
        self.item = None;
        let idle = self.inner.opts.lease + Duration::from_secs(1);
        self.inner
            .touch(&self.id, Some(idle))
            .map(drop)
            .map_err(AckError::Failed)
    }

    /// Stops the renewals and gives up the lease without telling Redis (the caller settles
    /// the entry itself, in a script of its own): the entry id.
    pub(super) fn into_settled(mut self) -> String {
        self.stop_renewing();
        self.item = None; // nothing to hand back on drop
        std::mem::take(&mut self.id)
    }

    fn stop_renewing(&mut self) {
        if std::mem::take(&mut self.renewing)
            && let Some(r) = self.inner.renewer()
        {
            r.unregister(&self.id);
        }
    }

    /// Renews the lease (`XCLAIM ... JUSTID`): the lease time starts again. With
    /// [`auto_renew`](RedisOptions::auto_renew) (the default) a background thread does this.
    ///
    /// # Errors
    /// [`AckError::Lost`] if the entry is no longer pending; [`AckError::Failed`].
    pub fn renew(&self) -> Result<(), AckError> {
        match self.inner.touch(&self.id, None) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AckError::Lost),
            Err(e) => Err(AckError::Failed(e)),
        }
    }
}

impl<T> Drop for RedisLease<T> {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.item.is_some() {
            let idle = self.inner.opts.lease + Duration::from_secs(1);
            let _ = self.inner.touch(&self.id, Some(idle));
        }
    }
}

impl<T> Deref for RedisLease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.item {
            Some(item) => item,
            None => unreachable!("a RedisLease holds its item until ack or release"),
        }
    }
}

impl<T> DerefMut for RedisLease<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.item {
            Some(item) => item,
            None => unreachable!("a RedisLease holds its item until ack or release"),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for RedisLease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLease")
            .field("id", &self.id)
            .field("deliveries", &self.deliveries)
            .field("item", &self.item)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> RedisQueue<T> {
    /// Connects to the Redis at `url` (`redis://host:port/`) and opens the queue `name`,
    /// creating its stream and consumer group if they do not exist.
    ///
    /// # Errors
    /// [`Error::Io`] if Redis cannot be reached; [`Error::InvalidArgument`] for a bad URL.
    pub fn connect(url: &str, name: &str) -> Result<Self> {
        Self::with_options(url, name, RedisOptions::default())
    }

    /// As [`connect`](Self::connect), with `opts`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn with_options(url: &str, name: &str, opts: RedisOptions) -> Result<Self> {
        let client = Client::open(url).map_err(|e| Error::InvalidArgument {
            what: format!("redis URL {url:?}: {e}"),
        })?;
        let inner = Inner {
            client,
            conn: Mutex::new(None),
            name: name.to_owned(),
            stream: format!("shmkit:q:{name}"),
            dead: format!("shmkit:q:{name}:dead"),
            consumer: consumer_name()?,
            opts,
            take: redis::Script::new(TAKE),
            renewer: std::sync::OnceLock::new(),
        };
        inner.ensure_group()?;
        Ok(RedisQueue {
            inner: Arc::new(inner),
            _items: PhantomData,
        })
    }

    /// Another handle on the same queue, with a connection of its own (a consumer of the same
    /// group, under its own name).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn try_clone(&self) -> Result<Self> {
        let mut inner = self.inner.sibling();
        inner.consumer = consumer_name()?;
        Ok(RedisQueue {
            inner: Arc::new(inner),
            _items: PhantomData,
        })
    }

    /// The queue holding this one's dead letters (its stream is `shmkit:q:<name>:dead`).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn dead_letters(&self) -> Result<Self> {
        let mut inner = self.inner.sibling();
        inner.name = format!("{}:dead", self.inner.name);
        inner.stream = self.inner.dead.clone();
        inner.dead = format!("{}:dead", self.inner.dead);
        let q = RedisQueue {
            inner: Arc::new(inner),
            _items: PhantomData,
        };
        q.inner.ensure_group()?;
        Ok(q)
    }

    /// Appends `item` (`XADD`). Once it returns, the item is in Redis.
    ///
    /// # Errors
    /// [`PutError::Serialize`]; [`PutError::Failed`] with [`Error::InvalidArgument`] for an
    /// item larger than `max_size` (nothing is sent), or [`Error::Io`] if Redis failed.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        let bytes = match postcard::to_allocvec(&item) {
            Ok(b) => b,
            Err(e) => {
                return Err(PutError::Serialize {
                    item,
                    reason: e.to_string(),
                });
            }
        };
        if bytes.len() > self.inner.opts.max_size {
            let what = format!(
                "an item of {} bytes is larger than the queue's limit of {} bytes",
                bytes.len(),
                self.inner.opts.max_size
            );
            return Err(PutError::Failed {
                item,
                error: Error::InvalidArgument { what },
            });
        }
        match self.inner.put(&bytes) {
            Ok(()) => Ok(()),
            Err(error) => Err(PutError::Failed { item, error }),
        }
    }

    /// One attempt: an expired lease's entry or a new one, then, if there is none and `until`
    /// allows, a new entry waited for (at most a lease time, to look for expired ones again).
    fn next_entry(&self, until: Until) -> Result<Option<Taken>, Fail> {
        let inner = &self.inner;
        if let Some(t) = inner.take_or_read()? {
            return Ok(Some(t));
        }
        let block = match until {
            Until::Now => return Ok(None),
            Until::Never => inner.opts.lease,
            Until::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(inner.opts.lease)
            }
        };
        Ok(inner.read_new(block)?.map(|entry| Taken {
            entry,
            deliveries: 1,
            previous: None,
        }))
    }

    /// Takes an entry under a lease: an expired lease's entry first, else a new one. `renew`: start the background renewals (not for a get that acks at once).
    fn lease(&self, until: Until, renew: bool) -> Result<RedisLease<T>, (Fail, Option<String>)> {
        let inner = &self.inner;
        let mut regrouped = false;
        loop {
            let taken = match self.next_entry(until) {
                // The server lost the group (restarted without persistence, or the stream was
                // deleted): create it again, once.
                Err(Fail::Error(e)) if !regrouped && e.to_string().contains("NOGROUP") => {
                    regrouped = true;
                    inner.ensure_group().map_err(|e| (Fail::Error(e), None))?;
                    continue;
                }
                other => other.map_err(|f| (f, None))?,
            };
            let Some(Taken {
                entry: e,
                deliveries,
                previous,
            }) = taken
            else {
                if matches!(until, Until::Now) {
                    return Err((Fail::Empty, None));
                }
                if let Until::At(t) = until
                    && Instant::now() >= t
                {
                    return Err((Fail::Empty, None));
                }
                continue;
            };
            let bytes = match e.item {
                Ok(bytes) => bytes,
                Err(why) => {
                    inner
                        .dead_letter(&e.id, &[], &why)
                        .map_err(|err| (Fail::Error(err), None))?;
                    return Err((Fail::Corrupt(why), Some(e.id)));
                }
            };
            if inner
                .opts
                .max_deliveries
                .is_some_and(|max| deliveries > max)
            {
                let why = format!("delivered {} times", deliveries - 1);
                inner
                    .dead_letter(&e.id, &bytes, &why)
                    .map_err(|err| (Fail::Error(err), None))?;
                continue;
            }
            match postcard::from_bytes::<T>(&bytes) {
                Ok(item) => {
                    let renewer = (renew && inner.opts.auto_renew)
                        .then(|| inner.renewer())
                        .flatten();
                    if let Some(r) = renewer {
                        r.register(&e.id);
                    }
                    let renewing = renewer.is_some();
                    return Ok(RedisLease {
                        inner: Arc::clone(inner),
                        id: e.id,
                        deliveries,
                        previous,
                        item: Some(item),
                        renewing,
                    });
                }
                Err(err) => {
                    let why = format!(
                        "{} bytes are not a {}: {err}",
                        bytes.len(),
                        std::any::type_name::<T>()
                    );
                    inner
                        .dead_letter(&e.id, &bytes, &why)
                        .map_err(|err| (Fail::Error(err), None))?;
                    return Err((Fail::Corrupt(why), Some(e.id)));
                }
            }
        }
    }

    /// Takes the next entry under a lease, waiting for one: first an entry whose lease ran
    /// out, then a new one.
    ///
    /// # Errors
    /// [`GetError::Deserialize`] for an entry that is not a `T` (it goes to the dead-letter
    /// stream); [`GetError::Failed`] if Redis failed (the next call connects again).
    pub fn get_leased(&self) -> Result<RedisLease<T>, GetError> {
        self.wait_lease(true)
    }

    fn wait_lease(&self, renew: bool) -> Result<RedisLease<T>, GetError> {
        self.lease(Until::Never, renew).map_err(|(f, _)| match f {
            Fail::Empty => GetError::Failed(Error::Op("internal: empty without waiting".into())),
            Fail::Corrupt(why) => GetError::Deserialize(why),
            Fail::Error(e) => GetError::Failed(e),
        })
    }

    /// As [`get_leased`](Self::get_leased), without waiting.
    ///
    /// # Errors
    /// [`TryGetError::Empty`], or as [`get_leased`](Self::get_leased).
    pub fn try_get_leased(&self) -> Result<RedisLease<T>, TryGetError> {
        self.try_lease(true)
    }

    fn try_lease(&self, renew: bool) -> Result<RedisLease<T>, TryGetError> {
        self.lease(Until::Now, renew).map_err(|(f, _)| match f {
            Fail::Empty => TryGetError::Empty,
            Fail::Corrupt(why) => TryGetError::Deserialize(why),
            Fail::Error(e) => TryGetError::Failed(e),
        })
    }

    /// As [`get_leased`](Self::get_leased), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get_leased`](Self::get_leased).
    pub fn get_leased_timeout(&self, timeout: Duration) -> Result<RedisLease<T>, GetTimeoutError> {
        self.lease_timeout(timeout, true)
    }

    fn lease_timeout(
        &self,
        timeout: Duration,
        renew: bool,
    ) -> Result<RedisLease<T>, GetTimeoutError> {
        let until = Instant::now()
            .checked_add(timeout)
            .map_or(Until::Never, Until::At);
        self.lease(until, renew).map_err(|(f, _)| match f {
            Fail::Empty => GetTimeoutError::Timeout,
            Fail::Corrupt(why) => GetTimeoutError::Deserialize(why),
            Fail::Error(e) => GetTimeoutError::Failed(e),
        })
    }

    /// Takes the next item and acks it at once (at most once from here on).
    ///
    /// # Errors
    /// As [`get_leased`](Self::get_leased).
    pub fn get(&self) -> Result<T, GetError> {
        self.wait_lease(false)?
            .ack()
            .map_err(|e| GetError::Failed(Error::from(e)))
    }

    /// As [`get`](Self::get), without waiting.
    ///
    /// # Errors
    /// As [`try_get_leased`](Self::try_get_leased).
    pub fn try_get(&self) -> Result<T, TryGetError> {
        self.try_lease(false)?
            .ack()
            .map_err(|e| TryGetError::Failed(Error::from(e)))
    }

    /// As [`get`](Self::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get_leased_timeout`](Self::get_leased_timeout).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.lease_timeout(timeout, false)?
            .ack()
            .map_err(|e| GetTimeoutError::Failed(Error::from(e)))
    }

    /// Entries in the stream, leased or waiting (`XLEN`).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn len(&self) -> Result<usize> {
        self.inner.with("XLEN", Duration::ZERO, |c| {
            redis::cmd("XLEN").arg(&self.inner.stream).query::<usize>(c)
        })
    }

    /// Whether the stream is empty.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl<T> RedisQueue<T> {
    /// Runs `f` on this handle's connection, replies awaited at most `wait` beyond the I/O
    /// timeout (for the pool, which keeps more than a stream).
    pub(super) fn with_conn<R>(
        &self,
        op: &'static str,
        wait: Duration,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R> {
        self.inner.with(op, wait, f)
    }

    pub(super) fn options(&self) -> &RedisOptions {
        &self.inner.opts
    }

    /// The stream's key.
    pub(super) fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// Appends already encoded items in one round trip (a pipeline of `XADD`s; the caller has
    /// checked their sizes).
    pub(super) fn put_encoded(&self, items: &[Vec<u8>]) -> Result<()> {
        self.inner.with("XADD", Duration::ZERO, |c| {
            let mut pipe = redis::pipe();
            for bytes in items {
                pipe.cmd("XADD")
                    .arg(&self.inner.stream)
                    .arg("*")
                    .arg(FIELD)
                    .arg(bytes)
                    .ignore();
            }
            pipe.query::<()>(c)
        })
    }

    /// The queue's name (its stream is `shmkit:q:<name>`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This handle's consumer name in the group (`<host>-<pid>-<random>`).
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }
}

impl<T> fmt::Debug for RedisQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("name", &self.inner.name)
            .field("consumer", &self.inner.consumer)
            .finish()
    }
}
