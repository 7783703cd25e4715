//! One shard's selective forwarding unit: the peer connections (str0m
//! [`Rtc`]s) of the rooms this shard owns, fed datagrams and time by the
//! caller and drained for datagrams to send — no socket, no clock, so the
//! same code runs under the shard's UDP loop ([`crate::driver`]) and in
//! unit tests.
//!
//! Signalling is WHIP/WHEP-like: a publisher's offer carries its tracks
//! (sendonly or sendrecv); a subscriber's offer has receive-only
//! transceivers, bound in order, kind by kind, to one publisher's tracks.
//! Media is forwarded frame by frame (str0m's frame mode), so str0m
//! answers NACKs from its send buffer, repacketizes for each subscriber,
//! and a recording gets whole frames. Keyframes: a subscriber's PLI/FIR is
//! relayed to its publisher, a new subscriber gets one asked for as soon
//! as it connects, and a gap in a publisher's stream asks for one too.
//!
//! How a frame is forwarded (`Sfu::forward`): a publisher's frame
//! (`Event::MediaData`) updates its layer's bitrate meter, feeds the
//! recording and the active-speaker detection, then goes to the
//! publisher's subscribers only, from the per-publisher list kept as
//! sessions join and end (never a scan of the shard's sessions). For each
//! connected subscriber, the track bound to the frame's source track
//! takes it; with simulcast, [`layers::choose`] picks the layer from that
//! subscriber's bandwidth estimate (TWCC or REMB), frames of other layers
//! are skipped, and a switch waits for the new layer's keyframe (asked
//! for) — that keyframe is sent just after the old layer's last frame if
//! it is of the same instant. The frame is written with the subscriber's
//! payload type for the same codec (VP8, H.264, Opus …), so each
//! subscriber negotiates its own; a publisher's several video tracks
//! (camera, screen share) are bound to the subscriber's video tracks in
//! offer order. A recording (WebM) keeps the first VP8 video track and the
//! first Opus audio track, and leaves the others out.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::events::{EventLog, RoomEvent, Speakers};
use crate::layers::{self, Layer, RateMeter};
use crate::recording::{FileOp, Recorders};
use crate::room::{Role, RoomError, RoomId, RoomLimits, Rooms, SessionId};
use crate::webm::Media;

/// A session that is not connected this long after its answer, or hears
/// nothing this long once connected, is dropped.
pub const IDLE: Duration = Duration::from_secs(20);
/// At most one keyframe request per publisher track this often.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// Largest SDP offer accepted.
pub const MAX_OFFER: usize = 64 * 1024;
/// How often publishers are told the room's bitrate cap (REMB).
const CAP_EVERY: Duration = Duration::from_secs(2);
/// A publisher sending more than this many times the cap for
/// [`OVER_CAP_FOR`] is dropped.
const OVER_CAP_FACTOR: u64 = 2;
const OVER_CAP_FOR: Duration = Duration::from_secs(10);
/// Most ICE candidates one trickle request may carry.
const MAX_CANDIDATES: usize = 32;

/// Why an offer or request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuError {
    Room(RoomError),
    /// The SDP offer does not parse or cannot be answered.
    BadOffer(String),
    /// No session by that id in that room.
    NoSuchSession,
    /// This node keeps no recordings.
    NotRecording,
}

impl fmt::Display for SfuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Room(e) => e.fmt(f),
            Self::BadOffer(why) => write!(f, "bad SDP offer: {why}"),
            Self::NoSuchSession => write!(f, "no such session"),
            Self::NotRecording => write!(f, "recording is not available on this node"),
        }
    }
}

impl From<RoomError> for SfuError {
    fn from(e: RoomError) -> Self {
        Self::Room(e)
    }
}

/// A datagram to send from the shard's media socket.
#[derive(Debug)]
pub struct Datagram {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Counters of one shard's SFU.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SfuStats {
    /// Datagrams fed in.
    pub received: u64,
    /// Datagrams that no session accepted, or that were not STUN, DTLS or
    /// RTP at all (dropped).
    pub dropped: u64,
    /// Frames written to subscribers, and their bytes.
    pub forwarded_frames: u64,
    pub forwarded_bytes: u64,
    /// Datagrams handed out to send.
    pub sent: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Sessions dropped for silence or failure.
    pub timed_out: u64,
}

