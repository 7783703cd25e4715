//! Conformance: DKIM signatures made by `cairn_smtp::dkim` verify with an
//! independent verifier, dkimpy (PyPI `dkimpy`; `pynacl` for Ed25519),
//! given the TXT record that `dns_record` publishes at the name that
//! `record_name` gives; a changed message does not. The RSA record's key
//! also loads in OpenSSL as a SubjectPublicKeyInfo (what OpenDKIM reads).
//!
//! Without python3's `dkim` and `nacl` modules the test fails when `CI` is
//! set and is skipped with a notice otherwise.

use std::path::Path;
use std::process::Command;

use cairn_smtp::dkim::{self, DkimAlgorithm, DkimKey};

/// Verifies `argv[1]` (the message) with dkimpy, answering the one TXT
/// lookup of `argv[3]` (the expected name) with `argv[2]` (the record);
/// prints `True`, `False`, or `WRONG NAME …`.
const VERIFY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
record = open(sys.argv[2], 'rb').read()
expected = sys.argv[3].encode() + b'.'
asked = []
def dnsfunc(name, timeout=5):
    asked.append(name)
    return record if name.lower() == expected else None
ok = dkim.verify(msg, dnsfunc=dnsfunc)
if asked and asked[0].lower() != expected:
    print('WRONG NAME', asked)
else:
    print(ok)
"#;

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = "python3 with the dkim and nacl modules is needed (pip install dkimpy pynacl)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// dkimpy's verdict on `message`, with `record` published at `name`.
fn dkimpy(dir: &Path, message: &[u8], name: &str, record: &str) -> String {
    let msg = dir.join("message.eml");
    let txt = dir.join("record.txt");
    std::fs::write(&msg, message).expect("write message");
    std::fs::write(&txt, record).expect("write record");
    let out = Command::new("python3")
        .arg("-c")
        .arg(VERIFY)
        .arg(&msg)
        .arg(&txt)
        .arg(name)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "dkimpy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const MESSAGES: &[&str] = &[
    concat!(
        "From: Alice Example <alice@example.org>\r\n",
        "To: bob@example.net\r\n",
        "Subject: Quarterly report\r\n",
        "Date: Sun, 25 Oct 2026 10:00:00 +0000\r\n",
        "Message-ID: <q3@example.org>\r\n",
        "\r\n",
        "Here are the numbers.\r\n",
    ),
    // Folded and oddly spaced headers, several recipients, a Cc, MIME,
    // headers that are not signed, trailing blank lines and white space.
    concat!(
        "Received: from client.example.org (client [192.0.2.1])\r\n",
        "\tby mx.example.org with ESMTPSA; Sun, 25 Oct 2026 10:00:00 +0000\r\n",
        "From:   \"Alice, Example\" <alice@example.org>  \r\n",
        "To: bob@example.net,\r\n",
        "  carol@example.com\r\n",
        "Cc: dave@example.org\r\n",
        "Subject: =?utf-8?q?Caf=C3=A9?=   and\t tabs\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/alternative; boundary=\"b1\"\r\n",
        "X-Mailer: test\r\n",
        "\r\n",
        "--b1\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "Content-Transfer-Encoding: 8bit\r\n",
        "\r\n",
        "Caf\u{e9} au lait   \t\r\n",
        "--b1--\r\n",
        "\r\n",
        "\r\n",
    ),
    // An empty body.
    "From: alice@example.org\r\nSubject: empty\r\n\r\n",
];

#[test]
fn signatures_verify_with_dkimpy() {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = 1_793_000_000;
    let keys: Vec<DkimKey> = [
        (DkimAlgorithm::Rsa2048, "rsa2026"),
        (DkimAlgorithm::Ed25519, "ed2026"),
    ]
    .into_iter()
    .map(|(a, s)| dkim::generate(a, s, now).expect("generate"))
    .collect();
    for key in &keys {
        let name = dkim::record_name("example.org", &key.selector);
        let record = dkim::dns_record(key);
        let signer = dkim::Signer::new("example.org", key).expect("signer");
        for message in MESSAGES {
            let header = signer.sign(message.as_bytes()).expect("sign");
            let signed = format!("{header}{message}");
            assert_eq!(
                dkimpy(tmp.path(), signed.as_bytes(), &name, &record),
                "True",
                "{:?} key, message:\n{signed}",
                key.algorithm
            );
            let tampered = signed.replacen("alice@example.org", "alice@example.org.evil", 1);
            assert_ne!(tampered, signed);
            assert_eq!(
                dkimpy(tmp.path(), tampered.as_bytes(), &name, &record),
                "False"
            );
        }
        // Another key's record does not verify this key's signature.
        let other = dkim::generate(key.algorithm, &key.selector, now).expect("other");
        let header = dkim::sign("example.org", key, MESSAGES[0].as_bytes()).expect("sign");
        let signed = format!("{header}{}", MESSAGES[0]);
        assert_eq!(
            dkimpy(
                tmp.path(),
                signed.as_bytes(),
                &name,
                &dkim::dns_record(&other)
            ),
            "False"
        );
    }
}

#[test]
fn the_rsa_record_is_a_subject_public_key_info_for_openssl() {
    let available = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED: no openssl");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = dkim::generate(DkimAlgorithm::Rsa2048, "s", 0).expect("generate");
    let record = dkim::dns_record(&key);
    let p = record.rsplit_once("p=").expect("p=").1;
    let b64 = tmp.path().join("key.b64");
    std::fs::write(&b64, format!("{p}\n")).expect("write");
    let der = tmp.path().join("key.der");
    let decode = Command::new("openssl")
        .args(["base64", "-d", "-A", "-in"])
        .arg(&b64)
        .arg("-out")
        .arg(&der)
        .status()
        .expect("openssl base64");
    assert!(decode.success());
    let out = Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&der)
        .output()
        .expect("openssl pkey");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
}
