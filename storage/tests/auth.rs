//! The authentication service on real storage: argon2id verification on
//! the blocking pool, one answer for unknown users and wrong passwords,
//! disabled accounts, aliases, and lockout per account and per address.

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_shards::local::block_on;
use cairn_shards::BlockingPool;
use cairn_storage::directory::app_passwords::generate;
use cairn_storage::directory::auth::{AuthError, Authenticator, Principal};
use cairn_storage::directory::lockout::Policy;
use cairn_storage::directory::{AppPassword, Directory, NewAccount, Status};
use cairn_storage::shard_store::ShardStore;

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

#[test]
fn logins_are_checked_and_failures_lock_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pool, _workers) = BlockingPool::start(2, 16).expect("pool");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        let dir = Directory::new(store.tables.clone());
        dir.add_domain("example.org", None, None).await.expect("domain");
        for (user, shard) in [("alice", 1), ("bob", 0)] {
            dir.add_account(NewAccount {
                address: format!("{user}@example.org"),
                password_hash: hash("correct horse"),
                shard,
                ..NewAccount::default()
            })
            .await
            .expect("account");
        }
        dir.add_alias("postmaster@example.org", "alice@example.org").await.expect("alias");
        let policy = Policy { per_account: 3, per_address: 6, window: Duration::from_secs(300) };
        let auth = Authenticator::new(dir.clone(), pool.clone(), policy);
        let ip: IpAddr = [192, 0, 2, 1].into();

        let ok = auth.authenticate("Alice@example.org", "correct horse", ip).await;
        assert_eq!(ok, Ok(Principal { address: "alice@example.org".into(), shard: 1, app_password: None }));
        let via_alias = auth.authenticate("postmaster@example.org", "correct horse", ip).await;
        assert_eq!(via_alias.map(|p| p.address), Ok("alice@example.org".into()));
        assert_eq!(auth.authenticate("alice@example.org", "wrong", ip).await, Err(AuthError::Invalid));
        assert_eq!(auth.authenticate("nobody@example.org", "correct horse", ip).await, Err(AuthError::Invalid));

        // Two more failures lock alice out, even with the right password.
        for _ in 0..2 {
            assert_eq!(auth.authenticate("alice@example.org", "wrong", ip).await, Err(AuthError::Invalid));
        }
        let locked = auth.authenticate("alice@example.org", "correct horse", ip).await;
        assert!(matches!(locked, Err(AuthError::Throttled { retry_after }) if retry_after > Duration::from_secs(200)), "{locked:?}");
        // Bob is not affected from another address.
        let other: IpAddr = [192, 0, 2, 2].into();
        assert!(auth.authenticate("bob@example.org", "correct horse", other).await.is_ok());

        // The address that failed four times is refused after two more, for anyone.
        for _ in 0..2 {
            let _ = auth.authenticate("bob@example.org", "wrong", ip).await;
        }
        assert!(matches!(
            auth.authenticate("bob@example.org", "correct horse", ip).await,
            Err(AuthError::Throttled { .. })
        ));

        dir.update_account("bob@example.org", |a| a.status = Status::Locked).await.expect("lock");
        assert_eq!(auth.authenticate("bob@example.org", "correct horse", other).await, Err(AuthError::Disabled));
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn app_passwords_log_in_until_deleted_and_share_the_lockout() {
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
        dir.add_alias("postmaster@example.org", "alice@example.org")
            .await
            .expect("alias");
        let app = generate();
        let other_app = generate();
        for (name, password) in [("thunderbird", &app), ("phone", &other_app)] {
            let stored = AppPassword {
                name: name.into(),
                hash: hash(password),
                created_unix: 1,
            };
            dir.add_app_password("alice@example.org", stored)
                .await
                .expect("app password");
        }
        let policy = Policy {
            per_account: 3,
            per_address: 100,
            window: Duration::from_secs(300),
        };
        let auth = Authenticator::new(dir.clone(), pool.clone(), policy);
        let ip: IpAddr = [192, 0, 2, 1].into();

        let own = auth
            .authenticate("alice@example.org", "correct horse", ip)
            .await
            .expect("password");
        assert_eq!(own.app_password, None);
        let by_app = auth
            .authenticate("Alice@example.org", &app, ip)
            .await
            .expect("app password");
        assert_eq!(
            (by_app.address.as_str(), by_app.app_password.as_deref()),
            ("alice@example.org", Some("thunderbird"))
        );
        let by_alias = auth
            .authenticate("postmaster@example.org", &other_app, ip)
            .await
            .expect("via alias");
        assert_eq!(by_alias.app_password.as_deref(), Some("phone"));
        // An app password of the right shape that is not hers, and one of an unknown user.
        assert_eq!(
            auth.authenticate("alice@example.org", &generate(), ip)
                .await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate("nobody@example.org", &app, ip).await,
            Err(AuthError::Invalid)
        );

        dir.delete_app_password("alice@example.org", "thunderbird")
            .await
            .expect("delete");
        assert_eq!(
            auth.authenticate("alice@example.org", &app, ip).await,
            Err(AuthError::Invalid)
        );
        // Three failures (one each) lock the account for every credential.
        assert_eq!(
            auth.authenticate("alice@example.org", "wrong", ip).await,
            Err(AuthError::Invalid)
        );
        assert!(matches!(
            auth.authenticate("alice@example.org", &other_app, ip).await,
            Err(AuthError::Throttled { .. })
        ));
        assert!(matches!(
            auth.authenticate("alice@example.org", "correct horse", ip)
                .await,
            Err(AuthError::Throttled { .. })
        ));

        // A locked account cannot use its app passwords either.
        dir.update_account("alice@example.org", |a| a.status = Status::Locked)
            .await
            .expect("lock");
        let elsewhere: IpAddr = [192, 0, 2, 7].into();
        let auth = Authenticator::new(dir.clone(), pool.clone(), policy);
        assert_eq!(
            auth.authenticate("alice@example.org", &other_app, elsewhere)
                .await,
            Err(AuthError::Disabled)
        );
        store.log.close().await;
    })
    .expect("executor");
}
