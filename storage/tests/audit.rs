//! The audit trail, service accounts and quotas that follow classes, on
//! real storage: every change audited with its actor, newest first with
//! paging and filters, refused logins recorded (never the password),
//! bounded retention, entries back after a reopen; service accounts
//! checked with the lockout and never usable as mail logins; a class's
//! quota change reaching the accounts without a quota of their own and,
//! applied to the mailstore, refusing an APPEND over it.

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_shards::local::block_on;
use cairn_shards::BlockingPool;
use cairn_storage::directory::audit::AuditQuery;
use cairn_storage::directory::auth::{AuthError, Authenticator};
use cairn_storage::directory::lockout::Policy;
use cairn_storage::directory::service::AccountChanges;
use cairn_storage::directory::service_accounts::ServiceAccount;
use cairn_storage::directory::{ClassOfService, Directory, DirectoryError, NewAccount, Status};
use cairn_storage::mailbox::{Flags, MailError};
use cairn_storage::shard_store::ShardStore;

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

fn query(limit: usize) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

fn actions(dir: &Directory, q: &AuditQuery) -> Vec<String> {
    dir.audit(q)
        .expect("audit")
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[test]
fn changes_are_audited_with_their_actor_newest_first_and_kept_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        let admin = dir.acting("admin");
        let cli = dir.acting("cli");
        admin
            .add_domain("example.org", None, None)
            .await
            .expect("domain");
        cli.add_account(NewAccount {
            address: "alice@example.org".into(),
            password_hash: hash("correct horse"),
            ..NewAccount::default()
        })
        .await
        .expect("account");
        let password = AccountChanges {
            password_hash: Some(hash("new horse battery")),
            ..AccountChanges::default()
        };
        admin
            .change_account("alice@example.org", password)
            .await
            .expect("password");
        let lock = AccountChanges {
            status: Some(Status::Locked),
            ..AccountChanges::default()
        };
        admin
            .change_account("alice@example.org", lock)
            .await
            .expect("lock");
        // A refused change is not audited.
        assert!(matches!(
            admin.add_domain("example.org", None, None).await,
            Err(DirectoryError::Exists { .. })
        ));
        admin
            .delete_account("alice@example.org")
            .await
            .expect("delete");

        let page = dir.audit(&query(10)).expect("audit");
        let got: Vec<(&str, &str, &str)> = page
            .entries
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("admin", "account.delete", "alice@example.org"),
                ("admin", "account.lock", "alice@example.org"),
                ("admin", "account.password", "alice@example.org"),
                ("cli", "account.add", "alice@example.org"),
                ("admin", "domain.add", "example.org"),
            ]
        );
        assert_eq!(page.next, None);
        assert!(page.entries.iter().all(|e| !e.detail.contains("argon2")));
        assert!(page
            .entries
            .windows(2)
            .all(|w| w[0].id > w[1].id && w[0].unix_ms >= w[1].unix_ms));

        // Paging, and filters by kind of record, actor and target.
        let first = dir.audit(&query(2)).expect("page 1");
        assert_eq!(first.entries.len(), 2);
        let next = first.next.expect("more");
        let second = dir
            .audit(&AuditQuery {
                before: Some(next),
                limit: 10,
                ..AuditQuery::default()
            })
            .expect("page 2");
        assert_eq!(second.entries.len(), 3);
        assert_eq!(second.entries[0].action, "account.password");
        let accounts = AuditQuery {
            action: Some("account".into()),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(actions(&dir, &accounts).len(), 4);
        let by_cli = AuditQuery {
            actor: Some("cli".into()),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(actions(&dir, &by_cli), ["account.add"]);
        let domain = AuditQuery {
            target: Some("EXAMPLE.org".into()),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(actions(&dir, &domain), ["domain.add"]);

        // Retention: only the newest entries stay.
        dir.keep_audit_entries(4);
        for i in 0..6 {
            admin
                .add_domain(&format!("d{i}.example"), None, None)
                .await
                .expect("domain");
        }
        let kept = dir.audit(&query(100)).expect("audit").entries;
        let targets: Vec<&str> = kept.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(
            targets,
            ["d5.example", "d4.example", "d3.example", "d2.example"]
        );
    })
    .expect("runtime");
    // Back after a reopen, numbering going on.
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        let dir = Directory::new(store.tables.clone());
        let before = dir.audit(&query(1)).expect("audit").entries[0].id;
        dir.acting("token")
            .add_domain("after.example", None, None)
            .await
            .expect("domain");
        let newest = dir.audit(&query(1)).expect("audit").entries.remove(0);
        assert_eq!((newest.id, newest.actor.as_str()), (before + 1, "token"));
        assert_eq!(dir.audit(&query(100)).expect("audit").entries.len(), 5);
    })
    .expect("runtime");
}

