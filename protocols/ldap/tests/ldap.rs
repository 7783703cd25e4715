//! The LDAP server end to end, with the `ldap3` client crate: a two-shard
//! runtime with real storage, a provisioned domain (accounts on both
//! shards, a list, an alias), and a listener on shard 0. Binds, searches
//! (filters, attributes, limits, paging), the root DSE, StartTLS, a
//! refused write, malformed bytes over a raw socket, and a service
//! account's bind (`cn=…,ou=services,<base>`) that may read the address
//! book but is no mail login.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cairn_ldap::codec::{MessageDecoder, NOTICE_OF_DISCONNECTION};
use cairn_ldap::{LdapOptions, LdapServer};
use cairn_shards::metrics::Metrics;
use cairn_shards::stream::{server_config, Stream};
use cairn_storage::directory::service_accounts::ServiceAccount;
use cairn_storage::directory::{List, NewAccount};
use cairn_storage::services::Services;
use cairn_storage::testing::ServiceNode;
use ldap3::controls::{Control, ControlType, MakeCritical, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use ldap3_proto::proto::{LdapOp, LdapResultCode};

const USERS: usize = 260;
const BASE: &str = "dc=example,dc=org";
const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";

/// The LDAP server on shard 0 of a two-shard node, and its port.
struct TestServer {
    port: u16,
    _node: ServiceNode,
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
    server_config(vec![made.cert.der().clone()], key.into(), &[]).expect("TLS settings")
}

async fn provision(services: &Services) {
    let dir = &services.directory;
    dir.add_domain("example.org".into(), None, None)
        .await
        .expect("domain");
    let hash = services.hash_password("secret".into()).await.expect("hash");
    let reader = ServiceAccount {
        name: "book-reader".into(),
        password_hash: services
            .hash_password("reader secret".into())
            .await
            .expect("hash"),
        description: "address book".into(),
        created_unix: 0,
    };
    dir.add_service_account(reader)
        .await
        .expect("service account");
    let mut accounts = vec![
        NewAccount {
            address: "alice@example.org".into(),
            password_hash: hash.clone(),
            display_name: "Alice Liddell".into(),
            given_name: "Alice".into(),
            surname: "Liddell".into(),
            phone: "+1 555 0100".into(),
            ..Default::default()
        },
        NewAccount {
            address: "bob@example.org".into(),
            password_hash: hash.clone(),
            display_name: "Bob Builder".into(),
            given_name: "Bob".into(),
            surname: "Builder".into(),
            ..Default::default()
        },
        NewAccount {
            address: "carol@example.org".into(),
            password_hash: hash.clone(),
            ..Default::default()
        },
    ];
    for i in 0..USERS {
        accounts.push(NewAccount {
            address: format!("user{i:03}@example.org"),
            password_hash: hash.clone(),
            display_name: format!("Test User {i:03}"),
            surname: "User".into(),
            ..Default::default()
        });
    }
    let mut shards = std::collections::HashSet::new();
    for batch in accounts.chunks(32) {
        let tasks: Vec<_> = batch
            .iter()
            .cloned()
            .map(|a| {
                let s = services.clone();
                cairn_shards::spawn(async move { s.add_account(a).await })
            })
            .collect();
        for t in tasks {
            shards.insert(t.await.expect("account").shard);
        }
    }
    assert_eq!(shards.len(), 2, "accounts on both shards");
    dir.add_alias("al@example.org".into(), "alice@example.org".into())
        .await
        .expect("alias");
    dir.add_list(List {
        address: "team@example.org".into(),
        members: vec![
            "alice@example.org".into(),
            "bob@example.org".into(),
            "friend@elsewhere.net".into(),
        ],
        senders: vec![],
        hidden: false,
    })
    .await
    .expect("list");
    dir.add_list(List {
        address: "secret@example.org".into(),
        members: vec!["alice@example.org".into()],
        senders: vec![],
        hidden: true,
    })
    .await
    .expect("hidden list");
}

fn start(options: LdapOptions) -> TestServer {
    let metrics = Metrics::new(2, "test");
    let tls = tls_config();
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let node = ServiceNode::start(2, move |services, ctx| {
        let (metrics, tls, options, port_tx) = (
            metrics.clone(),
            tls.clone(),
            options.clone(),
            port_tx.clone(),
        );
        async move {
            if ctx.id() != 0 {
                return;
            }
            provision(&services).await;
            let listener =
                cairn_shards::net::bind_tcp("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let port = listener.local_addr().expect("local addr").port();
            port_tx.send(port).expect("send port");
            let server = LdapServer::new(services, Some(tls), options, metrics.service("ldap", 0));
            loop {
                let accepted =
                    futures_lite::future::or(async { Some(listener.accept().await) }, async {
                        ctx.shutdown().wait().await;
                        None
                    })
                    .await;
                let Some(Ok(tcp)) = accepted else { break };
                let Ok(peer) = tcp.peer_addr() else { continue };
                let server = server.clone();
                cairn_shards::spawn_detached(async move {
                    server.serve(Stream::Plain(tcp), peer).await
                });
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    TestServer { port, _node: node }
}

async fn connect(port: u16) -> ldap3::Ldap {
    let (conn, ldap) = LdapConnAsync::new(&format!("ldap://127.0.0.1:{port}"))
        .await
        .expect("connect");
    ldap3::drive!(conn);
    ldap
}

async fn bound(port: u16) -> ldap3::Ldap {
    let mut ldap = connect(port).await;
    ldap.simple_bind(ALICE, "secret")
        .await
        .expect("bind")
        .success()
        .expect("bind succeeds");
    ldap
}

async fn search(ldap: &mut ldap3::Ldap, filter: &str, attrs: Vec<&str>) -> Vec<SearchEntry> {
    let (entries, _) = ldap
        .search(BASE, Scope::Subtree, filter, attrs)
        .await
        .expect("search")
        .success()
        .unwrap_or_else(|e| panic!("search {filter}: {e}"));
    entries.into_iter().map(SearchEntry::construct).collect()
}

fn dns(entries: &[SearchEntry]) -> Vec<String> {
    let mut v: Vec<String> = entries.iter().map(|e| e.dn.clone()).collect();
    v.sort();
    v
}

async fn binds(port: u16) {
    let mut ldap = connect(port).await;
    for name in [
        ALICE,
        "mail=alice@example.org,ou=people,dc=example,dc=org",
        "alice@example.org",
        "al@example.org",
    ] {
        let r = ldap.simple_bind(name, "secret").await.expect("bind");
        assert_eq!(r.rc, 0, "bind as {name}: {r:?}");
    }
    let r = ldap.simple_bind(ALICE, "wrong").await.expect("bind");
    assert_eq!(r.rc, 49, "bad password");
    let r = ldap
        .simple_bind("uid=nobody,ou=people,dc=example,dc=org", "secret")
        .await
        .expect("bind");
    assert_eq!(r.rc, 49, "unknown user");
    let r = ldap.simple_bind(ALICE, "").await.expect("bind");
    assert_eq!(r.rc, 53, "unauthenticated bind");
    let r = ldap.simple_bind("", "").await.expect("bind");
    assert_eq!(r.rc, 48, "anonymous bind is off");
    let r = ldap
        .search(BASE, Scope::Subtree, "(objectClass=*)", vec!["cn"])
        .await
        .expect("search");
    assert_eq!(r.1.rc, 50, "searches need a bind");
    // WhoAmI after a bind.
    ldap.simple_bind(ALICE, "secret").await.expect("bind");
    let (exop, res) = ldap
        .extended(ldap3::exop::WhoAmI)
        .await
        .expect("whoami")
        .success()
        .expect("ok");
    let who: ldap3::exop::WhoAmIResp = exop.parse();
    assert_eq!(res.rc, 0);
    assert_eq!(who.authzid, "u:alice@example.org");
    ldap.unbind().await.expect("unbind");
}

const READER: &str = "cn=book-reader,ou=services,dc=example,dc=org";

async fn service_account_binds(port: u16) {
    let mut ldap = connect(port).await;
    let r = ldap.simple_bind(READER, "wrong").await.expect("bind");
    assert_eq!(r.rc, 49, "bad password");
    for other in [
        "cn=book-reader,ou=services,dc=elsewhere,dc=org",
        "cn=nobody,ou=services,dc=example,dc=org",
        "book-reader",
    ] {
        let r = ldap
            .simple_bind(other, "reader secret")
            .await
            .expect("bind");
        assert_eq!(r.rc, 49, "bind as {other}: {r:?}");
    }
    let r = ldap
        .simple_bind(
            "CN=Book-Reader,OU=Services,DC=Example,DC=Org",
            "reader secret",
        )
        .await
        .expect("bind");
    assert_eq!(r.rc, 0, "service bind: {r:?}");
    let (exop, _) = ldap
        .extended(ldap3::exop::WhoAmI)
        .await
        .expect("whoami")
        .success()
        .expect("ok");
    let who: ldap3::exop::WhoAmIResp = exop.parse();
    assert_eq!(who.authzid, format!("dn:{READER}"));
    let found = search(&mut ldap, "(mail=alice*)", vec!["mail"]).await;
    assert_eq!(dns(&found), [ALICE]);
    ldap.unbind().await.expect("unbind");
}

async fn searches(port: u16) {
    let mut ldap = bound(port).await;
    // Thunderbird's address-book query.
    let found = search(
        &mut ldap,
        "(|(cn=*lidd*)(mail=*lidd*)(sn=*lidd*)(givenName=*lidd*))",
        vec!["cn", "mail", "sn", "givenName"],
    )
    .await;
    assert_eq!(dns(&found), vec![ALICE.to_string()]);
    let alice = &found[0];
    assert_eq!(alice.attrs["cn"], vec!["Alice Liddell"]);
    assert_eq!(
        alice.attrs["mail"],
        vec!["alice@example.org", "al@example.org"]
    );
    assert_eq!(alice.attrs["givenName"], vec!["Alice"]);
    assert!(
        !alice.attrs.contains_key("telephoneNumber"),
        "not asked for: {alice:?}"
    );

    // Equality, case-insensitive on names and values.
    let found = search(&mut ldap, "(MAIL=Bob@Example.ORG)", vec![]).await;
    assert_eq!(dns(&found), vec!["uid=bob,ou=people,dc=example,dc=org"]);
    let bob = &found[0];
    for a in [
        "objectClass",
        "uid",
        "mail",
        "cn",
        "sn",
        "givenName",
        "displayName",
    ] {
        assert!(
            bob.attrs.contains_key(a),
            "all user attributes: {a} in {bob:?}"
        );
    }
    assert!(
        !bob.attrs.contains_key("telephoneNumber"),
        "empty ones left out"
    );
    assert!(
        !bob.attrs.contains_key("entryDN"),
        "operational ones only on request"
    );

    // An alias finds its account.
    let found = search(&mut ldap, "(mail=al@example.org)", vec!["1.1"]).await;
    assert_eq!(dns(&found), vec![ALICE.to_string()]);
    assert!(found[0].attrs.is_empty(), "1.1 asks for no attributes");

    // and / or / not / presence.
    let found = search(
        &mut ldap,
        "(&(objectClass=inetOrgPerson)(!(sn=User))(|(uid=a*)(uid=c*)))",
        vec!["uid"],
    )
    .await;
    assert_eq!(
        dns(&found),
        vec![
            ALICE.to_string(),
            "uid=carol,ou=people,dc=example,dc=org".to_string()
        ]
    );
    let found = search(&mut ldap, "(telephoneNumber=*)", vec!["telephoneNumber"]).await;
    assert_eq!(dns(&found), vec![ALICE.to_string()]);
    assert_eq!(found[0].attrs["telephoneNumber"], vec!["+1 555 0100"]);
    // carol has no display name: cn and sn fall back to the address.
    let found = search(&mut ldap, "(uid=carol)", vec!["cn", "sn"]).await;
    assert_eq!(found[0].attrs["cn"], vec!["carol@example.org"]);
    assert_eq!(found[0].attrs["sn"], vec!["carol@example.org"]);
    // Range and approximate matches.
    let found = search(&mut ldap, "(&(uid>=user250)(uid<=user252))", vec!["uid"]).await;
    assert_eq!(found.len(), 3);
    let found = search(&mut ldap, "(cn~=bobbuilder)", vec!["uid"]).await;
    assert_eq!(dns(&found), vec!["uid=bob,ou=people,dc=example,dc=org"]);

    // The list: members by DN, external ones as rfc822MailMember; the
    // hidden list is not there.
    let found = search(&mut ldap, "(objectClass=groupOfNames)", vec!["*"]).await;
    assert_eq!(dns(&found), vec!["cn=team,ou=groups,dc=example,dc=org"]);
    let team = &found[0];
    assert_eq!(
        team.attrs["member"],
        vec![ALICE, "uid=bob,ou=people,dc=example,dc=org"]
    );
    assert!(team.attrs["rfc822MailMember"].contains(&"friend@elsewhere.net".to_string()));

    // Scopes.
    let (entries, _) = ldap
        .search(BASE, Scope::OneLevel, "(objectClass=*)", vec!["ou"])
        .await
        .expect("search")
        .success()
        .expect("one level");
    let entries: Vec<_> = entries.into_iter().map(SearchEntry::construct).collect();
    assert_eq!(
        dns(&entries),
        vec!["ou=groups,dc=example,dc=org", "ou=people,dc=example,dc=org"]
    );
    let (entries, _) = ldap
        .search(ALICE, Scope::Base, "(objectClass=*)", vec!["+"])
        .await
        .expect("search")
        .success()
        .expect("base");
    let entry = SearchEntry::construct(entries.into_iter().next().expect("alice"));
    assert_eq!(entry.attrs["entryDN"], vec![ALICE]);
    assert!(
        !entry.attrs.contains_key("cn"),
        "+ alone is operational only"
    );

    // typesOnly.
    let r = ldap
        .with_search_options(SearchOptions::new().typesonly(true))
        .search(ALICE, Scope::Base, "(objectClass=*)", vec!["cn"])
        .await
        .expect("search");
    let entry = SearchEntry::construct(r.0.into_iter().next().expect("alice"));
    assert!(entry.attrs.get("cn").is_some_and(|v| v.is_empty()) || entry.bin_attrs.is_empty());

    // An unknown base: noSuchObject with the matched DN.
    let r = ldap
        .search(
            "uid=nobody,ou=people,dc=example,dc=org",
            Scope::Base,
            "(objectClass=*)",
            vec!["cn"],
        )
        .await
        .expect("search");
    assert_eq!(r.1.rc, 32);
    assert_eq!(r.1.matched, "ou=people,dc=example,dc=org");

    // Compare.
    let r = ldap
        .compare(ALICE, "mail", "AL@example.org")
        .await
        .expect("compare");
    assert_eq!(r.0.rc, 6, "compareTrue");
    let r = ldap.compare(ALICE, "sn", "Builder").await.expect("compare");
    assert_eq!(r.0.rc, 5, "compareFalse");

    // Writes are refused.
    let r = ldap
        .modify(ALICE, vec![ldap3::Mod::Replace("cn", ["Eve"].into())])
        .await
        .expect("modify");
    assert_eq!(r.rc, 53);
    assert!(r.text.contains("read-only"), "{r:?}");
    let r = ldap.delete(ALICE).await.expect("delete");
    assert_eq!(r.rc, 53);
    // The connection goes on after all that.
    assert_eq!(search(&mut ldap, "(uid=alice)", vec!["uid"]).await.len(), 1);
    ldap.unbind().await.expect("unbind");
}

async fn limits_and_paging(port: u16) {
    let mut ldap = bound(port).await;
    let r = ldap
        .with_search_options(SearchOptions::new().sizelimit(5))
        .search(
            BASE,
            Scope::Subtree,
            "(objectClass=inetOrgPerson)",
            vec!["uid"],
        )
        .await
        .expect("search");
    assert_eq!(r.1.rc, 4, "sizeLimitExceeded");
    assert_eq!(r.0.len(), 5);

    // Paged results by hand: pages of 100, 100, 60.
    let mut cookie = Vec::new();
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let r = ldap
            .with_controls(
                PagedResults {
                    size: 100,
                    cookie: cookie.clone(),
                }
                .critical(),
            )
            .search(BASE, Scope::Subtree, "(cn=test user*)", vec!["uid"])
            .await
            .expect("paged search");
        assert_eq!(r.1.rc, 0, "{:?}", r.1);
        pages.push(r.0.len());
        for e in r.0 {
            assert!(seen.insert(SearchEntry::construct(e).dn), "no entry twice");
        }
        let ctrl = r
            .1
            .ctrls
            .iter()
            .find_map(|c| match c {
                Control(Some(ControlType::PagedResults), raw) => Some(raw.parse::<PagedResults>()),
                _ => None,
            })
            .expect("a paged results control in the reply");
        if ctrl.cookie.is_empty() {
            break;
        }
        cookie = ctrl.cookie;
        assert!(pages.len() < 10, "paging ends");
    }
    assert_eq!(pages, vec![100, 100, 60]);
    assert_eq!(seen.len(), USERS);

    // A forged cookie is refused.
    let r = ldap
        .with_controls(
            PagedResults {
                size: 100,
                cookie: vec![1, 2, 3],
            }
            .critical(),
        )
        .search(BASE, Scope::Subtree, "(cn=test user*)", vec!["uid"])
        .await
        .expect("search");
    assert_eq!(r.1.rc, 53, "bad cookie");

    // The client library's own paging adapter.
    let mut stream = ldap
        .streaming_search_with(
            vec![
                Box::new(ldap3::adapters::EntriesOnly::new())
                    as Box<dyn ldap3::adapters::Adapter<_, _>>,
                Box::new(ldap3::adapters::PagedResults::new(100)),
            ],
            BASE,
            Scope::Subtree,
            "(objectClass=inetOrgPerson)",
            vec!["uid"],
        )
        .await
        .expect("streaming search");
    let mut n = 0;
    while let Some(_entry) = stream.next().await.expect("entry") {
        n += 1;
    }
    let res = stream.finish().await;
    assert_eq!(res.rc, 0);
    assert_eq!(n, USERS + 3);

    // Filters nested past the limit are refused.
    let deep = format!("{}(uid=alice){}", "(!".repeat(40), ")".repeat(40));
    let r = ldap
        .search(BASE, Scope::Subtree, &deep, vec!["uid"])
        .await
        .expect("search");
    assert_eq!(r.1.rc, 53, "too deep");
    ldap.unbind().await.expect("unbind");
}

async fn root_dse_and_starttls(port: u16) {
    // The root DSE, before any bind.
    let mut ldap = connect(port).await;
    let (entries, _) = ldap
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec![
                "namingContexts",
                "supportedLDAPVersion",
                "supportedControl",
                "supportedExtension",
                "vendorName",
            ],
        )
        .await
        .expect("root dse")
        .success()
        .expect("ok");
    let dse = SearchEntry::construct(entries.into_iter().next().expect("the root DSE"));
    assert_eq!(dse.attrs["namingContexts"], vec![BASE]);
    assert_eq!(dse.attrs["supportedLDAPVersion"], vec!["3"]);
    assert!(dse.attrs["supportedControl"].contains(&"1.2.840.113556.1.4.319".to_string()));
    assert!(dse.attrs["supportedExtension"].contains(&"1.3.6.1.4.1.1466.20037".to_string()));
    ldap.unbind().await.expect("unbind");

    // StartTLS, then bind and search over TLS.
    let settings = LdapConnSettings::new()
        .set_starttls(true)
        .set_no_tls_verify(true);
    let (conn, mut ldap) =
        LdapConnAsync::with_settings(settings, &format!("ldap://127.0.0.1:{port}"))
            .await
            .expect("StartTLS");
    ldap3::drive!(conn);
    ldap.simple_bind(ALICE, "secret")
        .await
        .expect("bind")
        .success()
        .expect("bind over TLS");
    let found = search(&mut ldap, "(uid=bob)", vec!["mail"]).await;
    assert_eq!(found.len(), 1);
    ldap.unbind().await.expect("unbind");
}

/// Sends `bytes` over a raw socket; returns what the server sent back
/// until it closed the connection.
fn raw_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s =
        std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server closes the connection");
    out
}

fn assert_notice(reply: &[u8]) {
    let mut buf = BytesMut::from(reply);
    let msg = MessageDecoder::new(1 << 20, 32)
        .decode(&mut buf)
        .expect("a valid reply")
        .expect("a whole message");
    match msg.op {
        LdapOp::ExtendedResponse(r) => {
            assert_eq!(r.name.as_deref(), Some(NOTICE_OF_DISCONNECTION));
            assert_eq!(r.res.code, LdapResultCode::ProtocolError);
        }
        other => panic!("not a notice of disconnection: {other:?}"),
    }
    assert!(buf.is_empty(), "nothing after the notice");
}

fn malformed(port: u16) {
    // Not BER at all.
    assert_notice(&raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n"));
    // A SEQUENCE whose operation is garbage.
    assert_notice(&raw_exchange(
        port,
        &[0x30, 0x06, 0x02, 0x01, 0x01, 0x7f, 0x01, 0x00],
    ));
    // A message that says it is 16 MiB.
    assert_notice(&raw_exchange(
        port,
        &[0x30, 0x84, 0x01, 0x00, 0x00, 0x00, 0x02],
    ));
}

#[test]
fn ldap_server_end_to_end() {
    let server = start(LdapOptions::default());
    let port = server.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        binds(port).await;
        service_account_binds(port).await;
        searches(port).await;
        limits_and_paging(port).await;
        root_dse_and_starttls(port).await;
    });
    malformed(port);
    drop(server);
}

/// Anonymous reads allowed, a small server size limit and message limit.
#[test]
fn anonymous_and_server_limits() {
    let server = start(LdapOptions {
        allow_anonymous: true,
        default_size_limit: 10,
        max_message_bytes: 512,
        ..LdapOptions::default()
    });
    let port = server.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let mut ldap = connect(port).await;
        let r = ldap.simple_bind("", "").await.expect("bind");
        assert_eq!(r.rc, 0, "anonymous bind allowed");
        // The server's limit caps what the client asks for.
        let r = ldap
            .with_search_options(SearchOptions::new().sizelimit(50))
            .search(BASE, Scope::Subtree, "(cn=test user*)", vec!["uid"])
            .await
            .expect("search");
        assert_eq!(r.1.rc, 4, "sizeLimitExceeded");
        assert_eq!(r.0.len(), 10);
        // A search that fits.
        let r = ldap
            .search(BASE, Scope::Subtree, "(uid=bob)", vec!["uid"])
            .await
            .expect("search");
        assert_eq!(r.1.rc, 0);
        assert_eq!(r.0.len(), 1);
        ldap.unbind().await.expect("unbind");
    });
    // A message over the 512-byte limit ends the connection.
    let mut big = vec![0x30, 0x82, 0x02, 0x00];
    big.extend(std::iter::repeat_n(0u8, 0x200));
    assert_notice(&raw_exchange(port, &big));
}
