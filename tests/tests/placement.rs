//! Accounts stay with their mail when the shard count changes: the real
//! appliance, started with 2 shards, gets accounts and mail over SMTP;
//! started again on the same data directory with 4 shards, every account's
//! mail is still found (counted through the admin API, which routes to the
//! owning shard), and accounts made after the growth take mail too.
//! And moving an account (`cairn admin account move`): a real IMAP client
//! (async-imap) sees the same UIDVALIDITY, UIDs and flags before the move,
//! after it and after a restart, and SMTP delivery after the move lands on
//! the new shard.

use std::time::Duration;

use async_imap::Session;
use cairn_config::Service;
use cairn_tests::{async_imap_login, free_udp_range, run_cairn, AdminApi, Setup};
use futures_lite::StreamExt;
use lettre::{Message, SmtpTransport, Transport};
use tokio::net::TcpStream;

const PASSWORD: &str = "a long enough password";

fn account(i: usize) -> String {
    format!("user{i}@example.org")
}

/// Rewrites the setup's configuration to run `shards` shards.
fn set_shards(setup: &mut Setup, shards: usize) {
    let text = setup
        .config
        .text
        .lines()
        .map(|line| {
            if line.starts_with("count = ") {
                format!("count = {shards}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    setup.config.text = text;
    std::fs::write(&setup.path, &setup.config.text).expect("write config");
}

/// Delivers one message to each of `to` through the MX listener.
fn deliver(port: u16, to: &[String], subject: &str) {
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    for address in to {
        let message = Message::builder()
            .from("sender@remote.test".parse().expect("from"))
            .to(address.parse().expect("to"))
            .subject(subject)
            .body(format!("for {address}"))
            .expect("message");
        let reply = mailer.send(&message).expect("send");
        assert!(reply.is_positive(), "{address}: {reply:?}");
    }
}

fn inbox_count(api: &AdminApi, account: &str) -> u64 {
    let (status, body) = api.get(&format!("/accounts/{account}/mailboxes/INBOX"));
    assert_eq!(status, 200, "{account}: {body}");
    body["messages"].as_u64().expect("messages")
}

#[test]
fn growing_from_two_to_four_shards_keeps_every_accounts_mail() {
    // One media port per shard, for the most shards this test runs.
    let media = free_udp_range(4);
    let mut setup = Setup::new(&format!(
        "[media]\nport_min = {media}\nport_max = {}\n",
        media + 3
    ));
    let smtp = setup.config.port(Service::Smtp);
    let old: Vec<String> = (0..8).map(account).collect();
    let new: Vec<String> = (8..24).map(account).collect();

    let appliance = setup.start();
    let api = AdminApi::new(&appliance, &setup.data);
    api.provision("example.org", &old, PASSWORD);
    deliver(smtp, &old, "before the growth");
    for address in &old {
        assert_eq!(inbox_count(&api, address), 1, "{address}");
    }
    assert!(appliance
        .stop(libc::SIGTERM, Duration::from_secs(30))
        .is_some_and(|s| s.success()));

    set_shards(&mut setup, 4);
    let appliance = setup.start();
    let api = AdminApi::new(&appliance, &setup.data);
    for address in &old {
        assert_eq!(inbox_count(&api, address), 1, "{address} after the growth");
    }
    for address in &new {
        let body = serde_json::json!({ "address": address, "password": PASSWORD });
        let (status, reply) = api.post("/accounts", &body);
        assert_eq!(status, 201, "{address}: {reply}");
    }
    deliver(smtp, &old, "after the growth");
    deliver(smtp, &new, "after the growth");
    let shards: Vec<u64> = new
        .iter()
        .map(|address| {
            let (status, body) = api.get(&format!("/accounts/{address}"));
            assert_eq!(status, 200, "{body}");
            body["shard"].as_u64().expect("shard")
        })
        .collect();
    assert!(
        shards.iter().any(|&s| s >= 2),
        "new accounts use the new shards: {shards:?}"
    );
    assert!(appliance
        .stop(libc::SIGTERM, Duration::from_secs(30))
        .is_some_and(|s| s.success()));

    // Once more with 4: the explicit placements were persisted.
    let appliance = setup.start();
    let api = AdminApi::new(&appliance, &setup.data);
    for address in &old {
        assert_eq!(inbox_count(&api, address), 2, "{address}");
    }
    for address in &new {
        assert_eq!(inbox_count(&api, address), 1, "{address}");
    }
}

/// What an IMAP client knows of INBOX: UIDVALIDITY, and each message's
/// UID and flags (without `\\Recent`).
type Seen = (u32, Vec<(u32, Vec<String>)>);

async fn inbox_as_seen(s: &mut Session<TcpStream>) -> Seen {
    let mailbox = s.select("INBOX").await.expect("select");
    let fetched: Vec<_> = s
        .uid_fetch("1:*", "(UID FLAGS)")
        .await
        .expect("fetch")
        .collect()
        .await;
    let mut messages: Vec<(u32, Vec<String>)> = fetched
        .into_iter()
        .map(|f| {
            let f = f.expect("fetch");
            let mut flags: Vec<String> = f
                .flags()
                .map(|flag| format!("{flag:?}"))
                .filter(|flag| flag != "Recent")
                .collect();
            flags.sort();
            (f.uid.expect("uid"), flags)
        })
        .collect();
    messages.sort();
    (mailbox.uid_validity.expect("uidvalidity"), messages)
}

fn seen_by_imap(rt: &tokio::runtime::Runtime, port: u16, user: &str) -> Seen {
    rt.block_on(async {
        let mut s = async_imap_login(port, user, PASSWORD).await;
        let seen = inbox_as_seen(&mut s).await;
        s.logout().await.expect("logout");
        seen
    })
}

fn shard_of(api: &AdminApi, address: &str) -> u64 {
    let (status, body) = api.get(&format!("/accounts/{address}"));
    assert_eq!(status, 200, "{body}");
    body["shard"].as_u64().expect("shard")
}

#[test]
fn a_moved_account_keeps_its_ids_and_takes_mail_on_its_new_shard() {
    let setup = Setup::new("[mail_access]\nallow_plaintext_auth = true\n");
    let (imap, smtp) = (
        setup.config.port(Service::Imap),
        setup.config.port(Service::Smtp),
    );
    let user = account(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    let appliance = setup.start();
    let api = AdminApi::new(&appliance, &setup.data);
    api.provision("example.org", std::slice::from_ref(&user), PASSWORD);
    let doc: serde_json::Value = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .expect("GET")
        .json()
        .expect("openapi");
    assert!(doc["paths"]["/api/v1/accounts/{address}/move"]["post"].is_object());
    for i in 0..3 {
        deliver(smtp, std::slice::from_ref(&user), &format!("message {i}"));
    }
    rt.block_on(async {
        let mut s = async_imap_login(imap, &user, PASSWORD).await;
        s.select("INBOX").await.expect("select");
        let stored: Vec<_> = s
            .uid_store("2", "+FLAGS (\\Flagged $Label1)")
            .await
            .expect("store")
            .collect()
            .await;
        assert_eq!(stored.len(), 1);
        let _: Vec<_> = s
            .uid_store("3", "+FLAGS (\\Deleted)")
            .await
            .expect("store")
            .collect()
            .await;
        let _: Vec<_> = s.expunge().await.expect("expunge").collect().await;
        s.logout().await.expect("logout");
    });
    let before = seen_by_imap(&rt, imap, &user);
    assert_eq!(before.1.len(), 2, "{before:?}");
    let from = shard_of(&api, &user);
    let to = 1 - from;
    // A session open across the move is told to reconnect.
    let mut open = cairn_tests::imap::Session::connect(imap, &user, PASSWORD, 1).expect("login");
    open.ok("SELECT INBOX").expect("select");

    let config = setup.path.to_str().expect("utf-8 path");
    let (st, out, err) = run_cairn(&[
        "admin",
        "--config",
        config,
        "account",
        "move",
        &user,
        "--shard",
        &to.to_string(),
    ]);
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains(&format!("from shard {from} to shard {to}")),
        "{out}"
    );
    assert_eq!(shard_of(&api, &user), to);
    let told = open.lines("NOOP").expect_err("the old session ends");
    assert!(told.contains("BYE [UNAVAILABLE]"), "{told}");
    assert_eq!(
        seen_by_imap(&rt, imap, &user),
        before,
        "the same ids after the move"
    );
    let (status, body) = api.post(
        &format!("/accounts/{user}/move"),
        &serde_json::json!({ "shard": 7 }),
    );
    assert_eq!(status, 400, "{body}");

    // Mail after the move lands on the new shard, under the next UID.
    deliver(smtp, std::slice::from_ref(&user), "after the move");
    let after = seen_by_imap(&rt, imap, &user);
    assert_eq!(after.0, before.0);
    assert_eq!(&after.1[..2], &before.1[..]);
    assert_eq!(after.1.get(2).map(|(uid, _)| *uid), Some(4), "{after:?}");
    assert_eq!(inbox_count(&api, &user), 3);
    assert!(appliance
        .stop(libc::SIGTERM, Duration::from_secs(30))
        .is_some_and(|s| s.success()));

    let appliance = setup.start();
    let api = AdminApi::new(&appliance, &setup.data);
    assert_eq!(shard_of(&api, &user), to, "the move survives a restart");
    assert_eq!(seen_by_imap(&rt, imap, &user), after);
}
