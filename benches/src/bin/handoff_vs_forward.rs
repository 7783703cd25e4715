//! Scenario "hand-off vs forward": once a connection's account is known to
//! live on another shard, should the session move there or stay put? Two
//! shards; every connection's account lives on the shard that did not
//! accept it. Mode A hands the socket to the owning shard once, after the
//! `LOGIN` line, and serves the requests there; mode B keeps the socket on
//! the accepting shard and forwards every request to the owner with a mesh
//! call. The same tokio load generator drives both in the same run, the
//! modes alternating round by round; latencies are per round trip.
//!
//! `cargo run --release -p cairn-benches --bin handoff_vs_forward -- --connections 50 --requests 2000`

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::rr_protocol::{answer, Step, MAX_LINE};
use cairn_benches::{Measurement, ResultsFile};
use cairn_shards::net::{bind_tcp, TcpStream};
use cairn_shards::{
    hand_off, HandedOffSocket, Mesh, MeshEndpoint, Runtime, RuntimeConfig, ShardContext, ShardId,
    Shutdown,
};
use clap::Parser;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Cli {
    /// Connections, all open at once.
    #[arg(long, default_value_t = 50)]
    connections: u64,
    /// PING/PONG round trips per connection after its LOGIN.
    #[arg(long, default_value_t = 2000)]
    requests: u32,
    /// Load generator threads.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Rounds per mode (alternating); the rounds of a mode are merged.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Unmeasured rounds per mode first (the first runtime of a process
    /// starts slowly).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Capacity of each mesh queue.
    #[arg(long, default_value_t = 256)]
    capacity: usize,
    /// Do not pin the shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Rewrite this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

const SHARDS: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    HandOff,
    Forward,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::HandOff => "A: hand off",
            Mode::Forward => "B: forward",
        }
    }
}

fn main() {
    let cli = Cli::parse();
    for _ in 0..cli.warmup {
        for mode in [Mode::HandOff, Mode::Forward] {
            run_round(&cli, mode);
        }
    }
    let mut merged: Vec<(Mode, Round)> = Vec::new();
    for round in 1..=cli.rounds {
        for mode in [Mode::HandOff, Mode::Forward] {
            let r = run_round(&cli, mode);
            println!(
                "round {round} {}  accepted per shard {}",
                r.requests.summary(),
                r.accepted
            );
            match merged.iter_mut().find(|(m, _)| *m == mode) {
                Some((_, total)) => total.add(r),
                None => merged.push((mode, r)),
            }
        }
    }
    let find = |mode| merged.iter().find(|(m, _)| *m == mode).map(|(_, r)| r);
    let (Some(a), Some(b)) = (find(Mode::HandOff), find(Mode::Forward)) else {
        eprintln!("no rounds were run");
        return;
    };
    println!();
    for r in [a, b] {
        println!("{}", r.requests.summary());
    }
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let pct = |p| {
        ratio(
            a.requests.percentile_us(p) as f64,
            b.requests.percentile_us(p) as f64,
        )
    };
    println!(
        "ratio A/B: requests/s {:.2}, p50 {:.2}, p99 {:.2}, p99.9 {:.2}",
        ratio(a.requests.throughput(), b.requests.throughput()),
        pct(50.0),
        pct(99.0),
        pct(99.9),
    );
    let rr = "requests after login";
    let login = "login (+ hand-off in A)";
    let table = [
        TABLE_HEADER.to_string(),
        a.requests.markdown_row(rr, &b.requests),
        b.requests.markdown_row(rr, &b.requests),
        a.logins.markdown_row(login, &b.logins),
        b.logins.markdown_row(login, &b.logins),
    ]
    .join("\n");
    println!("\n{table}");
    if cli.write_results {
        write_results(&cli, &table);
    }
}

