//! The core's own notion of time.
//!
//! The core never reads a clock. Every input that depends on time carries a `now: Instant`
//! supplied by the adapter (embassy-time on devices, `performance.now()` in browsers,
//! `std::time::Instant` in tests or virtual time in the simulator). Millisecond resolution is
//! plenty for network timeouts and keeps the arithmetic in `u64` without overflow for
//! 584 million years.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in time, in milliseconds since an epoch chosen by the adapter (usually boot).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

/// A span of time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    millis: u64,
}

impl Instant {
    /// The adapter's epoch.
    pub const ZERO: Instant = Instant { millis: 0 };
    /// A time later than any deadline the core computes.
    pub const FAR_FUTURE: Instant = Instant { millis: u64::MAX };

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant { millis }
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(earlier.millis),
        }
    }

    /// `self + d`, saturating at [`Instant::FAR_FUTURE`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant {
            millis: self.millis.saturating_add(d.millis),
        }
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { millis: 0 };
    /// Longer than any timeout the core uses; effectively "never".
    pub const MAX: Duration = Duration { millis: u64::MAX };

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// A duration of `secs` seconds (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        // A bound rather than a checked multiply: one 64-bit multiply on a 32-bit MCU.
        Duration {
            millis: if secs > u64::MAX / 1000 {
                u64::MAX
            } else {
                secs * 1000
            },
        }
    }

    /// The duration in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// `self + other`, saturating.
    pub const fn saturating_add(self, other: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_add(other.millis),
        }
    }

    /// `self - other`, zero if `other` is longer.
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(other.millis),
        }
    }

    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration {
            millis: self.millis.saturating_mul(n),
        }
    }

    /// The shorter of two durations.
    pub const fn min(self, other: Duration) -> Duration {
        if self.millis < other.millis {
            self
        } else {
            other
        }
    }

    /// The longer of two durations.
    pub const fn max(self, other: Duration) -> Duration {
        if self.millis > other.millis {
            self
        } else {
            other
        }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, other: Duration) -> Duration {
        self.saturating_add(other)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}ms", self.millis)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis >= 1000 && self.millis.is_multiple_of(1000) {
            write!(f, "{} s", self.millis / 1000)
        } else {
            write!(f, "{} ms", self.millis)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(10);
        assert_eq!((t + Duration::MAX), Instant::FAR_FUTURE);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_millis(10));
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
    }
}
