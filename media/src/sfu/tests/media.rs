//! Media through the SFU end to end, str0m clients in memory: simulcast
//! layers chosen by the subscriber's bandwidth estimate (REMB, the same
//! event path a browser's estimate takes), H.264, a camera plus a screen
//! share, and what of them a WebM recording keeps.

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};

use super::harness::*;
use crate::room::RoomLimits;

const LOW: usize = 300;
const HIGH: usize = 3000;
/// A frame's duration at 90 kHz (the test publisher's 35 ms).
const FRAME_TICKS: u64 = 3150;

/// The first frame of each run of frames of one size (one layer).
fn runs<'a>(frames: &[&'a Frame]) -> Vec<(usize, &'a Frame)> {
    frames
        .iter()
        .enumerate()
        .filter(|(i, f)| *i == 0 || frames[i - 1].len != f.len)
        .map(|(i, f)| (i, *f))
        .collect()
}

#[test]
fn a_subscriber_gets_one_simulcast_layer_picked_by_its_estimate_switching_on_keyframes() {
    let mut call = Call::connect(
        sfu_with_room(RoomLimits::default()),
        Offer::simulcast(&[(MediaKind::Video, Direction::SendOnly)], &["l", "h"]),
        Offer::new(&[(MediaKind::Video, Direction::RecvOnly)]),
    );
    let (video, received_on) = (call.publisher_mids[0], call.subscriber_mids[0]);
    let mut layers = [
        Source::layer(video, "l", LOW),
        Source::layer(video, "h", HIGH),
    ];
    // No estimate yet: the best layer.
    call.stream(&mut layers, 60);
    let high_until = call.endpoints[1].frames.len();
    // Room for the low layer only (it measures about 70 kbps, the high
    // one about ten times that).
    call.subscriber_estimate(received_on, 200_000);
    call.stream(&mut layers, 60);
    let low_until = call.endpoints[1].frames.len();
    call.subscriber_estimate(received_on, 5_000_000);
    call.stream(&mut layers, 60);

    let sub = call.sfu.peers.get(&call.subscriber).expect("subscriber");
    assert_eq!(
        sub.estimate_bps,
        Some(5_000_000),
        "the REMB reached the SFU"
    );
    let frames = call.endpoints[1].frames_on(received_on);
    assert_eq!(frames.len(), call.endpoints[1].frames.len());
    assert!(frames.len() >= 150, "{} frames", frames.len());
    // One layer at a time: the timeline only goes forward, and the one
    // instant sent twice is where a switch's keyframe follows the old
    // layer's frame of that instant (one tick after it).
    for pair in frames.windows(2) {
        let gap = pair[1].time.numer().checked_sub(pair[0].time.numer());
        assert!(gap.is_some_and(|g| g > 0), "time went back: {pair:?}");
        if gap < Some(FRAME_TICKS / 2) {
            assert!(pair[1].key && pair[1].len != pair[0].len, "{pair:?}");
        }
    }
    assert!(frames.iter().all(|f| f.len == LOW || f.len == HIGH));
    let runs = runs(&frames);
    assert!(
        runs.iter().all(|(_, f)| f.key),
        "every layer starts on its keyframe: {runs:?}"
    );
    assert_eq!(frames[high_until - 1].len, HIGH, "no estimate: high");
    assert_eq!(frames[low_until - 1].len, LOW, "low estimate: low");
    assert_eq!(frames[frames.len() - 1].len, HIGH, "high estimate: high");
    let switches: Vec<usize> = runs
        .iter()
        .filter(|(i, _)| *i >= high_until)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(switches.len(), 2, "down once, up once: {runs:?}");
    assert!(switches[0] < low_until && switches[1] >= low_until);
}

