# promtool lints the metrics exposition, after some traffic so that the
# labelled families have samples. Sourced by .ci/conformance.
curl -fsS "http://127.0.0.1:${port[http]}/healthz" >/dev/null
curl -fsSk "https://127.0.0.1:${port[https]}/healthz" >/dev/null
curl -sS "http://127.0.0.1:${port[http]}/nope" >/dev/null || true

lint_metrics() {
    curl -fsS "http://127.0.0.1:${port[http]}/metrics" >"$work/metrics.txt"
    grep -q '^cairn_requests_total' "$work/metrics.txt"
    promtool check metrics <"$work/metrics.txt"
}
check "promtool check metrics" lint_metrics
