//! The admin API with a real HTTP client: authentication, domains and
//! accounts end to end (directory on its shard, mail on the owner's),
//! errors as JSON with a code and the field at fault, and persistence
//! across a restart; the audit trail, service accounts, and a class's
//! quota change refusing an IMAP APPEND.

use std::time::Duration;

use cairn_config::Service;
use cairn_tests::imap::Session;
use cairn_tests::{AdminApi, Appliance, Setup};
use serde_json::{json, Value};

#[test]
fn domains_and_accounts_through_the_api() {
    let setup = Setup::new("[limits]\nmax_request_body = 2048\n");
    let Setup { data, .. } = &setup;
    let appliance = setup.start();
    let banner = appliance.banner.join("\n");
    let password = banner
        .split("with password \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("password in banner")
        .to_string();
    let s = AdminApi::new(&appliance, data);

    // Authentication.
    let anonymous = s
        .client
        .get(format!("{}/domains", s.base))
        .send()
        .expect("GET");
    assert_eq!(anonymous.status(), 401);
    let wrong = s
        .client
        .get(format!("{}/domains", s.base))
        .bearer_auth("nope")
        .send()
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let basic = s
        .client
        .get(format!("{}/domains", s.base))
        .basic_auth("admin", Some(&password))
        .send()
        .expect("GET");
    assert_eq!(basic.status(), 200);
    let bad_basic = s
        .client
        .get(format!("{}/domains", s.base))
        .basic_auth("admin", Some("wrong"))
        .send()
        .expect("GET");
    assert_eq!(bad_basic.status(), 401);
    let doc: Value = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .expect("GET")
        .json()
        .expect("openapi");
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/v1/accounts"]["post"].is_object());

    // Domains.
    let (status, body) = s.post("/domains", &json!({ "name": "Example.org" }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "example.org");
    assert_eq!(s.post("/domains", &json!({ "name": "example.org" })).0, 409);
    let (status, body) = s.post("/domains", &json!({ "name": "no_dots" }));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("domain")),
        "{body}"
    );
    let (status, body) = s.post("/domains", &json!({ "name": "x.org", "colour": "red" }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let big = json!({ "name": "y".repeat(4000) });
    assert_eq!(s.post("/domains", &big).0, 413);
    let (status, body) = s.get("/domains");
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(s.post("/domains", &json!({ "name": "other.net" })).0, 201);
    let (status, body) = s.get("/domains?search=EXAMPLE");
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["name"], "example.org", "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(s.get("/domains/example.org").0, 200);
    assert_eq!(s.get("/domains/nope.org").0, 404);

    // Accounts.
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "alice@example.org", "password": "short" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "alice@nowhere.org", "password": "long enough" }),
    );
    assert_eq!(status, 404, "{body}");
    for (i, user) in ["alice", "bob", "carol"].iter().enumerate() {
        let (status, body) = s.post(
            "/accounts",
            &json!({ "address": format!("{user}@example.org"), "password": "correct horse", "display_name": format!("User {i}") }),
        );
        assert_eq!(status, 201, "{body}");
        assert!(
            body.get("password_hash").is_none() && body.get("password").is_none(),
            "{body}"
        );
    }
    assert_eq!(
        s.post(
            "/accounts",
            &json!({ "address": "ALICE@example.org", "password": "correct horse" })
        )
        .0,
        409
    );
    let (status, body) = s.get("/accounts/alice%40example.org");
    assert_eq!(
        (status, body["display_name"].as_str()),
        (200, Some("User 0")),
        "{body}"
    );
    let (_, body) = s.get("/accounts?search=user%201");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    let found: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["address"].as_str())
        .collect();
    assert_eq!(found, vec!["bob@example.org"]);
    let (status, body) = s.patch(
        "/accounts/bob@example.org",
        &json!({ "status": "Locked", "display_name": "Robert" }),
    );
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["display_name"].as_str()
        ),
        (200, Some("Locked"), Some("Robert")),
        "{body}"
    );
    let (status, body) = s.patch("/accounts/bob@example.org", &json!({ "password": "short" }));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    assert_eq!(
        s.patch(
            "/accounts/bob@example.org",
            &json!({ "password": "a new passphrase" })
        )
        .0,
        200
    );
    assert_eq!(
        s.patch("/accounts/zed@example.org", &json!({ "status": "Locked" }))
            .0,
        404
    );
    let (_, body) = s.get("/accounts?limit=2");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
    let (_, body) = s.get("/accounts?after=bob%40example.org");
    assert_eq!(body["items"][0]["address"], "carol@example.org");

    let (status, body) = {
        let r = s
            .authed(s.client.delete(format!("{}/domains/example.org", s.base)))
            .send()
            .expect("DELETE");
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_empty")),
        "{body}"
    );
    assert_eq!(s.delete("/accounts/carol@example.org"), 204);
    assert_eq!(s.get("/accounts/carol@example.org").0, 404);
    assert_eq!(s.delete("/accounts/carol@example.org"), 404);

    // Everything is still there after a restart.
    assert_eq!(
        appliance
            .stop(libc::SIGTERM, Duration::from_secs(10))
            .and_then(|st| st.code()),
        Some(0)
    );
    // The clean stop wrote a checkpoint of shard 0 (the directory's), so
    // the restart replays nothing after it.
    let checkpoints: Vec<_> = std::fs::read_dir(data.join("shards/0"))
        .expect("shard dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let appliance = setup.start();
    let s = AdminApi::new(&appliance, data);
    let metrics = s
        .client
        .get(format!("http://{}/metrics", appliance.http))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("cairn_storage_recovered_records_total{shard=\"0\"} 0"),
        "{metrics}"
    );
    let (_, body) = s.get("/accounts");
    let all: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["address"].as_str())
        .collect();
    assert_eq!(all, vec!["alice@example.org", "bob@example.org"]);
    // carol's mail went with her: she can be created afresh.
    assert_eq!(
        s.post(
            "/accounts",
            &json!({ "address": "carol@example.org", "password": "another one" })
        )
        .0,
        201
    );
    assert_eq!(s.delete("/domains/example.org?force=true"), 204);
    assert_eq!(s.get("/accounts/alice@example.org").0, 404);
}

