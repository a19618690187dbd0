//! Timeouts by request profile: the table [`Timeouts::for_profile`] applies, and its reasons.

use crate::time::Duration;

/// What the engine knows about a request when it picks timeouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestProfile {
    /// Bytes of prompt text (all messages).
    pub prompt_bytes: u32,
    /// The answer's token limit, if set.
    pub max_tokens: Option<u32>,
    /// Whether any message carries an image.
    pub has_images: bool,
    /// A reasoning request (a reasoning effort, Anthropic thinking, or a model the adapter's
    /// configuration marks as reasoning): minutes may pass before the first token.
    pub reasoning: bool,
    /// Not streamed: the response head only comes when the whole answer is ready.
    pub non_streamed: bool,
}

/// The timeouts of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Request sent → response head.
    pub first_byte: Duration,
    /// Request sent → first content.
    pub first_token: Duration,
    /// Longest gap between two pieces of the body (keep-alive comments count as life).
    pub idle: Duration,
    /// The whole call: all attempts and all sleeps, before it grows (below).
    pub total: Duration,
    /// How much later the total deadline moves for every KiB of answer delivered (zero: it
    /// never moves). A healthy answer faster than ~8 tokens a second never reaches the
    /// deadline however long it is; the deadline never moves past [`MAX_TOTAL`] after the
    /// call's start (or `total`, if that is longer).
    pub total_per_kib: Duration,
}

/// The longest a call's deadline grows to (one hour).
pub const MAX_TOTAL: Duration = Duration::from_secs(3600);

/// Tokens assumed for a non-streamed answer without a token limit, when sizing its
/// first-byte deadline.
pub const ASSUMED_ANSWER_TOKENS: u32 = 4096;

/// Milliseconds an answer of `tokens` tokens can take to generate: an hour per 128,000
/// tokens (~36 tokens a second, Anthropic's own estimate for its non-streamed answers).
fn generation_ms(tokens: u32) -> u32 {
    tokens.min(128_000) * 225 / 8
}

