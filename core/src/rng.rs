//! A small, seeded pseudo-random generator for jitter.
//!
//! The core never gathers entropy itself: the adapter seeds [`Rng`] (from a hardware RNG,
//! `crypto.getRandomValues`, or a fixed seed in tests), so every decision is reproducible.
//! The algorithm is SplitMix64: not
//! cryptographic, only for spreading retries.

/// A seeded pseudo-random generator (SplitMix64 seeding, xorshift-multiply output).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniformly distributed in `0..=max` (no modulo bias worth measuring for
    /// millisecond jitter: uses the 128-bit multiply-high method).
    pub fn below_or_equal(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        let range = max + 1;
        ((u128::from(self.next_u64()) * u128::from(range)) >> 64) as u64
    }

    /// A value uniformly distributed in `lo..=hi` (returns `lo` when `hi < lo`).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below_or_equal(hi - lo)
    }
}

/// The seed of a client's next call: each call's jitter differs from the last one's, and a
/// client seeded the same way makes the same sequence of calls (a 64-bit LCG step, Knuth's
/// MMIX constants). Every adapter advances its client's seed with this and seeds
/// [`crate::call::Call::new`] with the result.
#[must_use]
pub const fn next_call_seed(seed: u64) -> u64 {
    seed.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_seed_step_is_the_lcg_step_and_never_repeats_at_once() {
        assert_eq!(next_call_seed(0), 1_442_695_040_888_963_407);
        assert_eq!(
            next_call_seed(1),
            6_364_136_223_846_793_005u64.wrapping_add(1_442_695_040_888_963_407)
        );
        let mut s = 42;
        let mut seen = std::vec::Vec::new();
        for _ in 0..1000 {
            s = next_call_seed(s);
            assert!(!seen.contains(&s));
            seen.push(s);
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn bounded_values_stay_in_range_and_cover_it() {
        let mut r = Rng::new(1);
        let mut seen = [false; 11];
        for _ in 0..10_000 {
            let v = r.between(10, 20);
            assert!((10..=20).contains(&v));
            seen[(v - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.between(5, 5), 5);
        assert_eq!(r.between(9, 3), 9);
    }
}
