//! A logged-in session of a real IMAP client (async-imap, on tokio), as the
//! end-to-end tests open it against the appliance's plain IMAP port.

use async_imap::Session;
use tokio::net::TcpStream;

/// Connects to 127.0.0.1:`port`, reads the greeting and logs in; panics
/// (failing the test) when any of it fails.
pub async fn async_imap_login(port: u16, user: &str, password: &str) -> Session<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .expect("greeting")
        .expect("greeting");
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}
