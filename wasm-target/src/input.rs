//! Client options as the wrapper hands them over: a row of numbers (see [`mod@cfg`]), read
//! into the core's [`CallConfig`]. The JS wrapper checks them first and gives friendly
//! messages; everything that reaches here is checked again (refused, never a panic).

use steadyllm_core::call::{CallConfig, MAX_ENDPOINTS, Timeouts};
use steadyllm_core::time::Duration;

/// Positions in the numbers [`config`] reads; [`UNSET`] leaves a default.
pub mod cfg {
    /// Attempts per call.
    pub const MAX_ATTEMPTS: usize = 0;
    /// First backoff step, ms.
    pub const BASE_DELAY: usize = 1;
    /// Longest backoff, ms.
    pub const MAX_DELAY: usize = 2;
    /// Longest Retry-After honoured, ms.
    pub const MAX_RETRY_AFTER: usize = 3;
    /// 1: retry after partial output.
    pub const RESTART_ON_PARTIAL: usize = 4;
    /// Budget share, per mille.
    pub const BUDGET_PERMILLE: usize = 5;
    /// Breaker threshold (failures of the last 16).
    pub const BREAKER_THRESHOLD: usize = 6;
    /// Breaker cooldown, ms.
    pub const BREAKER_COOLDOWN: usize = 7;
    /// Timeouts, ms: first byte, first token, idle, total. Any set fixes the table.
    pub const FIRST_BYTE: usize = 8;
    /// See [`FIRST_BYTE`].
    pub const FIRST_TOKEN: usize = 9;
    /// See [`FIRST_BYTE`].
    pub const IDLE: usize = 10;
    /// See [`FIRST_BYTE`].
    pub const TOTAL: usize = 11;
    /// How many numbers.
    pub const LEN: usize = 12;
}

/// A number left at its default.
pub const UNSET: u32 = u32::MAX;

/// The engine settings from the numbers the wrapper passes (see [`mod@cfg`]); `None` when
/// `retries.maxAttempts`, `breaker.threshold` or a timeout is 0 (the wrapper has refused
/// those with its own messages; no message text is kept in the module).
pub fn config(n: &[u32]) -> Option<CallConfig> {
    let mut c = CallConfig::default();
    // Unset timeouts take the small-prompt tier's value; any set one fixes the table.
    let mut t = Timeouts::for_profile(Default::default());
    let mut fixed = false;
    for (i, &v) in n.iter().enumerate() {
        if v == UNSET {
            continue;
        }
        let ms = Duration::from_millis(u64::from(v));
        match i {
            cfg::MAX_ATTEMPTS | cfg::BREAKER_THRESHOLD if v == 0 => return None,
            cfg::MAX_ATTEMPTS => c.max_attempts = v,
            cfg::BASE_DELAY => c.backoff_base = ms,
            cfg::MAX_DELAY => c.backoff_cap = ms,
            cfg::MAX_RETRY_AFTER => c.retry_after_cap = ms,
            cfg::RESTART_ON_PARTIAL => c.restart_on_partial = v != 0,
            cfg::BUDGET_PERMILLE => c.budget_ratio_permille = v,
            cfg::BREAKER_THRESHOLD => c.breaker_threshold = v,
            cfg::BREAKER_COOLDOWN => c.breaker_cooldown = ms,
            cfg::FIRST_BYTE..=cfg::TOTAL if v == 0 => return None,
            cfg::FIRST_BYTE => t.first_byte = ms,
            cfg::FIRST_TOKEN => t.first_token = ms,
            cfg::IDLE => t.idle = ms,
            cfg::TOTAL => t.total = ms,
            _ => continue,
        }
        fixed |= i >= cfg::FIRST_BYTE;
    }
    if fixed {
        c.timeouts = Some(t);
    }
    Some(c)
}

/// At most this many endpoints.
pub const ENDPOINTS: usize = MAX_ENDPOINTS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_numbers() {
        let mut n = [UNSET; cfg::LEN];
        let d = config(&n).unwrap();
        assert_eq!(d, CallConfig::default());
        n[cfg::MAX_ATTEMPTS] = 2;
        n[cfg::IDLE] = 300;
        let c = config(&n).unwrap();
        assert_eq!(c.max_attempts, 2);
        let t = c.timeouts.unwrap();
        assert_eq!(t.idle, Duration::from_millis(300));
        assert_eq!(
            t.first_byte,
            Timeouts::for_profile(Default::default()).first_byte
        );
        n[cfg::MAX_ATTEMPTS] = 0;
        assert!(config(&n).is_none());
        n[cfg::MAX_ATTEMPTS] = 1;
        n[cfg::BREAKER_THRESHOLD] = 0;
        assert!(config(&n).is_none());
        n[cfg::BREAKER_THRESHOLD] = 3;
        n[cfg::TOTAL] = 0;
        assert!(config(&n).is_none());
        n[cfg::TOTAL] = 9000;
        let mut longer = n.to_vec();
        longer.push(5);
        let c = config(&longer).unwrap();
        assert_eq!(
            (c.breaker_threshold, c.timeouts.unwrap().total),
            (3, Duration::from_secs(9))
        );
        assert!(config(&[]).is_some());
        let mut only_cooldown = [UNSET; cfg::LEN];
        only_cooldown[cfg::BREAKER_COOLDOWN] = 5;
        assert_eq!(
            config(&only_cooldown).unwrap().timeouts,
            None,
            "no timeout set: tiers"
        );
    }
}
