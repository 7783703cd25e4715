//! IDLE (RFC 2177): `+ idling`, then updates as soon as the store applies
//! a change to the account (a delivery, another session's APPEND, STORE
//! or EXPUNGE), until DONE or the idle timeout.

use std::time::Instant;

use futures_lite::future;

use super::conn::{Conn, End};
use super::{Reply, Session};
use crate::codec::framer::Event;

enum Woke {
    Input(Result<Event, End>),
    Changed,
    Expired,
}

impl Session<'_> {
    pub(super) async fn idle(&mut self, conn: &mut Conn, tag: &str) -> Result<(), End> {
        let Some(account) = self.account.clone() else {
            return Ok(());
        };
        self.out.extend_from_slice(b"+ idling\r\n");
        let deadline = Instant::now() + self.inner.options.idle_timeout;
        loop {
            // Watch before reading the state, so that no change is missed.
            let watch = self.inner.services.mailstore.watch(&account);
            let _ = self.with_updates(Reply::ok(""), true);
            conn.flush(&mut self.out).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let woke = future::or(
                async { Woke::Input(conn.next_event(&mut Vec::new(), left).await) },
                future::or(
                    async {
                        watch.await;
                        Woke::Changed
                    },
                    async {
                        cairn_shards::time::sleep(left).await;
                        Woke::Expired
                    },
                ),
            )
            .await;
            match woke {
                Woke::Changed => continue,
                Woke::Expired | Woke::Input(Err(End::Timeout)) => return Err(End::Timeout),
                Woke::Input(Err(end)) => return Err(end),
                Woke::Input(Ok(Event::Command(line))) => {
                    let done = line
                        .strip_suffix(b"\r\n")
                        .or_else(|| line.strip_suffix(b"\n"))
                        .is_some_and(|l| l.eq_ignore_ascii_case(b"DONE"));
                    let reply = if done {
                        Reply::ok("IDLE terminated")
                    } else {
                        Reply::bad("Expected DONE")
                    };
                    let reply = self.with_updates(reply, true);
                    self.tagged(tag, &reply);
                    return Ok(());
                }
                Woke::Input(Ok(Event::Literal { .. })) => {
                    conn.framer.refuse_literal();
                    self.tagged(tag, &Reply::bad("Expected DONE"));
                    return Ok(());
                }
                Woke::Input(Ok(_)) => {
                    self.tagged(tag, &Reply::bad("Expected DONE"));
                    return Ok(());
                }
            }
        }
    }
}
