//! A real ClamAV clamd for tests (feature `testing`): started in the
//! foreground on a temporary directory with only the signature databases
//! the test gives (clamd cannot download any here, and ClamAV has no
//! built-in EICAR: without a database of its own it refuses to start),
//! listening on a unix socket there and on a free loopback TCP port.
//!
//! clamd comes from the Debian package `clamav-daemon`. Without it
//! [`ClamdServer::start`] prints a notice and gives `None`, unless `CI` is
//! set: then it panics, so that a missing install fails the run.
//!
//! Names from these databases come back with `.UNOFFICIAL` appended (they
//! are not signed by ClamAV).

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clamd::Address;

/// A running clamd, stopped when dropped.
pub struct ClamdServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

fn binary() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/sbin/clamd")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("clamd")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl ClamdServer {
    /// clamd's `StreamMaxLength` here: an INSTREAM over it gets `INSTREAM
    /// size limit exceeded`.
    pub const STREAM_MAX_LENGTH: usize = 1024 * 1024;

    /// Starts clamd with `databases`, each a file name in its database
    /// directory (the extension says the format: `.ndb` body signatures
    /// `Name:0:*:HEX`, `.hdb` hashes `MD5:SIZE:Name`) and its text, and
    /// waits (up to 60 s) until both sockets answer; or says why not (see
    /// the module's comment). A port taken between choosing and binding is
    /// retried.
    pub fn start(databases: &[(&str, &str)]) -> Option<ClamdServer> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "clamd is not installed (Debian package clamav-daemon) and CI is set"
            );
            eprintln!("SKIPPED: clamd is not installed (Debian package clamav-daemon)");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("the database directory");
        for (name, text) in databases {
            std::fs::write(db.join(name), text).expect("a database file");
        }
        let sock = dir.path().join("clamd.sock");
        let log = dir.path().join("clamd.log");
        // What it says before its log file is open (a bad setting) goes
        // to standard error.
        let stderr = dir.path().join("clamd.stderr");
        let read_log = || {
            let said = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            format!("{}{}", said(&stderr), said(&log))
        };
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free TCP port");
            let conf = dir.path().join("clamd.conf");
            let _ = std::fs::remove_file(&log);
            // No `User`: clamd keeps the user it was started as.
            let text = format!(
                "Foreground yes\nDatabaseDirectory {}\nLocalSocket {}\nTCPSocket {port}\n\
                 TCPAddr 127.0.0.1\nLogFile {}\nStreamMaxLength {}\nTemporaryDirectory {}\n",
                db.display(),
                sock.display(),
                log.display(),
                Self::STREAM_MAX_LENGTH,
                dir.path().display(),
            );
            std::fs::write(&conf, text).expect("clamd.conf");
            let mut child = Command::new(&binary)
                .arg("--config-file")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).expect("clamd.stderr"))
                .spawn()
                .expect("clamd starts");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!("clamd exited with {status}: {}", read_log());
                    break;
                }
                if answers(&sock, port) {
                    return Some(ClamdServer { child, dir, port });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_error.is_empty() {
                last_error = format!("clamd did not start listening: {}", read_log());
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{last_error}");
    }

    /// What clamd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default()
    }

    /// Its unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    /// Its unix socket as a client's address.
    pub fn unix(&self) -> Address {
        Address::Unix(self.socket())
    }

    /// Its TCP socket as a client's address.
    pub fn tcp(&self) -> Address {
        Address::Tcp(format!("127.0.0.1:{}", self.port))
    }

    /// Stops it now (dropping it does the same).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ClamdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Both sockets answer PING.
fn answers(socket: &Path, port: u16) -> bool {
    let ping = |mut s: Box<dyn ReadWrite>| {
        let _ = s.set_timeout(Duration::from_secs(2));
        let mut reply = [0u8; 5];
        s.write_all(b"zPING\0").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"PONG\0"
    };
    let unix = UnixStream::connect(socket).map(|s| ping(Box::new(s)));
    let tcp = TcpStream::connect(("127.0.0.1", port)).map(|s| ping(Box::new(s)));
    matches!((unix, tcp), (Ok(true), Ok(true)))
}

/// A socket of either kind, for the readiness probe.
trait ReadWrite: std::io::Read + std::io::Write {
    fn set_timeout(&self, timeout: Duration) -> std::io::Result<()>;
}

impl ReadWrite for UnixStream {
    fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl ReadWrite for TcpStream {
    fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}
