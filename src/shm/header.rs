//! The header every shmkit segment starts with, and its validation.
//!
//! Layout of a segment (offsets in bytes):
//!
//! ```text
//! 0     state word (AtomicU32): 0 while the creator builds the segment, READY once published
//! 8     HeaderFields: magic, version, kind, element type fingerprint, length, layout, creator
//! 256   control block of the object (a cell's lock: 16 bytes; a queue's state: 128 bytes)
//! ...   payload: inline after the control block for a single value, from the next page for
//!       arrays and queue rings
//! ```
//!
//! The creator writes the fields, then the control block and payload, and publishes the state
//! word last with a Release store. An opener copies the fields out of shared memory once (a
//! hostile peer could change them under it), checks every one of them against what it expects
//! and against the segment's real size, and from then on uses only its own validated copy.

use std::sync::atomic::AtomicU32;

use bytemuck::{Pod, Zeroable};

use super::fingerprint::{TypeInfo, fnv1a};
pub use super::kind::Kind;
use crate::error::Error;

/// The first eight bytes of every header: `SHMKIT` and two version-independent marker bytes.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMKIT\x00\x7f");
/// The layout version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 5;
/// Set in a header's `transit` word when the owner's last handle went while hand-overs were in
/// flight: the name was left for them, and the receiver that claims the last one owns it.
pub(crate) const ORPHANED: u32 = 1 << 31;
/// The state word's value once the segment is published.
pub(crate) const READY: u32 = 0x5245_4459; // "READ" "Y"
/// Bytes reserved for the header at the start of a segment.
pub(crate) const HEADER_SIZE: u64 = 256;
/// Where an object's control block (its lock, ...) starts.
pub(crate) const CONTROL_OFFSET: u64 = HEADER_SIZE;
/// The room for a cell's control block (its 16-byte lock). A small value follows it in the same
/// 64-byte cache line, so a contended lock and its data move between cores as one line.
pub(crate) const CELL_CONTROL_SIZE: u64 = 16;
/// The longest element type name kept in the header (longer names are cut; the hash covers all).
const TYPE_NAME_CAP: usize = 96;

/// The header's fields, as stored (after the state word). Plain data: a copy is taken before
/// anything in it is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct HeaderFields {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) elem_size: u64,
    pub(crate) elem_align: u64,
    pub(crate) type_hash: u64,
    pub(crate) len: u64,
    pub(crate) payload_offset: u64,
    pub(crate) total_size: u64,
    pub(crate) creator_pid: u32,
    pub(crate) type_name_len: u32,
    pub(crate) creator_start: u64,
    /// The creator's pid namespace (0 if unknown): lock owners are named by tid, which means
    /// something else in another namespace.
    pub(crate) pid_namespace: u64,
    pub(crate) type_name: [u8; TYPE_NAME_CAP],
    pub(crate) checksum: u64,
}

/// The header as it lies at offset 0 of a segment.
#[repr(C)]
pub(crate) struct Header {
    /// SYNC: publish-header. 0 while being built, [`READY`] once published (Release/Acquire).
    pub(crate) state: AtomicU32,
    /// Hand-overs in flight (handles sent to another process and not yet opened there), and
    /// [`ORPHANED`] once the owner let go while some were: see `Segment::claim`.
    pub(crate) transit: AtomicU32,
    pub(crate) fields: HeaderFields,
}

const _: () = assert!(std::mem::size_of::<HeaderFields>() == 192);
const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);
const _: () = assert!(std::mem::align_of::<Header>() == 8);

/// The layout of a segment: where the payload starts and how big the segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) payload_offset: u64,
    pub(crate) total_size: u64,
}

