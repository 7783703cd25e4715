//! A WebM (Matroska) muxer for recordings, sans-IO: frames in, bytes out.
//! One file per publisher with its VP8 video and Opus audio. The header
//! is written at the first video keyframe (or first audio frame without
//! video), so the picture size comes from the VP8 keyframe itself; then
//! one cluster per second of media (a new one at each video keyframe
//! after that). The segment's size and the duration are placeholders
//! until [`Webm::finish`] gives the patches that fill them in.

/// Element ids (Matroska spec).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// Track numbers in the file.
const VIDEO_TRACK: u8 = 1;
const AUDIO_TRACK: u8 = 2;
/// A cluster spans at most this many milliseconds.
const CLUSTER_MS: u64 = 1000;
/// Largest frame kept (a block's payload).
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// An EBML size as an 8-byte vint.
fn put_size(out: &mut Vec<u8>, size: u64) {
    out.push(0x01);
    out.extend_from_slice(&size.to_be_bytes()[1..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

fn float(out: &mut Vec<u8>, id: u32, value: f64) {
    element(out, id, &value.to_be_bytes());
}

/// Width and height from a VP8 keyframe's header (RFC 6386 §9.1).
pub fn vp8_size(frame: &[u8]) -> Option<(u16, u16)> {
    let keyframe = frame.first()? & 1 == 0;
    if !keyframe || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([*frame.get(6)?, *frame.get(7)?]) & 0x3fff;
    let h = u16::from_le_bytes([*frame.get(8)?, *frame.get(9)?]) & 0x3fff;
    (w > 0 && h > 0).then_some((w, h))
}

/// The Opus identification header (RFC 7845 §5.1): stereo, 48 kHz, the
/// usual 312 samples of pre-skip.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    head
}

/// What a recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Video,
    Audio,
}

/// A write at a position of the file, to fill in what was unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// One WebM file being written.
#[derive(Debug)]
pub struct Webm {
    has_video: bool,
    has_audio: bool,
    /// Bytes handed out so far.
    written: u64,
    /// Offsets of the segment's size and the duration's value, once the
    /// header is out.
    segment_size_at: Option<u64>,
    duration_at: Option<u64>,
    segment_start: u64,
    cluster: Vec<u8>,
    cluster_time: Option<u64>,
    /// The last timestamp of each track (video, audio): each goes up
    /// strictly, as players want.
    last_ms: [Option<u64>; 2],
}

impl Webm {
    /// A file with the tracks that will come.
    pub fn new(has_video: bool, has_audio: bool) -> Self {
        Self {
            has_video,
            has_audio,
            written: 0,
            segment_size_at: None,
            duration_at: None,
            segment_start: 0,
            cluster: Vec::new(),
            cluster_time: None,
            last_ms: [None, None],
        }
    }

    fn header(&mut self, size: Option<(u16, u16)>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ebml = Vec::new();
        uint(&mut ebml, id::EBML_VERSION, 1);
        uint(&mut ebml, id::EBML_READ_VERSION, 1);
        uint(&mut ebml, id::EBML_MAX_ID_LENGTH, 4);
        uint(&mut ebml, id::EBML_MAX_SIZE_LENGTH, 8);
        element(&mut ebml, id::DOC_TYPE, b"webm");
        uint(&mut ebml, id::DOC_TYPE_VERSION, 4);
        uint(&mut ebml, id::DOC_TYPE_READ_VERSION, 2);
        element(&mut out, id::EBML, &ebml);
        put_id(&mut out, id::SEGMENT);
        self.segment_size_at = Some(out.len() as u64);
        put_size(&mut out, 0x00FF_FFFF_FFFF_FFFF);
        self.segment_start = out.len() as u64;
        let mut info = Vec::new();
        uint(&mut info, id::TIMESTAMP_SCALE, 1_000_000);
        element(&mut info, id::MUXING_APP, b"cairn");
        element(&mut info, id::WRITING_APP, b"cairn");
        put_id(&mut info, id::DURATION);
        put_size(&mut info, 8);
        let duration_in_info = info.len();
        info.extend_from_slice(&0f64.to_be_bytes());
        put_id(&mut out, id::INFO);
        put_size(&mut out, info.len() as u64);
        self.duration_at = Some(out.len() as u64 + duration_in_info as u64);
        out.extend_from_slice(&info);
        let mut tracks = Vec::new();
        if let (true, Some((w, h))) = (self.has_video, size) {
            let mut entry = Vec::new();
            uint(&mut entry, id::TRACK_NUMBER, u64::from(VIDEO_TRACK));
            uint(&mut entry, id::TRACK_UID, u64::from(VIDEO_TRACK));
            uint(&mut entry, id::TRACK_TYPE, 1);
            element(&mut entry, id::CODEC_ID, b"V_VP8");
            let mut video = Vec::new();
            uint(&mut video, id::PIXEL_WIDTH, u64::from(w));
            uint(&mut video, id::PIXEL_HEIGHT, u64::from(h));
            element(&mut entry, id::VIDEO, &video);
            element(&mut tracks, id::TRACK_ENTRY, &entry);
        } else {
            self.has_video = false;
        }
        if self.has_audio {
            let mut entry = Vec::new();
            uint(&mut entry, id::TRACK_NUMBER, u64::from(AUDIO_TRACK));
            uint(&mut entry, id::TRACK_UID, u64::from(AUDIO_TRACK));
            uint(&mut entry, id::TRACK_TYPE, 2);
            element(&mut entry, id::CODEC_ID, b"A_OPUS");
            element(&mut entry, id::CODEC_PRIVATE, &opus_head());
            let mut audio = Vec::new();
            float(&mut audio, id::SAMPLING_FREQUENCY, 48_000.0);
            uint(&mut audio, id::CHANNELS, 2);
            element(&mut entry, id::AUDIO, &audio);
            element(&mut tracks, id::TRACK_ENTRY, &entry);
        }
        element(&mut out, id::TRACKS, &tracks);
        out
    }

    fn close_cluster(&mut self, out: &mut Vec<u8>) {
        if self.cluster_time.take().is_some() {
            element(out, id::CLUSTER, &self.cluster);
            self.cluster.clear();
        }
    }

    /// Adds a frame `ms` milliseconds into the recording; returns the
    /// bytes to append to the file (often none: clusters are written
    /// whole). Frames before the header can be written (a video keyframe,
    /// or audio in a file without video) are dropped.
    pub fn push(&mut self, media: Media, ms: u64, keyframe: bool, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if frame.is_empty() || frame.len() > MAX_FRAME {
            return out;
        }
        if self.segment_size_at.is_none() {
            let ready = match media {
                Media::Video => keyframe && vp8_size(frame).is_some(),
                Media::Audio => !self.has_video,
            };
            if !ready {
                return out;
            }
            let size = vp8_size(frame);
            out = self.header(size);
        }
        let track = match media {
            Media::Video if self.has_video => VIDEO_TRACK,
            Media::Audio if self.has_audio => AUDIO_TRACK,
            _ => return self.hand_out(out),
        };
        let slot = &mut self.last_ms[usize::from(track - 1)];
        let ms = match *slot {
            Some(last) => ms.max(last + 1),
            None => ms.max(self.cluster_time.unwrap_or(0)),
        };
        *slot = Some(ms);
        let video_key = media == Media::Video && keyframe;
        let start_new = match self.cluster_time {
            None => true,
            Some(t) => {
                ms - t >= CLUSTER_MS && (video_key || !self.has_video || ms - t >= 5 * CLUSTER_MS)
            }
        };
        if start_new {
            self.close_cluster(&mut out);
            self.cluster_time = Some(ms);
            uint(&mut self.cluster, id::TIMESTAMP, ms);
        }
        let relative = (ms - self.cluster_time.unwrap_or(ms)).min(i16::MAX as u64) as i16;
        let mut block = Vec::with_capacity(frame.len() + 4);
        block.push(0x80 | track);
        block.extend_from_slice(&relative.to_be_bytes());
        block.push(if keyframe || media == Media::Audio {
            0x80
        } else {
            0
        });
        block.extend_from_slice(frame);
        element(&mut self.cluster, id::SIMPLE_BLOCK, &block);
        self.hand_out(out)
    }

    fn hand_out(&mut self, out: Vec<u8>) -> Vec<u8> {
        self.written += out.len() as u64;
        out
    }

    /// Ends the file: the last bytes to append and the patches of the
    /// segment size and duration (none if nothing was ever written).
    pub fn finish(&mut self) -> (Vec<u8>, Vec<Patch>) {
        let mut out = Vec::new();
        self.close_cluster(&mut out);
        let out = self.hand_out(out);
        let mut patches = Vec::new();
        if let (Some(size_at), Some(duration_at)) = (self.segment_size_at, self.duration_at) {
            let mut size = Vec::new();
            put_size(&mut size, self.written - self.segment_start);
            patches.push(Patch {
                offset: size_at,
                bytes: size,
            });
            patches.push(Patch {
                offset: duration_at,
                bytes: (self.last_ms.iter().flatten().max().copied().unwrap_or(0) as f64)
                    .to_be_bytes()
                    .to_vec(),
            });
        }
        (out, patches)
    }
}

#[cfg(test)]
mod tests;
