//! The outbound queue through a smarthost, end to end, with two real
//! appliances: A (`example.org`) sends everything through B's submission
//! port (STARTTLS, a self-signed certificate, AUTH as `relay@relay.test`);
//! B delivers to `remote.test`'s MX (Postfix's smtp-sink, found through
//! dnsmasq). A itself has no working name server: the smarthost is all it
//! needs.
//!
//! - alice's message reaches the sink through B: A's queue empties, both
//!   count one delivered recipient, and the trace fields show both hops
//!   as ESMTPSA (TLS and AUTH), B's `Authentication-Results:` naming
//!   `relay@relay.test`.
//! - B's submission only lets `relay@relay.test` send as its own
//!   addresses: B serves `example.org` too, with `alice@example.org` an
//!   alias of the relay account (like a relay service's verified sender
//!   domain). carol, without one, is refused at MAIL (`553 5.7.1`): her
//!   recipient fails for good and she gets the bounce in her INBOX on A.
//!   (Before the fix in `outbound/runner.rs`, a report to a local sender
//!   went to the smarthost too, whose submission refused `MAIL FROM:<>`:
//!   the bounce was lost.)
//! - `smarthost_tls = "implicit"` against B's SMTPS port: B takes it (and,
//!   with no name server of its own in that test, keeps it queued).
//! - `smarthost_tls = "required"` against a relay that offers no STARTTLS
//!   (smtp-sink), and `"none"` with credentials: deferred, and nothing at
//!   all (not even MAIL) is sent in clear.
//! - A wrong smarthost password: the message stays queued with B's `535`
//!   as its last error and is tried again; nothing reaches B. Restarted
//!   with the right password, the same message goes to B.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_config::Service;
use cairn_tests::imap::Session;
use cairn_tests::peers::{smtp_sink, Dnsmasq};
use cairn_tests::{free_ports, AdminApi, Appliance, TestConfig};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough password";
const RELAY_USER: &str = "relay@relay.test";
const RELAY_PASSWORD: &str = "the relay account's own password";

