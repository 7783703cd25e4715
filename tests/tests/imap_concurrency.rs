//! Many IMAP sessions on one mailbox agree on it: 20 sessions of the real
//! appliance, on one account's INBOX, do random APPENDs, flag STOREs,
//! expunges and IDLEs at once; after each round every session NOOPs, and
//! the mailbox each one has built from nothing but the server's untagged
//! responses (EXISTS, EXPUNGE, FETCH) must equal every other's and what a
//! fresh session fetches.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use cairn_config::Service;
use cairn_tests::imap::{Session, View};
use cairn_tests::{AdminApi, Appliance, TestConfig};

const SESSIONS: usize = 20;
const ROUNDS: usize = 6;
const OPS_PER_ROUND: usize = 3;
const ACCOUNT: &str = "shared@example.org";
const PASSWORD: &str = "a long enough password";

/// The random operations of one session, a round at a time.
trait RandomOps {
    fn random_op(&mut self) -> Result<(), String>;
}

impl RandomOps for Session {
    fn random_op(&mut self) -> Result<(), String> {
        match self.random(5) {
            0 => self.append("INBOX"),
            1 | 2 => match self.known_uid() {
                Some(uid) => {
                    let change = ["+FLAGS (\\Flagged)", "-FLAGS (\\Flagged)", "+FLAGS ($Work)"]
                        [self.random(3)];
                    self.ok(&format!("UID STORE {uid} {change}")).map(drop)
                }
                None => self.append("INBOX"),
            },
            3 => match self.known_uid() {
                Some(uid) => {
                    self.ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))?;
                    self.ok(&format!("UID EXPUNGE {uid}")).map(drop)
                }
                None => self.append("INBOX"),
            },
            _ => self.idle(),
        }
    }
}

/// Starts the appliance with one account and 10 messages in its INBOX.
fn start() -> (tempfile::TempDir, Appliance, u16) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = TestConfig::new(
        &data,
        "[mail_access]\nallow_plaintext_auth = true\n\n[limits]\nmax_connections_per_ip = 200\n",
    );
    let path = tmp.path().join("appliance.toml");
    std::fs::write(&path, &config.text).expect("write config");
    let appliance = Appliance::start(&path, &config);
    AdminApi::new(&appliance, &data).provision("example.org", &[ACCOUNT.into()], PASSWORD);
    let port = config.port(Service::Imap);
    let mut seeder = Session::connect(port, ACCOUNT, PASSWORD, 99).expect("seeding session");
    for _ in 0..10 {
        seeder.append("INBOX").expect("seed");
    }
    (tmp, appliance, port)
}

#[test]
fn twenty_sessions_on_one_mailbox_agree_after_every_round() {
    let (_tmp, _appliance, port) = start();
    // The sessions and this thread meet three times a round: ops done,
    // views sent, views compared.
    let barrier = Arc::new(Barrier::new(SESSIONS + 1));
    let (views_tx, views_rx) = mpsc::channel::<(usize, Result<View, String>)>();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let (barrier, views) = (barrier.clone(), views_tx.clone());
            std::thread::spawn(move || {
                let mut session =
                    Session::connect(port, ACCOUNT, PASSWORD, 0x9e37_79b9 * (i as u64 + 1));
                for _ in 0..ROUNDS {
                    if let Ok(s) = &mut session {
                        for _ in 0..OPS_PER_ROUND {
                            if let Err(e) = s.random_op() {
                                session = Err(e);
                                break;
                            }
                        }
                    }
                    barrier.wait();
                    let view = match &mut session {
                        Ok(s) => s.settle(),
                        Err(e) => Err(e.clone()),
                    };
                    views.send((i, view)).expect("send the view");
                    barrier.wait();
                    barrier.wait();
                }
            })
        })
        .collect();
    drop(views_tx);

    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        barrier.wait();
        let views: Vec<(usize, Result<View, String>)> = (0..SESSIONS)
            .map(|_| views_rx.recv().expect("a view"))
            .collect();
        barrier.wait();
        let truth = Session::connect(port, ACCOUNT, PASSWORD, 7)
            .and_then(|mut fresh| fresh.settle())
            .expect("a fresh session's view");
        for (i, view) in views {
            match view {
                Ok(v) if v == truth => {}
                Ok(v) => failures.push(format!(
                    "round {round}: session {i} sees {} messages {v:?}\n  a fresh session sees {} {truth:?}",
                    v.len(),
                    truth.len()
                )),
                Err(e) => failures.push(format!("round {round}: session {i} failed: {e}")),
            }
        }
        barrier.wait();
    }
    for t in threads {
        t.join().expect("session thread");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
