//! What a pool task is on the wire, and how a worker runs one.
//!
//! A task names its function the way [`Process`](crate::Process) does: as the offset of a
//! monomorphised trampoline from a fixed function, valid in every process running this
//! executable. A task carries a *chunk* of arguments and comes back as a chunk of outcomes, one
//! per argument, so `map` pays the messaging cost once per chunk:
//!
//! ```text
//! arguments: ( varint(len << 3 | tag) | bytes )*   tag ARG: postcard of A; UNSENDABLE: why
//! outcomes:  ( varint(len << 3 | tag) | bytes )*   tag OK: postcard of R; otherwise a message
//!
//! (A small item costs one byte of framing: `map` over numbers sends about 4 bytes per item.)
//! ```
//!
//! Every item is framed on its own, so an argument that does not deserialise, a panic, or a
//! result that does not serialise fails that item alone. Because the offset arrives through
//! shared memory, each task also carries a tag computed from the offset and a secret the worker
//! got in its environment ([`sign`]); a worker refuses a task whose tag does not match, so a
//! corrupted message is an error, never a jump to a wrong address.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::TaskError;
pub(crate) use crate::process::entry::TaskEntry;
use crate::process::entry::{self, EntryName, Key, conjure};
use crate::process::is_err;
use crate::shm::by_name::{self, SentOut};

/// Argument tags.
const ARG: u8 = 0;
const UNSENDABLE: u8 = 1;

/// Outcome tags.
const OK: u8 = 0;
const FAILED: u8 = 1;
const PANICKED: u8 = 2;
const SERIALIZE: u8 = 3;
const DESERIALIZE: u8 = 4;

/// A function of several arguments that a pool can run with a tuple of them
/// ([`Pool::starmap`](crate::Pool::starmap)): implemented for fn items and capture-less
/// closures of one to six arguments.
pub trait StarFn<Args>: Copy + Send + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with the tuple's fields as its arguments.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! star_fn {
    ($($a:ident),+) => {
        impl<F, R, $($a),+> StarFn<($($a,)+)> for F
        where
            F: Fn($($a),+) -> R + Copy + Send + 'static,
        {
            type Output = R;
            #[allow(non_snake_case)]
            fn call(&self, ($($a,)+): ($($a,)+)) -> R {
                self($($a),+)
            }
        }
    };
}
star_fn!(A);
star_fn!(A, B);
star_fn!(A, B, C);
star_fn!(A, B, C, D);
star_fn!(A, B, C, D, E);
star_fn!(A, B, C, D, E, G);

/// The trampoline `map`, `apply` and `imap` send: `F(A) -> R` over a chunk.
pub(crate) fn map_chunk<F, A, R>(input: &[u8], out: &mut Vec<u8>)
where
    F: Fn(A) -> R + Copy,
    A: DeserializeOwned,
    R: Serialize,
{
    let f: F = conjure();
    run_chunk(input, out, f);
}

/// The trampoline `starmap` sends: `F(a, b, ...) -> R` over a chunk of tuples.
pub(crate) fn star_chunk<F, Args, R>(input: &[u8], out: &mut Vec<u8>)
where
    F: StarFn<Args, Output = R>,
    Args: DeserializeOwned,
    R: Serialize,
{
    let f: F = conjure();
    run_chunk(input, out, |args| f.call(args));
}

/// The offset that names `map_chunk::<F, A, R>`.
pub(crate) fn map_entry<F, A, R>(_: F) -> i64
where
    F: Fn(A) -> R + Copy,
    A: DeserializeOwned,
    R: Serialize,
{
    offset(map_chunk::<F, A, R>)
}

/// The offset that names `star_chunk::<F, Args, R>`.
pub(crate) fn star_entry<F, Args, R>(_: F) -> i64
where
    F: StarFn<Args, Output = R>,
    Args: DeserializeOwned,
    R: Serialize,
{
    offset(star_chunk::<F, Args, R>)
}

fn offset(entry: TaskEntry) -> i64 {
    entry::offset(entry)
}

