//! The authentication service on real storage: argon2id verification on
//! the blocking pool, one answer for unknown users and wrong passwords,
//! disabled accounts, aliases, and lockout per account and per address.

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_shards::local::block_on;
use cairn_shards::BlockingPool;
use cairn_storage::directory::auth::{AuthError, Authenticator, Principal};
use cairn_storage::directory::lockout::Policy;
use cairn_storage::directory::{Directory, NewAccount, Status};
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
        assert_eq!(ok, Ok(Principal { address: "alice@example.org".into(), shard: 1 }));
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
