//! Storage's metric families: what each shard's log has written (and
//! compaction removed), what recovery found at start, how many bodies and
//! digests were read back (and bodies streamed), how logins went,
//! and what the accounts' Bayes classifiers learned and said.

use cairn_shards::metrics::Metrics;
use cairn_shards::ShardId;
use prometheus::{IntCounterVec, Opts};

use crate::bayes::{Class, Classification};
use crate::directory::auth::{AuthError, Principal};
use crate::log::{LogStats, RecoveryReport};
use crate::mailbox::Reads;

/// The storage families, registered with the appliance's metrics.
pub struct StorageMetrics {
    commits: IntCounterVec,
    records: IntCounterVec,
    bytes: IntCounterVec,
    failed: IntCounterVec,
    recovered: IntCounterVec,
    damaged: IntCounterVec,
    torn: IntCounterVec,
    compacted_segments: IntCounterVec,
    compacted_bytes: IntCounterVec,
    body_reads: IntCounterVec,
    digest_reads: IntCounterVec,
    digests_rejected: IntCounterVec,
    digests_skipped: IntCounterVec,
    body_streams: IntCounterVec,
}

fn family(name: &str, help: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &["shard"])
        .unwrap_or_else(|e| panic!("metric definition {name}: {e}"))
}

impl StorageMetrics {
    /// Defines the families and registers them.
    pub fn new(metrics: &Metrics) -> Self {
        let m = Self {
            commits: family(
                "cairn_storage_group_commits_total",
                "Group commits (one write and one fdatasync each).",
            ),
            records: family("cairn_storage_records_total", "Records made durable."),
            bytes: family("cairn_storage_bytes_total", "Record bytes made durable."),
            failed: family(
                "cairn_storage_failed_commits_total",
                "Group commits that failed (disk full, I/O errors).",
            ),
            recovered: family(
                "cairn_storage_recovered_records_total",
                "Records replayed at start.",
            ),
            damaged: family(
                "cairn_storage_recovery_damaged_records_total",
                "Corrupt records skipped at start.",
            ),
            torn: family(
                "cairn_storage_recovery_torn_tails_total",
                "Torn tails cut off at start.",
            ),
            compacted_segments: family(
                "cairn_storage_compaction_segments_removed_total",
                "Sealed segment files removed by compaction.",
            ),
            compacted_bytes: family(
                "cairn_storage_compaction_bytes_reclaimed_total",
                "Bytes of the segment files removed by compaction.",
            ),
            body_reads: family(
                "cairn_storage_body_reads_total",
                "Message bodies read back from the log.",
            ),
            digest_reads: family(
                "cairn_storage_digest_reads_total",
                "Message digests (parse caches) read back from the log instead of a body.",
            ),
            digests_rejected: family(
                "cairn_storage_digests_rejected_total",
                "Digests read back that their reader could not decode (it parsed the body instead).",
            ),
            digests_skipped: family(
                "cairn_storage_digests_skipped_total",
                "New bodies left without a digest because too many were being made (parsed when read).",
            ),
            body_streams: family(
                "cairn_storage_body_streams_total",
                "Message bodies (or ranges of them) read in chunks, streamed to a client.",
            ),
        };
        for f in [
            &m.commits,
            &m.records,
            &m.bytes,
            &m.failed,
            &m.recovered,
            &m.damaged,
            &m.torn,
            &m.compacted_segments,
            &m.compacted_bytes,
            &m.body_reads,
            &m.digest_reads,
            &m.digests_rejected,
            &m.digests_skipped,
            &m.body_streams,
        ] {
            metrics.register(f);
        }
        m
    }

    /// Counts what recovery did on `shard`.
    pub fn recovered(&self, shard: ShardId, report: &RecoveryReport) {
        let s = shard.to_string();
        self.recovered
            .with_label_values(&[&s])
            .inc_by(report.records);
        self.damaged
            .with_label_values(&[&s])
            .inc_by(report.damaged.len() as u64);
        self.torn
            .with_label_values(&[&s])
            .inc_by(u64::from(report.torn_tail.is_some()));
    }

