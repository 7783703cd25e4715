//! Measurements (count, wall time, hdrhistogram of latencies) and their
//! rendering as markdown rows in `benches/RESULTS.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;

/// What one side of a comparison did in one run.
pub struct Measurement {
    /// The server or system measured (e.g. "cairn-shards", "tokio").
    pub subject: String,
    /// Operations completed.
    pub ops: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Per-operation latency in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Measurement {
    /// An empty measurement with a histogram from 1 µs to 60 s.
    pub fn new(subject: &str) -> Self {
        Self {
            subject: subject.to_string(),
            ops: 0,
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
        }
    }

    /// Operations per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at percentile `p` (0–100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> u64 {
        self.latency_us.value_at_percentile(p)
    }

    /// One line for a terminal.
    pub fn summary(&self) -> String {
        format!(
            "{:<14} {:>10.0} ops/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  ({} ops in {:.2} s)",
            self.subject,
            self.throughput(),
            self.percentile_us(50.0),
            self.percentile_us(99.0),
            self.percentile_us(99.9),
            self.ops,
            self.elapsed.as_secs_f64()
        )
    }

    /// A markdown table row: scenario, subject, throughput, ratio to
    /// `baseline`, p50, p99, p99.9.
    pub fn markdown_row(&self, scenario: &str, baseline: &Measurement) -> String {
        let ratio = if baseline.throughput() > 0.0 {
            self.throughput() / baseline.throughput()
        } else {
            0.0
        };
        // A measurement without latencies (a tool that reports none)
        // shows dashes rather than zeros.
        let p = |q: f64| {
            if self.latency_us.is_empty() {
                "–".to_string()
            } else {
                self.percentile_us(q).to_string()
            }
        };
        format!(
            "| {scenario} | {} | {:.0} | {ratio:.2} | {} | {} | {} |",
            self.subject,
            self.throughput(),
            p(50.0),
            p(99.0),
            p(99.9)
        )
    }
}

/// A histogram of microseconds, 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are constants that hdrhistogram accepts.
        Histogram::new(3).unwrap_or_else(|e| panic!("histogram: {e}"))
    })
}

/// Records `d` in `h`, saturating at the histogram's top.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 60_000_000);
    h.saturating_record(us);
}

/// The header of every results table.
pub const TABLE_HEADER: &str =
    "| scenario | subject | ops/s | ratio to baseline | p50 µs | p99 µs | p99.9 µs |\n|---|---|---|---|---|---|---|";

/// `benches/RESULTS.md`, one section per scenario.
pub struct ResultsFile {
    path: PathBuf,
}

impl ResultsFile {
    /// The results file of this workspace.
    pub fn default_path() -> Self {
        Self {
            path: Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md"),
        }
    }

    /// Replaces (or adds) the section `## {scenario}` with `body`.
    pub fn write_section(&self, scenario: &str, body: &str) -> std::io::Result<()> {
        let old = std::fs::read_to_string(&self.path).unwrap_or_else(|_| {
            "# Benchmark results\n\nEach section is rewritten by the command shown in it.\n".into()
        });
        let heading = format!("## {scenario}\n");
        let mut out = String::new();
        let mut skipping = false;
        let mut replaced = false;
        for line in old.split_inclusive('\n') {
            if line.starts_with("## ") {
                skipping = line == heading;
                if skipping {
                    out.push_str(&heading);
                    out.push_str(body);
                    if !body.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push('\n');
                    replaced = true;
                    continue;
                }
            }
            if !skipping {
                out.push_str(line);
            }
        }
        if !replaced {
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&heading);
            out.push_str(body);
            out.push('\n');
        }
        std::fs::write(&self.path, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_not_duplicated() {
        let tmp = std::env::temp_dir().join(format!("cairn-results-{}.md", std::process::id()));
        let file = ResultsFile { path: tmp.clone() };
        file.write_section("a", "one\n").expect("write a");
        file.write_section("b", "two\n").expect("write b");
        file.write_section("a", "three\n").expect("rewrite a");
        let text = std::fs::read_to_string(&tmp).expect("read");
        let _ = std::fs::remove_file(&tmp);
        assert_eq!(text.matches("## a\n").count(), 1, "{text}");
        assert!(text.contains("## a\nthree\n"), "{text}");
        assert!(text.contains("## b\ntwo\n"), "{text}");
        assert!(!text.contains("one"), "{text}");
    }

    #[test]
    fn rows_carry_the_ratio_to_the_baseline() {
        let mut a = Measurement::new("a");
        a.ops = 200;
        a.elapsed = Duration::from_secs(1);
        let mut b = Measurement::new("b");
        b.ops = 100;
        b.elapsed = Duration::from_secs(1);
        record(&mut a.latency_us, Duration::from_micros(40));
        let row = a.markdown_row("s", &b);
        assert!(row.starts_with("| s | a | 200 | 2.00 | 40 |"), "{row}");
        let row = b.markdown_row("s", &b);
        assert!(row.ends_with("| 1.00 | – | – | – |"), "{row}");
    }
}
