//! Rooms from any shard: a room lives on the shard its id hashes to
//! (the placement table's default for `room:` keys; rooms are never
//! moved), and every request about it — create, join with an offer,
//! leave, list, close — is a mesh call to that shard, whose [`Sfu`]
//! answers. The HTTP API calls this from whichever shard took the request.
//!
//! Who may do what ([`Caller`]): the admin everything; an account opens
//! rooms, joins any room (its own sessions only for trickle and leave)
//! and closes and records the rooms it opened; an invitee joins its room.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::placement::PlacementKey;
use cairn_shards::{expect_reply, ShardId};
use rand::Rng;
use serde::Serialize;

use crate::events::RoomEvent;
use crate::room::{Owners, Role, RoomError, RoomLimits, SessionId};
use crate::sfu::{SessionInfo, Sfu, SfuError, SfuStats};

/// Who asks: the API's admin, a logged-in account (its address), or a
/// holder of the room's invite token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Account(String),
    Invited(String),
}

/// What a caller asks of a room.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// To join it or look at it.
    Join,
    /// To act on one of its sessions (trickle, leave).
    Session(SessionId),
    /// To close or record it.
    Own,
}

/// A request for the shard that owns a room.
#[derive(Debug, Clone)]
pub enum MediaRequest {
    Create {
        id: String,
        name: String,
        invite: String,
        limits: RoomLimits,
        /// The account opening it; `None` for the admin.
        owner: Option<String>,
    },
    Join {
        room: String,
        caller: Caller,
        role: Role,
        offer: String,
    },
    Leave {
        room: String,
        caller: Caller,
        session: SessionId,
    },
    Sessions {
        room: String,
        caller: Caller,
    },
    Close {
        room: String,
        caller: Caller,
    },
    /// Events of a room numbered above `after`.
    Events {
        room: String,
        caller: Caller,
        after: u64,
    },
    /// Trickled ICE candidates for a session (an SDP fragment).
    Candidates {
        room: String,
        caller: Caller,
        session: SessionId,
        fragment: String,
    },
    /// Starts (`on`) or stops recording a room.
    Record {
        room: String,
        caller: Caller,
        on: bool,
    },
    List,
}

/// A room as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomSummary {
    pub id: String,
    pub name: String,
    pub shard: ShardId,
    /// The account that opened it; `None` for the admin.
    pub owner: Option<String>,
    pub limits: RoomLimits,
    pub sessions: usize,
    pub publishers: usize,
    pub recording: bool,
}

/// A new room as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedRoom {
    pub id: String,
    pub name: String,
    pub shard: ShardId,
    pub invite: String,
    /// The account that opened it; `None` for the admin.
    pub owner: Option<String>,
    pub limits: RoomLimits,
}

/// The owning shard's answer.
#[derive(Debug)]
pub enum MediaReply {
    Done(Result<(), SfuError>),
    Joined(Result<(SessionId, String), SfuError>),
    Sessions(Result<Vec<SessionInfo>, SfuError>),
    Recording(Result<Vec<String>, SfuError>),
    Events(Result<(Vec<(u64, RoomEvent)>, bool), SfuError>),
    Added(Result<usize, SfuError>),
    List(Vec<RoomSummary>, SfuStats),
}

/// Why a media call failed.
#[derive(Debug)]
pub enum MediaError {
    Refused(SfuError),
    /// The owning shard could not be asked.
    Mesh(MeshError),
    /// The shard answered something else (a bug).
    Mismatch,
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(e) => e.fmt(f),
            Self::Mesh(e) => write!(f, "the room's shard did not answer: {e:?}"),
            Self::Mismatch => write!(f, "the room's shard answered out of turn"),
        }
    }
}

impl From<SfuError> for MediaError {
    fn from(e: SfuError) -> Self {
        Self::Refused(e)
    }
}

impl From<MeshError> for MediaError {
    fn from(e: MeshError) -> Self {
        Self::Mesh(e)
    }
}

/// The mesh that carries media requests; made before the shards start.
pub type MediaMesh = Mesh<MediaRequest, MediaReply>;

/// The shard that owns room `id`.
pub fn shard_of(id: &str, shards: usize) -> ShardId {
    (PlacementKey::room(id).stable_hash() % shards.max(1) as u64) as ShardId
}

