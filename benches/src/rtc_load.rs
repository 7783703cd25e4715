//! A WebRTC load generator on str0m: many publishers and subscribers, each
//! a str0m [`Rtc`] with its own UDP socket, driven by hand (datagrams and
//! time in, datagrams and events out) by a few plain threads that wait on
//! their sockets with epoll. Signalling is the caller's: it makes a
//! [`Pending`] client (an offer) or answers an offer ([`answer_offer`]),
//! and hands the connected-to-be [`Client`] to a [`Pool`].
//!
//! Publishers send synthetic VP8 frames (30 per second, 1000–1200 bytes,
//! a keyframe every [`GOP`] frames and whenever one is asked for) and
//! Opus-sized audio packets (50 per second). Every frame carries the time
//! it was written (nanoseconds since the run's epoch), so a subscriber
//! measures the added latency of the path (its receive time minus the
//! send time) and knows whether the frame belongs to the measured window.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaData, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::report::{new_histogram, record};

/// Video frames per second.
pub const FPS: u64 = 30;
/// A keyframe every this many video frames.
pub const GOP: u64 = 90;
/// Audio packets per second (20 ms Opus).
pub const AUDIO_PPS: u64 = 50;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// Socket buffers asked for (the kernel caps them at rmem_max/wmem_max).
const SOCKET_BUFFER: i32 = 1 << 20;
/// A publisher this late skips frames rather than sending a burst.
const MAX_LAG: Duration = Duration::from_millis(200);

/// The run's shared state: the epoch of every timestamp, the measured
/// window (nanoseconds since the epoch; `u64::MAX` until set), the stop
/// flag and the count of connected clients.
pub struct Control {
    pub epoch: Instant,
    window_start: AtomicU64,
    window_end: AtomicU64,
    stop: AtomicBool,
    pub connected: AtomicUsize,
    pub failed: AtomicUsize,
}

impl Control {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        })
    }

    /// Nanoseconds from the epoch to `t`.
    pub fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Opens the measured window now, for `length`; returns its bounds.
    pub fn open_window(&self, length: Duration) -> (Instant, Instant) {
        let start = Instant::now();
        let end = start + length;
        self.window_end.store(self.nanos(end), Ordering::SeqCst);
        self.window_start.store(self.nanos(start), Ordering::SeqCst);
        (start, end)
    }

    fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start.load(Ordering::Relaxed)
            && ns < self.window_end.load(Ordering::Relaxed)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A synthetic VP8 frame of `len` bytes (at least 32) stamped with `ns`:
/// a keyframe has the VP8 start code and a 320×240 size.
pub fn vp8_frame(len: usize, key: bool, ns: u64, seq: u64) -> Vec<u8> {
    let mut f = vec![0x55u8; len.max(32)];
    f[0] = if key { 0x10 } else { 0x11 };
    f[1] = 0;
    f[2] = 0;
    if key {
        f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        f[6..8].copy_from_slice(&320u16.to_le_bytes());
        f[8..10].copy_from_slice(&240u16.to_le_bytes());
    }
    f[10..18].copy_from_slice(&ns.to_le_bytes());
    f[18..26].copy_from_slice(&seq.to_le_bytes());
    f
}

/// An Opus-sized audio packet stamped with `ns` (its first 8 bytes).
pub fn audio_packet(len: usize, ns: u64) -> Vec<u8> {
    let mut p = vec![0xaau8; len.max(16)];
    p[0..8].copy_from_slice(&ns.to_le_bytes());
    p
}

/// The send stamp of a received frame, if it is one of ours.
fn stamp(data: &[u8], video: bool) -> Option<u64> {
    let bytes = if video {
        data.get(10..18)?
    } else {
        data.get(0..8)?
    };
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Whether a datagram is RTP (not RTCP, STUN or DTLS): version 2 and not
/// one of the RTCP packet types 192–223 (RFC 5761).
pub fn is_rtp(d: &[u8]) -> bool {
    matches!(d, [b0, b1, ..] if b0 >> 6 == 2 && !(192..=223).contains(b1))
}

/// What a publisher does.
pub struct Publisher {
    /// Its index in the run (subscribers name it).
    pub index: usize,
    video: Mid,
    audio: Option<Mid>,
    video_pt: Option<Pt>,
    audio_pt: Option<Pt>,
    next_video: Option<Instant>,
    next_audio: Option<Instant>,
    frames: u64,
    audio_packets: u64,
    force_key: bool,
    pub video_sent: u64,
    pub audio_sent: u64,
    pub rtp_sent: u64,
    pub keyframe_requests: u64,
}

/// What a subscriber counts.
pub struct Subscriber {
    /// The publisher's index.
    pub publisher: usize,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub discontinuities: u64,
    /// Video frame latency, µs.
    pub latency_us: Histogram<u64>,
}

/// A client's role.
pub enum Side {
    Publisher(Publisher),
    Subscriber(Subscriber),
}

/// A client: its peer connection and socket.
pub struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    connected: bool,
    dead: bool,
    /// Datagrams of every kind sent and received over the whole round.
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub side: Side,
}