#[test]
fn refused_logins_and_service_accounts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pool, _workers) = BlockingPool::start(2, 16).expect("pool");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");
        dir.add_account(NewAccount {
            address: "alice@example.org".into(),
            password_hash: hash("correct horse"),
            ..NewAccount::default()
        })
        .await
        .expect("account");
        let reader = ServiceAccount {
            name: "Book-Reader".into(),
            password_hash: hash("service secret"),
            description: "Thunderbird address book".into(),
            created_unix: 1_700_000_000,
        };
        let added = dir
            .acting("admin")
            .add_service_account(reader.clone())
            .await
            .expect("add");
        assert_eq!(added.name, "book-reader");
        assert!(matches!(
            dir.add_service_account(reader.clone()).await,
            Err(DirectoryError::Exists { .. })
        ));
        let bad = ServiceAccount {
            name: "a@b".into(),
            ..reader.clone()
        };
        assert!(matches!(
            dir.add_service_account(bad).await,
            Err(DirectoryError::Invalid { field: "name", .. })
        ));
        assert_eq!(dir.service_accounts().expect("list").len(), 1);

        let policy = Policy {
            per_account: 2,
            per_address: 100,
            window: Duration::from_secs(300),
        };
        let auth = Authenticator::new(dir.clone(), pool.clone(), policy);
        let ip: IpAddr = [192, 0, 2, 7].into();
        let ok = auth
            .authenticate_service("book-reader", "service secret", ip, Some("ldap"))
            .await;
        assert_eq!(ok.as_deref(), Ok("book-reader"));
        // Not a mail login, whatever the name.
        assert_eq!(
            auth.authenticate("book-reader", "service secret", ip).await,
            Err(AuthError::Invalid)
        );
        // An account is not a service account.
        assert_eq!(
            auth.authenticate_service("alice@example.org", "correct horse", ip, None)
                .await,
            Err(AuthError::Invalid)
        );
        // The same lockout as accounts.
        for _ in 0..2 {
            assert_eq!(
                auth.authenticate_service("book-reader", "wrong", ip, Some("ldap"))
                    .await,
                Err(AuthError::Invalid)
            );
        }
        assert!(matches!(
            auth.authenticate_service("book-reader", "service secret", ip, Some("ldap"))
                .await,
            Err(AuthError::Throttled { .. })
        ));
        // A disabled account's refusal.
        dir.update_account("alice@example.org", |a| a.status = Status::Locked)
            .await
            .expect("lock");
        assert_eq!(
            auth.authenticate_via("alice@example.org", "correct horse", ip, Some("imap"))
                .await,
            Err(AuthError::Disabled)
        );

        let auth_entries = dir
            .audit(&AuditQuery {
                action: Some("auth".into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .expect("audit")
            .entries;
        let got: Vec<(&str, &str, Option<&str>)> = auth_entries
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str(), e.protocol.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("auth.disabled", "alice@example.org", Some("imap")),
                ("auth.throttled", "service:book-reader", Some("ldap")),
                ("auth.failed", "service:book-reader", Some("ldap")),
                ("auth.failed", "service:book-reader", Some("ldap")),
                ("auth.failed", "service:alice@example.org", None),
                ("auth.failed", "book-reader", None),
            ]
        );
        for e in &auth_entries {
            assert_eq!(e.ip.as_deref(), Some("192.0.2.7"));
            assert!(
                !e.detail.contains("secret") && !e.detail.contains("wrong"),
                "{e:?}"
            );
        }

        dir.acting("cli")
            .delete_service_account("BOOK-READER")
            .await
            .expect("delete");
        assert!(dir.service_account("book-reader").expect("get").is_none());
        assert!(matches!(
            dir.delete_service_account("book-reader").await,
            Err(DirectoryError::NotFound { .. })
        ));
        let changes = AuditQuery {
            action: Some("service_account".into()),
            limit: 10,
            ..AuditQuery::default()
        };
        let got: Vec<(String, String)> = dir
            .audit(&changes)
            .expect("audit")
            .entries
            .into_iter()
            .map(|e| (e.actor, e.action))
            .collect();
        assert_eq!(
            got,
            [
                ("cli".to_string(), "service_account.delete".to_string()),
                ("admin".to_string(), "service_account.add".to_string()),
            ]
        );
    })
    .expect("runtime");
}