/// A publisher's incoming track.
struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    /// The codecs negotiated for it (what the publisher may send).
    codecs: Vec<Codec>,
    /// Bitrate by simulcast layer (`None`: no simulcast).
    layers: Vec<(Option<Rid>, RateMeter)>,
    last_keyframe_request: Option<Instant>,
}

/// A subscriber's outgoing track, bound to a publisher's track.
struct TrackOut {
    mid: Mid,
    kind: MediaKind,
    /// The publisher's track it carries.
    source: Option<Mid>,
    /// The simulcast layer forwarded now, and the one switched to at its
    /// next keyframe.
    current: Option<Rid>,
    target: Option<Rid>,
    /// The media time of the last frame written.
    last_time: Option<MediaTime>,
}

struct Peer {
    rtc: Rtc,
    room: RoomId,
    role: Role,
    next_timeout: Instant,
    last_heard: Instant,
    connected: bool,
    tracks_in: Vec<TrackIn>,
    tracks_out: Vec<TrackOut>,
    estimate_bps: Option<u64>,
    /// When the publisher was last told the cap, and since when it has
    /// been sending far above it.
    capped: Option<Instant>,
    over_cap_since: Option<Instant>,
}

/// What a session is, for the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub id: SessionId,
    #[serde(flatten)]
    pub role: Role,
    pub connected: bool,
    /// `audio` or `video`, one per track.
    pub tracks: Vec<&'static str>,
}

/// The audio and video m-lines of an SDP: mid, kind and direction.
fn media_lines(sdp: &str) -> Vec<(Mid, MediaKind, Direction)> {
    let mut lines = Vec::new();
    let mut current: Option<(Option<Mid>, Option<MediaKind>, Direction)> = None;
    for line in sdp.lines().chain(std::iter::once("m=end")) {
        if let Some(media) = line.strip_prefix("m=") {
            if let Some((Some(mid), Some(kind), dir)) = current.take() {
                lines.push((mid, kind, dir));
            }
            let kind = match media.split(' ').next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            };
            current = Some((None, kind, Direction::SendRecv));
        } else if let Some((mid, _, dir)) = current.as_mut() {
            if let Some(value) = line.strip_prefix("a=mid:") {
                *mid = Some(Mid::from(value.trim()));
            } else if let Some(attr @ ("a=sendonly" | "a=recvonly" | "a=sendrecv" | "a=inactive")) =
                Some(line.trim())
            {
                *dir = Direction::from(&attr[2..]);
            }
        }
    }
    lines
}

/// The publisher's track of `kind` that its recording takes: the first
/// one negotiated with WebM's codec for that kind (VP8, Opus). Any other
/// track (H.264, a second camera, a screen share) is left out of the
/// file rather than mixed into it.
fn recorded_track(tracks: &[TrackIn], kind: MediaKind) -> Option<Mid> {
    let codec = match kind {
        MediaKind::Video => Codec::Vp8,
        MediaKind::Audio => Codec::Opus,
    };
    tracks
        .iter()
        .find(|t| t.kind == kind && t.codecs.contains(&codec))
        .map(|t| t.mid)
}

/// One shard's SFU.
pub struct Sfu {
    rooms: Rooms,
    peers: HashMap<SessionId, Peer>,
    /// Each publisher's subscribers, in the order they joined: what
    /// [`Sfu::forward`] walks for a frame (kept by [`Sfu::join`] and
    /// [`Sfu::end`], which every way out of the SFU goes through).
    subscribers: HashMap<SessionId, Vec<SessionId>>,
    /// Last session each remote address was delivered to.
    routes: HashMap<SocketAddr, SessionId>,
    candidate: SocketAddr,
    crypto: Arc<CryptoProvider>,
    next_session: SessionId,
    outbox: VecDeque<Datagram>,
    stats: SfuStats,
    /// Rooms being recorded, and the recorders of their publishers.
    recording: BTreeSet<RoomId>,
    recorders: Recorders,
    /// The earliest timer of any session (see [`Sfu::next_timeout`]).
    earliest: Option<Instant>,
    /// Each room's events and active-speaker detection.
    events: HashMap<RoomId, EventLog>,
    speakers: HashMap<RoomId, Speakers>,
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

impl Sfu {
    /// An SFU whose sessions all use the socket at `candidate` (the host
    /// candidate put in every answer); session ids start at `shard << 48`
    /// so that they are unique on the node.
    pub fn new(shard: usize, candidate: SocketAddr) -> Self {
        Self {
            rooms: Rooms::default(),
            peers: HashMap::new(),
            subscribers: HashMap::new(),
            routes: HashMap::new(),
            candidate,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            next_session: ((shard as u64) << 48) + 1,
            outbox: VecDeque::new(),
            stats: SfuStats::default(),
            recording: BTreeSet::new(),
            recorders: Recorders::new(None),
            earliest: None,
            events: HashMap::new(),
            speakers: HashMap::new(),
        }
    }