/// A client whose offer waits for its answer.
pub struct Pending {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: SdpPendingOffer,
    mids: Vec<Mid>,
    /// The offer to send.
    pub offer: String,
}

fn socket(ip: IpAddr) -> Result<(UdpSocket, SocketAddr), String> {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
    s.set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    let fd = s.as_raw_fd();
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt on our own socket with a valid int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&SOCKET_BUFFER as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            );
        }
    }
    let local = s.local_addr().map_err(|e| format!("local address: {e}"))?;
    Ok((s, local))
}

fn rtc(local: SocketAddr, now: Instant) -> Result<Rtc, String> {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_vp8(true)
        .enable_opus(true, false)
        .build(now);
    let c = Candidate::host(local, Protocol::Udp).map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(c);
    Ok(rtc)
}

impl Pending {
    /// A publisher on `ip` with a sendonly video (and audio) m-line.
    pub fn publisher(ip: IpAddr, audio: bool) -> Result<Self, String> {
        let dirs: &[MediaKind] = if audio {
            &[MediaKind::Audio, MediaKind::Video]
        } else {
            &[MediaKind::Video]
        };
        Self::new(ip, dirs, Direction::SendOnly)
    }

    /// A subscriber on `ip` with recvonly audio and video m-lines.
    pub fn subscriber(ip: IpAddr, audio: bool) -> Result<Self, String> {
        let dirs: &[MediaKind] = if audio {
            &[MediaKind::Audio, MediaKind::Video]
        } else {
            &[MediaKind::Video]
        };
        Self::new(ip, dirs, Direction::RecvOnly)
    }

    fn new(ip: IpAddr, kinds: &[MediaKind], dir: Direction) -> Result<Self, String> {
        let (socket, local) = socket(ip)?;
        let mut rtc = rtc(local, Instant::now())?;
        let mut change = rtc.sdp_api();
        let mids = kinds
            .iter()
            .map(|k| change.add_media(*k, dir, None, None, None))
            .collect();
        let (offer, pending) = change.apply().ok_or("no offer")?;
        Ok(Self {
            rtc,
            socket,
            local,
            pending,
            mids,
            offer: offer.to_sdp_string(),
        })
    }

    fn accept(mut self, answer: &str) -> Result<(Rtc, UdpSocket, SocketAddr, Vec<Mid>), String> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| format!("the answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| format!("accept the answer: {e}"))?;
        Ok((self.rtc, self.socket, self.local, self.mids))
    }

    /// The publisher `index`, given the server's answer.
    pub fn into_publisher(self, answer: &str, index: usize) -> Result<Client, String> {
        let (rtc, socket, local, mids) = self.accept(answer)?;
        let (audio, video) = match mids.as_slice() {
            [a, v] => (Some(*a), *v),
            [v] => (None, *v),
            _ => return Err("no video m-line".into()),
        };
        Ok(Client::new(
            rtc,
            socket,
            local,
            Side::Publisher(Publisher {
                index,
                video,
                audio,
                video_pt: None,
                audio_pt: None,
                next_video: None,
                next_audio: None,
                frames: 0,
                audio_packets: 0,
                force_key: true,
                video_sent: 0,
                audio_sent: 0,
                rtp_sent: 0,
                keyframe_requests: 0,
            }),
        ))
    }

    /// A subscriber of publisher `publisher`, given the server's answer.
    pub fn into_subscriber(self, answer: &str, publisher: usize) -> Result<Client, String> {
        let (rtc, socket, local, _) = self.accept(answer)?;
        Ok(Client::new(
            rtc,
            socket,
            local,
            Side::Subscriber(new_subscriber(publisher)),
        ))
    }
}

fn new_subscriber(publisher: usize) -> Subscriber {
    Subscriber {
        publisher,
        video_frames: 0,
        audio_frames: 0,
        keyframes: 0,
        rtp_packets: 0,
        rtp_bytes: 0,
        discontinuities: 0,
        latency_us: new_histogram(),
    }
}

