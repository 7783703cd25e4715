//! The rooms of one shard and who is in them, without any media: ids,
//! invite tokens, limits and admission. [`crate::sfu::Sfu`] asks
//! [`Rooms::admit`] before it accepts an offer, so a participant over a
//! room's limits is refused before any ICE or DTLS state exists.
//! [`Owners`] remembers which account opened each room and joined each
//! session, for the media service's permission checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use subtle::ConstantTimeEq;

/// A room's id: 1..=64 of `A-Za-z0-9_-` (the API puts it in paths).
pub type RoomId = String;
/// A peer connection's id, unique on the node: the shard in the high byte.
pub type SessionId = u64;

/// The limits of one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoomLimits {
    /// Publishers at once (default 100).
    pub max_publishers: usize,
    /// Peer connections at once, publishers and subscriptions (default 1000).
    pub max_sessions: usize,
    /// The bitrate a publisher may send, in bits per second (default
    /// 400 kbps); the SFU asks for no more (REMB) and drops a publisher
    /// that keeps sending twice as much.
    pub max_bitrate_bps: u64,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_publishers: 100,
            max_sessions: 1000,
            max_bitrate_bps: 400_000,
        }
    }
}

/// What a session does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// Sends its tracks to the room.
    Publisher,
    /// Receives one publisher's tracks.
    Subscriber { publisher: SessionId },
}

/// Why a room refused something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    /// No room by that id (or it was closed).
    NoSuchRoom,
    /// The id is not 1..=64 of `A-Za-z0-9_-`.
    BadRoomId,
    /// A room by that id exists already.
    Exists,
    /// The room has `max_publishers` publishers.
    TooManyPublishers(usize),
    /// The room has `max_sessions` sessions.
    TooManySessions(usize),
    /// The publisher to subscribe to is not in the room.
    NoSuchPublisher(SessionId),
    /// The invite token does not match.
    BadToken,
    /// The room (or the session) belongs to another account: only its
    /// owner or the admin may do this.
    NotOwner,
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchRoom => write!(f, "no such room"),
            Self::BadRoomId => write!(f, "a room id is 1 to 64 of A-Z a-z 0-9 _ -"),
            Self::Exists => write!(f, "a room by that id exists"),
            Self::TooManyPublishers(n) => write!(f, "the room has its limit of {n} publishers"),
            Self::TooManySessions(n) => write!(f, "the room has its limit of {n} participants"),
            Self::NoSuchPublisher(id) => write!(f, "publisher {id} is not in the room"),
            Self::BadToken => write!(f, "the room's invite token does not match"),
            Self::NotOwner => write!(f, "only the owner or the admin may do this"),
        }
    }
}

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    /// Bearer token that lets a participant join without an account.
    pub invite: String,
    pub limits: RoomLimits,
    sessions: BTreeMap<SessionId, Role>,
}

impl Room {
    /// The room's sessions and their roles, oldest first.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, Role)> + '_ {
        self.sessions.iter().map(|(id, role)| (*id, *role))
    }

    /// How many publishers the room has.
    pub fn publishers(&self) -> usize {
        self.sessions
            .values()
            .filter(|r| **r == Role::Publisher)
            .count()
    }

    /// Whether `token` is this room's invite (constant time).
    pub fn invited(&self, token: &str) -> bool {
        self.invite.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// Whether `id` may name a room.
pub fn valid_room_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The rooms of one shard.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: BTreeMap<RoomId, Room>,
}

impl Rooms {
    /// Opens room `id`.
    pub fn create(
        &mut self,
        id: &str,
        name: &str,
        invite: String,
        limits: RoomLimits,
    ) -> Result<&Room, RoomError> {
        if !valid_room_id(id) {
            return Err(RoomError::BadRoomId);
        }
        if self.rooms.contains_key(id) {
            return Err(RoomError::Exists);
        }
        let room = Room {
            id: id.to_string(),
            name: name.to_string(),
            invite,
            limits,
            sessions: BTreeMap::new(),
        };
        Ok(self.rooms.entry(id.to_string()).or_insert(room))
    }

    /// Room `id`.
    pub fn get(&self, id: &str) -> Result<&Room, RoomError> {
        self.rooms.get(id).ok_or(RoomError::NoSuchRoom)
    }

