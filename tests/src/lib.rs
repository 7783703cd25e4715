//! The end-to-end harness: builds the real `cairn` binary once, starts it on
//! a temporary data directory with free ports, waits for its banner, and
//! stops it with a signal. The tests in `tests/` drive it with real clients.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cairn_config::Service;

mod admin_api;
pub mod imap;
mod imap_login;
pub mod peers;
pub mod webrtc;
pub use admin_api::AdminApi;
pub use imap_login::async_imap_login;

/// The `cairn` binary of this workspace, built on first use.
pub fn cairn_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace")
            .to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "cairn", "--bin", "cairn"])
            .current_dir(&workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p cairn failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join("debug").join("cairn")
    })
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago (each is
/// held until all are chosen, so the kernel cannot hand one out twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()).expect("its address"))
        .collect()
}

/// The first of `n` consecutive UDP ports on 127.0.0.1 that were free a
/// moment ago, above the kernel's ephemeral range (a media port range).
pub fn free_udp_range(n: usize) -> u16 {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = n.max(1) as u16;
    let spread = (std::process::id() % 97) as u16 * 40;
    for _ in 0..400 {
        let step = NEXT.fetch_add(span, Ordering::Relaxed);
        let base = 61_000 + (spread + step) % 4_000;
        let held: Vec<UdpSocket> = (0..span)
            .filter_map(|i| UdpSocket::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == usize::from(span) {
            return base;
        }
    }
    panic!("no {n} consecutive free UDP ports in 61000..65000");
}

/// A configuration file giving every service a free port on 127.0.0.1,
/// plus `extra` TOML appended verbatim.
pub struct TestConfig {
    pub ports: Vec<(Service, u16)>,
    pub text: String,
}

impl TestConfig {
    /// Every listener on a fresh free port, two shards, and `extra`; the
    /// name server is a dead loopback port unless `extra` has a `[dns]`
    /// table.
    pub fn new(data_dir: &Path, extra: &str) -> Self {
        let mut text = format!(
            "version = 1\ndata_dir = {:?}\n\n[shards]\ncount = 2\npin = false\nshutdown_grace_secs = 5\n\n",
            data_dir.display().to_string()
        );
        let mut ports = Vec::new();
        for (service, port) in Service::ALL.into_iter().zip(free_ports(Service::ALL.len())) {
            text.push_str(&format!(
                "[listeners.{}]\nport = {port}\n\n",
                service.name()
            ));
            ports.push((service, port));
        }
        text.push_str(extra);
        if !extra.contains("[media]") {
            let base = free_udp_range(2);
            text.push_str(&format!(
                "\n[media]\nport_min = {base}\nport_max = {}\n",
                base + 1
            ));
        }
        if !extra.contains("[dns]") {
            // Never let a test ask the system's name servers (they are off
            // this machine): a loopback port where nothing answers.
            text.push_str("\n[dns]\nservers = [\"127.0.0.1:9\"]\n");
        }
        Self { ports, text }
    }

    /// The port given to `service`.
    pub fn port(&self, service: Service) -> u16 {
        self.ports
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, p)| *p)
            .expect("every service has a port")
    }
}

/// A test's own appliance setup: a temporary directory holding the data
/// directory and `appliance.toml` written from a [`TestConfig`].
pub struct Setup {
    /// Removed (with everything in it) when the setup is dropped.
    pub tmp: tempfile::TempDir,
    /// The data directory named in the configuration.
    pub data: PathBuf,
    /// The configuration file.
    pub path: PathBuf,
    pub config: TestConfig,
}

impl Setup {
    /// A fresh temporary directory and `TestConfig::new(data, extra)`
    /// written to `appliance.toml` in it.
    pub fn new(extra: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let config = TestConfig::new(&data, extra);
        let path = tmp.path().join("appliance.toml");
        std::fs::write(&path, &config.text).expect("write config");
        Self {
            tmp,
            data,
            path,
            config,
        }
    }

    /// Starts the appliance on this setup (again after a stop: same data).
    pub fn start(&self) -> Appliance {
        Appliance::start(&self.path, &self.config)
    }
}

/// A running appliance. Killed (SIGKILL) on drop if still running.
pub struct Appliance {
    child: Child,
    /// Every line the appliance printed on standard output up to its banner.
    pub banner: Vec<String>,
    stderr: mpsc::Receiver<String>,
    pub http: SocketAddr,
    pub https: SocketAddr,
}

impl Appliance {
    /// Starts `cairn run --config FILE` and waits (up to 60 s) for its
    /// banner's last line.
    pub fn start(config_path: &Path, config: &TestConfig) -> Self {
        Self::start_with(
            Command::new(cairn_bin())
                .args(["run", "--config"])
                .arg(config_path),
            config,
        )
    }

    /// Starts an already prepared command (its arguments set) and waits for
    /// the banner.
    pub fn start_with(cmd: &mut Command, config: &TestConfig) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn");
        let stderr = drain_lines(child.stderr.take().expect("stderr"));
        let stdout = drain_lines(child.stdout.take().expect("stdout"));
        let mut banner = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Stop with");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let errors: Vec<String> = stderr.try_iter().collect();
                    panic!(
                        "cairn did not print its banner; stdout: {banner:?}; stderr: {errors:?}"
                    );
                }
            }
        }
        let local = |s| SocketAddr::from(([127, 0, 0, 1], config.port(s)));
        Self {
            child,
            banner,
            stderr,
            http: local(Service::Http),
            https: local(Service::Https),
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and waits up to `within` for the exit.
    pub fn stop(mut self, signal: i32, within: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the appliance wrote on standard error so far.
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain_lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `cairn ARGS` to completion with no standard input and returns its
/// exit status, standard output and standard error.
pub fn run_cairn(args: &[&str]) -> (ExitStatus, String, String) {
    run_cairn_with_input(args, None)
}

/// Runs `cairn ARGS` to completion, writing `input` (if any) to its
/// standard input.
pub fn run_cairn_with_input(args: &[&str], input: Option<&str>) -> (ExitStatus, String, String) {
    use std::io::Write;
    let mut child = Command::new(cairn_bin())
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for cairn");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