    /// Adds what the log did since the last sample.
    pub fn sample(&self, shard: ShardId, now: LogStats, last: &mut LogStats) {
        let s = shard.to_string();
        self.commits
            .with_label_values(&[&s])
            .inc_by(now.commits - last.commits);
        self.records
            .with_label_values(&[&s])
            .inc_by(now.records - last.records);
        self.bytes
            .with_label_values(&[&s])
            .inc_by(now.bytes - last.bytes);
        self.failed
            .with_label_values(&[&s])
            .inc_by(now.failed_commits - last.failed_commits);
        self.compacted_segments
            .with_label_values(&[&s])
            .inc_by(now.segments_removed - last.segments_removed);
        self.compacted_bytes
            .with_label_values(&[&s])
            .inc_by(now.bytes_reclaimed - last.bytes_reclaimed);
        *last = now;
    }

    /// Adds the mailstore's reads since the last sample.
    pub fn sample_reads(&self, shard: ShardId, now: Reads, last: &mut Reads) {
        let s = shard.to_string();
        self.body_reads
            .with_label_values(&[&s])
            .inc_by(now.bodies - last.bodies);
        self.digest_reads
            .with_label_values(&[&s])
            .inc_by(now.digests - last.digests);
        self.digests_rejected
            .with_label_values(&[&s])
            .inc_by(now.rejected_digests - last.rejected_digests);
        self.digests_skipped
            .with_label_values(&[&s])
            .inc_by(now.skipped_digests - last.skipped_digests);
        self.body_streams
            .with_label_values(&[&s])
            .inc_by(now.streams - last.streams);
        *last = now;
    }
}

/// Logins by outcome (`cairn_auth_attempts_total{result}`), counted by the
/// authenticator on the directory's shard for every protocol. Cheap to
/// clone.
#[derive(Clone)]
pub struct AuthMetrics {
    attempts: IntCounterVec,
}

impl AuthMetrics {
    /// Defines the family and registers it.
    pub fn new(metrics: &Metrics) -> Self {
        let attempts = IntCounterVec::new(
            Opts::new(
                "cairn_auth_attempts_total",
                "Logins by result: ok, invalid (bad user or password), disabled, throttled (locked out), unavailable.",
            ),
            &["result"],
        )
        .unwrap_or_else(|e| panic!("metric definition cairn_auth_attempts_total: {e}"));
        metrics.register(&attempts);
        Self { attempts }
    }

    /// Counts one login's outcome.
    pub fn record(&self, outcome: &Result<Principal, AuthError>) {
        let result = match outcome {
            Ok(_) => "ok",
            Err(AuthError::Invalid) => "invalid",
            Err(AuthError::Disabled) => "disabled",
            Err(AuthError::Throttled { .. }) => "throttled",
            Err(AuthError::Unavailable(_)) => "unavailable",
        };
        self.attempts.with_label_values(&[result]).inc();
    }
}

/// The accounts' Bayes classifiers: messages learned by class
/// (`cairn_spam_bayes_trained_total{class}`: new ones and ones that
/// changed class) and messages classified by result
/// (`cairn_spam_bayes_classified_total{result}`: spam, ham, untrained),
/// counted on the shard owning the account. Cheap to clone.
#[derive(Clone)]
pub struct BayesMetrics {
    trained: IntCounterVec,
    classified: IntCounterVec,
}

impl BayesMetrics {
    /// Defines the families and registers them.
    pub fn new(metrics: &Metrics) -> Self {
        let define = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|e| panic!("metric definition {name}: {e}"))
        };
        let m = Self {
            trained: define(
                "cairn_spam_bayes_trained_total",
                "Messages the Bayes classifiers learned, by class (spam: filed into Junk; ham: taken out of Junk or filed from INBOX).",
                "class",
            ),
            classified: define(
                "cairn_spam_bayes_classified_total",
                "Inbound messages the recipients' Bayes classifiers judged, by result: spam, ham, untrained (too few trained messages).",
                "result",
            ),
        };
        metrics.register(&m.trained);
        metrics.register(&m.classified);
        // Every series shows from the start, at 0.
        for class in [Class::Spam, Class::Ham] {
            m.trained(class, 0);
        }
        for result in [
            Classification::Spam(1.0),
            Classification::Ham(0.0),
            Classification::Untrained,
        ] {
            m.classified.with_label_values(&[result.name()]);
        }
        m
    }

    /// Counts `n` messages learned as `class`.
    pub(crate) fn trained(&self, class: Class, n: u64) {
        self.trained.with_label_values(&[class.name()]).inc_by(n);
    }

    /// Counts one classification.
    pub(crate) fn classified(&self, result: &Classification) {
        self.classified.with_label_values(&[result.name()]).inc();
    }
}
