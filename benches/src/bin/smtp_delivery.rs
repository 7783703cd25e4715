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

use std::process::Command;
use std::time::{Duration, Instant};

use cairn_benches::appliance::{free_ports, workspace, Appliance};
use cairn_benches::smtp_load::{self, wait_for_port, Args, Outcome};
use cairn_benches::Measurement;
use clap::Parser as _;

const RECIPIENT: &str = "bench@example.org";
const SENDER: &str = "load@load.test";

/// Counts the messages a subject stored so far; `None` where the `250` is
/// all there is (smtp-sink).
type Stored<'a> = Option<&'a dyn Fn() -> usize>;

/// Runs smtp-source, then the pipelined client, against `port`.
fn measure(subject: &str, port: u16, args: &Args, stored: Stored) -> Outcome {
    let load = args.load();
    let mut source = Measurement::new(subject);
    let base = count(stored);
    let started = Instant::now();
    smtp_load::smtp_source(&load, port, SENDER, RECIPIENT, subject);
    wait_stored(stored, base + args.messages, subject);
    source.elapsed = started.elapsed();
    source.ops = args.messages as u64;

    let mut client = Measurement::new(subject);
    let base = count(stored);
    let started = Instant::now();
    smtp_load::pipelined(&load, port, SENDER, RECIPIENT, &mut client);
    let sent = smtp_load::pipelined_count(&load);
    wait_stored(stored, base + sent, subject);
    client.elapsed = started.elapsed();
    client.ops = sent as u64;
    let outcome = Outcome { source, client };
    outcome.print();
    outcome
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

    let table = smtp_load::table(&args.load(), &[&cairn, &postfix, &sink], &postfix);
    let body = format!(
        "Local delivery over SMTP on this machine: smtp-source (Debian postfix package) and this crate's pipelined client send the same load to Cairn (release, one shard per core; SPF/DKIM/DMARC and spam checks, then durable delivery into the mailbox, before each `250`; the name server is a loopback port where nothing answers, its failures cached for 5 s), to a real Postfix delivering to maildir (counted when the file is in `new/`), and to smtp-sink (stores nothing: the load generator's ceiling). ops/s = messages stored per second; ratio is to Postfix; latencies are per transaction, MAIL to the final `250` (smtp-source reports no latencies, so its rows show none).\n\n{table}\n{}\n",
        smtp_load::command("smtp_delivery", &args)
    );
    smtp_load::publish(&args, "SMTP delivery vs Postfix and smtp-sink", &body);
}
