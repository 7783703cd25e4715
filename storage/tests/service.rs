//! Mail calls routed to the owning shard: on a two-shard runtime, shard 0
//! creates accounts and delivers one message to all of them; each account
//! exists only on the shard the placement table names, and each shard
//! stores the body once.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use cairn_shards::placement::PlacementTable;
use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};
use cairn_storage::service::{MailMesh, MailService};
use cairn_storage::shard_store::ShardStore;

const USERS: usize = 12;

fn user(i: usize) -> String {
    format!("user{i}@example.org")
}

#[test]
fn calls_run_on_the_shard_that_owns_the_account() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().to_path_buf();
    let mesh = MailMesh::new(2, 16);
    let config = RuntimeConfig {
        shards: 2,
        pin: false,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(&config, Shutdown::new(), move |ctx: ShardContext| {
        let (mesh, data) = (mesh.clone(), data.clone());
        async move {
            let (store, _) = ShardStore::open(&data, ctx.id()).await.expect("open store");
            let placement = Rc::new(RefCell::new(PlacementTable::new(ctx.count(), ctx.id())));
            let service = MailService::start(&mesh, ctx.id(), store.mail.clone(), placement)
                .await
                .expect("join mesh");
            if ctx.id() == 0 {
                for i in 0..USERS {
                    service
                        .create_account(&user(i), 0, 0)
                        .await
                        .expect("create");
                }
                let rcpts: Vec<(String, String)> =
                    (0..USERS).map(|i| (user(i), "INBOX".to_string())).collect();
                let body: Arc<[u8]> = Arc::from(&b"Subject: all hands\r\n\r\nhello"[..]);
                let results = service.deliver(&rcpts, body, 0).await;
                assert!(
                    results.iter().all(|r| matches!(r, Ok(d) if d.uid == 1)),
                    "{results:?}"
                );
                for i in 0..USERS {
                    let status = service.status(&user(i), "INBOX").await.expect("status");
                    assert_eq!(status.messages, 1);
                    let msgs = service.messages(&user(i), "INBOX").await.expect("messages");
                    let body = service.body(&user(i), msgs[0].blob).await.expect("body");
                    assert!(body.ends_with(b"hello"));
                }
                assert!(
                    service.create_account(&user(0), 0, 0).await.is_err(),
                    "duplicate"
                );
                ctx.shutdown().trigger();
            }
            ctx.shutdown().wait().await;
            let owned: Vec<usize> = (0..USERS)
                .filter(|i| service.owner(&user(*i)) == ctx.id())
                .collect();
            for i in 0..USERS {
                let here = store.mail.status(&user(i), "INBOX");
                assert_eq!(
                    here.is_ok(),
                    owned.contains(&i),
                    "shard {} and {}",
                    ctx.id(),
                    user(i)
                );
            }
            let blobs = store.mail.blob_count();
            store.log.close().await;
            (owned.len(), blobs)
        }
    })
    .expect("start");
    let per_shard = rt.join().expect("join");
    assert_eq!(per_shard.iter().map(|(n, _)| n).sum::<usize>(), USERS);
    for (owned, blobs) in per_shard {
        assert!(owned > 0, "both shards own accounts with this many users");
        assert_eq!(blobs, 1, "one body per shard");
    }
}
