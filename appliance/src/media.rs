//! The video server on each shard: shard N binds UDP port
//! `media.port_min + N` on `media.address`, runs an SFU on it and joins
//! the media mesh, through which the HTTP API reaches a room's shard.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use cairn_config::Config;
use cairn_media::metrics::MediaMetrics;
use cairn_media::service::{MediaMesh, MediaService};
use cairn_media::sfu::Sfu;
use cairn_shards::{ShardContext, Task};

/// The media socket address of shard `shard`.
pub fn socket_addr(config: &Config, shard: usize) -> SocketAddr {
    SocketAddr::new(
        config.media.address,
        config.media.port_min.saturating_add(shard as u16),
    )
}

/// Refuses a media port range with fewer ports than shards.
pub fn check_range(config: &Config, shards: usize) -> Result<(), String> {
    let ports = usize::from(config.media.port_max - config.media.port_min) + 1;
    if ports < shards {
        return Err(format!(
            "media.port_min..=media.port_max ({}..={}) has {ports} port(s) for {shards} shards: each shard needs one",
            config.media.port_min, config.media.port_max
        ));
    }
    Ok(())
}

/// The folder of the recordings in the data directory.
pub const RECORDINGS: &str = "recordings";

/// Binds this shard's media socket, starts its SFU and joins the mesh;
/// the task returned ends after shutdown, once every recording is synced.
pub async fn start(
    ctx: &ShardContext,
    config: &Config,
    mesh: &MediaMesh,
    data_dir: &Path,
    metrics: Arc<MediaMetrics>,
) -> Result<(MediaService, Task<()>), String> {
    let addr = socket_addr(config, ctx.id());
    let socket = cairn_media::driver::bind(addr).map_err(|e| {
        format!(
            "cannot bind the media socket {addr} (shard {}): {e}",
            ctx.id()
        )
    })?;
    let recordings = data_dir.join(RECORDINGS);
    let sfu = Sfu::new(ctx.id(), addr).with_recordings(recordings.clone());
    let sfu = Rc::new(RefCell::new(sfu));
    let service = MediaService::start(mesh, ctx.id(), sfu.clone(), recordings)
        .await
        .map_err(|e| format!("shard {}: cannot join the media mesh: {e:?}", ctx.id()))?;
    let driver = cairn_shards::spawn(cairn_media::driver::run(
        sfu,
        socket,
        ctx.shutdown().clone(),
        ctx.id(),
        metrics,
    ));
    Ok((service, driver))
}