#[test]
fn h264_is_forwarded_and_left_out_of_the_webm_recording() {
    let sfu = sfu_with_room(RoomLimits::default()).with_recordings("/rec".into());
    let mut call = Call::connect(
        sfu,
        Offer::h264(&publisher_lines()),
        Offer::h264(&subscriber_lines()),
    );
    let now = call.now;
    let files = call.sfu.start_recording("r", now, 1).expect("recording");
    assert_eq!(files.len(), 1, "audio alone is worth a file");
    let mids = call.publisher_mids.clone();
    let mut sources = [
        Source::new(mids[0], Codec::Opus, 80),
        Source::new(mids[1], Codec::H264, 2500),
    ];
    call.stream(&mut sources, 60);

    let sub = &call.endpoints[1];
    let audio = sub.frames_on(call.subscriber_mids[0]);
    let video = sub.frames_on(call.subscriber_mids[1]);
    assert!(
        audio.len() >= 55 && video.len() >= 55,
        "{audio:?} {video:?}"
    );
    assert!(audio.iter().all(|f| f.codec == Codec::Opus));
    assert!(video
        .iter()
        .all(|f| f.codec == Codec::H264 && f.len == 2500));
    assert!(video[0].key, "the first H.264 frame is an IDR");

    call.sfu.stop_recording("r").expect("stop");
    let files = finished_recordings(&mut call.sfu);
    let file = files.values().next().expect("a finished recording");
    let has = |what: &[u8]| file.windows(what.len()).any(|w| w == what);
    assert!(has(b"A_OPUS") && !has(b"V_VP8"), "audio only");
    assert!(file.len() > 55 * 80, "the audio frames are in it");
    if let Some(codecs) = probe_codecs(file) {
        assert_eq!(codecs, ["opus"]);
    }
}

#[test]
fn a_camera_and_a_screen_share_are_forwarded_as_two_tracks_and_vp8_is_recorded() {
    let sfu = sfu_with_room(RoomLimits::default()).with_recordings("/rec".into());
    let mut publisher = publisher_lines();
    publisher.push((MediaKind::Video, Direction::SendOnly));
    let mut subscriber = subscriber_lines();
    subscriber.push((MediaKind::Video, Direction::RecvOnly));
    let mut call = Call::connect(sfu, Offer::new(&publisher), Offer::new(&subscriber));
    let now = call.now;
    call.sfu.start_recording("r", now, 1).expect("recording");
    let mids = call.publisher_mids.clone();
    // The camera in VP8, the screen in H.264 (both negotiated on both).
    let mut sources = [
        Source::new(mids[0], Codec::Opus, 80),
        Source::new(mids[1], Codec::Vp8, 1500),
        Source::new(mids[2], Codec::H264, 4000),
    ];
    call.stream(&mut sources, 60);

    let tracks = &call.sfu.sessions("r").expect("room")[0].tracks;
    assert_eq!(tracks, &["audio", "video", "video"]);
    let sub = &call.endpoints[1];
    let camera = sub.frames_on(call.subscriber_mids[1]);
    let screen = sub.frames_on(call.subscriber_mids[2]);
    assert!(camera.len() >= 55 && screen.len() >= 55);
    assert!(camera
        .iter()
        .all(|f| f.codec == Codec::Vp8 && f.len == 1500));
    assert!(screen
        .iter()
        .all(|f| f.codec == Codec::H264 && f.len == 4000));
    assert!(camera[0].key && screen[0].key);

    call.sfu.stop_recording("r").expect("stop");
    let files = finished_recordings(&mut call.sfu);
    let file = files.values().next().expect("a finished recording");
    let has = |what: &[u8]| file.windows(what.len()).any(|w| w == what);
    assert!(has(b"V_VP8") && has(b"A_OPUS"));
    assert!(file.len() > 55 * 1500, "the camera's frames are in it");
    if let Some(codecs) = probe_codecs(file) {
        assert_eq!(codecs, ["vp8", "opus"]);
    }
}

#[test]
fn a_publisher_with_nothing_webm_holds_gets_no_file() {
    let t0 = std::time::Instant::now();
    let mut sfu = sfu_with_room(RoomLimits::default()).with_recordings("/rec".into());
    let video_only = [(MediaKind::Video, Direction::SendOnly)];
    let (_, offer, _, _) = client("127.0.0.1:4000", t0, Offer::h264(&video_only));
    sfu.join("r", crate::room::Role::Publisher, &offer, t0)
        .expect("an H.264 publisher is accepted");
    let files = sfu.start_recording("r", t0, 1).expect("recording");
    assert!(files.is_empty(), "{files:?}");
    assert!(sfu.is_recording("r"));
    assert_eq!(sfu.file_op(), None, "no empty file is created");
}