fn write_results(cli: &Cli, table: &str) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let command = format!(
        "cargo run --release -p cairn-benches --bin handoff_vs_forward -- --connections {} --requests {} --client-threads {} --rounds {} --warmup {} --capacity {}{} --write-results",
        cli.connections, cli.requests, cli.client_threads, cli.rounds, cli.warmup, cli.capacity,
        if cli.no_pin { " --no-pin" } else { "" }
    );
    let body = format!(
        "2 shards, every connection's account on the shard that did not accept it. A hands the socket \
         to the owning shard after LOGIN and serves there; B stays on the accepting shard and forwards \
         each request with a mesh call (queues of {cap}). Same load generator (tokio, {c} threads, \
         {k} connections at once, {r} PING/PONG round trips each), {n} alternating rounds per mode \
         merged after {w} unmeasured, on a {cores}-core machine. Ratio is to B; the login rows time LOGIN until its OK.\n\n\
         {table}\n\nCommand: `{command}`\n",
        cap = cli.capacity,
        c = cli.client_threads,
        k = cli.connections,
        r = cli.requests,
        n = cli.rounds,
        w = cli.warmup,
    );
    ResultsFile::default_path()
        .write_section(
            &format!("Session hand-off vs request forwarding, 2 shards, {cores}-core machine"),
            &body,
        )
        .unwrap_or_else(|e| panic!("write RESULTS.md: {e}"));
}

/// What one mode measured.
struct Round {
    requests: Measurement,
    logins: Measurement,
    /// Connections accepted per shard, e.g. `27/23`.
    accepted: String,
}

impl Round {
    fn add(&mut self, other: Round) {
        for (total, more) in [
            (&mut self.requests, other.requests),
            (&mut self.logins, other.logins),
        ] {
            total.ops += more.ops;
            total.elapsed += more.elapsed;
            total
                .latency_us
                .add(&more.latency_us)
                .unwrap_or_else(|e| panic!("merge histograms: {e}"));
        }
    }
}

