//! Scenario "durable deliveries": 5 KB messages made durable by one shard's
//! segment log (group commit: one write + one fdatasync per batch) against a
//! maildir-style baseline on the same disk in the same run (write a file,
//! fsync it, rename it into place, fsync the directory — what Postfix and
//! Dovecot local delivery do), with 1, 16 and 256 concurrent writers.
//!
//! `cargo run --release -p cairn-benches --bin durable_append -- --write-results`

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::{Measurement, ResultsFile};
use cairn_storage::log::{LogConfig, SegmentLog};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// Concurrent writers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    writers: Vec<usize>,
    /// Seconds each side runs per writer count.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 5 * 1024)]
    size: usize,
    /// Where the files go (default: a temporary directory under benches/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rewrite this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

fn message(size: usize, n: u64) -> Vec<u8> {
    let mut m = format!("Message-ID: <{n}@bench>\r\n\r\n").into_bytes();
    m.resize(size, b'x');
    m
}

fn cairn(dir: &Path, writers: usize, run_for: Duration, size: usize) -> Measurement {
    let dir = dir.to_path_buf();
    cairn_shards::local::block_on(async move {
        let (log, _) = SegmentLog::open(&dir, LogConfig::default(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("open log: {e}"));
        let hist = Rc::new(RefCell::new(new_histogram()));
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (log, hist) = (log.clone(), hist.clone());
                cairn_shards::spawn(async move {
                    let mut n = w as u64;
                    while start.elapsed() < run_for {
                        let body = message(size, n);
                        let t = Instant::now();
                        log.append(1, &body)
                            .await
                            .unwrap_or_else(|e| panic!("append: {e}"));
                        record(&mut hist.borrow_mut(), t.elapsed());
                        n += writers as u64;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let elapsed = start.elapsed();
        let stats = log.stats();
        log.close().await;
        let mut m = Measurement::new("cairn segment log");
        m.latency_us = hist.borrow().clone();
        m.ops = m.latency_us.len();
        m.elapsed = elapsed;
        println!(
            "  cairn: {} records in {} group commits ({:.1} per fdatasync)",
            stats.records,
            stats.commits,
            stats.records as f64 / stats.commits.max(1) as f64
        );
        m
    })
    .unwrap_or_else(|e| panic!("executor: {e}"))
}

fn maildir(dir: &Path, writers: usize, run_for: Duration, size: usize) -> Measurement {
    let (tmp, new) = (dir.join("tmp"), dir.join("new"));
    for d in [&tmp, &new] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (tmp, new) = (tmp.clone(), new.clone());
            std::thread::spawn(move || {
                let mut hist = new_histogram();
                let mut n = w as u64;
                let dir_handle =
                    std::fs::File::open(&new).unwrap_or_else(|e| panic!("open dir: {e}"));
                while start.elapsed() < run_for {
                    let body = message(size, n);
                    let t = Instant::now();
                    let name = format!("{n}.bench");
                    let tmp_path = tmp.join(&name);
                    let mut f =
                        std::fs::File::create(&tmp_path).unwrap_or_else(|e| panic!("create: {e}"));
                    f.write_all(&body).unwrap_or_else(|e| panic!("write: {e}"));
                    f.sync_all().unwrap_or_else(|e| panic!("fsync: {e}"));
                    std::fs::rename(&tmp_path, new.join(&name))
                        .unwrap_or_else(|e| panic!("rename: {e}"));
                    dir_handle
                        .sync_all()
                        .unwrap_or_else(|e| panic!("fsync dir: {e}"));
                    record(&mut hist, t.elapsed());
                    n += writers as u64;
                }
                hist
            })
        })
        .collect();
    let mut m = Measurement::new("maildir (fsync+rename)");
    for t in threads {
        let h = t
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        m.latency_us
            .add(&h)
            .unwrap_or_else(|e| panic!("merge: {e}"));
    }
    m.elapsed = start.elapsed();
    m.ops = m.latency_us.len();
    m
}

fn main() {
    let cli = Cli::parse();
    let base = match &cli.dir {
        Some(d) => d.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target-bench-data"),
    };
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
    let work = tempfile::tempdir_in(&base).unwrap_or_else(|e| panic!("tempdir: {e}"));
    let run_for = Duration::from_secs(cli.seconds);
    let mut rows = vec![TABLE_HEADER.to_string()];
    for &w in &cli.writers {
        let scenario = format!("{} KB, {w} writers", cli.size / 1024);
        println!("{scenario}");
        let c = cairn(&work.path().join(format!("log-{w}")), w, run_for, cli.size);
        let m = maildir(
            &work.path().join(format!("maildir-{w}")),
            w,
            run_for,
            cli.size,
        );
        println!("  {}\n  {}", c.summary(), m.summary());
        rows.push(c.markdown_row(&scenario, &m));
        rows.push(m.markdown_row(&scenario, &m));
    }
    let table = rows.join("\n");
    println!("\n{table}");
    if cli.write_results {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let command = format!(
            "cargo run --release -p cairn-benches --bin durable_append -- --writers {} --seconds {} --size {} --write-results",
            cli.writers.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(","),
            cli.seconds,
            cli.size
        );
        let body = format!(
            "Durable appends of {size}-byte messages on one shard: the segment log (O_DIRECT through io_uring, group \
             commit) against maildir-style delivery (write, fsync, rename, fsync dir; one thread per writer) on the \
             same disk, {secs} s each, {cores}-core machine. ops/s = acknowledged durable messages per second; \
             latency = time to acknowledgement; ratio is to maildir.\n\n{table}\n\nCommand: `{command}`\n",
            size = cli.size,
            secs = cli.seconds,
        );
        ResultsFile::default_path()
            .write_section(
                &format!("Storage: durable deliveries vs maildir, {cores}-core machine"),
                &body,
            )
            .unwrap_or_else(|e| panic!("write RESULTS.md: {e}"));
        println!("wrote benches/RESULTS.md");
    }
}
