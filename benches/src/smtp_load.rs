//! The SMTP loads the delivery and relay benchmarks share: smtp-source
//! (Postfix's load generator) and this crate's pipelined client, the same
//! messages over the same number of sessions, and the table both report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::{record, TABLE_HEADER};
use crate::smtp_client::{message, Session};
use crate::{Measurement, ResultsFile};

/// The command line of an SMTP load benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 5120)]
    pub size: usize,
    /// The cairn binary (default: this workspace's release build).
    #[arg(long)]
    pub cairn: Option<PathBuf>,
    /// Replace this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    pub write_results: bool,
}

impl Args {
    pub fn load(&self) -> Load {
        Load {
            messages: self.messages,
            sessions: self.sessions,
            size: self.size,
        }
    }
}

/// How much mail one run sends.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub messages: usize,
    pub sessions: usize,
    pub size: usize,
}

impl Load {
    /// `10000 × 5120 B over 20 sessions`.
    pub fn scenario(&self) -> String {
        format!(
            "{} × {} B over {} sessions",
            self.messages, self.size, self.sessions
        )
    }
}

/// Waits (up to 30 s) until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends the load with smtp-source to `port`; returns when it exits.
pub fn smtp_source(load: &Load, port: u16, from: &str, to: &str, subject: &str) {
    let status = Command::new("smtp-source")
        .args(["-s", &load.sessions.to_string()])
        .args(["-m", &load.messages.to_string()])
        .args(["-l", &load.size.to_string()])
        .args(["-f", from, "-t", to])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .status()
        .expect("run smtp-source (Debian package postfix)");
    assert!(status.success(), "smtp-source failed against {subject}");
}

/// How many messages [`pipelined`] sends (whole rounds per session).
pub fn pipelined_count(load: &Load) -> usize {
    load.messages / load.sessions * load.sessions
}

/// Sends the load with the pipelined client to `port`, one thread per
/// session; records each transaction's time into `into`.
pub fn pipelined(load: &Load, port: u16, from: &str, to: &str, into: &mut Measurement) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let body = message(load.size);
    let per_session = load.messages / load.sessions;
    let threads: Vec<_> = (0..load.sessions)
        .map(|_| {
            let (body, from, to) = (body.clone(), from.to_string(), to.to_string());
            std::thread::spawn(move || {
                let mut h = crate::report::new_histogram();
                let mut s = Session::open(addr).expect("session");
                for _ in 0..per_session {
                    let took = s.send(&from, &to, &body).expect("transaction");
                    record(&mut h, took);
                }
                let _ = s.quit();
                h
            })
        })
        .collect();
    for t in threads {
        let h = t.join().expect("client thread");
        into.latency_us.add(&h).expect("merge histograms");
    }
}

/// What one subject did: smtp-source's throughput, then the client's.
pub struct Outcome {
    pub source: Measurement,
    pub client: Measurement,
}

impl Outcome {
    /// Prints both lines of the subject's summary.
    pub fn print(&self) {
        println!("smtp-source  {}", self.source.summary());
        println!("client       {}", self.client.summary());
    }
}

/// The markdown table of `outcomes` (smtp-source rows, then the
/// client's), ratios to `baseline`.
pub fn table(load: &Load, outcomes: &[&Outcome], baseline: &Outcome) -> String {
    let scenario = load.scenario();
    let mut table = String::from(TABLE_HEADER);
    table.push('\n');
    for o in outcomes {
        table.push_str(
            &o.source
                .markdown_row(&format!("smtp-source, {scenario}"), &baseline.source),
        );
        table.push('\n');
    }
    for o in outcomes {
        table.push_str(
            &o.client
                .markdown_row(&format!("pipelined client, {scenario}"), &baseline.client),
        );
        table.push('\n');
    }
    table
}

/// Prints a scenario's section and, with `--write-results`, puts it in
/// benches/RESULTS.md under `title` (the machine's core count appended).
pub fn publish(args: &Args, title: &str, body: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\n{body}");
    if args.write_results {
        ResultsFile::default_path()
            .write_section(&format!("{title}, {cores}-core machine"), body)
            .expect("write RESULTS.md");
    }
}

/// The command line that reproduces a run of `bin` with `args`.
pub fn command(bin: &str, args: &Args) -> String {
    format!(
        "Command: `cargo build --release -p cairn && cargo run --release -p cairn-benches --bin {bin} -- --messages {} --sessions {} --size {} --write-results`",
        args.messages, args.sessions, args.size
    )
}
