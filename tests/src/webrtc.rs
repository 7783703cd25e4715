//! SDP offers from a real WebRTC stack (str0m) for the video rooms' tests.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{Direction, MediaKind};
use str0m::net::Protocol;
use str0m::{Candidate, Rtc};

/// A str0m endpoint's offer with one m-line per `(kind, direction)`, its
/// host candidate on 127.0.0.1.
pub fn offer(lines: &[(MediaKind, Direction)]) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let addr: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    rtc.add_local_candidate(Candidate::host(addr, Protocol::Udp).expect("candidate"));
    let mut change = rtc.sdp_api();
    for (kind, dir) in lines {
        change.add_media(*kind, *dir, None, None, None);
    }
    let (offer, _) = change.apply().expect("an offer");
    offer.to_sdp_string()
}
