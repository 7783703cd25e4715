//! Keeps a running listener's anti-virus database current: every period,
//! a job on the blocking pool (file IO never runs on a shard) compares the
//! database file's mtime and size with the last ones seen and reloads it
//! when they changed ([`crate::antivirus::Reloader`]). Run it on one shard
//! only: the [`Antivirus`] is shared, so one reload reaches every shard.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::BlockingPool;

use crate::antivirus::{Antivirus, Reloader};

/// How often the appliance looks at the database file.
pub const PERIOD: Duration = Duration::from_secs(60);

/// Watches `data_dir`'s database forever (spawn it detached), reloading
/// into `av`. An invalid file is logged and the old database stays.
pub async fn run(av: Arc<Antivirus>, data_dir: PathBuf, pool: BlockingPool, every: Duration) {
    let mut reloader = Some(Reloader::new(&data_dir));
    loop {
        cairn_shards::time::sleep(every).await;
        let Some(mut r) = reloader.take() else {
            // The previous job was lost: start from the file as it is now.
            reloader = Some(Reloader::new(&data_dir));
            continue;
        };
        let job_av = av.clone();
        let done = pool
            .run(move || {
                let result = r.check(&job_av);
                (r, result)
            })
            .await;
        match done {
            Ok((r, result)) => {
                reloader = Some(r);
                match result {
                    Ok(None) => {}
                    Ok(Some(count)) => tracing::info!(
                        target: "audit",
                        signatures = count,
                        source = %av.signatures().source(),
                        "antivirus: signature database reloaded"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "antivirus: the new signature database is invalid; keeping the old one"
                    ),
                }
            }
            Err(_) => tracing::warn!("antivirus: the reload job was lost"),
        }
    }
}
