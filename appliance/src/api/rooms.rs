//! Video rooms over the API (signalling in the style of WHIP/WHEP):
//!
//! - `POST /api/v1/rooms` (admin or account): opens a room; JSON `{id?,
//!   name?, max_publishers?, max_sessions?, max_bitrate_kbps?}`; answers
//!   the room with its invite token and its owner (the account, `null`
//!   for the admin).
//! - `GET /api/v1/rooms` (admin): every room and each shard's counters.
//! - `GET /api/v1/rooms/{id}`: its sessions; `DELETE` (its owner or the
//!   admin) closes it.
//! - `POST /api/v1/rooms/{id}/publish` with an SDP offer
//!   (`application/sdp`): `201` with the SDP answer and `Location:
//!   /api/v1/rooms/{id}/sessions/{session}`.
//! - `POST /api/v1/rooms/{id}/subscribe/{publisher}` with a receive-only
//!   offer: the same, for that publisher's tracks.
//! - `PATCH /api/v1/rooms/{id}/sessions/{session}` with
//!   `application/trickle-ice-sdpfrag` (`a=candidate:` lines): trickle ICE.
//! - `DELETE /api/v1/rooms/{id}/sessions/{session}`: leaves.
//! - `GET /api/v1/rooms/{id}/events` (WebSocket): the room's events as
//!   JSON text messages (`joined`, `left`, `track_added`,
//!   `active_speaker`, `recording`; `missed` when the reader fell behind,
//!   `closed` when the room closes), each with its `seq`; `?after=N`
//!   resumes after event N.
//! - `POST /api/v1/rooms/{id}/recording` (its owner or the admin):
//!   records each publisher to WebM (`201` with the files); `DELETE`
//!   stops and finishes the files.
//! - `GET /api/v1/recordings` (admin): every recording, also of closed
//!   rooms (`{room, file, size}`, `file` below `DATA/recordings`).
//!
//! Joining and looking need the admin's credentials, an account's session
//! token ([`super::sessions`]) or the room's invite token, as
//! `Authorization: Bearer` (or `?token=`, for browsers' WebSockets). An
//! account trickles to and leaves only the sessions it joined; an invitee
//! only joins (see [`Caller`]).

use std::rc::Rc;

use bytes::Bytes;
use cairn_http::json::{json_reply, no_content};
use cairn_http::websocket::{self, Message, WebSocket};
use cairn_http::{json_error, Reply, Request};
use cairn_media::room::{Role, RoomError, RoomLimits, SessionId};
use cairn_media::service::{Caller, MediaError};
use cairn_media::sfu::{SfuError, MAX_OFFER};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Response, StatusCode};
use serde::Deserialize;

use super::{sessions, Api};

/// The prefix of one room's routes.
pub const ONE: &str = "/api/v1/rooms/";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    id: Option<String>,
    name: Option<String>,
    max_publishers: Option<usize>,
    max_sessions: Option<usize>,
    max_bitrate_kbps: Option<u64>,
}

