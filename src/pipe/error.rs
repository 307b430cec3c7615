//! The errors of a pipe's operations, one per call: `send`, and `recv`, `try_recv`,
//! `recv_timeout` (and their byte forms), each with only the variants its call can return.

use std::fmt;

use crate::error::Error;

/// Why [`Connection::send`](crate::Connection::send) sent nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The other end is closed or its process has died, this end is closed, or this end
    /// cannot send (the receiving end of a one-way pipe): Python's `BrokenPipeError`.
    #[error("the pipe is broken: the other end is closed or gone, or this end cannot send")]
    BrokenPipe,
    /// The value could not be serialised; nothing was sent.
    #[error("the value could not be serialised (nothing was sent): {0}")]
    Serialize(String),
    /// An OS error, or a pipe found corrupt.
    #[error("send failed: {0}")]
    Failed(#[source] Error),
}

/// What every receive can report, whatever its kind of wait.
#[derive(Debug)]
pub(crate) enum RecvFail {
    Eof,
    Closed,
    Deserialize(String),
    Failed(Error),
    /// No message at the deadline (or, for a `try_`, now).
    NotYet,
}

macro_rules! recv_errors {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident: $msg:literal )? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )?
            /// End of file: nothing is left to read and the other end is closed or its process
            /// has died (Python's `EOFError`).
            Eof,
            /// This end is closed, or cannot receive (the sending end of a one-way pipe).
            Closed,
            /// The message's bytes are not a value of the asked-for type. The message is
            /// consumed; the pipe stays usable.
            Deserialize(String),
            /// An OS error, or a pipe found corrupt.
            Failed(Error),
        }

        impl $name {
            #[allow(unused_variables)]
            pub(crate) fn from_fail(f: RecvFail) -> Self {
                match f {
                    RecvFail::Eof => $name::Eof,
                    RecvFail::Closed => $name::Closed,
                    RecvFail::Deserialize(s) => $name::Deserialize(s),
                    RecvFail::Failed(e) => $name::Failed(e),
                    $( RecvFail::NotYet => $name::$variant, )?
                    #[allow(unreachable_patterns)]
                    RecvFail::NotYet => $name::Failed(Error::Op(
                        "internal error: a blocking receive reported a timeout".into(),
                    )),
                }
            }

            /// Whether this is end-of-file.
            pub fn is_eof(&self) -> bool {
                matches!(self, $name::Eof)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($msg), )?
                    $name::Eof => f.write_str(
                        "end of file: nothing is left to read and the other end is closed or gone",
                    ),
                    $name::Closed => {
                        f.write_str("this end of the pipe is closed or cannot receive")
                    }
                    $name::Deserialize(reason) => write!(
                        f,
                        "a message could not be deserialised as the asked-for type (it was \
                         consumed): {reason}"
                    ),
                    $name::Failed(error) => write!(f, "receive failed: {error}"),
                }
            }
        }

        crate::error::failed_op_error!($name);
    )*};
}

recv_errors! {
    /// Why [`Connection::recv`](crate::Connection::recv) returned no message.
    RecvError {}
    /// Why [`Connection::try_recv`](crate::Connection::try_recv) returned no message.
    TryRecvError {
        /// No message has arrived.
        Empty: "no message has arrived"
    }
    /// Why [`Connection::recv_timeout`](crate::Connection::recv_timeout) returned no message.
    RecvTimeoutError {
        /// No message arrived before the deadline.
        Timeout: "no message arrived before the deadline"
    }
}

crate::error::failed_into_error!(SendError);