    /// Every room, by id.
    pub fn all(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    /// Closes room `id`; returns its sessions, which the caller ends.
    pub fn close(&mut self, id: &str) -> Result<Vec<SessionId>, RoomError> {
        let room = self.rooms.remove(id).ok_or(RoomError::NoSuchRoom)?;
        Ok(room.sessions.into_keys().collect())
    }

    /// Checks that `role` may join room `id` now (limits, publisher
    /// present) without adding it.
    pub fn admit(&self, id: &str, role: Role) -> Result<(), RoomError> {
        let room = self.get(id)?;
        if room.sessions.len() >= room.limits.max_sessions {
            return Err(RoomError::TooManySessions(room.limits.max_sessions));
        }
        match role {
            Role::Publisher if room.publishers() >= room.limits.max_publishers => {
                Err(RoomError::TooManyPublishers(room.limits.max_publishers))
            }
            Role::Subscriber { publisher }
                if room.sessions.get(&publisher) != Some(&Role::Publisher) =>
            {
                Err(RoomError::NoSuchPublisher(publisher))
            }
            _ => Ok(()),
        }
    }

    /// Adds session `session` to room `id` after [`Rooms::admit`].
    pub fn join(&mut self, id: &str, session: SessionId, role: Role) -> Result<(), RoomError> {
        self.admit(id, role)?;
        if let Some(room) = self.rooms.get_mut(id) {
            room.sessions.insert(session, role);
        }
        Ok(())
    }

    /// Removes `session` from room `id`; with a publisher, its
    /// subscriptions too. Returns every session that left.
    pub fn leave(&mut self, id: &str, session: SessionId) -> Vec<SessionId> {
        let Some(room) = self.rooms.get_mut(id) else {
            return Vec::new();
        };
        let mut gone: BTreeSet<SessionId> = BTreeSet::new();
        if room.sessions.remove(&session).is_some() {
            gone.insert(session);
        }
        room.sessions.retain(|sid, role| match role {
            Role::Subscriber { publisher } if *publisher == session => {
                gone.insert(*sid);
                false
            }
            _ => true,
        });
        gone.into_iter().collect()
    }
}

/// Who opened each room of a shard (an account; none when the admin did)
/// and which account joined each of its sessions. The shard's media
/// service keeps it beside [`Rooms`], told of every room opened, joined
/// and closed.
#[derive(Debug, Default)]
pub struct Owners {
    rooms: HashMap<RoomId, Owned>,
}

#[derive(Debug, Default)]
struct Owned {
    owner: Option<String>,
    sessions: BTreeMap<SessionId, String>,
}

impl Owners {
    /// Room `id` was opened by `owner` (`None`: the admin); whatever a
    /// closed room of that id left is forgotten.
    pub fn opened(&mut self, id: &str, owner: Option<String>) {
        let owned = Owned {
            owner,
            sessions: BTreeMap::new(),
        };
        self.rooms.insert(id.to_string(), owned);
    }

    /// Room `id` was closed.
    pub fn closed(&mut self, id: &str) {
        self.rooms.remove(id);
    }

    /// The account that opened room `id` (`None` for the admin's rooms).
    pub fn owner(&self, id: &str) -> Option<&str> {
        self.rooms.get(id).and_then(|o| o.owner.as_deref())
    }

    /// Whether `account` opened room `id`.
    pub fn owns(&self, id: &str, account: &str) -> bool {
        self.owner(id) == Some(account)
    }

    /// `account` joined `room` as `session`; the sessions that have left
    /// the room since are forgotten.
    pub fn joined(&mut self, room: &Room, session: SessionId, account: &str) {
        let owned = self.rooms.entry(room.id.clone()).or_default();
        owned.sessions.retain(|s, _| room.sessions.contains_key(s));
        owned.sessions.insert(session, account.to_string());
    }

