//! `cairn-media`: the video server. Each room lives on one shard
//! ([`room`]); that shard's [`sfu::Sfu`] answers offers and forwards media
//! between the room's peer connections (str0m, sans-IO), fed by the
//! shard's UDP socket ([`driver`]); other shards reach it through the
//! [`service::MediaService`] mesh. [`layers`] picks simulcast layers.

pub mod driver;
pub mod events;
pub mod layers;
pub mod metrics;
pub mod recording;
pub mod room;
pub mod service;
pub mod sfu;
pub mod webm;
