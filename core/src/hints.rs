//! What response headers say about retrying: `retry-after` (seconds or an HTTP date),
//! `retry-after-ms`, `x-should-retry`, the `x-ratelimit-*` family (with Go durations) and,
//! with the `anthropic` feature, `anthropic-ratelimit-*` (RFC 3339 times). The engine reads
//! the result, [`RetryHints`], from each attempt's [`Outcome`](crate::call::Outcome).

use crate::response::decimal;
use crate::time::Duration;

/// What response headers (and the error body) say about retrying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryHints {
    /// `x-should-retry`.
    pub should_retry: Option<bool>,
    /// `retry-after-ms`, or `retry-after` (seconds, or an HTTP-date relative to `Date`).
    pub retry_after: Option<Duration>,
    /// The error body's code is `insufficient_quota` (set by the adapter from the body).
    pub insufficient_quota: bool,
    /// `x-ratelimit-remaining-requests` / `-tokens` reached 0: the reset delay, if given.
    pub rate_limited_for: Option<Duration>,
    retry_after_date: Option<u64>,
    date: Option<u64>,
    retry_after_ms_seen: bool,
    remaining_zero_requests: bool,
    remaining_zero_tokens: bool,
    reset_requests: Option<Duration>,
    reset_tokens: Option<Duration>,
    /// Anthropic's resets: absolute times (RFC 3339), made relative with `Date`.
    #[cfg(feature = "anthropic")]
    reset_requests_at: Option<u64>,
    #[cfg(feature = "anthropic")]
    reset_tokens_at: Option<u64>,
}

impl RetryHints {
    /// Takes one response header (name case-insensitive). Malformed values are ignored.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn observe(&mut self, name: &str, value: &[u8]) {
        let Ok(v) = core::str::from_utf8(value) else {
            return;
        };
        let v = v.trim_ascii();
        // One comparison loop over a table, then a jump: smaller than a chain of comparisons.
        const NAMES: [&str; 8] = [
            "retry-after-ms",
            "retry-after",
            "date",
            "x-should-retry",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-requests",
            "x-ratelimit-reset-tokens",
        ];
        match NAMES.iter().position(|n| name.eq_ignore_ascii_case(n)) {
            Some(0) => {
                if let Some(ms) = parse_decimal_ms(v) {
                    self.retry_after = Some(ms);
                    self.retry_after_ms_seen = true;
                }
            }
            Some(1) => {
                if self.retry_after_ms_seen {
                    return;
                }
                if let Some(s) = parse_u64(v.as_bytes()) {
                    self.retry_after = Some(Duration::from_secs(s));
                } else if let Some(t) = parse_http_date(v) {
                    self.retry_after_date = Some(t);
                    self.resolve_date();
                }
            }
            Some(2) => {
                self.date = parse_http_date(v);
                self.resolve_date();
                #[cfg(feature = "anthropic")]
                self.resolve_rate_limit();
            }
            Some(3) => {
                if v.eq_ignore_ascii_case("true") {
                    self.should_retry = Some(true);
                } else if v.eq_ignore_ascii_case("false") {
                    self.should_retry = Some(false);
                }
            }
            Some(i @ (4 | 5)) => {
                let zero = parse_u64(v.as_bytes()) == Some(0);
                if i == 4 {
                    self.remaining_zero_requests = zero;
                } else {
                    self.remaining_zero_tokens = zero;
                }
                self.resolve_rate_limit();
            }
            Some(i) => {
                let reset = parse_go_duration(v);
                if i == 6 {
                    self.reset_requests = reset;
                } else {
                    self.reset_tokens = reset;
                }
                self.resolve_rate_limit();
            }
            None => {
                #[cfg(feature = "anthropic")]
                self.observe_anthropic(name, v);
            }
        }
    }

    /// Anthropic's `anthropic-ratelimit-*` headers (only with the `anthropic` feature).
    #[cfg(feature = "anthropic")]
    fn observe_anthropic(&mut self, name: &str, v: &str) {
        if let Some(field) = strip_prefix_ignore_case(name, "anthropic-ratelimit-") {
            // requests-, tokens-, input-tokens-, output-tokens- × remaining, reset.
            let f = field.as_bytes();
            let ends = |suffix: &[u8]| {
                f.len() >= suffix.len()
                    && f.get(f.len() - suffix.len()..)
                        .is_some_and(|e| e.eq_ignore_ascii_case(suffix))
            };
            let requests = f
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"requests-"));
            if ends(b"-remaining") {
                let zero = parse_u64(v.as_bytes()) == Some(0);
                if requests {
                    self.remaining_zero_requests = zero;
                } else {
                    self.remaining_zero_tokens |= zero;
                }
            } else if ends(b"-reset") {
                let at = parse_rfc3339(v);
                if requests {
                    self.reset_requests_at = at;
                } else {
                    self.reset_tokens_at = self.reset_tokens_at.max(at);
                }
            }
            self.resolve_rate_limit();
        }
    }

    fn resolve_date(&mut self) {
        if self.retry_after_ms_seen {
            return;
        }
        if let (Some(at), Some(now)) = (self.retry_after_date, self.date) {
            self.retry_after = Some(Duration::from_secs(at.saturating_sub(now)));
        }
    }

    fn resolve_rate_limit(&mut self) {
        #[allow(unused_mut)]
        let (mut reset_requests, mut reset_tokens) = (self.reset_requests, self.reset_tokens);
        #[cfg(feature = "anthropic")]
        {
            let until = |at: Option<u64>, date: Option<u64>| {
                Some(Duration::from_secs(at?.saturating_sub(date?)))
            };
            reset_requests = reset_requests.or(until(self.reset_requests_at, self.date));
            reset_tokens = reset_tokens.or(until(self.reset_tokens_at, self.date));
        }
        let mut d: Option<Duration> = None;
        if self.remaining_zero_requests {
            d = Some(reset_requests.unwrap_or(Duration::from_secs(1)));
        }
        if self.remaining_zero_tokens {
            let t = reset_tokens.unwrap_or(Duration::from_secs(1));
            d = Some(d.map_or(t, |x| x.max(t)));
        }
        self.rate_limited_for = d;
    }
}

