//! Start, first-start material, clean stop on SIGTERM, and the refusals at
//! start: a busy port, an unusable data directory, a locked one, too little
//! locked memory.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use cairn_config::Service;
use cairn_tests::{cairn_bin, run_cairn, Appliance, TestConfig};

fn write_config(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, TestConfig) {
    let config = TestConfig::new(&dir.join("data"), extra);
    let path = dir.join("appliance.toml");
    std::fs::write(&path, &config.text).expect("write config");
    (path, config)
}

#[test]
fn sigterm_stops_cleanly_even_with_an_open_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, config) = write_config(tmp.path(), "");
    let appliance = Appliance::start(&path, &config);
    // A keep-alive connection that has been served once and stays open.
    let mut conn = std::net::TcpStream::connect(appliance.http).expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).expect("reply");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    let status = appliance
        .stop(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited within 10 s");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

/// An SMTP client waiting between commands is told `421 4.3.2` when the
/// appliance stops, and the stop does not wait for it.
#[test]
fn an_idle_smtp_session_gets_421_at_shutdown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, config) = write_config(tmp.path(), "");
    let appliance = Appliance::start(&path, &config);
    let conn =
        std::net::TcpStream::connect(("127.0.0.1", config.port(Service::Smtp))).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut lines = std::io::BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut lines, &mut line).expect("greeting");
    assert!(line.starts_with("220 "), "{line}");
    (&conn).write_all(b"NOOP\r\n").expect("noop");
    line.clear();
    std::io::BufRead::read_line(&mut lines, &mut line).expect("noop reply");
    assert!(line.starts_with("250 "), "{line}");

    let status = appliance
        .stop(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited within 10 s");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    line.clear();
    std::io::BufRead::read_line(&mut lines, &mut line).expect("the last reply");
    assert!(line.starts_with("421 4.3.2 "), "{line}");
}

#[test]
fn first_start_prints_the_admin_credential_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, config) = write_config(tmp.path(), "");
    let first = Appliance::start(&path, &config);
    let banner = first.banner.join("\n");
    assert!(banner.contains("with password \""), "{banner}");
    assert!(
        banner.contains(&format!("http://127.0.0.1:{}/", config.port(Service::Http))),
        "{banner}"
    );
    // Every service of the embedded default has its server now.
    assert!(!banner.contains("not started"), "{banner}");
    assert!(
        banner.contains(&format!("imap://127.0.0.1:{}/", config.port(Service::Imap))),
        "{banner}"
    );
    let password = banner
        .split("with password \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("password in banner")
        .to_string();
    assert!(password.len() >= 16);
    let stored = std::fs::read_to_string(tmp.path().join("data/admin.json")).expect("admin.json");
    assert!(
        !stored.contains(&password),
        "the clear password must not be stored"
    );

    // While it runs, a second appliance on the same data directory is refused.
    let (status, _, stderr) = run_cairn(&["run", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("in use by another Cairn process"),
        "{stderr}"
    );

    assert_eq!(
        first
            .stop(libc::SIGINT, Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    let second = Appliance::start(&path, &config);
    let banner = second.banner.join("\n");
    assert!(!banner.contains(&password), "{banner}");
    assert!(
        banner.contains("password printed at first start"),
        "{banner}"
    );
}

#[test]
fn a_busy_port_is_named_with_its_service() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A port chosen free may be taken (by another test's outgoing
    // connection) before this test holds it: choose again.
    let (path, config, held) = (0..5)
        .find_map(|_| {
            let (path, config) = write_config(tmp.path(), "");
            let held = std::net::TcpListener::bind(("127.0.0.1", config.port(Service::Https)));
            held.ok().map(|held| (path, config, held))
        })
        .expect("hold a port");
    let (status, _, stderr) = run_cairn(&["run", "--config", path.to_str().expect("utf-8")]);
    drop(held);
    assert_eq!(status.code(), Some(1));
    let addr = format!("127.0.0.1:{}", config.port(Service::Https));
    assert!(
        stderr.contains("https") && stderr.contains(&addr) && stderr.contains("already in use"),
        "{stderr}"
    );
}

#[test]
fn an_unusable_data_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, _config) = write_config(tmp.path(), "");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let data_dir = file.join("data");
    let (status, _, stderr) = run_cairn(&[
        "run",
        "--config",
        path.to_str().expect("utf-8"),
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("cannot create the data directory"),
        "{stderr}"
    );
    assert!(
        stderr.contains(data_dir.to_str().expect("utf-8")),
        "{stderr}"
    );
}

#[test]
fn too_little_locked_memory_says_what_to_set() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, _config) = write_config(tmp.path(), "");
    // The data directory and config must be usable by the unprivileged user.
    for p in [tmp.path(), path.as_path()] {
        Command::new("chmod")
            .arg("a+rwx")
            .arg(p)
            .status()
            .expect("chmod");
    }
    // A copy of the binary that the unprivileged user can reach whatever
    // the permissions of the checkout's parent directories.
    let bin = tmp.path().join("cairn");
    std::fs::copy(cairn_bin(), &bin).expect("copy the binary");
    let mut cmd = Command::new(&bin);
    cmd.args(["run", "--config"]).arg(&path);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534); // root is exempt from the limit: run as nobody
    }
    let out = cmd.output().expect("run cairn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("locked memory") && stderr.contains("LimitMEMLOCK"),
        "{stderr}"
    );
}

#[test]
fn fewer_shards_than_the_data_directory_holds_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, config) = write_config(tmp.path(), "");
    let appliance = Appliance::start(&path, &config);
    assert_eq!(
        appliance
            .stop(libc::SIGTERM, Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    for shard in ["0", "1"] {
        assert!(tmp
            .path()
            .join("data/shards")
            .join(shard)
            .join("log")
            .is_dir());
    }
    let text = std::fs::read_to_string(&path)
        .expect("read config")
        .replace("count = 2", "count = 1");
    std::fs::write(&path, text).expect("write config");
    let (status, _, stderr) = run_cairn(&["run", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("holds 2 shards but 1 are configured"),
        "{stderr}"
    );
}

#[test]
fn a_relative_data_directory_works_from_the_working_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, config) = write_config(tmp.path(), "");
    let mut cmd = Command::new(cairn_bin());
    cmd.current_dir(tmp.path())
        .args(["run", "--config"])
        .arg(&path)
        .args(["--data-dir", "relative-data"]);
    let appliance = Appliance::start_with(&mut cmd, &config);
    let banner = appliance.banner.join("\n");
    let absolute = tmp.path().join("relative-data");
    assert!(
        banner.contains(absolute.to_str().expect("utf-8")),
        "{banner}"
    );
    for made in [
        "tls/cert.pem",
        "api-token",
        "admin.json",
        "shards/0/log",
        "shards/1/log",
    ] {
        assert!(
            absolute.join(made).exists(),
            "{made} missing under {}",
            absolute.display()
        );
    }
    let mut conn = std::net::TcpStream::connect(appliance.http).expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(
        appliance
            .stop(libc::SIGTERM, Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}
