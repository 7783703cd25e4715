//! DKIM keys of served domains end to end: `cairn admin domain dkim`
//! makes a key through the admin API and prints the zone-file line to
//! publish (split into TXT strings of at most 255 bytes); the API shows
//! the same record, refuses bad input with the field at fault, removes a
//! key, audits the changes, never shows a private key, and a deleted
//! domain takes its key with it. (That the signatures verify with an
//! independent verifier is checked in `cairn-smtp`'s `dkim_dkimpy` test.)

use cairn_tests::{run_cairn, AdminApi, Setup};
use serde_json::{json, Value};

/// The character-strings of a zone line's TXT record, unquoted.
fn txt_strings(line: &str) -> Vec<String> {
    let rdata = line.split_once(" IN TXT ").expect("IN TXT").1;
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = rdata.chars();
    while let Some(c) = chars.next() {
        match (c, current.as_mut()) {
            ('"', None) => current = Some(String::new()),
            ('"', Some(_)) => out.extend(current.take()),
            ('\\', Some(s)) => s.extend(chars.next()),
            (c, Some(s)) => s.push(c),
            (_, None) => assert_eq!(c, ' ', "between strings: {line}"),
        }
    }
    assert!(current.is_none(), "an unclosed string: {line}");
    out
}

/// Standard base64, decoded (the test's own, not the server's).
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The key of a `v=DKIM1; k=…; p=…` record.
fn public_key(record: &str) -> Vec<u8> {
    base64(record.rsplit_once("p=").expect("p=").1)
}