#[test]
fn quotas_follow_the_class_unless_the_account_has_its_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");
        let class = |name: &str, quota_bytes| ClassOfService {
            name: name.into(),
            quota_bytes,
            ..ClassOfService::builtin_default()
        };
        dir.add_class(class("small", 1 << 20)).await.expect("small");
        dir.add_class(class("big", 1 << 30)).await.expect("big");
        let new = |user: &str, quota_bytes| NewAccount {
            address: format!("{user}@example.org"),
            password_hash: hash("correct horse"),
            quota_bytes,
            class_of_service: Some("big".into()),
            ..NewAccount::default()
        };
        let follows = dir.add_account(new("follows", 0)).await.expect("follows");
        let own = dir.add_account(new("own", 5 << 20)).await.expect("own");
        assert_eq!((follows.quota_bytes, own.quota_bytes), (1 << 30, 5 << 20));
        for a in [&follows, &own] {
            store
                .mail
                .create_account(&a.address, a.quota_bytes, 0)
                .await
                .expect("mail");
        }

        // A class change takes the new class's quota, unless the account has its own.
        let to_small = || AccountChanges {
            class_of_service: Some("small".into()),
            ..AccountChanges::default()
        };
        let moved = dir
            .change_account("follows@example.org", to_small())
            .await
            .expect("move");
        assert_eq!(moved.quota_bytes, 1 << 20);
        let moved_own = dir
            .change_account("own@example.org", to_small())
            .await
            .expect("move own");
        assert_eq!(moved_own.quota_bytes, 5 << 20);

        // A class's quota change reaches the accounts that follow it.
        dir.update_class("small", |c| c.quota_bytes = 100)
            .await
            .expect("shrink");
        let in_small = dir.accounts_in("small").expect("members");
        let quotas: Vec<(&str, u64)> = in_small
            .iter()
            .map(|a| (a.address.as_str(), a.quota_bytes))
            .collect();
        assert_eq!(
            quotas,
            [("follows@example.org", 100), ("own@example.org", 5 << 20)]
        );
        // Applied to the mailstore (as the admin API does), an APPEND over it is refused.
        for a in &in_small {
            store
                .mail
                .set_quota(&a.address, a.quota_bytes, 0)
                .await
                .expect("set quota");
        }
        let body = vec![b'x'; 200];
        let refused = store
            .mail
            .append("follows@example.org", "INBOX", &body, Flags::default(), 0)
            .await;
        assert!(
            matches!(refused, Err(MailError::OverQuota { .. })),
            "{refused:?}"
        );
        store
            .mail
            .append("own@example.org", "INBOX", &body, Flags::default(), 0)
            .await
            .expect("own quota");

        let audit = dir
            .audit(&AuditQuery {
                action: Some("class.update".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .expect("audit");
        assert_eq!(
            audit.entries[0].detail,
            format!("quota_bytes {} -> 100", 1 << 20)
        );
    })
    .expect("runtime");
}
