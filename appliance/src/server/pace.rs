//! Per-connection rate cap (what nginx calls `limit_rate`): each connection
//! draws its body bytes from a token bucket. Operators use it to keep one
//! client from taking a whole uplink, and to see how players adapt when a
//! box's per-client throughput is below the top rendition.
//!
//! The bucket hands out bytes in chunks of about 20 ms of the rate, so a
//! paced body goes out as a steady trickle rather than bursts; a connection
//! that has nothing allowed waits on an io_uring timeout for the next chunk.

use std::time::{Duration, Instant};

/// Smallest and largest chunk a paced connection sends at once.
const MIN_CHUNK: u64 = 1024;
const MAX_CHUNK: u64 = 256 * 1024;

/// A configured cap, in bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    bytes_per_sec: u64,
    /// Most a bucket holds: the burst a connection may send at full speed
    /// after it was idle, at least one chunk.
    capacity: u64,
    chunk: u64,
}

impl Rate {
    /// `None` when `bytes_per_sec` is 0 (no cap).
    pub fn new(bytes_per_sec: u64, burst: u64) -> Option<Rate> {
        if bytes_per_sec == 0 {
            return None;
        }
        let chunk = (bytes_per_sec / 50).clamp(MIN_CHUNK, MAX_CHUNK);
        Some(Rate {
            bytes_per_sec,
            capacity: burst.max(chunk),
            chunk,
        })
    }
}

/// One connection's tokens.
#[derive(Debug)]
pub struct Bucket {
    tokens: u64,
    last: Instant,
}

impl Bucket {
    /// A new connection starts with a full bucket (its burst).
    pub fn new(rate: &Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.capacity,
            last: now,
        }
    }

    /// How many of the `want` bytes may be sent now, or how long to wait
    /// before at least a chunk (or all of `want`, if smaller) is allowed.
    pub fn allowance(&mut self, rate: &Rate, want: u64, now: Instant) -> Result<u64, Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let earned = elapsed * u128::from(rate.bytes_per_sec) / 1_000_000_000;
        if earned > 0 {
            self.tokens = (u128::from(self.tokens) + earned).min(u128::from(rate.capacity)) as u64;
            self.last = now;
        }
        let need = want.min(rate.chunk).max(1);
        if self.tokens >= need {
            return Ok(self.tokens.min(want));
        }
        let missing = u128::from(need - self.tokens);
        let nanos = (missing * 1_000_000_000).div_ceil(u128::from(rate.bytes_per_sec));
        Err(Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64))
    }

    /// Takes `n` bytes that were sent.
    pub fn spend(&mut self, n: u64) {
        self.tokens = self.tokens.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_means_no_cap() {
        assert_eq!(Rate::new(0, 1 << 20), None);
    }

    #[test]
    fn burst_then_steady_rate() {
        // 1 MB/s, 100 kB burst: chunks of 20 kB.
        let rate = Rate::new(1_000_000, 100_000).unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::new(&rate, t0);
        assert_eq!(b.allowance(&rate, 1 << 30, t0), Ok(100_000));
        b.spend(100_000);
        // Empty: a chunk takes 20 ms to earn.
        assert_eq!(b.allowance(&rate, 1 << 30, t0), Err(Duration::from_millis(20)));
        // 5 ms later, 5 kB earned: still short of a chunk, 15 ms to go.
        let t = t0 + Duration::from_millis(5);
        assert_eq!(b.allowance(&rate, 1 << 30, t), Err(Duration::from_millis(15)));
        // A small remainder goes as soon as it is earned.
        assert_eq!(b.allowance(&rate, 4_000, t), Ok(4_000));
        // After 20 ms in all, 20 kB.
        let t = t0 + Duration::from_millis(20);
        assert_eq!(b.allowance(&rate, 1 << 30, t), Ok(20_000));
        b.spend(20_000);
        // Over one simulated second of chunked sends, about the rate goes out.
        let mut sent = 0;
        let mut now = t;
        let end = t + Duration::from_secs(1);
        while now <= end {
            match b.allowance(&rate, 1 << 30, now) {
                Ok(n) => {
                    b.spend(n);
                    sent += n;
                }
                Err(wait) => now += wait,
            }
        }
        assert!((990_000..=1_000_000).contains(&sent), "{sent}");
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let rate = Rate::new(1_000_000, 0).unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::new(&rate, t0);
        assert_eq!(b.allowance(&rate, 1 << 30, t0), Ok(20_000), "capacity is one chunk");
        b.spend(20_000);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.allowance(&rate, 1 << 30, later), Ok(20_000));
    }

    #[test]
    fn chunk_is_clamped() {
        assert_eq!(Rate::new(10, 0).unwrap().chunk, MIN_CHUNK);
        assert_eq!(Rate::new(10_000_000_000, 0).unwrap().chunk, MAX_CHUNK);
    }
}
