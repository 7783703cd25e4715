//! The directory on real storage: domains, accounts, aliases, lists,
//! duplicate and missing records refused with typed errors, resolution of
//! addresses, and everything back after a reopen.

use cairn_shards::local::block_on;
use cairn_storage::directory::{Directory, DirectoryError, List, NewAccount, Recipient};
use cairn_storage::shard_store::ShardStore;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn account(address: &str) -> NewAccount {
    NewAccount {
        address: address.into(),
        password_hash: HASH.into(),
        display_name: format!("User {address}"),
        ..NewAccount::default()
    }
}

#[test]
fn records_conflicts_resolution_and_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());

        dir.add_domain("Example.org", None, None).await.expect("domain");
        assert!(matches!(dir.add_domain("example.org", None, None).await, Err(DirectoryError::Exists { .. })));
        assert!(matches!(
            dir.add_domain("not a domain", None, None).await,
            Err(DirectoryError::Invalid { field: "domain", .. })
        ));
        assert!(matches!(
            dir.add_domain("alias.org", Some("missing.org"), None).await,
            Err(DirectoryError::NotFound { .. })
        ));
        dir.add_domain("alias.org", Some("example.org"), None).await.expect("alias domain");
        assert!(matches!(
            dir.add_account(account("zed@alias.org")).await,
            Err(DirectoryError::Invalid { field: "address", .. })
        ));

        let alice = dir.add_account(account("Alice@Example.org")).await.expect("alice");
        assert_eq!(alice.address, "alice@example.org");
        for dup in ["alice@example.org", "ALICE@example.org"] {
            assert!(matches!(dir.add_account(account(dup)).await, Err(DirectoryError::Exists { .. })));
        }
        assert!(matches!(
            dir.add_account(account("bob@nowhere.org")).await,
            Err(DirectoryError::NotFound { what: "domain", .. })
        ));
        let mut plain = account("carol@example.org");
        plain.password_hash = "secret".into();
        assert!(matches!(dir.add_account(plain).await, Err(DirectoryError::Invalid { field: "password_hash", .. })));

        dir.add_account(account("bob@example.org")).await.expect("bob");
        dir.add_alias("postmaster@example.org", "alice@example.org").await.expect("alias");
        assert!(matches!(
            dir.add_alias("bob@example.org", "alice@example.org").await,
            Err(DirectoryError::Exists { .. })
        ));
        let team = List {
            address: "team@example.org".into(),
            members: vec!["alice@example.org".into(), "partner@elsewhere.net".into()],
            senders: vec![],
            hidden: false,
        };
        dir.add_list(team.clone()).await.expect("list");
        assert!(matches!(dir.add_list(team.clone()).await, Err(DirectoryError::Exists { .. })));

        assert_eq!(dir.resolve("alice@example.org").expect("r"), Recipient::Account("alice@example.org".into()));
        assert_eq!(dir.resolve("Postmaster@example.org").expect("r"), Recipient::Account("alice@example.org".into()));
        assert_eq!(dir.resolve("bob@alias.org").expect("r"), Recipient::Account("bob@example.org".into()));
        assert!(matches!(dir.resolve("team@example.org").expect("r"), Recipient::List(l) if l.members.len() == 2));
        assert_eq!(dir.resolve("nobody@example.org").expect("r"), Recipient::Unknown);
        assert_eq!(dir.resolve("alice@elsewhere.net").expect("r"), Recipient::Unknown);

        let found = dir.accounts(None, 10, Some("USER b")).expect("search");
        assert_eq!(found.iter().map(|a| a.address.as_str()).collect::<Vec<_>>(), vec!["bob@example.org"]);
        let page = dir.accounts(Some("alice@example.org"), 10, None).expect("page");
        assert_eq!(page.len(), 1);

        let locked = dir
            .update_account("postmaster@example.org", |a| a.status = cairn_storage::directory::Status::Locked)
            .await
            .expect("lock via alias");
        assert_eq!(locked.address, "alice@example.org");

        assert!(matches!(
            dir.delete_domain("example.org", false).await,
            Err(DirectoryError::NotEmpty { addresses: 5, .. })
        ));
        dir.delete_account("bob@example.org").await.expect("delete bob");
        assert_eq!(dir.resolve("bob@example.org").expect("r"), Recipient::Unknown);
        store.log.close().await;

        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        let dir = Directory::new(store.tables.clone());
        assert_eq!(dir.domains(None, 10, None).expect("domains").len(), 2);
        let searched = dir.domains(None, 10, Some("EXAMPLE.O")).expect("search");
        assert_eq!(searched.len(), 1, "{searched:?}");
        assert_eq!(searched[0].name, "example.org");
        let lists = dir.lists(None, 10, Some("tea")).expect("lists");
        assert_eq!(lists.len(), 1);
        assert!(dir.lists(None, 10, Some("nothing-like-it")).expect("lists").is_empty());
        // A page that skips non-matching records still fills up to its limit.
        assert_eq!(dir.domains(None, 1, Some("org")).expect("one").len(), 1);
        let alice = dir.account("alice@example.org").expect("get").expect("alice survives");
        assert_eq!(alice.status, cairn_storage::directory::Status::Locked);
        assert_eq!(alice.aliases, vec!["postmaster@example.org".to_string()]);
        dir.delete_domain("example.org", true).await.expect("forced delete");
        assert_eq!(dir.resolve("alice@example.org").expect("r"), Recipient::Unknown);
        assert!(dir.account("postmaster@example.org").expect("get").is_none());
        assert!(dir.domains(None, 10, None).expect("domains").is_empty(), "the alias domain went with it");
        store.log.close().await;
    })
    .expect("executor");
}
