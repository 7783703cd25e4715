//! SMTP relaying, side by side in one run: `smtp-source` (Postfix's load
//! generator) and this crate's pipelined client send mail for a remote
//! domain to
//! - Cairn (release build) as a relay: its MX listener accepts from the
//!   relay network, queues durably, and its outbound queue delivers to
//!   the smarthost;
//! - a real Postfix as a relay (`mynetworks`, `relayhost`);
//! - the same smarthost directly (the ceiling of the load generator).
//!
//! The smarthost is Postfix's `smtp-sink`, counting what it receives
//! (`-c`): a phase's time runs until the last message has reached it, not
//! only until the relay's `250`.
//! Percentiles are the client's per transaction (MAIL to the relay's
//! `250`, i.e. durably queued).
//!
//! `cargo build --release -p cairn && cargo run --release -p cairn-benches
//! --bin smtp_relay -- --write-results`

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_benches::appliance::{free_ports, workspace, Appliance};
use cairn_benches::smtp_load::{self, wait_for_port, Args, Load, Outcome};
use cairn_benches::Measurement;
use clap::Parser as _;

const RECIPIENT: &str = "far@remote.test";
const SENDER: &str = "load@load.test";

/// smtp-sink on `port`, counting what it received (`-c` prints its
/// counters on every message; a thread keeps the last `mesg=`).
struct Sink {
    child: Child,
    received: Arc<AtomicUsize>,
}

impl Sink {
    fn start(port: u16) -> Self {
        let mut child = Command::new("smtp-sink")
            .args(["-u", "nobody", "-c"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start smtp-sink (Debian package postfix)");
        let received = Arc::new(AtomicUsize::new(0));
        let mut out = child.stdout.take().expect("stdout");
        let counter = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        let text = String::from_utf8_lossy(&line);
                        if let Some(m) = text.split("mesg=").nth(1) {
                            if let Ok(m) = m.trim().parse::<usize>() {
                                counter.store(m, Ordering::Relaxed);
                            }
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        });
        wait_for_port(port);
        Sink { child, received }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until it has received `want` messages in all.
    fn wait(&self, want: usize, subject: &str) {
        let deadline = Instant::now() + Duration::from_secs(900);
        while self.received() < want {
            assert!(
                Instant::now() < deadline,
                "{subject}: the smarthost did not get every message"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs smtp-source, then the pipelined client, against the relay at
/// `port`, each until the smarthost on `smarthost` has every message.
fn measure(subject: &str, port: u16, smarthost: &Sink, load: &Load) -> Outcome {
    let mut source = Measurement::new(subject);
    let base = smarthost.received();
    let started = Instant::now();
    smtp_load::smtp_source(load, port, SENDER, RECIPIENT, subject);
    smarthost.wait(base + load.messages, subject);
    source.elapsed = started.elapsed();
    source.ops = load.messages as u64;

    let mut client = Measurement::new(subject);
    let sent = smtp_load::pipelined_count(load);
    let base = smarthost.received();
    let started = Instant::now();
    smtp_load::pipelined(load, port, SENDER, RECIPIENT, &mut client);
    smarthost.wait(base + sent, subject);
    client.elapsed = started.elapsed();
    client.ops = sent as u64;
    let outcome = Outcome { source, client };
    outcome.print();
    outcome
}

fn run_direct(load: &Load) -> Outcome {
    let port = free_ports(1)[0];
    let sink = Sink::start(port);
    measure("smtp-sink directly (no relay)", port, &sink, load)
}

fn run_postfix(load: &Load) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let [port, smarthost] = <[u16; 2]>::try_from(free_ports(2)).expect("two ports");
    let script = workspace().join("benches/peers/postfix.sh");
    let dir_s = dir.path().to_string_lossy().to_string();
    let status = Command::new(&script)
        .env("POSTFIX_RELAYHOST", format!("[127.0.0.1]:{smarthost}"))
        .args(["start", &dir_s, &port.to_string(), "bench"])
        .status()
        .expect("run postfix.sh");
    assert!(status.success(), "Postfix did not start");
    let sink = Sink::start(smarthost);
    let outcome = measure("postfix relay", port, &sink, load);
    let _ = Command::new(&script).args(["stop", &dir_s]).status();
    outcome
}

fn run_cairn(args: &Args) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let smarthost = free_ports(1)[0];
    let extra = format!(
        "[outbound]\nsmarthost = \"127.0.0.1:{smarthost}\"\n\
         smarthost_tls = \"none\"\nrelay_networks = [\"127.0.0.0/8\"]\n\
         max_connections_per_destination = 20\n"
    );
    let sink = Sink::start(smarthost);
    let cairn = Appliance::start_with(args.cairn.as_deref(), dir.path(), &extra);
    measure("cairn relay", cairn.port("smtp"), &sink, &args.load())
}

fn main() {
    let args = Args::parse();
    let load = args.load();
    let direct = run_direct(&load);
    let postfix = run_postfix(&load);
    let cairn = run_cairn(&args);
    let table = smtp_load::table(&load, &[&cairn, &postfix, &direct], &postfix);
    let body = format!(
        "Relaying on this machine: smtp-source (Debian postfix package) and this crate's pipelined client send mail for a remote domain to Cairn (release, one shard per core; MX listener with `relay_networks`, the message durably queued before each `250`, then delivered by the outbound queue to a smarthost), to a real Postfix relay (`mynetworks`, `relayhost`), and straight to the smarthost (the load generator's ceiling). The smarthost is smtp-sink counting (`-c`): a run ends when the last message has reached it. ops/s = messages relayed per second; ratio is to Postfix; latencies are per transaction, MAIL to the relay's `250` (smtp-source reports no latencies).\n\n{table}\n{}\n",
        smtp_load::command("smtp_relay", &args)
    );
    smtp_load::publish(&args, "SMTP relay vs Postfix", &body);
}