impl Timeouts {
    /// The default timeouts for a request. Streamed, by prompt size:
    ///
    /// | request | connect | first byte | first token | idle | total |
    /// |---|---|---|---|---|---|
    /// | small (prompt < 8 KB) | 10 s | 30 s | 45 s | 30 s | 120 s |
    /// | long prompt (≥ 8 KB) | 10 s | 60 s | 90 s | 30 s | 240 s |
    /// | very long prompt (≥ 64 KB) | 10 s | 120 s | 180 s | 45 s | 420 s |
    /// | images | +0 | +30 s | +30 s | +0 | +60 s |
    ///
    /// Then, with G(T) = the time an answer of T tokens can take (an hour per 128,000
    /// tokens, Anthropic's own estimate) and T = `max_tokens`:
    /// - **`max_tokens`**: total at least first token + G(T), at most [`MAX_TOTAL`].
    /// - **reasoning** (a reasoning effort, Anthropic thinking, or a model marked as
    ///   reasoning): first byte +30 s; first token + max(255 s, G(T)) — 300 s for a small
    ///   prompt: a model may think for minutes, and OpenAI sends nothing while it does;
    ///   total = first token + the tier's time after it (or G(T), if longer).
    /// - **not streamed**: the head comes with the whole answer, so first byte and first
    ///   token = the (reasoning) first-token value + G(T or [`ASSUMED_ANSWER_TOKENS`]) — 160 s
    ///   for a small prompt without a limit; total = first byte + the tier's time after the
    ///   first token.
    /// - **growth**: every KiB of answer delivered moves the total deadline 30 s later
    ///   ([`Timeouts::total_per_kib`]), up to [`MAX_TOTAL`]: a four-minute answer is not cut
    ///   at two minutes, while idle and first-token timeouts still catch a stall at once.
    ///
    /// Everything stays bounded: no timeout exceeds [`MAX_TOTAL`]. Before the first content
    /// (text, a refusal or a tool call — not reasoning) only the first-token deadline bounds
    /// a wait; from then on the idle timeout does, and reasoning deltas and keep-alive
    /// comments keep it alive.
    // Kept out of line: it runs once per call.
    #[inline(never)]
    #[must_use]
    pub fn for_profile(p: RequestProfile) -> Timeouts {
        // Milliseconds in u32 (an hour fits 1,000 times over): small code on a 32-bit MCU.
        const S: u32 = 1000;
        let (first_byte, first_token, idle, total) = if p.prompt_bytes >= 64 * 1024 {
            (120, 180, 45, 420)
        } else if p.prompt_bytes >= 8 * 1024 {
            (60, 90, 30, 240)
        } else {
            (30, 45, 30, 120)
        };
        let img = if p.has_images { 30 } else { 0 };
        let gen_max = p.max_tokens.map_or(0, generation_ms);
        // The time the tier allows after the first token.
        let mut after = (total - first_token + img) * S;
        let mut first_byte = (first_byte + img) * S;
        let mut first_token = (first_token + img) * S;
        if p.reasoning {
            first_byte += 30 * S;
            first_token += gen_max.max(255 * S);
        }
        if p.non_streamed {
            first_token += generation_ms(p.max_tokens.unwrap_or(ASSUMED_ANSWER_TOKENS));
            first_byte = first_token;
        } else {
            after = after.max(gen_max);
        }
        let max = MAX_TOTAL.as_millis() as u32;
        let ms = |v: u32| Duration::from_millis(u64::from(v.min(max)));
        Timeouts {
            connect: ms(10 * S),
            first_byte: ms(first_byte),
            first_token: ms(first_token),
            idle: ms(idle * S),
            total: ms(first_token.min(max) + after),
            total_per_kib: ms(30 * S),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        let small = Timeouts::for_profile(RequestProfile::default());
        assert_eq!(small.first_byte, Duration::from_secs(30));
        let long = Timeouts::for_profile(RequestProfile {
            prompt_bytes: 100_000,
            ..Default::default()
        });
        assert!(long.first_byte > small.first_byte && long.total > small.total);
        let img = Timeouts::for_profile(RequestProfile {
            has_images: true,
            ..Default::default()
        });
        assert!(img.first_token > small.first_token);
        let big = Timeouts::for_profile(RequestProfile {
            max_tokens: Some(64_000),
            ..Default::default()
        });
        assert_eq!(big.total, Duration::from_secs(1800 + 45));
        let huge = Timeouts::for_profile(RequestProfile {
            max_tokens: Some(u32::MAX),
            ..Default::default()
        });
        assert_eq!(huge.total, Duration::from_secs(3600));
    }

    #[test]
    fn reasoning_and_whole_answers_get_room_and_stay_bounded() {
        let secs = Duration::from_secs;
        let small = Timeouts::for_profile(RequestProfile::default());
        // A reasoning request: minutes to the first token, the same idle timeout after it.
        let think = Timeouts::for_profile(RequestProfile {
            reasoning: true,
            ..Default::default()
        });
        assert_eq!(think.first_token, secs(300));
        assert_eq!(think.first_byte, secs(60));
        assert_eq!(think.idle, small.idle);
        assert_eq!(think.total, secs(300 + 75));
        // A thinking budget inside max_tokens: the first token may take the whole limit.
        let deep = Timeouts::for_profile(RequestProfile {
            reasoning: true,
            max_tokens: Some(32_000),
            ..Default::default()
        });
        assert_eq!(deep.first_token, secs(45 + 900));
        assert_eq!(deep.total, secs(45 + 900 + 900));
        // Not streamed: the head comes with the answer; its deadline grows with max_tokens.
        let whole = Timeouts::for_profile(RequestProfile {
            non_streamed: true,
            ..Default::default()
        });
        assert_eq!(whole.first_byte, Duration::from_millis(45_000 + 115_200));
        let whole_big = Timeouts::for_profile(RequestProfile {
            non_streamed: true,
            max_tokens: Some(8192),
            ..Default::default()
        });
        assert_eq!(
            whole_big.first_byte,
            Duration::from_millis(45_000 + 230_400)
        );
        assert!(whole_big.first_byte > whole.first_byte);
        assert_eq!(whole_big.total, whole_big.first_byte + secs(75));
        // Every wait stays bounded, whatever the profile.
        for reasoning in [false, true] {
            for non_streamed in [false, true] {
                let t = Timeouts::for_profile(RequestProfile {
                    prompt_bytes: u32::MAX,
                    max_tokens: Some(u32::MAX),
                    has_images: true,
                    reasoning,
                    non_streamed,
                });
                for d in [t.first_byte, t.first_token, t.idle, t.total] {
                    assert!(d <= MAX_TOTAL, "{t:?}");
                }
                assert!(t.first_byte <= t.total && t.first_token <= t.total);
            }
        }
    }
}
