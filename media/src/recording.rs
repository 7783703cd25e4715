//! Recordings of the rooms of one shard, sans-IO: each publisher of a
//! room being recorded gets a WebM file (`DIR/ROOM/SESSION-UNIXTIME.webm`)
//! fed its VP8 and Opus frames (the SFU leaves out what this WebM cannot
//! hold, such as H.264; a publisher with nothing it can hold gets no
//! file); what to do to the files comes out as [`FileOp`]s, which the
//! shard's driver performs through io_uring in order. A file is finished
//! (last cluster, size and duration filled in, fdatasync) when recording
//! stops, the publisher leaves or the room closes, so a recording
//! outlives its room.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use crate::room::SessionId;
use crate::webm::{Media, Patch, Webm};

/// What to do to a recording's file.
#[derive(Debug, PartialEq, Eq)]
pub enum FileOp {
    /// Create the file (and its folder).
    Create { file: u64, path: PathBuf },
    /// Append bytes.
    Append { file: u64, bytes: Vec<u8> },
    /// Append the tail, write the patches, sync and close.
    Finish {
        file: u64,
        tail: Vec<u8>,
        patches: Vec<Patch>,
    },
}

struct Recorder {
    file: u64,
    webm: Webm,
    started: Instant,
}

/// The recorders of one shard.
pub struct Recorders {
    dir: Option<PathBuf>,
    next_file: u64,
    active: HashMap<SessionId, Recorder>,
    ops: VecDeque<FileOp>,
}

impl Recorders {
    /// Recorders writing under `dir` (`None`: recording is off).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            next_file: 1,
            active: HashMap::new(),
            ops: VecDeque::new(),
        }
    }

    /// Whether recordings can be made here.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// Starts recording publisher `session` of `room` (no-op if it is
    /// already); returns the file's name below the recordings folder.
    pub fn start(
        &mut self,
        room: &str,
        session: SessionId,
        tracks: (bool, bool),
        now: Instant,
        wall_secs: u64,
    ) -> Option<String> {
        let dir = self.dir.as_ref()?;
        if self.active.contains_key(&session) {
            return None;
        }
        let name = format!("{room}/{session}-{wall_secs}.webm");
        let file = self.next_file;
        self.next_file += 1;
        self.ops.push_back(FileOp::Create {
            file,
            path: dir.join(&name),
        });
        self.active.insert(
            session,
            Recorder {
                file,
                webm: Webm::new(tracks.0, tracks.1),
                started: now,
            },
        );
        Some(name)
    }

    /// Whether publisher `session` is being recorded.
    pub fn is_recording(&self, session: SessionId) -> bool {
        self.active.contains_key(&session)
    }

    /// A frame of publisher `session` received at `at`.
    pub fn frame(
        &mut self,
        session: SessionId,
        media: Media,
        at: Instant,
        keyframe: bool,
        data: &[u8],
    ) {
        let Some(rec) = self.active.get_mut(&session) else {
            return;
        };
        let ms = at.saturating_duration_since(rec.started).as_millis() as u64;
        let bytes = rec.webm.push(media, ms, keyframe, data);
        if !bytes.is_empty() {
            self.ops.push_back(FileOp::Append {
                file: rec.file,
                bytes,
            });
        }
    }

    /// Finishes publisher `session`'s file, if it has one.
    pub fn stop(&mut self, session: SessionId) {
        if let Some(mut rec) = self.active.remove(&session) {
            let (tail, patches) = rec.webm.finish();
            self.ops.push_back(FileOp::Finish {
                file: rec.file,
                tail,
                patches,
            });
        }
    }

    /// The next file operation to perform.
    pub fn next_op(&mut self) -> Option<FileOp> {
        self.ops.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_is_created_fed_and_finished_in_order() {
        let t0 = Instant::now();
        let mut r = Recorders::new(Some(PathBuf::from("/rec")));
        assert_eq!(
            r.start("room", 7, (false, true), t0, 100).as_deref(),
            Some("room/7-100.webm")
        );
        assert_eq!(
            r.start("room", 7, (false, true), t0, 101),
            None,
            "already recording"
        );
        r.frame(7, Media::Audio, t0, false, &[1; 30]);
        r.frame(8, Media::Audio, t0, false, &[1; 30]);
        r.stop(7);
        r.stop(7);
        assert_eq!(
            r.next_op(),
            Some(FileOp::Create {
                file: 1,
                path: PathBuf::from("/rec/room/7-100.webm")
            })
        );
        assert!(
            matches!(r.next_op(), Some(FileOp::Append { file: 1, .. })),
            "header"
        );
        assert!(
            matches!(r.next_op(), Some(FileOp::Finish { file: 1, ref patches, .. }) if patches.len() == 2)
        );
        assert_eq!(r.next_op(), None);
        assert!(!r.is_recording(7));
    }

    #[test]
    fn without_a_folder_nothing_records() {
        let mut r = Recorders::new(None);
        assert!(!r.enabled());
        assert_eq!(r.start("room", 1, (true, true), Instant::now(), 1), None);
        assert_eq!(r.next_op(), None);
    }
}
