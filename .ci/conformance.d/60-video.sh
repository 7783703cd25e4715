# A meeting through the SFU with aiortc (publisher, two subscribers, one
# leaving, one joining late), recorded and read back by ffprobe; refusals
# of bad offers and full rooms.
# Sourced by .ci/conformance.
video_meeting() {
    timeout 120 python3 .ci/conformance.d/video_room.py "http://127.0.0.1:${port[http]}" "$(cat "$work/data/api-token")" "$work/data"
}
check "aiortc meeting through the SFU" video_meeting
