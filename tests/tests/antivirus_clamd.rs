//! ClamAV's clamd behind the MX listener, end to end: a real clamd (with a
//! database of one custom signature that the built-in scanner does not
//! know) and the real appliance. With `action = "reject"` a message
//! carrying the signature gets `554 5.7.1` and is stored nowhere, clean
//! mail passes, and clamd gone means `451 4.3.0`. With `action =
//! "quarantine"` infected mail (clamd's find, and EICAR, the built-in
//! scanner's) gets `250` and lands only in the quarantine account's INBOX,
//! with the verdict and the envelope in `X-Cairn-Quarantine*` fields (read
//! back over IMAP; a sender's own such fields are dropped).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use cairn_config::Service;
use cairn_smtp::antivirus::testing::ClamdServer;
use cairn_smtp::antivirus::EICAR;
use cairn_tests::imap::Session;
use cairn_tests::{AdminApi, Appliance, TestConfig};

const MARKER: &str = "cairn-clamd-end-to-end-marker";
const SIGNATURE: &str = "Cairn.Test.E2e.UNOFFICIAL";
const PASSWORD: &str = "a long enough password";
const QUARANTINE: &str = "quarantine@example.org";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A message with `payload` as a base64 attachment (clamd decodes it; the
/// raw bytes never show it).
fn with_attachment(subject: &str, payload: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        "From: sender@remote.test\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n--sep\r\n\
         Content-Type: text/plain\r\n\r\nsee attached\r\n--sep\r\n\
         Content-Type: application/octet-stream; name=\"file.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--sep--\r\n"
    )
}

/// One SMTP transaction on the MX listener: the reply to the end of DATA
/// (or the first refusal before it).
fn send(port: u16, from: &str, to: &[&str], message: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut reply = || {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a reply");
            // The last line of a multiline reply has a space after the code.
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    };
    assert!(reply().starts_with("220"));
    let mut commands = vec![
        "EHLO client.remote.test".to_string(),
        format!("MAIL FROM:<{from}>"),
    ];
    commands.extend(to.iter().map(|rcpt| format!("RCPT TO:<{rcpt}>")));
    commands.push("DATA".into());
    for command in commands {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("write");
        let answer = reply();
        if !(answer.starts_with('2') || answer.starts_with("354")) {
            return answer;
        }
    }
    writer.write_all(message.as_bytes()).expect("write");
    writer.write_all(b".\r\nQUIT\r\n").expect("write");
    reply()
}

fn inbox_count(api: &AdminApi, account: &str) -> u64 {
    let (status, body) = api.get(&format!("/accounts/{account}/mailboxes/INBOX"));
    assert_eq!(status, 200, "{body}");
    body["messages"].as_u64().expect("messages")
}

fn metrics(appliance: &Appliance) -> String {
    reqwest::blocking::get(format!("http://{}/metrics", appliance.http))
        .and_then(|r| r.text())
        .expect("metrics")
}

fn config(data: &Path, antivirus: &str) -> TestConfig {
    TestConfig::new(
        data,
        &format!("[mail_access]\nallow_plaintext_auth = true\n\n[antivirus]\n{antivirus}\n"),
    )
}