impl Layout {
    /// The layout of an object of `kind` holding `len` elements of `ty`, or `None` if it
    /// overflows. Single values sit right after the control block (a `Value<f64>` is one page);
    /// arrays start on the page after the header page.
    pub(crate) fn of(kind: Kind, ty: &TypeInfo, len: u64, page: u64) -> Option<Layout> {
        let align = ty.align.max(8);
        let payload_offset = match kind {
            Kind::Value | Kind::RawValue => align_up(CONTROL_OFFSET + CELL_CONTROL_SIZE, align)?,
            // Everything else keeps its state in the control block: one page, and an array or a
            // ring after it.
            _ => align_up(page, align)?,
        };
        // A queue's `len` counts bytes of its ring (or of its spilled item), whatever `ty` is.
        let elem_size = match kind {
            Kind::Queue | Kind::JoinableQueue | Kind::Spill => 1,
            _ => ty.size,
        };
        let end = payload_offset.checked_add(elem_size.checked_mul(len)?)?;
        let total_size = align_up(end, page)?;
        // Keep sizes inside what mmap and isize-based pointer arithmetic accept.
        (total_size <= isize::MAX as u64).then_some(Layout {
            payload_offset,
            total_size,
        })
    }
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// What the creator of a segment writes into its header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) ty: TypeInfo,
    pub(crate) len: u64,
    pub(crate) layout: Layout,
}

impl Spec {
    pub(crate) fn new(kind: Kind, ty: TypeInfo, len: u64, page: u64) -> Result<Spec, Error> {
        let layout = Layout::of(kind, &ty, len, page).ok_or_else(|| Error::TooLarge {
            what: format!("a {kind} of {len} × {}", ty.describe()),
        })?;
        Ok(Spec {
            kind,
            ty,
            len,
            layout,
        })
    }

    pub(crate) fn fields(
        &self,
        creator_pid: u32,
        creator_start: u64,
        pid_namespace: u64,
    ) -> HeaderFields {
        let mut type_name = [0u8; TYPE_NAME_CAP];
        let name = self.ty.name.as_bytes();
        let n = name.len().min(TYPE_NAME_CAP);
        type_name[..n].copy_from_slice(&name[..n]);
        let mut f = HeaderFields {
            magic: MAGIC,
            version: FORMAT_VERSION,
            kind: self.kind as u32,
            elem_size: self.ty.size,
            elem_align: self.ty.align,
            type_hash: self.ty.hash(),
            len: self.len,
            payload_offset: self.layout.payload_offset,
            total_size: self.layout.total_size,
            creator_pid,
            type_name_len: n as u32,
            creator_start,
            pid_namespace,
            type_name,
            checksum: 0,
        };
        f.checksum = f.compute_checksum();
        f
    }
}

/// What an opener expects to find.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub(crate) kind: Kind,
    pub(crate) ty: TypeInfo,
    /// `None`: any length (then the header's length is used, after checking it fits).
    pub(crate) len: Option<u64>,
}

impl HeaderFields {
    fn compute_checksum(&self) -> u64 {
        let bytes = bytemuck::bytes_of(self);
        fnv1a(&bytes[..bytes.len() - 8])
    }