/// `name` without `prefix`, compared ASCII case-insensitively.
#[cfg(feature = "anthropic")]
fn strip_prefix_ignore_case<'n>(name: &'n str, prefix: &str) -> Option<&'n str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| name.get(prefix.len()..))?
}

/// ASCII digits only (no sign, no spaces), at most 19 of them, so they always fit.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.len() > 19 {
        return None;
    }
    decimal(s)
}

#[cfg(feature = "anthropic")]
/// A non-empty run of ASCII digits that fits a `u64` (core's integer parser costs flash).
fn digits_u64(s: &str) -> Option<u64> {
    decimal(s.as_bytes())
}

/// `retry-after-ms`: milliseconds, possibly fractional (`1500`, `20.5`).
fn parse_decimal_ms(s: &str) -> Option<Duration> {
    // Byte scans rather than char patterns here and below: no UTF-8 searcher is linked.
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => b.split_at(i),
        None => (b, &b"."[..]),
    };
    let frac = frac.get(1..).unwrap_or_default();
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = parse_u64(int)?;
    let round_up = frac.first().is_some_and(|&d| d >= b'5');
    Some(Duration::from_millis(
        ms.saturating_add(u64::from(round_up)),
    ))
}

/// Go's `time.Duration` format as OpenAI sends it: `1s`, `6m0s`, `12ms`, `1h2m3.5s`, `500us`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.as_bytes();
    if rest.is_empty() {
        return None;
    }
    let digits = |b: &[u8]| b.iter().take_while(|d| d.is_ascii_digit()).count();
    let mut total_us: u64 = 0;
    while !rest.is_empty() {
        let (int, after) = rest.split_at(digits(rest));
        let (frac, after) = match after {
            [b'.', f @ ..] => f.split_at(digits(f)),
            _ => (&[][..], after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        // Microseconds per unit: at most an hour's, which fits a u32.
        let (unit_us, after): (u32, &[u8]) = match after {
            [b'm', b's', r @ ..] => (1000, r),
            [b'u', b's', r @ ..] | [0xC2, 0xB5, b's', r @ ..] => (1, r), // `us`, `µs`
            [b'n', b's', r @ ..] => (0, r),
            [b'h', r @ ..] => (3_600_000_000, r),
            [b'm', r @ ..] => (60_000_000, r),
            [b's', r @ ..] => (1_000_000, r),
            _ => return None,
        };
        rest = after;
        let whole = if int.is_empty() { 0 } else { decimal(int)? };
        let mut part = whole.saturating_mul(u64::from(unit_us));
        // Fraction of the unit, to microseconds (up to 9 digits considered).
        let mut scale = unit_us;
        for d in frac.iter().take(9) {
            scale /= 10;
            part = part.saturating_add(u64::from(u32::from(d - b'0') * scale));
        }
        total_us = total_us.saturating_add(part);
    }
    Some(Duration::from_millis(total_us.div_ceil(1000)))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the fixed-length form every server
/// sends) as seconds since the Unix epoch.
fn parse_http_date(s: &str) -> Option<u64> {
    // Fixed positions: `0` a digit, `_` a letter (the month's are checked below, the weekday's
    // not at all), anything else itself. One loop over the shape: smaller than a check per
    // position.
    const SHAPE: &[u8; 29] = b"___, 00 ___ 0000 00:00:00 GMT";
    let b = s.as_bytes();
    if b.len() != SHAPE.len() {
        return None;
    }
    let mut n = [0u32; 5];
    let mut k = 0;
    for (i, (&c, &t)) in b.iter().zip(SHAPE).enumerate() {
        if t == b'0' {
            let d = c.wrapping_sub(b'0');
            let field = n.get_mut(k)?;
            if d > 9 {
                return None;
            }
            *field = *field * 10 + u32::from(d);
            if SHAPE.get(i + 1) != Some(&b'0') {
                k += 1;
            }
        } else if t != b'_' && c != t {
            return None;
        }
    }
    let [day, year, h, m, sec] = n;
    let name = b.get(8..11)?;
    let month = b"JanFebMarAprMayJunJulAugSepOctNovDec"
        .chunks_exact(3)
        .position(|m| m == name)? as u32
        + 1;
    if day == 0 || day > 31 || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    unix_seconds(year, month, day, h, m, sec)
}

#[cfg(feature = "anthropic")]
/// An RFC 3339 time as Anthropic's rate-limit headers send it (`2026-12-01T12:00:30Z`, with
/// optional fractional seconds and a `Z` or `±hh:mm` offset), as seconds since 1970.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    if b.get(16) != Some(&b':') {
        return None;
    }
    // At most four digits each: they fit a u32.
    let num = |r: core::ops::Range<usize>| digits_u64(s.get(r)?).map(|n| n as u32);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = frac.get(digits..)?;
    }
    let valid = month != 0 && month <= 12 && day != 0 && day <= 31 && year >= 1970;
    if !valid || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let t = unix_seconds(year, month, day, h, m, sec)?;
    if rest == "Z" || rest == "z" {
        return Some(t);
    }
    let (sign, off) = (rest.as_bytes().first()?, rest.get(1..)?);
    if off.len() != 5 || off.as_bytes().get(2) != Some(&b':') {
        return None;
    }
    let offset = digits_u64(off.get(..2)?)? * 3600 + digits_u64(off.get(3..)?)? * 60;
    match sign {
        b'+' => t.checked_sub(offset),
        b'-' => t.checked_add(offset),
        _ => None,
    }
}

