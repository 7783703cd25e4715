//! The SFU against str0m peers in memory: offers answered and refused,
//! limits, bad datagrams, and media from a publisher reaching a
//! subscriber through ICE, DTLS and SRTP with a simulated clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::*;

const SFU: &str = "127.0.0.1:30000";

fn sfu_addr() -> SocketAddr {
    SFU.parse().expect("address")
}

fn sfu_with_room(limits: RoomLimits) -> Sfu {
    let mut sfu = Sfu::new(0, sfu_addr());
    sfu.create_room("r", "Room", "invite".into(), limits)
        .expect("room");
    sfu
}

/// A str0m endpoint on `addr` with the given m-lines, and its offer.
fn client(
    addr: &str,
    now: Instant,
    lines: &[(MediaKind, Direction)],
) -> (Rtc, String, SdpPendingOffer, Vec<Mid>) {
    let mut rtc = Rtc::builder().build(now);
    let addr: SocketAddr = addr.parse().expect("address");
    rtc.add_local_candidate(Candidate::host(addr, Protocol::Udp).expect("candidate"));
    let mut change = rtc.sdp_api();
    let mids = lines
        .iter()
        .map(|(kind, dir)| change.add_media(*kind, *dir, None, None, None))
        .collect();
    let (offer, pending) = change.apply().expect("an offer");
    (rtc, offer.to_sdp_string(), pending, mids)
}

fn publisher_lines() -> Vec<(MediaKind, Direction)> {
    vec![
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Video, Direction::SendOnly),
    ]
}

fn subscriber_lines() -> Vec<(MediaKind, Direction)> {
    vec![
        (MediaKind::Audio, Direction::RecvOnly),
        (MediaKind::Video, Direction::RecvOnly),
    ]
}

#[test]
fn limits_and_missing_publishers_are_refused_before_any_state() {
    let now = Instant::now();
    let limits = RoomLimits {
        max_publishers: 1,
        ..RoomLimits::default()
    };
    let mut sfu = sfu_with_room(limits);
    let (_, offer, _, _) = client("127.0.0.1:4000", now, &publisher_lines());
    let (first, _) = sfu
        .join("r", Role::Publisher, &offer, now)
        .expect("first publisher");
    let (_, offer2, _, _) = client("127.0.0.1:4001", now, &publisher_lines());
    assert_eq!(
        sfu.join("r", Role::Publisher, &offer2, now).err(),
        Some(SfuError::Room(RoomError::TooManyPublishers(1)))
    );
    let (_, sub_offer, _, _) = client("127.0.0.1:4002", now, &subscriber_lines());
    assert_eq!(
        sfu.join("r", Role::Subscriber { publisher: 77 }, &sub_offer, now)
            .err(),
        Some(SfuError::Room(RoomError::NoSuchPublisher(77)))
    );
    assert_eq!(
        sfu.join("nope", Role::Publisher, &offer2, now).err(),
        Some(SfuError::Room(RoomError::NoSuchRoom))
    );
    let sessions = sfu.sessions("r").expect("room");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, first);
    assert_eq!(sessions[0].tracks, vec!["audio", "video"]);
}

#[test]
fn an_offer_without_the_right_direction_is_refused() {
    let now = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let (_, recv_only, _, _) = client("127.0.0.1:4000", now, &subscriber_lines());
    let err = sfu.join("r", Role::Publisher, &recv_only, now).err();
    assert!(
        matches!(err, Some(SfuError::BadOffer(ref why)) if why.contains("sendonly")),
        "{err:?}"
    );
    assert!(sfu.sessions("r").expect("room").is_empty());
}

