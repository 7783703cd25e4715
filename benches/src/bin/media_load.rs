//! WebRTC SFU load, side by side in one run: Cairn's SFU (release build,
//! rooms API on its HTTP listener) and Janus 1.1's videoroom plugin
//! (Debian `janus`), driven by the same str0m load generator
//! (benches/src/rtc_load.rs) over the same veth pair into a network
//! namespace made for the run (benches/src/sfu_peers.rs): Janus's ICE
//! ignores loopback, and Cairn gets the same path.
//!
//! Scenarios: `fanout`, one publisher and `--subscribers` subscribers;
//! `meeting`, `--publishers` publishers each subscribed by all the others
//! (each flag takes a comma list of sizes).
//! Publishers send 30 VP8-like frames per second (1000–1200 bytes, ~270
//! kbit/s; a keyframe every 3 s and on request) and 50 Opus-sized audio
//! packets per second. After every client is connected and a warm-up,
//! one window of `--duration-secs` is measured: RTP packets received by
//! all subscribers (forwarded packets per second, and per core), frames
//! received against frames sent by their publishers in the window, the
//! added latency of each video frame (receive time minus the send stamp in
//! the frame), and the server's CPU time (/proc/PID/stat) per forwarded
//! megabit. Rounds alternate between the servers; the best of each is
//! kept. Datagrams are accounted for on the way: sent by the clients, read
//! by the server's process (the namespace's UDP counters), and, for Cairn,
//! seen by its SFU (`GET /api/v1/rooms`).
//!
//! Needs root (namespaces) and Debian `janus` (`apt-get install -y
//! --no-install-recommends janus`, after a policy-rc.d that stops it from
//! starting as a service):
//! `cargo build --release -p cairn -p cairn-benches && target/release/media_load
//! --scenario both --subscribers 100,200,400 --publishers 5,10 --write-results`

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_benches::appliance::workspace;
use cairn_benches::rtc_load::{Control, Pool, Tally};
use cairn_benches::sfu_peers::{cpu_seconds, udp_counters, Cairn, Janus, Netns, Sfu};
use cairn_benches::ResultsFile;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Scenario {
    Fanout,
    Meeting,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Cairn,
    Janus,
}

#[derive(Parser)]
struct Args {
    /// Which scenario(s) to run.
    #[arg(long, value_enum, default_value_t = Scenario::Both)]
    scenario: Scenario,
    /// Subscribers of the one publisher (fanout); a comma list runs each.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 200, 400])]
    subscribers: Vec<usize>,
    /// Publishers of the meeting, each subscribed by all the others; a
    /// comma list runs each.
    #[arg(long, value_delimiter = ',', default_values_t = [5, 10])]
    publishers: Vec<usize>,
    /// Seconds of the measured window of each round.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds between the last client connecting and the window.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Rounds per server and scenario (alternating); the best is kept.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Video only (no audio m-line).
    #[arg(long)]
    no_audio: bool,
    /// Cairn's shards (0: one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Run against one server only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The cairn binary (default: this workspace's release build).
    #[arg(long)]
    cairn: Option<PathBuf>,
    /// Replace this benchmark's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

/// One scenario at one size.
#[derive(Clone, Copy)]
struct Case {
    meeting: bool,
    /// Fan-out: subscribers; meeting: publishers.
    size: usize,
}

impl Case {
    fn label(&self) -> String {
        if self.meeting {
            format!("meeting {0}×{0}", self.size)
        } else {
            format!("fan-out 1→{}", self.size)
        }
    }
}

/// What one round measured.
struct Round {
    subject: String,
    scenario: String,
    cores: usize,
    secs: f64,
    tally: Tally,
    clients: usize,
    server_cpu: f64,
    loadgen_cpu: f64,
    setup_secs: f64,
    /// Datagrams the server received and dropped in the round (Cairn).
    server_datagrams: Option<(u64, u64)>,
    /// The namespace's UDP InDatagrams, InErrors, RcvbufErrors and
    /// SndbufErrors in the round, and this side's.
    udp_server: [u64; 4],
    udp_client: [u64; 4],
}

impl Round {
    fn pps(&self) -> f64 {
        self.tally.rtp_packets as f64 / self.secs.max(1e-9)
    }
    fn mbit(&self) -> f64 {
        self.tally.rtp_bytes as f64 * 8.0 / 1e6
    }
    fn pct(a: u64, b: u64) -> String {
        if b == 0 {
            "–".into()
        } else {
            format!("{:.1} %", a as f64 * 100.0 / b as f64)
        }
    }
    fn latency(&self, q: f64) -> String {
        if self.tally.latency_us.is_empty() {
            "–".into()
        } else {
            format!(
                "{:.2}",
                self.tally.latency_us.value_at_percentile(q) as f64 / 1000.0
            )
        }
    }

