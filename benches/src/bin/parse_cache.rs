//! Scenario "parse cache": what the digests made at delivery cost and what
//! they save. One shard's mailstore, the same realistic 5 KB MIME messages
//! (multipart/alternative, text and HTML, a dozen headers) in the same run:
//!
//! - delivery: durable deliveries with 16 concurrent writers, without a
//!   digester (the body alone) and with IMAP's digester (ENVELOPE,
//!   BODYSTRUCTURE and thread root made from the body on the blocking pool,
//!   their record appended once made, not waited for by the delivery);
//!   throughput, acknowledgement latency, log bytes (the digests waited
//!   for after the last delivery);
//! - reading a summary (what FETCH ENVELOPE BODYSTRUCTURE needs) on a
//!   cold cache: read the body and parse it, against read the digest
//!   record and decode it;
//! - what SEARCH reads of a message on a cold cache, for a header key
//!   (SUBJECT) and for a text key (BODY): read the body and parse it
//!   (header values, text of the text parts), against read the digest and
//!   from the MIME tree it keeps (decoded alone), read the header's range
//!   alone, or the text parts' ranges alone (one read when side by side),
//!   each decoded on its own: what the IMAP session does.
//!
//! `cargo run --release -p cairn-benches --bin parse_cache -- --write-results`

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use cairn_benches::report::{new_histogram, record, TABLE_HEADER};
use cairn_benches::{Measurement, ResultsFile};
use cairn_imap::message::{Parsed, Shape, TextReads};
use cairn_imap::session::summaries::Summary;
use cairn_shards::BlockingPool;
use cairn_storage::mailbox::{BlobRef, BODY_CHUNK};
use cairn_storage::shard_store::ShardStore;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// Messages delivered per side.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Accounts the messages are spread over.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Kinds of message by the size of their attachment in KiB
    /// (0: none), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,200")]
    attachments: Vec<usize>,
    /// Threads of the blocking pool digests are made on (0: one per core,
    /// as the appliance's default).
    #[arg(long, default_value_t = 0)]
    digest_threads: usize,
    /// Where the data goes (default: a temporary directory under benches/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rewrite this scenario's section of benches/RESULTS.md.
    #[arg(long)]
    write_results: bool,
}

/// A realistic message of about 5 KB, different for each `n`, with an
/// attachment of `attachment` bytes (base64, as mail carries it) if not 0.
fn message(n: usize, attachment: usize) -> Vec<u8> {
    let text = format!(
        "Hello team,\r\n\r\nHere are the notes of meeting {n}: budget review, the roadmap for the \
         next quarter and the hiring plan. Please read them before Thursday.\r\n"
    )
    .repeat(12);
    let html = format!(
        "<html><body><p>{}</p></body></html>\r\n",
        text.replace("\r\n", "<br>")
    );
    format!(
        "Return-Path: <alice{n}@sender.example>\r\n\
         Received: from mail.sender.example (mail.sender.example [192.0.2.7])\r\n\tby cairn.example with ESMTPS; Mon, 3 Mar 2025 10:00:00 +0000\r\n\
         From: Alice Example <alice{n}@sender.example>\r\n\
         To: Bob <bob@example.org>, Carol <carol@example.org>\r\n\
         Cc: Team <team@example.org>\r\n\
         Subject: Notes of meeting {n} =?utf-8?q?=C3=A9t=C3=A9?=\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n\
         Message-ID: <note{n}@sender.example>\r\n\
         In-Reply-To: <note{p}@sender.example>\r\n\
         References: <root@sender.example> <note{p}@sender.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/{kind}; boundary=\"b{n}\"\r\n\
         \r\n\
         --b{n}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n{text}\r\n\
         --b{n}\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         \r\n{html}\r\n\
         {attached}\
         --b{n}--\r\n",
        p = n.saturating_sub(1),
        attached = attached(n, attachment),
        kind = if attachment == 0 { "alternative" } else { "mixed" },
    )
    .into_bytes()
}

/// The attachment part of `message`: `size` bytes of base64 lines.
fn attached(n: usize, size: usize) -> String {
    if size == 0 {
        return String::new();
    }
    let line = format!("{:0<76}\r\n", format!("JVBERi0xLjcK{n}"));
    format!(
        "--b{n}\r\nContent-Type: application/pdf; name=\"report{n}.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report{n}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}",
        line.repeat(size / line.len() + 1)
    )
}

fn account(a: usize) -> String {
    format!("user{a}@example.org")
}

