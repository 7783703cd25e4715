//! Classes of service and app passwords on real storage: the implicit
//! `default` class, CRUD with typed errors, accounts naming a class (quota
//! from the class, unknown class refused, a class in use not deleted), and
//! app passwords (limits, uniqueness, gone with their account), all back
//! after a reopen.

use cairn_shards::local::block_on;
use cairn_storage::directory::app_passwords::MAX_PER_ACCOUNT;
use cairn_storage::directory::service::AccountChanges;
use cairn_storage::directory::{
    AppPassword, ClassOfService, Directory, DirectoryError, Features, NewAccount,
};
use cairn_storage::shard_store::ShardStore;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn account(address: &str, class: Option<&str>, quota_bytes: u64) -> NewAccount {
    NewAccount {
        address: address.into(),
        password_hash: HASH.into(),
        quota_bytes,
        class_of_service: class.map(str::to_string),
        ..NewAccount::default()
    }
}

fn class(name: &str, quota_bytes: u64) -> ClassOfService {
    ClassOfService {
        name: name.into(),
        quota_bytes,
        max_message_size: 10 << 20,
        features: Features {
            activesync: false,
            ..Features::default()
        },
        min_password_length: 12,
    }
}

fn app(name: &str) -> AppPassword {
    AppPassword {
        name: name.into(),
        hash: HASH.into(),
        created_unix: 1_700_000_000,
    }
}

