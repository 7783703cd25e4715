//! Scenario "restart": how long a shard takes to open its storage as the
//! number of stored messages grows: first with no checkpoint (replay the
//! whole log into the mailstore and tables), then after a checkpoint was
//! written following the fill (load it, replay nothing after it).
//!
//! `cargo run --release -p cairn-benches --bin restart_time -- --write-results`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_benches::ResultsFile;
use cairn_storage::shard_store::ShardStore;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// Messages to store in all.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Accounts they are spread over.
    #[arg(long, default_value_t = 1_000)]
    accounts: u64,
    /// Body size in bytes (bodies differ, so each is stored).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Where the data goes (default: a temporary directory under benches/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rewrite this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

fn main() {
    let cli = Cli::parse();
    let base = cli
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target-bench-data"));
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let work = tempfile::tempdir_in(&base).unwrap_or_else(|e| panic!("tempdir: {e}"));
    let data = work.path().to_path_buf();
    let (messages, accounts, size) = (cli.messages, cli.accounts.max(1), cli.size);

    let fill_started = Instant::now();
    let log_bytes = cairn_shards::local::block_on(async {
        let (store, _) = ShardStore::open(&data, 0)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        for a in 0..accounts {
            store
                .mail
                .create_account(&format!("user{a}@example.org"), 0, 0)
                .await
                .unwrap_or_else(|e| panic!("account: {e}"));
        }
        // One writer per account, each appending its share in turn.
        let per_account = messages / accounts;
        let tasks: Vec<_> = (0..accounts)
            .map(|a| {
                let mail = store.mail.clone();
                cairn_shards::spawn(async move {
                    let account = format!("user{a}@example.org");
                    for i in 0..per_account {
                        let mut body = format!("Subject: {a}-{i}\r\n\r\n").into_bytes();
                        body.resize(size, b'.');
                        mail.append(&account, "INBOX", &body, Default::default(), 0)
                            .await
                            .unwrap_or_else(|e| panic!("append: {e}"));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let bytes = store.log.stats().bytes;
        store.log.close().await;
        bytes
    })
    .unwrap_or_else(|e| panic!("executor: {e}"));
    let fill = fill_started.elapsed();
    println!(
        "stored {messages} messages ({} MiB of log) in {:.1} s",
        log_bytes >> 20,
        fill.as_secs_f64()
    );

    let no_checkpoint = median_open(&data, messages, accounts, false);

    let (checkpoint_bytes, checkpoint_took) = cairn_shards::local::block_on(async {
        let (store, _) = ShardStore::open(&data, 0)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let started = Instant::now();
        let path = store
            .checkpoint()
            .await
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        let took = started.elapsed();
        store.log.close().await;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        (bytes, took)
    })
    .unwrap_or_else(|e| panic!("executor: {e}"));
    println!(
        "checkpoint of {} MiB written in {:.2} s",
        checkpoint_bytes >> 20,
        checkpoint_took.as_secs_f64()
    );
    let with_checkpoint = median_open(&data, messages, accounts, true);

    let row = |median: Duration, checkpoint: &str| {
        format!(
            "| {messages} messages × {size} B over {accounts} accounts | {} MiB | {:.2} s | {:.0} messages/s | {checkpoint} |",
            log_bytes >> 20,
            median.as_secs_f64(),
            messages as f64 / median.as_secs_f64()
        )
    };
    let rows = format!(
        "{}\n{}",
        row(no_checkpoint, "none"),
        row(
            with_checkpoint,
            &format!("yes ({} MiB)", checkpoint_bytes >> 20)
        )
    );
    println!("{rows}");
    if cli.write_results {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let body = format!(
            "Time for one shard to open its storage, median of 3 opens, {cores}-core machine. Without a checkpoint it \
             reads every segment and replays every record into the mailstore; with one (written after the fill, in \
             {:.2} s) it maps and validates the checkpoint, deserialises it, and replays only the log after it \
             (nothing here), so its time follows the size of the state, not the length of the log.\n\n\
             | stored | log size | open time | messages/s | checkpoint |\n|---|---|---|---|---|\n{rows}\n\n\
             Command: `cargo run --release -p cairn-benches --bin restart_time -- --messages {messages} --accounts {accounts} --size {size} --write-results`\n",
            checkpoint_took.as_secs_f64()
        );
        ResultsFile::default_path()
            .write_section(
                &format!("Storage: restart time, {cores}-core machine"),
                &body,
            )
            .unwrap_or_else(|e| panic!("write RESULTS.md: {e}"));
        println!("wrote benches/RESULTS.md");
    }
}

/// The median of 3 opens of shard 0; checks that nothing was lost and
/// whether a checkpoint was used.
fn median_open(data: &Path, messages: u64, accounts: u64, checkpoint: bool) -> Duration {
    let mut opens: Vec<Duration> = Vec::new();
    for _ in 0..3 {
        let took = cairn_shards::local::block_on(async {
            let started = Instant::now();
            let (store, report) = ShardStore::open(data, 0)
                .await
                .unwrap_or_else(|e| panic!("reopen: {e}"));
            let took = started.elapsed();
            let (_, _, used, _) = store
                .mail
                .quota("user0@example.org")
                .unwrap_or_else(|e| panic!("quota: {e}"));
            assert_eq!(used, messages / accounts, "open lost messages");
            assert_eq!(report.checkpoint.is_some(), checkpoint, "{report:?}");
            if !checkpoint {
                assert!(report.records >= messages * 2);
            }
            store.log.close().await;
            took
        })
        .unwrap_or_else(|e| panic!("executor: {e}"));
        println!(
            "open ({}) took {:.2} s",
            if checkpoint { "checkpoint" } else { "replay" },
            took.as_secs_f64()
        );
        opens.push(took);
    }
    opens.sort();
    opens[opens.len() / 2]
}