/// A blocking pool as a shard's (see `Cli::digest_threads`).
fn pool(cli: &Cli) -> BlockingPool {
    let threads = match cli.digest_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    BlockingPool::start(threads, 1024)
        .unwrap_or_else(|e| panic!("blocking pool: {e}"))
        .0
}

/// Delivers `cli.messages` messages into a fresh store at `dir`, with or
/// without IMAP's digester; the measurement, the log's bytes (digests
/// waited for), the delivered bodies' references, and the bodies left
/// without a digest (too many being made).
fn deliver(
    dir: &Path,
    cli: &Cli,
    attachment: usize,
    digests: bool,
) -> (Measurement, u64, Vec<(BlobRef, u64)>, u64) {
    let (dir, messages, writers, accounts) =
        (dir.to_path_buf(), cli.messages, cli.writers, cli.accounts);
    let pool = pool(cli);
    cairn_shards::local::block_on(async move {
        let (store, _) = ShardStore::open(&dir, 0)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        if digests {
            store.mail.digest_with(cairn_imap::DIGESTER, pool);
        }
        for a in 0..accounts {
            store
                .mail
                .create_account(&account(a), 0, 0)
                .await
                .unwrap_or_else(|e| panic!("account: {e}"));
        }
        let before = store.log.stats().bytes;
        let hist = Rc::new(RefCell::new(new_histogram()));
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (mail, hist) = (store.mail.clone(), hist.clone());
                cairn_shards::spawn(async move {
                    for n in (w..messages).step_by(writers) {
                        let body = message(n, attachment);
                        let to = [(account(n % accounts), "INBOX".to_string())];
                        let t = Instant::now();
                        for done in mail.deliver(&to, &body, 0).await {
                            done.unwrap_or_else(|e| panic!("deliver: {e}"));
                        }
                        record(&mut hist.borrow_mut(), t.elapsed());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let elapsed = start.elapsed();
        store.mail.digests_settled().await;
        let skipped = store.mail.reads().skipped_digests;
        let bytes = store.log.stats().bytes - before;
        let mut blobs = Vec::with_capacity(messages);
        for a in 0..accounts {
            let inbox = store
                .mail
                .messages(&account(a), "INBOX")
                .unwrap_or_else(|e| panic!("messages: {e}"));
            blobs.extend(inbox.into_iter().map(|m| (m.blob, m.size)));
        }
        store.log.close().await;
        let subject = if digests {
            "body + digest"
        } else {
            "body only"
        };
        let mut m = Measurement::new(subject);
        m.latency_us = hist.borrow().clone();
        m.ops = m.latency_us.len();
        m.elapsed = elapsed;
        (m, bytes, blobs, skipped)
    })
    .unwrap_or_else(|e| panic!("executor: {e}"))
}

/// The store at `dir` opened again (no cache in memory), with IMAP's
/// digester as the appliance gives it.
async fn reopened(dir: &Path, pool: BlockingPool) -> ShardStore {
    let (store, _) = ShardStore::open(dir, 0)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    store.mail.digest_with(cairn_imap::DIGESTER, pool);
    store
}

/// Makes the summary of every body in `blobs` after a reopen (no cache in
/// memory): from the digest record, or by reading and parsing the body (a
/// body without a digest is parsed, as IMAP would).
fn summaries(dir: &Path, cli: &Cli, blobs: &[(BlobRef, u64)], from_digest: bool) -> Measurement {
    let (dir, blobs) = (dir.to_path_buf(), blobs.to_vec());
    let pool = pool(cli);
    cairn_shards::local::block_on(async move {
        let store = reopened(&dir, pool).await;
        let mut m = Measurement::new(if from_digest {
            "read digest + decode"
        } else {
            "read body + parse"
        });
        let start = Instant::now();
        for (blob, _) in &blobs {
            let t = Instant::now();
            let digest = if from_digest {
                store
                    .mail
                    .digest(blob)
                    .await
                    .unwrap_or_else(|e| panic!("digest: {e}"))
            } else {
                None
            };
            let summary = if let Some(digest) = digest {
                Summary::from_digest(&digest)
            } else {
                let body = body(&store, blob).await;
                Some(Summary::of(&Parsed::parse(&body)))
            };
            assert!(summary.is_some_and(|s| s.envelope.subject.0.is_some()));
            record(&mut m.latency_us, t.elapsed());
        }
        m.elapsed = start.elapsed();
        m.ops = m.latency_us.len();
        store.log.close().await;
        m
    })
    .unwrap_or_else(|e| panic!("executor: {e}"))
}

/// What SEARCH reads of a message.
#[derive(Clone, Copy, PartialEq)]
enum Searched {
    /// The values of a header field (SUBJECT).
    Subject,
    /// The text of the text parts (BODY).
    Body,
}

/// The body `blob`, read whole.
async fn body(store: &ShardStore, blob: &BlobRef) -> Vec<u8> {
    store
        .mail
        .body(blob)
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
}

/// The bytes `range` of `blob`, read as a session reads a range.
async fn read_range(store: &ShardStore, blob: &BlobRef, range: std::ops::Range<usize>) -> Vec<u8> {
    let range = range.start as u64..range.end as u64;
    let mut reader = store
        .mail
        .body_reader(blob, Some(range))
        .await
        .unwrap_or_else(|e| panic!("range: {e}"));
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("chunk: {e}")));
    }
    out
}

