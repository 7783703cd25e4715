//! Crash test of the segment log: a child appends and reports every
//! acknowledged record; the parent SIGKILLs it at a random moment, and a
//! fresh process must read back every acknowledged record intact. Fifty
//! rounds on the same log (CAIRN_CRASH_ROUNDS changes the count).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const CHILD: &str = env!("CARGO_BIN_EXE_log_crash_child");

fn pseudo_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    let rounds: u64 = std::env::var("CAIRN_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("seed {seed}");
    let mut acked: HashSet<u64> = HashSet::new();
    for round in 0..rounds {
        let mut child = Command::new(CHILD)
            .arg("append")
            .arg(&dir)
            .arg((round * 10_000_000).to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ")?.parse::<u64>().ok())
                .collect::<Vec<u64>>()
        });
        // Wait for the first ack so that every round kills a busy writer,
        // then a random 5–150 ms more.
        let delay = Duration::from_millis(5 + pseudo_random(&mut seed) % 145);
        std::thread::sleep(Duration::from_millis(30) + delay);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let acks = reader.join().expect("reader");
        acked.extend(acks);

        let out = Command::new(CHILD)
            .arg("verify")
            .arg(&dir)
            .output()
            .expect("verify");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("done"),
            "verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let have: HashSet<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("have ")?.parse().ok())
            .collect();
        let lost: Vec<&u64> = acked
            .iter()
            .filter(|id| !have.contains(id))
            .take(10)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged records lost: {lost:?} (seed {seed})"
        );
        assert!(
            text.contains("damaged 0"),
            "round {round}: damage in the middle of the log: {text}"
        );
    }
    assert!(
        acked.len() as u64 > rounds,
        "the children acknowledged almost nothing: {}",
        acked.len()
    );
    println!(
        "{} acknowledged records survived {rounds} SIGKILLs",
        acked.len()
    );
    let _ = Instant::now();
}
