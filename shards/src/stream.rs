//! A client connection that may be plain or TLS, and may become TLS midway
//! (STARTTLS in SMTP, IMAP, POP3 and LDAP): the one type protocol sessions
//! read and write, whatever the listener's TLS mode.
//!
//! A session can move to the shard that owns its account ([`Stream::detach`]
//! here, [`MovedStream::attach`] there). A plain connection's socket moves
//! whole. A TLS session's state stays where its handshake ran: that shard
//! keeps decrypting and relays the plaintext over a socket pair whose other
//! end moves, so the session on the owning shard reads and writes plaintext
//! as if it held the TLS stream itself.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::handoff::{hand_off, HandedOffSocket};
use crate::net::{TcpStream, UnixStream};

/// How long a client may take to finish a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS for a certificate chain and its key (ring's
/// primitives, TLS 1.2 and 1.3), offering `alpn` protocols: the one way
/// every listener, and every test, makes its TLS settings.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A connection to a client, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// The plaintext of a TLS connection that another shard decrypts.
    Relayed {
        socket: UnixStream,
        peer: SocketAddr,
    },
}

/// A connection on its way to another shard: `Send`, bound to no shard's
/// ring; dropped, it closes the connection.
#[derive(Debug)]
pub struct MovedStream {
    way: Way,
    peer: SocketAddr,
}

#[derive(Debug)]
enum Way {
    /// The client's TCP socket itself.
    Tcp(HandedOffSocket),
    /// Our end of the relay of a TLS connection.
    Relay(OwnedFd),
}

impl Stream {
    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr().map_err(io::Error::from),
            Stream::Tls(s) => s.get_ref().0.peer_addr().map_err(io::Error::from),
            Stream::Relayed { peer, .. } => Ok(*peer),
        }
    }

    /// Whether the connection is encrypted (a relayed one is, up to the
    /// shard that relays it).
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// Detaches the connection from this shard for the session to go on
    /// elsewhere (see the module's comment): the caller sends the result
    /// to the other shard, with any bytes it has read but not used. A TLS
    /// connection leaves a relay task running here. A connection that was
    /// already relayed cannot move again.
    pub fn detach(self) -> io::Result<MovedStream> {
        let peer = self.peer_addr()?;
        let way = match self {
            Stream::Plain(tcp) => Way::Tcp(hand_off(tcp)?),
            Stream::Tls(tls) => {
                let (here, there) = std::os::unix::net::UnixStream::pair()?;
                // SAFETY: `here` is a connected socket we own; the new
                // stream takes its descriptor over.
                let here = unsafe { UnixStream::from_raw_fd(here.into_raw_fd()) };
                crate::spawn_detached(relay(*tls, here));
                Way::Relay(OwnedFd::from(there))
            }
            Stream::Relayed { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a relayed connection cannot move again",
                ))
            }
        };
        Ok(MovedStream { way, peer })
    }

    /// Runs the server side of a TLS handshake (implicit TLS, or after a
    /// STARTTLS command was accepted), within [`TLS_HANDSHAKE_TIMEOUT`].
    /// A connection that is already TLS is refused.
    pub async fn accept_tls(self, config: Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let Stream::Plain(tcp) = self else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the connection is already TLS",
            ));
        };
        let handshake = TlsAcceptor::from(config).accept(tcp);
        match crate::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake timed out",
            )),
        }
    }
}

impl MovedStream {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The connection again, driven by the current shard's ring: call it
    /// on the shard that takes the session over.
    pub fn attach(self) -> Stream {
        match self.way {
            Way::Tcp(socket) => Stream::Plain(socket.into_stream()),
            Way::Relay(fd) => Stream::Relayed {
                // SAFETY: the descriptor is a connected Unix socket we own.
                socket: unsafe { UnixStream::from_raw_fd(fd.into_raw_fd()) },
                peer: self.peer,
            },
        }
    }
}

/// Carries plaintext both ways between a TLS connection and the local end
/// of a moved session's socket pair, until either side closes; then closes
/// both (the TLS side with close_notify).
async fn relay(tls: TlsStream<TcpStream>, local: UnixStream) {
    use futures_lite::io::{copy, split, AsyncWriteExt};
    let (tls_read, mut tls_write) = split(tls);
    let (local_read, mut local_write) = split(local);
    let inbound = async {
        let _ = copy(tls_read, &mut local_write).await;
    };
    let outbound = async {
        let _ = copy(local_read, &mut tls_write).await;
    };
    futures_lite::future::or(inbound, outbound).await;
    let _ = local_write.close().await;
    let _ = tls_write.close().await;
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_close(cx),
        }
    }
}