fn error(e: MediaError) -> Reply {
    let (status, code) = match &e {
        MediaError::Refused(SfuError::Room(r)) => match r {
            RoomError::NoSuchRoom | RoomError::NoSuchPublisher(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            RoomError::BadRoomId => (StatusCode::BAD_REQUEST, "bad_room_id"),
            RoomError::Exists => (StatusCode::CONFLICT, "exists"),
            RoomError::TooManyPublishers(_) | RoomError::TooManySessions(_) => {
                (StatusCode::CONFLICT, "room_full")
            }
            RoomError::BadToken => (StatusCode::FORBIDDEN, "bad_invite"),
            RoomError::NotOwner => (StatusCode::FORBIDDEN, "not_owner"),
        },
        MediaError::Refused(SfuError::BadOffer(_)) => (StatusCode::BAD_REQUEST, "bad_offer"),
        MediaError::Refused(SfuError::NoSuchSession) => (StatusCode::NOT_FOUND, "not_found"),
        MediaError::Refused(SfuError::NotRecording) => {
            (StatusCode::SERVICE_UNAVAILABLE, "not_recording")
        }
        MediaError::Mesh(_) | MediaError::Mismatch => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    json_error(status, code, &e.to_string())
}

/// `POST /api/v1/rooms`.
pub async fn create(api: Rc<Api>, req: Request) -> Reply {
    let owner = match caller(&api, &req).await {
        Ok(Caller::Admin) => None,
        Ok(Caller::Account(account)) => Some(account),
        Ok(Caller::Invited(_)) => {
            return sessions::unauthorized(
                "opening a room needs an account's session or the admin's credentials",
            )
        }
        Err(denied) => return denied,
    };
    let body: NewRoom = match cairn_http::json::read_json(req, api.max_body).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let defaults = RoomLimits::default();
    let limits = RoomLimits {
        max_publishers: body.max_publishers.unwrap_or(defaults.max_publishers),
        max_sessions: body.max_sessions.unwrap_or(defaults.max_sessions),
        max_bitrate_bps: body
            .max_bitrate_kbps
            .map_or(defaults.max_bitrate_bps, |k| k.saturating_mul(1000)),
    };
    let name = body.name.unwrap_or_default();
    match api.media.create(body.id, name, limits, owner).await {
        Ok(room) => json_reply(StatusCode::CREATED, &room),
        Err(e) => error(e),
    }
}

/// `GET /api/v1/rooms`.
pub async fn list(api: Rc<Api>, _req: Request) -> Reply {
    match api.media.list().await {
        Ok((rooms, shards)) => json_reply(
            StatusCode::OK,
            &serde_json::json!({
                "rooms": rooms,
                "shards": shards.iter().map(|s| serde_json::json!({
                    "received": s.received,
                    "dropped": s.dropped,
                    "forwarded_frames": s.forwarded_frames,
                    "forwarded_bytes": s.forwarded_bytes,
                    "keyframe_requests": s.keyframe_requests,
                    "timed_out": s.timed_out,
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => error(e),
    }
}

/// A recording as listed.
#[derive(serde::Serialize)]
struct Recording {
    room: String,
    file: String,
    size: u64,
}

/// Every `ROOM/NAME.webm` below `dir`.
fn recordings_in(dir: &std::path::Path) -> Vec<Recording> {
    let mut out = Vec::new();
    let Ok(rooms) = std::fs::read_dir(dir) else {
        return out;
    };
    for room in rooms.flatten() {
        let Ok(files) = std::fs::read_dir(room.path()) else {
            continue;
        };
        let room = room.file_name().to_string_lossy().into_owned();
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".webm") {
                continue;
            }
            let size = file.metadata().map_or(0, |m| m.len());
            out.push(Recording {
                file: format!("{room}/{name}"),
                room: room.clone(),
                size,
            });
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// `GET /api/v1/recordings`.
pub async fn recordings(api: Rc<Api>, _req: Request) -> Reply {
    let dir = api.media.recordings().to_path_buf();
    match api.services.blocking.run(move || recordings_in(&dir)).await {
        Ok(list) => json_reply(StatusCode::OK, &serde_json::json!({ "recordings": list })),
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the listing was lost",
        ),
    }
}

/// Who is calling: an account, for a session token (a bearer token or
/// `?token=` starting with [`sessions::PREFIX`], refused unless valid);
/// the admin (Bearer API token or Basic); else the bearer of a token that
/// the room's shard checks as its invite.
async fn caller(api: &Api, req: &Request) -> Result<Caller, Reply> {
    let token = sessions::bearer(req)
        .map(str::to_string)
        .or_else(|| super::query(req).remove("token"));
    if let Some(session) = token.as_deref().filter(|t| t.starts_with(sessions::PREFIX)) {
        let account = sessions::verify(api, session).await?.account;
        return match api.services.directory.class_of(account.clone()).await {
            Ok(class) if class.features.video => Ok(Caller::Account(account)),
            Ok(_) => Err(json_error(
                StatusCode::FORBIDDEN,
                "feature_disabled",
                "video is not enabled for this account's class of service",
            )),
            Err(e) => Err(super::errors::directory(e)),
        };
    }
    match api.auth.check(req, &api.services.blocking).await {
        Ok(_) => Ok(Caller::Admin),
        Err(denied) => token.map(Caller::Invited).ok_or(denied),
    }
}

/// How often an event stream asks the room's shard for news.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Streams room `room`'s events to a WebSocket until either side closes.
async fn stream_events(api: Rc<Api>, room: String, caller: Caller, mut after: u64, ws: WebSocket) {
    let mut ws = ws;
    loop {
        match api.media.events(&room, caller.clone(), after).await {
            Ok((events, missed)) => {
                if missed && ws.send_text(r#"{"event":"missed"}"#).await.is_err() {
                    return;
                }
                for (seq, event) in events {
                    after = seq;
                    let mut value = serde_json::to_value(&event).unwrap_or_default();
                    if let Some(map) = value.as_object_mut() {
                        map.insert("seq".into(), seq.into());
                    }
                    if ws.send_text(&value.to_string()).await.is_err() {
                        return;
                    }
                }
            }
            Err(_) => {
                let _ = ws.send_text(r#"{"event":"closed"}"#).await;
                let _ = ws.close(1000).await;
                return;
            }
        }
        let wait = async {
            cairn_shards::time::sleep(EVENTS_POLL).await;
            None
        };
        match futures_lite::future::or(async { Some(ws.recv().await) }, wait).await {
            None | Some(Ok(Message::Text(_) | Message::Binary(_))) => {}
            Some(Ok(Message::Closed) | Err(_)) => return,
        }
    }
}

/// Reads an SDP offer body.
async fn offer(req: Request) -> Result<String, Reply> {
    body_text(req, "application/sdp").await
}

/// Reads a text body of type `content_type` (at most an offer's size).
async fn body_text(req: Request, content_type: &str) -> Result<String, Reply> {
    let matches = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with(content_type));
    if !matches {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_type",
            &format!("the body must be sent as {content_type}"),
        ));
    }
    let body = Limited::new(req.into_body(), MAX_OFFER)
        .collect()
        .await
        .map_err(|_| {
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the body is at most {MAX_OFFER} bytes"),
            )
        })?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_offer",
            "the body is not UTF-8",
        )
    })
}

fn answer(room: &str, session: SessionId, sdp: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(sdp)));
    *reply.status_mut() = StatusCode::CREATED;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/sdp"),
    );
    if let Ok(location) = header::HeaderValue::from_str(&format!("{ONE}{room}/sessions/{session}"))
    {
        headers.insert(header::LOCATION, location);
    }
    reply
}

