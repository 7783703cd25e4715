//! `/healthz` and `/metrics` over HTTP and HTTPS with reqwest, a real client.

use std::time::Duration;

use cairn_tests::Setup;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[test]
fn healthz_metrics_and_errors_over_http_and_https() {
    let setup = Setup::new("");
    let appliance = setup.start();
    let http = client();

    let health = http
        .get(format!("http://{}/healthz", appliance.http))
        .send()
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["shards"], 2);

    let tls = http
        .get(format!(
            "https://localhost:{}/healthz",
            appliance.https.port()
        ))
        .send()
        .expect("GET /healthz over TLS");
    assert_eq!(tls.status(), 200);

    let missing = http
        .get(format!("http://{}/no/such/thing", appliance.http))
        .send()
        .expect("GET unknown");
    assert_eq!(missing.status(), 404);
    let err: serde_json::Value = missing.json().expect("json error body");
    assert_eq!(err["error"]["code"], "not_found");

    let wrong = http
        .post(format!("http://{}/healthz", appliance.http))
        .send()
        .expect("POST /healthz");
    assert_eq!(wrong.status(), 405);

    let metrics = http
        .get(format!("http://{}/metrics", appliance.http))
        .send()
        .expect("GET /metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = metrics.text().expect("metrics text");
    assert!(text.contains("cairn_shards 2"), "{text}");
    assert!(
        text.contains(r#"cairn_http_responses_total{code="200",route="/healthz"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cairn_http_responses_total{code="404",route="unmatched"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("cairn_request_duration_seconds_bucket"),
        "{text}"
    );
    // Every shard opened its storage and reported its recovery.
    for shard in ["0", "1"] {
        let line = format!("cairn_storage_recovered_records_total{{shard=\"{shard}\"}} 0");
        assert!(text.contains(&line), "no {line} in:\n{text}");
    }
    // Both the plain and the TLS listener accepted at least one connection.
    for service in ["http", "https"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!(
                "cairn_connections_accepted_total{{service=\"{service}\""
            )) && !l.ends_with(" 0")),
            "no accepted {service} connection in:\n{text}"
        );
    }
}

#[test]
fn a_failed_tls_handshake_is_counted_and_the_listener_survives() {
    use std::io::Write;
    let setup = Setup::new("");
    let appliance = setup.start();

    let mut raw = std::net::TcpStream::connect(appliance.https).expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send plain text to the TLS port");
    drop(raw);

    let http = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = http
            .get(format!(
                "https://127.0.0.1:{}/metrics",
                appliance.https.port()
            ))
            .send()
            .expect("the TLS listener still serves")
            .text()
            .expect("text");
        let failures: u64 = text
            .lines()
            .filter(|l| l.starts_with("cairn_tls_handshake_failures_total{service=\"https\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if failures >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failure never counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_the_per_address_limit_get_429() {
    use std::io::Read;
    let setup = Setup::new("[limits]\nmax_connections_per_ip = 2\n");
    let appliance = setup.start();

    // Two shards: each admits one connection per address.
    let conns: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(appliance.http).expect("connect"))
        .collect();
    let mut refused = 0;
    for mut c in conns.iter() {
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut buf = Vec::new();
        if c.read_to_end(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 429") {
            assert!(String::from_utf8_lossy(&buf).contains("too_many_connections"));
            refused += 1;
        }
    }
    assert!((4..=5).contains(&refused), "{refused} of 6 refused");
    drop(conns);
    // The server notices the closes asynchronously: retry until admitted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = client()
            .get(format!("http://{}/metrics", appliance.http))
            .send()
            .expect("metrics");
        if r.status() == 200 {
            break r.text().expect("text");
        }
        assert!(std::time::Instant::now() < deadline, "still refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    let counted: u64 = text
        .lines()
        .filter(|l| l.starts_with("cairn_connections_refused_total{service=\"http\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, refused, "{text}");
}