/// A subscriber on `ip` of publisher `publisher` that answers the server's
/// `offer` (Janus offers to subscribers): the client and its answer.
pub fn answer_offer(ip: IpAddr, offer: &str, publisher: usize) -> Result<(Client, String), String> {
    let (socket, local) = socket(ip)?;
    let mut rtc = rtc(local, Instant::now())?;
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("the offer: {e}"))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("accept the offer: {e}"))?;
    let client = Client::new(
        rtc,
        socket,
        local,
        Side::Subscriber(new_subscriber(publisher)),
    );
    Ok((client, answer.to_sdp_string()))
}

impl Client {
    fn new(rtc: Rtc, socket: UdpSocket, local: SocketAddr, side: Side) -> Self {
        Self {
            rtc,
            socket,
            local,
            next_timeout: Instant::now(),
            connected: false,
            dead: false,
            datagrams_sent: 0,
            datagrams_received: 0,
            side,
        }
    }

    /// Polls until the connection waits: sends what it says, acts on its
    /// events.
    fn drain(&mut self, control: &Control) {
        while !self.dead {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if let Side::Publisher(p) = &mut self.side {
                        if is_rtp(&t.contents) && control.in_window(control.nanos(Instant::now())) {
                            p.rtp_sent += 1;
                        }
                    }
                    // A full socket buffer drops the datagram, as a
                    // network would.
                    if self.socket.send_to(&t.contents, t.destination).is_ok() {
                        self.datagrams_sent += 1;
                    }
                }
                Ok(Output::Event(e)) => self.event(e, control),
                Err(_) => self.fail(control),
            }
        }
    }

    fn fail(&mut self, control: &Control) {
        if !self.dead {
            self.dead = true;
            control.failed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn event(&mut self, e: Event, control: &Control) {
        match e {
            Event::Connected if !self.connected => {
                self.connected = true;
                control.connected.fetch_add(1, Ordering::SeqCst);
            }
            Event::KeyframeRequest(_) => {
                if let Side::Publisher(p) = &mut self.side {
                    p.force_key = true;
                    p.keyframe_requests += 1;
                }
            }
            Event::MediaData(d) => self.media(d, control),
            _ => {}
        }
    }

    fn media(&mut self, d: MediaData, control: &Control) {
        let Side::Subscriber(s) = &mut self.side else {
            return;
        };
        let codec = d.params.spec().codec;
        let video = codec == Codec::Vp8;
        if !video && codec != Codec::Opus {
            return;
        }
        let Some(sent) = stamp(&d.data, video) else {
            return;
        };
        if !control.in_window(sent) {
            return;
        }
        if video {
            s.video_frames += 1;
            if d.is_keyframe() {
                s.keyframes += 1;
            }
            if !d.contiguous {
                s.discontinuities += 1;
            }
            let now = control.nanos(Instant::now());
            record(
                &mut s.latency_us,
                Duration::from_nanos(now.saturating_sub(sent)),
            );
        } else {
            s.audio_frames += 1;
        }
    }

    /// Reads every waiting datagram.
    fn receive(&mut self, buf: &mut [u8], control: &Control) {
        while !self.dead {
            let (n, source) = match self.socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // e.g. ICMP port unreachable from a server that went away.
                Err(_) => return,
            };
            let now = Instant::now();
            self.datagrams_received += 1;
            let Some(bytes) = buf.get(..n) else {
                return;
            };
            if let Side::Subscriber(s) = &mut self.side {
                if is_rtp(bytes) && control.in_window(control.nanos(now)) {
                    s.rtp_packets += 1;
                    s.rtp_bytes += n as u64;
                }
            }
            let Ok(contents) = bytes.try_into() else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.local,
                    contents,
                },
            );
            if self.rtc.handle_input(input).is_err() {
                self.fail(control);
                return;
            }
            self.drain(control);
        }
    }

    /// Writes the publisher's due frames; returns when the next is due.
    fn publish(&mut self, now: Instant, control: &Control) -> Option<Instant> {
        if !self.connected || self.dead {
            return None;
        }
        let Side::Publisher(p) = &mut self.side else {
            return None;
        };
        if p.video_pt.is_none() {
            p.video_pt = self.rtc.writer(p.video).and_then(|w| {
                w.payload_params()
                    .find(|x| x.spec().codec == Codec::Vp8)
                    .map(|x| x.pt())
            });
            p.audio_pt = p.audio.and_then(|mid| {
                self.rtc.writer(mid).and_then(|w| {
                    w.payload_params()
                        .find(|x| x.spec().codec == Codec::Opus)
                        .map(|x| x.pt())
                })
            });
            p.next_video = Some(now);
            p.next_audio = p.audio_pt.map(|_| now);
        }
        let video_period = Duration::from_nanos(1_000_000_000 / FPS);
        let audio_period = Duration::from_nanos(1_000_000_000 / AUDIO_PPS);
        let mut wrote = false;
        if let (Some(pt), Some(due)) = (p.video_pt, p.next_video) {
            if now >= due {
                let key = p.force_key || p.frames % GOP == 0;
                p.force_key = false;
                let ns = control.nanos(now);
                let len = if key {
                    3000
                } else {
                    1000 + ((p.frames * 37) % 200) as usize
                };
                let time = MediaTime::from_90khz(p.frames * (90_000 / FPS));
                let data = vp8_frame(len, key, ns, p.frames);
                if let Some(w) = self.rtc.writer(p.video) {
                    if w.write(pt, now, time, data).is_ok() && control.in_window(ns) {
                        p.video_sent += 1;
                    }
                }
                p.frames += 1;
                let mut next = due + video_period;
                if now.duration_since(next.min(now)) > MAX_LAG {
                    next = now + video_period;
                }
                p.next_video = Some(next);
                wrote = true;
            }
        }
        if let (Some(pt), Some(mid), Some(due)) = (p.audio_pt, p.audio, p.next_audio) {
            if now >= due {
                let ns = control.nanos(now);
                let time = MediaTime::new(
                    p.audio_packets * (48_000 / AUDIO_PPS),
                    Frequency::FORTY_EIGHT_KHZ,
                );
                let data = audio_packet(80 + (p.audio_packets % 40) as usize, ns);
                if let Some(w) = self.rtc.writer(mid) {
                    if w.write(pt, now, time, data).is_ok() && control.in_window(ns) {
                        p.audio_sent += 1;
                    }
                }
                p.audio_packets += 1;
                let mut next = due + audio_period;
                if now.duration_since(next.min(now)) > MAX_LAG {
                    next = now + audio_period;
                }
                p.next_audio = Some(next);
                wrote = true;
            }
        }
        let next = match (p.next_video, p.next_audio) {
            (Some(v), Some(a)) => Some(v.min(a)),
            (v, a) => v.or(a),
        };
        if wrote {
            self.drain(control);
        }
        next
    }
}

