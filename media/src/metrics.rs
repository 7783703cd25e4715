//! What the video server reports at `/metrics`, per shard: datagrams in,
//! dropped and out, frames and bytes forwarded, keyframe requests,
//! sessions dropped for silence, and the rooms and sessions open now.
//! Each shard's driver samples its SFU's counters once a second.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::sfu::SfuStats;

/// The media metrics, shared by the shards.
pub struct MediaMetrics {
    datagrams: IntCounterVec,
    frames: IntCounterVec,
    bytes: IntCounterVec,
    keyframe_requests: IntCounterVec,
    timed_out: IntCounterVec,
    rooms: IntGaugeVec,
    sessions: IntGaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &["shard"]).expect("valid metric")
}

impl Default for MediaMetrics {
    fn default() -> Self {
        Self {
            datagrams: counter(
                "cairn_media_datagrams_total",
                "Media UDP datagrams, by shard and result (received, dropped, sent)",
                &["shard", "result"],
            ),
            frames: counter(
                "cairn_media_forwarded_frames_total",
                "Media frames forwarded to subscribers",
                &["shard"],
            ),
            bytes: counter(
                "cairn_media_forwarded_bytes_total",
                "Bytes of media frames forwarded to subscribers",
                &["shard"],
            ),
            keyframe_requests: counter(
                "cairn_media_keyframe_requests_total",
                "Keyframe requests (PLI) sent to publishers",
                &["shard"],
            ),
            timed_out: counter(
                "cairn_media_sessions_dropped_total",
                "Media sessions dropped for silence or failure",
                &["shard"],
            ),
            rooms: gauge("cairn_media_rooms", "Video rooms open"),
            sessions: gauge(
                "cairn_media_sessions",
                "Media sessions (peer connections) open",
            ),
        }
    }
}

impl MediaMetrics {
    /// Registers the families with the appliance's registry.
    pub fn register(&self, metrics: &cairn_shards::metrics::Metrics) {
        metrics.register(&self.datagrams);
        metrics.register(&self.frames);
        metrics.register(&self.bytes);
        metrics.register(&self.keyframe_requests);
        metrics.register(&self.timed_out);
        metrics.register(&self.rooms);
        metrics.register(&self.sessions);
    }

    /// Adds what shard `shard` counted since `last`, and sets its gauges.
    pub fn sample(
        &self,
        shard: usize,
        now: &SfuStats,
        last: &mut SfuStats,
        rooms: usize,
        sessions: usize,
    ) {
        let s = shard.to_string();
        let add = |c: &IntCounterVec, labels: &[&str], now: u64, then: u64| {
            c.with_label_values(labels).inc_by(now.saturating_sub(then));
        };
        add(
            &self.datagrams,
            &[&s, "received"],
            now.received,
            last.received,
        );
        add(&self.datagrams, &[&s, "dropped"], now.dropped, last.dropped);
        add(&self.datagrams, &[&s, "sent"], now.sent, last.sent);
        add(
            &self.frames,
            &[&s],
            now.forwarded_frames,
            last.forwarded_frames,
        );
        add(
            &self.bytes,
            &[&s],
            now.forwarded_bytes,
            last.forwarded_bytes,
        );
        add(
            &self.keyframe_requests,
            &[&s],
            now.keyframe_requests,
            last.keyframe_requests,
        );
        add(&self.timed_out, &[&s], now.timed_out, last.timed_out);
        self.rooms.with_label_values(&[&s]).set(rooms as i64);
        self.sessions.with_label_values(&[&s]).set(sessions as i64);
        *last = *now;
    }
}
