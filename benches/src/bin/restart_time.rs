//! Scenario "restart": how long a shard takes to open its storage (replay
//! the whole log into the mailstore and tables) as the number of stored
//! messages grows. Checkpoints do not exist yet, so this is the
//! no-checkpoint figure that they will be measured against.
//!
//! `cargo run --release -p cairn-benches --bin restart_time -- --write-results`

use std::path::PathBuf;
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

    let mut opens: Vec<Duration> = Vec::new();
    for _ in 0..3 {
        let took = cairn_shards::local::block_on(async {
            let started = Instant::now();
            let (store, report) = ShardStore::open(&data, 0)
                .await
                .unwrap_or_else(|e| panic!("reopen: {e}"));
            let took = started.elapsed();
            let (_, _, used, _) = store
                .mail
                .quota("user0@example.org")
                .unwrap_or_else(|e| panic!("quota: {e}"));
            assert_eq!(used, messages / accounts, "replay lost messages");
            assert!(report.records >= messages * 2);
            store.log.close().await;
            took
        })
        .unwrap_or_else(|e| panic!("executor: {e}"));
        println!("open (replay) took {:.2} s", took.as_secs_f64());
        opens.push(took);
    }
    opens.sort();
    let median = opens[opens.len() / 2];
    let row = format!(
        "| {messages} messages × {size} B over {accounts} accounts | {} MiB | {:.2} s | {:.0} messages/s | none |",
        log_bytes >> 20,
        median.as_secs_f64(),
        messages as f64 / median.as_secs_f64()
    );
    println!("{row}");
    if cli.write_results {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let body = format!(
            "Time for one shard to open its storage (read every segment, replay every record into the mailstore), \
             median of 3 opens, {cores}-core machine. No checkpoint yet: restart time grows with the log; checkpoints \
             will be measured against this row.\n\n| stored | log size | open time | replay rate | checkpoint |\n|---|---|---|---|---|\n{row}\n\n\
             Command: `cargo run --release -p cairn-benches --bin restart_time -- --messages {messages} --accounts {accounts} --size {size} --write-results`\n"
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