    fn row(&self, baseline: Option<&Round>) -> String {
        let ratio = baseline
            .filter(|b| b.pps() > 0.0)
            .map_or("–".into(), |b| format!("{:.2}", self.pps() / b.pps()));
        let t = &self.tally;
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {ratio} | {} ({}/{}) | {} | {} | {} | {} | {:.0} % | {:.4} | {:.0} % |",
            self.scenario,
            self.subject,
            self.pps(),
            self.pps() / self.cores.max(1) as f64,
            self.mbit() / self.secs.max(1e-9),
            Self::pct(t.video_received, t.video_expected),
            t.video_received,
            t.video_expected,
            Self::pct(t.audio_received, t.audio_expected),
            self.latency(50.0),
            self.latency(99.0),
            self.latency(99.9),
            self.server_cpu * 100.0 / self.secs.max(1e-9),
            self.server_cpu / self.mbit().max(1e-9),
            self.loadgen_cpu * 100.0 / self.secs.max(1e-9),
        )
    }

    /// Where the datagrams went: sent by the clients, taken in by the
    /// namespace's kernel, counted by the server (Cairn), and sent back.
    fn accounting(&self) -> String {
        let t = &self.tally;
        let server = match self.server_datagrams {
            Some((r, d)) => format!(
                ", Cairn's SFU counted {r} ({} short of the kernel's count, {d} dropped as unroutable)",
                self.udp_server[0].saturating_sub(r)
            ),
            None => String::new(),
        };
        format!(
            "{} {}: clients sent {} datagrams, the namespace's UDP took in {} (receive-buffer errors {}){server}; the clients took in {} (receive-buffer errors {}); video frames {}/{}, audio frames {}/{}, {} keyframe requests reached the publishers",
            self.scenario,
            self.subject,
            t.datagrams_sent,
            self.udp_server[0],
            self.udp_server[2],
            self.udp_client[0],
            self.udp_client[2],
            t.video_received,
            t.video_expected,
            t.audio_received,
            t.audio_expected,
            t.keyframe_requests,
        )
    }

    fn summary(&self) -> String {
        let t = &self.tally;
        format!(
            "{:<16} {:<6} {:>8.0} pkt/s  {:>6.1} Mbit/s  video {}/{}  audio {}/{}  latency p50 {} p99 {} p99.9 {} ms  server CPU {:.2} s  loadgen CPU {:.2} s  ({} clients, {} connected, {} failed, setup {:.1} s, {} keyframes, {} keyframe requests, {} gaps)",
            self.scenario,
            self.subject,
            self.pps(),
            self.mbit() / self.secs.max(1e-9),
            t.video_received,
            t.video_expected,
            t.audio_received,
            t.audio_expected,
            self.latency(50.0),
            self.latency(99.0),
            self.latency(99.9),
            self.server_cpu,
            self.loadgen_cpu,
            self.clients,
            t.connected,
            t.failed,
            self.setup_secs,
            t.keyframes,
            t.keyframe_requests,
            t.discontinuities,
        ) + &format!(
            "; UDP in the namespace: in {} errors {} rcvbuf {} sndbuf {}; on this side: in {} errors {} rcvbuf {} sndbuf {}",
            self.udp_server[0],
            self.udp_server[1],
            self.udp_server[2],
            self.udp_server[3],
            self.udp_client[0],
            self.udp_client[1],
            self.udp_client[2],
            self.udp_client[3],
        ) + &match self.server_datagrams {
            Some((r, d)) => format!(
                "; datagrams: clients sent {}, server received {r} (dropped {d}); clients received {}",
                t.datagrams_sent, t.datagrams_received
            ),
            None => format!(
                "; datagrams: clients sent {}, received {}",
                t.datagrams_sent, t.datagrams_received
            ),
        }
    }
}