    fn emit(&mut self, room: &str, event: RoomEvent) {
        if let Some(log) = self.events.get_mut(room) {
            log.push(event);
        }
    }

    /// Room `id`'s events numbered above `after`, and whether some were
    /// dropped before this reader saw them.
    pub fn events(&self, id: &str, after: u64) -> Result<(Vec<(u64, RoomEvent)>, bool), SfuError> {
        self.rooms.get(id)?;
        Ok(self
            .events
            .get(id)
            .map(|log| log.after(after))
            .unwrap_or_default())
    }

    /// Adds trickled ICE candidates (`a=candidate:` lines of an SDP
    /// fragment) to session `session` of room `room`; returns how many.
    pub fn add_candidates(
        &mut self,
        room: &str,
        session: SessionId,
        fragment: &str,
    ) -> Result<usize, SfuError> {
        let peer = match self.peers.get_mut(&session) {
            Some(peer) if peer.room == room => peer,
            _ => return Err(SfuError::NoSuchSession),
        };
        let mut added = 0;
        for line in fragment.lines().map(str::trim) {
            let Some(candidate) = line.strip_prefix("a=") else {
                continue;
            };
            if !candidate.starts_with("candidate:") {
                continue;
            }
            if added == MAX_CANDIDATES {
                return Err(SfuError::BadOffer(format!(
                    "more than {MAX_CANDIDATES} candidates"
                )));
            }
            let parsed = Candidate::from_sdp_string(candidate)
                .map_err(|e| SfuError::BadOffer(format!("candidate: {e}")))?;
            peer.rtc.add_remote_candidate(parsed);
            added += 1;
        }
        Ok(added)
    }

    /// Keeps recordings under `dir`.
    pub fn with_recordings(mut self, dir: std::path::PathBuf) -> Self {
        self.recorders = Recorders::new(Some(dir));
        self
    }

    /// Starts recording room `id`: every publisher now and later gets a
    /// file; returns the new files' names below the recordings folder.
    pub fn start_recording(
        &mut self,
        id: &str,
        now: Instant,
        wall_secs: u64,
    ) -> Result<Vec<String>, SfuError> {
        if !self.recorders.enabled() {
            return Err(SfuError::NotRecording);
        }
        let room = self.rooms.get(id)?;
        let publishers: Vec<SessionId> = room
            .sessions()
            .filter(|(_, role)| *role == Role::Publisher)
            .map(|(sid, _)| sid)
            .collect();
        if self.recording.insert(id.to_string()) {
            self.emit(id, RoomEvent::Recording { on: true });
        }
        Ok(publishers
            .into_iter()
            .filter_map(|sid| self.record(id, sid, now, wall_secs))
            .collect())
    }

    /// Stops recording room `id` and finishes its files.
    pub fn stop_recording(&mut self, id: &str) -> Result<(), SfuError> {
        let room = self.rooms.get(id)?;
        for (sid, _) in room.sessions() {
            self.recorders.stop(sid);
        }
        if self.recording.remove(id) {
            self.emit(id, RoomEvent::Recording { on: false });
        }
        Ok(())
    }

    /// Finishes every recording (at shutdown).
    pub fn finish_recordings(&mut self) {
        self.recording.clear();
        let sessions: Vec<SessionId> = self.peers.keys().copied().collect();
        for sid in sessions {
            self.recorders.stop(sid);
        }
    }

    /// Whether room `id` is being recorded.
    pub fn is_recording(&self, id: &str) -> bool {
        self.recording.contains(id)
    }

    fn record(
        &mut self,
        room: &str,
        publisher: SessionId,
        now: Instant,
        wall_secs: u64,
    ) -> Option<String> {
        let peer = self.peers.get(&publisher)?;
        let video = recorded_track(&peer.tracks_in, MediaKind::Video);
        let audio = recorded_track(&peer.tracks_in, MediaKind::Audio);
        if video.is_none() && audio.is_none() {
            tracing::info!(session = publisher, %room, "media: publisher not recorded: no VP8 or Opus track for WebM");
            return None;
        }
        let tracks = (video.is_some(), audio.is_some());
        let name = self
            .recorders
            .start(room, publisher, tracks, now, wall_secs)?;
        if let Some(mid) = video {
            self.request_keyframe(publisher, mid, None, now, true);
        }
        Some(name)
    }