/// The trampoline at `offset`, if `tag` is its signature under `key` (see
/// [`entry`](crate::process::entry)).
pub(crate) fn resolve(offset: i64, tag: u64, key: &Key) -> Option<TaskEntry> {
    entry::resolve(EntryName { offset, tag }, key)
}

/// The signature of a task's function offset under the pool's secret.
pub(crate) fn sign(offset: i64, key: &Key) -> u64 {
    entry::sign::<TaskEntry>(offset, key)
}

/// Runs `call` on every argument of a chunk, appending one outcome each to `out`.
fn run_chunk<A, R>(input: &[u8], out: &mut Vec<u8>, call: impl Fn(A) -> R)
where
    A: DeserializeOwned,
    R: Serialize,
{
    for item in Items(input) {
        let (tag, bytes) = match item {
            Ok(item) => item,
            Err(why) => {
                push_message(out, DESERIALIZE, &why);
                return;
            }
        };
        if tag == UNSENDABLE {
            push_message(out, SERIALIZE, &String::from_utf8_lossy(bytes));
            continue;
        }
        let arg: A = match postcard::from_bytes(bytes) {
            Ok(a) => a,
            Err(e) => {
                let why = by_name::take_open_error().unwrap_or_else(|| e.to_string());
                push_message(
                    out,
                    DESERIALIZE,
                    &format!("the argument did not deserialise: {why}"),
                );
                continue;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| call(arg))) {
            Ok(result) => push_result(out, &result),
            Err(panic) => push_message(out, PANICKED, &panic_message(&*panic)),
        }
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}

/// Appends one framed item: `write`'s bytes behind a varint of their length and `tag`. The
/// frame starts as one byte, and grows (moving the item) only for items of 16 bytes or more.
fn push_framed<E>(
    out: &mut Vec<u8>,
    tag: u8,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.push(0);
    if let Err(e) = write(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 1;
    let mut head = [0u8; 10];
    let n = crate::queue::varint(((len as u64) << 3) | u64::from(tag), &mut head);
    if n > 1 {
        // Make room for the longer frame head: one move of the item.
        out.splice(start + 1..start + 1, head[1..n].iter().copied());
    }
    out[start..start + n].copy_from_slice(&head[..n]);
    Ok(())
}

pub(crate) fn push_message(out: &mut Vec<u8>, tag: u8, message: &str) {
    let _ = push_framed(out, tag, |out| {
        out.extend_from_slice(message.as_bytes());
        Ok::<(), ()>(())
    });
}

/// Appends `value` as a postcard item; a value that does not serialise becomes the error.
fn push_result<R: Serialize>(out: &mut Vec<u8>, result: &R) {
    if is_err(result) {
        push_message(out, FAILED, &error_text(result));
        return;
    }
    if let Err(e) = push_framed(out, OK, |out| serialize_into(result, out)) {
        push_message(
            out,
            SERIALIZE,
            &format!("the result did not serialise: {e}"),
        );
    }
}

/// The text of the `Err` inside `result`, rendered through serde_json.
fn error_text<R: Serialize>(result: &R) -> String {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("Err") {
            Some(serde_json::Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => "the task returned an error".into(),
        },
        _ => "the task returned an error".into(),
    }
}

/// A postcard flavor that appends to a borrowed `Vec`.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn serialize_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    postcard::serialize_with_flavor(value, Append(out)).map_err(|e| {
        // postcard drops the message of a Serialize impl's error; serde_json keeps it.
        match serde_json::to_writer(std::io::sink(), value) {
            Err(json) => json.to_string(),
            Ok(()) => e.to_string(),
        }
    })
}

/// Appends one argument to a chunk; one that does not serialise is sent as the reason, and
/// fails its item alone.
pub(crate) fn push_arg<A: Serialize>(out: &mut Vec<u8>, arg: &A) {
    if let Err(e) = push_framed(out, ARG, |out| serialize_into(arg, out)) {
        push_message(
            out,
            UNSENDABLE,
            &format!("the argument did not serialise: {e}"),
        );
    }
}

