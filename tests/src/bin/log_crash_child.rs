//! The child of the crash test: `append DIR FIRST_ID` appends records with
//! 32 concurrent writers and prints `ack ID` for each one the log has made
//! durable, until it is killed; `verify DIR` opens the log and prints
//! `have ID` for every record that reads back intact, then `done`.

use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

use cairn_storage::log::{LogConfig, SegmentLog};

/// The deterministic payload of record `id` (100 to 6,000 bytes).
fn payload(id: u64) -> Vec<u8> {
    let len = 100 + (id.wrapping_mul(2_654_435_761) % 5_900) as usize;
    let mut out = format!("id={id};").into_bytes();
    out.extend((0..len).map(|i| b'a' + ((id as usize + i) % 26) as u8));
    out
}

fn id_of(payload: &[u8]) -> Option<u64> {
    let text =
        std::str::from_utf8(payload.get(3..payload.iter().position(|&b| b == b';')?)?).ok()?;
    text.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: log_crash_child append DIR FIRST_ID | verify DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let first: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let config = LogConfig {
        segment_bytes: 1024 * 1024,
        max_batch_bytes: 256 * 1024,
        ..LogConfig::default()
    };
    let verify = mode == "verify";
    let ran = cairn_shards::local::block_on(async move {
        let mut intact = Vec::new();
        let (log, report) = SegmentLog::open(&dir, config, |r| {
            if let Some(id) = id_of(r.payload).filter(|&id| payload(id) == r.payload) {
                intact.push(id);
            }
        })
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
        if verify {
            let mut out = std::io::stdout().lock();
            for id in intact {
                let _ = writeln!(out, "have {id}");
            }
            let _ = writeln!(out, "damaged {}", report.damaged.len());
            let _ = writeln!(out, "done");
            log.close().await;
            return;
        }
        let next = Rc::new(std::cell::Cell::new(first));
        let writers: Vec<_> = (0..32)
            .map(|_| {
                let (log, next) = (log.clone(), next.clone());
                cairn_shards::spawn(async move {
                    loop {
                        let id = next.get();
                        next.set(id + 1);
                        if log.append(1, &payload(id)).await.is_ok() {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "ack {id}");
                            let _ = out.flush();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await;
        }
    });
    if let Err(e) = ran {
        eprintln!("executor: {e}");
        std::process::exit(1);
    }
}
