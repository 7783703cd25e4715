//! The resolver against a real name server: dnsmasq on a loopback port,
//! serving a made-up `.test` zone from its command line and forwarding
//! nothing (`--no-resolv`, `--local=/test/`), driven from a glommio
//! executor through `cairn-shards`.
//!
//! dnsmasq comes from the Debian package `dnsmasq-base`. Without it the
//! tests print a notice and pass, unless `CI` is set: then they fail.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use cairn_dns::testing::{resolver_for, Dnsmasq};
use cairn_dns::{codec, Answer, DnsError, Mx, Record, RecordType};

/// 300 characters: dnsmasq splits it into strings of 255 and 45.
fn long_txt() -> String {
    (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// Ten strings of 201 characters: over 1232 bytes, so UDP gets TC.
fn big_txt_parts() -> Vec<String> {
    (0..10).map(|i| format!("{i}{}", "x".repeat(200))).collect()
}

/// dnsmasq serving the test zone, or `None` (see `Dnsmasq::start`).
fn start_dnsmasq() -> Option<Dnsmasq> {
    let mut records: Vec<String> = [
        "--mx-host=example.test,mx2.example.test,20",
        "--mx-host=example.test,mx1.example.test,10",
        "--host-record=mx1.example.test,127.0.0.2",
        "--host-record=mx2.example.test,127.0.0.3,::1",
        "--txt-record=example.test,v=spf1 -all",
        "--txt-record=_dmarc.example.test,v=DMARC1; p=reject",
        "--cname=alias.example.test,mx2.example.test",
        "--cname=www.example.test,alias.example.test",
        "--mx-host=nullmx.test,.,0",
    ]
    .map(String::from)
    .to_vec();
    records.push(format!("--txt-record=long.example.test,{}", long_txt()));
    records.push(format!(
        "--txt-record=big.example.test,{}",
        big_txt_parts().join(",")
    ));
    Dnsmasq::start(records)
}

fn on_a_shard<T>(fut: impl std::future::Future<Output = T>) -> T {
    cairn_shards::local::block_on(fut).expect("a glommio executor")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn mx(preference: u16, exchange: &str) -> Mx {
    Mx {
        preference,
        exchange: exchange.into(),
    }
}

#[test]
fn lookups_against_dnsmasq() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    // The big TXT record does not fit a UDP reply: dnsmasq sets TC, which
    // is what sends the resolver to TCP below.
    let client = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let query = codec::query(4242, "big.example.test", RecordType::Txt).expect("a query");
    client.send_to(&query, server.addr).expect("send");
    let mut buf = [0u8; 4096];
    let (len, _) = client.recv_from(&mut buf).expect("a reply");
    assert_eq!(
        codec::answer(&buf[..len], 4242, "big.example.test", RecordType::Txt),
        Ok(Answer::Truncated)
    );

    let resolver = resolver_for(server.addr, Duration::from_secs(5), 2);
    on_a_shard(async {
        // MX sorted by preference, whatever the server's order.
        assert_eq!(
            resolver.mx("example.test").await,
            Ok(vec![mx(10, "mx1.example.test"), mx(20, "mx2.example.test")])
        );
        // Names are normalised: case and the trailing dot do not matter.
        assert_eq!(
            resolver.mx("EXAMPLE.Test.").await,
            Ok(vec![mx(10, "mx1.example.test"), mx(20, "mx2.example.test")])
        );
        // RFC 7505 null MX.
        assert_eq!(resolver.mx("nullmx.test").await, Ok(vec![mx(0, "")]));
        // NODATA: the name exists without MX.
        assert_eq!(resolver.mx("mx1.example.test").await, Ok(vec![]));
        // NXDOMAIN.
        assert_eq!(
            resolver.mx("nope.example.test").await,
            Err(DnsError::NxDomain)
        );
        assert_eq!(resolver.ips("nope.test").await, Err(DnsError::NxDomain));
        assert_eq!(resolver.txt("nope.test").await, Err(DnsError::NxDomain));

        // Addresses, IPv4 first; NODATA for both gives nothing.
        assert_eq!(
            resolver.ips("mx1.example.test").await,
            Ok(vec![ip("127.0.0.2")])
        );
        assert_eq!(
            resolver.ips("mx2.example.test").await,
            Ok(vec![ip("127.0.0.3"), ip("::1")])
        );
        assert_eq!(resolver.ips("example.test").await, Ok(vec![]));
        // Through two CNAMEs.
        assert_eq!(
            resolver.ips("www.example.test").await,
            Ok(vec![ip("127.0.0.3"), ip("::1")])
        );

        // TXT: strings joined; underscores allowed.
        assert_eq!(
            resolver.txt("example.test").await,
            Ok(vec!["v=spf1 -all".to_string()])
        );
        assert_eq!(
            resolver.txt("_dmarc.example.test").await,
            Ok(vec!["v=DMARC1; p=reject".to_string()])
        );
        assert_eq!(
            resolver.txt("long.example.test").await,
            Ok(vec![long_txt()])
        );
        // Too big for UDP: the truncated reply sends us to TCP.
        assert_eq!(
            resolver.txt("big.example.test").await,
            Ok(vec![big_txt_parts().concat()])
        );

        // PTR from the host records.
        assert_eq!(
            resolver.ptr(ip("127.0.0.2")).await,
            Ok(vec!["mx1.example.test".to_string()])
        );
        assert_eq!(
            resolver.lookup("mx1.example.test", RecordType::A).await,
            Ok(vec![Record::A("127.0.0.2".parse().expect("ip"))])
        );

        // A name outside the served zone is not forwarded: REFUSED.
        assert!(matches!(
            resolver.mx("example.invalid").await,
            Err(DnsError::Temporary(_))
        ));
        // A bad name never leaves the shard.
        assert!(matches!(
            resolver.mx("bad name.test").await,
            Err(DnsError::Permanent(_))
        ));
    });
}

#[test]
fn the_cache_answers_after_the_server_is_gone() {
    let Some(mut server) = start_dnsmasq() else {
        return;
    };
    let resolver = resolver_for(server.addr, Duration::from_millis(500), 1);
    let first = on_a_shard({
        let resolver = resolver.clone();
        async move {
            (
                resolver.mx("example.test").await,
                resolver.ips("mx2.example.test").await,
                resolver.txt("example.test").await,
                resolver.mx("nope.test").await,
                resolver.mx("mx1.example.test").await,
            )
        }
    });
    assert_eq!(
        first.0,
        Ok(vec![mx(10, "mx1.example.test"), mx(20, "mx2.example.test")])
    );
    server.stop();
    let again = on_a_shard({
        let resolver = resolver.clone();
        async move {
            (
                resolver.mx("Example.Test").await,
                resolver.ips("mx2.example.test.").await,
                resolver.txt("example.test").await,
                resolver.mx("nope.test").await,
                resolver.mx("mx1.example.test").await,
            )
        }
    });
    assert_eq!(again, first);
    assert_eq!(again.3, Err(DnsError::NxDomain), "NXDOMAIN is cached");
    assert_eq!(again.4, Ok(vec![]), "NODATA is cached");
    // Something not asked before needs the server, which is gone.
    let fresh = on_a_shard(async move { resolver.txt("_dmarc.example.test").await });
    assert!(matches!(fresh, Err(DnsError::Temporary(_))), "{fresh:?}");
}

#[test]
fn a_silent_server_times_out_after_every_attempt() {
    // A bound UDP socket that never reads: no answer, no ICMP error.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let addr = silent.local_addr().expect("its address");
    let timeout = Duration::from_millis(300);
    let resolver = resolver_for(addr, timeout, 2);
    let (got, took) = on_a_shard(async move {
        let started = Instant::now();
        let got = resolver.mx("example.test").await;
        (got, started.elapsed())
    });
    assert!(matches!(got, Err(DnsError::Temporary(_))), "{got:?}");
    // Both attempts waited their full timeout; the upper bound is loose.
    assert!(took >= timeout * 2, "gave up after {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_closed_port_fails_at_once() {
    let addr = {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket.local_addr().expect("its address")
    };
    let resolver = resolver_for(addr, Duration::from_secs(30), 2);
    let (got, took) = on_a_shard(async move {
        let started = Instant::now();
        let got = resolver.mx("example.test").await;
        (got, started.elapsed())
    });
    assert!(matches!(got, Err(DnsError::Temporary(_))), "{got:?}");
    // ICMP port unreachable ends the wait well before the 30 s timeout.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// A peer that answers with the wrong id first: that datagram is dropped
/// and the right one read. The peer builds replies from the query itself
/// (QR set, no records: NODATA).
#[test]
fn replies_with_another_id_are_ignored() {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let addr = peer.local_addr().expect("its address");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (len, from) = peer.recv_from(&mut buf).expect("a query");
        let mut reply = buf.get(..len).expect("the query").to_vec();
        let flags = reply.get_mut(2).expect("a header");
        *flags |= 0x80;
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        let mut wrong = reply.clone();
        wrong[..2].copy_from_slice(&id.wrapping_add(1).to_be_bytes());
        peer.send_to(&wrong, from).expect("send the wrong one");
        std::thread::sleep(Duration::from_millis(50));
        peer.send_to(&reply, from).expect("send the right one");
    });
    let resolver = resolver_for(addr, Duration::from_secs(5), 1);
    let got = on_a_shard(async move { resolver.mx("example.test").await });
    answering.join().expect("the peer thread");
    assert_eq!(got, Ok(vec![]));
}
