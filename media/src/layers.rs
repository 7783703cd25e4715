//! Simulcast: which of a publisher's layers each subscriber gets. A
//! publisher sends the same video at several bitrates (RTP stream ids such
//! as `h`, `m`, `l`); the SFU measures each layer's bitrate and gives every
//! subscriber the best layer its bandwidth estimate carries, with headroom
//! to go down at once and a wider margin to come back up (no flapping).

use std::time::{Duration, Instant};

/// The share of the estimate a layer may use to be kept.
const KEEP: f64 = 0.9;
/// The share of the estimate a higher layer may use to be switched to.
const UPGRADE: f64 = 0.7;
/// The window over which a layer's bitrate is measured.
const WINDOW: Duration = Duration::from_secs(1);

/// One layer as measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer<R> {
    pub rid: R,
    pub bitrate_bps: u64,
}

/// The layer to forward to a subscriber whose estimate is `estimate_bps`,
/// now forwarding `current`: the highest layer that fits, going up only
/// with room to spare. `None` when there are no layers.
pub fn choose<R: Clone + PartialEq>(
    layers: &[Layer<R>],
    estimate_bps: u64,
    current: Option<&R>,
) -> Option<R> {
    let mut sorted: Vec<&Layer<R>> = layers.iter().collect();
    sorted.sort_by_key(|l| l.bitrate_bps);
    let lowest = sorted.first()?;
    let estimate = estimate_bps as f64;
    let current_rate = current.and_then(|c| sorted.iter().find(|l| &l.rid == c));
    let best = sorted.iter().rev().find(|l| {
        let is_up = current_rate.is_some_and(|c| l.bitrate_bps > c.bitrate_bps);
        let share = if is_up { UPGRADE } else { KEEP };
        (l.bitrate_bps as f64) <= estimate * share
    });
    Some(best.unwrap_or(lowest).rid.clone())
}

/// Bytes over a sliding one-second window.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    started: Option<Instant>,
    bytes: u64,
    last_bps: u64,
}

impl RateMeter {
    /// Counts `bytes` received at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= WINDOW {
            self.last_bps = (self.bytes * 8 * 1000) / (elapsed.as_millis().max(1) as u64);
            self.started = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }

    /// Bits per second over the last whole window.
    pub fn bps(&self) -> u64 {
        self.last_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<Layer<&'static str>> {
        vec![
            Layer {
                rid: "h",
                bitrate_bps: 1_200_000,
            },
            Layer {
                rid: "l",
                bitrate_bps: 150_000,
            },
            Layer {
                rid: "m",
                bitrate_bps: 500_000,
            },
        ]
    }

    #[test]
    fn picks_the_highest_layer_that_fits() {
        assert_eq!(choose(&layers(), 5_000_000, None), Some("h"));
        assert_eq!(choose(&layers(), 800_000, None), Some("m"));
        assert_eq!(choose(&layers(), 200_000, None), Some("l"));
    }

    #[test]
    fn below_every_layer_gets_the_lowest() {
        assert_eq!(choose(&layers(), 10_000, None), Some("l"));
        assert_eq!(choose::<&str>(&[], 10_000, None), None);
    }

    #[test]
    fn going_up_needs_more_room_than_staying() {
        // 600 kbps: m (500k) fits at 90 % but not at 70 %.
        assert_eq!(choose(&layers(), 600_000, Some(&"m")), Some("m"));
        assert_eq!(choose(&layers(), 600_000, Some(&"l")), Some("l"));
        assert_eq!(choose(&layers(), 720_000, Some(&"l")), Some("m"));
        // Down at once when the current layer no longer fits.
        assert_eq!(choose(&layers(), 400_000, Some(&"m")), Some("l"));
    }

    #[test]
    fn meter_reports_the_last_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        for i in 0..10 {
            m.add(t0 + Duration::from_millis(i * 100), 5_000);
        }
        assert_eq!(m.bps(), 0, "no whole window yet");
        m.add(t0 + Duration::from_millis(1000), 5_000);
        assert_eq!(m.bps(), 400_000);
    }
}
