//! Real peer programs the end-to-end tests start on loopback: Postfix's
//! smtp-sink as a remote MX that dumps what it receives (stopped when
//! dropped), next to dnsmasq as the name server of a made-up `.test` zone
//! (`cairn_dns::testing::Dnsmasq`). A missing program fails the test when
//! `CI` is set; elsewhere the caller gets `None` and skips with a notice.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use cairn_dns::testing::Dnsmasq;

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
fn program(name: &str, package: &str) -> Option<PathBuf> {
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