/// Every route below `/api/v1/rooms/`, by method and the rest of the path.
pub async fn one(api: Rc<Api>, req: Request) -> Reply {
    let tail = req.uri().path().strip_prefix(ONE).unwrap_or("").to_string();
    let parts: Vec<&str> = tail.split('/').collect();
    let method = req.method().clone();
    let caller = match caller(&api, &req).await {
        Ok(caller) => caller,
        Err(denied) => return denied,
    };
    let result = match (&method, parts.as_slice()) {
        (&Method::GET, [room, "events"]) => {
            let after = super::query(&req)
                .get("after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if let Err(e) = api.media.events(room, caller.clone(), after).await {
                return error(e);
            }
            let mut req = req;
            let (reply, upgrade) = match websocket::upgrade(&mut req) {
                Ok(accepted) => accepted,
                Err(reply) => return *reply,
            };
            let (api, room) = (api.clone(), room.to_string());
            cairn_shards::spawn_detached(async move {
                if let Ok(ws) = WebSocket::accept(upgrade).await {
                    stream_events(api, room, caller, after, ws).await;
                }
            });
            Ok(reply)
        }
        (&Method::PATCH, [room, "sessions", session]) => {
            let Ok(session) = session.parse::<SessionId>() else {
                return json_error(StatusCode::NOT_FOUND, "not_found", "no such session");
            };
            let fragment = match body_text(req, "application/trickle-ice-sdpfrag").await {
                Ok(text) => text,
                Err(reply) => return reply,
            };
            api.media
                .candidates(room, caller, session, fragment)
                .await
                .map(|_| no_content())
        }
        (&Method::GET, [room]) => match api.media.sessions(room, caller).await {
            Ok(sessions) => Ok(json_reply(
                StatusCode::OK,
                &serde_json::json!({ "id": room, "sessions": sessions }),
            )),
            Err(e) => Err(e),
        },
        (&Method::DELETE, [room]) => api.media.close(room, caller).await.map(|()| no_content()),
        (&Method::POST, [room, "publish"]) => {
            let sdp = match offer(req).await {
                Ok(sdp) => sdp,
                Err(reply) => return reply,
            };
            api.media
                .join(room, caller, Role::Publisher, sdp)
                .await
                .map(|(session, sdp)| answer(room, session, sdp))
        }
        (&Method::POST, [room, "subscribe", publisher]) => {
            let Ok(publisher) = publisher.parse::<SessionId>() else {
                return json_error(StatusCode::NOT_FOUND, "not_found", "no such publisher");
            };
            let sdp = match offer(req).await {
                Ok(sdp) => sdp,
                Err(reply) => return reply,
            };
            api.media
                .join(room, caller, Role::Subscriber { publisher }, sdp)
                .await
                .map(|(session, sdp)| answer(room, session, sdp))
        }
        (&Method::POST, [room, "recording"]) => {
            api.media.record(room, caller, true).await.map(|files| {
                json_reply(StatusCode::CREATED, &serde_json::json!({ "files": files }))
            })
        }
        (&Method::DELETE, [room, "recording"]) => api
            .media
            .record(room, caller, false)
            .await
            .map(|_| no_content()),
        (&Method::DELETE, [room, "sessions", session]) => {
            let Ok(session) = session.parse::<SessionId>() else {
                return json_error(StatusCode::NOT_FOUND, "not_found", "no such session");
            };
            api.media
                .leave(room, caller, session)
                .await
                .map(|()| no_content())
        }
        _ => return json_error(StatusCode::NOT_FOUND, "not_found", "no such room route"),
    };
    result.unwrap_or_else(error)
}
