//! One exchange with one name server over the shard's own ring: a UDP
//! query and its reply, or the same over TCP (two-byte length prefix,
//! RFC 1035 §4.2.2) after a truncated UDP reply. Each exchange draws a
//! fresh random id; over UDP only a datagram from the server's address
//! with that id is read, anything else is dropped until the deadline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use cairn_shards::{net, time};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{self, Answer, RecordType};
use crate::DnsError;

/// Receive buffer for one datagram: more than the payload we announce, so
/// that a server ignoring it is seen as malformed rather than cut short
/// silently.
const UDP_BUFFER: usize = 4096;

/// Asks `server` over UDP; gives up after `timeout`.
pub async fn udp(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let deadline = Instant::now() + timeout;
    let id = rand::random::<u16>();
    let query = codec::query(id, name, rtype)?;
    let io = |what: &str, e: std::io::Error| DnsError::Temporary(format!("{server}: {what}: {e}"));
    let socket = net::bind_udp_exclusive(local_address(server)).map_err(|e| io("bind", e))?;
    // Connected: the kernel drops datagrams from other sources, and an
    // ICMP "port unreachable" ends the wait at once (ECONNREFUSED).
    socket
        .connect(server)
        .await
        .map_err(|e| io("connect", e.into()))?;
    let sent = time::timeout(timeout, socket.send(&query))
        .await
        .map_err(|_| no_answer(server, timeout))?
        .map_err(|e| io("send", e.into()))?;
    if sent != query.len() {
        return Err(DnsError::Temporary(format!("{server}: short send")));
    }
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no_answer(server, timeout));
        }
        let (len, from) = time::timeout(left, socket.recv_from(&mut buf))
            .await
            .map_err(|_| no_answer(server, timeout))?
            .map_err(|e| io("receive", e.into()))?;
        let reply = buf.get(..len).unwrap_or_default();
        if from != server || codec::reply_id(reply) != Some(id) {
            tracing::debug!(%server, %from, len, "dropped a datagram that is not our reply");
            cairn_shards::yield_if_needed().await;
            continue;
        }
        return codec::answer(reply, id, name, rtype);
    }
}

/// Asks `server` over TCP; gives up after `timeout`.
pub async fn tcp(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let id = rand::random::<u16>();
    let query = codec::query(id, name, rtype)?;
    let exchange = async {
        let io =
            |what: &str, e: std::io::Error| DnsError::Temporary(format!("{server}: {what}: {e}"));
        let mut stream = net::connect_tcp(server)
            .await
            .map_err(|e| io("TCP connect", e))?;
        let len = u16::try_from(query.len())
            .map_err(|_| DnsError::Permanent("query longer than 65535 bytes".into()))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&query);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| io("TCP send", e))?;
        stream.flush().await.map_err(|e| io("TCP send", e))?;
        let mut prefix = [0u8; 2];
        stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| io("TCP receive", e))?;
        // At most 65535 bytes: the prefix bounds the buffer.
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| io("TCP receive", e))?;
        match codec::answer(&reply, id, name, rtype)? {
            Answer::Truncated => Err(DnsError::Temporary(format!(
                "{server}: reply truncated over TCP"
            ))),
            answer => Ok(answer),
        }
    };
    time::timeout(timeout, exchange)
        .await
        .map_err(|_| no_answer(server, timeout))?
}

fn no_answer(server: SocketAddr, timeout: Duration) -> DnsError {
    DnsError::Temporary(format!("{server}: no answer within {timeout:?}"))
}

/// Where our end binds: loopback for a loopback server, otherwise the
/// unspecified address of the server's family; always an ephemeral port.
fn local_address(server: SocketAddr) -> SocketAddr {
    let ip = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_end_binds_by_the_servers_family() {
        let at = |s: &str| local_address(s.parse().expect("address")).to_string();
        assert_eq!(at("127.0.0.53:53"), "127.0.0.1:0");
        assert_eq!(at("192.0.2.1:53"), "0.0.0.0:0");
        assert_eq!(at("[::1]:53"), "[::1]:0");
        assert_eq!(at("[2001:db8::1]:53"), "[::]:0");
    }
}
