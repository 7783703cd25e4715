//! The SFU against str0m peers in memory: offers answered and refused,
//! limits, bad datagrams, and media from a publisher reaching a
//! subscriber through ICE, DTLS and SRTP with a simulated clock.

mod harness;
mod media;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};

use self::harness::*;
use super::*;

/// The SDP offer of a str0m client on `addr` with `lines` and the
/// default codecs (for tests that never connect it).
fn offer_sdp(addr: &str, now: Instant, lines: &[(MediaKind, Direction)]) -> String {
    client(addr, now, Offer::new(lines)).1
}

#[test]
fn limits_and_missing_publishers_are_refused_before_any_state() {
    let now = Instant::now();
    let limits = RoomLimits {
        max_publishers: 1,
        ..RoomLimits::default()
    };
    let mut sfu = sfu_with_room(limits);
    let offer = offer_sdp("127.0.0.1:4000", now, &publisher_lines());
    let (first, _) = sfu
        .join("r", Role::Publisher, &offer, now)
        .expect("first publisher");
    let offer2 = offer_sdp("127.0.0.1:4001", now, &publisher_lines());
    assert_eq!(
        sfu.join("r", Role::Publisher, &offer2, now).err(),
        Some(SfuError::Room(RoomError::TooManyPublishers(1)))
    );
    let sub_offer = offer_sdp("127.0.0.1:4002", now, &subscriber_lines());
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
    let recv_only = offer_sdp("127.0.0.1:4000", now, &subscriber_lines());
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
        let offer = offer_sdp("127.0.0.1:4000", now, &publisher_lines());
        sfu.join("r", Role::Publisher, &offer, now).expect("publisher");
        let from: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        sfu.receive(now, from, sfu_addr(), &bytes);
        sfu.tick(now + Duration::from_millis(10));
    }
}

#[test]
fn a_publishers_frames_reach_its_subscriber_and_stop_when_it_leaves() {
    let sfu = sfu_with_room(RoomLimits::default());
    let mut call = Call::connect(
        sfu,
        Offer::new(&publisher_lines()),
        Offer::new(&subscriber_lines()),
    );
    assert!(
        call.sfu.stats().keyframe_requests >= 1,
        "a keyframe was asked for the new subscriber"
    );
    // 60 frames at about 30 per second, the first a keyframe.
    let mut video = [Source::new(call.publisher_mids[1], Codec::Vp8, 1200)];
    call.stream(&mut video, 60);
    assert_eq!(video[0].sent, 60, "the publisher wrote its frames");
    let got = &call.endpoints[1].frames;
    assert!(
        got.len() >= 55,
        "the subscriber got {} of 60 frames",
        got.len()
    );
    assert!(got.iter().all(|f| f.len == 1200), "frame sizes");
    assert!(got[0].key, "the first frame forwarded is a keyframe");
    assert!(call.sfu.stats().forwarded_frames >= 55);
    let sfu = &mut call.sfu;
    sfu.leave("r", call.publisher).expect("leave");
    assert!(
        sfu.sessions("r").expect("room").is_empty(),
        "{} left too",
        call.subscriber
    );
    simulate(sfu, &mut call.endpoints, call.now, 10, |_, _| {});
    assert!(sfu.next_timeout().is_none(), "no session is left");
}

#[test]
fn a_silent_peer_is_dropped_with_its_subscriptions_and_reported() {
    let t0 = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let offer = offer_sdp("127.0.0.1:4000", t0, &publisher_lines());
    let (pid, _) = sfu
        .join("r", Role::Publisher, &offer, t0)
        .expect("publisher");
    let sub = offer_sdp("127.0.0.1:4001", t0, &subscriber_lines());
    let (sid, _) = sfu
        .join("r", Role::Subscriber { publisher: pid }, &sub, t0)
        .expect("subscriber");
    sfu.tick(t0 + Duration::from_secs(5));
    assert_eq!(sfu.sessions("r").expect("room").len(), 2, "not yet");
    sfu.tick(t0 + IDLE + Duration::from_secs(1));
    assert!(sfu.sessions("r").expect("room").is_empty());
    assert!(sfu.subscribers.is_empty(), "no subscriber list is left");
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
    let offer = offer_sdp("127.0.0.1:4000", t0, &publisher_lines());
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

/// A publisher and `n` subscribers to it joined in room `r` (no media).
fn publisher_with_subscribers(sfu: &mut Sfu, now: Instant, n: u16) -> (SessionId, Vec<SessionId>) {
    let offer = offer_sdp("127.0.0.1:4000", now, &publisher_lines());
    let (pid, _) = sfu
        .join("r", Role::Publisher, &offer, now)
        .expect("publisher");
    let subs = (1..=n)
        .map(|i| {
            let offer = offer_sdp(&format!("127.0.0.1:{}", 4000 + i), now, &subscriber_lines());
            sfu.join("r", Role::Subscriber { publisher: pid }, &offer, now)
                .expect("subscriber")
                .0
        })
        .collect();
    (pid, subs)
}

#[test]
fn each_publisher_keeps_the_list_of_its_subscribers() {
    let t0 = Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default());
    let (pid, subs) = publisher_with_subscribers(&mut sfu, t0, 3);
    assert_eq!(sfu.subscribers.get(&pid), Some(&subs), "in join order");
    sfu.leave("r", subs[0]).expect("leave");
    assert_eq!(sfu.subscribers.get(&pid), Some(&subs[1..].to_vec()));
    // Only the second subscriber falls silent.
    let later = t0 + IDLE + Duration::from_secs(1);
    for id in [pid, subs[2]] {
        sfu.peers.get_mut(&id).expect("session").last_heard = later;
    }
    sfu.tick(later);
    assert_eq!(sfu.subscribers.get(&pid), Some(&vec![subs[2]]), "dropped");
    sfu.leave("r", pid).expect("leave");
    assert!(
        sfu.subscribers.is_empty(),
        "the publisher's list went with it"
    );
    assert_eq!(sfu.session_count(), 0);

    let (pid, _) = publisher_with_subscribers(&mut sfu, later, 2);
    assert_eq!(sfu.subscribers.get(&pid).map(Vec::len), Some(2));
    sfu.close_room("r").expect("close");
    assert!(
        sfu.subscribers.is_empty(),
        "closing the room empties the index"
    );
}