#[test]
fn garbage_datagrams_are_dropped_and_counted() {
    let now = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let from: SocketAddr = "127.0.0.1:5000".parse().expect("address");
    sfu.receive(now, from, sfu_addr(), b"");
    sfu.receive(now, from, sfu_addr(), &[0xff; 40]);
    sfu.receive(now, from, sfu_addr(), &[0x80; 40]);
    let stats = sfu.stats();
    assert_eq!(stats.received, 3);
    assert_eq!(stats.dropped, 3);
    assert!(sfu.transmit().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_offer_text_is_answered_or_refused_without_panic(text in ".{0,400}") {
        let mut sfu = sfu_with_room(RoomLimits::default());
        let _ = sfu.join("r", Role::Publisher, &text, Instant::now());
    }

    #[test]
    fn any_datagram_is_handled_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let now = Instant::now();
        let mut sfu = sfu_with_room(RoomLimits::default());
        let (_, offer, _, _) = client("127.0.0.1:4000", now, &publisher_lines());
        sfu.join("r", Role::Publisher, &offer, now).expect("publisher");
        let from: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        sfu.receive(now, from, sfu_addr(), &bytes);
        sfu.tick(now + Duration::from_millis(10));
    }
}

/// A client endpoint in the simulation.
struct Endpoint {
    rtc: Rtc,
    addr: SocketAddr,
    connected: bool,
    frames: Vec<(Mid, usize, bool)>,
}

impl Endpoint {
    fn new(addr: &str, rtc: Rtc) -> Self {
        Self {
            rtc,
            addr: addr.parse().expect("address"),
            connected: false,
            frames: Vec::new(),
        }
    }

    /// Polls until it waits; datagrams go to the SFU.
    fn pump(&mut self, sfu: &mut Sfu, now: Instant) {
        loop {
            match self.rtc.poll_output().expect("client output") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => sfu.receive(now, self.addr, t.destination, &t.contents),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => {
                    let key = d.is_keyframe();
                    self.frames.push((d.mid, d.data.len(), key))
                }
                Output::Event(_) => {}
            }
        }
    }

    fn deliver(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.addr,
                contents: bytes.try_into().expect("datagram"),
            },
        );
        self.rtc.handle_input(input).expect("client input");
    }
}

/// Runs the SFU and the endpoints for `steps` of 5 ms each; `each`
/// is called at every step with the time and the endpoints.
fn simulate(
    sfu: &mut Sfu,
    endpoints: &mut [Endpoint],
    start: Instant,
    steps: u32,
    mut each: impl FnMut(Instant, &mut [Endpoint]),
) -> Instant {
    let mut now = start;
    for _ in 0..steps {
        now += Duration::from_millis(5);
        each(now, endpoints);
        for e in endpoints.iter_mut() {
            e.rtc
                .handle_input(Input::Timeout(now))
                .expect("client timeout");
            e.pump(sfu, now);
        }
        sfu.tick(now);
        while let Some(d) = sfu.transmit() {
            if let Some(e) = endpoints.iter_mut().find(|e| e.addr == d.destination) {
                e.deliver(now, sfu_addr(), &d.contents);
                e.pump(sfu, now);
            }
        }
    }
    now
}

fn answer(rtc: &mut Rtc, pending: SdpPendingOffer, sdp: &str) {
    let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");
}

/// A VP8 keyframe-looking payload (bit 0 of the first byte clear) or a
/// delta frame, `len` bytes.
fn vp8_frame(len: usize, key: bool) -> Vec<u8> {
    let mut frame = vec![0x55u8; len];
    frame[0] = if key { 0x10 } else { 0x11 };
    frame
}