/// A random token of `bytes` bytes, lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// Whether `caller` may have `access` to room `room`.
fn check(
    sfu: &Sfu,
    owners: &Owners,
    room: &str,
    caller: &Caller,
    access: Access,
) -> Result<(), SfuError> {
    let room = sfu.rooms().get(room)?;
    let allowed = match (caller, access) {
        (Caller::Admin, _) => true,
        (Caller::Invited(token), _) if !room.invited(token) => {
            return Err(SfuError::Room(RoomError::BadToken))
        }
        (Caller::Invited(_), access) => !matches!(access, Access::Own),
        (Caller::Account(_), Access::Join) => true,
        (Caller::Account(account), Access::Session(session)) => {
            owners.joined_by(&room.id, session, account)
        }
        (Caller::Account(account), Access::Own) => owners.owns(&room.id, account),
    };
    if allowed {
        Ok(())
    } else {
        Err(SfuError::Room(RoomError::NotOwner))
    }
}

fn handle(
    sfu: &RefCell<Sfu>,
    owners: &RefCell<Owners>,
    shard: ShardId,
    req: MediaRequest,
) -> MediaReply {
    let mut sfu = sfu.borrow_mut();
    let mut owners = owners.borrow_mut();
    match req {
        MediaRequest::Create {
            id,
            name,
            invite,
            limits,
            owner,
        } => MediaReply::Done(
            sfu.create_room(&id, &name, invite, limits)
                .map(|()| owners.opened(&id, owner)),
        ),
        MediaRequest::Join {
            room,
            caller,
            role,
            offer,
        } => MediaReply::Joined(
            check(&sfu, &owners, &room, &caller, Access::Join)
                .and_then(|()| sfu.join(&room, role, &offer, Instant::now()))
                .inspect(|(session, _)| {
                    if let (Caller::Account(account), Ok(r)) = (&caller, sfu.rooms().get(&room)) {
                        owners.joined(r, *session, account);
                    }
                }),
        ),
        MediaRequest::Leave {
            room,
            caller,
            session,
        } => MediaReply::Done(
            check(&sfu, &owners, &room, &caller, Access::Session(session))
                .and_then(|()| sfu.leave(&room, session)),
        ),
        MediaRequest::Sessions { room, caller } => MediaReply::Sessions(
            check(&sfu, &owners, &room, &caller, Access::Join).and_then(|()| sfu.sessions(&room)),
        ),
        MediaRequest::Close { room, caller } => MediaReply::Done(
            check(&sfu, &owners, &room, &caller, Access::Own)
                .and_then(|()| sfu.close_room(&room))
                .map(|()| owners.closed(&room)),
        ),
        MediaRequest::Events {
            room,
            caller,
            after,
        } => MediaReply::Events(
            check(&sfu, &owners, &room, &caller, Access::Join)
                .and_then(|()| sfu.events(&room, after)),
        ),
        MediaRequest::Candidates {
            room,
            caller,
            session,
            fragment,
        } => MediaReply::Added(
            check(&sfu, &owners, &room, &caller, Access::Session(session))
                .and_then(|()| sfu.add_candidates(&room, session, &fragment)),
        ),
        MediaRequest::Record { room, caller, on } => {
            let allowed = check(&sfu, &owners, &room, &caller, Access::Own);
            MediaReply::Recording(allowed.and_then(|()| {
                if on {
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    sfu.start_recording(&room, Instant::now(), wall)
                } else {
                    sfu.stop_recording(&room).map(|()| Vec::new())
                }
            }))
        }
        MediaRequest::List => {
            let rooms = sfu
                .rooms()
                .all()
                .map(|r| RoomSummary {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    shard,
                    owner: owners.owner(&r.id).map(str::to_string),
                    limits: r.limits,
                    sessions: r.sessions().count(),
                    publishers: r.publishers(),
                    recording: sfu.is_recording(&r.id),
                })
                .collect();
            MediaReply::List(rooms, sfu.stats())
        }
    }
}

/// The rooms of every shard, from this shard. Cheap to clone.
#[derive(Clone)]
pub struct MediaService {
    endpoint: Rc<MeshEndpoint<MediaRequest, MediaReply>>,
    recordings: Rc<PathBuf>,
}

impl MediaService {
    /// Joins the mesh as this shard, serving requests with `sfu`, whose
    /// recordings are kept under `recordings`.
    pub async fn start(
        mesh: &MediaMesh,
        shard: ShardId,
        sfu: Rc<RefCell<Sfu>>,
        recordings: PathBuf,
    ) -> Result<Self, MeshError> {
        let endpoint = mesh.join(shard).await?;
        let owners = RefCell::new(Owners::default());
        endpoint.serve(move |_from, req| {
            let reply = handle(&sfu, &owners, shard, req);
            async move { reply }
        })?;
        Ok(Self {
            endpoint: Rc::new(endpoint),
            recordings: Rc::new(recordings),
        })
    }

