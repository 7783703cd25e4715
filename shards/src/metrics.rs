//! Per-shard, per-service metrics in the Prometheus text format.
//!
//! Counters are atomics shared by every shard (the one kind of shared state
//! the house allows); each shard resolves its own labelled handles once
//! ([`Metrics::service`]) so that recording is a plain atomic add.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ShardId;

/// Latency buckets, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// The appliance's metric families.
pub struct Metrics {
    registry: Registry,
    accepted: IntCounterVec,
    refused: IntCounterVec,
    active: IntGaugeVec,
    requests: IntCounterVec,
    duration: HistogramVec,
    tls_failures: IntCounterVec,
    http_responses: IntCounterVec,
    shard_busy: CounterVec,
    shard_tasks: IntCounterVec,
}

/// One service's handles on one shard.
#[derive(Clone)]
pub struct ServiceMetrics {
    /// Connections accepted.
    pub accepted: IntCounter,
    /// Connections refused at accept (over the per-address limit).
    pub refused: IntCounter,
    /// Connections open now.
    pub active: IntGauge,
    requests_ok: IntCounter,
    requests_client_error: IntCounter,
    requests_server_error: IntCounter,
    duration: prometheus::Histogram,
    /// TLS handshakes that failed.
    pub tls_failures: IntCounter,
}

/// How a request ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served.
    Ok,
    /// Refused because of the client's input.
    ClientError,
    /// Failed on our side.
    ServerError,
}

impl ServiceMetrics {
    /// Records one request and how long it took.
    pub fn request(&self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Ok => self.requests_ok.inc(),
            Outcome::ClientError => self.requests_client_error.inc(),
            Outcome::ServerError => self.requests_server_error.inc(),
        }
        self.duration.observe(took.as_secs_f64());
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and label sets are constants of this module: a failure
    // here is a programming error caught by the tests, never input.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    /// Registers every family; `shards` and `version` become constant gauges.
    pub fn new(shards: usize, version: &str) -> Arc<Self> {
        let registry = Registry::new();
        let shard_count = must(IntGauge::new("cairn_shards", "Number of shards running."));
        shard_count.set(shards as i64);
        let build = must(IntGaugeVec::new(
            Opts::new("cairn_build_info", "Build of the running appliance."),
            &["version"],
        ));
        build.with_label_values(&[version]).set(1);
        let m = Metrics {
            accepted: must(IntCounterVec::new(
                Opts::new("cairn_connections_accepted_total", "Connections accepted."),
                &["service", "shard"],
            )),
            refused: must(IntCounterVec::new(
                Opts::new(
                    "cairn_connections_refused_total",
                    "Connections refused at accept: over the per-address limit.",
                ),
                &["service", "shard"],
            )),
            active: must(IntGaugeVec::new(
                Opts::new("cairn_connections_active", "Connections open now."),
                &["service", "shard"],
            )),
            requests: must(IntCounterVec::new(
                Opts::new("cairn_requests_total", "Requests served, by outcome."),
                &["service", "shard", "outcome"],
            )),
            duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "cairn_request_duration_seconds",
                    "Time from a complete request to its reply.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["service", "shard"],
            )),
            tls_failures: must(IntCounterVec::new(
                Opts::new(
                    "cairn_tls_handshake_failures_total",
                    "TLS handshakes that failed.",
                ),
                &["service", "shard"],
            )),
            http_responses: must(IntCounterVec::new(
                Opts::new(
                    "cairn_http_responses_total",
                    "HTTP responses by route and status.",
                ),
                &["route", "code"],
            )),
            shard_busy: must(CounterVec::new(
                Opts::new(
                    "cairn_shard_busy_seconds_total",
                    "Time the shard's executor spent running tasks.",
                ),
                &["shard"],
            )),
            shard_tasks: must(IntCounterVec::new(
                Opts::new(
                    "cairn_shard_tasks_executed_total",
                    "Tasks run by the shard.",
                ),
                &["shard"],
            )),
            registry,
        };
        for c in [
            Box::new(shard_count) as Box<dyn prometheus::core::Collector>,
            Box::new(build),
            Box::new(m.accepted.clone()),
            Box::new(m.refused.clone()),
            Box::new(m.active.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.tls_failures.clone()),
            Box::new(m.http_responses.clone()),
            Box::new(m.shard_busy.clone()),
            Box::new(m.shard_tasks.clone()),
        ] {
            must(m.registry.register(c));
        }
        Arc::new(m)
    }

    /// Registers a family defined elsewhere (storage, protocols) so that it
    /// is exposed with the others.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, family: &C) {
        must(self.registry.register(Box::new(family.clone())));
    }

    /// The handles of `service` on `shard`.
    pub fn service(&self, service: &str, shard: ShardId) -> ServiceMetrics {
        let shard = shard.to_string();
        let l = [service, shard.as_str()];
        ServiceMetrics {
            accepted: self.accepted.with_label_values(&l),
            refused: self.refused.with_label_values(&l),
            active: self.active.with_label_values(&l),
            requests_ok: self.requests.with_label_values(&[service, &shard, "ok"]),
            requests_client_error: self.requests.with_label_values(&[
                service,
                &shard,
                "client_error",
            ]),
            requests_server_error: self.requests.with_label_values(&[
                service,
                &shard,
                "server_error",
            ]),
            duration: self.duration.with_label_values(&l),
            tls_failures: self.tls_failures.with_label_values(&l),
        }
    }

    /// Counts an HTTP response; `route` must come from a bounded set (the
    /// router's paths), never from the request.
    pub fn http_response(&self, route: &str, code: u16) {
        self.http_responses
            .with_label_values(&[route, &code.to_string()])
            .inc();
    }

    /// Samples the calling shard's executor counters; each shard runs this
    /// from its own ticker.
    pub fn sample_shard(&self, shard: ShardId, last: &mut ShardSample) {
        let stats = glommio::executor().executor_stats();
        let label = shard.to_string();
        let busy = stats.executor_runtime();
        let tasks = stats.tasks_executed();
        self.shard_busy
            .with_label_values(&[&label])
            .inc_by(busy.saturating_sub(last.busy).as_secs_f64());
        self.shard_tasks
            .with_label_values(&[&label])
            .inc_by(tasks.saturating_sub(last.tasks));
        *last = ShardSample { busy, tasks };
    }

    /// Every family in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The executor counters seen at the previous sample.
#[derive(Default, Clone, Copy)]
pub struct ShardSample {
    busy: Duration,
    tasks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exposed_with_their_labels() {
        let m = Metrics::new(2, "0.1.0");
        let s = m.service("http", 1);
        s.accepted.inc();
        s.request(Outcome::Ok, Duration::from_millis(3));
        s.request(Outcome::ClientError, Duration::from_micros(80));
        m.http_response("/healthz", 200);
        let text = m.encode();
        assert!(text.contains("cairn_shards 2"), "{text}");
        assert!(text.contains(r#"cairn_build_info{version="0.1.0"} 1"#));
        assert!(text.contains(r#"cairn_connections_accepted_total{service="http",shard="1"} 1"#));
        assert!(text.contains(
            r#"cairn_requests_total{outcome="client_error",service="http",shard="1"} 1"#
        ));
        assert!(
            text.contains(r#"cairn_request_duration_seconds_count{service="http",shard="1"} 2"#)
        );
        assert!(text.contains(r#"cairn_http_responses_total{code="200",route="/healthz"} 1"#));
    }
}
