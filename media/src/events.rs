//! What happens in a room, for the participants' event streams: who
//! joined and left, which tracks appeared, who speaks, recording on and
//! off. Each room keeps its last events numbered in order; a reader asks
//! for those after the last number it saw (and learns when it fell so far
//! behind that some were dropped).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::room::{Role, SessionId};

/// Events a room keeps for slow readers.
pub const KEPT: usize = 256;

/// One thing that happened in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RoomEvent {
    Joined {
        session: SessionId,
        #[serde(flatten)]
        role: Role,
    },
    Left {
        session: SessionId,
    },
    TrackAdded {
        session: SessionId,
        kind: &'static str,
    },
    ActiveSpeaker {
        session: SessionId,
    },
    Recording {
        on: bool,
    },
}

/// The numbered events of one room.
#[derive(Debug, Default)]
pub struct EventLog {
    next: u64,
    kept: VecDeque<(u64, RoomEvent)>,
}

impl EventLog {
    /// Adds an event.
    pub fn push(&mut self, event: RoomEvent) {
        self.next += 1;
        self.kept.push_back((self.next, event));
        while self.kept.len() > KEPT {
            self.kept.pop_front();
        }
    }

    /// The events numbered above `after`, and whether some of them were
    /// already dropped.
    pub fn after(&self, after: u64) -> (Vec<(u64, RoomEvent)>, bool) {
        let missed = self
            .kept
            .front()
            .is_some_and(|(first, _)| *first > after + 1);
        let events = self
            .kept
            .iter()
            .filter(|(n, _)| *n > after)
            .cloned()
            .collect();
        (events, missed)
    }
}

/// How often the active speaker is decided.
const SPEAKER_EVERY: Duration = Duration::from_millis(500);
/// Audio quieter than this (in −dBov, RFC 6464) is silence.
const SILENCE: u32 = 50;

/// Who speaks in one room, from the publishers' audio levels (RFC 6464
/// header extension, 0 = loudest, 127 = silence).
#[derive(Debug, Default)]
pub struct Speakers {
    levels: HashMap<SessionId, (u32, u32)>,
    current: Option<SessionId>,
    decided: Option<Instant>,
}

impl Speakers {
    /// A packet of `session` with `level`.
    pub fn observe(&mut self, session: SessionId, level: i8) {
        let entry = self.levels.entry(session).or_insert((0, 0));
        entry.0 += u32::from(level.unsigned_abs().min(127));
        entry.1 += 1;
    }

    /// Every half second: the new active speaker, if it changed (the
    /// loudest publisher on average, if any was louder than silence).
    pub fn decide(&mut self, now: Instant) -> Option<SessionId> {
        if self
            .decided
            .is_some_and(|t| now.duration_since(t) < SPEAKER_EVERY)
        {
            return None;
        }
        self.decided = Some(now);
        let loudest = self
            .levels
            .drain()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(s, (sum, n))| (sum / n, s))
            .filter(|(avg, _)| *avg < SILENCE)
            .min();
        let speaker = loudest.map(|(_, s)| s)?;
        (self.current != Some(speaker)).then(|| {
            self.current = Some(speaker);
            speaker
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_what_they_have_not_seen() {
        let mut log = EventLog::default();
        log.push(RoomEvent::Recording { on: true });
        log.push(RoomEvent::Left { session: 3 });
        let (events, missed) = log.after(0);
        assert_eq!(events.len(), 2);
        assert!(!missed);
        assert_eq!(log.after(1).0, vec![(2, RoomEvent::Left { session: 3 })]);
        assert!(log.after(2).0.is_empty());
    }

    #[test]
    fn a_slow_reader_learns_it_missed_some() {
        let mut log = EventLog::default();
        for session in 0..(KEPT as u64 + 10) {
            log.push(RoomEvent::Left { session });
        }
        let (events, missed) = log.after(0);
        assert!(missed);
        assert_eq!(events.len(), KEPT);
        assert!(!log.after(20).1);
    }

    #[test]
    fn events_serialize_as_tagged_json() {
        let joined = RoomEvent::Joined {
            session: 5,
            role: Role::Subscriber { publisher: 2 },
        };
        let json = serde_json::to_string(&joined).expect("json");
        assert_eq!(
            json,
            r#"{"event":"joined","session":5,"role":"subscriber","publisher":2}"#
        );
    }

    #[test]
    fn the_loudest_publisher_becomes_the_speaker_once() {
        let t0 = Instant::now();
        let mut s = Speakers::default();
        s.observe(1, 30);
        s.observe(2, 10);
        s.observe(2, 20);
        assert_eq!(s.decide(t0), Some(2));
        s.observe(2, 15);
        assert_eq!(s.decide(t0 + Duration::from_millis(100)), None, "too soon");
        assert_eq!(s.decide(t0 + Duration::from_millis(600)), None, "unchanged");
        s.observe(1, 5);
        s.observe(2, 60);
        assert_eq!(s.decide(t0 + Duration::from_millis(1200)), Some(1));
        s.observe(1, 100);
        assert_eq!(
            s.decide(t0 + Duration::from_millis(1800)),
            None,
            "silence changes nothing"
        );
    }
}
