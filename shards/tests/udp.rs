//! UDP on the shards: every shard binds the same address (SO_REUSEPORT),
//! the kernel spreads datagrams by source between them, and each shard
//! answers what it receives (as the media server will).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{run_shards, Barrier};

const SOURCES: usize = 24;

#[test]
fn every_shard_binds_the_same_udp_port_and_answers_its_share() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let bound = Barrier::new(3);
    let done = Barrier::new(3);
    let client = {
        let (bound, done) = (bound.clone(), done.clone());
        std::thread::spawn(move || {
            futures_lite::future::block_on(bound.wait());
            let mut answered_by = Vec::new();
            for i in 0..SOURCES {
                let s = UdpSocket::bind("127.0.0.1:0").expect("client socket");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                s.send_to(format!("ping {i}").as_bytes(), addr)
                    .expect("send");
                let mut buf = [0u8; 64];
                let (n, _) = s.recv_from(&mut buf).expect("an answer");
                answered_by.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            futures_lite::future::block_on(done.wait());
            answered_by
        })
    };
    let per_shard = run_shards(2, move |ctx| {
        let (bound, done) = (bound.clone(), done.clone());
        async move {
            let socket = cairn_shards::net::bind_udp(addr).expect("bind on every shard");
            bound.wait().await;
            let mut served = 0usize;
            let mut buf = [0u8; 64];
            let serve = async {
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                        break;
                    };
                    let reply = format!(
                        "shard {} got {}",
                        ctx.id(),
                        String::from_utf8_lossy(&buf[..n])
                    );
                    if socket.send_to(reply.as_bytes(), from).await.is_ok() {
                        served += 1;
                    }
                }
            };
            futures_lite::future::or(serve, done.wait()).await;
            served
        }
    });
    let answers = client.join().expect("client");
    assert_eq!(answers.len(), SOURCES);
    for (i, a) in answers.iter().enumerate() {
        assert!(a.ends_with(&format!("got ping {i}")), "{a}");
    }
    assert_eq!(per_shard.iter().sum::<usize>(), SOURCES, "{per_shard:?}");
    // 24 sources all hashed to one shard would happen 2 times in 2^24.
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "one shard got nothing: {per_shard:?}"
    );
}
