# A meeting through the SFU with aiortc (publisher, two subscribers, one
# leaving, one joining late), recorded and read back by ffprobe; refusals
# of bad offers and full rooms.
# Sourced by .ci/conformance.
video_meeting() {
    timeout 120 python3 .ci/conformance.d/video_room.py "http://127.0.0.1:${port[http]}" "$(cat "$work/data/api-token")" "$work/data"
}
check "aiortc meeting through the SFU" video_meeting
account_room() {
    local base="http://127.0.0.1:${port[http]}/api/v1" session
    session=$(curl -fsS -H 'Content-Type: application/json' \
        -d "{\"user\":\"alice@example.org\",\"password\":\"$PASSWORD\"}" "$base/session" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || return 1
    curl -fsS -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
        -d '{"id":"alices-room"}' "$base/rooms" | grep -q '"owner":"alice@example.org"' || return 1
    curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $session" "$base/rooms/alices-room"
}
check "video: an account logs in (curl) and opens and closes its own room" account_room