    /// The next operation on a recording's file.
    pub fn file_op(&mut self) -> Option<FileOp> {
        self.recorders.next_op()
    }

    /// The rooms of this shard.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Opens a room.
    pub fn create_room(
        &mut self,
        id: &str,
        name: &str,
        invite: String,
        limits: RoomLimits,
    ) -> Result<(), SfuError> {
        self.rooms.create(id, name, invite, limits)?;
        self.events.insert(id.to_string(), EventLog::default());
        self.speakers.insert(id.to_string(), Speakers::default());
        Ok(())
    }

    /// Closes a room and ends its sessions.
    pub fn close_room(&mut self, id: &str) -> Result<(), SfuError> {
        self.recording.remove(id);
        self.events.remove(id);
        self.speakers.remove(id);
        for session in self.rooms.close(id)? {
            self.end(session);
        }
        Ok(())
    }

    /// The sessions of room `id`.
    pub fn sessions(&self, id: &str) -> Result<Vec<SessionInfo>, SfuError> {
        let room = self.rooms.get(id)?;
        Ok(room
            .sessions()
            .filter_map(|(sid, role)| {
                let peer = self.peers.get(&sid)?;
                let kinds = peer.tracks_in.iter().map(|t| t.kind);
                let kinds = kinds.chain(peer.tracks_out.iter().map(|t| t.kind));
                Some(SessionInfo {
                    id: sid,
                    role,
                    connected: peer.connected,
                    tracks: kinds.map(kind_name).collect(),
                })
            })
            .collect())
    }

    /// Counters so far.
    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.peers.len()
    }

    /// Answers `offer` for a new session of `role` in room `room`: the
    /// session id and the SDP answer.
    pub fn join(
        &mut self,
        room: &str,
        role: Role,
        offer: &str,
        now: Instant,
    ) -> Result<(SessionId, String), SfuError> {
        self.rooms.admit(room, role)?;
        if offer.len() > MAX_OFFER {
            return Err(SfuError::BadOffer(format!("larger than {MAX_OFFER} bytes")));
        }
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadOffer(e.to_string()))?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(self.crypto.clone())
            .build(now);
        let candidate = Candidate::host(self.candidate, Protocol::Udp)
            .map_err(|e| SfuError::BadOffer(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::BadOffer(e.to_string()))?;
        let answer = answer.to_sdp_string();
        // str0m reports media only once DTLS is up; the answer (ours)
        // already says which m-lines we receive and which we send.
        let lines = media_lines(&answer);
        let tracks_in: Vec<TrackIn> = lines
            .iter()
            .filter(|l| role == Role::Publisher && l.2.is_receiving())
            .map(|&(mid, kind, _)| TrackIn {
                mid,
                kind,
                codecs: rtc
                    .writer(mid)
                    .map(|w| w.payload_params().map(|p| p.spec().codec).collect())
                    .unwrap_or_default(),
                layers: Vec::new(),
                last_keyframe_request: None,
            })
            .collect();
        let tracks_out: Vec<TrackOut> = lines
            .iter()
            .filter(|l| role != Role::Publisher && l.2.is_sending())
            .map(|&(mid, kind, _)| TrackOut {
                mid,
                kind,
                source: None,
                current: None,
                target: None,
                last_time: None,
            })
            .collect();
        if tracks_in.is_empty() && tracks_out.is_empty() {
            let want = match role {
                Role::Publisher => {
                    "no track to receive: a publisher's m-lines must be sendonly or sendrecv"
                }
                Role::Subscriber { .. } => {
                    "no track to send: a subscriber's m-lines must be recvonly or sendrecv"
                }
            };
            return Err(SfuError::BadOffer(want.to_string()));
        }
        let id = self.next_session;
        self.next_session += 1;
        let peer = Peer {
            rtc,
            room: room.to_string(),
            role,
            next_timeout: now,
            last_heard: now,
            connected: false,
            tracks_in,
            tracks_out,
            estimate_bps: None,
            capped: None,
            over_cap_since: None,
        };
        let kinds: Vec<&'static str> = peer.tracks_in.iter().map(|t| kind_name(t.kind)).collect();
        self.peers.insert(id, peer);
        self.drain(id, now);
        self.rooms.join(room, id, role)?;
        self.emit(room, RoomEvent::Joined { session: id, role });
        for kind in kinds {
            self.emit(room, RoomEvent::TrackAdded { session: id, kind });
        }
        match role {
            Role::Subscriber { publisher } => {
                self.subscribers.entry(publisher).or_default().push(id);
                self.bind(id, publisher);
            }
            Role::Publisher if self.recording.contains(room) => {
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.record(room, id, now, wall);
            }
            Role::Publisher => {}
        }
        Ok((id, answer))
    }

