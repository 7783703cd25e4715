//! The simulation the SFU's media tests run in: str0m clients in memory
//! (their codecs, m-lines and simulcast rids chosen per test), a 5 ms
//! simulated clock carrying datagrams between them and the SFU, test
//! publishers that answer keyframe requests, and the recordings the SFU
//! writes assembled back into files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::recording::FileOp;
use crate::room::{Role, RoomLimits, SessionId};
use crate::sfu::Sfu;

const SFU: &str = "127.0.0.1:30000";
const PUBLISHER: &str = "127.0.0.1:4000";
const SUBSCRIBER: &str = "127.0.0.1:4001";
/// A test publisher sends a frame on each of its sources this often.
const FRAME_EVERY: Duration = Duration::from_millis(35);

pub fn sfu_addr() -> SocketAddr {
    SFU.parse().expect("address")
}

pub fn sfu_with_room(limits: RoomLimits) -> Sfu {
    let mut sfu = Sfu::new(0, sfu_addr());
    sfu.create_room("r", "Room", "invite".into(), limits)
        .expect("room");
    sfu
}

/// What a test client offers: its codecs (a str0m config), its m-lines,
/// and the simulcast rids its sending video lines declare.
pub struct Offer {
    pub config: RtcConfig,
    pub lines: Vec<(MediaKind, Direction)>,
    pub rids: &'static [&'static str],
}

impl Offer {
    /// str0m's default codecs (Opus, VP8, VP9, H.264 …), no simulcast.
    pub fn new(lines: &[(MediaKind, Direction)]) -> Self {
        Self {
            config: Rtc::builder(),
            lines: lines.to_vec(),
            rids: &[],
        }
    }

    /// Only H.264 video and Opus audio.
    pub fn h264(lines: &[(MediaKind, Direction)]) -> Self {
        Self {
            config: Rtc::builder()
                .clear_codecs()
                .enable_h264(true)
                .enable_opus(true, false),
            ..Self::new(lines)
        }
    }

    /// Sending video lines declare simulcast layers `rids`.
    pub fn simulcast(lines: &[(MediaKind, Direction)], rids: &'static [&'static str]) -> Self {
        Self {
            rids,
            ..Self::new(lines)
        }
    }
}

/// A str0m endpoint on `addr` making `offer`: the endpoint, the offer's
/// SDP, what accepts the answer, and the m-lines' mids.
pub fn client(addr: &str, now: Instant, offer: Offer) -> (Rtc, String, SdpPendingOffer, Vec<Mid>) {
    let mut rtc = offer.config.build(now);
    let addr: SocketAddr = addr.parse().expect("address");
    rtc.add_local_candidate(Candidate::host(addr, Protocol::Udp).expect("candidate"));
    let mut change = rtc.sdp_api();
    let mids = offer
        .lines
        .iter()
        .map(|&(kind, dir)| {
            let simulcast = (kind == MediaKind::Video
                && dir.is_sending()
                && !offer.rids.is_empty())
            .then(|| {
                let mut simulcast = Simulcast::new();
                for rid in offer.rids {
                    simulcast.add_send_layer(SimulcastLayer::new(rid));
                }
                simulcast
            });
            change.add_media(kind, dir, None, None, simulcast)
        })
        .collect();
    let (sdp, pending) = change.apply().expect("an offer");
    (rtc, sdp.to_sdp_string(), pending, mids)
}

pub fn publisher_lines() -> Vec<(MediaKind, Direction)> {
    vec![
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Video, Direction::SendOnly),
    ]
}

pub fn subscriber_lines() -> Vec<(MediaKind, Direction)> {
    vec![
        (MediaKind::Audio, Direction::RecvOnly),
        (MediaKind::Video, Direction::RecvOnly),
    ]
}

/// A frame a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub mid: Mid,
    pub codec: Codec,
    pub len: usize,
    pub key: bool,
    pub time: MediaTime,
}

/// A client endpoint in the simulation.
pub struct Endpoint {
    pub rtc: Rtc,
    addr: SocketAddr,
    pub connected: bool,
    pub frames: Vec<Frame>,
    /// Keyframe requests not answered yet (track, simulcast layer).
    keyframe_requests: Vec<(Mid, Option<Rid>)>,
}

