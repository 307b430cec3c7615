//! Tasks named across hosts: what `#[shmkit::task]` registers, and how a name is found again.
//!
//! The shared-memory pool names a function by the offset of its trampoline, valid only inside
//! one executable. A worker on another host may run another build, so a [`RedisPool`] names a
//! function by a string instead (`module_path!()::fn_name`, or the attribute's `name = "..."`)
//! and sends a fingerprint of its argument and result types beside it. The attribute collects
//! every registration at link time (`inventory`); nothing runs a function that is not
//! registered, and a name whose fingerprint differs is refused, never run.
//!
//! [`RedisPool`]: super::RedisPool

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pool::StarFn;
use crate::pool::task::{TaskEntry, map_chunk, star_chunk};

/// One function registered by `#[shmkit::task]`. Not public API: the attribute builds it.
#[doc(hidden)]
pub struct TaskDef {
    name: &'static str,
    star: bool,
    type_id: fn() -> TypeId,
    run: TaskEntry,
    fingerprint: fn() -> u64,
}

inventory::collect!(TaskDef);

impl std::fmt::Debug for TaskDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskDef")
            .field("name", &self.name)
            .field("star", &self.star)
            .finish()
    }
}

impl TaskDef {
    /// A function of one argument, for `map`, `imap` and `apply`.
    pub const fn map<F, A, R>(name: &'static str, f: F) -> TaskDef
    where
        F: Fn(A) -> R + Copy + 'static,
        A: DeserializeOwned,
        R: Serialize,
    {
        let _ = f;
        TaskDef {
            name,
            star: false,
            type_id: TypeId::of::<F>,
            run: map_chunk::<F, A, R>,
            fingerprint: fingerprint::<A, R>,
        }
    }

    /// A function of several arguments, for `starmap` and `apply_star`.
    pub const fn star<F, Args, R>(name: &'static str, f: F) -> TaskDef
    where
        F: StarFn<Args, Output = R>,
        Args: DeserializeOwned,
        R: Serialize,
    {
        let _ = f;
        TaskDef {
            name,
            star: true,
            type_id: TypeId::of::<F>,
            run: star_chunk::<F, Args, R>,
            fingerprint: fingerprint::<Args, R>,
        }
    }
}

/// A stable hash (FNV-1a, 64 bits) of the argument and result type names. It changes when
/// either type's name or path changes, which is what tells two builds apart; two types with
/// one name and different layouts are not told apart (postcard then fails to decode).
pub(crate) fn fingerprint<A, R>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let names = [
        std::any::type_name::<A>(),
        " -> ",
        std::any::type_name::<R>(),
    ];
    for b in names.iter().flat_map(|s| s.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What a caller sends to name a task.
#[derive(Debug, Clone)]
pub(crate) struct TaskName {
    pub(crate) name: &'static str,
    pub(crate) star: bool,
    pub(crate) fingerprint: u64,
}

struct Registry {
    by_type: HashMap<(TypeId, bool), &'static TaskDef>,
    /// A name registered twice (for the same kind) maps to every definition.
    by_name: HashMap<(&'static str, bool), Vec<&'static TaskDef>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry {
            by_type: HashMap::new(),
            by_name: HashMap::new(),
        };
        for def in inventory::iter::<TaskDef> {
            r.by_type.insert(((def.type_id)(), def.star), def);
            r.by_name.entry((def.name, def.star)).or_default().push(def);
        }
        r
    })
}

/// The name of `F` in the caller's process, if `#[shmkit::task]` registered it.
pub(crate) fn name_of<F: 'static>(star: bool) -> Result<TaskName, String> {
    let kind = if star {
        "several arguments"
    } else {
        "one argument"
    };
    match registry().by_type.get(&(TypeId::of::<F>(), star)) {
        Some(def) => Ok(TaskName {
            name: def.name,
            star,
            fingerprint: (def.fingerprint)(),
        }),
        None => Err(format!(
            "{} is not a #[shmkit::task] of {kind}: a pool on other hosts runs only functions \
             registered by name (closures cannot be)",
            std::any::type_name::<F>()
        )),
    }
}

/// The function a worker runs for a task named `name`, or why it runs nothing.
pub(crate) fn find(name: &str, star: bool, fingerprint: u64) -> Result<TaskEntry, String> {
    let host = crate::sys::hostname();
    let pid = crate::sys::current_pid();
    let defs = registry()
        .by_name
        .get(&(name, star))
        .map(Vec::as_slice)
        .unwrap_or_default();
    match defs {
        [] => Err(format!(
            "the worker (pid {pid} on {host}) has no #[shmkit::task] named {name:?}{}: it runs \
             another program or build",
            if star { " of several arguments" } else { "" }
        )),
        [def] if (def.fingerprint)() == fingerprint => Ok(def.run),
        [_] => Err(format!(
            "the worker (pid {pid} on {host}) has a task named {name:?} with other argument or \
             result types than the caller's (fingerprint differs): it runs another build"
        )),
        _ => Err(format!(
            "the worker (pid {pid} on {host}) has several functions registered as {name:?}: \
             give them distinct #[shmkit::task(name = \"...\")]"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u32 {
        x * 2
    }
    fn triple(x: u32) -> u32 {
        x * 3
    }
    fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    inventory::submit! { TaskDef::map("unit::double", double) }
    inventory::submit! { TaskDef::map("unit::twice", double) }
    inventory::submit! { TaskDef::map("unit::twice", triple) }
    inventory::submit! { TaskDef::star::<_, (u32, u32), u32>("unit::add", add) }

    fn run<A: Serialize>(entry: TaskEntry, arg: A) -> u32 {
        let mut args = Vec::new();
        crate::pool::task::push_arg(&mut args, &arg);
        let mut out = Vec::new();
        entry(&args, &mut out);
        let mut got = None;
        crate::pool::task::decode_chunk::<u32>(&out, 1, |r| got = r.ok());
        got.expect("a value")
    }

    #[test]
    fn names_fingerprints_and_duplicates() {
        let name = name_of::<fn(u32) -> u32>(false);
        assert!(
            name.is_err(),
            "a fn pointer type is not a registered fn item"
        );
        let fp = fingerprint::<u32, u32>();
        assert_eq!(run(find("unit::double", false, fp).unwrap(), 21u32), 42);
        let e = find("unit::double", false, fp ^ 1).unwrap_err();
        assert!(e.contains("other argument or result types"), "{e}");
        let e = find("unit::nope", false, fp).unwrap_err();
        assert!(e.contains("has no #[shmkit::task] named"), "{e}");
        let e = find("unit::double", true, fp).unwrap_err();
        assert!(e.contains("of several arguments"), "{e}");
        let e = find("unit::twice", false, fp).unwrap_err();
        assert!(e.contains("several functions registered"), "{e}");
        let star = find("unit::add", true, fingerprint::<(u32, u32), u32>()).unwrap();
        assert_eq!(run(star, (40u32, 2u32)), 42);
    }

    #[test]
    fn a_registered_fn_item_is_found_by_its_type() {
        fn of<F: 'static>(_: F) -> Result<TaskName, String> {
            name_of::<F>(false)
        }
        let n = of(triple).unwrap();
        assert_eq!((n.name, n.star), ("unit::twice", false));
        assert_eq!(n.fingerprint, fingerprint::<u32, u32>());
        assert!(of(|x: u32| x).is_err(), "a closure is not registered");
    }
}
