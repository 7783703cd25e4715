//! Acknowledged means durable, over IMAP: sessions APPEND and flag messages
//! through the real appliance while it is SIGKILLed at a random moment;
//! after a restart, every APPEND that got its tagged `OK` is in the
//! mailbox, and every `\Flagged` that got its `OK` is still set. Two rounds
//! on the same data directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_config::Service;
use cairn_tests::imap::Session;
use cairn_tests::{AdminApi, Setup};

const ACCOUNTS: usize = 2;
const CLIENTS: usize = 6;
const ROUNDS: usize = 2;
const PASSWORD: &str = "a long enough password";

fn account(i: usize) -> String {
    format!("reader{i}@example.org")
}

/// What one client got acknowledged before the kill.
#[derive(Default)]
struct Acked {
    appends: u64,
    /// UIDs whose `+FLAGS (\Flagged)` got an OK.
    flagged: Vec<u32>,
}

/// APPENDs to its account's INBOX until `stop` or the appliance goes away,
/// flagging each appended message (the newest one it sees).
fn client_loop(port: u16, client: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    let Ok(mut s) = Session::connect(port, &account(client % ACCOUNTS), PASSWORD, 1) else {
        return acked;
    };
    while !stop.load(Ordering::Relaxed) {
        if s.append("INBOX").is_err() {
            break;
        }
        acked.appends += 1;
        let Ok(view) = s.settle() else {
            break;
        };
        let Some(&(uid, _)) = view.last() else {
            break;
        };
        if s.ok(&format!("UID STORE {uid} +FLAGS (\\Flagged)"))
            .is_err()
        {
            break;
        }
        acked.flagged.push(uid);
    }
    acked
}

#[test]
fn every_acknowledged_append_and_flag_survives_sigkill() {
    let setup = Setup::new("[mail_access]\nallow_plaintext_auth = true\n");
    let Setup { data, config, .. } = &setup;
    let imap = config.port(Service::Imap);

    let appliance = setup.start();
    let addresses: Vec<String> = (0..ACCOUNTS).map(account).collect();
    AdminApi::new(&appliance, data).provision("example.org", &addresses, PASSWORD);
    let mut appliance = Some(appliance);
    let mut stored = [0usize; ACCOUNTS];
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    for round in 0..ROUNDS {
        let running = appliance.take().unwrap_or_else(|| setup.start());
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let stop = stop.clone();
                std::thread::spawn(move || client_loop(imap, c, stop))
            })
            .collect();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(700 + (seed >> 33) % 800));
        assert!(
            running
                .stop(libc::SIGKILL, Duration::from_secs(10))
                .is_some(),
            "SIGKILL did not stop the appliance"
        );
        stop.store(true, Ordering::Relaxed);
        let mut acked = [0u64; ACCOUNTS];
        let mut flagged: [Vec<u32>; ACCOUNTS] = Default::default();
        for (c, handle) in clients.into_iter().enumerate() {
            let a = handle.join().expect("client thread");
            acked[c % ACCOUNTS] += a.appends;
            flagged[c % ACCOUNTS].extend(a.flagged);
        }
        assert!(
            acked.iter().sum::<u64>() > 0,
            "nothing acknowledged in round {round}"
        );

        let restarted = setup.start();
        for i in 0..ACCOUNTS {
            let mut s = Session::connect(imap, &account(i), PASSWORD, 3).expect("reconnect");
            let view = s.settle().expect("the mailbox after restart");
            let in_flight = CLIENTS / ACCOUNTS;
            println!(
                "round {round}: {} acknowledged {} appends, {} stored before, {} now",
                account(i),
                acked[i],
                stored[i],
                view.len()
            );
            let want = stored[i] + acked[i] as usize;
            assert!(
                view.len() >= want,
                "{}: {want} acknowledged, {} stored",
                account(i),
                view.len()
            );
            assert!(view.len() <= want + in_flight, "{}: too many", account(i));
            for uid in &flagged[i] {
                let flags = view
                    .iter()
                    .find(|(u, _)| u == uid)
                    .map(|(_, f)| f)
                    .unwrap_or_else(|| panic!("{}: UID {uid} is gone", account(i)));
                assert!(
                    flags.contains("\\flagged"),
                    "{}: UID {uid} lost its acknowledged \\Flagged: {flags:?}",
                    account(i)
                );
            }
            stored[i] = view.len();
        }
        appliance = Some(restarted);
    }
}
