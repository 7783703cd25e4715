//! The shard's media socket: one UDP port per shard (the first port of
//! the media range plus the shard's index), read and written through the
//! shard's io_uring, feeding datagrams and time to the shard's
//! [`Sfu`] and sending what it hands back.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cairn_shards::shutdown::Shutdown;
use glommio::net::UdpSocket;

use crate::sfu::Sfu;

/// Largest datagram read (above any path MTU).
const MAX_DATAGRAM: usize = 2048;
/// Longest the loop sleeps without a datagram or a timer.
const IDLE_WAKE: Duration = Duration::from_millis(50);

/// Binds the media socket of a shard at `addr`, without SO_REUSEPORT: a
/// second process on the same port fails here instead of taking half the
/// datagrams.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    cairn_shards::net::bind_udp_exclusive(addr)
}

/// Runs `sfu` on `socket` until `shutdown`.
pub async fn run(sfu: Rc<RefCell<Sfu>>, socket: UdpSocket, shutdown: Shutdown) {
    let local = match socket.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "media: the socket has no address");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shutdown.is_triggered() {
        loop {
            let next = sfu.borrow_mut().transmit();
            let Some(datagram) = next else {
                break;
            };
            if let Err(e) = socket.send_to(&datagram.contents, datagram.destination).await {
                tracing::debug!(error = %e, to = %datagram.destination, "media: send failed");
            }
        }
        let now = Instant::now();
        let wait = sfu
            .borrow()
            .next_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(IDLE_WAKE)
            .clamp(Duration::from_millis(1), IDLE_WAKE);
        let received = futures_lite::future::or(
            async { Some(socket.recv_from(&mut buf).await) },
            async {
                futures_lite::future::or(cairn_shards::time::sleep(wait), shutdown.wait()).await;
                None
            },
        )
        .await;
        match received {
            Some(Ok((n, from))) => {
                sfu.borrow_mut()
                    .receive(Instant::now(), from, local, &buf[..n]);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "media: receive failed"),
            None => {}
        }
        sfu.borrow_mut().tick(Instant::now());
    }
}
