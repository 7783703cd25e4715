//! What open IMAP and POP3 sessions are told when the appliance stops on
//! SIGTERM: `* BYE Server shutting down` (RFC 9051 §7.1.5) for IMAP
//! before login, logged in and waiting, and in IDLE (async-imap's);
//! `-ERR [SYS/TEMP] server shutting down` (RFC 2449, RFC 3206) for POP3.
//! An IMAP command part-way in is answered first. The stop waits for none
//! of them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{Response, Status};
use cairn_config::Service;
use cairn_tests::{AdminApi, Setup};

const ACCOUNT: &str = "stop@example.org";
const PASSWORD: &str = "a long enough password";
const BYE: &str = "* BYE Server shutting down\r\n";

/// A line-oriented client over plain TCP.
struct Lines {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Lines {
    /// Connects and reads the greeting, which must start with `greeting`.
    fn connect(port: u16, greeting: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut c = Lines {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        };
        let line = c.line();
        assert!(line.starts_with(greeting), "{line}");
        c
    }

    /// The next line, CRLF included; empty once the server closed.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("write");
    }

    /// Sends a line and reads up to the one starting with `until`.
    fn command(&mut self, line: &str, until: &str) -> String {
        self.send(&format!("{line}\r\n"));
        loop {
            let got = self.line();
            assert!(!got.is_empty(), "closed after {line}");
            if got.starts_with(until) {
                return got;
            }
        }
    }

    /// The server's last line, then the end of the connection.
    fn last(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
        assert_eq!(self.line(), "", "the server closes the connection");
    }
}

/// Logs in with async-imap, selects INBOX, enters IDLE (then says so on
/// `idling`) and returns what ended the IDLE: the text of a BYE.
async fn idle_until_bye(port: u16, idling: mpsc::Sender<()>) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.map_err(|e| e.to_string())?;
    let mut session = client
        .login(ACCOUNT, PASSWORD)
        .await
        .map_err(|(e, _)| e.to_string())?;
    session.select("INBOX").await.map_err(|e| e.to_string())?;
    let mut idle = session.idle();
    idle.init().await.map_err(|e| e.to_string())?;
    idling.send(()).map_err(|e| e.to_string())?;
    let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(30));
    match wait.await.map_err(|e| e.to_string())? {
        IdleResponse::NewData(data) => match data.parsed() {
            Response::Data {
                status: Status::Bye,
                outcome,
            } => Ok(outcome
                .information
                .as_deref()
                .unwrap_or_default()
                .to_string()),
            other => Err(format!("not a BYE: {other:?}")),
        },
        other => Err(format!("IDLE ended without news: {other:?}")),
    }
}

#[test]
fn open_imap_and_pop3_sessions_are_told_at_shutdown() {
    let setup = Setup::new("[mail_access]\nallow_plaintext_auth = true\n");
    let Setup { data, config, .. } = &setup;
    let appliance = setup.start();
    AdminApi::new(&appliance, data).provision("example.org", &[ACCOUNT.into()], PASSWORD);
    let (imap, pop3) = (config.port(Service::Imap), config.port(Service::Pop3));

    let mut greeted = Lines::connect(imap, "* OK");
    let mut waiting = Lines::connect(imap, "* OK");
    let r = waiting.command(&format!("a LOGIN {ACCOUNT} \"{PASSWORD}\""), "a ");
    assert!(r.starts_with("a OK"), "{r}");
    let r = waiting.command("b SELECT INBOX", "b ");
    assert!(r.starts_with("b OK"), "{r}");
    // A command of which the line end has not come yet.
    let mut partway = Lines::connect(imap, "* OK");
    partway.send("c NO");
    let mut pop_greeted = Lines::connect(pop3, "+OK");
    let mut pop = Lines::connect(pop3, "+OK");
    let r = pop.command(&format!("USER {ACCOUNT}"), "");
    assert!(r.starts_with("+OK"), "{r}");
    let r = pop.command(&format!("PASS {PASSWORD}"), "");
    assert!(r.starts_with("+OK"), "{r}");
    let (idling_tx, idling) = mpsc::channel();
    let idler = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(idle_until_bye(imap, idling_tx))
    });
    idling
        .recv_timeout(Duration::from_secs(20))
        .expect("the client is in IDLE");
    // Let the server read the partial command before the stop.
    std::thread::sleep(Duration::from_millis(300));

    let signalled = std::time::Instant::now();
    let stopping =
        std::thread::spawn(move || appliance.stop(libc::SIGTERM, Duration::from_secs(20)));
    greeted.last(BYE);
    waiting.last(BYE);
    pop_greeted.last("-ERR [SYS/TEMP] server shutting down\r\n");
    pop.last("-ERR [SYS/TEMP] server shutting down\r\n");
    // The command part-way in is finished and answered, then the BYE.
    partway.send("OP\r\n");
    assert_eq!(partway.line(), "c OK NOOP completed\r\n");
    partway.last(BYE);
    let bye = idler.join().expect("the IDLE client");
    assert_eq!(bye.as_deref(), Ok("Server shutting down"));
    let status = stopping
        .join()
        .expect("stopping")
        .expect("exited within 20 s");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    // Every session ended at once: the stop did not wait out its grace
    // period (5 s) for any of them.
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "{:?}",
        signalled.elapsed()
    );
}