#[test]
fn clamd_rejects_or_quarantines_infected_mail() {
    let ndb = format!("Cairn.Test.E2e:0:*:{}\n", hex(MARKER.as_bytes()));
    let Some(mut clamd) = ClamdServer::start(&[("cairn.ndb", &ndb)]) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = tmp.path().join("appliance.toml");
    // With a forged quarantine field, which the quarantine drops.
    let infected = format!(
        "X-Cairn-Quarantine-To: <forged@remote.test>\r\n{}",
        with_attachment("infected", format!("xx {MARKER} xx").as_bytes())
    );
    let recipients = ["alice@example.org", "bob@example.org"];

    // action = reject (the default), over the unix socket.
    let reject = config(
        &data,
        &format!("clamd = \"unix:{}\"", clamd.socket().display()),
    );
    std::fs::write(&path, &reject.text).expect("write config");
    let appliance = Appliance::start(&path, &reject);
    let api = AdminApi::new(&appliance, &data);
    let accounts: Vec<String> = ["alice", "bob", "quarantine"]
        .iter()
        .map(|u| format!("{u}@example.org"))
        .collect();
    api.provision("example.org", &accounts, PASSWORD);
    let mx = reject.port(Service::Smtp);

    let clean = with_attachment("clean", b"nothing to see");
    let answer = send(mx, "sender@remote.test", &recipients, &clean);
    assert!(answer.starts_with("250"), "{answer}");
    let answer = send(mx, "sender@remote.test", &recipients, &infected);
    assert!(
        answer.starts_with("554 5.7.1") && answer.contains(SIGNATURE),
        "{answer}\nclamd: {}",
        clamd.log()
    );
    for account in &accounts {
        let want = u64::from(account != QUARANTINE);
        assert_eq!(inbox_count(&api, account), want, "{account}");
    }
    let shown = metrics(&appliance);
    for line in [
        "cairn_smtp_clamd_scans_total{result=\"clean\"} 1",
        "cairn_smtp_clamd_scans_total{result=\"infected\"} 1",
    ] {
        assert!(shown.contains(line), "{line} in:\n{shown}");
    }

    // clamd gone: a temporary refusal, nothing stored.
    clamd.stop();
    let answer = send(mx, "sender@remote.test", &recipients, &clean);
    assert!(answer.starts_with("451 4.3.0"), "{answer}");
    assert_eq!(inbox_count(&api, "alice@example.org"), 1);
    assert!(metrics(&appliance).contains("cairn_smtp_clamd_scans_total{result=\"failed\"} 1"));
    assert!(appliance
        .stop(libc::SIGTERM, Duration::from_secs(20))
        .is_some());

    // action = quarantine, over TCP, on the same data directory.
    let Some(clamd) = ClamdServer::start(&[("cairn.ndb", &ndb)]) else {
        return;
    };
    let quarantine = config(
        &data,
        &format!(
            "clamd = \"{}\"\naction = \"quarantine\"\nquarantine_account = \"{QUARANTINE}\"",
            clamd.tcp()
        ),
    );
    std::fs::write(&path, &quarantine.text).expect("write config");
    let appliance = Appliance::start(&path, &quarantine);
    let api = AdminApi::new(&appliance, &data);
    let mx = quarantine.port(Service::Smtp);
    let answer = send(mx, "sender@remote.test", &recipients, &infected);
    assert!(answer.starts_with("250"), "{answer}");
    // EICAR is the built-in scanner's find (clamd has no signature for it).
    let eicar = with_attachment("eicar", EICAR);
    let answer = send(mx, "", &["bob@example.org"], &eicar);
    assert!(answer.starts_with("250"), "{answer}");
    assert_eq!(inbox_count(&api, "alice@example.org"), 1, "nothing new");
    assert_eq!(inbox_count(&api, "bob@example.org"), 1, "nothing new");
    assert_eq!(inbox_count(&api, QUARANTINE), 2);
    assert!(metrics(&appliance).contains("cairn_smtp_antivirus_quarantined_total 2"));

    let mut imap =
        Session::connect(quarantine.port(Service::Imap), QUARANTINE, PASSWORD, 1).expect("login");
    let first = imap.lines("FETCH 1 BODY.PEEK[HEADER]").expect("fetch");
    for want in [
        format!("X-Cairn-Quarantine: virus {SIGNATURE}"),
        "X-Cairn-Quarantine-From: <sender@remote.test>".to_string(),
        "X-Cairn-Quarantine-To: <alice@example.org>".to_string(),
        "X-Cairn-Quarantine-To: <bob@example.org>".to_string(),
        "Subject: infected".to_string(),
    ] {
        assert!(first.contains(&want), "{want} in {first:#?}");
    }
    assert!(
        !first.iter().any(|l| l.contains("forged@remote.test")),
        "{first:#?}"
    );
    let second = imap.lines("FETCH 2 BODY.PEEK[HEADER]").expect("fetch");
    for want in [
        "X-Cairn-Quarantine: virus Eicar-Test-Signature",
        "X-Cairn-Quarantine-From: <>",
        "X-Cairn-Quarantine-To: <bob@example.org>",
    ] {
        assert!(second.iter().any(|l| l == want), "{want} in {second:#?}");
    }
    assert!(
        !second
            .iter()
            .any(|l| l.contains("alice@example.org") && l.starts_with("X-Cairn")),
        "{second:#?}"
    );
}
