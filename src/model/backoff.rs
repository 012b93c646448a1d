//! How long a failed message waits before its next delivery: a fixed delay
//! (`nack --delay`), or an exponential backoff with jitter (`--backoff`).
//!
//! Attempt `n` (the delivery that failed, 1 for the first) steps
//! `base * 2^(n-1)`, capped at `max`; the delay drawn is uniform in
//! `0.5..1` of the step, so workers that failed together do not all come
//! back at the same moment. With the defaults (10s, 1h): attempt 1 waits
//! 5-10s, 2: 10-20s, 3: 20-40s, 4: 40-80s, ..., from attempt 10 on 30-60min.

use std::time::Duration;

/// Exponential backoff: `base` doubling each attempt, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// `exec`'s and `nack`'s default: 10s doubling up to 1h.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(3600),
    };

    /// The step after failed attempt `attempt` (1-based; 0 counts as 1):
    /// `base * 2^(attempt-1)`, never above `max`, never overflowing.
    pub fn step(&self, attempt: u32) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).filter(|_| doublings < 32);
        factor
            .and_then(|f| self.base.checked_mul(f))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The jittered delay after failed attempt `attempt`: `unit` (in
    /// `0..=1`, drawn at random by the caller; clamped) picks a point
    /// between half the step and the whole step.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let unit = if unit.is_nan() {
            1.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        // In whole nanoseconds: step/2 + step/2 * unit, with unit in 32-bit
        // fixed point, so that no step (up to Duration::MAX) overflows.
        let step = self.step(attempt).as_nanos();
        let fraction = (unit * 4_294_967_296.0) as u128; // 0..=2^32
        let half = step / 2;
        let nanos = (step - half) + ((half * fraction) >> 32);
        Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        )
    }
}

/// When a nacked message comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// After this fixed delay (zero: at once).
    After(Duration),
    /// After a backoff that grows with the message's attempts.
    Backoff(Backoff),
}

impl Retry {
    /// The delay for a message that has had `attempts` deliveries; `unit`
    /// is the random jitter in `0..=1` (unused by a fixed delay).
    pub fn delay(&self, attempts: u32, unit: f64) -> Duration {
        match self {
            Retry::After(d) => *d,
            Retry::Backoff(b) => b.delay(attempts, unit),
        }
    }
}

/// A number in `0..1` from `seed` and `salt` (splitmix64): one random seed
/// per call gives each message of a `nack` its own jitter.
pub fn unit(seed: u64, salt: u64) -> f64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_step_doubles_each_attempt_from_the_base() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.step(1), S(10));
        assert_eq!(b.step(2), S(20));
        assert_eq!(b.step(3), S(40));
        assert_eq!(b.step(4), S(80));
        assert_eq!(b.step(0), S(10), "attempt 0 counts as the first");
    }

    #[test]
    fn the_step_is_capped_at_max() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.step(9), S(2560));
        assert_eq!(b.step(10), S(3600));
        assert_eq!(b.step(40), S(3600));
        let small_max = Backoff {
            base: S(10),
            max: S(3),
        };
        assert_eq!(small_max.step(1), S(3), "a base above max is max");
    }

    #[test]
    fn no_attempt_count_overflows() {
        let b = Backoff {
            base: Duration::MAX,
            max: Duration::MAX,
        };
        for n in [1, 2, 31, 32, 33, 64, 1000, u32::MAX] {
            assert_eq!(b.step(n), Duration::MAX, "attempt {n}");
            assert!(b.delay(n, 1.0) <= Duration::MAX);
        }
        assert_eq!(Backoff::DEFAULT.step(1000), S(3600));
        assert_eq!(Backoff::DEFAULT.delay(1000, 1.0), S(3600));
        assert_eq!(Backoff::DEFAULT.delay(u32::MAX, 0.0), S(1800));
    }

    #[test]
    fn the_jitter_stays_between_half_the_step_and_the_step() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.delay(1, 0.0), S(5));
        assert_eq!(b.delay(1, 1.0), S(10));
        assert_eq!(b.delay(2, 0.5), S(15));
        assert_eq!(b.delay(1, -3.0), S(5), "clamped");
        assert_eq!(b.delay(1, 7.0), S(10), "clamped");
        assert_eq!(b.delay(1, f64::NAN), S(10));
        for salt in 0..10_000 {
            let u = unit(0xdead_beef, salt);
            assert!((0.0..1.0).contains(&u), "{u}");
            let d = b.delay(3, u);
            assert!(d >= S(20) && d <= S(40), "{d:?}");
        }
    }

    #[test]
    fn the_units_spread_over_the_whole_range() {
        let us: Vec<f64> = (0..1000).map(|i| unit(42, i)).collect();
        assert!(us.iter().any(|&u| u < 0.1) && us.iter().any(|&u| u > 0.9));
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        assert_ne!(unit(1, 7), unit(2, 7), "the seed matters");
    }

    #[test]
    fn a_zero_base_retries_at_once() {
        let b = Backoff {
            base: Duration::ZERO,
            max: S(3600),
        };
        assert_eq!(b.delay(1, 1.0), Duration::ZERO);
        assert_eq!(b.delay(100, 1.0), Duration::ZERO);
    }

    #[test]
    fn a_fixed_retry_ignores_attempts_and_jitter() {
        let r = Retry::After(S(60));
        assert_eq!(r.delay(1, 0.0), S(60));
        assert_eq!(r.delay(9, 1.0), S(60));
        let r = Retry::Backoff(Backoff::DEFAULT);
        assert_eq!(r.delay(2, 1.0), S(20));
    }
}