/// Encodes up to `size` items taken from `items` as one chunk of arguments: the chunk, and
/// how many items it holds (0 once `items` is exhausted). Every way a pool sends a chunk
/// (`map`, `map_async`, `imap`) goes through here.
///
/// Handles among the arguments are handed over to the worker that will run them (see
/// `shm::by_name`): the returned [`SentOut`] takes them back if the chunk is never sent.
pub(crate) fn encode_chunk<A: Serialize>(
    items: &mut (impl Iterator<Item = A> + ?Sized),
    size: usize,
) -> (Vec<u8>, usize, SentOut) {
    let ((args, n), sent) = by_name::capture(|| {
        let mut args = Vec::with_capacity(size.min(1 << 16) * 6);
        let mut n = 0;
        for a in items.take(size) {
            push_arg(&mut args, &a);
            n += 1;
        }
        by_name::send_noted();
        (args, n)
    });
    (args, n, sent)
}

/// Why the first argument of a chunk could not be sent, if it could not.
pub(crate) fn first_failure_of_args(args: &[u8]) -> Option<String> {
    match Items(args).next() {
        Some(Ok((UNSENDABLE, why))) => Some(String::from_utf8_lossy(why).into_owned()),
        _ => None,
    }
}

/// The framed items of a chunk: `(tag, bytes)`, or why the rest cannot be read.
pub(crate) struct Items<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Items<'a> {
    type Item = Result<(u8, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut head: u64 = 0;
        let mut used = 0;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            head |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                used = i + 1;
                break;
            }
        }
        let rest = &self.0[used..];
        let len = usize::try_from(head >> 3).unwrap_or(usize::MAX);
        if used == 0 || len > rest.len() {
            self.0 = &[];
            return Some(Err(format!(
                "a bad item frame ({len} bytes claimed, {} remaining)",
                rest.len()
            )));
        }
        let (bytes, rest) = rest.split_at(len);
        self.0 = rest;
        Some(Ok(((head & 7) as u8, bytes)))
    }
}

/// Why a worker refuses a task whose signature does not match.
pub(crate) const REFUSED: &str =
    "the task's function signature does not match: a corrupted message";

/// Refuses a whole task: one outcome saying so (the parent gives every item of the chunk the
/// same error, see [`decode_chunk`]).
pub(crate) fn push_refusal(out: &mut Vec<u8>) {
    push_message(out, DESERIALIZE, REFUSED);
}

/// The error text of the first outcome of a chunk, if it is not a value.
pub(crate) fn first_failure(outcomes: &[u8]) -> Option<String> {
    match Items(outcomes).next() {
        Some(Ok((OK, _))) => None,
        Some(Ok((tag, bytes))) => decode_outcome::<()>(tag, bytes)
            .err()
            .map(|e| e.to_string()),
        Some(Err(why)) => Some(why),
        None => Some("no outcome".into()),
    }
}

/// Decodes one outcome.
pub(crate) fn decode_outcome<R: DeserializeOwned>(tag: u8, bytes: &[u8]) -> Result<R, TaskError> {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match tag {
        OK => postcard::from_bytes(bytes)
            .map_err(|e| TaskError::Deserialize(format!("the result did not deserialise: {e}"))),
        FAILED => Err(TaskError::Failed(text())),
        PANICKED => Err(TaskError::Panicked(text())),
        SERIALIZE => Err(TaskError::Serialize(text())),
        DESERIALIZE => Err(TaskError::Deserialize(text())),
        other => Err(TaskError::Deserialize(format!(
            "unknown outcome tag {other}"
        ))),
    }
}

/// As [`decode_outcome`], for a task whose function returns `Result<R, E>`: its value is the
/// `R` inside the `Ok` (an `Err` came back as [`TaskError::Failed`] already).
pub(crate) fn decode_outcome_ok<R: DeserializeOwned>(
    tag: u8,
    bytes: &[u8],
) -> Result<R, TaskError> {
    match (tag, bytes.split_first()) {
        // postcard writes a `Result`'s variant first: 0 for `Ok`.
        (OK, Some((0, value))) => postcard::from_bytes(value)
            .map_err(|e| TaskError::Deserialize(format!("the result did not deserialise: {e}"))),
        (OK, _) => Err(TaskError::Deserialize(
            "the result of a fallible task is not an Ok".into(),
        )),
        _ => decode_outcome(tag, bytes),
    }
}

