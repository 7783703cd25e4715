//! `cairn-media`: the video server — WebRTC SFU rooms pinned to shards,
//! forwarding, simulcast, recording — arrives with the video issue. The crate
//! exists now so that the workspace has the layout of DESIGN.md §2; it holds
//! no code until then (no placeholder servers).
