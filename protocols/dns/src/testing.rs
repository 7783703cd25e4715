//! A real name server for tests (feature `testing`): dnsmasq on a free
//! loopback port, serving a made-up `.test` zone from its command line and
//! forwarding nothing (`--no-resolv`, `--local=/test/`: unknown `.test`
//! names get NXDOMAIN, and no query ever leaves the machine).
//!
//! dnsmasq comes from the Debian package `dnsmasq-base`. Without it
//! [`Dnsmasq::start`] prints a notice and gives `None`, unless `CI` is
//! set: then it panics, so that a missing install fails the run.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Resolver, ResolverConfig};

/// A running dnsmasq, stopped when dropped.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/sbin/dnsmasq")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("dnsmasq")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records` (its options: `--mx-host=…`,
    /// `--host-record=…`, `--txt-record=…`, `--cname=…`; local records
    /// get a TTL of 300 s), or says why not (see the module's comment).
    /// A port taken between choosing and binding is retried.
    pub fn start<I, S>(records: I) -> Option<Dnsmasq>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "dnsmasq is not installed (Debian package dnsmasq-base) and CI is set"
            );
            eprintln!("SKIPPED: dnsmasq is not installed (Debian package dnsmasq-base)");
            return None;
        };
        let records: Vec<S> = records.into_iter().collect();
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .expect("a free UDP port");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            // As root dnsmasq drops to `nobody` after binding, which is fine.
            let child = Command::new(&binary)
                .arg("--keep-in-foreground")
                .arg(format!("--port={port}"))
                .args([
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    // Never forward anything anywhere: only loopback traffic.
                    "--no-resolv",
                    "--no-poll",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--local=/test/",
                    "--pid-file=",
                    "--log-facility=-",
                    "--local-ttl=300",
                ])
                .args(&records)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq starts");
            let mut server = Dnsmasq { child, addr };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last_error = format!("dnsmasq exited with {status} (port {port} taken?)");
                    break;
                }
                // dnsmasq listens on TCP too once it is ready.
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Some(server);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if last_error.is_empty() {
                last_error = "dnsmasq did not start listening".into();
            }
        }
        panic!("{last_error}");
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops it now (dropping it does the same).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A resolver that asks only `addr`.
pub fn resolver_for(addr: SocketAddr, timeout: Duration, attempts: u32) -> Resolver {
    Resolver::new(ResolverConfig {
        servers: vec![addr],
        timeout,
        attempts,
        cache_entries: 1000,
    })
}