/// How a search reads a message.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// Reads the body whole and parses it.
    Parse,
    /// Reads the digest, decodes its MIME tree, reads the ranges.
    DigestRanges,
    /// Reads the ranges of a MIME tree already in memory.
    KeptRanges,
}

/// The MIME tree of `blob` (of `size` bytes) kept in its digest (`None`:
/// it was left without one; it is then parsed, as the session would).
async fn kept_tree(store: &ShardStore, blob: &BlobRef, size: u64) -> Option<Shape> {
    let digest = store
        .mail
        .digest(blob)
        .await
        .unwrap_or_else(|e| panic!("digest: {e}"));
    let tree = digest
        .as_deref()
        .and_then(Summary::tree_from_digest)
        .flatten();
    tree.filter(|t| t.size() == size)
}

/// Reads what SEARCH reads of every body in `blobs` after a reopen (no
/// cache in memory, but for [`Reading::KeptRanges`] the trees) and looks
/// for a word in it.
fn searches(
    dir: &Path,
    cli: &Cli,
    blobs: &[(BlobRef, u64)],
    what: Searched,
    how: Reading,
) -> Measurement {
    let (dir, blobs) = (dir.to_path_buf(), blobs.to_vec());
    let pool = pool(cli);
    cairn_shards::local::block_on(async move {
        let store = reopened(&dir, pool).await;
        let mut m = Measurement::new(match how {
            Reading::Parse => "read body + parse",
            Reading::DigestRanges => "read digest + ranges",
            Reading::KeptRanges => "tree in memory, ranges",
        });
        let mut trees = Vec::new();
        if how == Reading::KeptRanges {
            for (blob, size) in &blobs {
                trees.push(kept_tree(&store, blob, *size).await);
            }
        }
        let start = Instant::now();
        let mut found = 0;
        for (i, (blob, size)) in blobs.iter().enumerate() {
            let t = Instant::now();
            let tree = match how {
                Reading::Parse => None,
                Reading::DigestRanges => kept_tree(&store, blob, *size).await,
                Reading::KeptRanges => trees.get(i).cloned().flatten(),
            };
            let text = if let Some(tree) = tree {
                let reads =
                    TextReads::new(&tree, what == Searched::Subject, what == Searched::Body);
                let spans = reads.spans(BODY_CHUNK);
                let mut read = Vec::with_capacity(spans.len());
                for span in &spans {
                    read.push(read_range(&store, blob, span.clone()).await);
                }
                match reads.text(reads.cut(&spans, &read)) {
                    (header, None) => Parsed::parse(&header).header_values("Subject").concat(),
                    (_, Some(text)) => text,
                }
            } else {
                let body = body(&store, blob).await;
                let parsed = Parsed::parse(&body);
                match what {
                    Searched::Subject => parsed.header_values("Subject").concat(),
                    Searched::Body => parsed.body_text(),
                }
            };
            found += usize::from(text.to_lowercase().contains("meeting 7"));
            record(&mut m.latency_us, t.elapsed());
        }
        assert!(found > 0, "the word was found nowhere");
        m.elapsed = start.elapsed();
        m.ops = m.latency_us.len();
        store.log.close().await;
        m
    })
    .unwrap_or_else(|e| panic!("executor: {e}"))
}