    /// Whether `account` joined room `id` as `session`.
    pub fn joined_by(&self, id: &str, session: SessionId, account: &str) -> bool {
        self.rooms
            .get(id)
            .and_then(|o| o.sessions.get(&session))
            .is_some_and(|a| a == account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms_with(limits: RoomLimits) -> Rooms {
        let mut rooms = Rooms::default();
        rooms
            .create("r1", "Room one", "secret".into(), limits)
            .expect("create");
        rooms
    }

    #[test]
    fn ids_are_checked_and_unique() {
        let mut rooms = Rooms::default();
        for bad in ["", "a/b", "a b", &"x".repeat(65), "é"] {
            assert_eq!(
                rooms
                    .create(bad, "", "t".into(), RoomLimits::default())
                    .err(),
                Some(RoomError::BadRoomId),
                "{bad:?}"
            );
        }
        rooms
            .create("ok_-9", "", "t".into(), RoomLimits::default())
            .expect("valid");
        assert_eq!(
            rooms
                .create("ok_-9", "", "t".into(), RoomLimits::default())
                .err(),
            Some(RoomError::Exists)
        );
    }

    #[test]
    fn publishers_and_sessions_are_limited() {
        let limits = RoomLimits {
            max_publishers: 2,
            max_sessions: 3,
            ..RoomLimits::default()
        };
        let mut rooms = rooms_with(limits);
        rooms.join("r1", 1, Role::Publisher).expect("first");
        rooms.join("r1", 2, Role::Publisher).expect("second");
        assert_eq!(
            rooms.join("r1", 3, Role::Publisher),
            Err(RoomError::TooManyPublishers(2))
        );
        rooms
            .join("r1", 4, Role::Subscriber { publisher: 1 })
            .expect("subscriber");
        assert_eq!(
            rooms.join("r1", 5, Role::Subscriber { publisher: 2 }),
            Err(RoomError::TooManySessions(3))
        );
        assert_eq!(rooms.get("r1").expect("room").sessions().count(), 3);
    }

    #[test]
    fn a_subscription_needs_a_publisher_in_the_room() {
        let mut rooms = rooms_with(RoomLimits::default());
        assert_eq!(
            rooms.join("r1", 9, Role::Subscriber { publisher: 1 }),
            Err(RoomError::NoSuchPublisher(1))
        );
        rooms.join("r1", 1, Role::Publisher).expect("publisher");
        rooms
            .join("r1", 2, Role::Subscriber { publisher: 1 })
            .expect("subscriber");
        assert_eq!(
            rooms.join("r1", 3, Role::Subscriber { publisher: 2 }),
            Err(RoomError::NoSuchPublisher(2)),
            "a subscriber is not a publisher"
        );
        assert_eq!(
            rooms.join("nope", 4, Role::Publisher),
            Err(RoomError::NoSuchRoom)
        );
    }

    #[test]
    fn a_publisher_leaving_takes_its_subscriptions() {
        let mut rooms = rooms_with(RoomLimits::default());
        rooms.join("r1", 1, Role::Publisher).expect("p1");
        rooms.join("r1", 2, Role::Publisher).expect("p2");
        rooms
            .join("r1", 3, Role::Subscriber { publisher: 1 })
            .expect("s1");
        rooms
            .join("r1", 4, Role::Subscriber { publisher: 2 })
            .expect("s2");
        assert_eq!(rooms.leave("r1", 1), vec![1, 3]);
        let left: Vec<_> = rooms.get("r1").expect("room").sessions().collect();
        assert_eq!(
            left,
            vec![(2, Role::Publisher), (4, Role::Subscriber { publisher: 2 })]
        );
        assert_eq!(rooms.close("r1"), Ok(vec![2, 4]));
        assert_eq!(rooms.get("r1").err(), Some(RoomError::NoSuchRoom));
    }

    #[test]
    fn invite_tokens_compare_whole() {
        let rooms = rooms_with(RoomLimits::default());
        let room = rooms.get("r1").expect("room");
        assert!(room.invited("secret"));
        assert!(!room.invited("secre"));
        assert!(!room.invited("secret2"));
        assert!(!room.invited(""));
    }

    #[test]
    fn owners_follow_rooms_and_sessions() {
        let mut rooms = rooms_with(RoomLimits::default());
        let mut owners = Owners::default();
        owners.opened("r1", Some("ann@example.com".into()));
        assert!(owners.owns("r1", "ann@example.com"));
        assert!(!owners.owns("r1", "bob@example.com"));
        rooms.join("r1", 1, Role::Publisher).expect("p1");
        owners.joined(rooms.get("r1").expect("room"), 1, "bob@example.com");
        assert!(owners.joined_by("r1", 1, "bob@example.com"));
        assert!(!owners.joined_by("r1", 1, "ann@example.com"));
        rooms.leave("r1", 1);
        rooms.join("r1", 2, Role::Publisher).expect("p2");
        owners.joined(rooms.get("r1").expect("room"), 2, "ann@example.com");
        assert!(!owners.joined_by("r1", 1, "bob@example.com"), "gone");
        owners.closed("r1");
        assert!(!owners.owns("r1", "ann@example.com"));
        owners.opened("r1", None);
        assert!(!owners.owns("r1", "ann@example.com"), "the admin's room");
    }
}
