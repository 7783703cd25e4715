//! The video rooms' API with real clients: reqwest for the HTTP calls,
//! str0m for the SDP offers, tungstenite for the events WebSocket.
//! (The media path itself is exercised with aiortc in the conformance
//! suite, `.ci/conformance.d/60-video.sh`.)

use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_tests::webrtc::offer;
use cairn_tests::{AdminApi, Setup};
use str0m::media::{Direction, MediaKind};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The next JSON event, or `None` after `within`.
fn next_event(
    ws: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    within: Duration,
) -> Option<serde_json::Value> {
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(within)).expect("timeout");
    }
    match ws.read() {
        Ok(Message::Text(text)) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

/// Reads events until one has `event == kind`.
fn wait_for(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, kind: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(event) = next_event(ws, Duration::from_secs(1)) {
            if event["event"] == kind {
                return event;
            }
        }
    }
    panic!("no {kind} event within 5 s");
}

#[test]
fn rooms_sessions_trickle_and_events_over_a_websocket() {
    let setup = Setup::new("");
    let data = &setup.data;
    let appliance = setup.start();
    let api = AdminApi::new(&appliance, data);
    let (http, base) = (&api.client, &api.base);

    let (status, room) = api.post(
        "/rooms",
        &serde_json::json!({ "id": "standup", "name": "Stand-up", "max_sessions": 3 }),
    );
    assert_eq!(status, 201, "{room}");
    let invite = room["invite"].as_str().expect("invite").to_string();
    assert_eq!(room["limits"]["max_sessions"], 3);

    let (again, _) = api.post("/rooms", &serde_json::json!({ "id": "standup" }));
    assert_eq!(again, 409);

    let plain = http
        .get(format!("{base}/rooms/standup/events"))
        .bearer_auth(&invite)
        .send()
        .expect("GET events without upgrade");
    assert_eq!(plain.status(), 426, "a plain GET is told to upgrade");

    let url = format!(
        "ws://{}/api/v1/rooms/standup/events?token={invite}",
        appliance.http
    );
    let (mut ws, response) = tungstenite::connect(url).expect("websocket handshake");
    assert_eq!(response.status(), 101);

    let bad_token = tungstenite::connect(format!(
        "ws://{}/api/v1/rooms/standup/events?token=nope",
        appliance.http
    ));
    assert!(bad_token.is_err(), "a wrong invite gets no stream");

    let published = http
        .post(format!("{base}/rooms/standup/publish"))
        .bearer_auth(&invite)
        .header("content-type", "application/sdp")
        .body(offer(&[
            (MediaKind::Audio, Direction::SendOnly),
            (MediaKind::Video, Direction::SendOnly),
        ]))
        .send()
        .expect("publish");
    assert_eq!(published.status(), 201);
    assert_eq!(
        published.headers()["content-type"],
        "application/sdp",
        "the answer is SDP"
    );
    let location = published.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let answer = published.text().expect("answer");
    assert!(answer.starts_with("v=0"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "the SFU is ICE-lite");
    let session: u64 = location
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("session id");

    let joined = wait_for(&mut ws, "joined");
    assert_eq!(joined["session"], session);
    assert_eq!(joined["role"], "publisher");
    let mut kinds = vec![
        wait_for(&mut ws, "track_added")["kind"].clone(),
        wait_for(&mut ws, "track_added")["kind"].clone(),
    ];
    kinds.sort_by_key(|k| k.to_string());
    assert_eq!(kinds, vec!["audio", "video"]);

    let session_url = format!("http://{}{location}", appliance.http);
    let trickle = |body: &str, content_type: &str| {
        http.patch(&session_url)
            .bearer_auth(&invite)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .expect("PATCH")
            .status()
    };
    let fragment =
        "a=ice-ufrag:abcd\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n";
    assert_eq!(trickle(fragment, "application/trickle-ice-sdpfrag"), 204);
    assert_eq!(
        trickle(
            "a=candidate:nonsense\r\n",
            "application/trickle-ice-sdpfrag"
        ),
        400
    );
    assert_eq!(trickle(fragment, "text/plain"), 415);

    let garbage = http
        .post(format!("{base}/rooms/standup/publish"))
        .bearer_auth(&invite)
        .header("content-type", "application/sdp")
        .body("m=nonsense")
        .send()
        .expect("bad offer");
    assert_eq!(garbage.status(), 400);
    let reason: serde_json::Value = garbage.json().expect("json");
    assert_eq!(reason["error"]["code"], "bad_offer");

    let subscriber_offer = offer(&[(MediaKind::Video, Direction::RecvOnly)]);
    let subscribe = |publisher: u64| {
        http.post(format!("{base}/rooms/standup/subscribe/{publisher}"))
            .bearer_auth(&invite)
            .header("content-type", "application/sdp")
            .body(subscriber_offer.clone())
            .send()
            .expect("subscribe")
            .status()
    };
    assert_eq!(subscribe(session + 1000), 404, "no such publisher");
    assert_eq!(subscribe(session), 201);
    assert_eq!(subscribe(session), 201);
    assert_eq!(subscribe(session), 409, "max_sessions is 3");

    let (status, listed) = api.get("/rooms");
    assert_eq!(status, 200);
    assert_eq!(listed["rooms"][0]["id"], "standup");
    assert_eq!(listed["rooms"][0]["sessions"], 3);
    assert_eq!(listed["shards"].as_array().map(Vec::len), Some(2));

    let left = http
        .delete(&session_url)
        .bearer_auth(&invite)
        .send()
        .expect("leave");
    assert_eq!(left.status(), 204);
    assert_eq!(wait_for(&mut ws, "left")["session"], session);

    let by_invite = http
        .delete(format!("{base}/rooms/standup"))
        .bearer_auth(&invite)
        .send()
        .expect("close as guest");
    assert_eq!(by_invite.status(), 403, "only the admin closes a room");
    assert_eq!(api.delete("/rooms/standup"), 204);
    wait_for(&mut ws, "closed");
    let metrics = http
        .get(format!("http://{}/metrics", appliance.http))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("cairn_media_rooms{shard=\"0\"}"),
        "media metrics are exported",
    );
}