/// Seconds since 1970 of a checked UTC date and time (month 1–12, year 1970–9999).
#[inline(always)]
fn unix_seconds(year: u32, month: u32, day: u32, h: u32, m: u32, sec: u32) -> Option<u64> {
    // Days from civil (Howard Hinnant's algorithm), in u32 (no u64 division on a 32-bit MCU):
    // year ≤ 9999 keeps every term far below 2³².
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(u64::from(days) * 86_400 + u64::from(h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(headers: &[(&str, &str)]) -> RetryHints {
        let mut h = RetryHints::default();
        for (n, v) in headers {
            h.observe(n, v.as_bytes());
        }
        h
    }

    #[cfg(feature = "anthropic")]
    #[test]
    fn anthropic_rate_limit_headers_pause_until_their_reset() {
        let h = hints(&[
            ("date", "Tue, 01 Dec 2026 12:00:00 GMT"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-12-01T12:00:30Z"),
            ("anthropic-ratelimit-input-tokens-remaining", "5000"),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2026-12-01T13:01:00+01:00",
            ),
        ]);
        assert_eq!(h.rate_limited_for, Some(Duration::from_secs(60)));
        // Headers in any order, Date last.
        let h = hints(&[
            (
                "Anthropic-RateLimit-Requests-Reset",
                "2026-12-01T12:00:07.250Z",
            ),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("date", "Tue, 01 Dec 2026 12:00:00 GMT"),
        ]);
        assert_eq!(h.rate_limited_for, Some(Duration::from_secs(7)));
        let h = hints(&[
            ("anthropic-ratelimit-requests-remaining", "3"),
            ("anthropic-ratelimit-requests-reset", "2026-12-01T12:00:30Z"),
        ]);
        assert_eq!(h.rate_limited_for, None);
        assert_eq!(parse_rfc3339("2026-12-01T12:00:30Z"), Some(1_796_126_430));
        assert_eq!(
            parse_rfc3339("2026-12-01T12:00:30-00:30"),
            Some(1_796_128_230)
        );
        for bad in [
            "2026-13-01T12:00:30Z",
            "2026-12-01 12:00",
            "2026-12-01T12:00:30",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            hints(&[("Retry-After", "2")]).retry_after,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            hints(&[("retry-after-ms", "1500")]).retry_after,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            hints(&[("retry-after-ms", "20.5")]).retry_after,
            Some(Duration::from_millis(21))
        );
        // retry-after-ms wins over retry-after, in either order
        assert_eq!(
            hints(&[("retry-after", "9"), ("retry-after-ms", "100")]).retry_after,
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            hints(&[("retry-after-ms", "100"), ("retry-after", "9")]).retry_after,
            Some(Duration::from_millis(100))
        );
        // HTTP-date, relative to the response's Date header, in either order
        let date = [
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"),
        ];
        assert_eq!(hints(&date).retry_after, Some(Duration::from_secs(30)));
        let rev = [date[1], date[0]];
        assert_eq!(hints(&rev).retry_after, Some(Duration::from_secs(30)));
        // a date in the past: retry now
        assert_eq!(
            hints(&[
                ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT")
            ])
            .retry_after,
            Some(Duration::ZERO)
        );
        // no Date header: the date form cannot be resolved without a clock, so it is ignored
        assert_eq!(
            hints(&[("Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT")]).retry_after,
            None
        );
        for bad in [
            "-1",
            "1.5",
            "soon",
            "",
            "99999999999999999999999",
            "Sun, 32 Nov 1994 08:50:07 GMT",
            "Sun, 06 Foo 1994 08:50:07 GMT",
        ] {
            assert_eq!(
                hints(&[
                    ("retry-after", bad),
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT")
                ])
                .retry_after,
                None,
                "{bad}"
            );
        }
        assert_eq!(hints(&[("retry-after-ms", "x")]).retry_after, None);
        assert_eq!(hints(&[("retry-after", "\u{ff}")]).retry_after, None);
        let mut h = RetryHints::default();
        h.observe("retry-after", b"\xff\xfe");
        assert_eq!(h, RetryHints::default());
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sat, 29 Feb 2020 12:00:00 GMT"),
            Some(1_582_977_600)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 24:49:37 GMT"), None);
        for d in [
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 0é Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
        ] {
            assert_eq!(parse_http_date(d), None, "{d}");
        }
        for bad in [
            "08:49:37:00",
            "08:49",
            "08:4x:37",
            "08::37",
            ":49:37",
            "08:49:",
        ] {
            let d = std::format!("Sun, 06 Nov 1994 {bad} GMT");
            assert_eq!(parse_http_date(&d), None, "{d}");
        }
        let ms = |v: &str| parse_decimal_ms(v).map(Duration::as_millis);
        assert_eq!(
            (ms("1500"), ms("20.5"), ms("20.4"), ms("7.")),
            (Some(1500), Some(21), Some(20), Some(7))
        );
        assert_eq!((ms("1.x"), ms(".5"), ms("a.1")), (None, None, None));
    }

    #[test]
    fn go_durations() {
        let ms = |s| parse_go_duration(s).map(Duration::as_millis);
        assert_eq!(ms("1s"), Some(1000));
        assert_eq!(ms("6m0s"), Some(360_000));
        assert_eq!(ms("12ms"), Some(12));
        assert_eq!(ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(ms("0.5s"), Some(500));
        assert_eq!(ms("500us"), Some(1));
        assert_eq!(ms("17.123ms"), Some(18));
        assert_eq!(ms("18446744073709551615us"), Some(18_446_744_073_709_552));
        for bad in [
            "",
            "s",
            "1",
            "1x",
            "1.s.",
            "-1s",
            "1 s",
            "abc",
            "18446744073709551616us",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
        assert_eq!(
            parse_u64(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(
            parse_u64(b"18446744073709551615"),
            None,
            "more than 19 digits"
        );
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn rate_limit_headers() {
        let h = hints(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
        ]);
        assert_eq!(h.rate_limited_for, Some(Duration::from_secs(1)));
        let h = hints(&[
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-remaining-requests", "10"),
        ]);
        assert_eq!(h.rate_limited_for, Some(Duration::from_secs(360)));
        assert_eq!(
            hints(&[("x-ratelimit-remaining-requests", "5")]).rate_limited_for,
            None
        );
        assert_eq!(
            hints(&[("x-should-retry", "false")]).should_retry,
            Some(false)
        );
        assert_eq!(
            hints(&[("X-Should-Retry", "TRUE")]).should_retry,
            Some(true)
        );
        assert_eq!(hints(&[("x-should-retry", "maybe")]).should_retry, None);
    }
}
