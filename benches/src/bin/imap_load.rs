//! IMAP under load, side by side in one run: Cairn (release build; plain
//! IMAP listener, `[mail_access] allow_plaintext_auth = true`) and Dovecot
//! 2.3 (Debian `dovecot-imapd`, maildir; benches/peers/dovecot.sh), the same
//! users, the same messages (APPENDed through IMAP to both before the timed
//! phase) and the same load generator (benches/src/imap_client.rs on tokio).
//!
//! Timed phase: `users × sessions-per-user` concurrent clients, each running
//! whole sessions back to back for `--duration-secs`: connect, LOGIN,
//! SELECT INBOX, FETCH (UID FLAGS ENVELOPE) of the latest 50, UID FETCH
//! BODY.PEEK[] of a few of them, UID STORE +FLAGS/-FLAGS (\Seen), APPEND of a
//! 5 KB message, UID STORE +FLAGS (\Deleted) on it, EXPUNGE, LOGOUT; with
//! `--searches N`, N × (UID SEARCH FROM a sender, a header key; UID
//! SEARCH BODY a word no message holds, a scan of every message's text)
//! after the FETCH of bodies (the results then go to a section of their
//! own). Each
//! command's time (write to tagged reply) goes into an hdrhistogram per
//! command; ops/s counts every command.
//!
//! Idle phase: `--idle-connections` connections LOGIN, SELECT INBOX and IDLE,
//! and the server's memory is read before and after (Cairn: its process;
//! Dovecot: its master and every child, RSS summed and PSS summed, since a
//! process per connection shares most of its pages). Dovecot goes first, and
//! Cairn is measured at the count Dovecot reached.
//!
//! Dovecot's settings come from the environment of this command (see
//! benches/peers/dovecot.sh): `FSYNC=always` (default `optimized`, Dovecot's
//! default) and `LOGIN_MODE=performance` (default: Dovecot's high-security
//! login, a new imap-login process per connection).
//!
//! `cargo build --release -p cairn && cargo run --release -p cairn-benches
//! --bin imap_load -- --write-results`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;

use cairn_benches::appliance::{free_ports, workspace, Appliance};
use cairn_benches::imap_client::Conn;
use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::{Measurement, ResultsFile};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

const PASSWORD: &str = "bench password 1";
const DOMAIN: &str = "example.org";
/// Messages of the FETCH ENVELOPE window.
const WINDOW: u32 = 50;
/// Sessions one client runs at most in one round (besides the time bound).
const MAX_SESSIONS_PER_CLIENT: u64 = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Cairn,
    Dovecot,
}

