//! One accept loop for every protocol listener of a shard: the per-address
//! connection limit (with the protocol's own refusal), implicit TLS (HTTPS,
//! SMTPS, IMAPS, POP3S, LDAPS), idle timeouts, connection metrics, and draining at
//! shutdown; each admitted connection goes to its protocol's server.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_http::{serve_connection, ConnectionOptions, Router};
use cairn_imap::ImapServer;
use cairn_ldap::LdapServer;
use cairn_pop3::Pop3Server;
use cairn_shards::ip_limit::IpLimiter;
use cairn_shards::metrics::ServiceMetrics;
use cairn_shards::net::{TcpListener, TcpStream};
use cairn_shards::stream::Stream;
use cairn_shards::{time, ConnectionTracker, ShardContext};
use cairn_smtp::SmtpServer;
use futures_lite::AsyncWriteExt;

/// How long an HTTP connection may stay silent between requests.
const HTTP_IDLE: Duration = Duration::from_secs(60);
/// The socket's own limit under the mail and directory protocols, whose
/// sessions keep the protocol's timeouts (RFC 5321's ten minutes at most):
/// a backstop, never the first to fire.
const SESSION_BACKSTOP: Duration = Duration::from_secs(15 * 60);

/// The server behind a listener.
pub enum Server {
    Http {
        router: Rc<Router>,
        options: ConnectionOptions,
    },
    Smtp(SmtpServer),
    Imap(ImapServer),
    Pop3(Pop3Server),
    Ldap(LdapServer),
}

impl Server {
    /// Serves one connection to its end.
    async fn serve(&self, stream: Stream, peer: SocketAddr) {
        match self {
            Server::Http { router, options } => {
                if let Err(e) =
                    serve_connection(stream, peer, router.clone(), options.clone()).await
                {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
            }
            Server::Smtp(smtp) => smtp.serve(stream, peer).await,
            Server::Imap(imap) => imap.serve(stream, peer).await,
            Server::Pop3(pop3) => pop3.serve(stream, peer).await,
            Server::Ldap(ldap) => ldap.serve(stream, peer).await,
        }
    }

    /// The longest a read or write on a connection may wait.
    fn idle_timeout(&self) -> Duration {
        match self {
            Server::Http { .. } => HTTP_IDLE,
            Server::Smtp(_) | Server::Imap(_) | Server::Pop3(_) | Server::Ldap(_) => {
                SESSION_BACKSTOP
            }
        }
    }

    /// What a plain-text client over the per-address limit is told.
    fn refusal(&self) -> Vec<u8> {
        match self {
            Server::Http { .. } => {
                const BODY: &str = r#"{"error":{"code":"too_many_connections","message":"too many connections from your address"}}"#;
                format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
                    BODY.len()
                )
                .into_bytes()
            }
            Server::Smtp(_) => {
                b"421 4.7.0 Too many connections from your address, try again later\r\n".to_vec()
            }
            Server::Imap(_) => {
                b"* BYE [UNAVAILABLE] Too many connections from your address\r\n".to_vec()
            }
            Server::Pop3(_) => {
                b"-ERR [SYS/TEMP] Too many connections from your address\r\n".to_vec()
            }
            // LDAP has no greeting to refuse with: the connection closes.
            Server::Ldap(_) => Vec::new(),
        }
    }
}

/// One listening socket of one shard.
pub struct Listener {
    pub service: &'static str,
    pub listener: TcpListener,
    /// Implicit TLS: the handshake runs before the server sees the stream.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub server: Rc<Server>,
}

/// Accepts connections until shutdown, serving each in its own task.
pub async fn accept_loop(
    l: Listener,
    shard: ShardContext,
    metrics: ServiceMetrics,
    tracker: ConnectionTracker,
    max_connections_per_ip: u32,
) {
    let per_ip = IpLimiter::new(max_connections_per_ip, shard.count());
    loop {
        let accepted = futures_lite::future::or(async { Some(l.listener.accept().await) }, async {
            shard.shutdown().wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                // Out of descriptors or a connection reset before accept:
                // wait a little rather than spin.
                tracing::warn!(service = l.service, error = %e, "accept failed");
                time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let Some(admitted) = per_ip.try_enter(peer.ip()) else {
            metrics.refused.inc();
            if l.tls.is_none() {
                cairn_shards::spawn_detached(refuse(stream, l.server.refusal()));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let idle = l.server.idle_timeout();
        let _ = stream.set_read_timeout(Some(idle));
        let _ = stream.set_write_timeout(Some(idle));
        metrics.accepted.inc();
        let guard = tracker.enter();
        let (server, tls, m) = (l.server.clone(), l.tls.clone(), metrics.clone());
        cairn_shards::spawn_detached(async move {
            let _guards = (guard, admitted);
            m.active.inc();
            let stream = match tls {
                None => Ok(Stream::Plain(stream)),
                Some(config) => Stream::Plain(stream).accept_tls(config).await,
            };
            match stream {
                Ok(stream) => server.serve(stream, peer).await,
                Err(e) => {
                    m.tls_failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
            }
            m.active.dec();
        });
    }
}

/// Tells a connection over the per-address limit why, and closes it.
async fn refuse(mut stream: TcpStream, reply: Vec<u8>) {
    if reply.is_empty() {
        return;
    }
    let _ = time::timeout(Duration::from_secs(2), stream.write_all(&reply)).await;
}
