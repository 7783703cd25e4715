//! The real appliance as a benchmark subject: the release binary started on
//! free loopback ports and a given data directory, its `cairn admin`, and a
//! clean stop (SIGTERM) when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The listeners, in the order of [`Appliance::port`]'s table.
const SERVICES: [&str; 11] = [
    "smtp",
    "submission",
    "smtps",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "ldap",
    "ldaps",
    "http",
    "https",
];

/// This workspace's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `n` distinct loopback ports that were free a moment ago (all held until
/// all are chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// A running appliance.
pub struct Appliance {
    bin: PathBuf,
    config: PathBuf,
    child: Child,
    ports: Vec<u16>,
}

impl Appliance {
    /// Starts `bin` (default: the workspace's release build) with its data
    /// in `dir/data`, and waits for its banner.
    pub fn start(bin: Option<&Path>, dir: &Path) -> Self {
        Self::start_with(bin, dir, "")
    }

    /// [`Appliance::start`] with `extra` TOML appended to the configuration
    /// (e.g. `[limits]` a benchmark needs raised); the name server is a dead
    /// loopback port unless `extra` has a `[dns]` table.
    pub fn start_with(bin: Option<&Path>, dir: &Path, extra: &str) -> Self {
        let bin = bin.map_or_else(
            || workspace().join("target/release/cairn"),
            Path::to_path_buf,
        );
        let ports = free_ports(SERVICES.len());
        let mut text = format!("data_dir = \"{}/data\"\n", dir.display());
        for (s, p) in SERVICES.iter().zip(&ports) {
            text.push_str(&format!("[listeners.{s}]\nport = {p}\n"));
        }
        text.push_str(extra);
        if !extra.contains("[dns]") {
            // The system's name servers are off this machine: a loopback
            // port where nothing answers (SPF and the like say temperror).
            text.push_str("\n[dns]\nservers = [\"127.0.0.1:9\"]\n");
        }
        let config = dir.join("appliance.toml");
        std::fs::write(&config, text).expect("config");
        let mut child = Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (cargo build --release -p cairn)",
                    bin.display()
                )
            });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for line in lines.by_ref() {
            if line.map(|l| l.starts_with("Stop with")).unwrap_or(true) {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            bin,
            config,
            child,
            ports,
        }
    }

    /// The port of a listener (`"smtp"`, `"ldap"`, `"http"` …).
    pub fn port(&self, service: &str) -> u16 {
        SERVICES
            .iter()
            .position(|s| *s == service)
            .and_then(|i| self.ports.get(i).copied())
            .unwrap_or_else(|| panic!("no listener {service}"))
    }

    /// The appliance's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `cairn admin WORDS` against it; panics if it fails.
    pub fn admin(&self, words: &[&str]) {
        let status = Command::new(&self.bin)
            .args(["admin", "--config"])
            .arg(&self.config)
            .args(words)
            .stdout(Stdio::null())
            .status()
            .expect("cairn admin");
        assert!(status.success(), "cairn admin {words:?} failed");
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; SIGTERM stops it cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
