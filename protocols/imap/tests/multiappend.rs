//! MULTIAPPEND (RFC 3502) end to end over raw sockets, on a one-shard node
//! with real storage and an account with a quota: a batch over quota is
//! refused whole (`NO [OVERQUOTA]`, nothing appended), a good one answers
//! one APPENDUID range, and a second session in IDLE sees the messages
//! arrive together (one EXISTS).

use std::sync::mpsc;
use std::time::Duration;

use cairn_imap::{ImapMesh, ImapOptions, ImapServer};
use cairn_shards::metrics::Metrics;
use cairn_storage::testing::{tls_config, ServiceNode};

mod common;
use common::{add_accounts, listen, Raw};

const USER: &str = "batch@example.org";
const QUOTA: u64 = 2000;

fn start() -> (u16, ServiceNode) {
    let (tls, metrics, mesh) = (tls_config(), Metrics::new(1, "test"), ImapMesh::new(1, 64));
    let (ready_tx, ready_rx) = mpsc::channel::<u16>();
    let node = ServiceNode::start(1, move |services, ctx| {
        let (tls, metrics, mesh, ready_tx) =
            (tls.clone(), metrics.clone(), mesh.clone(), ready_tx.clone());
        async move {
            let options = ImapOptions {
                allow_plaintext_auth: true,
                ..ImapOptions::default()
            };
            let m = metrics.service("imap", ctx.id());
            let server = ImapServer::start(services.clone(), Some(tls), options, m, &mesh)
                .await
                .expect("imap server");
            add_accounts(&services, &[USER], QUOTA).await;
            listen(server, ctx.shutdown().clone(), |port| {
                ready_tx.send(port).expect("ready");
            })
            .await
        }
    });
    let port = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    (port, node)
}

/// `tag APPEND INBOX` with each body as a non-synchronizing literal.
fn multiappend(tag: &str, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("{tag} APPEND INBOX").into_bytes();
    for b in bodies {
        out.extend_from_slice(format!(" {{{}+}}\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("Subject: {i}\r\n\r\n").into_bytes();
    b.resize(len, b'x');
    b
}

#[test]
fn multiappend_is_all_or_nothing_and_seen_at_once() {
    let (port, _node) = start();
    let mut writer = Raw::login(port, USER);

    // The third exceeds the quota: none of them is appended.
    let over = [message(1, 100), message(2, 100), message(3, QUOTA as usize)];
    writer.send(&multiappend("m1", &over));
    let r = writer.until("m1");
    assert!(
        r.last().expect("reply").starts_with("m1 NO [OVERQUOTA]"),
        "{r:?}"
    );
    let r = writer.command("m2", "STATUS INBOX (MESSAGES UIDNEXT)");
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1)"),
        "{r:?}"
    );

    // A watcher in IDLE, then three that fit.
    let mut watcher = Raw::login(port, USER);
    watcher.command("s1", "SELECT INBOX");
    watcher.send(b"i1 IDLE\r\n");
    assert!(watcher.line().starts_with("+ "));
    let fit = [message(1, 100), message(2, 100), message(3, 100)];
    writer.send(&multiappend("m3", &fit));
    let r = writer.until("m3");
    let done = r.last().expect("reply");
    assert!(
        done.starts_with("m3 OK [APPENDUID ") && done.contains(" 1:3] "),
        "{r:?}"
    );
    // The first EXISTS the watcher sees counts all three.
    let exists = loop {
        let line = watcher.line();
        if line.ends_with(" EXISTS\r\n") {
            break line;
        }
    };
    assert_eq!(exists, "* 3 EXISTS\r\n");
    watcher.send(b"DONE\r\n");
    let r = watcher.until("i1");
    assert!(r.last().expect("reply").starts_with("i1 OK"), "{r:?}");
    assert!(!r.iter().any(|l| l.ends_with(" EXISTS\r\n")), "{r:?}");
    let r = watcher.command("n1", "NOOP");
    assert!(!r.iter().any(|l| l.ends_with(" EXISTS\r\n")), "{r:?}");
    let r = writer.command("m4", "STATUS INBOX (MESSAGES UIDNEXT)");
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 4)"),
        "{r:?}"
    );
}