    /// Refuses a segment created in another pid namespace than `ours` (when both are known).
    pub(crate) fn check_pid_namespace(&self, name: &str, ours: u64) -> Result<(), Error> {
        if self.pid_namespace != 0 && ours != 0 && self.pid_namespace != ours {
            return Err(Error::ForeignPidNamespace {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The stored type name, for error messages.
    fn type_description(&self) -> String {
        let n = (self.type_name_len as usize).min(TYPE_NAME_CAP);
        let name = String::from_utf8_lossy(&self.type_name[..n]);
        format!(
            "{name} ({} bytes, align {})",
            self.elem_size, self.elem_align
        )
    }

    /// Checks a copied-out header against what the opener expects and the segment's real size.
    /// Returns the (validated) layout and element count.
    pub(crate) fn validate(
        &self,
        name: &str,
        expect: &Expect,
        file_size: u64,
        page: u64,
    ) -> Result<(Layout, u64), Error> {
        let name = name.to_owned();
        if self.magic != MAGIC {
            return Err(Error::BadMagic { name });
        }
        if self.version != FORMAT_VERSION {
            return Err(Error::VersionMismatch {
                name,
                expected: FORMAT_VERSION,
                found: self.version,
            });
        }
        if self.checksum != self.compute_checksum() {
            return Err(Error::Corrupt {
                name,
                reason: "header checksum does not match".into(),
            });
        }
        if self.kind != expect.kind as u32 {
            return Err(Error::KindMismatch {
                name,
                expected: expect.kind,
                found: Kind::describe(self.kind),
            });
        }
        let ty = &expect.ty;
        if self.elem_size != ty.size || self.elem_align != ty.align || self.type_hash != ty.hash() {
            return Err(Error::TypeMismatch {
                name,
                expected: ty.describe(),
                found: self.type_description(),
            });
        }
        if let Some(len) = expect.len
            && self.len != len
        {
            return Err(Error::LengthMismatch {
                name,
                expected: len,
                found: self.len,
            });
        }
        let Some(layout) = Layout::of(expect.kind, ty, self.len, page) else {
            return Err(Error::Corrupt {
                name,
                reason: format!("length {} overflows", self.len),
            });
        };
        if self.payload_offset != layout.payload_offset || self.total_size != layout.total_size {
            return Err(Error::Corrupt {
                name,
                reason: format!(
                    "layout (payload at {}, {} bytes) is not the one for {} elements (payload at {}, {} bytes)",
                    self.payload_offset,
                    self.total_size,
                    self.len,
                    layout.payload_offset,
                    layout.total_size
                ),
            });
        }
        if file_size < layout.total_size {
            return Err(Error::Truncated {
                name,
                actual: file_size,
                needed: layout.total_size,
            });
        }
        Ok((layout, self.len))
    }
}

/// For the fuzz harness: make `bytes` (a segment's contents) carry a published state word and a
/// header checksum that matches its fields, whatever else they say.
pub(crate) fn fix_header_for_fuzzing(bytes: &mut [u8]) {
    let start = std::mem::offset_of!(Header, fields);
    let end = start + std::mem::size_of::<HeaderFields>();
    if bytes.len() < end {
        return;
    }
    bytes[..4].copy_from_slice(&READY.to_ne_bytes());
    let mut fields: HeaderFields = bytemuck::pod_read_unaligned(&bytes[start..end]);
    fields.checksum = fields.compute_checksum();
    bytes[start..end].copy_from_slice(bytemuck::bytes_of(&fields));
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn spec(kind: Kind, len: u64) -> Spec {
        Spec::new(kind, TypeInfo::of::<f64>(), len, PAGE).unwrap()
    }

    fn expect(kind: Kind, len: Option<u64>) -> Expect {
        Expect {
            kind,
            ty: TypeInfo::of::<f64>(),
            len,
        }
    }

    #[test]
    fn value_of_f64_is_one_page_and_array_is_header_page_plus_data() {
        assert_eq!(
            spec(Kind::Value, 1).layout,
            Layout {
                payload_offset: 272,
                total_size: PAGE
            }
        );
        let a = Spec::new(Kind::Array, TypeInfo::of::<i32>(), 1 << 20, PAGE).unwrap();
        assert_eq!(
            a.layout,
            Layout {
                payload_offset: PAGE,
                total_size: PAGE + 4 * (1 << 20)
            }
        );
        let small = Spec::new(Kind::Array, TypeInfo::of::<u8>(), 1, PAGE).unwrap();
        assert_eq!(small.layout.total_size, 2 * PAGE);
        assert_eq!(
            Spec::new(Kind::Array, TypeInfo::of::<u8>(), 0, PAGE)
                .unwrap()
                .layout
                .total_size,
            PAGE
        );
    }

    #[test]
    fn oversized_objects_are_refused() {
        assert!(matches!(
            Spec::new(Kind::Array, TypeInfo::of::<u64>(), u64::MAX / 4, PAGE),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn a_fresh_header_validates() {
        let s = spec(Kind::Array, 10);
        let f = s.fields(1, 2, 3);
        assert_eq!(
            f.validate("n", &expect(Kind::Array, None), s.layout.total_size, PAGE)
                .unwrap(),
            (s.layout, 10)
        );
        assert!(
            f.validate(
                "n",
                &expect(Kind::Array, Some(10)),
                s.layout.total_size,
                PAGE
            )
            .is_ok()
        );
    }

    #[test]
    fn each_field_is_checked_with_its_own_error() {
        let s = spec(Kind::Array, 10);
        let good = s.fields(1, 2, 3);
        let size = s.layout.total_size;
        let check = |f: HeaderFields, e: Expect, size| f.validate("n", &e, size, PAGE).unwrap_err();
        let ea = expect(Kind::Array, None);

        let mut f = good;
        f.magic ^= 1;
        assert!(matches!(check(f, ea, size), Error::BadMagic { .. }));

        let mut f = good;
        f.version = 99;
        f.checksum = f.compute_checksum();
        assert!(matches!(
            check(f, ea, size),
            Error::VersionMismatch { found: 99, .. }
        ));

        let mut f = good;
        f.len = 11; // without fixing the checksum
        assert!(matches!(check(f, ea, size), Error::Corrupt { .. }));

        assert!(matches!(
            check(good, expect(Kind::Value, None), size),
            Error::KindMismatch {
                expected: Kind::Value,
                ..
            }
        ));

        let e = Expect {
            kind: Kind::Array,
            ty: TypeInfo::of::<i64>(),
            len: None,
        };
        let err = check(good, e, size);
        assert!(
            matches!(&err, Error::TypeMismatch { expected, found, .. } if expected.starts_with("i64") && found.starts_with("f64")),
            "{err}"
        );

        assert!(matches!(
            check(good, expect(Kind::Array, Some(9)), size),
            Error::LengthMismatch {
                expected: 9,
                found: 10,
                ..
            }
        ));

        let mut f = good;
        f.total_size += PAGE;
        f.checksum = f.compute_checksum();
        assert!(matches!(check(f, ea, size + PAGE), Error::Corrupt { .. }));

        assert!(matches!(check(good, ea, size - 1), Error::Truncated { .. }));
    }

    #[test]
    fn another_pid_namespace_is_refused_when_both_are_known() {
        let f = spec(Kind::Value, 1).fields(1, 2, 3);
        assert!(f.check_pid_namespace("n", 3).is_ok());
        assert!(f.check_pid_namespace("n", 0).is_ok());
        assert!(matches!(
            f.check_pid_namespace("n", 4),
            Err(Error::ForeignPidNamespace { .. })
        ));
        let unknown = spec(Kind::Value, 1).fields(1, 2, 0);
        assert!(unknown.check_pid_namespace("n", 4).is_ok());
    }

    #[test]
    fn unknown_kinds_are_named_by_number() {
        let mut f = spec(Kind::Array, 1).fields(1, 2, 3);
        f.kind = 77;
        f.checksum = f.compute_checksum();
        let err = f
            .validate("n", &expect(Kind::Array, None), 1 << 20, PAGE)
            .unwrap_err();
        assert!(err.to_string().contains("#77"), "{err}");
    }

    #[test]
    fn long_type_names_are_cut_but_hashed_in_full() {
        let ty = TypeInfo {
            size: 8,
            align: 8,
            name: "x".repeat(300).leak(),
            layout: "",
        };
        let s = Spec::new(Kind::Value, ty, 1, PAGE).unwrap();
        let f = s.fields(1, 2, 3);
        assert_eq!(f.type_name_len as usize, TYPE_NAME_CAP);
        let other = TypeInfo {
            name: "x".repeat(299).leak(),
            ..ty
        };
        let e = Expect {
            kind: Kind::Value,
            ty: other,
            len: None,
        };
        assert!(matches!(
            f.validate("n", &e, PAGE, PAGE),
            Err(Error::TypeMismatch { .. })
        ));
    }

    #[test]
    fn a_control_block_with_other_fields_is_another_type() {
        let ours = TypeInfo {
            size: 16,
            align: 8,
            name: "shmkit::State",
            layout: "State { a: AtomicU64; b: AtomicU64; }",
        };
        let s = Spec::new(Kind::Lock, ours, 0, PAGE).unwrap();
        let f = s.fields(1, 2, 3);
        let reordered = TypeInfo {
            layout: "State { b: AtomicU64; a: AtomicU64; }",
            ..ours
        };
        let e = |ty| Expect {
            kind: Kind::Lock,
            ty,
            len: None,
        };
        assert!(f.validate("n", &e(ours), PAGE, PAGE).is_ok());
        assert!(matches!(
            f.validate("n", &e(reordered), PAGE, PAGE),
            Err(Error::TypeMismatch { .. })
        ));
    }
}
