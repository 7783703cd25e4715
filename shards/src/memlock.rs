//! The locked-memory budget io_uring needs, checked before any shard starts
//! so that a low `RLIMIT_MEMLOCK` gives advice instead of a panic.

/// glommio registers its I/O buffers with the kernel; this is the smallest
/// locked-memory limit we ask for per shard when not running as root.
pub const MIN_IO_MEMORY: usize = 512 * 1024;

/// What the shards may use for registered I/O memory, per shard, or why they
/// cannot start.
pub fn io_memory_budget(shards: usize) -> Result<Option<usize>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(None); // root is not bound by RLIMIT_MEMLOCK: glommio's default
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(format!(
            "cannot read RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Ok(None);
    }
    let per_shard = (lim.rlim_cur as usize) / shards.max(1);
    if per_shard < MIN_IO_MEMORY {
        return Err(format!(
            "io_uring needs at least {} KiB of locked memory per shard ({} shards), \
             but RLIMIT_MEMLOCK is {} KiB. Raise it (systemd: LimitMEMLOCK=infinity; \
             shell: ulimit -l unlimited; /etc/security/limits.conf: memlock), run as root, \
             or use fewer shards",
            MIN_IO_MEMORY / 1024,
            shards,
            lim.rlim_cur / 1024
        ));
    }
    // Leave a quarter of the budget for the rings themselves.
    Ok(Some((per_shard / 4 * 3).max(MIN_IO_MEMORY / 2)))
}
