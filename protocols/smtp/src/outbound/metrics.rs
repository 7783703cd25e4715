//! What the outbound queue reports at `/metrics`: recipients delivered,
//! deferred and failed, reports sent back to senders, and how many
//! messages wait in each shard's queue.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

/// The outbound queue's metrics, shared by the shards.
pub struct OutboundMetrics {
    recipients: IntCounterVec,
    reports: IntCounterVec,
    queued: IntGaugeVec,
}

/// What happened to a recipient in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    Delivered,
    Deferred,
    Failed,
}

impl Result {
    fn label(self) -> &'static str {
        match self {
            Result::Delivered => "delivered",
            Result::Deferred => "deferred",
            Result::Failed => "failed",
        }
    }
}

impl OutboundMetrics {
    pub fn new() -> Self {
        let recipients = IntCounterVec::new(
            Opts::new(
                "cairn_outbound_recipients_total",
                "Outbound delivery attempts per recipient, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let reports = IntCounterVec::new(
            Opts::new(
                "cairn_outbound_reports_total",
                "Delivery status notifications sent to senders, by action",
            ),
            &["action"],
        )
        .expect("valid metric");
        let queued = IntGaugeVec::new(
            Opts::new(
                "cairn_outbound_queued_messages",
                "Messages waiting in the outbound queue",
            ),
            &["shard"],
        )
        .expect("valid metric");
        OutboundMetrics {
            recipients,
            reports,
            queued,
        }
    }

    /// Registers the families with the appliance's registry.
    pub fn register(&self, metrics: &cairn_shards::metrics::Metrics) {
        metrics.register(&self.recipients);
        metrics.register(&self.reports);
        metrics.register(&self.queued);
    }

    pub fn recipient(&self, result: Result) {
        self.recipients.with_label_values(&[result.label()]).inc();
    }

    pub fn report(&self, action: &str) {
        self.reports.with_label_values(&[action]).inc();
    }

    pub fn queued(&self, shard: usize, messages: usize) {
        self.queued
            .with_label_values(&[&shard.to_string()])
            .set(i64::try_from(messages).unwrap_or(i64::MAX));
    }
}

impl Default for OutboundMetrics {
    fn default() -> Self {
        Self::new()
    }
}