impl Endpoint {
    pub fn new(addr: &str, rtc: Rtc) -> Self {
        Self {
            rtc,
            addr: addr.parse().expect("address"),
            connected: false,
            frames: Vec::new(),
            keyframe_requests: Vec::new(),
        }
    }

    /// Polls until it waits; datagrams go to the SFU.
    fn pump(&mut self, sfu: &mut Sfu, now: Instant) {
        loop {
            match self.rtc.poll_output().expect("client output") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => sfu.receive(now, self.addr, t.destination, &t.contents),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => self.frames.push(Frame {
                    mid: d.mid,
                    codec: d.params.spec().codec,
                    len: d.data.len(),
                    key: d.is_keyframe(),
                    time: d.time,
                }),
                Output::Event(Event::KeyframeRequest(r)) => {
                    self.keyframe_requests.push((r.mid, r.rid))
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

    /// Whether a keyframe was asked for on `mid`'s layer `rid`
    /// (forgetting the request).
    fn take_keyframe_request(&mut self, mid: Mid, rid: Option<Rid>) -> bool {
        let before = self.keyframe_requests.len();
        self.keyframe_requests.retain(|r| *r != (mid, rid));
        self.keyframe_requests.len() != before
    }

    /// The frames received on `mid`.
    pub fn frames_on(&self, mid: Mid) -> Vec<&Frame> {
        self.frames.iter().filter(|f| f.mid == mid).collect()
    }
}

/// Runs the SFU and the endpoints for `steps` of 5 ms each; `each`
/// is called at every step with the time and the endpoints.
pub fn simulate(
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

/// A VP8 frame, `len` bytes: a keyframe whose header says 320x180, or a
/// delta frame.
pub fn vp8_frame(len: usize, key: bool) -> Vec<u8> {
    let mut frame = vec![0x55u8; len.max(10)];
    frame[0] = if key { 0x10 } else { 0x11 };
    if key {
        frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        frame[6..8].copy_from_slice(&320u16.to_le_bytes());
        frame[8..10].copy_from_slice(&180u16.to_le_bytes());
    }
    frame
}

/// An H.264 access unit in Annex B, `len` bytes: one IDR slice (a
/// keyframe) or one non-IDR slice.
fn h264_frame(len: usize, key: bool) -> Vec<u8> {
    let mut frame = vec![0x55u8; len.max(5)];
    frame[..5].copy_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
    frame
}

/// A track a test publisher sends: a frame of `len` bytes every
/// [`FRAME_EVERY`], a keyframe first and whenever one is asked for.
pub struct Source {
    pub mid: Mid,
    pub rid: Option<Rid>,
    pub codec: Codec,
    pub len: usize,
    pub sent: u32,
}

impl Source {
    pub fn new(mid: Mid, codec: Codec, len: usize) -> Self {
        Self {
            mid,
            rid: None,
            codec,
            len,
            sent: 0,
        }
    }

    /// The same on simulcast layer `rid`.
    pub fn layer(mid: Mid, rid: &str, len: usize) -> Self {
        Self {
            rid: Some(rid.into()),
            ..Self::new(mid, Codec::Vp8, len)
        }
    }

    /// Writes its next frame from `publisher` at `now`.
    fn send(&mut self, publisher: &mut Endpoint, now: Instant) {
        let key = self.sent == 0 || publisher.take_keyframe_request(self.mid, self.rid);
        let (data, rate) = match self.codec {
            Codec::Vp8 => (vp8_frame(self.len, key), Frequency::NINETY_KHZ),
            Codec::H264 => (h264_frame(self.len, key), Frequency::NINETY_KHZ),
            _ => (vec![0xfc; self.len], Frequency::FORTY_EIGHT_KHZ),
        };
        let ticks = FRAME_EVERY.as_micros() as u64 * u64::from(rate.get()) / 1_000_000;
        let time = MediaTime::new(u64::from(self.sent) * ticks, rate);
        let codec = self.codec;
        let mut writer = publisher.rtc.writer(self.mid).expect("a writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("the codec was negotiated");
        if let Some(rid) = self.rid {
            writer = writer.rid(rid);
        }
        writer.write(pt, now, time, data).expect("write");
        self.sent += 1;
    }
}

/// A publisher and one subscriber to it in room `r`, both connected.
pub struct Call {
    pub sfu: Sfu,
    /// The publisher, then the subscriber.
    pub endpoints: [Endpoint; 2],
    pub publisher: SessionId,
    pub subscriber: SessionId,
    pub publisher_mids: Vec<Mid>,
    pub subscriber_mids: Vec<Mid>,
    pub now: Instant,
}

impl Call {
    /// Joins `publisher` then `subscriber` to `sfu`'s room `r` and runs
    /// two simulated seconds for them to connect.
    pub fn connect(mut sfu: Sfu, publisher: Offer, subscriber: Offer) -> Self {
        let t0 = Instant::now();
        let (mut p_rtc, p_offer, p_pending, publisher_mids) = client(PUBLISHER, t0, publisher);
        let (pid, p_answer) = sfu
            .join("r", Role::Publisher, &p_offer, t0)
            .expect("publisher");
        answer(&mut p_rtc, p_pending, &p_answer);
        let (mut s_rtc, s_offer, s_pending, subscriber_mids) = client(SUBSCRIBER, t0, subscriber);
        let (sid, s_answer) = sfu
            .join("r", Role::Subscriber { publisher: pid }, &s_offer, t0)
            .expect("subscriber");
        answer(&mut s_rtc, s_pending, &s_answer);
        let mut endpoints = [
            Endpoint::new(PUBLISHER, p_rtc),
            Endpoint::new(SUBSCRIBER, s_rtc),
        ];
        let now = simulate(&mut sfu, &mut endpoints, t0, 400, |_, _| {});
        assert!(endpoints[0].connected, "publisher connected");
        assert!(endpoints[1].connected, "subscriber connected");
        Self {
            sfu,
            endpoints,
            publisher: pid,
            subscriber: sid,
            publisher_mids,
            subscriber_mids,
            now,
        }
    }

    /// The publisher sends `frames` frames on each of `sources`, then the
    /// call runs half a second more for the last ones to arrive.
    pub fn stream(&mut self, sources: &mut [Source], frames: u32) {
        let every = (FRAME_EVERY.as_millis() / 5) as u32;
        let mut step = 0u32;
        self.now = simulate(
            &mut self.sfu,
            &mut self.endpoints,
            self.now,
            frames * every + 100,
            |now, eps| {
                if step.is_multiple_of(every) && step / every < frames {
                    for source in sources.iter_mut() {
                        source.send(&mut eps[0], now);
                    }
                }
                step += 1;
            },
        );
    }

    /// The subscriber tells the SFU (REMB on its track `mid`) that it
    /// can take `bps`.
    pub fn subscriber_estimate(&mut self, mid: Mid, bps: u64) {
        self.endpoints[1]
            .rtc
            .direct_api()
            .stream_rx_by_mid(mid, None)
            .expect("the subscriber receives on that track")
            .request_remb(str0m::bwe::Bitrate::bps(bps));
    }
}

/// The recordings the SFU finished, assembled from its file operations,
/// by file number.
pub fn finished_recordings(sfu: &mut Sfu) -> HashMap<u64, Vec<u8>> {
    let mut open: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut done = HashMap::new();
    while let Some(op) = sfu.file_op() {
        match op {
            FileOp::Create { file, .. } => {
                open.insert(file, Vec::new());
            }
            FileOp::Append { file, bytes } => open.entry(file).or_default().extend(bytes),
            FileOp::Finish {
                file,
                tail,
                patches,
            } => {
                let mut bytes = open.remove(&file).expect("a created file");
                bytes.extend(tail);
                for patch in patches {
                    let at = patch.offset as usize;
                    bytes[at..at + patch.bytes.len()].copy_from_slice(&patch.bytes);
                }
                done.insert(file, bytes);
            }
        }
    }
    done
}

/// The codec names ffprobe (Debian's ffmpeg) reads in a WebM file, one
/// per stream; `None` where ffprobe is not installed (never under CI).
pub fn probe_codecs(webm: &[u8]) -> Option<Vec<String>> {
    if std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffprobe (Debian ffmpeg) is missing under CI"
        );
        eprintln!("ffprobe skipped: not installed here");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.webm");
    std::fs::write(&path, webm).expect("write");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe fails on the recording: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}
