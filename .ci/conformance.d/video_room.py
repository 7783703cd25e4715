"""A meeting through Cairn's SFU with aiortc: one publisher sends a known
video pattern (320x240, luma 180) and audio; two subscribers receive
frames, one leaves, a late one joins and must get a decodable frame (a
keyframe) quickly. Bad offers and full rooms must be refused with clear
errors. Prints one line per check; exits non-zero on the first failure.

The room's event stream (a WebSocket, with the websockets package) must
report the joins, tracks, the departure, the recording and the publisher
as the active speaker (it sends a tone). The first publisher is recorded for a few seconds; ffprobe must read
VP8 and Opus from the WebM and a duration within 10 % of the recording
time.

Usage: video_room.py HTTP_BASE ADMIN_TOKEN DATA_DIR
"""

import asyncio
import fractions
import json
import math
import threading
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from websockets.sync.client import connect as ws_connect

# Loopback only: no STUN server, no other host address.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]

BASE, ADMIN, DATA = sys.argv[1], sys.argv[2], sys.argv[3]
WIDTH, HEIGHT, LUMA = 320, 240, 180


def http(method, path, token, body=None, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def check(name, ok, detail=""):
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else f": {detail}"))
    if not ok:
        sys.exit(1)


class Pattern(VideoStreamTrack):
    """320x240 frames of one grey (Y=180), 30 per second."""

    def __init__(self):
        super().__init__()
        self.sent = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        frame.planes[0].update(bytes([LUMA]) * (frame.planes[0].line_size * HEIGHT))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * (HEIGHT // 2)))
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class Tone(AudioStreamTrack):
    """A 440 Hz tone at half scale, 20 ms frames (so the publisher speaks)."""

    def __init__(self):
        super().__init__()
        self.samples = 0

    async def recv(self):
        frame = await super().recv()
        n = frame.samples
        pcm = bytearray()
        for i in range(n):
            v = int(16000 * math.sin(2 * math.pi * 440 * (self.samples + i) / 48000))
            pcm += v.to_bytes(2, "little", signed=True)
        self.samples += n
        tone = AudioFrame(format="s16", layout="mono", samples=n)
        tone.planes[0].update(bytes(pcm))
        tone.pts, tone.sample_rate, tone.time_base = frame.pts, frame.sample_rate, frame.time_base
        return tone


class Events(threading.Thread):
    """Reads a room's event stream into a list until it closes."""

    def __init__(self, room, token):
        super().__init__(daemon=True)
        url = BASE.replace("http://", "ws://") + f"/api/v1/rooms/{room}/events?token={token}"
        self.ws = ws_connect(url, open_timeout=5)
        self.events = []
        self.start()

    def run(self):
        try:
            for message in self.ws:
                self.events.append(json.loads(message))
        except Exception:
            return

    def of(self, kind, **fields):
        return [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())]


def pc():
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def offer_answer(conn, path, token):
    await conn.setLocalDescription(await conn.createOffer())
    status, headers, body = http("POST", path, token, conn.localDescription.sdp, "application/sdp")
    if status != 201:
        raise RuntimeError(f"{path}: {status} {body}")
    await conn.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return headers.get("Location") or headers.get("location")


class Subscriber:
    def __init__(self, name):
        self.name = name
        self.conn = pc()
        self.video = []  # (arrival, width, height, mean luma)
        self.audio = 0
        self.tasks = []
        self.location = None
        self.joined = None

        @self.conn.on("track")
        def on_track(track):
            self.tasks.append(asyncio.ensure_future(self.consume(track)))

    async def consume(self, track):
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    plane = frame.planes[0]
                    luma, stride = bytes(plane), plane.line_size
                    # Rows without their padding (line_size >= width).
                    sample = b"".join(
                        luma[row * stride : row * stride + frame.width : 4]
                        for row in range(0, frame.height, 8)
                    )
                    self.video.append(
                        (time.monotonic(), frame.width, frame.height, sum(sample) / len(sample))
                    )
                else:
                    self.audio += 1
        except Exception:
            return

    async def join(self, room, publisher, token):
        self.conn.addTransceiver("video", direction="recvonly")
        self.conn.addTransceiver("audio", direction="recvonly")
        self.joined = time.monotonic()
        self.location = await offer_answer(self.conn, f"/api/v1/rooms/{room}/subscribe/{publisher}", token)

    async def leave(self, token):
        status, _, _ = http("DELETE", self.location.replace(BASE, ""), token)
        await self.conn.close()
        for t in self.tasks:
            t.cancel()
        return status


