//! Cross-shard calls over a `Mesh`: between 2 and 4 shards, under
//! backpressure, fire-and-forget, and to a shard that has left.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cairn_shards::time::sleep;
use cairn_shards::{Mesh, MeshError, ShardId, Shutdown};
use common::{run_shards, Barrier};

#[test]
fn every_shard_calls_every_shard_with_2_and_4_shards() {
    for n in [2, 4] {
        let mesh = Mesh::<u64, (ShardId, ShardId, u64)>::new(n, 8);
        let done = Barrier::new(n);
        let got = run_shards(n, move |ctx| {
            let (mesh, done) = (mesh.clone(), done.clone());
            async move {
                let me = ctx.id();
                let ep = mesh.join(me).await.expect("join");
                assert_eq!((ep.shard(), ep.shards()), (me, n));
                ep.serve(move |from, x| async move { (from, me, x * 10) })
                    .expect("serve");
                let mut replies = Vec::new();
                for to in 0..n {
                    replies.push(ep.call(to, (me * 100 + to) as u64).await);
                }
                let all = ep.broadcast(7).await;
                // Keep answering until every shard has made its calls.
                done.wait().await;
                (me, replies, all)
            }
        });
        assert_eq!(got.len(), n);
        for (me, replies, all) in got {
            for (to, reply) in replies.into_iter().enumerate() {
                assert_eq!(
                    reply,
                    Ok((me, to, (me * 100 + to) as u64 * 10)),
                    "{me} -> {to}"
                );
            }
            let want: Vec<_> = (0..n).map(|to| Ok((me, to, 70))).collect();
            assert_eq!(all, want, "broadcast from {me}");
        }
    }
}

#[test]
fn with_capacity_1_many_concurrent_calls_wait_their_turn_and_all_complete() {
    const CALLS: u64 = 300;
    let mesh = Mesh::<u64, u64>::new(2, 1);
    let done = Barrier::new(2);
    let got = run_shards(2, move |ctx| {
        let (mesh, done) = (mesh.clone(), done.clone());
        async move {
            let ep = Rc::new(mesh.join(ctx.id()).await.expect("join"));
            let busy = Rc::new(Cell::new(0usize));
            let peak = Rc::new(Cell::new(0usize));
            let (b, p) = (busy.clone(), peak.clone());
            ep.serve(move |_, x| {
                let (busy, peak) = (b.clone(), p.clone());
                async move {
                    busy.set(busy.get() + 1);
                    peak.set(peak.get().max(busy.get()));
                    sleep(Duration::from_micros(100)).await;
                    busy.set(busy.get() - 1);
                    x + 1
                }
            })
            .expect("serve");
            let mut answered = Vec::new();
            if ctx.id() == 0 {
                let calls: Vec<_> = (0..CALLS)
                    .map(|i| {
                        let ep = ep.clone();
                        cairn_shards::spawn(async move { ep.call(1, i).await })
                    })
                    .collect();
                for call in calls {
                    answered.push(call.await);
                }
            }
            done.wait().await;
            (answered, peak.get())
        }
    });
    let want: Vec<_> = (0..CALLS).map(|i| Ok(i + 1)).collect();
    assert_eq!(got[0].0, want);
    assert_eq!(
        got[1].1, 1,
        "shard 1 handles at most `capacity` requests of shard 0 at once"
    );
}

#[test]
fn send_is_fire_and_forget_and_reaches_the_handler() {
    const SENDS: usize = 50;
    let mesh = Mesh::<usize, ()>::new(2, 2);
    let received_all = Shutdown::new();
    let got = run_shards(2, move |ctx| {
        let (mesh, received_all) = (mesh.clone(), received_all.clone());
        async move {
            let me = ctx.id();
            let ep = mesh.join(me).await.expect("join");
            let seen = Rc::new(Cell::new(0usize));
            let (s, all) = (seen.clone(), received_all.clone());
            ep.serve(move |from, _| {
                s.set(s.get() + 1);
                if me == 1 && from == 0 && s.get() == SENDS {
                    all.trigger();
                }
                async {}
            })
            .expect("serve");
            let mut sent = Vec::new();
            if me == 0 {
                for i in 0..SENDS {
                    sent.push(ep.send(1, i).await);
                }
                sent.push(ep.send(0, 0).await);
                // The send to itself runs in a task of its own.
                while seen.get() == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
            }
            received_all.wait().await;
            (sent, seen.get())
        }
    });
    assert_eq!(got[0].0, vec![Ok(()); SENDS + 1]);
    assert_eq!(got[0].1, 1, "shard 0 handled its own send");
    assert_eq!(got[1].1, SENDS);
}