    /// The folder of the recordings (`ROOM/SESSION-UNIXTIME.webm` below).
    pub fn recordings(&self) -> &Path {
        &self.recordings
    }

    /// Room `room`'s events numbered above `after`, and whether some were
    /// dropped unseen.
    pub async fn events(
        &self,
        room: &str,
        caller: Caller,
        after: u64,
    ) -> Result<(Vec<(u64, RoomEvent)>, bool), MediaError> {
        let req = MediaRequest::Events {
            room: room.to_string(),
            caller,
            after,
        };
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Events,
            MediaError::Mismatch
        )
    }

    /// Adds trickled ICE candidates to a session; how many.
    pub async fn candidates(
        &self,
        room: &str,
        caller: Caller,
        session: SessionId,
        fragment: String,
    ) -> Result<usize, MediaError> {
        let req = MediaRequest::Candidates {
            room: room.to_string(),
            caller,
            session,
            fragment,
        };
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Added,
            MediaError::Mismatch
        )
    }

    /// Starts (`on`) or stops recording a room; the files started.
    pub async fn record(
        &self,
        room: &str,
        caller: Caller,
        on: bool,
    ) -> Result<Vec<String>, MediaError> {
        let req = MediaRequest::Record {
            room: room.to_string(),
            caller,
            on,
        };
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Recording,
            MediaError::Mismatch
        )
    }

    async fn call(&self, room: &str, req: MediaRequest) -> Result<MediaReply, MediaError> {
        let shard = shard_of(room, self.endpoint.shards());
        Ok(self.endpoint.call(shard, req).await?)
    }

    /// Opens a room (a random id when `id` is `None`) with a new invite
    /// token, for `owner` (an account; `None` for the admin).
    pub async fn create(
        &self,
        id: Option<String>,
        name: String,
        limits: RoomLimits,
        owner: Option<String>,
    ) -> Result<CreatedRoom, MediaError> {
        let id = id.unwrap_or_else(|| random_hex(8));
        let invite = random_hex(24);
        let req = MediaRequest::Create {
            id: id.clone(),
            name: name.clone(),
            invite: invite.clone(),
            limits,
            owner: owner.clone(),
        };
        match self.call(&id, req).await? {
            MediaReply::Done(Ok(())) => Ok(CreatedRoom {
                shard: shard_of(&id, self.endpoint.shards()),
                id,
                name,
                invite,
                owner,
                limits,
            }),
            MediaReply::Done(Err(e)) => Err(MediaError::Refused(e)),
            _ => Err(MediaError::Mismatch),
        }
    }

    /// Joins room `room` as `role` with an SDP offer: the session id and
    /// the SDP answer.
    pub async fn join(
        &self,
        room: &str,
        caller: Caller,
        role: Role,
        offer: String,
    ) -> Result<(SessionId, String), MediaError> {
        let req = MediaRequest::Join {
            room: room.to_string(),
            caller,
            role,
            offer,
        };
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Joined,
            MediaError::Mismatch
        )
    }

    /// Ends a session (a publisher's subscriptions with it).
    pub async fn leave(
        &self,
        room: &str,
        caller: Caller,
        session: SessionId,
    ) -> Result<(), MediaError> {
        let req = MediaRequest::Leave {
            room: room.to_string(),
            caller,
            session,
        };
        self.done(room, req).await
    }

    /// Closes a room and ends its sessions.
    pub async fn close(&self, room: &str, caller: Caller) -> Result<(), MediaError> {
        let req = MediaRequest::Close {
            room: room.to_string(),
            caller,
        };
        self.done(room, req).await
    }

    async fn done(&self, room: &str, req: MediaRequest) -> Result<(), MediaError> {
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Done,
            MediaError::Mismatch
        )
    }

    /// The sessions of a room.
    pub async fn sessions(
        &self,
        room: &str,
        caller: Caller,
    ) -> Result<Vec<SessionInfo>, MediaError> {
        let req = MediaRequest::Sessions {
            room: room.to_string(),
            caller,
        };
        expect_reply!(
            self.call(room, req).await?,
            MediaReply::Sessions,
            MediaError::Mismatch
        )
    }

    /// Every shard's rooms, and each shard's SFU counters.
    pub async fn list(&self) -> Result<(Vec<RoomSummary>, Vec<SfuStats>), MediaError> {
        let mut rooms = Vec::new();
        let mut stats = Vec::new();
        for reply in self.endpoint.broadcast(MediaRequest::List).await {
            match reply? {
                MediaReply::List(r, s) => {
                    rooms.extend(r);
                    stats.push(s);
                }
                _ => return Err(MediaError::Mismatch),
            }
        }
        Ok((rooms, stats))
    }
}