    /// Ends session `session` of room `room` (and, for a publisher, its
    /// subscriptions).
    pub fn leave(&mut self, room: &str, session: SessionId) -> Result<(), SfuError> {
        match self.peers.get(&session) {
            Some(peer) if peer.room == room => {}
            _ => return Err(SfuError::NoSuchSession),
        }
        self.depart(room, session);
        Ok(())
    }

    /// Takes `session` (and a publisher's subscriptions) out of `room`.
    fn depart(&mut self, room: &str, session: SessionId) {
        let mut gone = self.rooms.leave(room, session);
        if !gone.contains(&session) {
            gone.push(session);
        }
        for sid in gone {
            if self.peers.contains_key(&sid) {
                self.emit(room, RoomEvent::Left { session: sid });
            }
            self.end(sid);
        }
    }

    fn end(&mut self, session: SessionId) {
        self.recorders.stop(session);
        self.subscribers.remove(&session);
        if let Some(mut peer) = self.peers.remove(&session) {
            peer.rtc.disconnect();
            if let Role::Subscriber { publisher } = peer.role {
                if let Some(list) = self.subscribers.get_mut(&publisher) {
                    list.retain(|s| *s != session);
                }
            }
        }
        self.routes.retain(|_, s| *s != session);
    }

    /// Binds a subscriber's tracks to its publisher's, kind by kind in
    /// offer order.
    fn bind(&mut self, subscriber: SessionId, publisher: SessionId) {
        let Some(source) = self.peers.get(&publisher) else {
            return;
        };
        let sources: Vec<(Mid, MediaKind)> =
            source.tracks_in.iter().map(|t| (t.mid, t.kind)).collect();
        let Some(sub) = self.peers.get_mut(&subscriber) else {
            return;
        };
        let mut taken = Vec::new();
        for out in &mut sub.tracks_out {
            out.source = sources
                .iter()
                .find(|(mid, kind)| *kind == out.kind && !taken.contains(mid))
                .map(|(mid, _)| *mid);
            taken.extend(out.source);
        }
    }

