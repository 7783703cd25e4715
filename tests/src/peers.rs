//! Real peer programs the end-to-end tests start on loopback: dnsmasq as
//! the name server of a made-up `.test` zone (forwarding nothing), and
//! Postfix's smtp-sink as a remote MX that dumps what it receives. Each is
//! stopped when dropped. A missing program fails the test when `CI` is
//! set; elsewhere the caller gets `None` and skips with a notice.

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The program, or `None` (with a notice) when it is missing outside CI.
pub fn program(name: &str, package: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed (Debian package {package}) and CI is set"
        );
        eprintln!("SKIPPED: {name} is not installed (Debian package {package})");
    }
    found
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// dnsmasq answering for `*.test` on a free loopback port with `records`
/// (dnsmasq options such as `--mx-host=…`, `--host-record=…`); names it
/// does not know get NXDOMAIN and nothing is forwarded.
pub fn dnsmasq(records: &[String]) -> Option<Peer> {
    let binary = program("dnsmasq", "dnsmasq-base")?;
    let port = free_udp_port();
    let child = Command::new(binary)
        .arg("--keep-in-foreground")
        .arg(format!("--port={port}"))
        .args([
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--local=/test/",
            "--user=root",
            "--pid-file=",
        ])
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    let peer = Peer { child, port };
    // Ready once it answers on TCP too (dnsmasq serves both).
    wait_for_tcp(port, "dnsmasq");
    Some(peer)
}

/// smtp-sink on `port`, appending each transaction to `dump` (a file it
/// creates; the sink runs as `nobody`, so the folder must let it write).
pub fn smtp_sink(port: u16, dump: &Path, extra: &[&str]) -> Option<Peer> {
    let binary = program("smtp-sink", "postfix")?;
    let child = Command::new(binary)
        .args(["-u", "nobody", "-D"])
        .arg(dump)
        .args(extra)
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    let peer = Peer { child, port };
    wait_for_tcp(port, "smtp-sink");
    Some(peer)
}

fn wait_for_tcp(port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} did not start listening on 127.0.0.1:{port}");
}
