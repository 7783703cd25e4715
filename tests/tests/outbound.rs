//! The outbound queue end to end, with real peers: a user submits (lettre,
//! STARTTLS and AUTH) a message to a remote domain whose MX dnsmasq
//! publishes on loopback, and to a domain that does not exist.
//!
//! - The unknown domain fails at once (NXDOMAIN): the sender gets a
//!   delivery status notification in her INBOX.
//! - The remote MX (Postfix's smtp-sink) is down at first: the message
//!   stays queued with the reason, survives a SIGKILL of the appliance,
//!   and once the sink listens an administrator's retry delivers it.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_config::Service;
use cairn_tests::peers::{smtp_sink, Dnsmasq};
use cairn_tests::{free_ports, AdminApi, Appliance, TestConfig};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

const PASSWORD: &str = "a long enough password";

fn submission(port: u16, user: &str) -> SmtpTransport {
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls");
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.into(), PASSWORD.into()))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(Duration::from_secs(20)))
        .build()
}

fn inbox_count(api: &AdminApi, account: &str) -> u64 {
    let (status, body) = api.get(&format!("/accounts/{account}/mailboxes/INBOX"));
    assert_eq!(status, 200, "{body}");
    body["messages"].as_u64().expect("messages")
}

fn queue(api: &AdminApi) -> Vec<Value> {
    let (status, body) = api.get("/queue");
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().expect("items")
}

/// Waits up to 30 s for `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn dump_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[test]
fn mail_to_other_domains_leaves_through_the_queue() {
    let mx_port = free_ports(1)[0];
    let Some(dns) = Dnsmasq::start([
        "--mx-host=remote.test,mx.remote.test,10",
        "--host-record=mx.remote.test,127.0.0.1",
    ]) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let outbound = format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[outbound]\nmx_port = {mx_port}\n\
         retry_initial_secs = 600\nretry_max_secs = 600\n",
        dns.port()
    );
    let config = TestConfig::new(&data, &outbound);
    let path = tmp.path().join("appliance.toml");
    std::fs::write(&path, &config.text).expect("write config");
    let appliance = Appliance::start(&path, &config);
    let api = AdminApi::new(&appliance, &data);
    api.provision("example.org", &["alice@example.org".to_string()], PASSWORD);

    let message = Message::builder()
        .from("alice@example.org".parse().expect("from"))
        .to("bob@remote.test".parse().expect("to"))
        .to("ghost@nowhere.test".parse().expect("to"))
        .subject("outbound test")
        .body("leaving through the queue\r\n.a line with a dot\r\n".to_string())
        .expect("message");
    let reply = submission(config.port(Service::Submission), "alice@example.org")
        .send(&message)
        .expect("submission accepts mail to other domains");
    assert!(reply.is_positive());

    // nowhere.test does not exist: alice is told at once; remote.test's
    // MX does not answer yet: bob waits in the queue with the reason.
    eventually("the bounce of ghost@nowhere.test", || {
        inbox_count(&api, "alice@example.org") == 1
    });
    eventually("a first failed attempt for bob", || {
        queue(&api)
            .iter()
            .any(|m| m["attempts"].as_u64() >= Some(1) && m["sender"] == "alice@example.org")
    });
    let items = queue(&api);
    assert_eq!(items.len(), 1, "{items:?}");
    let m = &items[0];
    let rcpts = m["recipients"].as_array().expect("recipients");
    let state = |address: &str| {
        rcpts
            .iter()
            .find(|r| r["address"] == address)
            .map(|r| (r["state"].clone(), r["reply"].clone()))
            .expect("recipient listed")
    };
    assert_eq!(state("bob@remote.test").0, "pending");
    let (ghost, why) = state("ghost@nowhere.test");
    assert_eq!(ghost, "failed");
    assert!(why.as_str().unwrap_or("").contains("5.1.2"), "{why}");
    assert!(
        m["last_error"].as_str().unwrap_or("").starts_with("4.4."),
        "{m}"
    );
    assert!(m["next_attempt"].as_i64() > m["created"].as_i64());

    // Queued means durable: a SIGKILL does not lose it.
    let id = m["id"].as_str().expect("id").to_string();
    assert!(appliance
        .stop(libc::SIGKILL, Duration::from_secs(10))
        .is_some());
    let appliance = Appliance::start(&path, &config);
    let api = AdminApi::new(&appliance, &data);
    let items = queue(&api);
    assert_eq!(items.len(), 1, "the queue survived the kill: {items:?}");
    assert_eq!(items[0]["id"], id.as_str());

    // The MX comes up; an administrator's retry delivers at once.
    let sink_dir = tempfile::tempdir().expect("sink dir");
    std::fs::set_permissions(
        sink_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let dump = sink_dir.path().join("dump");
    let Some(_sink) = smtp_sink(mx_port, &dump, &[]) else {
        return;
    };
    let (status, body) = api.post(&format!("/queue/{id}/retry"), &Value::Null);
    assert_eq!(status, 200, "{body}");
    eventually("the queue to empty", || queue(&api).is_empty());
    eventually("the sink to store the message", || {
        dump_text(&dump).contains("Subject: outbound test")
    });
    let text = dump_text(&dump);
    assert!(text.contains("X-Mail-Args: <alice@example.org>"), "{text}");
    assert!(text.contains("X-Rcpt-Args: <bob@remote.test>"), "{text}");
    assert!(
        !text.contains("X-Rcpt-Args: <ghost@nowhere.test>"),
        "{text}"
    );
    assert!(
        text.contains("\n.a line with a dot"),
        "dot-stuffing undone: {text}"
    );
    assert!(text.contains("with ESMTPSA id"), "our trace header: {text}");

    // Unknown ids are refused clearly.
    let (status, _) = api.post("/queue/0.999999/retry", &Value::Null);
    assert_eq!(status, 404);
    let (status, _) = api.post("/queue/nonsense/retry", &Value::Null);
    assert_eq!(status, 400);
    assert_eq!(api.delete("/queue/0.999999"), 404);
}