const HEADER: &str = "| scenario | subject | forwarded pkt/s | per core | Mbit/s | ratio to Janus | video frames received | audio frames | latency p50 ms | p99 ms | p99.9 ms | server CPU | server CPU-s per forwarded Mbit | load generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// CPU seconds of this process.
fn self_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills an owned struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// One round of `case` against `sfu`.
fn round(sfu: &mut dyn Sfu, ns: &Netns, case: Case, args: &Args) -> Result<Round, String> {
    let audio = !args.no_audio;
    let control = Control::new();
    let mut pool = Pool::new(args.client_threads, control.clone());
    let setup = Instant::now();
    let (publishers, subs_each) = if case.meeting {
        (case.size, case.size.saturating_sub(1))
    } else {
        (1, case.size)
    };
    let sessions = publishers * (1 + subs_each);
    let counters0 = sfu.datagram_counters();
    let (udp_server0, udp_client0) = (ns.udp_counters(), host_udp());
    let mut room = sfu.create_room(0, publishers, sessions + 1)?;
    let result = (|| {
        for p in 0..publishers {
            pool.add(sfu.publish(&mut room, p, audio)?);
        }
        // Janus takes subscribers only for publishers whose connection is up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while control.connected.load(Ordering::SeqCst) < publishers {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} of {publishers} publishers connected in 20 s",
                    control.connected.load(Ordering::SeqCst)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in 0..publishers {
            // Meeting: publisher `p` is watched by each of the others.
            for _ in 0..subs_each {
                pool.add(sfu.subscribe(&room, p, audio)?);
            }
        }
        Ok::<(), String>(())
    })();
    if let Err(e) = result {
        pool.finish();
        sfu.close_room(room);
        return Err(e);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.connected.load(Ordering::SeqCst) + control.failed.load(Ordering::SeqCst)
        < sessions
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let setup_secs = setup.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(args.warmup_secs));
    let pid = sfu.pid();
    let length = Duration::from_secs(args.duration_secs);
    let (cpu0, self0) = (cpu_seconds(pid), self_cpu());
    let (start, end) = control.open_window(length);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let (cpu1, self1) = (cpu_seconds(pid), self_cpu());
    let secs = start.elapsed().as_secs_f64();
    // Frames sent in the window that are still on their way.
    std::thread::sleep(Duration::from_secs(1));
    let clients = pool.finish();
    let tally = Tally::of(&clients, &control);
    // Let the server drain what its socket still holds (its counter stops
    // moving) before the kernel's counters are read.
    let mut counters1 = sfu.datagram_counters();
    let settle = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = sfu.datagram_counters();
        if now == counters1 || Instant::now() > settle {
            break;
        }
        counters1 = now;
    }
    let (udp_server1, udp_client1) = (ns.udp_counters(), host_udp());
    let delta = |a: [u64; 4], b: [u64; 4]| std::array::from_fn(|i| b[i].saturating_sub(a[i]));
    let server_datagrams = match (counters0, counters1) {
        (Some((r0, d0)), Some((r1, d1))) => Some((r1 - r0, d1 - d0)),
        _ => None,
    };
    sfu.close_room(room);
    drop(clients);
    Ok(Round {
        subject: sfu.name(),
        scenario: case.label(),
        cores: sfu.cores(),
        secs: secs.min(length.as_secs_f64()),
        tally,
        clients: sessions,
        server_cpu: cpu1 - cpu0,
        loadgen_cpu: self1 - self0,
        setup_secs,
        server_datagrams,
        udp_server: delta(udp_server0, udp_server1),
        udp_client: delta(udp_client0, udp_client1),
    })
}

