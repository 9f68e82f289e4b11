//! Bounded retries with exponential backoff and full jitter, shared by the DynamoDB and S3
//! paths.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often and how patiently a throttled or failed request is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// Upper bound of the first wait; doubled on each further attempt.
    pub base_delay: Duration,
    /// Upper bound of any one wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, waits drawn from `[0, 50 ms × 2^n]` capped at 5 s: about 12 s of waiting in
    /// the worst case, enough to ride out DynamoDB's per-partition throttling bursts.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1 failed attempts so far): uniform in
    /// `[0, min(max, base × 2^(attempt-1))]` ("full jitter"), so that many writers throttled
    /// at once do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(next_random() % (nanos + 1))
    }
}

/// A xorshift generator seeded from the clock: jitter needs spread, not cryptographic quality,
/// and a shared atomic state keeps concurrent callers from drawing the same numbers.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        for _ in 0..200 {
            assert!(policy.delay(1) <= Duration::from_millis(10));
            assert!(policy.delay(3) <= Duration::from_millis(40));
            assert!(policy.delay(30) <= Duration::from_millis(100));
        }
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.delay(4)).collect();
        assert!(spread.len() > 10, "jitter spreads the waits: {spread:?}");
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..policy
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }
}