/// epoll over the clients' sockets.
struct Epoll(i32);

impl Epoll {
    fn new() -> Self {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(
            fd >= 0,
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        );
        Self(fd)
    }

    fn add(&self, fd: i32, token: u64) {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: a valid epoll fd, an open socket and an owned event.
        let rc = unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert!(rc == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: the buffer is valid for events.len() entries.
        let n = unsafe {
            libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
        };
        n.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// One worker thread's loop: takes clients from `incoming` until the run
/// stops, then hands them back.
fn worker(incoming: Receiver<Client>, control: Arc<Control>) -> Vec<Client> {
    let epoll = Epoll::new();
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !control.stopped() {
        while let Ok(mut c) = incoming.try_recv() {
            epoll.add(c.socket.as_raw_fd(), clients.len() as u64);
            c.drain(&control);
            clients.push(c);
        }
        let now = Instant::now();
        let mut next = now + Duration::from_millis(20);
        for c in clients.iter_mut().filter(|c| !c.dead) {
            if c.next_timeout <= now {
                if c.rtc.handle_input(Input::Timeout(now)).is_err() {
                    c.fail(&control);
                    continue;
                }
                c.drain(&control);
            }
            if let Some(due) = c.publish(now, &control) {
                next = next.min(due);
            }
            next = next.min(c.next_timeout);
        }
        let wait = next.saturating_duration_since(Instant::now());
        // Round up so that a wait under a millisecond does not spin.
        let ms = wait.as_micros().div_ceil(1000).min(20) as i32;
        let n = epoll.wait(&mut events, ms);
        for ev in events.iter().take(n) {
            let token = ev.u64 as usize;
            if let Some(c) = clients.get_mut(token) {
                c.receive(&mut buf, &control);
            }
        }
    }
    clients
}

/// Worker threads and the clients they drive.
pub struct Pool {
    senders: Vec<Sender<Client>>,
    handles: Vec<JoinHandle<Vec<Client>>>,
    next: usize,
    pub control: Arc<Control>,
}

impl Pool {
    /// `threads` workers (at least one).
    pub fn new(threads: usize, control: Arc<Control>) -> Self {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            let control = control.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rtc-load-{i}"))
                .spawn(move || worker(rx, control))
                .expect("spawn a load worker");
            senders.push(tx);
            handles.push(handle);
        }
        Self {
            senders,
            handles,
            next: 0,
            control,
        }
    }

    /// Hands a client to the next worker (round robin).
    pub fn add(&mut self, c: Client) {
        let i = self.next % self.senders.len();
        self.next += 1;
        if let Some(tx) = self.senders.get(i) {
            let _ = tx.send(c);
        }
    }

    /// Stops the workers and returns every client.
    pub fn finish(self) -> Vec<Client> {
        self.control.stop.store(true, Ordering::SeqCst);
        drop(self.senders);
        self.handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }
}

/// What one measured window saw, summed over the clients.
pub struct Tally {
    pub video_sent: u64,
    pub audio_sent: u64,
    pub published_rtp: u64,
    pub video_expected: u64,
    pub audio_expected: u64,
    pub video_received: u64,
    pub audio_received: u64,
    pub keyframes: u64,
    pub keyframe_requests: u64,
    pub discontinuities: u64,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub latency_us: Histogram<u64>,
    pub connected: usize,
    pub failed: usize,
    pub subscribers: usize,
    /// Datagrams all clients sent and received over the whole round.
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
}

impl Tally {
    /// Sums the clients: each subscriber expects what its publisher sent
    /// in the window.
    pub fn of(clients: &[Client], control: &Control) -> Self {
        let mut sent = std::collections::HashMap::new();
        let mut t = Tally {
            video_sent: 0,
            audio_sent: 0,
            published_rtp: 0,
            video_expected: 0,
            audio_expected: 0,
            video_received: 0,
            audio_received: 0,
            keyframes: 0,
            keyframe_requests: 0,
            discontinuities: 0,
            rtp_packets: 0,
            rtp_bytes: 0,
            latency_us: new_histogram(),
            connected: control.connected.load(Ordering::SeqCst),
            failed: control.failed.load(Ordering::SeqCst),
            subscribers: 0,
            datagrams_sent: clients.iter().map(|c| c.datagrams_sent).sum(),
            datagrams_received: clients.iter().map(|c| c.datagrams_received).sum(),
        };
        for c in clients {
            if let Side::Publisher(p) = &c.side {
                sent.insert(p.index, (p.video_sent, p.audio_sent));
                t.video_sent += p.video_sent;
                t.audio_sent += p.audio_sent;
                t.published_rtp += p.rtp_sent;
                t.keyframe_requests += p.keyframe_requests;
            }
        }
        for c in clients {
            if let Side::Subscriber(s) = &c.side {
                let (v, a) = sent.get(&s.publisher).copied().unwrap_or((0, 0));
                t.subscribers += 1;
                t.video_expected += v;
                t.audio_expected += a;
                t.video_received += s.video_frames;
                t.audio_received += s.audio_frames;
                t.keyframes += s.keyframes;
                t.discontinuities += s.discontinuities;
                t.rtp_packets += s.rtp_packets;
                t.rtp_bytes += s.rtp_bytes;
                let _ = t.latency_us.add(&s.latency_us);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_stamp_and_kind() {
        let f = vp8_frame(1100, true, 123_456_789, 7);
        assert_eq!(f.len(), 1100);
        assert_eq!(f[0] & 1, 0, "keyframe bit");
        assert_eq!(&f[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(stamp(&f, true), Some(123_456_789));
        let d = vp8_frame(1000, false, 5, 8);
        assert_eq!(d[0], 0x11);
        assert_eq!(stamp(&audio_packet(90, 42), false), Some(42));
        assert_eq!(stamp(&[1, 2, 3], true), None);
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        assert!(is_rtp(&[0x80, 96, 0, 1]));
        assert!(is_rtp(&[0x90, 0xe0, 0, 1]), "marker bit with pt 96");
        assert!(!is_rtp(&[0x80, 200, 0, 6]), "sender report");
        assert!(!is_rtp(&[0x81, 206, 0, 2]), "PLI");
        assert!(!is_rtp(&[0x00, 0x01, 0, 0]), "STUN");
        assert!(!is_rtp(&[22, 0xfe, 0xfd]), "DTLS");
        assert!(!is_rtp(&[0x80]));
    }
}