/// How an outcome becomes a value: [`decode_outcome`], or [`decode_outcome_ok`] for the
/// `try_` calls of fallible functions.
pub(crate) type DecodeOutcome<R> = fn(u8, &[u8]) -> Result<R, TaskError>;

/// Decodes a chunk of outcomes, handing `item` one result per argument (`expected` of them;
/// a short chunk repeats its last error, as a refused task has one outcome for all its items).
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    bytes: &[u8],
    expected: usize,
    item: impl FnMut(Result<R, TaskError>),
) {
    decode_chunk_with(bytes, expected, decode_outcome::<R>, item);
}

/// As [`decode_chunk`], decoding each outcome with `decode`.
pub(crate) fn decode_chunk_with<R>(
    bytes: &[u8],
    expected: usize,
    decode: DecodeOutcome<R>,
    mut item: impl FnMut(Result<R, TaskError>),
) {
    let mut seen = 0;
    let mut last_err = None;
    for frame in Items(bytes).take(expected) {
        seen += 1;
        let r = match frame {
            Ok((tag, bytes)) => decode(tag, bytes),
            Err(why) => Err(TaskError::Deserialize(why)),
        };
        if let Err(e) = &r {
            last_err = Some(e.clone());
        }
        item(r);
    }
    let fill = last_err.unwrap_or_else(|| {
        TaskError::Deserialize("the worker sent fewer results than the task had arguments".into())
    });
    for _ in seen..expected {
        item(Err(fill.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    fn halve(x: i32) -> Result<i32, String> {
        if x % 2 == 0 {
            Ok(x / 2)
        } else {
            Err(format!("{x} is odd"))
        }
    }

    fn run<A: Serialize>(entry: i64, args: &[A]) -> Vec<u8> {
        let mut input = Vec::new();
        for a in args {
            push_arg(&mut input, a);
        }
        let key = [0x1234, 5];
        let f = resolve(entry, sign(entry, &key), &key).expect("signed");
        let mut out = Vec::new();
        f(&input, &mut out);
        out
    }

    #[test]
    fn a_chunk_round_trips_through_its_trampoline() {
        let out = run(map_entry(square), &[1u64, 2, 3]);
        let mut got = Vec::new();
        decode_chunk::<u64>(&out, 3, |r| got.push(r));
        assert_eq!(
            got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(),
            [1, 4, 9]
        );
    }

    #[test]
    fn err_and_panic_fail_their_item_only() {
        let out = run(map_entry(halve), &[4, 3]);
        let mut got = Vec::new();
        decode_chunk::<Result<i32, String>>(&out, 2, |r| got.push(r));
        assert_eq!(got[0].as_ref().unwrap(), &Ok(2));
        assert!(matches!(&got[1], Err(TaskError::Failed(m)) if m == "3 is odd"));

        fn boom(x: u8) -> u8 {
            assert!(x != 1, "one is not allowed");
            x
        }
        let out = run(map_entry(boom), &[0u8, 1, 2]);
        let mut got = Vec::new();
        decode_chunk::<u8>(&out, 3, |r| got.push(r));
        assert_eq!(got[0].as_ref().unwrap(), &0);
        assert!(matches!(&got[1], Err(TaskError::Panicked(m)) if m.contains("one is not allowed")));
        assert_eq!(got[2].as_ref().unwrap(), &2);
    }

    #[test]
    fn a_wrong_signature_or_garbage_is_refused_not_run() {
        let entry = map_entry(square);
        let key = [1, 1];
        assert!(resolve(entry, sign(entry, &key) ^ 1, &key).is_none());
        assert!(resolve(entry + 8, sign(entry, &key), &key).is_none());
        let mut got = Vec::<Result<u64, TaskError>>::new();
        decode_chunk(&[0, 200, 0, 0, 0, 1], 2, |r| got.push(r));
        assert!(
            got.iter()
                .all(|r| matches!(r, Err(TaskError::Deserialize(_))))
        );
    }
}
