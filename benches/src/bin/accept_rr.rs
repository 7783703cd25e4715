//! Scenario "accept + request/response": the shard runtime (cairn-shards)
//! against a tokio multi-threaded server doing the same work, driven by the
//! same load generator in the same run. Each server runs in its own child
//! process; the driver alternates them round by round.
//!
//! `cargo run --release -p cairn-benches --bin accept_rr -- --write-results`

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::{Measurement, ResultsFile};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    serve: Option<Serve>,
    /// Connections opened in total per round and server.
    #[arg(long, default_value_t = 20_000)]
    connections: u64,
    /// Connections open at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Request/response round trips per connection.
    #[arg(long, default_value_t = 10)]
    requests: u32,
    /// Server threads: shards for cairn, workers for tokio.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Load generator threads.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Rounds per server (alternating); the best round of each is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Do not pin the shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Rewrite this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

#[derive(Subcommand)]
enum Serve {
    /// Internal: run one server until killed.
    Serve {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        no_pin: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Kind {
    Shards,
    Tokio,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Shards => "cairn-shards",
            Kind::Tokio => "tokio",
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(Serve::Serve {
        kind,
        port,
        threads,
        no_pin,
    }) = cli.serve
    {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match kind {
            Kind::Shards => serve_shards(addr, threads, !no_pin),
            Kind::Tokio => serve_tokio(addr, threads),
        }
        return;
    }
    drive(&cli);
}

fn serve_shards(addr: SocketAddr, threads: usize, pin: bool) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let config = cairn_shards::RuntimeConfig {
        shards: threads,
        pin,
        ..Default::default()
    };
    let shutdown = cairn_shards::Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        eprintln!("signals: {e}");
        return;
    }
    let started = cairn_shards::Runtime::start(&config, shutdown, move |ctx| async move {
        let listener = match cairn_shards::net::bind_tcp(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bind: {e}");
                return;
            }
        };
        loop {
            let accepted =
                futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    ctx.shutdown().wait().await;
                    None
                })
                .await;
            let Some(Ok(mut stream)) = accepted else {
                break;
            };
            cairn_shards::spawn_detached(async move {
                let _ = stream.set_nodelay(true);
                cairn_benches::serve_rr!(stream);
            });
        }
    });
    match started {
        Ok(rt) => {
            let _ = rt.join();
        }
        Err(e) => eprintln!("runtime: {e}"),
    }
}

fn serve_tokio(addr: SocketAddr, threads: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bind: {e}");
                return;
            }
        };
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                cairn_benches::serve_rr!(stream);
            });
        }
    });
}

/// A server child process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(kind: Kind, threads: usize, no_pin: bool) -> (Server, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let child = Command::new(exe)
        .args([
            "serve",
            "--kind",
            if kind == Kind::Shards {
                "shards"
            } else {
                "tokio"
            },
        ])
        .args([
            "--port",
            &port.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args(no_pin.then_some("--no-pin"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn server: {e}"));
    let server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{kind:?} server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, addr)
}

/// Requests and connections measured in one round.
struct Round {
    requests: Measurement,
    connections: Measurement,
}

fn load(cli: &Cli, kind: Kind, addr: SocketAddr) -> Round {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("client runtime: {e}"));
    let left = Arc::new(AtomicU64::new(cli.connections));
    let requests = cli.requests;
    let start = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..cli.concurrency {
            let left = left.clone();
            tasks.push(tokio::spawn(async move {
                let mut rtt = new_histogram();
                let mut conn = new_histogram();
                let mut line = Vec::with_capacity(32);
                let mut reply = [0u8; 32];
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let opened = Instant::now();
                    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    for i in 0..requests {
                        line.clear();
                        line.extend_from_slice(format!("PING {i}\n").as_bytes());
                        let t = Instant::now();
                        if s.write_all(&line).await.is_err() {
                            break;
                        }
                        let want = line.len();
                        let mut got = 0;
                        while got < want {
                            match s.read(&mut reply[got..]).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got += n,
                            }
                        }
                        assert_eq!(&reply[..4], b"PONG", "bad reply from the server");
                        record(&mut rtt, t.elapsed());
                    }
                    drop(s);
                    record(&mut conn, opened.elapsed());
                }
                (rtt, conn)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap_or_else(|e| panic!("client task: {e}")));
        }
        all
    });
    let elapsed = start.elapsed();
    let mut requests_m = Measurement::new(kind.label());
    let mut conns_m = Measurement::new(kind.label());
    for (rtt, conn) in results {
        requests_m
            .latency_us
            .add(&rtt)
            .unwrap_or_else(|e| panic!("merge: {e}"));
        conns_m
            .latency_us
            .add(&conn)
            .unwrap_or_else(|e| panic!("merge: {e}"));
    }
    requests_m.ops = requests_m.latency_us.len();
    requests_m.elapsed = elapsed;
    conns_m.ops = conns_m.latency_us.len();
    conns_m.elapsed = elapsed;
    Round {
        requests: requests_m,
        connections: conns_m,
    }
}

