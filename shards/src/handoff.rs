//! Handing an accepted connection from one shard to another: the socket's
//! file descriptor travels (a glommio stream is `!Send`), the session goes
//! on over the same TCP connection on the shard that owns its account.
//!
//! The accepting shard calls [`hand_off`], sends the [`HandedOffSocket`]
//! (with any bytes it has already read from the connection, which the
//! kernel will not deliver twice) in a mesh message, and the owning shard
//! rebuilds its stream with [`HandedOffSocket::into_stream`].

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use crate::net::TcpStream;

/// A connected TCP socket on its way to another shard: `Send`, owns its
/// descriptor (closed if dropped), bound to no shard's ring.
#[derive(Debug)]
pub struct HandedOffSocket(OwnedFd);

/// Detaches `stream` from this shard: duplicates its descriptor (close on
/// exec) and drops the shard's stream, which closes only the original
/// descriptor, so the connection stays open. On error the stream is dropped
/// and the connection closed. Per-stream settings of this shard's ring (read
/// and write timeouts) do not travel; socket options (`TCP_NODELAY`) do.
pub fn hand_off(stream: TcpStream) -> io::Result<HandedOffSocket> {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let fd = borrowed.try_clone_to_owned()?; // fcntl(F_DUPFD_CLOEXEC)
    drop(stream);
    Ok(HandedOffSocket(fd))
}

impl HandedOffSocket {
    /// The stream again, driven by the current shard's ring. Call it on the
    /// shard that takes the session over.
    pub fn into_stream(self) -> TcpStream {
        // SAFETY: the descriptor is an owned, connected TCP socket, and
        // into_raw_fd gives its ownership to the new stream.
        unsafe { TcpStream::from_raw_fd(self.0.into_raw_fd()) }
    }
}