async def main():
    status, _, body = http("POST", "/api/v1/rooms", ADMIN, json.dumps({"name": "conformance"}))
    check("create a room (201 with an invite)", status == 201 and "invite" in body, f"{status} {body}")
    room = json.loads(body)
    rid, invite = room["id"], room["invite"]

    status, _, body = http("POST", f"/api/v1/rooms/{rid}/publish", invite, "v=0\r\nnot sdp\r\n", "application/sdp")
    check("a malformed SDP offer gets 400 with the reason", status == 400 and "bad_offer" in body, f"{status} {body}")
    status, _, body = http("POST", f"/api/v1/rooms/{rid}/publish", "wrong-token", "v=0\r\n", "application/sdp")
    check("a wrong invite token gets 403", status == 403, f"{status} {body}")

    events = Events(rid, invite)
    publisher = pc()
    pattern = Pattern()
    publisher.addTrack(pattern)
    publisher.addTrack(Tone())
    location = await offer_answer(publisher, f"/api/v1/rooms/{rid}/publish", invite)
    pub_id = location.rsplit("/", 1)[1]
    check("publish: 201 with the answer and a session Location", pub_id.isdigit(), location)

    a, b = Subscriber("a"), Subscriber("b")
    await a.join(rid, pub_id, invite)
    await b.join(rid, pub_id, invite)
    status, _, body = http("POST", f"/api/v1/rooms/{rid}/recording", ADMIN)
    record_start = time.monotonic()
    files = json.loads(body).get("files", []) if status == 201 else []
    check("start recording the room (201, one file for the publisher)", len(files) == 1, f"{status} {body}")
    await asyncio.sleep(4)
    status, _, _ = http("DELETE", f"/api/v1/rooms/{rid}/recording", ADMIN)
    recorded = time.monotonic() - record_start
    check("stop recording (204)", status == 204, status)
    for s in (a, b):
        n = len(s.video)
        check(f"subscriber {s.name} received video frames ({n} of {pattern.sent} sent)", n >= 0.5 * pattern.sent and n >= 40, n)
        sizes = {(w, h) for _, w, h, _ in s.video}
        check(f"subscriber {s.name}'s frames are {WIDTH}x{HEIGHT}", sizes == {(WIDTH, HEIGHT)}, sizes)
        lumas = [l for _, _, _, l in s.video[-10:]]
        check(f"subscriber {s.name} sees the sent picture (luma ~{LUMA})", all(abs(l - LUMA) < 12 for l in lumas), lumas)
        check(f"subscriber {s.name} received audio", s.audio >= 50, s.audio)

    status, _, body = http("GET", f"/api/v1/rooms/{rid}", invite)
    sessions = json.loads(body)["sessions"] if status == 200 else []
    check("the room lists the publisher and two subscribers", status == 200 and len(sessions) == 3, body)

    check("subscriber b leaves (204)", await b.leave(invite) == 204)
    before = len(a.video)
    c = Subscriber("c")
    await c.join(rid, pub_id, invite)
    await asyncio.sleep(3)
    first = c.video[0][0] - c.joined if c.video else None
    check("a late subscriber gets a picture within 2 s (keyframe asked for it)", first is not None and first < 2.0, first)
    check("the late subscriber keeps receiving", len(c.video) >= 40, len(c.video))
    check("subscriber a was not disturbed", len(a.video) - before >= 60, len(a.video) - before)
    status, _, body = http("GET", f"/api/v1/rooms/{rid}", invite)
    ids = [s["id"] for s in json.loads(body)["sessions"]]
    check("the room no longer lists b", len(ids) == 3 and int(b.location.rsplit("/", 1)[1]) not in ids, body)

    status, _, body = http("POST", "/api/v1/rooms", ADMIN, json.dumps({"name": "small", "max_publishers": 1}))
    small = json.loads(body)
    one, two = pc(), pc()
    one.addTrack(Pattern())
    two.addTrack(Pattern())
    await offer_answer(one, f"/api/v1/rooms/{small['id']}/publish", small["invite"])
    await two.setLocalDescription(await two.createOffer())
    status, _, body = http("POST", f"/api/v1/rooms/{small['id']}/publish", small["invite"], two.localDescription.sdp, "application/sdp")
    check("a publisher over the room's limit gets 409 room_full", status == 409 and "room_full" in body, f"{status} {body}")

    for conn in (publisher, a.conn, c.conn, one, two):
        await conn.close()
    p, b_id = int(pub_id), int(b.location.rsplit("/", 1)[1])
    check("events: the publisher joined with a video and an audio track",
          events.of("joined", session=p, role="publisher")
          and {e["kind"] for e in events.of("track_added", session=p)} == {"audio", "video"}, events.events)
    check("events: three subscriptions joined, b left",
          len(events.of("joined", role="subscriber", publisher=p)) == 3 and events.of("left", session=b_id), events.events)
    check("events: recording on, then off",
          [e["on"] for e in events.of("recording")] == [True, False], events.events)
    check("events: the publisher (sending a tone) is the active speaker",
          events.of("active_speaker", session=p), events.events)
    seqs = [e["seq"] for e in events.events]
    check("events are numbered in order", seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs)

    status, _, _ = http("DELETE", f"/api/v1/rooms/{rid}", ADMIN)
    check("the admin closes the room (204)", status == 204, status)
    events.join(timeout=3)
    check("events: the stream says closed when the room closes", events.events[-1:] == [{"event": "closed"}], events.events[-3:])
    status, _, _ = http("GET", f"/api/v1/rooms/{rid}", ADMIN)
    check("a closed room is gone (404)", status == 404, status)

    status, _, body = http("GET", "/api/v1/recordings", ADMIN)
    listed = [r for r in json.loads(body)["recordings"] if r["room"] == rid] if status == 200 else []
    check("the recording outlives its room and is listed", len(listed) == 1 and listed[0]["size"] > 10000, body)
    path = os.path.join(DATA, "recordings", listed[0]["file"])
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height:format=duration",
         "-of", "json", path], capture_output=True, text=True, check=False)
    info = json.loads(probe.stdout or "{}")
    codecs = sorted(s["codec_name"] for s in info.get("streams", []))
    check("ffprobe reads VP8 and Opus from the recording", codecs == ["opus", "vp8"], probe.stdout + probe.stderr)
    video = [s for s in info["streams"] if s["codec_name"] == "vp8"][0]
    check("the recorded picture is 320x240", (video.get("width"), video.get("height")) == (WIDTH, HEIGHT), video)
    duration = float(info.get("format", {}).get("duration", 0))
    check(f"the recording lasts {duration:.2f} s for {recorded:.2f} s recorded (within 10 %)",
          abs(duration - recorded) <= 0.1 * recorded, (duration, recorded))


asyncio.run(main())