/// The rows of one kind of message, and its log bytes per message with
/// and without digests.
fn scenario(work: &Path, cli: &Cli, attachment: usize) -> (Vec<String>, String) {
    let size = message(0, attachment).len();
    let dir = work.join(format!("attachment-{attachment}"));
    let (plain_dir, digest_dir) = (dir.join("plain"), dir.join("digest"));
    let (plain, plain_bytes, ..) = deliver(&plain_dir, cli, attachment, false);
    let (digested, digest_bytes, blobs, skipped) = deliver(&digest_dir, cli, attachment, true);
    println!("  {}\n  {}", plain.summary(), digested.summary());
    if skipped > 0 {
        println!(
            "  {skipped} bodies left without a digest (too many being made): parsed when read"
        );
    }
    let parse = summaries(&digest_dir, cli, &blobs, false);
    let cached = summaries(&digest_dir, cli, &blobs, true);
    println!("  {}\n  {}", parse.summary(), cached.summary());
    let mut search_rows = Vec::new();
    for (what, name) in [(Searched::Subject, "SUBJECT"), (Searched::Body, "BODY")] {
        let parse = searches(&digest_dir, cli, &blobs, what, Reading::Parse);
        let row = format!("{size} B: SEARCH {name}, cold cache");
        search_rows.push(parse.markdown_row(&row, &parse));
        for how in [Reading::DigestRanges, Reading::KeptRanges] {
            let ranges = searches(&digest_dir, cli, &blobs, what, how);
            println!("  {}\n  {}", parse.summary(), ranges.summary());
            search_rows.push(ranges.markdown_row(&row, &parse));
        }
    }
    let per_message = |bytes: u64| bytes as f64 / cli.messages as f64;
    let delivery = format!("deliver {size} B, {} writers", cli.writers);
    let reading = format!("{size} B: summary, cold cache");
    let rows = vec![
        plain.markdown_row(&delivery, &plain),
        digested.markdown_row(&delivery, &plain),
        parse.markdown_row(&reading, &parse),
        cached.markdown_row(&reading, &parse),
    ]
    .into_iter()
    .chain(search_rows)
    .collect();
    let bytes = format!(
        "{size} B messages: {:.0} log bytes per delivered message without digests, {:.0} with ({:+.1} %).",
        per_message(plain_bytes),
        per_message(digest_bytes),
        (per_message(digest_bytes) / per_message(plain_bytes) - 1.0) * 100.0
    );
    (rows, bytes)
}

fn main() {
    let cli = Cli::parse();
    let base = match &cli.dir {
        Some(d) => d.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target-bench-data"),
    };
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
    let work = tempfile::tempdir_in(&base).unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut rows = vec![TABLE_HEADER.to_string()];
    let mut bytes = Vec::new();
    for &attachment in &cli.attachments {
        let (more, b) = scenario(work.path(), &cli, attachment * 1024);
        rows.extend(more);
        bytes.push(b);
    }
    let (table, bytes) = (rows.join("\n"), bytes.join(" "));
    println!("\n{table}\n\n{bytes}");
    if cli.write_results {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let kib: Vec<String> = cli.attachments.iter().map(|a| a.to_string()).collect();
        let command = format!(
            "cargo run --release -p cairn-benches --bin parse_cache -- --messages {} --writers {} --accounts {} --attachments {} --write-results",
            cli.messages, cli.writers, cli.accounts, kib.join(",")
        );
        let body = format!(
            "One shard's mailstore, {messages} realistic MIME messages a kind (text and HTML alternatives, a dozen \
             headers; then the same with a base64 attachment of {} KiB) over {accounts} accounts, {cores}-core \
             machine, one run. Delivery: durable deliveries by {writers} concurrent writers without a digester and \
             with IMAP's (ENVELOPE, BODY, BODYSTRUCTURE and thread root made from the body on the blocking pool, in \
             IMAP wire form, appended once made; the delivery does not wait for it); ratio is to the body alone. Summary on a cold cache (after a reopen; \
             what `FETCH ENVELOPE BODYSTRUCTURE` needs per message): read the body and parse it, against read the \
             digest's record and decode it, one message at a time; ratio is to parsing. SEARCH on a cold cache \
             (what a header key, SUBJECT, and a text key, BODY, read of each message, and a substring looked for \
             in it): read the body and parse it (header values; text of the text parts, decoded), against read \
             the digest and, from the MIME tree it keeps (decoded alone), the header's range alone or the text \
             parts' ranges alone (one read when side by side), each decoded on its own; and the same reads with \
             the tree already in memory (the session's summary cache holds it once a message was fetched); ratio \
             is to parsing. From these rows, the IMAP session reads a message of at most 64 KiB whose summary is \
             not in memory whole and parses it (one read, as its digest would be), and uses the ranges otherwise.\n\n\
             {table}\n\n{bytes}\n\nCommand: `{command}`\n",
            kib.join(" and "),
            messages = cli.messages,
            accounts = cli.accounts,
            writers = cli.writers,
        );
        ResultsFile::default_path()
            .write_section(
                &format!("Storage: parse cache at delivery, {cores}-core machine"),
                &body,
            )
            .unwrap_or_else(|e| panic!("write RESULTS.md: {e}"));
        println!("wrote benches/RESULTS.md");
    }
}
