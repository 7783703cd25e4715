//! Moving a session's connection to another shard through
//! [`Stream::detach`] and [`MovedStream::attach`]: a plain connection's
//! socket moves; a TLS connection stays decrypted on the accepting shard,
//! which relays the plaintext, and the session on the other shard still
//! talks to a real rustls client, which sees one TLS connection end to end.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use cairn_shards::net::bind_tcp;
use cairn_shards::stream::{server_config, MovedStream, Stream};
use cairn_shards::Mesh;
use common::{run_shards, Barrier, DEADLINE};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What travels: the connection and the bytes read past the first line.
struct Moved {
    stream: MovedStream,
    read_ahead: Vec<u8>,
}

#[test]
fn a_plain_connection_moves_to_the_other_shard() {
    let transcript = run(None);
    assert_eq!(transcript, expected(false));
}

#[test]
fn a_tls_connection_moves_and_is_relayed_by_the_accepting_shard() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::try_from(cert.key_pair.serialize_der()).expect("key");
    let config = server_config(vec![der.clone()], key, &[]).expect("tls config");
    let transcript = run(Some((config, der)));
    assert_eq!(transcript, expected(true));
}

fn expected(tls: bool) -> Vec<String> {
    vec![
        format!("HELLO from shard 1, tls={tls}"),
        "PONG 1 from shard 1".to_string(),
        "PONG 2 from shard 1".to_string(),
        "BYE".to_string(),
        "<eof>".to_string(),
    ]
}

/// Shard 0 accepts (with TLS when given), reads the first line and moves
/// the connection to shard 1, which answers the rest; returns what the
/// client read.
fn run(tls: Option<(Arc<rustls::ServerConfig>, CertificateDer<'static>)>) -> Vec<String> {
    let mesh = Mesh::<Moved, ()>::new(2, 4);
    let (addr_tx, addr_rx) = crossbeam_channel::bounded::<SocketAddr>(1);
    let finished = Barrier::new(3);
    let client_done = finished.clone();
    let root = tls.as_ref().map(|(_, der)| der.clone());
    let client = std::thread::spawn(move || {
        let addr = addr_rx.recv_timeout(DEADLINE).expect("listener address");
        let transcript = talk(addr, root);
        futures_lite::future::block_on(client_done.wait());
        transcript
    });
    let server_tls = tls.map(|(config, _)| config);
    run_shards(2, move |ctx| {
        let (mesh, addr_tx, finished, server_tls) = (
            mesh.clone(),
            addr_tx.clone(),
            finished.clone(),
            server_tls.clone(),
        );
        async move {
            let ep = mesh.join(ctx.id()).await.expect("join");
            if ctx.id() == 1 {
                ep.serve(|_from, moved| {
                    cairn_shards::spawn_detached(carry_on(moved));
                    async {}
                })
                .expect("serve");
            } else {
                let listener = bind_tcp("127.0.0.1:0".parse().expect("addr")).expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("send the address");
                let tcp = listener.accept().await.expect("accept");
                let mut stream = match server_tls {
                    Some(config) => Stream::Plain(tcp).accept_tls(config).await.expect("tls"),
                    None => Stream::Plain(tcp),
                };
                let mut buf = Vec::new();
                let end = read_line(&mut stream, &mut buf).await.expect("first line");
                assert_eq!(&buf[..end], b"HELLO");
                let moved = Moved {
                    stream: stream.detach().expect("detach"),
                    read_ahead: buf[end + 1..].to_vec(),
                };
                ep.call(1, moved).await.expect("shard 1 takes it");
            }
            finished.wait().await;
        }
    });
    client.join().expect("client thread")
}

/// Shard 1's side of the session.
async fn carry_on(moved: Moved) {
    let mut stream = moved.stream.attach();
    let hello = format!("HELLO from shard 1, tls={}\n", stream.is_tls());
    stream.write_all(hello.as_bytes()).await.expect("write");
    let mut buf = moved.read_ahead;
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
    stream.close().await.expect("close");
}

async fn read_line(stream: &mut Stream, buf: &mut Vec<u8>) -> Option<usize> {
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

/// The client (rustls when `root` is given): every line it read, then
/// `<eof>` when the server closed.
fn talk(addr: SocketAddr, root: Option<CertificateDer<'static>>) -> Vec<String> {
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let conn: Box<dyn ReadWrite> = match root {
        None => Box::new(tcp),
        Some(root) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root).expect("root");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from("localhost").expect("name");
            let client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
            Box::new(rustls::StreamOwned::new(client, tcp))
        }
    };
    let mut lines = BufReader::new(conn);
    // PING 1 rides with the first line, so shard 0 likely reads it too and
    // has to pass it on.
    lines
        .get_mut()
        .write_all(b"HELLO\nPING 1\n")
        .expect("write");
    let mut transcript = Vec::new();
    let mut next = |lines: &mut BufReader<Box<dyn ReadWrite>>| {
        let mut line = String::new();
        let n = lines.read_line(&mut line).unwrap_or(0);
        transcript.push(if n == 0 {
            "<eof>".to_string()
        } else {
            line.trim_end().to_string()
        });
    };
    next(&mut lines);
    next(&mut lines);
    lines.get_mut().write_all(b"PING 2\n").expect("write");
    next(&mut lines);
    lines.get_mut().write_all(b"QUIT\n").expect("write");
    next(&mut lines);
    next(&mut lines);
    transcript
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
