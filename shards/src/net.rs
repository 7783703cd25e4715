//! Sockets on the shard's io_uring: the glommio types under Cairn's names.

use std::io;
use std::net::SocketAddr;

/// A TCP connection driven by the current shard's ring.
pub type TcpStream = glommio::net::TcpStream;
/// A Unix stream socket driven by the current shard's ring (the relay of
/// a moved TLS session).
pub type UnixStream = glommio::net::UnixStream;
/// A TCP listener bound with SO_REUSEPORT on the current shard.
pub type TcpListener = glommio::net::TcpListener;
/// A UDP socket bound with SO_REUSEPORT on the current shard.
pub type UdpSocket = glommio::net::UdpSocket;

/// Binds a TCP listener on this shard. Every shard binds the same address
/// (SO_REUSEPORT) and the kernel spreads connections between them.
/// SO_REUSEADDR is set too, and inherited by accepted connections, so that
/// connections left closing by a previous run never block a restart.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that we own
    // and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Binds a UDP socket on this shard (SO_REUSEPORT, as for TCP).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(addr).map_err(io::Error::from)
}

/// Binds a UDP socket on this shard *without* SO_REUSEPORT: for a client's
/// own ephemeral port (bind to port 0). With SO_REUSEPORT the kernel may
/// give the same ephemeral port to two sockets of one user, and a reply
/// meant for one would reach the other.
pub fn bind_udp_exclusive(addr: SocketAddr) -> io::Result<UdpSocket> {
    bind_udp_exclusive_buffered(addr, None)
}

/// [`bind_udp_exclusive`] with kernel send and receive buffers of `bytes`
/// each when given: `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` where allowed
/// (root), else as large as `net.core.rmem_max`/`wmem_max` let.
pub fn bind_udp_exclusive_buffered(
    addr: SocketAddr,
    bytes: Option<usize>,
) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_cloexec(true)?;
    if let Some(bytes) = bytes {
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for options in [
            [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF],
            [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF],
        ] {
            for option in options {
                // SAFETY: a valid descriptor, and a c_int option of its size.
                let done = unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::SOL_SOCKET,
                        option,
                        (&size as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                if done == 0 {
                    break;
                }
            }
        }
    }
    socket.bind(&addr.into())?;
    // SAFETY: the descriptor is a bound UDP socket that we own and hand
    // over whole.
    Ok(unsafe { UdpSocket::from_raw_fd(socket.into_raw_fd()) })
}

/// Connects to a TCP peer from this shard.
pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(addr).await.map_err(io::Error::from)
}
