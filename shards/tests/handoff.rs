//! Handing a connection over: shard 0 accepts and reads the login line,
//! hands the socket to shard 1 over a mesh, and shard 1 carries on the same
//! TCP connection with a plain std client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::Duration;

use cairn_shards::net::{bind_tcp, TcpStream};
use cairn_shards::{hand_off, HandedOffSocket, Mesh, ShardId};
use common::{run_shards, Barrier, DEADLINE};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// What travels with a handed-off connection.
struct Session {
    socket: HandedOffSocket,
    /// Bytes shard 0 read past the login line.
    read_ahead: Vec<u8>,
    user: String,
}

#[test]
fn a_connection_handed_to_another_shard_carries_on_there() {
    let mesh = Mesh::<Session, ()>::new(2, 4);
    let (addr_tx, addr_rx) = crossbeam_channel::bounded::<SocketAddr>(1);
    // Two shards and the client thread.
    let finished = Barrier::new(3);
    let client_done = finished.clone();
    let client = std::thread::spawn(move || {
        let addr = addr_rx.recv_timeout(DEADLINE).expect("listener address");
        let transcript = talk(addr);
        futures_lite::future::block_on(client_done.wait());
        transcript
    });
    let accepted_from = run_shards(2, move |ctx| {
        let (mesh, addr_tx, finished) = (mesh.clone(), addr_tx.clone(), finished.clone());
        async move {
            let ep = mesh.join(ctx.id()).await.expect("join");
            let mut peer = None;
            if ctx.id() == 1 {
                ep.serve(|from, session| {
                    cairn_shards::spawn_detached(carry_on(from, session));
                    async {}
                })
                .expect("serve");
            } else {
                let listener = bind_tcp("127.0.0.1:0".parse().expect("addr")).expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("send the address");
                let mut stream = listener.accept().await.expect("accept");
                peer = Some(stream.peer_addr().expect("peer addr"));
                let mut buf = Vec::new();
                let end = read_line(&mut stream, &mut buf).await.expect("login line");
                let user = String::from_utf8_lossy(&buf[..end])
                    .trim_start_matches("LOGIN ")
                    .to_string();
                let read_ahead = buf[end + 1..].to_vec();

                let socket = hand_off(stream).expect("hand off");
                let session = Session {
                    socket,
                    read_ahead,
                    user,
                };
                ep.call(1, session)
                    .await
                    .expect("shard 1 takes the session");
            }
            finished.wait().await;
            peer
        }
    });
    let (client_addr, transcript) = client.join().expect("client thread");
    assert_eq!(
        accepted_from[0],
        Some(client_addr),
        "shard 0 accepted the client"
    );
    assert_eq!(
        transcript,
        vec![
            format!("WELCOME alice on shard 1 (handed over by 0) peer {client_addr}"),
            "PONG 1 from shard 1".to_string(),
            "PONG 2 from shard 1".to_string(),
            "BYE".to_string(),
            "<eof>".to_string(),
        ]
    );
}

/// The client: logs in and pings on one connection; returns its own address
/// and every line it got.
fn talk(addr: SocketAddr) -> (SocketAddr, Vec<String>) {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let me = conn.local_addr().expect("local addr");
    let mut lines = BufReader::new(conn.try_clone().expect("clone"));
    let mut transcript = Vec::new();
    let mut next = |transcript: &mut Vec<String>| {
        let mut line = String::new();
        let n = lines.read_line(&mut line).expect("read");
        transcript.push(if n == 0 {
            "<eof>".to_string()
        } else {
            line.trim_end().to_string()
        });
    };
    // The PING rides along with the login, so shard 0 likely reads it too
    // and has to pass it on.
    conn.write_all(b"LOGIN alice\nPING 1\n").expect("write");
    next(&mut transcript);
    next(&mut transcript);
    std::thread::sleep(Duration::from_millis(5));
    conn.write_all(b"PING 2\n").expect("write");
    next(&mut transcript);
    conn.write_all(b"QUIT\n").expect("write");
    next(&mut transcript);
    next(&mut transcript);
    (me, transcript)
}

/// Shard 1's side: the session goes on over the handed-off socket.
async fn carry_on(from: ShardId, session: Session) {
    let mut stream = session.socket.into_stream();
    let peer = stream.peer_addr().expect("peer addr");
    let welcome = format!(
        "WELCOME {} on shard 1 (handed over by {from}) peer {peer}\n",
        session.user
    );
    stream.write_all(welcome.as_bytes()).await.expect("write");
    let mut buf = session.read_ahead;
    while let Some(end) = read_line(&mut stream, &mut buf).await {
        let line = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..=end);
        let reply = match line.strip_prefix("PING ") {
            Some(n) => format!("PONG {n} from shard 1\n"),
            None => "BYE\n".to_string(),
        };
        stream.write_all(reply.as_bytes()).await.expect("write");
        if line == "QUIT" {
            break;
        }
    }
}

/// Reads until `buf` holds a whole line; returns where its `\n` is, or
/// `None` at the end of the stream.
async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return Some(end);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