    /// Feeds one datagram received at `now` from `source` on the socket at
    /// `destination`.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.stats.received += 1;
        let Ok(contents) = bytes.try_into() else {
            self.stats.dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let cached = self
            .routes
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let target = cached.or_else(|| {
            self.peers
                .iter()
                .find(|(_, p)| p.rtc.accepts(&input))
                .map(|(id, _)| *id)
        });
        let Some(id) = target else {
            self.stats.dropped += 1;
            return;
        };
        self.routes.insert(source, id);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_heard = now;
            if peer.rtc.handle_input(input).is_err() {
                peer.rtc.disconnect();
            }
        }
        self.drain(id, now);
    }

    /// Drives every session whose timer is due at `now`, and drops the
    /// dead and the silent.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.next_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id) {
                if peer.rtc.handle_input(Input::Timeout(now)).is_err() {
                    peer.rtc.disconnect();
                }
            }
            self.drain(id, now);
        }
        let dead: Vec<(RoomId, SessionId)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.rtc.is_alive() || now.duration_since(p.last_heard) > IDLE)
            .map(|(id, p)| (p.room.clone(), *id))
            .collect();
        for (room, id) in dead {
            self.stats.timed_out += 1;
            self.depart(&room, id);
        }
        let mut spoken = Vec::new();
        for (room, speakers) in &mut self.speakers {
            if let Some(session) = speakers.decide(now) {
                spoken.push((room.clone(), session));
            }
        }
        for (room, session) in spoken {
            self.emit(&room, RoomEvent::ActiveSpeaker { session });
        }
        self.cap_publishers(now);
        self.earliest = self.peers.values().map(|p| p.next_timeout).min();
    }

    /// Tells each publisher its room's bitrate cap now and then (REMB on
    /// its video), and drops one that keeps sending far above it.
    fn cap_publishers(&mut self, now: Instant) {
        let mut over = Vec::new();
        for (id, peer) in &mut self.peers {
            if peer.role != Role::Publisher {
                continue;
            }
            let Ok(room) = self.rooms.get(&peer.room) else {
                continue;
            };
            let cap = room.limits.max_bitrate_bps;
            if peer
                .capped
                .is_none_or(|t| now.duration_since(t) >= CAP_EVERY)
            {
                peer.capped = Some(now);
                let video: Vec<(Mid, Vec<Option<Rid>>)> = peer
                    .tracks_in
                    .iter()
                    .filter(|t| t.kind == MediaKind::Video)
                    .map(|t| (t.mid, t.layers.iter().map(|(r, _)| *r).collect()))
                    .collect();
                let mut api = peer.rtc.direct_api();
                for (mid, rids) in video {
                    for rid in rids {
                        if let Some(stream) = api.stream_rx_by_mid(mid, rid) {
                            stream.request_remb(str0m::bwe::Bitrate::bps(cap));
                        }
                    }
                }
            }
            let sending: u64 = peer
                .tracks_in
                .iter()
                .flat_map(|t| t.layers.iter().map(|(_, m)| m.bps()))
                .sum();
            if sending > cap.saturating_mul(OVER_CAP_FACTOR) {
                let since = *peer.over_cap_since.get_or_insert(now);
                if now.duration_since(since) >= OVER_CAP_FOR {
                    over.push((peer.room.clone(), *id));
                }
            } else {
                peer.over_cap_since = None;
            }
        }
        for (room, id) in over {
            tracing::info!(session = id, %room, "media: publisher dropped for sending far above the room's bitrate cap");
            self.stats.timed_out += 1;
            self.depart(&room, id);
        }
    }

    /// When [`Sfu::tick`] next has work (`None` without sessions).
    /// Cheap: kept up to date as sessions are polled (it may be early,
    /// never late; [`Sfu::tick`] makes it exact again).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.earliest
    }

    /// The next datagram to send.
    pub fn transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    /// Polls session `id` until it waits, then acts on what it said.
    fn drain(&mut self, id: SessionId, now: Instant) {
        let mut events = Vec::new();
        {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            loop {
                if !peer.rtc.is_alive() {
                    peer.next_timeout = now;
                    break;
                }
                match peer.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        self.stats.sent += 1;
                        self.outbox.push_back(Datagram {
                            destination: t.destination,
                            contents: t.contents.into(),
                        });
                    }
                    Ok(Output::Timeout(t)) => {
                        peer.next_timeout = t;
                        break;
                    }
                    Ok(Output::Event(e)) => events.push(e),
                    Err(_) => {
                        peer.rtc.disconnect();
                        peer.next_timeout = now;
                        break;
                    }
                }
            }
        }
        if let Some(t) = self.peers.get(&id).map(|p| p.next_timeout) {
            self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
        }
        for event in events {
            self.on_event(id, event, now);
        }
    }

    fn on_event(&mut self, id: SessionId, event: Event, now: Instant) {
        match event {
            Event::Connected => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                    if let Role::Subscriber { publisher } = peer.role {
                        let wanted: Vec<Mid> = peer
                            .tracks_out
                            .iter()
                            .filter(|t| t.kind == MediaKind::Video)
                            .filter_map(|t| t.source)
                            .collect();
                        for mid in wanted {
                            self.request_keyframe(publisher, mid, None, now, true);
                        }
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.rtc.disconnect();
                }
            }
            Event::MediaData(data) => self.forward(id, data, now),
            Event::KeyframeRequest(req) => {
                let Some(peer) = self.peers.get(&id) else {
                    return;
                };
                let Role::Subscriber { publisher } = peer.role else {
                    return;
                };
                let Some(out) = peer.tracks_out.iter().find(|t| t.mid == req.mid) else {
                    return;
                };
                if let Some(source) = out.source {
                    let rid = out.current;
                    self.request_keyframe(publisher, source, rid, now, false);
                }
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.estimate_bps = Some(estimate.as_u64());
                }
            }
            _ => {}
        }
    }

    /// Asks publisher `publisher` for a keyframe on its track `mid`
    /// (throttled unless `now_please`).
    fn request_keyframe(
        &mut self,
        publisher: SessionId,
        mid: Mid,
        rid: Option<Rid>,
        now: Instant,
        now_please: bool,
    ) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(track) = peer.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let recent = track
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL);
        if recent && !now_please {
            return;
        }
        track.last_keyframe_request = Some(now);
        if let Some(mut writer) = peer.rtc.writer(mid) {
            if writer
                .request_keyframe(rid, KeyframeRequestKind::Pli)
                .is_ok()
            {
                self.stats.keyframe_requests += 1;
            }
        }
        self.drain(publisher, now);
    }

    /// Sends a publisher's frame to each of its subscribers.
    fn forward(&mut self, publisher: SessionId, data: MediaData, now: Instant) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(track) = peer.tracks_in.iter_mut().find(|t| t.mid == data.mid) else {
            return;
        };
        let meter = match track.layers.iter_mut().position(|(r, _)| *r == data.rid) {
            Some(i) => &mut track.layers[i].1,
            None => {
                track.layers.push((data.rid, RateMeter::default()));
                let last = track.layers.len() - 1;
                &mut track.layers[last].1
            }
        };
        meter.add(now, data.data.len());
        let simulcast: Vec<Layer<Rid>> = track
            .layers
            .iter()
            .filter_map(|(rid, m)| {
                rid.map(|rid| Layer {
                    rid,
                    bitrate_bps: m.bps(),
                })
            })
            .collect();
        if !data.contiguous {
            self.request_keyframe(publisher, data.mid, data.rid, now, false);
        }
        if let (Some(level), Some(room)) = (
            data.ext_vals.audio_level,
            self.peers.get(&publisher).map(|p| p.room.clone()),
        ) {
            if let Some(speakers) = self.speakers.get_mut(&room) {
                speakers.observe(publisher, level);
            }
        }
        let recorded = self.recorders.is_recording(publisher)
            && (data.rid.is_none() || data.rid == simulcast.first().map(|l| l.rid));
        if let (true, Some(peer)) = (recorded, self.peers.get(&publisher)) {
            let media = match data.params.spec().codec {
                Codec::Vp8 => Some((MediaKind::Video, Media::Video)),
                Codec::Opus => Some((MediaKind::Audio, Media::Audio)),
                _ => None,
            }
            .filter(|(kind, _)| recorded_track(&peer.tracks_in, *kind) == Some(data.mid))
            .map(|(_, media)| media);
            if let Some(media) = media {
                let key = data.is_keyframe();
                self.recorders
                    .frame(publisher, media, data.network_time, key, &data.data);
            }
        }
        let subscribers = self
            .subscribers
            .get(&publisher)
            .cloned()
            .unwrap_or_default();
        let mut switches = Vec::new();
        for sid in subscribers {
            let Some(sub) = self.peers.get_mut(&sid).filter(|p| p.connected) else {
                continue;
            };
            let estimate = sub.estimate_bps.unwrap_or(u64::MAX);
            let Some(out) = sub
                .tracks_out
                .iter_mut()
                .find(|t| t.source == Some(data.mid))
            else {
                continue;
            };
            let mut switched = false;
            if data.rid.is_some() {
                out.target = layers::choose(&simulcast, estimate, out.current.as_ref());
                if out.target != out.current {
                    if data.rid == out.target && data.is_keyframe() {
                        out.current = out.target;
                        switched = true;
                    } else {
                        switches.push(out.target);
                    }
                }
                if data.rid != out.current {
                    continue;
                }
            }
            // The new layer's keyframe may be of an instant already sent
            // on the old one: it goes out just after, so that the
            // subscriber's timeline never stands still or steps back.
            let time = match out.last_time {
                Some(last) if switched && data.time <= last => {
                    last + MediaTime::new(1, last.frequency())
                }
                _ => data.time,
            };
            out.last_time = Some(time);
            let Some(writer) = sub.rtc.writer(out.mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, time, data.data.clone())
                .is_err()
            {
                sub.rtc.disconnect();
                continue;
            }
            self.stats.forwarded_frames += 1;
            self.stats.forwarded_bytes += data.data.len() as u64;
            self.drain(sid, now);
        }
        switches.dedup();
        for rid in switches {
            self.request_keyframe(publisher, data.mid, rid, now, false);
        }
    }
}

#[cfg(test)]
mod tests;
