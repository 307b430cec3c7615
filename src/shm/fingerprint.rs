//! Fingerprints: what identifies a type in a segment header, and the hash behind it and the
//! header checksum.

/// The fingerprint of an element (or control block) type: its size, its alignment, its name,
/// and, for a control block, a description of its fields.
///
/// Size and alignment are checked on their own and hashed with the rest, so a type that changed
/// shape is refused even if its name did not. The name comes from [`std::any::type_name`],
/// whose text the compiler may change between versions: two builds of the same program made
/// by different compiler versions may then refuse each other's segments with
/// [`Error::TypeMismatch`](crate::Error::TypeMismatch), naming both types. That errs on the safe side: a mismatch can
/// refuse a segment that would have worked, never accept one of another type. Processes that
/// share a segment normally run one build of one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeInfo {
    pub(crate) size: u64,
    pub(crate) align: u64,
    pub(crate) name: &'static str,
    /// The fields of a control block (`shm_shared!` writes it); empty for payload types,
    /// whose layout Rust does not describe (a `Pod` element or a serde item).
    pub(crate) layout: &'static str,
}

impl TypeInfo {
    /// The fingerprint of a payload type.
    pub(crate) fn of<T>() -> TypeInfo {
        TypeInfo {
            size: std::mem::size_of::<T>() as u64,
            align: std::mem::align_of::<T>() as u64,
            name: std::any::type_name::<T>(),
            layout: "",
        }
    }

    /// The fingerprint of a control block, with its field list.
    pub(crate) fn of_control<C: super::ShmShared>() -> TypeInfo {
        TypeInfo {
            layout: C::LAYOUT,
            ..TypeInfo::of::<C>()
        }
    }

    /// The fingerprint of a control block `C` through which values of `A` and `B` travel (a
    /// pipe's state, typed by what each direction carries).
    pub(crate) fn of_channel<C: super::ShmShared, A, B>() -> TypeInfo {
        TypeInfo {
            name: std::any::type_name::<(C, A, B)>(),
            ..TypeInfo::of_control::<C>()
        }
    }

    pub(crate) fn hash(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.name.len() + self.layout.len() + 17);
        bytes.extend_from_slice(self.name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&self.size.to_le_bytes());
        bytes.extend_from_slice(&self.align.to_le_bytes());
        bytes.extend_from_slice(self.layout.as_bytes());
        fnv1a(&bytes)
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} ({} bytes, align {})", self.name, self.size, self.align)
    }
}

/// 64-bit FNV-1a: a small hash whose value is fixed by its definition, the same in every build,
/// version and platform (std's `DefaultHasher` promises none of that). It fingerprints types
/// and checksums the header against torn or garbage bytes; it is not meant to stop an
/// adversary, who could write a valid header anyway (see the threat model in the README).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