/// This namespace's UDP counters (see [`udp_counters`]).
fn host_udp() -> [u64; 4] {
    udp_counters(&std::fs::read_to_string("/proc/net/snmp").unwrap_or_default())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = args
        .cairn
        .clone()
        .unwrap_or_else(|| workspace().join("target/release/cairn"));
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("network namespace: {e} (this benchmark needs root)");
            std::process::exit(1);
        }
    };
    let load_before = load_average();
    let mut subjects: Vec<Box<dyn Sfu>> = Vec::new();
    if args.only != Some(Only::Cairn) {
        let dir = tmp.path().join("janus");
        match Janus::start(&ns, &dir) {
            Ok(j) => subjects.push(Box::new(j)),
            Err(e) => {
                eprintln!("janus: {e}");
                drop(subjects);
                drop(ns);
                std::process::exit(1);
            }
        }
    }
    if args.only != Some(Only::Janus) {
        let dir = tmp.path().join("cairn");
        std::fs::create_dir_all(&dir).expect("mkdir");
        match Cairn::start(&bin, &ns, &dir, args.shards) {
            Ok(c) => subjects.insert(0, Box::new(c)),
            Err(e) => {
                eprintln!("cairn: {e}");
                if let Ok(log) = std::fs::read_to_string(dir.join("cairn.log")) {
                    eprintln!("{log}");
                }
                drop(subjects);
                drop(ns);
                std::process::exit(1);
            }
        }
    }
    let fanout = args.scenario != Scenario::Meeting;
    let meeting = args.scenario != Scenario::Fanout;
    let scenarios: Vec<Case> = (args.subscribers.iter())
        .filter(|_| fanout)
        .map(|&size| Case {
            meeting: false,
            size,
        })
        .chain(
            args.publishers
                .iter()
                .filter(|_| meeting)
                .map(|&size| Case {
                    meeting: true,
                    size,
                }),
        )
        .collect();
    let mut best: Vec<Vec<Option<Round>>> = scenarios
        .iter()
        .map(|_| subjects.iter().map(|_| None).collect())
        .collect();
    let mut failures = Vec::new();
    for (si, scenario) in scenarios.iter().enumerate() {
        for _ in 0..args.rounds.max(1) {
            for (k, sfu) in subjects.iter_mut().enumerate() {
                if !sfu.alive() {
                    failures.push(format!("{} is no longer running", sfu.name()));
                    continue;
                }
                match round(sfu.as_mut(), &ns, *scenario, &args) {
                    Ok(r) => {
                        println!("{}", r.summary());
                        let slot = &mut best[si][k];
                        if slot.as_ref().is_none_or(|b| r.pps() > b.pps()) {
                            *slot = Some(r);
                        }
                    }
                    Err(e) => {
                        let line = format!("{} {}: {e}", scenario.label(), sfu.name());
                        eprintln!("{line}");
                        failures.push(line);
                    }
                }
                // Let the server settle between rounds.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let load_after = load_average();
    drop(subjects);
    drop(ns);

    let mut table = String::from(HEADER);
    table.push('\n');
    let mut accounting = String::new();
    for rounds in &best {
        let janus = rounds.iter().flatten().find(|r| r.subject == "janus");
        for r in rounds.iter().flatten() {
            table.push_str(&r.row(janus));
            table.push('\n');
            accounting.push_str(&format!("- {}\n", r.accounting()));
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let only = match args.only {
        Some(Only::Cairn) => " --only cairn",
        Some(Only::Janus) => " --only janus",
        None => "",
    };
    let scenario = match args.scenario {
        Scenario::Fanout => "fanout",
        Scenario::Meeting => "meeting",
        Scenario::Both => "both",
    };
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let audio = if args.no_audio {
        "no audio"
    } else {
        "plus 50 Opus-sized audio packets per second (80–120 bytes)"
    };
    let failed = if failures.is_empty() {
        String::new()
    } else {
        format!("\nFailures: {}.\n", failures.join("; "))
    };
    let shards = if args.shards == 0 { cores } else { args.shards };
    let body = format!(
        "WebRTC SFU load on a {cores}-core machine, the servers and the load generator sharing the cores: Cairn (release, {shards} shards, str0m 0.24 ICE-lite, frame forwarding; one room, so one shard forwards) against Janus 1.1.2 (Debian `janus`, videoroom plugin, HTTP transport, its default threading), in one run, with the same load generator (str0m 0.24 clients, {} thread(s), a UDP socket each) over the same veth pair into a network namespace made for the run (Janus's ICE ignores loopback). Each publisher sends 30 VP8-like frames/s (1000–1200 bytes, a 3000-byte keyframe every 3 s and on request), {audio}; fan-out 1→N: one publisher, N subscribers; meeting M×M: M publishers, each subscribed by the M−1 others. After all clients connect and {} s of warm-up, one {} s window per round; best of {} alternating rounds (the round with more forwarded pkt/s).\n\nforwarded pkt/s = RTP packets received by all subscribers in the window ÷ its length; per core = that ÷ the cores the server may use (Cairn: its shards; Janus: the machine's); video frames received = frames sent in the window that reached each subscriber (within 1 s after the window) ÷ those its publisher sent; latency = receive time − the send stamp inside the frame (publisher write to subscriber reassembly, both in the load generator, so it includes the load generator's own queueing); server CPU = utime+stime of the server's process over the window (100 % = one core); ratio = forwarded pkt/s ÷ Janus's (1.00 while both keep up with the offered load: compare CPU and latency). Load average before/after the run: {load_before} / {load_after}.\n\n{table}{failed}\nDatagram accounting of the rows above (the namespace's UDP counters from /proc/net/snmp; Cairn's own `received` counter from `GET /api/v1/rooms`):\n\n{accounting}\nCommand: `cargo build --release -p cairn -p cairn-benches && target/release/media_load --scenario {scenario} --subscribers {} --publishers {} --duration-secs {} --warmup-secs {} --rounds {} --client-threads {}{}{only} --write-results`\n",
        args.client_threads,
        args.warmup_secs,
        args.duration_secs,
        args.rounds,
        list(&args.subscribers),
        list(&args.publishers),
        args.duration_secs,
        args.warmup_secs,
        args.rounds,
        args.client_threads,
        if args.no_audio { " --no-audio" } else { "" },
    );
    println!("\n{body}");
    if args.write_results {
        ResultsFile::default_path()
            .write_section("Video SFU vs Janus", &body)
            .expect("write RESULTS.md");
    }
}
