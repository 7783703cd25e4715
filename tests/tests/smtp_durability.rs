//! Acknowledged means durable, over SMTP: lettre clients deliver to local
//! accounts through the MX listener of the real appliance while it is
//! SIGKILLed at a random moment; after a restart every message that got a
//! `250` is in its mailbox (counted through the admin API), and at most the
//! messages in flight at the kill are there beyond those. Three rounds on
//! the same data directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_config::Service;
use cairn_tests::{AdminApi, Setup};
use lettre::{Message, SmtpTransport, Transport};

const ACCOUNTS: usize = 4;
const CLIENTS: usize = 8;
const ROUNDS: usize = 3;

fn account(i: usize) -> String {
    format!("user{i}@example.org")
}

/// Sends to `account(client % ACCOUNTS)` until `stop`, or until the
/// appliance goes away; returns how many messages got a `250`.
fn client_loop(port: u16, client: usize, round: usize, stop: Arc<AtomicBool>) -> u64 {
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        let message = Message::builder()
            .from("load@remote.test".parse().expect("from"))
            .to(account(client % ACCOUNTS).parse().expect("to"))
            .subject(format!("round {round} client {client} message {acked}"))
            .body("x".repeat(2048))
            .expect("message");
        match mailer.send(&message) {
            Ok(reply) if reply.is_positive() => acked += 1,
            _ => break,
        }
    }
    acked
}

fn inbox_count(api: &AdminApi, account: &str) -> u64 {
    let (status, body) = api.get(&format!("/accounts/{account}/mailboxes/INBOX"));
    assert_eq!(status, 200, "{body}");
    body["messages"].as_u64().expect("messages")
}

#[test]
fn every_acknowledged_message_survives_sigkill() {
    let setup = Setup::new("");
    let Setup { data, config, .. } = &setup;
    let smtp = config.port(Service::Smtp);

    let appliance = setup.start();
    let addresses: Vec<String> = (0..ACCOUNTS).map(account).collect();
    AdminApi::new(&appliance, data).provision("example.org", &addresses, "a long enough password");
    let mut appliance = Some(appliance);
    let mut acked = [0u64; ACCOUNTS];
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
                std::thread::spawn(move || client_loop(smtp, c, round, stop))
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
        let mut this_round = 0;
        for (c, handle) in clients.into_iter().enumerate() {
            let n = handle.join().expect("client thread");
            acked[c % ACCOUNTS] += n;
            this_round += n;
        }
        assert!(
            this_round > 0,
            "no message was acknowledged in round {round}"
        );
        let restarted = setup.start();
        let api = AdminApi::new(&restarted, data);
        for (i, count) in acked.iter_mut().enumerate() {
            let (want, have) = (*count, inbox_count(&api, &account(i)));
            // One message per client may have been stored without its 250.
            let in_flight = (CLIENTS / ACCOUNTS) as u64;
            println!(
                "round {round}: {} acknowledged {want}, stored {have}",
                account(i)
            );
            assert!(
                have >= want,
                "{}: {want} acknowledged but {have} stored",
                account(i)
            );
            assert!(
                have <= want + in_flight,
                "{}: {have} stored, {want} acknowledged",
                account(i)
            );
            // Messages in flight at the kill may or may not be stored:
            // count what is there as the new baseline.
            *count = have;
        }
        assert!(
            acked.iter().sum::<u64>() > 0,
            "no message was delivered in round {round}"
        );
        appliance = Some(restarted);
    }
}
