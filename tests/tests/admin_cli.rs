//! `cairn admin` end to end against a running appliance: it finds the
//! appliance and its token through the configuration, as on the appliance
//! itself, prints text or JSON, and fails with the API's message.

use std::time::Duration;

use cairn_tests::{run_cairn, run_cairn_with_input, Setup};

#[test]
fn domains_and_accounts_from_the_command_line() {
    let setup = Setup::new("");
    let Setup { path, .. } = &setup;
    let appliance = setup.start();
    let cfg = path.to_str().expect("utf-8");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--config", cfg];
        all.extend_from_slice(args);
        run_cairn(&all)
    };

    let (st, out, err) = admin(&["domain", "add", "example.org"]);
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("added domain example.org"), "{out}");
    let (st, _, err) = admin(&["domain", "add", "example.org"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("exists") && err.contains("409"), "{err}");

    let (st, out, err) = run_cairn_with_input(
        &[
            "admin",
            "--config",
            cfg,
            "account",
            "add",
            "alice@example.org",
            "--password-stdin",
            "--name",
            "Alice",
        ],
        Some("correct horse battery\n"),
    );
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("added account alice@example.org"), "{out}");
    let (st, _, err) = admin(&["account", "add", "bob@example.org", "--password", "short"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("[password]") && err.contains("400"), "{err}");
    let (st, _, _) = admin(&[
        "account",
        "add",
        "bob@example.org",
        "--password",
        "long enough",
    ]);
    assert!(st.success());

    let (st, out, _) = admin(&["account", "list"]);
    assert!(st.success());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("alice@example.org") && lines[0].contains("Alice"),
        "{out}"
    );

    let (st, out, _) = admin(&["--json", "account", "list", "--search", "bob"]);
    assert!(st.success());
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(parsed[0]["address"], "bob@example.org");

    assert!(admin(&["account", "lock", "bob@example.org"]).0.success());
    let (_, out, _) = admin(&["account", "show", "bob@example.org"]);
    assert!(out.contains("Locked"), "{out}");
    assert!(admin(&[
        "account",
        "set-password",
        "bob@example.org",
        "--password",
        "another passphrase"
    ])
    .0
    .success());

    let (st, out, err) = admin(&[
        "list",
        "add",
        "team@example.org",
        "--member",
        "alice@example.org",
        "--member",
        "x@elsewhere.net",
    ]);
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains("added list team@example.org with 2 members"),
        "{out}"
    );
    let (_, out, _) = admin(&["list", "list"]);
    assert!(
        out.starts_with("team@example.org") && out.contains("x@elsewhere.net"),
        "{out}"
    );
    let (st, out, err) = admin(&[
        "account",
        "add-alias",
        "alice@example.org",
        "postmaster@example.org",
    ]);
    assert!(st.success(), "{out}{err}");
    let (_, out, _) = admin(&["account", "show", "postmaster@example.org"]);
    assert!(out.contains("alice@example.org"), "{out}");
    assert!(admin(&["list", "delete", "team@example.org"]).0.success());

    let (st, _, err) = admin(&["domain", "delete", "example.org"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("not_empty"), "{err}");
    assert!(admin(&["account", "delete", "bob@example.org"]).0.success());
    let (st, _, err) = admin(&["account", "show", "bob@example.org"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("404"), "{err}");

    // A wrong token is refused; an explicit URL and token work.
    let url = format!("http://{}", appliance.http);
    let (st, _, err) = admin(&["--url", &url, "--token", "wrong", "domain", "list"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("401"), "{err}");
    let token = std::fs::read_to_string(setup.tmp.path().join("data/api-token")).expect("token");
    let (st, out, _) = run_cairn(&[
        "admin",
        "--url",
        &url,
        "--token",
        token.trim(),
        "domain",
        "list",
    ]);
    assert!(st.success());
    assert_eq!(out.trim(), "example.org");

    drop(appliance);
    std::thread::sleep(Duration::from_millis(100));
    let (st, _, err) = admin(&["domain", "list"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("cannot reach the appliance"), "{err}");
}

#[test]
fn classes_of_service_and_app_passwords_from_the_command_line() {
    let setup = Setup::new("");
    let Setup { path, .. } = &setup;
    let _appliance = setup.start();
    let cfg = path.to_str().expect("utf-8");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--config", cfg];
        all.extend_from_slice(args);
        run_cairn(&all)
    };

    let (st, out, err) = admin(&[
        "cos",
        "add",
        "staff",
        "--quota",
        "1000000",
        "--disable",
        "activesync",
        "--disable",
        "video",
        "--min-password-length",
        "12",
    ]);
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("added class of service staff"), "{out}");
    let (st, _, err) = admin(&["cos", "add", "staff"]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("409"), "{err}");
    let (st, _, err) = admin(&["cos", "add", "x", "--disable", "telepathy"]);
    assert_eq!(st.code(), Some(2), "{err}");
    let (_, out, _) = admin(&["cos", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("default") && lines[1].starts_with("staff"),
        "{out}"
    );
    let (_, out, _) = admin(&["cos", "show", "staff"]);
    assert!(
        out.contains("1000000") && out.contains("imap") && !out.contains("video"),
        "{out}"
    );
    let (_, out, _) = admin(&["--json", "cos", "show", "staff"]);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(parsed["features"]["activesync"], false, "{out}");
    assert_eq!(parsed["min_password_length"], 12, "{out}");

    assert!(admin(&["domain", "add", "example.org"]).0.success());
    let (st, _, err) = admin(&[
        "account",
        "add",
        "alice@example.org",
        "--password",
        "long enough",
        "--class",
        "staff",
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("[password]") && err.contains("400"), "{err}");
    let (st, _, err) = admin(&[
        "account",
        "add",
        "alice@example.org",
        "--password",
        "long enough",
        "--class",
        "nope",
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("[class_of_service]"), "{err}");
    let (st, out, err) = admin(&[
        "account",
        "add",
        "alice@example.org",
        "--password",
        "a long passphrase",
        "--class",
        "staff",
    ]);
    assert!(st.success(), "{out}{err}");
    let (_, out, _) = admin(&["account", "show", "alice@example.org"]);
    assert!(out.contains("staff") && out.contains("1000000"), "{out}");
    let (st, _, err) = admin(&["cos", "delete", "staff"]);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("in_use") && err.contains("1 accounts"),
        "{err}"
    );
    let (st, out, err) = admin(&["account", "set-class", "alice@example.org", "default"]);
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains("alice@example.org is now in class default"),
        "{out}"
    );

    let (st, out, err) = admin(&[
        "account",
        "app-password",
        "add",
        "alice@example.org",
        "phone",
    ]);
    assert!(st.success(), "{out}{err}");
    let password = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(password.len(), 19, "{out}");
    let (st, _, err) = admin(&[
        "account",
        "app-password",
        "add",
        "alice@example.org",
        "phone",
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("409"), "{err}");
    let (_, out, _) = admin(&["account", "app-password", "list", "alice@example.org"]);
    assert!(
        out.starts_with("phone") && out.contains("UTC") && !out.contains(&password),
        "{out}"
    );
    let (_, out, _) = admin(&[
        "--json",
        "account",
        "app-password",
        "list",
        "alice@example.org",
    ]);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(parsed[0]["name"], "phone", "{out}");
    assert!(admin(&[
        "account",
        "app-password",
        "delete",
        "alice@example.org",
        "phone"
    ])
    .0
    .success());
    let (st, _, err) = admin(&[
        "account",
        "app-password",
        "delete",
        "alice@example.org",
        "phone",
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("404"), "{err}");
    let (st, out, err) = admin(&["cos", "delete", "staff"]);
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("deleted class of service staff"), "{out}");
}

#[test]
fn service_accounts_and_the_audit_trail_from_the_command_line() {
    let setup = Setup::new("");
    let Setup { path, .. } = &setup;
    let _appliance = setup.start();
    let cfg = path.to_str().expect("utf-8");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--config", cfg];
        all.extend_from_slice(args);
        run_cairn(&all)
    };

    let (st, out, err) = admin(&["domain", "add", "example.org"]);
    assert!(st.success(), "{out}{err}");
    let (st, out, err) = run_cairn_with_input(
        &[
            "admin",
            "--config",
            cfg,
            "service-account",
            "add",
            "book-reader",
            "--password-stdin",
            "--description",
            "address book",
        ],
        Some("reader secret\n"),
    );
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("added service account book-reader"), "{out}");
    assert!(out.contains("cn=book-reader,ou=services"), "{out}");
    let (st, _, err) = admin(&[
        "service-account",
        "add",
        "book-reader",
        "--password",
        "reader secret",
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("409"), "{err}");
    let (st, out, _) = admin(&["service-account", "list"]);
    assert!(st.success());
    assert!(
        out.contains("book-reader") && out.contains("address book"),
        "{out}"
    );
    let (st, out, _) = admin(&["--json", "service-account", "list"]);
    assert!(st.success());
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list[0]["name"], "book-reader", "{out}");
    assert!(!out.contains("argon2"), "{out}");
    let (st, out, err) = admin(&["service-account", "delete", "book-reader"]);
    assert!(st.success(), "{out}{err}");

    // The audit trail: newest first, the CLI as the actor.
    let (st, out, err) = admin(&["audit"]);
    assert!(st.success(), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("cli") && lines[0].contains("service_account.delete"),
        "{out}"
    );
    assert!(
        lines[1].contains("service_account.add") && lines[1].contains("book-reader"),
        "{out}"
    );
    assert!(
        lines[2].contains("domain.add") && lines[2].contains("example.org"),
        "{out}"
    );
    assert!(lines[2].contains("UTC"), "{out}");
    let (st, out, _) = admin(&["audit", "--action", "domain", "--json"]);
    assert!(st.success());
    let page: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(page["items"][0]["actor"], "cli", "{out}");
    let (st, out, _) = admin(&["audit", "--target", "book-reader", "--limit", "1"]);
    assert!(st.success());
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("service_account.delete"), "{out}");
}
