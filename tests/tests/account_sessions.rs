//! Account sessions of the HTTP API against the real binary, with reqwest:
//! login (password, app password, wrong and unknown), the session token
//! opening rooms (an account opens a room and publishes into it with a
//! str0m offer; another account joins but may not close it) and never the
//! admin API, logout, tampering, and a restart on the same data directory
//! (an unrevoked token still works, a revoked one still does not).

use std::time::Duration;

use base64::Engine;

use cairn_tests::webrtc::offer;
use cairn_tests::{AdminApi, Appliance, Setup};
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};
use str0m::media::{Direction, MediaKind};

const PASSWORD: &str = "correct horse battery";

/// An offer to publish audio and video.
fn publish_offer() -> String {
    offer(&[
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Video, Direction::SendOnly),
    ])
}

/// The API as an account (or anyone) sees it: no admin token.
struct AccountClient {
    http: Client,
    base: String,
}

impl AccountClient {
    fn new(appliance: &Appliance) -> Self {
        Self {
            http: Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base: format!("http://{}/api/v1", appliance.http),
        }
    }

    /// `POST /rooms` with `body`, as the bearer of `token`.
    fn create_room(&self, body: &Value, token: &str) -> Response {
        self.http
            .post(format!("{}/rooms", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .expect("create a room")
    }

    /// `POST /session`: the status and the JSON body.
    fn login(&self, user: &str, password: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/session", self.base))
            .json(&json!({ "user": user, "password": password }))
            .send()
            .expect("POST /session");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// A session token for `user`; panics unless the login succeeds.
    fn token(&self, user: &str, password: &str) -> String {
        let (status, body) = self.login(user, password);
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    fn send(&self, method: Method, path: &str, token: &str) -> Response {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .expect("request")
    }

    fn status(&self, method: Method, path: &str, token: &str) -> u16 {
        self.send(method, path, token).status().as_u16()
    }

    /// `GET /session` with `token`: the status and the JSON body.
    fn session(&self, token: &str) -> (u16, Value) {
        let r = self.send(Method::GET, "/session", token);
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// Publishes into `room`: the status, the error code (if any) and the
    /// session's path (`Location`).
    fn publish(&self, room: &str, token: &str) -> (u16, Option<String>) {
        let r = self
            .http
            .post(format!("{}/rooms/{room}/publish", self.base))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(publish_offer())
            .send()
            .expect("publish");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        if status == 201 {
            let answer = r.text().expect("answer");
            assert!(answer.starts_with("v=0"), "an SDP answer: {answer}");
        }
        (status, location)
    }
}

fn error_code(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    (status, body["error"]["code"].clone())
}

#[test]
fn account_sessions_open_rooms_and_survive_a_restart() {
    let setup = Setup::new("");
    let data = &setup.data;
    let appliance = setup.start();
    let admin = AdminApi::new(&appliance, data);
    let (ann, bob) = ("ann@example.com", "bob@example.com");
    admin.provision("example.com", &[ann.into(), bob.into()], PASSWORD);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("session-key"))
            .expect("the key file")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the signing key is private");

    let c = AccountClient::new(&appliance);
    let (status, body) = c.login(ann, PASSWORD);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["account"], ann);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expires = body["expires_at"].as_u64().expect("expires_at");
    assert!(expires > now + 11 * 3600 && expires <= now + 12 * 3600 + 60);
    let ann_token = body["token"].as_str().expect("token").to_string();
    assert!(ann_token.starts_with("cs1."), "{ann_token}");

    let (status, body) = c.login(ann, "wrong password");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = c.login("nobody@example.com", PASSWORD);
    assert_eq!(status, 401, "an unknown user is refused alike: {body}");
    let (status, body) = c.login(ann, "");
    assert_eq!(status, 401, "{body}");
    // The failed logins are audited with the peer's address and protocol.
    let (_, audit) = admin.get("/audit?action=auth.failed");
    let failed = audit["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["target"] == ann))
        .expect("an auth.failed entry for ann");
    assert_eq!(failed["ip"].as_str(), Some("127.0.0.1"), "{failed}");

    let (status, app) = admin.post(
        &format!("/accounts/{bob}/app-passwords"),
        &json!({ "name": "phone" }),
    );
    assert_eq!(status, 201, "{app}");
    let bob_token = c.token(bob, app["password"].as_str().expect("password"));

    let (status, body) = c.session(&ann_token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"], ann);
    assert_eq!(body["expires_at"], expires);
    let (status, _) = c.session(&admin.token);
    assert_eq!(status, 401, "the API token is not a session");

    for admin_route in ["/accounts", "/domains", "/rooms", "/audit"] {
        assert_eq!(
            c.status(Method::GET, admin_route, &ann_token),
            401,
            "a session token does not open {admin_route}"
        );
    }

    // Ann opens a room and publishes into it.
    let r = c.create_room(&json!({ "id": "anns-room", "name": "Ann's" }), &ann_token);
    assert_eq!(r.status(), 201);
    let room: Value = r.json().expect("json");
    assert_eq!(room["owner"], ann);
    let invite = room["invite"].as_str().expect("invite").to_string();
    let (status, ann_session) = c.publish("anns-room", &ann_token);
    assert_eq!(status, 201);
    let ann_session = ann_session.expect("location");
    let (status, listed) = admin.get("/rooms");
    assert_eq!(status, 200);
    assert_eq!(listed["rooms"][0]["owner"], ann);

    // Bob joins Ann's room but may not close it, record it or end Ann's
    // session; an invitee may not close it either.
    let (status, bob_session) = c.publish("anns-room", &bob_token);
    assert_eq!(status, 201);
    let bob_session = bob_session.expect("location");
    assert_eq!(
        error_code(c.send(Method::DELETE, "/rooms/anns-room", &bob_token)),
        (403, json!("not_owner"))
    );
    assert_eq!(
        error_code(c.send(Method::POST, "/rooms/anns-room/recording", &bob_token)),
        (403, json!("not_owner"))
    );
    let ann_session_path = ann_session.trim_start_matches("/api/v1");
    assert_eq!(
        c.status(Method::DELETE, ann_session_path, &bob_token),
        403,
        "an account leaves only its own sessions"
    );
    assert_eq!(
        c.status(Method::DELETE, "/rooms/anns-room", &invite),
        403,
        "an invitee only joins"
    );
    assert_eq!(
        c.status(
            Method::DELETE,
            bob_session.trim_start_matches("/api/v1"),
            &bob_token
        ),
        204
    );
    let r = c.send(Method::GET, "/rooms/anns-room", &bob_token);
    assert_eq!(r.status(), 200);
    let body: Value = r.json().expect("sessions");
    assert_eq!(body["sessions"].as_array().map(Vec::len), Some(1), "{body}");

    // A tampered token is refused: another account in the payload, a
    // changed MAC, a cut one.
    let (signed, tag) = ann_token.rsplit_once('.').expect("tag");
    let (_, payload) = signed.split_once('.').expect("payload");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(b64.decode(payload).expect("base64url")).expect("utf-8");
    assert!(claims.contains(ann), "{claims}");
    let as_bob = b64.encode(claims.replace(ann, bob));
    let other_tag = format!(
        "{}{}",
        if tag.starts_with('A') { "B" } else { "A" },
        &tag[1..]
    );
    for forged in [
        format!("cs1.{as_bob}.{tag}"),
        format!("{signed}.{other_tag}"),
        format!("{signed}.{}", &tag[..tag.len() - 2]),
    ] {
        assert_eq!(c.session(&forged).0, 401, "{forged}");
        assert_eq!(c.publish("anns-room", &forged).0, 401, "{forged}");
    }

    // Logging out revokes Bob's token everywhere.
    assert_eq!(c.status(Method::DELETE, "/session", &bob_token), 204);
    assert_eq!(c.session(&bob_token).0, 401);
    assert_eq!(c.publish("anns-room", &bob_token).0, 401);
    assert_eq!(c.status(Method::DELETE, "/session", &bob_token), 401);
    let bob_again = c.token(bob, PASSWORD);
    assert_eq!(c.session(&bob_again).0, 200, "a new login works");

    // After a restart, Ann's token still works and Bob's revoked one not.
    let status = appliance
        .stop(libc::SIGTERM, Duration::from_secs(15))
        .expect("stops");
    assert!(status.success(), "{status:?}");
    let appliance = setup.start();
    let c = AccountClient::new(&appliance);
    let (status, body) = c.session(&ann_token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"], ann);
    assert_eq!(c.session(&bob_token).0, 401, "still revoked");
    assert_eq!(c.session(&bob_again).0, 200);

    // Ann owns the rooms she opens (rooms live in memory: a new one).
    let r = c.create_room(&json!({ "id": "again" }), &ann_token);
    assert_eq!(r.status(), 201);
    assert_eq!(c.status(Method::DELETE, "/rooms/again", &bob_again), 403);
    assert_eq!(c.status(Method::DELETE, "/rooms/again", &ann_token), 204);

    // A class of service without video: its accounts' tokens open no room.
    let admin = AdminApi::new(&appliance, data);
    let (status, body) = admin.post(
        "/classes",
        &json!({ "name": "no-video", "features": { "video": false } }),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin.patch(
        &format!("/accounts/{bob}"),
        &json!({ "class_of_service": "no-video" }),
    );
    assert_eq!(status, 200, "{body}");
    let r = c.create_room(&json!({ "id": "bobs" }), &bob_again);
    let (status, code) = error_code(r);
    assert_eq!((status, code.as_str()), (403, Some("feature_disabled")));

    // A disabled account's sessions end.
    let (status, body) = admin.patch(&format!("/accounts/{ann}"), &json!({ "status": "Locked" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.session(&ann_token).0, 401, "a locked account");
}
