//! Rate limits for background work, so repair, scrub and gc never starve
//! the uploads and downloads people are waiting for.

use std::time::Duration;

/// At most `per_sec` units (bytes, objects…) per second; 0 is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    pub per_sec: u64,
}

impl Pace {
    pub fn new(per_sec: u64) -> Self {
        Self { per_sec }
    }

    /// How long `units` of work take at this pace.
    pub fn cost(&self, units: u64) -> Duration {
        if self.per_sec == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(units as f64 / self.per_sec as f64)
        }
    }

    /// Waits long enough that `units` of work keep within the pace.
    pub async fn spend(&self, units: u64) {
        let d = self.cost(units);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_proportional_and_zero_means_unlimited() {
        assert_eq!(Pace::new(0).cost(1 << 30), Duration::ZERO);
        assert_eq!(Pace::new(100).cost(50), Duration::from_millis(500));
        assert_eq!(Pace::new(1024).cost(4096), Duration::from_secs(4));
    }
}