/// Starts the server in `mode`, drives it, stops it.
fn run_round(cli: &Cli, mode: Mode) -> Round {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = RuntimeConfig {
        shards: SHARDS,
        pin: !cli.no_pin,
        blocking_threads: 1,
        name: "bench-shard".into(),
    };
    let shutdown = Shutdown::new();
    let bound = Arc::new(Listening::default());
    let runtime = match mode {
        Mode::HandOff => {
            let mesh = Mesh::<Handoff, ()>::new(SHARDS, cli.capacity);
            let bound = bound.clone();
            Runtime::start(&config, shutdown.clone(), move |ctx| {
                serve_handing_off(ctx, mesh.clone(), addr, bound.clone())
            })
        }
        Mode::Forward => {
            let mesh = Mesh::<u64, u64>::new(SHARDS, cli.capacity);
            let bound = bound.clone();
            Runtime::start(&config, shutdown.clone(), move |ctx| {
                serve_forwarding(ctx, mesh.clone(), addr, bound.clone())
            })
        }
    }
    .unwrap_or_else(|e| panic!("start the shards: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while bound.shards.load(Ordering::SeqCst) < SHARDS {
        assert!(
            Instant::now() < deadline && !shutdown.is_triggered(),
            "the shards did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let round = load(cli, mode, addr);
    shutdown.trigger();
    runtime
        .join()
        .unwrap_or_else(|e| panic!("stop the shards: {e}"));
    let accepted: Vec<_> = bound
        .accepted
        .iter()
        .map(|n| n.load(Ordering::Relaxed).to_string())
        .collect();
    Round {
        accepted: accepted.join("/"),
        ..round
    }
}

/// The shards' listeners: how many are bound, and how many connections
/// each accepted (the kernel spreads them by a hash of the addresses).
#[derive(Default)]
struct Listening {
    shards: AtomicUsize,
    accepted: [AtomicUsize; SHARDS],
}

// ---- the server -------------------------------------------------------------

/// A session on its way to the shard that owns its account.
struct Handoff {
    socket: HandedOffSocket,
    /// What the accepting shard read past the LOGIN line.
    read_ahead: Vec<u8>,
    account: u64,
}

/// The accounts a shard owns: a request counter each, the stand-in for
/// mailbox state that only the owner may touch.
#[derive(Clone, Default)]
struct Accounts(Rc<RefCell<HashMap<u64, u64>>>);

impl Accounts {
    fn touch(&self, account: u64) -> u64 {
        let mut map = self.0.borrow_mut();
        let n = map.entry(account).or_insert(0);
        *n += 1;
        *n
    }
}

/// The shard that owns every account of connections accepted on `shard`.
fn owner_for(shard: ShardId) -> ShardId {
    (shard + 1) % SHARDS
}

/// Mode A: read LOGIN, hand the socket to the owner, which serves the rest.
async fn serve_handing_off(
    ctx: ShardContext,
    mesh: Mesh<Handoff, ()>,
    addr: SocketAddr,
    bound: Arc<Listening>,
) {
    let Ok(ep) = mesh.join(ctx.id()).await else {
        ctx.shutdown().trigger();
        return;
    };
    let ep = Rc::new(ep);
    let accounts = Accounts::default();
    let served = ep.serve(move |_from, h: Handoff| {
        let stream = h.socket.into_stream();
        cairn_shards::spawn_detached(owned_session(
            stream,
            h.read_ahead,
            h.account,
            accounts.clone(),
        ));
        async {}
    });
    if served.is_err() {
        ctx.shutdown().trigger();
        return;
    }
    let owner = owner_for(ctx.id());
    accept_loop(&ctx, addr, &bound, |mut stream| {
        let ep = ep.clone();
        async move {
            let Some((account, read_ahead)) = read_login(&mut stream).await else {
                return;
            };
            let Ok(socket) = hand_off(stream) else {
                return;
            };
            let handoff = Handoff {
                socket,
                read_ahead,
                account,
            };
            // Fire and forget: the owner answers the LOGIN itself.
            let _ = ep.send(owner, handoff).await;
        }
    })
    .await;
}

/// Mode A, on the owner: the whole session after LOGIN.
async fn owned_session(mut stream: TcpStream, mut buf: Vec<u8>, account: u64, accounts: Accounts) {
    accounts.touch(account);
    if stream.write_all(b"OK\n").await.is_err() {
        return;
    }
    let mut chunk = [0u8; 128];
    loop {
        match answer(&buf) {
            Step::Reply { reply, consumed } => {
                accounts.touch(account);
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
                buf.drain(..consumed);
            }
            Step::Bad => return,
            Step::More => match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// Mode B: the session stays here; each request is a call to the owner.
async fn serve_forwarding(
    ctx: ShardContext,
    mesh: Mesh<u64, u64>,
    addr: SocketAddr,
    bound: Arc<Listening>,
) {
    let Ok(ep) = mesh.join(ctx.id()).await else {
        ctx.shutdown().trigger();
        return;
    };
    let ep = Rc::new(ep);
    let accounts = Accounts::default();
    let served = ep.serve(move |_from, account| {
        let n = accounts.touch(account);
        async move { n }
    });
    if served.is_err() {
        ctx.shutdown().trigger();
        return;
    }
    let owner = owner_for(ctx.id());
    accept_loop(&ctx, addr, &bound, |stream| {
        forwarding_session(stream, ep.clone(), owner)
    })
    .await;
}

/// Mode B, on the accepting shard.
async fn forwarding_session(mut stream: TcpStream, ep: Rc<MeshEndpoint<u64, u64>>, owner: ShardId) {
    let Some((account, mut buf)) = read_login(&mut stream).await else {
        return;
    };
    if ep.call(owner, account).await.is_err() || stream.write_all(b"OK\n").await.is_err() {
        return;
    }
    let mut chunk = [0u8; 128];
    loop {
        match answer(&buf) {
            Step::Reply { reply, consumed } => {
                if ep.call(owner, account).await.is_err() {
                    return;
                }
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
                buf.drain(..consumed);
            }
            Step::Bad => return,
            Step::More => match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// Binds `addr` on this shard (SO_REUSEPORT: the kernel spreads the
/// connections over the shards) and runs `session` for each connection
/// until shutdown.
async fn accept_loop<F, Fut>(ctx: &ShardContext, addr: SocketAddr, bound: &Listening, session: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let listener = match bind_tcp(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shard {}: bind {addr}: {e}", ctx.id());
            ctx.shutdown().trigger();
            return;
        }
    };
    bound.shards.fetch_add(1, Ordering::SeqCst);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            ctx.shutdown().wait().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => {
                if let Some(n) = bound.accepted.get(ctx.id()) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                let _ = stream.set_nodelay(true);
                cairn_shards::spawn_detached(session(stream));
            }
            Some(Err(_)) => continue,
            None => return,
        }
    }
}

/// Reads the first line, `LOGIN <account>`; returns the account and the
/// bytes read past the line.
async fn read_login(stream: &mut TcpStream) -> Option<(u64, Vec<u8>)> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(buf.get(..end)?).ok()?;
            let account = line.strip_prefix("LOGIN ")?.parse().ok()?;
            return Some((account, buf.split_off(end + 1)));
        }
        if buf.len() > MAX_LINE {
            return None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---- the load generator -----------------------------------------------------

/// Opens every connection at once; each logs in, then runs its round trips.
fn load(cli: &Cli, mode: Mode, addr: SocketAddr) -> Round {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("client runtime: {e}"));
    let requests = cli.requests;
    let start = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..cli.connections)
            .map(|account| tokio::spawn(client(addr, account, requests)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap_or_else(|e| panic!("client task: {e}")));
        }
        all
    });
    let elapsed = start.elapsed();
    let mut round = Round {
        requests: Measurement::new(mode.label()),
        logins: Measurement::new(mode.label()),
        accepted: String::new(),
    };
    for (rtt, login) in results {
        round
            .requests
            .latency_us
            .add(&rtt)
            .unwrap_or_else(|e| panic!("merge: {e}"));
        round
            .logins
            .latency_us
            .add(&login)
            .unwrap_or_else(|e| panic!("merge: {e}"));
    }
    for m in [&mut round.requests, &mut round.logins] {
        m.ops = m.latency_us.len();
        m.elapsed = elapsed;
    }
    round
}

type Histogram = hdrhistogram::Histogram<u64>;

/// One connection: LOGIN, then `requests` PING/PONG round trips; returns the
/// round-trip and login latencies.
async fn client(addr: SocketAddr, account: u64, requests: u32) -> (Histogram, Histogram) {
    let mut rtt = new_histogram();
    let mut login = new_histogram();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = s.set_nodelay(true);
    let mut reply = Vec::with_capacity(32);
    let took = round_trip(&mut s, format!("LOGIN {account}\n").as_bytes(), &mut reply).await;
    assert_eq!(reply, b"OK\n", "bad LOGIN reply");
    record(&mut login, took);
    for i in 0..requests {
        let took = round_trip(&mut s, format!("PING {i}\n").as_bytes(), &mut reply).await;
        assert_eq!(reply, format!("PONG {i}\n").as_bytes(), "bad reply");
        record(&mut rtt, took);
    }
    (rtt, login)
}

/// Writes `line` and reads one reply line into `reply`; returns the time
/// taken.
async fn round_trip(s: &mut tokio::net::TcpStream, line: &[u8], reply: &mut Vec<u8>) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut chunk = [0u8; 64];
    let t = Instant::now();
    s.write_all(line)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    reply.clear();
    while reply.last() != Some(&b'\n') {
        let n = s
            .read(&mut chunk)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(n > 0, "the server closed the connection");
        reply.extend_from_slice(&chunk[..n]);
    }
    t.elapsed()
}