#[test]
fn classes_of_service_and_app_passwords_through_the_api() {
    let setup = Setup::new("");
    let Setup { data, .. } = &setup;
    let appliance = setup.start();
    let s = AdminApi::new(&appliance, data);
    let doc: Value = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .expect("GET")
        .json()
        .expect("openapi");
    assert!(doc["paths"]["/api/v1/classes/{name}"]["patch"].is_object());
    assert!(doc["paths"]["/api/v1/accounts/{address}/app-passwords"]["post"].is_object());

    // Classes: `default` is there from the start.
    let (status, body) = s.get("/classes");
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["name"], "default", "{body}");
    assert_eq!(body["items"][0]["min_password_length"], 8, "{body}");
    let staff = json!({
        "name": "staff",
        "quota_bytes": 1_000_000,
        "features": { "activesync": false },
        "min_password_length": 12
    });
    let (status, body) = s.post("/classes", &staff);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            body["features"]["activesync"].as_bool(),
            body["features"]["imap"].as_bool()
        ),
        (Some(false), Some(true)),
        "{body}"
    );
    assert_eq!(s.post("/classes", &staff).0, 409);
    let (status, body) = s.post("/classes", &json!({ "name": "bad name" }));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, body) = s.post("/classes", &json!({ "name": "x", "colour": 1 }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = s.patch("/classes/staff", &json!({ "max_message_size": 5_000_000 }));
    assert_eq!(
        (
            status,
            body["max_message_size"].as_u64(),
            body["quota_bytes"].as_u64()
        ),
        (200, Some(5_000_000), Some(1_000_000)),
        "{body}"
    );
    assert_eq!(
        s.patch("/classes/nope", &json!({ "quota_bytes": 1 })).0,
        404
    );
    assert_eq!(s.get("/classes/staff").0, 200);
    assert_eq!(s.get("/classes/nope").0, 404);

    // Accounts in classes: the password policy and quota come from the class.
    assert_eq!(s.post("/domains", &json!({ "name": "example.org" })).0, 201);
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "alice@example.org", "password": "long enough", "class_of_service": "staff" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "staff needs 12 characters: {body}"
    );
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "alice@example.org", "password": "long enough", "class_of_service": "nope" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("class_of_service")),
        "{body}"
    );
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "alice@example.org", "password": "a long passphrase", "class_of_service": "staff" }),
    );
    assert_eq!(
        (
            status,
            body["class_of_service"].as_str(),
            body["quota_bytes"].as_u64()
        ),
        (201, Some("staff"), Some(1_000_000)),
        "{body}"
    );
    let (status, body) = s.post(
        "/accounts",
        &json!({ "address": "bob@example.org", "password": "long enough" }),
    );
    assert_eq!(
        (
            status,
            body["class_of_service"].as_str(),
            body["quota_bytes"].as_u64()
        ),
        (201, Some("default"), Some(0)),
        "{body}"
    );
    let (status, body) = s.patch(
        "/accounts/bob@example.org",
        &json!({ "class_of_service": "nope" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("class_of_service")),
        "{body}"
    );
    let (status, body) = s.patch(
        "/accounts/bob@example.org",
        &json!({ "class_of_service": "staff", "password": "too short!" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "the new class's policy applies: {body}"
    );
    let (status, body) = s.patch(
        "/accounts/bob@example.org",
        &json!({ "class_of_service": "staff" }),
    );
    assert_eq!(
        (status, body["class_of_service"].as_str()),
        (200, Some("staff")),
        "{body}"
    );
    let (status, body) = {
        let r = s
            .authed(s.client.delete(format!("{}/classes/staff", s.base)))
            .send()
            .expect("DELETE");
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 accounts")),
        "{body}"
    );
    assert_eq!(s.delete("/classes/default"), 400);

    // App passwords: shown once, listed without secrets, deleted.
    let (status, body) = s.post(
        "/accounts/alice@example.org/app-passwords",
        &json!({ "name": "thunderbird" }),
    );
    assert_eq!(status, 201, "{body}");
    let password = body["password"].as_str().expect("password").to_string();
    assert_eq!(password.len(), 19, "{password}");
    assert_eq!(
        s.post(
            "/accounts/alice@example.org/app-passwords",
            &json!({ "name": "thunderbird" })
        )
        .0,
        409
    );
    let (status, body) = s.post(
        "/accounts/alice@example.org/app-passwords",
        &json!({ "name": "no spaces" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    assert_eq!(
        s.post(
            "/accounts/zed@example.org/app-passwords",
            &json!({ "name": "x" })
        )
        .0,
        404
    );
    let (status, body) = s.get("/accounts/alice@example.org/app-passwords");
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["name"], "thunderbird", "{body}");
    assert!(body["items"][0]["created_unix"]
        .as_u64()
        .is_some_and(|t| t > 0));
    let text = body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(&password),
        "{text}"
    );
    assert_eq!(
        s.delete("/accounts/alice@example.org/app-passwords/phone"),
        404
    );
    assert_eq!(
        s.delete("/accounts/alice@example.org/app-passwords/thunderbird"),
        204
    );
    let (_, body) = s.get("/accounts/alice@example.org/app-passwords");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(0), "{body}");

    // Once nobody uses it, the class goes.
    for user in ["alice", "bob"] {
        assert_eq!(s.delete(&format!("/accounts/{user}@example.org")), 204);
    }
    assert_eq!(s.delete("/classes/staff"), 204);
    assert_eq!(s.get("/classes/staff").0, 404);
}

#[test]
fn audit_service_accounts_and_class_quotas_through_the_api() {
    let setup = Setup::new("[mail_access]\nallow_plaintext_auth = true\n");
    let Setup { data, config, .. } = &setup;
    let appliance = setup.start();
    let s = AdminApi::new(&appliance, data);
    let doc: Value = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .expect("GET")
        .json()
        .expect("openapi");
    assert!(doc["paths"]["/api/v1/audit"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/service-accounts"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/service-accounts/{name}"]["delete"].is_object());

    assert_eq!(s.post("/domains", &json!({ "name": "example.org" })).0, 201);
    let small = json!({ "name": "small", "quota_bytes": 1_000_000 });
    assert_eq!(s.post("/classes", &small).0, 201);
    let alice = json!({
        "address": "alice@example.org",
        "password": "correct horse",
        "class_of_service": "small"
    });
    let (status, body) = s.post("/accounts", &alice);
    assert_eq!(
        (status, body["quota_bytes"].as_u64()),
        (201, Some(1_000_000)),
        "{body}"
    );
    // A wrong password over IMAP is audited with the protocol's address.
    let imap = config.port(Service::Imap);
    assert!(Session::connect(imap, "alice@example.org", "wrong", 1).is_err());

    // Shrinking the class's quota reaches the mailstore: APPEND is refused.
    let mut session =
        Session::connect(imap, "alice@example.org", "correct horse", 1).expect("login");
    session.append("INBOX").expect("append under quota");
    let (status, body) = s.patch("/classes/small", &json!({ "quota_bytes": 10 }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.get("/accounts/alice@example.org").1["quota_bytes"], 10);
    let refused = session.append("INBOX");
    assert!(refused.is_err(), "{refused:?}");
    let (_, inbox) = s.get("/accounts/alice@example.org/mailboxes/INBOX");
    assert_eq!(inbox["messages"], 1, "{inbox}");
    // Moving to a roomier class lifts it.
    let (status, body) = s.patch(
        "/accounts/alice@example.org",
        &json!({ "class_of_service": "default" }),
    );
    assert_eq!(
        (status, body["quota_bytes"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    session
        .append("INBOX")
        .expect("append after the class change");

    // Service accounts: never a hash in a reply, errors with the field.
    let reader = json!({ "name": "book-reader", "password": "reader secret", "description": "address book" });
    let (status, body) = s.post("/service-accounts", &reader);
    assert_eq!(status, 201, "{body}");
    assert!(body.get("password_hash").is_none(), "{body}");
    assert_eq!(s.post("/service-accounts", &reader).0, 409);
    let (status, body) = s.post(
        "/service-accounts",
        &json!({ "name": "a b", "password": "reader secret" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, body) = s.post(
        "/service-accounts",
        &json!({ "name": "x", "password": "short" }),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    let (status, body) = s.get("/service-accounts");
    assert_eq!(
        (status, body["items"][0]["name"].as_str()),
        (200, Some("book-reader")),
        "{body}"
    );
    // Not a mail login.
    assert!(Session::connect(imap, "book-reader", "reader secret", 1).is_err());
    assert_eq!(s.delete("/service-accounts/book-reader"), 204);
    assert_eq!(s.delete("/service-accounts/book-reader"), 404);

    // The audit trail, newest first, with the actor of each change.
    let (status, body) = s.get("/audit?limit=100");
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    let seen: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("token", "service_account.delete", "book-reader"),
        ("token", "service_account.add", "book-reader"),
        ("token", "account.update", "alice@example.org"),
        ("token", "class.update", "small"),
        ("alice@example.org", "auth.failed", "alice@example.org"),
        ("token", "account.add", "alice@example.org"),
        ("token", "class.add", "small"),
        ("token", "domain.add", "example.org"),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert_eq!(seen[0].1, "service_account.delete", "{seen:?}");
    let failed = items
        .iter()
        .find(|e| e["action"] == "auth.failed")
        .expect("auth.failed");
    assert_eq!(failed["ip"].as_str(), Some("127.0.0.1"), "{failed}");
    assert!(!body.to_string().contains("reader secret") && !body.to_string().contains("argon2"));
    // Basic auth is audited as the admin.
    let basic = s
        .client
        .post(format!("{}/domains", s.base))
        .basic_auth("admin", Some(admin_password(&appliance)))
        .json(&json!({ "name": "other.example" }))
        .send()
        .expect("POST");
    assert_eq!(basic.status(), 201);
    let (_, body) = s.get("/audit?limit=1");
    assert_eq!(
        (
            body["items"][0]["actor"].as_str(),
            body["items"][0]["action"].as_str()
        ),
        (Some("admin"), Some("domain.add"))
    );
    // Paging and filters.
    let (_, first) = s.get("/audit?limit=2");
    let next = first["next"].as_u64().expect("next");
    let (_, second) = s.get(&format!("/audit?limit=2&before={next}"));
    assert!(second["items"][0]["id"].as_u64() < Some(next), "{second}");
    let (_, only) = s.get("/audit?action=class&target=small");
    let actions: Vec<&str> = only["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["class.update", "class.add"]);
    let (_, by) = s.get("/audit?actor=admin");
    assert_eq!(by["items"].as_array().map(Vec::len), Some(1), "{by}");
    let (status, body) = s.get("/audit?before=soon");
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("before")),
        "{body}"
    );
    drop(session);
}

/// The first admin password, as the banner printed it.
fn admin_password(appliance: &Appliance) -> String {
    appliance
        .banner
        .join("\n")
        .split("with password \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("password in banner")
        .to_string()
}
