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
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    // SAFETY: the descriptor is a bound UDP socket that we own and hand
    // over whole.
    Ok(unsafe { UdpSocket::from_raw_fd(socket.into_raw_fd()) })
}

/// Connects to a TCP peer from this shard.
pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(addr).await.map_err(io::Error::from)
}
