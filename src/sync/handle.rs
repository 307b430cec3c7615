//! What every synchronisation handle has: `Clone` (another handle to the same segment), a
//! `Debug` that shows its name, and serde as its name ([`serde_by_name!`](crate::shm)).

/// `Clone`, `Debug`, and serde as the segment's name, for a handle
/// `struct $ty { shared: Arc<Shared<_>> }` with `name()` and `open(name)`.
macro_rules! handle_common {
    ($ty:ident) => {
        impl Clone for $ty {
            fn clone(&self) -> Self {
                $ty {
                    shared: std::sync::Arc::clone(&self.shared),
                }
            }
        }
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.name())
                    .finish()
            }
        }
        impl crate::shm::by_name::Handle for $ty {
            fn hand_over(&self) -> std::sync::Arc<dyn crate::shm::by_name::HandOver> {
                self.shared.clone()
            }
        }
        crate::shm::serde_by_name!(impl[] $ty);
    };
}
pub(crate) use handle_common;
