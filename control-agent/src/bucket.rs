//! The fill's bandwidth cap: one token bucket shared by every download.
//! Tokens are bytes; the bucket holds at most one second of them, so a
//! burst never exceeds the cap by more than that.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Bucket {
    /// Bytes per second; 0 = no cap.
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(rate: u64) -> Bucket {
        Bucket {
            rate,
            state: Mutex::new((rate as f64, Instant::now())),
        }
    }

    /// Takes `n` bytes' worth and returns how long the caller must wait
    /// before sending them (the debt is booked now, so concurrent callers
    /// queue behind each other).
    pub fn reserve(&self, n: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let rate = self.rate as f64;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * rate).min(rate) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / rate)
        }
    }

    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let b = Bucket::new(1000);
        let t0 = Instant::now();
        assert_eq!(b.reserve(1000, t0), Duration::ZERO, "one second of burst");
        assert_eq!(b.reserve(500, t0), Duration::from_millis(500));
        // Half a second later the debt is paid; another 1000 waits a second.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.reserve(1000, t1), Duration::from_secs(1));
        // 10 s of 100-byte chunks at 1000 B/s: the last one waits ~10 s.
        let b = Bucket::new(1000);
        let mut last = Duration::ZERO;
        for _ in 0..110 {
            last = b.reserve(100, t0);
        }
        assert_eq!(last, Duration::from_secs(10));
        assert_eq!(Bucket::new(0).reserve(1 << 40, t0), Duration::ZERO);
    }
}
