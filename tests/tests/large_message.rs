//! A message far larger than one group commit (4 MiB by default), within
//! the default 50 MiB limit: a real SMTP client (lettre) delivers it to the
//! MX listener, a real IMAP client (async-imap) reads it back whole and in
//! a range (streamed from its segment) and it survives a restart.

use std::time::Duration;

use cairn_config::Service;
use cairn_tests::{async_imap_login, AdminApi, Setup};
use futures_lite::StreamExt;
use lettre::message::header::ContentType;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};

const USER: &str = "lena@example.org";
const PASSWORD: &str = "a long enough password";
/// Lines of the body: about 12 MiB.
const LINES: usize = 160_000;

fn body() -> String {
    (0..LINES)
        .map(|i| format!("{i:08} a line of a large report, the same length each\r\n"))
        .collect()
}

/// The body of `query`'s answer for message 1 of the selected mailbox.
async fn fetch_one(s: &mut async_imap::Session<tokio::net::TcpStream>, query: &str) -> Vec<u8> {
    let fetched: Vec<_> = s.fetch("1", query).await.expect("fetch").collect().await;
    let f = fetched.into_iter().next().expect("one").expect("fetch");
    f.body().map(<[u8]>::to_vec).expect("a body")
}

/// `BODY.PEEK[]` and `BODY.PEEK[]<from.len>` of the only message in INBOX.
async fn read_back(port: u16, from: usize, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut s = async_imap_login(port, USER, PASSWORD).await;
    let inbox = s.select("INBOX").await.expect("select");
    assert_eq!(inbox.exists, 1);
    let whole = fetch_one(&mut s, "BODY.PEEK[]").await;
    let range = fetch_one(&mut s, &format!("BODY.PEEK[]<{from}.{len}>")).await;
    s.logout().await.expect("logout");
    (whole, range)
}

#[test]
fn a_twelve_mib_message_is_delivered_read_and_kept() {
    let setup = Setup::new("[mail_access]\nallow_plaintext_auth = true\n");
    let (imap, smtp) = (
        setup.config.port(Service::Imap),
        setup.config.port(Service::Smtp),
    );
    let appliance = setup.start();
    AdminApi::new(&appliance, &setup.data).provision("example.org", &[USER.to_string()], PASSWORD);
    let text = body();
    let message = Message::builder()
        .from("Reports <reports@sender.example>".parse().expect("from"))
        .to(format!("Lena <{USER}>").parse().expect("to"))
        .subject("The large report")
        .header(ContentType::TEXT_PLAIN)
        .body(text.clone())
        .expect("message");
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(smtp)
        .hello_name(ClientId::Domain("mail.sender.example".into()))
        .timeout(Some(Duration::from_secs(120)))
        .build()
        .send(&message)
        .expect("delivered");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (from, len) = (5_000_000, 100_000);
    let check = |(whole, range): (Vec<u8>, Vec<u8>)| {
        assert!(whole.len() > text.len(), "{} bytes", whole.len());
        // lettre ends the body with one more line break.
        assert!(
            whole.ends_with(format!("{text}\r\n").as_bytes()),
            "the body comes back unchanged"
        );
        assert_eq!(range, whole[from..from + len]);
    };
    check(rt.block_on(read_back(imap, from, len)));
    assert!(
        appliance
            .stop(libc::SIGTERM, Duration::from_secs(20))
            .is_some(),
        "the appliance did not stop"
    );
    let _again = setup.start();
    check(rt.block_on(read_back(imap, from, len)));
}