/// One appliance on a data directory of its own.
struct Node {
    appliance: Appliance,
    api: AdminApi,
    config: TestConfig,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(extra: &str) -> Node {
        Node::start_in(tempfile::tempdir().expect("tempdir"), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &str) -> Node {
        let data = dir.path().join("data");
        let config = TestConfig::new(&data, extra);
        let path = dir.path().join("appliance.toml");
        std::fs::write(&path, &config.text).expect("write config");
        let appliance = Appliance::start(&path, &config);
        let api = AdminApi::new(&appliance, &data);
        Node {
            appliance,
            api,
            config,
            dir,
        }
    }

    /// Stops the appliance and starts it again on the same data with
    /// another configuration.
    fn restart(self, extra: &str) -> Node {
        let Node { appliance, dir, .. } = self;
        assert!(appliance
            .stop(libc::SIGTERM, Duration::from_secs(20))
            .is_some_and(|s| s.success()));
        Node::start_in(dir, extra)
    }

    fn port(&self, service: Service) -> u16 {
        self.config.port(service)
    }

    fn queue(&self) -> Vec<Value> {
        let (status, body) = self.api.get("/queue");
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().expect("items")
    }

    fn inbox_count(&self, account: &str) -> u64 {
        let (status, body) = self
            .api
            .get(&format!("/accounts/{account}/mailboxes/INBOX"));
        assert_eq!(status, 200, "{body}");
        body["messages"].as_u64().expect("messages")
    }

    /// `cairn_outbound_recipients_total{result="RESULT"}`, 0 when absent.
    fn recipients_counted(&self, result: &str) -> u64 {
        let text = reqwest::blocking::get(format!("http://{}/metrics", self.appliance.http))
            .and_then(|r| r.text())
            .expect("metrics");
        let wanted = format!("cairn_outbound_recipients_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .map(|v| v.trim().parse::<f64>().expect("a number") as u64)
            .unwrap_or(0)
    }
}

/// A's `[outbound]` towards the smarthost `port`: quick retries.
fn sender_config(port: u16, tls: &str, password: &str) -> String {
    format!(
        "[node]\nhostname = \"mail.example.org\"\n\
         [mail_access]\nallow_plaintext_auth = true\n\
         [outbound]\nsmarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"{tls}\"\n\
         smarthost_verify_certificate = false\n\
         smarthost_user = \"{RELAY_USER}\"\nsmarthost_password = \"{password}\"\n\
         retry_initial_secs = 1\nretry_max_secs = 2\n"
    )
}

/// B, the smarthost: `relay.test` with the relay account, and
/// `example.org` with alice's address (not carol's) as one of the relay
/// account's aliases, which B's submission lets it send as.
fn start_smarthost(extra: &str) -> Node {
    let b = Node::start(&format!(
        "[node]\nhostname = \"smarthost.relay.test\"\n{extra}"
    ));
    b.api.provision("relay.test", &[], PASSWORD);
    let new = json!({ "address": RELAY_USER, "password": RELAY_PASSWORD });
    let (status, body) = b.api.post("/accounts", &new);
    assert_eq!(status, 201, "{body}");
    let (status, body) = b.api.post("/domains", &json!({ "name": "example.org" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = b.api.post(
        &format!("/accounts/{RELAY_USER}/aliases"),
        &json!({ "alias": "alice@example.org" }),
    );
    assert_eq!(status, 201, "{body}");
    b
}

/// A, sending through the smarthost on `port`, with alice and carol.
fn start_sender(port: u16, tls: &str, password: &str) -> Node {
    let a = Node::start(&sender_config(port, tls, password));
    a.api.provision(
        "example.org",
        &["alice@example.org".into(), "carol@example.org".into()],
        PASSWORD,
    );
    a
}

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

/// `from` submits a message to bob@remote.test on `node`.
fn submit(node: &Node, from: &str, subject: &str) {
    let message = Message::builder()
        .from(from.parse().expect("from"))
        .to("bob@remote.test".parse().expect("to"))
        .subject(subject)
        .body(format!("{subject}: through the smarthost\r\n"))
        .expect("message");
    let reply = submission(node.port(Service::Submission), from)
        .send(&message)
        .expect("submission accepts mail to other domains");
    assert!(reply.is_positive());
}

/// Waits up to `secs` for `done`.
fn eventually(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A folder smtp-sink (running as `nobody`) may write its dump in.
fn sink_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("sink dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let dump = dir.path().join("dump");
    (dir, dump)
}

fn dump_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The one message in the queue of `node` from `sender`, once it has
/// been tried at least `attempts` times.
fn queued_after(node: &Node, sender: &str, attempts: u64) -> Value {
    let mut found = Value::Null;
    eventually(&format!("{attempts} attempts for {sender}"), 30, || {
        let items = node.queue();
        match items.iter().find(|m| m["sender"] == sender) {
            Some(m) if m["attempts"].as_u64() >= Some(attempts) => {
                found = m.clone();
                true
            }
            _ => false,
        }
    });
    found
}

#[test]
fn mail_leaves_through_a_cairn_smarthost_with_starttls_and_auth() {
    let mx_port = free_ports(1)[0];
    let Some(dns) = Dnsmasq::start([
        "--mx-host=remote.test,mx.remote.test,10",
        "--host-record=mx.remote.test,127.0.0.1",
    ]) else {
        return;
    };
    let (_sink_dir, dump) = sink_dir();
    let Some(_sink) = smtp_sink(mx_port, &dump, &[]) else {
        return;
    };
    let b = start_smarthost(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[outbound]\nmx_port = {mx_port}\n\
         retry_initial_secs = 1\nretry_max_secs = 2\n",
        dns.port()
    ));
    let a = start_sender(b.port(Service::Submission), "required", RELAY_PASSWORD);

    submit(&a, "alice@example.org", "first hop");
    eventually("the sink to store alice's message", 30, || {
        dump_text(&dump).contains("Subject: first hop")
    });
    eventually("A's queue to empty", 10, || a.queue().is_empty());
    assert_eq!(a.recipients_counted("delivered"), 1);
    assert_eq!(a.recipients_counted("deferred"), 0);
    eventually("B's queue to empty", 10, || b.queue().is_empty());
    assert_eq!(b.recipients_counted("delivered"), 1);

    let text = dump_text(&dump);
    assert!(text.contains("X-Mail-Args: <alice@example.org>"), "{text}");
    assert!(text.contains("X-Rcpt-Args: <bob@remote.test>"), "{text}");
    // The trace, newest first (the sink's own, then B's, then A's): B
    // took it from A over TLS with AUTH, as A took it from alice.
    let received: Vec<&str> = text
        .split("\nReceived: ")
        .skip(1)
        .map(|r| r.split(';').next().unwrap_or(""))
        .collect();
    assert_eq!(received.len(), 3, "{text}");
    assert!(
        received[0].starts_with("from smarthost.relay.test "),
        "{text}"
    );
    assert!(
        received[1].starts_with("from mail.example.org ([127.0.0.1])")
            && received[1].contains("by smarthost.relay.test (Cairn) with ESMTPSA id"),
        "{text}"
    );
    assert!(
        received[2].contains("by mail.example.org (Cairn) with ESMTPSA id"),
        "{text}"
    );
    assert!(
        text.contains(
            "Authentication-Results: smarthost.relay.test; auth=pass \
             smtp.mailfrom=alice@example.org smtp.auth=relay@relay.test"
        ),
        "{text}"
    );

    // carol is not one of the relay account's addresses: B refuses her
    // at MAIL, for good; she is told on A.
    submit(&a, "carol@example.org", "not mine");
    eventually("A's queue to empty", 30, || a.queue().is_empty());
    assert_eq!(a.recipients_counted("failed"), 1);
    eventually("carol's bounce", 30, || {
        a.inbox_count("carol@example.org") == 1
    });
    assert!(!dump_text(&dump).contains("Subject: not mine"));
    let mut imap = Session::connect(a.port(Service::Imap), "carol@example.org", PASSWORD, 1)
        .expect("IMAP login");
    let report = imap.lines("FETCH 1 BODY.PEEK[]").expect("fetch").join("\n");
    for want in [
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: failed",
        "Status: 5.7.1",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 553 5.7.1 Sender address rejected",
        "Subject: not mine",
    ] {
        assert!(report.contains(want), "{want:?} in {report}");
    }
}

#[test]
fn smarthost_tls_variants_and_failures() {
    // B has no working name server here: what it takes stays queued.
    let b = start_smarthost("");
    let b_queue_from_alice = |n: usize| {
        eventually(&format!("{n} messages queued on B"), 30, || {
            b.queue().len() == n
        });
        for m in b.queue() {
            assert_eq!(m["sender"], "alice@example.org", "{m}");
            assert_eq!(m["recipients"][0]["address"], "bob@remote.test", "{m}");
        }
    };

    // TLS from the first byte, to B's SMTPS port.
    let implicit = start_sender(b.port(Service::Smtps), "implicit", RELAY_PASSWORD);
    submit(&implicit, "alice@example.org", "implicit TLS");
    eventually("the implicit sender's queue to empty", 30, || {
        implicit.queue().is_empty()
    });
    assert_eq!(implicit.recipients_counted("delivered"), 1);
    b_queue_from_alice(1);
    drop(implicit);

    // A relay that offers no STARTTLS (smtp-sink): with TLS required
    // nothing is sent, and with TLS off the password is not sent in clear.
    let plain_port = free_ports(1)[0];
    let (_sink_dir, dump) = sink_dir();
    let Some(_sink) = smtp_sink(plain_port, &dump, &[]) else {
        return;
    };
    let required = start_sender(plain_port, "required", RELAY_PASSWORD);
    let clear = start_sender(plain_port, "none", RELAY_PASSWORD);

    // A wrong password: B answers 535, the message waits and is retried.
    let a = start_sender(b.port(Service::Submission), "required", "not the password");
    submit(&required, "alice@example.org", "no STARTTLS");
    submit(&clear, "alice@example.org", "no TLS at all");
    submit(&a, "alice@example.org", "wrong password");

    let m = queued_after(&a, "alice@example.org", 1);
    let error = m["last_error"].as_str().unwrap_or("");
    assert!(error.starts_with("4.4.1 127.0.0.1 "), "{m}");
    assert!(error.contains("535 5.7.8"), "{m}");
    let rcpt = &m["recipients"][0];
    assert_eq!(rcpt["address"], "bob@remote.test");
    assert_eq!(rcpt["state"], "pending");
    let m = queued_after(&a, "alice@example.org", 2);
    assert!(m["next_attempt"].as_i64() >= m["created"].as_i64(), "{m}");
    assert_eq!(a.recipients_counted("delivered"), 0);
    assert!(a.recipients_counted("deferred") >= 2);
    assert_eq!(b.queue().len(), 1, "nothing more reached B");

    for (node, why) in [
        (&required, "the server does not offer STARTTLS"),
        (
            &clear,
            "refusing to send credentials over a plain-text connection",
        ),
    ] {
        let m = queued_after(node, "alice@example.org", 2);
        let error = m["last_error"].as_str().unwrap_or("");
        assert!(error.starts_with("4.4.1 ") && error.contains(why), "{m}");
        assert_eq!(node.recipients_counted("delivered"), 0);
    }
    let text = dump_text(&dump);
    assert!(!text.contains("X-Mail-Args"), "sent in clear: {text}");

    // The password put right, the waiting message goes on its next try.
    let a = a.restart(&sender_config(
        b.port(Service::Submission),
        "required",
        RELAY_PASSWORD,
    ));
    eventually("the corrected sender's queue to empty", 30, || {
        a.queue().is_empty()
    });
    b_queue_from_alice(2);
}
