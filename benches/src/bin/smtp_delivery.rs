//! SMTP delivery, side by side in one run: `smtp-source` (Postfix's load
//! generator) and this crate's pipelined client send the same messages over
//! the same number of sessions to
//! - `smtp-sink`, which stores nothing (the ceiling of the load generator);
//! - a real Postfix delivering to maildir (benches/peers/postfix.sh);
//! - Cairn (release build), delivering durably into a mailbox.
//!
//! Throughput counts a message when it is stored: for Cairn and smtp-sink
//! that is its `250`; for Postfix, its file in the maildir (Postfix's `250`
//! only means queued). Percentiles are per transaction (MAIL to final `250`)
//! from this crate's client.
//!
//! `cargo build --release -p cairn && cargo run --release -p cairn-benches
//! --bin smtp_delivery -- --write-results`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_benches::appliance::{free_ports, workspace, Appliance};
use cairn_benches::report::{record, TABLE_HEADER};
use cairn_benches::smtp_client::{message, Session};
use cairn_benches::{Measurement, ResultsFile};
use clap::Parser;

const RECIPIENT: &str = "bench@example.org";
const SENDER: &str = "load@load.test";

#[derive(Parser)]
struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 5120)]
    size: usize,
    /// The cairn binary (default: this workspace's release build).
    #[arg(long)]
    cairn: Option<PathBuf>,
    /// Replace this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one subject did: smtp-source's throughput, then the client's.
struct Outcome {
    source: Measurement,
    client: Measurement,
}

/// Counts the messages a subject stored so far; `None` where the `250` is
/// all there is (smtp-sink).
type Stored<'a> = Option<&'a dyn Fn() -> usize>;

/// Runs smtp-source, then the pipelined client, against `port`.
fn measure(subject: &str, port: u16, args: &Args, stored: Stored) -> Outcome {
    let mut source = Measurement::new(subject);
    let base = count(stored);
    let started = Instant::now();
    let status = Command::new("smtp-source")
        .args(["-s", &args.sessions.to_string()])
        .args(["-m", &args.messages.to_string()])
        .args(["-l", &args.size.to_string()])
        .args(["-f", SENDER, "-t", RECIPIENT])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .status()
        .expect("run smtp-source (Debian package postfix)");
    assert!(status.success(), "smtp-source failed against {subject}");
    wait_stored(stored, base + args.messages, subject);
    source.elapsed = started.elapsed();
    source.ops = args.messages as u64;

    let mut client = Measurement::new(subject);
    let base = count(stored);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let body = message(args.size);
    let per_session = args.messages / args.sessions;
    let started = Instant::now();
    let threads: Vec<_> = (0..args.sessions)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut h = cairn_benches::report::new_histogram();
                let mut s = Session::open(addr).expect("session");
                for _ in 0..per_session {
                    let took = s.send(SENDER, RECIPIENT, &body).expect("transaction");
                    record(&mut h, took);
                }
                let _ = s.quit();
                h
            })
        })
        .collect();
    for t in threads {
        let h = t.join().expect("client thread");
        client.latency_us.add(&h).expect("merge histograms");
    }
    wait_stored(stored, base + per_session * args.sessions, subject);
    client.elapsed = started.elapsed();
    client.ops = (per_session * args.sessions) as u64;
    println!("smtp-source  {}", source.summary());
    println!("client       {}", client.summary());
    Outcome { source, client }
}

fn count(stored: Stored) -> usize {
    stored.map_or(0, |f| f())
}

/// Waits until `want` messages are stored.
fn wait_stored(stored: Stored, want: usize, subject: &str) {
    let Some(stored) = stored else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored() < want {
        assert!(
            Instant::now() < deadline,
            "{subject} did not store every message"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_sink(args: &Args) -> Outcome {
    let port = free_ports(1)[0];
    let mut sink = Command::new("smtp-sink")
        .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "256"])
        .spawn()
        .expect("start smtp-sink (Debian package postfix)");
    wait_for_port(port);
    let outcome = measure("smtp-sink (stores nothing)", port, args, None);
    let _ = sink.kill();
    let _ = sink.wait();
    outcome
}

fn run_postfix(args: &Args) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_ports(1)[0];
    let script = workspace().join("benches/peers/postfix.sh");
    let dir_s = dir.path().to_string_lossy().to_string();
    let status = Command::new(&script)
        .args(["start", &dir_s, &port.to_string(), "bench"])
        .status()
        .expect("run postfix.sh");
    assert!(status.success(), "Postfix did not start");
    let count = || {
        let out = Command::new(&script)
            .args(["count", &dir_s])
            .output()
            .expect("count");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let outcome = measure("postfix → maildir", port, args, Some(&count));
    let _ = Command::new(&script).args(["stop", &dir_s]).status();
    outcome
}

/// The messages in the bench account's INBOX, through the admin API.
fn cairn_inbox(http: u16, token: &str) -> usize {
    let out = Command::new("curl")
        .args(["-fsS", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!(
            "http://127.0.0.1:{http}/api/v1/accounts/{RECIPIENT}/mailboxes/INBOX"
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("\"messages\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn run_cairn(args: &Args) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let cairn = Appliance::start(args.cairn.as_deref(), dir.path());
    cairn.admin(&["domain", "add", "example.org"]);
    cairn.admin(&[
        "account",
        "add",
        RECIPIENT,
        "--password",
        "bench password 1",
    ]);
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).expect("token");
    let http = cairn.port("http");
    measure(
        "cairn",
        cairn.port("smtp"),
        args,
        Some(&|| cairn_inbox(http, token.trim())),
    )
}

fn main() {
    let args = Args::parse();
    let sink = run_sink(&args);
    let postfix = run_postfix(&args);
    let cairn = run_cairn(&args);

    let scenario = format!(
        "{} × {} B over {} sessions",
        args.messages, args.size, args.sessions
    );
    let mut table = String::from(TABLE_HEADER);
    table.push('\n');
    for o in [&cairn, &postfix, &sink] {
        table.push_str(
            &o.source
                .markdown_row(&format!("smtp-source, {scenario}"), &postfix.source),
        );
        table.push('\n');
    }
    for o in [&cairn, &postfix, &sink] {
        table.push_str(
            &o.client
                .markdown_row(&format!("pipelined client, {scenario}"), &postfix.client),
        );
        table.push('\n');
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body = format!(
        "Local delivery over SMTP on a {cores}-core machine: smtp-source (Debian postfix package) and this crate's pipelined client send the same load to Cairn (release, one shard per core, durable delivery into the mailbox before each `250`), to a real Postfix delivering to maildir (counted when the file is in `new/`), and to smtp-sink (stores nothing: the load generator's ceiling). ops/s = messages stored per second; ratio is to Postfix; latencies are per transaction, MAIL to the final `250` (smtp-source reports no latencies, so its rows show none).\n\n{table}\nCommand: `cargo build --release -p cairn && cargo run --release -p cairn-benches --bin smtp_delivery -- --messages {} --sessions {} --size {} --write-results`\n",
        args.messages, args.sessions, args.size
    );
    println!("\n{body}");
    if args.write_results {
        ResultsFile::default_path()
            .write_section(
                &format!("SMTP delivery vs Postfix and smtp-sink, {cores}-core machine"),
                &body,
            )
            .expect("write RESULTS.md");
    }
}