#[derive(Parser)]
struct Args {
    /// Accounts, the same on both servers.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Messages APPENDed to each account's INBOX before the timed phase.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Concurrent clients per account in the timed phase.
    #[arg(long, default_value_t = 2)]
    sessions_per_user: usize,
    /// Seconds of each timed round.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Timed rounds per server (alternating); the best is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Full bodies fetched per session.
    #[arg(long, default_value_t = 3)]
    bodies: usize,
    /// Pairs of SEARCH commands (FROM, BODY) per session.
    #[arg(long, default_value_t = 0)]
    searches: usize,
    /// Connections held in IDLE for the memory measurement (0: skip).
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Stop opening idle connections when the machine's MemAvailable falls
    /// below this many MiB.
    #[arg(long, default_value_t = 2048)]
    min_available_mib: u64,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Run against one server only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The cairn binary (default: this workspace's release build).
    #[arg(long)]
    cairn: Option<PathBuf>,
    /// Replace this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

fn user(i: usize) -> String {
    format!("user{i}@{DOMAIN}")
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A plain-text message of about `size` bytes, CRLF line ends.
fn message(from: &str, to: &str, subject: &str, id: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{id}@load.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, and then it rests.\r\n";
    while m.len() + line.len() <= size.max(m.len() + line.len()) {
        m.extend_from_slice(line);
        if m.len() >= size {
            break;
        }
    }
    m
}

/// Seeded message `i` of account `u`: 1 to 12 KB, the same on both servers.
fn seed_message(u: usize, i: usize) -> Vec<u8> {
    let mut r = Rng::new((u * 100_003 + i) as u64 + 1);
    let size = 1024 + r.below(11 * 1024) as usize;
    message(
        &format!("sender{}@remote.test", r.below(50)),
        &user(u),
        &format!("Seeded message {i} for user {u}"),
        &format!("seed-{u}-{i}"),
        size,
    )
}

/// One server under test.
struct Subject {
    name: String,
    addr: SocketAddr,
    /// The processes whose memory is the server's.
    pids: Box<dyn Fn() -> Vec<u32>>,
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn io_err(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

/// APPENDs the seeded messages to every account, one connection per account.
fn seed(rt: &tokio::runtime::Runtime, s: &Subject, args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let (addr, messages) = (s.addr, args.messages);
    let result: Result<(), String> = rt.block_on(async move {
        let tasks: Vec<_> = (0..args.users)
            .map(|u| {
                tokio::spawn(async move {
                    let mut c = Conn::connect(addr)
                        .await
                        .map_err(|e| io_err("connect", e))?;
                    c.login(&user(u), PASSWORD)
                        .await
                        .map_err(|e| io_err("LOGIN", e))?;
                    for i in 0..messages {
                        let flags = if i % 2 == 0 { "\\Seen" } else { "" };
                        c.append("INBOX", flags, &seed_message(u, i))
                            .await
                            .map_err(|e| io_err("APPEND", e))?;
                    }
                    let _ = c.command("LOGOUT").await;
                    Ok::<(), String>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| format!("seed task: {e}"))??;
        }
        Ok(())
    });
    result?;
    println!(
        "{}: {} × {} messages APPENDed in {:.1} s",
        s.name,
        args.users,
        args.messages,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Per-command latencies of one client.
type Latencies = BTreeMap<&'static str, Histogram<u64>>;

/// The commands, in the order they are reported.
const COMMANDS: [&str; 11] = [
    "LOGIN",
    "SELECT",
    "FETCH envelopes",
    "UID FETCH body",
    "UID SEARCH FROM",
    "UID SEARCH BODY",
    "UID STORE",
    "APPEND",
    "EXPUNGE",
    "LOGOUT",
    "connect + greeting",
];

/// Runs `f`, recording its time under `name`.
async fn timed<T>(
    lat: &mut Latencies,
    name: &'static str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    let t0 = Instant::now();
    let out = f.await.map_err(|e| format!("{name}: {e}"))?;
    record(lat.entry(name).or_insert_with(new_histogram), t0.elapsed());
    Ok(out)
}

/// One whole session of the mix for account `u`.
async fn session(
    addr: SocketAddr,
    u: usize,
    (bodies, searches): (usize, usize),
    rng: &mut Rng,
    lat: &mut Latencies,
) -> Result<(), String> {
    let mut c = timed(lat, "connect + greeting", Conn::connect(addr)).await?;
    timed(lat, "LOGIN", c.login(&user(u), PASSWORD)).await?;
    let selected = timed(lat, "SELECT", c.command("SELECT INBOX")).await?;
    let exists = selected.exists().unwrap_or(0);
    let mut uids = Vec::new();
    if exists > 0 {
        let lo = exists.saturating_sub(WINDOW - 1).max(1);
        let fetched = timed(
            lat,
            "FETCH envelopes",
            c.command(&format!("FETCH {lo}:{exists} (UID FLAGS ENVELOPE)")),
        )
        .await?;
        uids = fetched.fetched_uids();
    }
    if !uids.is_empty() {
        for _ in 0..bodies {
            let uid = uids[rng.below(uids.len() as u64) as usize];
            timed(
                lat,
                "UID FETCH body",
                c.command(&format!("UID FETCH {uid} (BODY.PEEK[])")),
            )
            .await?;
        }
        for _ in 0..searches {
            let sender = rng.below(50);
            timed(
                lat,
                "UID SEARCH FROM",
                c.command(&format!("UID SEARCH FROM sender{sender}@remote.test")),
            )
            .await?;
            timed(
                lat,
                "UID SEARCH BODY",
                c.command("UID SEARCH BODY \"zebra crossing\""),
            )
            .await?;
        }
        let uid = uids[rng.below(uids.len() as u64) as usize];
        timed(
            lat,
            "UID STORE",
            c.command(&format!("UID STORE {uid} +FLAGS (\\Seen)")),
        )
        .await?;
        timed(
            lat,
            "UID STORE",
            c.command(&format!("UID STORE {uid} -FLAGS (\\Seen)")),
        )
        .await?;
    }
    let n = rng.next();
    let new = message(
        "load@load.test",
        &user(u),
        "A new message",
        &format!("load-{u}-{n:x}"),
        5 * 1024,
    );
    let appended = timed(lat, "APPEND", c.append("INBOX", "", &new)).await?;
    // The new message goes again, so the mailbox keeps its size: by its
    // APPENDUID (UIDPLUS), else as the last message this session sees.
    let delete = match appended.append_uid() {
        Some(uid) => format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        None => {
            c.command("NOOP").await.map_err(|e| io_err("NOOP", e))?;
            "STORE * +FLAGS.SILENT (\\Deleted)".to_string()
        }
    };
    timed(lat, "UID STORE", c.command(&delete)).await?;
    timed(lat, "EXPUNGE", c.command("EXPUNGE")).await?;
    timed(lat, "LOGOUT", c.command("LOGOUT")).await?;
    Ok(())
}

/// What one timed round measured.
struct Round {
    /// Every command.
    all: Measurement,
    /// Per command.
    per_command: Vec<Measurement>,
    sessions: u64,
    errors: u64,
}

fn load(rt: &tokio::runtime::Runtime, s: &Subject, args: &Args) -> Round {
    let deadline = Duration::from_secs(args.duration_secs);
    let (addr, mix) = (s.addr, (args.bodies, args.searches));
    let clients = args.users * args.sessions_per_user.max(1);
    let users = args.users.max(1);
    let (lat, sessions, errors, elapsed) = rt.block_on(async move {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                tokio::spawn(async move {
                    let mut lat = Latencies::new();
                    let mut rng = Rng::new(c as u64 + 7);
                    let (mut done, mut errors) = (0u64, 0u64);
                    let mut first_error = None;
                    while started.elapsed() < deadline && done < MAX_SESSIONS_PER_CLIENT {
                        match session(addr, c % users, mix, &mut rng, &mut lat).await {
                            Ok(()) => done += 1,
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                                // A server that refuses is not hammered.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    (lat, done, errors, first_error)
                })
            })
            .collect();
        let mut all = Latencies::new();
        let (mut sessions, mut errors) = (0, 0);
        let mut shown = false;
        for t in tasks {
            let Ok((lat, done, errs, first_error)) = t.await else {
                errors += 1;
                continue;
            };
            for (k, h) in lat {
                let _ = all.entry(k).or_insert_with(new_histogram).add(&h);
            }
            sessions += done;
            errors += errs;
            if let (Some(e), false) = (first_error, shown) {
                eprintln!("first session error: {e}");
                shown = true;
            }
        }
        (all, sessions, errors, started.elapsed())
    });
    let mut total = Measurement::new(&s.name);
    total.elapsed = elapsed;
    let mut per_command = Vec::new();
    for name in COMMANDS {
        let mut m = Measurement::new(&s.name);
        m.elapsed = elapsed;
        if let Some(h) = lat.get(name) {
            m.ops = h.len();
            m.latency_us = h.clone();
            if name != "connect + greeting" {
                total.ops += h.len();
                let _ = total.latency_us.add(h);
            }
        }
        per_command.push(m);
    }
    println!(
        "{:<8} {}  ({} sessions, {:.0} sessions/s, {} failed)",
        "load",
        total.summary(),
        sessions,
        sessions as f64 / elapsed.as_secs_f64().max(1e-9),
        errors
    );
    Round {
        all: total,
        per_command,
        sessions,
        errors,
    }
}

/// Memory of a set of processes, in bytes: (sum of RSS, sum of PSS).
fn memory(pids: &[u32]) -> (u64, u64) {
    let field = |path: String, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_ascii_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    pids.iter().fold((0, 0), |(rss, pss), pid| {
        (
            rss + field(format!("/proc/{pid}/status"), "VmRSS:"),
            pss + field(format!("/proc/{pid}/smaps_rollup"), "Pss:"),
        )
    })
}

/// `root` and all its descendants.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat.get(i + 1..))
                .and_then(|rest| rest.split_ascii_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn mem_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_ascii_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb / 1024)
}

/// What the idle round measured.
struct Idle {
    connections: usize,
    rss_before: u64,
    rss_after: u64,
    pss_before: u64,
    pss_after: u64,
    took: Duration,
}

impl Idle {
    fn per_conn(&self, before: u64, after: u64) -> u64 {
        after.saturating_sub(before) / self.connections.max(1) as u64
    }
}

/// Opens up to `want` connections in IDLE (64 logging in at a time) and
/// reads the server's memory before and after.
fn idle(rt: &tokio::runtime::Runtime, s: &Subject, args: &Args, want: usize) -> Idle {
    let (addr, users, floor) = (s.addr, args.users.max(1), args.min_available_mib);
    std::thread::sleep(Duration::from_secs(1));
    let (rss_before, pss_before) = memory(&(s.pids)());
    let started = Instant::now();
    let conns = rt.block_on(async move {
        let mut conns = Vec::with_capacity(want);
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        let mut failed = None;
        while conns.len() < want {
            while set.len() < 64 && next < want && failed.is_none() {
                let u = next % users;
                next += 1;
                set.spawn(async move {
                    let mut c = Conn::connect(addr)
                        .await
                        .map_err(|e| io_err("connect", e))?;
                    c.login(&user(u), PASSWORD)
                        .await
                        .map_err(|e| io_err("LOGIN", e))?;
                    c.command("SELECT INBOX")
                        .await
                        .map_err(|e| io_err("SELECT", e))?;
                    c.idle().await.map_err(|e| io_err("IDLE", e))?;
                    Ok::<Conn, String>(c)
                });
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            match done {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(format!("task: {e}"));
                }
            }
            if conns.len() % 500 == 0 && failed.is_none() {
                let avail = mem_available_mib();
                if avail < floor {
                    failed = Some(format!("MemAvailable {avail} MiB < {floor} MiB"));
                }
            }
        }
        if let Some(e) = failed {
            eprintln!("stopped opening idle connections at {}: {e}", conns.len());
        }
        conns
    });
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_after, pss_after) = memory(&(s.pids)());
    let out = Idle {
        connections: conns.len(),
        rss_before,
        rss_after,
        pss_before,
        pss_after,
        took,
    };
    println!(
        "{:<8} {} connections in IDLE after {:.1} s: RSS {} → {} MiB ({} B/conn), PSS {} → {} MiB ({} B/conn)",
        s.name,
        out.connections,
        took.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20,
        out.per_conn(rss_before, rss_after),
        pss_before >> 20,
        pss_after >> 20,
        out.per_conn(pss_before, pss_after),
    );
    // Closing: the servers see EOF on every connection.
    rt.block_on(async move { drop(conns) });
    std::thread::sleep(Duration::from_secs(3));
    out
}

/// Raises this process's descriptor limit to its hard limit.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Starts Cairn with what this benchmark needs beyond the defaults: many
/// connections from one address, and LOGIN on the plain port.
fn start_cairn(args: &Args, dir: &Path) -> (Appliance, Subject) {
    let extra =
        "[limits]\nmax_connections_per_ip = 100000\n\n[mail_access]\nallow_plaintext_auth = true\n";
    let cairn = Appliance::start_with(args.cairn.as_deref(), dir, extra);
    cairn.admin(&["domain", "add", DOMAIN]);
    for u in 0..args.users {
        cairn.admin(&["account", "add", &user(u), "--password", PASSWORD]);
    }
    let pid = cairn.pid();
    let subject = Subject {
        name: "cairn".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], cairn.port("imap"))),
        pids: Box::new(move || vec![pid]),
    };
    (cairn, subject)
}

/// Stops Dovecot when dropped.
struct Dovecot {
    dir: PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(workspace().join("benches/peers/dovecot.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

fn start_dovecot(args: &Args, dir: &Path) -> (Dovecot, Subject) {
    let port = free_ports(1)[0];
    // The same argon2id cost as Cairn's (the argon2 crate's default), so
    // that a LOGIN costs both servers one hash.
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("argon2id")
        .to_string();
    let status = Command::new(workspace().join("benches/peers/dovecot.sh"))
        .env("PASSWORD_HASH", hash)
        .arg("start")
        .arg(dir)
        .arg(port.to_string())
        .arg(PASSWORD)
        .args((0..args.users).map(user))
        .status()
        .expect("run benches/peers/dovecot.sh");
    assert!(status.success(), "Dovecot did not start");
    let pid_file = dir.join("run/master.pid");
    let subject = Subject {
        name: "dovecot (maildir)".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pids: Box::new(move || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .map(process_tree)
                .unwrap_or_default()
        }),
    };
    (
        Dovecot {
            dir: dir.to_path_buf(),
        },
        subject,
    )
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn main() {
    let args = Args::parse();
    let fds = raise_fd_limit();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = runtime(args.client_threads);

    let mut subjects = Vec::new();
    let mut _cairn = None;
    let mut _dovecot = None;
    if args.only != Some(Only::Dovecot) {
        let dir = tmp.path().join("cairn");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (guard, s) = start_cairn(&args, &dir);
        _cairn = Some(guard);
        subjects.push(s);
    }
    if args.only != Some(Only::Cairn) {
        let dir = tmp.path().join("dovecot");
        let (guard, s) = start_dovecot(&args, &dir);
        _dovecot = Some(guard);
        subjects.push(s);
    }
    for s in &subjects {
        if let Err(e) = seed(&rt, s, &args) {
            eprintln!("{}: seeding failed: {e}", s.name);
            // Stop both servers before leaving.
            drop(_cairn);
            drop(_dovecot);
            drop(tmp);
            std::process::exit(1);
        }
    }

    // Timed rounds, alternating; the best round of each server is kept.
    let mut best: Vec<Option<Round>> = subjects.iter().map(|_| None).collect();
    for _ in 0..args.rounds.max(1) {
        for (s, b) in subjects.iter().zip(best.iter_mut()) {
            let r = load(&rt, s, &args);
            if b.as_ref()
                .is_none_or(|b| r.all.throughput() > b.all.throughput())
            {
                *b = Some(r);
            }
        }
    }

    // Idle connections: Dovecot first (a process per connection is the
    // likelier to run out), then Cairn at the count Dovecot reached.
    let mut idles: Vec<Option<Idle>> = subjects.iter().map(|_| None).collect();
    if args.idle_connections > 0 {
        let want = args.idle_connections.min(fds.saturating_sub(200) as usize);
        let mut count = want;
        for i in (0..subjects.len()).rev() {
            let r = idle(&rt, &subjects[i], &args, count);
            count = count.min(r.connections);
            idles[i] = Some(r);
        }
        if idles.iter().flatten().any(|r| r.connections != count) && subjects.len() > 1 {
            println!("re-measuring at the common count {count}");
            for (i, s) in subjects.iter().enumerate() {
                if idles[i].as_ref().is_some_and(|r| r.connections != count) {
                    idles[i] = Some(idle(&rt, s, &args, count));
                }
            }
        }
    }
    drop(_cairn);
    drop(_dovecot);

    // The report: the peer (Dovecot) is the baseline when it ran.
    let base = subjects.len() - 1;
    let Some(Some(baseline)) = best.get(base) else {
        return;
    };
    let scenario = format!(
        "{} users × {} clients, {} messages each",
        args.users, args.sessions_per_user, args.messages
    );
    let mut table = String::from(TABLE_HEADER);
    table.push('\n');
    for r in best.iter().flatten() {
        table.push_str(
            &r.all
                .markdown_row(&format!("all commands, {scenario}"), &baseline.all),
        );
        table.push('\n');
    }
    for (k, name) in COMMANDS.iter().enumerate() {
        for r in best.iter().flatten() {
            // A command the mix did not run (no SEARCH without --searches).
            if let (Some(m), Some(b)) = (r.per_command.get(k), baseline.per_command.get(k)) {
                if m.ops == 0 {
                    continue;
                }
                table.push_str(&m.markdown_row(name, b));
                table.push('\n');
            }
        }
    }
    let sessions: Vec<String> = subjects
        .iter()
        .zip(&best)
        .filter_map(|(s, r)| {
            r.as_ref().map(|r| {
                format!(
                    "{} {:.0} sessions/s ({} failed)",
                    s.name,
                    r.sessions as f64 / r.all.elapsed.as_secs_f64().max(1e-9),
                    r.errors
                )
            })
        })
        .collect();
    let mut memory_table = String::new();
    if idles.iter().any(Option::is_some) {
        memory_table.push_str("\n| subject | idle connections | RSS before MiB | RSS after MiB | RSS B/conn | PSS before MiB | PSS after MiB | PSS B/conn | time to open s |\n|---|---|---|---|---|---|---|---|---|\n");
        for (s, r) in subjects.iter().zip(&idles) {
            if let Some(r) = r {
                memory_table.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
                    s.name,
                    r.connections,
                    mib(r.rss_before),
                    mib(r.rss_after),
                    r.per_conn(r.rss_before, r.rss_after),
                    mib(r.pss_before),
                    mib(r.pss_after),
                    r.per_conn(r.pss_before, r.pss_after),
                    r.took.as_secs_f64()
                ));
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let only = match args.only {
        Some(Only::Cairn) => " --only cairn",
        Some(Only::Dovecot) => " --only dovecot",
        None => "",
    };
    // benches/peers/dovecot.sh reads these from the environment.
    let fsync = std::env::var("FSYNC").unwrap_or_else(|_| "optimized".into());
    let fsync_note = if fsync == "optimized" {
        " (Dovecot's default: each saved message file is fsync'd, its index files are not)"
    } else {
        ""
    };
    let login = match std::env::var("LOGIN_MODE").as_deref() {
        Ok("performance") => "high-performance (service_count = 0)",
        _ => "its default high-security (a new process per connection)",
    };
    let env_prefix: String = ["FSYNC", "LOGIN_MODE"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect();
    let (searched, searches, section) = match args.searches {
        0 => (String::new(), String::new(), "IMAP sessions vs Dovecot"),
        n => (
            format!("{n} × (UID SEARCH FROM a sender (a header key, about 4 of the messages match), UID SEARCH BODY a word no message holds (every message's text scanned)), "),
            format!(" --searches {n}"),
            "IMAP sessions with SEARCH vs Dovecot",
        ),
    };
    let body = format!(
        "IMAP sessions on a {cores}-core machine: Cairn (release, one shard per core, plain IMAP, every acknowledged write fsync'd with group commit) against Dovecot 2.3.19 (Debian dovecot-imapd, maildir, `mail_fsync = {fsync}`{fsync_note}; an imap process per connection; imap-login in {login} mode), the same {} accounts with the same {} messages each (APPENDed through IMAP), the same load generator (tokio, {} thread). Each of {} concurrent clients runs whole sessions back to back for {} s: connect, LOGIN, SELECT INBOX, FETCH (UID FLAGS ENVELOPE) of the latest {WINDOW}, {} × UID FETCH BODY.PEEK[], {searched}UID STORE +FLAGS/-FLAGS (\\Seen), APPEND of 5 KB, UID STORE +FLAGS (\\Deleted) on it, EXPUNGE, LOGOUT; best of {} alternating rounds. ops/s = IMAP commands answered per second (connect not counted); ratio is to Dovecot; latencies per command, write to tagged reply. Sessions: {}.\n\n{table}\nMemory per idle connection: connections LOGIN, SELECT INBOX and IDLE; the server's memory before and after, divided by the connections (Dovecot: master and all children summed; RSS counts shared pages once per process, PSS shares them out).\n{memory_table}\nCommand: `cargo build --release -p cairn && {env_prefix}cargo run --release -p cairn-benches --bin imap_load -- --users {} --messages {} --sessions-per-user {} --duration-secs {} --rounds {} --idle-connections {}{searches}{only} --write-results`\n",
        args.users,
        args.messages,
        args.client_threads,
        args.users * args.sessions_per_user,
        args.duration_secs,
        args.bodies,
        args.rounds,
        sessions.join(", "),
        args.users,
        args.messages,
        args.sessions_per_user,
        args.duration_secs,
        args.rounds,
        args.idle_connections,
    );
    println!("\n{body}");
    if args.write_results {
        ResultsFile::default_path()
            .write_section(&format!("{section}, {cores}-core machine"), &body)
            .expect("write RESULTS.md");
    }
}