#[test]
fn dkim_keys_from_the_command_line_and_the_api() {
    let setup = Setup::new("");
    let Setup { data, path, .. } = &setup;
    let appliance = setup.start();
    let cfg = path.to_str().expect("utf-8");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--config", cfg];
        all.extend_from_slice(args);
        run_cairn(&all)
    };
    let api = AdminApi::new(&appliance, data);

    let (st, out, err) = admin(&["domain", "add", "example.org"]);
    assert!(st.success(), "{out}{err}");

    // An RSA key with the default selector, printed as a zone-file line.
    let (st, out, err) = admin(&["domain", "dkim", "example.org"]);
    assert!(st.success(), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "Publish this TXT record:");
    let line = lines[1];
    let (name, _) = line.split_once(". IN TXT \"").expect("a zone line");
    let selector = name
        .strip_suffix("._domainkey.example.org")
        .expect("selector._domainkey.example.org");
    assert!(
        selector.len() == 11
            && selector.starts_with("cairn")
            && selector[5..].bytes().all(|b| b.is_ascii_digit()),
        "{selector}"
    );
    let strings = txt_strings(line);
    assert!(
        strings.len() >= 2,
        "a 2048-bit key needs two strings: {line}"
    );
    assert!(strings.iter().all(|s| s.len() <= 255), "{line}");
    let printed = strings.concat();
    assert!(printed.starts_with("v=DKIM1; k=rsa; p="), "{printed}");
    // A SubjectPublicKeyInfo of a 2048-bit RSA key.
    let spki = public_key(&printed);
    assert!(spki.len() > 290 && spki.len() < 300, "{}", spki.len());
    assert_eq!(
        &spki[4..19],
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00
        ]
    );

    // The API shows the same record, and never the private key.
    let (status, key) = api.get("/domains/example.org/dkim");
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["domain"], "example.org");
    assert_eq!(key["selector"], selector);
    assert_eq!(key["algorithm"], "rsa");
    assert_eq!(
        key["record_name"],
        format!("{selector}._domainkey.example.org")
    );
    assert_eq!(key["record"], printed.as_str());
    assert!(key["created"].as_i64().is_some_and(|t| t > 1_700_000_000));
    let fields: Vec<&String> = key.as_object().expect("object").keys().collect();
    assert_eq!(fields.len(), 6, "{key}");
    assert!(!key.to_string().contains("private"), "{key}");
    let (st, out, err) = admin(&["domain", "dkim", "example.org", "--show"]);
    assert!(st.success(), "{out}{err}");
    assert!(
        out.starts_with("example.org: rsa key, selector cairn"),
        "{out}"
    );
    assert!(
        out.contains("Its TXT record:") && out.contains(line),
        "{out}"
    );

    // An Ed25519 key with a selector of our own replaces it.
    let (st, out, err) = admin(&[
        "--json",
        "domain",
        "dkim",
        "Example.org",
        "--algorithm",
        "ed25519",
        "--selector",
        "Ed2026",
    ]);
    assert!(st.success(), "{out}{err}");
    let made: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(made["selector"], "ed2026");
    assert_eq!(made["record_name"], "ed2026._domainkey.example.org");
    let record = made["record"].as_str().expect("record");
    assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
    assert_eq!(public_key(record).len(), 32);
    let (_, key) = api.get("/domains/example.org/dkim");
    assert_eq!(key["algorithm"], "ed25519");
    assert_eq!(key["record"], record);

    // Refusals: the field at fault, 404 for what is not there.
    let (st, _, err) = admin(&["domain", "dkim", "example.org", "--selector", "no_good"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("[selector]") && err.contains("400"), "{err}");
    let (st, _, err) = admin(&["domain", "dkim", "nowhere.org"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("404"), "{err}");
    let (st, _, _) = admin(&["domain", "dkim", "example.org", "--algorithm", "dsa"]);
    assert_eq!(st.code(), Some(2), "clap refuses an unknown algorithm");
    let (status, body) = api.post("/domains/example.org/dkim", &json!({ "algorithm": "dsa" }));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "algorithm");
    let (status, body) = api.post("/domains/example.org/dkim", &json!({ "bits": 1024 }));
    assert_eq!(status, 400, "{body}");
    let (status, _) = api.get("/domains/example.org/nothing");
    assert_eq!(status, 404);
    let (status, _) = api.post("/domains/example.org/nothing", &json!({}));
    assert_eq!(status, 404);
    let (status, body) = api.get("/domains/nowhere.org/dkim");
    assert_eq!(status, 404, "{body}");

    // A POST with no body at all takes the defaults. (RSA generation in a
    // debug build takes seconds: a client that waits longer.)
    let patient = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    let reply = api
        .authed(patient.post(format!("{}/domains/example.org/dkim", api.base)))
        .send()
        .expect("POST");
    assert_eq!(reply.status().as_u16(), 201);
    let made: Value = reply.json().expect("JSON");
    assert_eq!(made["algorithm"], "rsa");

    // Removal, audited with the actor.
    let (st, out, err) = admin(&["domain", "dkim", "example.org", "--remove"]);
    assert!(st.success(), "{out}{err}");
    let (status, body) = api.get("/domains/example.org/dkim");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no DKIM key")));
    assert_eq!(api.delete("/domains/example.org/dkim"), 404);
    let (st, _, err) = admin(&["domain", "dkim", "example.org", "--show"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("404"), "{err}");
    let (status, audit) = api.get("/audit?action=domain&limit=20");
    assert_eq!(status, 200, "{audit}");
    let seen: Vec<(String, String)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("cli", "domain.dkim_remove"),
        ("token", "domain.dkim"),
        ("cli", "domain.dkim"),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string());
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert!(!audit.to_string().contains("p="), "{audit}");

    // A deleted domain takes its key with it.
    let (status, _) = api.post(
        "/domains/example.org/dkim",
        &json!({ "algorithm": "ed25519" }),
    );
    assert_eq!(status, 201);
    assert_eq!(api.delete("/domains/example.org"), 204);
    let (status, _) = api.post("/domains", &json!({ "name": "example.org" }));
    assert_eq!(status, 201);
    let (status, _) = api.get("/domains/example.org/dkim");
    assert_eq!(status, 404);

    // The OpenAPI description has the new paths.
    let (_, doc) = api.get("/openapi.json");
    let dkim = &doc["paths"]["/api/v1/domains/{name}/dkim"];
    for method in ["get", "post", "delete"] {
        assert!(dkim[method].is_object(), "{method}");
    }
}
