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
//!
//! The same type carries Cairn's own outgoing connections (the SMTP client
//! of the outbound queue): [`Stream::connect_tls`] runs the client side of
//! a handshake, with settings from [`client_config`]. Such a stream stays
//! on the shard that opened it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use futures_rustls::{TlsAcceptor, TlsConnector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

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

/// How a client connection checks the server's certificate.
#[derive(Debug, Clone)]
pub enum ClientVerify {
    /// Any certificate is accepted (the handshake's signatures are still
    /// checked): opportunistic TLS to MX hosts (RFC 7435), Postfix's `may`
    /// level. It keeps passive listeners out, not an active attacker.
    Any,
    /// The chain must lead to one of these roots and name the server.
    Roots(RootCertStore),
}

/// The client side of TLS (ring's primitives, TLS 1.2 and 1.3), checking
/// the server's certificate as `verify` says.
pub fn client_config(verify: ClientVerify) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        ClientVerify::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { algorithms }))
            .with_no_client_auth(),
        ClientVerify::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts whatever certificate the server shows, but checks that the
/// server holds its key: the handshake's signatures are verified with the
/// provider's algorithms.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A connection, plain or TLS: to a client, or (`TlsClient`) to a server
/// Cairn connected to.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Our TLS connection to a server (outgoing mail).
    TlsClient(Box<futures_rustls::client::TlsStream<TcpStream>>),
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
    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr().map_err(io::Error::from),
            Stream::Tls(s) => s.get_ref().0.peer_addr().map_err(io::Error::from),
            Stream::TlsClient(s) => s.get_ref().0.peer_addr().map_err(io::Error::from),
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
    /// already relayed cannot move again, nor can a connection of ours
    /// to a server.
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
            Stream::TlsClient(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a client TLS connection cannot move to another shard",
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

    /// Runs the client side of a TLS handshake on a plain connection
    /// (STARTTLS after the server's `220`, or implicit TLS), within
    /// [`TLS_HANDSHAKE_TIMEOUT`]. `server_name` is sent as SNI (when it
    /// is a DNS name) and checked against the certificate when `config`
    /// verifies names. A connection that is already TLS is refused.
    pub async fn connect_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Stream> {
        let Stream::Plain(tcp) = self else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the connection is already TLS",
            ));
        };
        let handshake = TlsConnector::from(config).connect(server_name, tcp);
        match crate::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => Ok(Stream::TlsClient(Box::new(tls))),
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
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
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
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::Relayed { socket, .. } => Pin::new(socket).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    fn on_a_shard<T>(fut: impl std::future::Future<Output = T>) -> T {
        crate::local::block_on(fut).expect("executor")
    }

    /// A certificate for `localhost` and the server settings that show it.
    fn server() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
        let cert = made.cert.der().clone();
        let config = server_config(vec![cert.clone()], key.into(), &[]).expect("server");
        (config, cert)
    }

    /// Connects with `client` to a TLS echo server, checking the
    /// certificate for `name`; the five bytes echoed.
    async fn echo(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> io::Result<Vec<u8>> {
        let listener = crate::net::bind_tcp("127.0.0.1:0".parse().expect("addr"))?;
        let addr = listener.local_addr()?;
        let serving = crate::spawn(async move {
            let tcp = listener.accept().await.map_err(io::Error::from)?;
            let mut tls = Stream::Plain(tcp).accept_tls(server).await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.flush().await?;
            io::Result::Ok(())
        });
        let tcp = crate::net::connect_tcp(addr).await?;
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut stream = Stream::Plain(tcp).connect_tls(client, name).await?;
        assert!(stream.is_tls());
        assert_eq!(stream.peer_addr()?, addr);
        stream.write_all(b"hello").await?;
        stream.flush().await?;
        let mut back = vec![0; 5];
        stream.read_exact(&mut back).await?;
        serving.await?;
        // Our own connections stay on their shard.
        let moved = stream.detach();
        assert_eq!(
            moved.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
        Ok(back)
    }

    #[test]
    fn client_tls_checks_the_certificate_as_told() {
        let (server, cert) = server();
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let checked = client_config(ClientVerify::Roots(roots)).expect("client");
        let any = client_config(ClientVerify::Any).expect("client");
        let (good, wrong_name, unknown_root, anything) = on_a_shard(async {
            (
                echo(server.clone(), checked.clone(), "localhost").await,
                echo(server.clone(), checked.clone(), "mx.example.net").await,
                echo(
                    server.clone(),
                    client_config(ClientVerify::Roots(RootCertStore::empty())).expect("client"),
                    "localhost",
                )
                .await,
                echo(server.clone(), any, "mx.example.net").await,
            )
        });
        assert_eq!(good.expect("verified"), b"hello");
        assert!(wrong_name.is_err());
        assert!(unknown_root.is_err());
        assert_eq!(anything.expect("any certificate"), b"hello");
    }
}