#[test]
fn calls_to_a_shard_that_left_fail_with_closed() {
    let mesh = Mesh::<u32, u32>::new(2, 4);
    let left = Shutdown::new();
    let got = run_shards(2, move |ctx| {
        let (mesh, left) = (mesh.clone(), left.clone());
        async move {
            let ep = mesh.join(ctx.id()).await.expect("join");
            if ctx.id() == 1 {
                drop(ep);
                left.trigger();
                return None;
            }
            ep.serve(|_, x| async move { x }).expect("serve");
            left.wait().await;
            Some((
                ep.call(1, 5).await,
                ep.send(1, 5).await,
                ep.broadcast(6).await,
                ep.call(9, 0).await,
                mesh.join(0).await.err(),
                ep.serve(|_, x| async move { x }),
            ))
        }
    });
    let (call, send, broadcast, no_such, rejoin, reserve) = got[0].clone().expect("shard 0");
    assert_eq!(call, Err(MeshError::Closed));
    assert_eq!(send, Err(MeshError::Closed));
    assert_eq!(broadcast, vec![Ok(6), Err(MeshError::Closed)]);
    assert_eq!(
        no_such,
        Err(MeshError::NoSuchShard {
            shard: 9,
            shards: 2
        })
    );
    assert_eq!(rejoin, Some(MeshError::AlreadyJoined(0)));
    assert_eq!(reserve, Err(MeshError::AlreadyServing));
}

#[test]
fn calls_in_flight_or_queued_when_the_peer_leaves_fail_with_closed() {
    // Shard 1 takes the first request and never answers it; with capacity 1
    // the second waits in the queue. Then shard 1 leaves the mesh but keeps
    // running, so only the mesh can tell the callers.
    let mesh = Mesh::<u32, u32>::new(2, 1);
    let took_one = Shutdown::new();
    let done = Barrier::new(2);
    let got = run_shards(2, move |ctx| {
        let (mesh, took_one, done) = (mesh.clone(), took_one.clone(), done.clone());
        async move {
            let ep = Rc::new(mesh.join(ctx.id()).await.expect("join"));
            let mut outcomes = Vec::new();
            if ctx.id() == 1 {
                let took = took_one.clone();
                ep.serve(move |_, x| {
                    took.trigger();
                    async move {
                        sleep(Duration::from_secs(3600)).await;
                        x
                    }
                })
                .expect("serve");
                took_one.wait().await;
                drop(ep);
            } else {
                let calls: Vec<_> = (0..2)
                    .map(|i| {
                        let ep = ep.clone();
                        cairn_shards::spawn(async move { ep.call(1, i).await })
                    })
                    .collect();
                for call in calls {
                    outcomes.push(call.await);
                }
            }
            done.wait().await;
            outcomes
        }
    });
    assert_eq!(got[0], vec![Err(MeshError::Closed), Err(MeshError::Closed)]);
}

#[test]
fn a_call_to_the_own_shard_runs_here_once_served() {
    let got = cairn_shards::local::block_on(async {
        let mesh = Mesh::<u8, (ShardId, u8)>::new(1, 1);
        let ep = Rc::new(mesh.join(0).await.expect("join"));
        let early = {
            let ep = ep.clone();
            cairn_shards::spawn(async move { ep.call(0, 1).await })
        };
        sleep(Duration::from_millis(2)).await;
        ep.serve(|from, x| async move { (from, x + 1) })
            .expect("serve");
        (early.await, ep.call(0, 2).await)
    })
    .expect("executor");
    assert_eq!(got, (Ok((0, 2)), Ok((0, 3))));
}
