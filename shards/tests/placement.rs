//! Placement replicas kept in step over a mesh: a move made on shard 0 and
//! broadcast is seen by every shard.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use cairn_shards::placement::PlacementError;
use cairn_shards::{Mesh, PlacementKey, PlacementTable, PlacementUpdate};
use common::{run_shards, Barrier};

#[test]
fn after_a_move_on_shard_0_every_shard_answers_the_new_shard() {
    const SHARDS: usize = 4;
    let mesh = Mesh::<PlacementUpdate, Result<bool, PlacementError>>::new(SHARDS, 16);
    let moved = Barrier::new(SHARDS);
    let got = run_shards(SHARDS, move |ctx| {
        let (mesh, moved) = (mesh.clone(), moved.clone());
        async move {
            let me = ctx.id();
            let table = Rc::new(RefCell::new(PlacementTable::new(ctx.count(), me)));
            // Before any update can arrive: every replica starts at the default.
            let key = PlacementKey::account("alice@example.com");
            let before = table.borrow().shard_of(&key);
            let ep = mesh.join(me).await.expect("join");
            let replica = table.clone();
            ep.serve(move |_, update| {
                let applied = replica.borrow_mut().apply(&update);
                async move { applied }
            })
            .expect("serve");
            let mut outcome = None;
            if me == 0 {
                let target = (before + 1) % SHARDS;
                let change = table.borrow_mut().move_to(key.clone(), target);
                let change = change.expect("move");
                assert_eq!(change.previous, before);
                outcome = Some(ep.broadcast(change.update).await);
            }
            // Shard 0 arrives once every replica has applied the move.
            moved.wait().await;
            let table = table.borrow();
            (before, table.shard_of(&key), table.version(), outcome)
        }
    });
    let default = got[0].0;
    let target = (default + 1) % SHARDS;
    for (shard, (before, now, version, _)) in got.iter().enumerate() {
        assert_eq!(*before, default, "shard {shard} agreed on the default");
        assert_eq!(*now, target, "shard {shard} sees the move");
        assert_eq!(*version, 1, "shard {shard}");
    }
    // Shard 0 had applied its own move already; the others changed.
    assert_eq!(
        got[0].3,
        Some(vec![
            Ok(Ok(false)),
            Ok(Ok(true)),
            Ok(Ok(true)),
            Ok(Ok(true))
        ])
    );
}