#[test]
fn classes_of_service_and_the_accounts_that_use_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");

        // `default` exists without being made, and cannot be added or deleted.
        let default = dir.class("default").expect("get").expect("default");
        assert_eq!(default, ClassOfService::builtin_default());
        assert_eq!(default.min_password_length, 8);
        assert!(default.features.imap && default.features.video);
        assert!(matches!(
            dir.add_class(class("default", 0)).await,
            Err(DirectoryError::Exists { .. })
        ));
        assert!(matches!(
            dir.delete_class("default").await,
            Err(DirectoryError::Invalid { field: "name", .. })
        ));

        let staff = dir.add_class(class("Staff", 5 << 30)).await.expect("add");
        assert_eq!(staff.name, "staff");
        assert!(matches!(
            dir.add_class(class("staff", 0)).await,
            Err(DirectoryError::Exists { .. })
        ));
        assert!(matches!(
            dir.add_class(class("no spaces", 0)).await,
            Err(DirectoryError::Invalid { field: "name", .. })
        ));
        let mut short = class("short", 0);
        short.min_password_length = 0;
        assert!(matches!(
            dir.add_class(short).await,
            Err(DirectoryError::Invalid {
                field: "min_password_length",
                ..
            })
        ));
        dir.add_class(class("archive", 0)).await.expect("add");
        let names: Vec<String> = dir
            .classes()
            .expect("classes")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["archive", "default", "staff"]);

        // Accounts: the class's quota unless one is given; unknown classes refused.
        let alice = dir
            .add_account(account("alice@example.org", Some("STAFF"), 0))
            .await
            .expect("alice");
        assert_eq!(
            (alice.class_of_service.as_deref(), alice.quota_bytes),
            (Some("staff"), 5 << 30)
        );
        let bob = dir
            .add_account(account("bob@example.org", Some("staff"), 1000))
            .await
            .expect("bob");
        assert_eq!(bob.quota_bytes, 1000);
        assert!(matches!(
            dir.add_account(account("carol@example.org", Some("nope"), 0))
                .await,
            Err(DirectoryError::Invalid {
                field: "class_of_service",
                ..
            })
        ));
        dir.add_account(account("carol@example.org", None, 0))
            .await
            .expect("carol");
        assert_eq!(
            dir.class_of("carol@example.org").expect("class").name,
            "default"
        );
        let of_alice = dir.class_of("alice@example.org").expect("class");
        assert!(!of_alice.features.activesync && of_alice.features.imap);
        assert!(matches!(
            dir.class_of("nobody@example.org"),
            Err(DirectoryError::NotFound { .. })
        ));

        // Changing the default class stores it; new accounts take its quota.
        let changed = dir
            .update_class("default", |c| c.quota_bytes = 1 << 30)
            .await
            .expect("update default");
        assert_eq!(changed.quota_bytes, 1 << 30);
        let dave = dir
            .add_account(account("dave@example.org", None, 0))
            .await
            .expect("dave");
        assert_eq!(dave.quota_bytes, 1 << 30);
        assert!(matches!(
            dir.update_class("missing", |c| c.quota_bytes = 1).await,
            Err(DirectoryError::NotFound { .. })
        ));
        assert!(matches!(
            dir.update_class("staff", |c| c.min_password_length = 100_000)
                .await,
            Err(DirectoryError::Invalid { .. })
        ));

        // Moving accounts between classes.
        let moved = dir
            .change_account(
                "carol@example.org",
                AccountChanges {
                    class_of_service: Some("archive".into()),
                    ..AccountChanges::default()
                },
            )
            .await
            .expect("move");
        assert_eq!(moved.class_of_service.as_deref(), Some("archive"));
        assert!(matches!(
            dir.change_account(
                "carol@example.org",
                AccountChanges {
                    class_of_service: Some("nope".into()),
                    ..AccountChanges::default()
                },
            )
            .await,
            Err(DirectoryError::Invalid {
                field: "class_of_service",
                ..
            })
        ));

        // A class in use is not deleted; the error says by how many.
        match dir.delete_class("staff").await {
            Err(e @ DirectoryError::InUse { users: 2, .. }) => {
                assert!(e.to_string().contains("2 accounts"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        dir.delete_account("bob@example.org").await.expect("bob");
        for address in ["alice@example.org"] {
            dir.change_account(
                address,
                AccountChanges {
                    class_of_service: Some("default".into()),
                    ..AccountChanges::default()
                },
            )
            .await
            .expect("move");
        }
        dir.delete_class("staff").await.expect("delete");
        assert!(dir.class("staff").expect("get").is_none());
        assert!(matches!(
            dir.delete_class("staff").await,
            Err(DirectoryError::NotFound { .. })
        ));
        store.log.close().await;

        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        let dir = Directory::new(store.tables.clone());
        let names: Vec<String> = dir
            .classes()
            .expect("classes")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["archive", "default"]);
        assert_eq!(
            dir.class("default").expect("get").map(|c| c.quota_bytes),
            Some(1 << 30)
        );
        assert_eq!(
            dir.class_of("carol@example.org").expect("class").name,
            "archive"
        );
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn app_passwords_are_limited_unique_and_go_with_their_account() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");
        dir.add_account(account("alice@example.org", None, 0))
            .await
            .expect("alice");
        dir.add_alias("al@example.org", "alice@example.org")
            .await
            .expect("alias");

        dir.add_app_password("al@example.org", app("thunderbird"))
            .await
            .expect("add via alias");
        assert!(matches!(
            dir.add_app_password("alice@example.org", app("thunderbird"))
                .await,
            Err(DirectoryError::Exists { .. })
        ));
        assert!(matches!(
            dir.add_app_password("alice@example.org", app("bad name"))
                .await,
            Err(DirectoryError::Invalid { field: "name", .. })
        ));
        let mut plain = app("plain");
        plain.hash = "secret".into();
        assert!(matches!(
            dir.add_app_password("alice@example.org", plain).await,
            Err(DirectoryError::Invalid { field: "hash", .. })
        ));
        assert!(matches!(
            dir.add_app_password("nobody@example.org", app("x")).await,
            Err(DirectoryError::NotFound { .. })
        ));
        for i in 1..MAX_PER_ACCOUNT {
            dir.add_app_password("alice@example.org", app(&format!("app{i:02}")))
                .await
                .expect("add");
        }
        assert!(matches!(
            dir.add_app_password("alice@example.org", app("one-too-many"))
                .await,
            Err(DirectoryError::Invalid { field: "name", .. })
        ));
        let listed = dir.app_passwords("alice@example.org").expect("list");
        assert_eq!(listed.len(), MAX_PER_ACCOUNT);
        assert_eq!(listed[0].name, "app01");
        assert!(matches!(
            dir.delete_app_password("alice@example.org", "nope").await,
            Err(DirectoryError::NotFound { .. })
        ));
        dir.delete_app_password("alice@example.org", "app01")
            .await
            .expect("delete");
        assert_eq!(
            dir.app_passwords("alice@example.org").expect("list").len(),
            MAX_PER_ACCOUNT - 1
        );
        // The address book never carries them.
        let book = dir.address_book().expect("book");
        assert!(book.accounts.iter().all(|a| a.password_hash.is_empty()));

        // They go with the account: a new alice starts with none.
        dir.delete_account("alice@example.org")
            .await
            .expect("delete");
        dir.add_account(account("alice@example.org", None, 0))
            .await
            .expect("alice again");
        assert!(dir
            .app_passwords("alice@example.org")
            .expect("list")
            .is_empty());
        dir.add_app_password("alice@example.org", app("phone"))
            .await
            .expect("add");
        store.log.close().await;

        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        let dir = Directory::new(store.tables.clone());
        let names: Vec<String> = dir
            .app_passwords("alice@example.org")
            .expect("list")
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["phone"]);
        dir.delete_domain("example.org", true)
            .await
            .expect("forced");
        dir.add_domain("example.org", None, None)
            .await
            .expect("domain");
        dir.add_account(account("alice@example.org", None, 0))
            .await
            .expect("alice");
        assert!(dir
            .app_passwords("alice@example.org")
            .expect("list")
            .is_empty());
        store.log.close().await;
    })
    .expect("executor");
}