#[test]
fn a_publishers_frames_reach_its_subscriber_and_stop_when_it_leaves() {
    let t0 = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let (mut p_rtc, p_offer, p_pending, p_mids) = client("127.0.0.1:4000", t0, &publisher_lines());
    let (pid, p_answer) = sfu
        .join("r", Role::Publisher, &p_offer, t0)
        .expect("publisher");
    answer(&mut p_rtc, p_pending, &p_answer);
    let (mut s_rtc, s_offer, s_pending, _) = client("127.0.0.1:4001", t0, &subscriber_lines());
    let (sid, s_answer) = sfu
        .join("r", Role::Subscriber { publisher: pid }, &s_offer, t0)
        .expect("subscriber");
    answer(&mut s_rtc, s_pending, &s_answer);
    let mut endpoints = [
        Endpoint::new("127.0.0.1:4000", p_rtc),
        Endpoint::new("127.0.0.1:4001", s_rtc),
    ];
    let video = p_mids[1];
    let now = simulate(&mut sfu, &mut endpoints, t0, 400, |_, _| {});
    assert!(endpoints[0].connected, "publisher connected");
    assert!(endpoints[1].connected, "subscriber connected");
    assert!(
        sfu.stats().keyframe_requests >= 1,
        "a keyframe was asked for the new subscriber"
    );
    // 60 frames at 30 per second, the first a keyframe.
    let mut sent = 0u32;
    let now = simulate(&mut sfu, &mut endpoints, now, 600, |now, eps| {
        if sent >= 60 {
            return;
        }
        let Some(writer) = eps[0].rtc.writer(video) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
            .map(|p| p.pt())
        else {
            return;
        };
        if now.duration_since(t0).as_millis() % 35 != 0 {
            return;
        }
        let time = str0m::media::MediaTime::from_90khz(u64::from(sent) * 3000);
        writer
            .write(pt, now, time, vp8_frame(1200, sent == 0))
            .expect("write");
        sent += 1;
    });
    assert_eq!(sent, 60, "the publisher wrote its frames");
    let got = &endpoints[1].frames;
    assert!(
        got.len() >= 55,
        "the subscriber got {} of 60 frames",
        got.len()
    );
    assert!(got.iter().all(|(_, len, _)| *len == 1200), "frame sizes");
    assert!(got[0].2, "the first frame forwarded is a keyframe");
    assert!(sfu.stats().forwarded_frames >= 55);
    sfu.leave("r", pid).expect("leave");
    assert!(
        sfu.sessions("r").expect("room").is_empty(),
        "{sid} left too"
    );
    simulate(&mut sfu, &mut endpoints, now, 10, |_, _| {});
    assert!(sfu.next_timeout().is_none(), "no session is left");
}

#[test]
fn a_silent_peer_is_dropped_with_its_subscriptions_and_reported() {
    let t0 = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let (_, offer, _, _) = client("127.0.0.1:4000", t0, &publisher_lines());
    let (pid, _) = sfu
        .join("r", Role::Publisher, &offer, t0)
        .expect("publisher");
    let (_, sub, _, _) = client("127.0.0.1:4001", t0, &subscriber_lines());
    let (sid, _) = sfu
        .join("r", Role::Subscriber { publisher: pid }, &sub, t0)
        .expect("subscriber");
    sfu.tick(t0 + Duration::from_secs(5));
    assert_eq!(sfu.sessions("r").expect("room").len(), 2, "not yet");
    sfu.tick(t0 + IDLE + Duration::from_secs(1));
    assert!(sfu.sessions("r").expect("room").is_empty());
    assert!(sfu.stats().timed_out >= 1);
    let (events, _) = sfu.events("r", 0).expect("events");
    let left: Vec<SessionId> = events
        .iter()
        .filter_map(|(_, e)| match e {
            crate::events::RoomEvent::Left { session } => Some(*session),
            _ => None,
        })
        .collect();
    assert!(left.contains(&pid) && left.contains(&sid), "{events:?}");
}

#[test]
fn recording_a_room_writes_a_file_per_publisher_and_finishes_it() {
    let t0 = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    assert_eq!(
        sfu.start_recording("r", t0, 1).err(),
        Some(SfuError::NotRecording),
        "no folder, no recording"
    );
    let mut sfu = sfu.with_recordings("/rec".into());
    let (_, offer, _, _) = client("127.0.0.1:4000", t0, &publisher_lines());
    let (pid, _) = sfu
        .join("r", Role::Publisher, &offer, t0)
        .expect("publisher");
    let files = sfu.start_recording("r", t0, 100).expect("recording");
    assert_eq!(files, vec![format!("r/{pid}-100.webm")]);
    assert!(sfu.is_recording("r"));
    assert!(matches!(sfu.file_op(), Some(FileOp::Create { .. })));
    sfu.close_room("r").expect("close");
    assert!(
        matches!(sfu.file_op(), Some(FileOp::Finish { .. })),
        "closing the room finishes its files"
    );
    assert!(!sfu.is_recording("r"));
}