fn drive(cli: &Cli) {
    let mut best: Vec<(Kind, Round)> = Vec::new();
    for round in 1..=cli.rounds {
        for kind in [Kind::Shards, Kind::Tokio] {
            let (server, addr) = start_server(kind, cli.threads, cli.no_pin);
            let r = load(cli, kind, addr);
            drop(server);
            println!("round {round} {}", r.requests.summary());
            match best.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, b)) if b.requests.throughput() >= r.requests.throughput() => {}
                Some(slot) => slot.1 = r,
                None => best.push((kind, r)),
            }
        }
    }
    let (Some(shards), Some(tokio)) = (
        best.iter()
            .find(|(k, _)| *k == Kind::Shards)
            .map(|(_, r)| r),
        best.iter().find(|(k, _)| *k == Kind::Tokio).map(|(_, r)| r),
    ) else {
        panic!("no rounds were run");
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rr = "accept + request/response";
    let cc = "connection cycle (connect, requests, close)";
    let table = [
        TABLE_HEADER.to_string(),
        shards.requests.markdown_row(rr, &tokio.requests),
        tokio.requests.markdown_row(rr, &tokio.requests),
        shards.connections.markdown_row(cc, &tokio.connections),
        tokio.connections.markdown_row(cc, &tokio.connections),
    ]
    .join("\n");
    println!("\n{table}");
    if cli.write_results {
        let command = format!(
            "cargo run --release -p cairn-benches --bin accept_rr -- --connections {} --concurrency {} --requests {} --threads {} --client-threads {} --rounds {}{} --write-results",
            cli.connections, cli.concurrency, cli.requests, cli.threads, cli.client_threads, cli.rounds,
            if cli.no_pin { " --no-pin" } else { "" }
        );
        let body = format!(
            "Shard runtime (glommio, {t} shards, SO_REUSEPORT) against tokio multi-thread ({t} workers), \
             same load generator (tokio, {c} threads, {k} connections open at once, {r} PING/PONG round trips per \
             connection), best of {n} alternating rounds each, on a {cores}-core machine. Ratio is to tokio; \
             latencies are per round trip (first two rows) and per whole connection (last two).\n\n{table}\n\n\
             Command: `{command}`\n",
            t = cli.threads,
            c = cli.client_threads,
            k = cli.concurrency,
            r = cli.requests,
            n = cli.rounds,
        );
        ResultsFile::default_path()
            .write_section(
                &format!(
                    "Shard runtime vs tokio: accept + request/response, {} server threads, {cores}-core machine",
                    cli.threads
                ),
                &body,
            )
            .unwrap_or_else(|e| panic!("write RESULTS.md: {e}"));
        println!("wrote benches/RESULTS.md");
    }
}
