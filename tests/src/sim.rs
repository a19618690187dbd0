//! A deterministic simulator for the resilience engine: calls run in virtual time against
//! scripted, seeded fault schedules, so thousands of calls take milliseconds and a failing
//! seed is reproducible.
//!
//! The same schedules also drive two peers, modelled from their current source:
//! - **openai-python**: 2 retries of connection errors, timeouts, 408, 409, 429 and 5xx;
//!   backoff `min(0.5·2ⁿ, 8) s` minus up to 25 %; `Retry-After` honoured when
//!   0 < value ≤ 120 s, no retry above it; 5 s connect and 600 s read timeouts (the read
//!   timeout restarts per chunk); no total deadline, one endpoint, no breaker, no budget; a
//!   broken stream is raised to the caller. Its calls share nothing.
//! - **LiteLLM's Router**: every endpoint is a deployment of its own model group, chained as
//!   fallbacks in steadyllm's order (so it gets the same endpoints); `num_retries` 2 per group
//!   (openai's default), then the next group at once (`max_fallbacks` 5); between retries
//!   `Retry-After` when 0 < value ≤ 60 s, else `min(0.5·2ⁿ, 8) s` minus up to 25 % (a group of
//!   one deployment gets no instant retry); 5 s cooldowns decided from per-minute success and
//!   failure counts that all calls share, where a one-deployment group only cools down when
//!   all of at least 1,000 requests in the minute failed (or on a status it would not retry);
//!   a deployment cooling down is skipped without a request. Timeouts as openai-python's
//!   (LiteLLM's own default request timeout is 6,000 s: 600 s favours it); a broken stream is
//!   raised to the caller.
//!
//! Calls arrive by an [`Arrivals`] process: one after another (one device), a batch with
//! `concurrency` calls in flight (a page, or a device with several tasks), or Poisson bursts.
//! Overlapping calls share their client's state (steadyllm's [`ClientState`], the Router's
//! cooldowns and counters) and see it change as each attempt ends, in virtual-time order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use steadyllm_core::call::{
    AttemptPlan, Call, CallConfig, CallError, CallEvent, ClientState, Failure, Outcome, Phase,
    RequestProfile, Step, StreamFault,
};
use steadyllm_core::hints::RetryHints;
use steadyllm_core::rng::Rng;
use steadyllm_core::time::{Duration, Instant};

/// How an endpoint treats one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers: head after `head_ms`, then `chunks` content chunks `chunk_ms` apart.
    Ok,
    /// The connection is refused at once.
    Refuse,
    /// The connection never completes.
    ConnectHang,
    /// Connected, but no response head ever comes.
    StallBeforeHeaders,
    /// Head and `k` chunks, then silence forever.
    StallAfter(u32),
    /// Head and `k` chunks, then a reset.
    ResetAfter(u32),
    /// Head and `k` chunks, then a clean end without the end marker.
    TruncateAfter(u32),
    /// A status with an optional `Retry-After` in seconds.
    Status(u16, Option<u64>),
    /// A healthy answer of another shape: slow, long, or whole.
    Answer(Answer),
}

/// The shape of a healthy answer that is not the usual 1.3 s one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Request sent → response head (a whole answer: head and body together).
    pub head_ms: u64,
    /// Head → first content (a model thinking).
    pub think_ms: u64,
    /// While thinking, something comes this often (0: nothing at all, as OpenAI's chat
    /// completions send while a reasoning model thinks).
    pub beat_ms: u64,
    /// Bytes each beat delivers: reasoning text (Anthropic's thinking deltas), or 0 for a
    /// keep-alive comment.
    pub beat_bytes: u64,
    /// Content chunks, their gap and size.
    pub chunks: u32,
    /// Gap between chunks.
    pub chunk_ms: u64,
    /// Bytes per chunk.
    pub chunk_bytes: u64,
}

/// Shape of a normal answer.
pub const HEAD_MS: u64 = 300;
/// Gap between chunks.
pub const CHUNK_MS: u64 = 40;
/// Chunks in an answer.
pub const CHUNKS: u32 = 25;
/// Bytes per chunk.
pub const CHUNK_BYTES: u64 = 4;
/// Connect time.
pub const CONNECT_MS: u64 = 20;

/// When calls start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// One call at a time, as one device makes them: call `i` starts at
    /// `max(i × interval_ms, end of call i−1)`.
    Sequential {
        /// Gap between call starts.
        interval_ms: u64,
    },
    /// All calls queued at once, `concurrency` in flight: each ending call lets the next one
    /// start (a page or a device making a batch of calls from several tasks).
    Batch {
        /// Calls in flight at a time.
        concurrency: usize,
    },
    /// Bursts of `size` calls starting together; the bursts arrive as a Poisson process.
    PoissonBursts {
        /// Calls per burst.
        size: usize,
        /// Mean gap between bursts.
        mean_gap_ms: u64,
    },
}

/// A scenario: endpoints, calls, and the behaviour of each endpoint at each moment.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Short name for the table.
    pub name: &'static str,
    /// What it models.
    pub description: &'static str,
    /// Endpoints (steadyllm and LiteLLM get all; the openai-python model only the first).
    pub endpoints: usize,
    /// Calls per run.
    pub calls: usize,
    /// When calls start.
    pub arrivals: Arrivals,
    /// Whether some endpoint is always healthy (then every call must succeed).
    pub always_healthy_fallback: bool,
    /// Least share of steadyllm's calls that must succeed (a property).
    pub min_success: f64,
    /// Most attempts per call steadyllm may make (a property), if bounded.
    pub max_amplification: Option<f64>,
    /// From then on every endpoint is healthy: steadyllm's calls starting 5 s later or more
    /// must succeed (a property).
    pub healthy_from_ms: Option<u64>,
    /// The behaviour of `endpoint` for an attempt starting at `t_ms`.
    pub behaviour: fn(endpoint: usize, t_ms: u64, rng: &mut Rng) -> Behaviour,
    /// What steadyllm's engine is told about the request (reasoning, not streamed, …).
    pub profile: RequestProfile,
    /// Content chunks in a complete answer.
    pub chunks: u32,
    /// Slow but healthy work (no faults): every call must succeed at its first attempt.
    pub slow: bool,
}

impl Scenario {
    /// A sequential scenario of 1,000 calls, 2 s apart, on two endpoints, with no
    /// expectations beyond the common properties.
    const fn sequential(
        name: &'static str,
        description: &'static str,
        always_healthy_fallback: bool,
        behaviour: fn(usize, u64, &mut Rng) -> Behaviour,
    ) -> Scenario {
        Scenario {
            name,
            description,
            endpoints: 2,
            calls: 1000,
            arrivals: Arrivals::Sequential { interval_ms: 2000 },
            always_healthy_fallback,
            min_success: 0.0,
            max_amplification: None,
            healthy_from_ms: None,
            behaviour,
            profile: STREAMED,
            chunks: CHUNKS,
            slow: false,
        }
    }

    /// A slow-but-healthy scenario: 100 calls, one after another, on one endpoint.
    const fn slow(
        name: &'static str,
        description: &'static str,
        profile: RequestProfile,
        chunks: u32,
        behaviour: fn(usize, u64, &mut Rng) -> Behaviour,
    ) -> Scenario {
        Scenario {
            endpoints: 1,
            calls: 100,
            always_healthy_fallback: true,
            min_success: 1.0,
            max_amplification: Some(1.0),
            profile,
            chunks,
            slow: true,
            ..Scenario::sequential(name, description, true, behaviour)
        }
    }

    /// Whether it runs calls that overlap.
    pub fn concurrent(&self) -> bool {
        !matches!(self.arrivals, Arrivals::Sequential { .. })
    }

    /// Whether any fault is injected (every scenario but `healthy` and the slow ones).
    pub fn faulty(&self) -> bool {
        self.name != "healthy" && !self.slow
    }
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.below_or_equal(99) < percent
}

/// The soak's fault mix at `percent` % of requests, each fault before any content (so every
/// one is retryable): a stall before the head, a reset or a clean end right after the head,
/// 429 with `Retry-After: 1`, 503.
pub fn random_fault(rng: &mut Rng, percent: u64) -> Behaviour {
    if !chance(rng, percent) {
        return Behaviour::Ok;
    }
    match rng.below_or_equal(4) {
        0 => Behaviour::StallBeforeHeaders,
        1 => Behaviour::ResetAfter(0),
        2 => Behaviour::TruncateAfter(0),
        3 => Behaviour::Status(429, Some(1)),
        _ => Behaviour::Status(503, None),
    }
}

/// A small streamed request, as most scenarios make.
const STREAMED: RequestProfile = RequestProfile {
    prompt_bytes: 0,
    max_tokens: None,
    has_images: false,
    reasoning: false,
    non_streamed: false,
};

/// A reasoning request (a reasoning effort or Anthropic thinking set).
const REASONING: RequestProfile = RequestProfile {
    reasoning: true,
    ..STREAMED
};

/// Minutes a reasoning model thinks before its first token: 60–180 s.
fn think(r: &mut Rng) -> u64 {
    60_000 + r.below_or_equal(120_000)
}

/// When the outage of the `outage-ends` scenarios ends.
pub const OUTAGE_ENDS_MS: u64 = 60_000;

/// The scenarios of the comparison table: one device's sequential calls, then overlapping
/// calls (a batch of 400, 8 at a time, and Poisson bursts of 8) on one and on two endpoints.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::sequential("healthy", "no faults", true, |_, _, _| Behaviour::Ok),
        Scenario::sequential(
            "flaky-connect",
            "25% of connections refused",
            false,
            |_, _, r| {
                if chance(r, 25) {
                    Behaviour::Refuse
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "stall-before-headers",
            "10% of requests never get a response head",
            false,
            |_, _, r| {
                if chance(r, 10) {
                    Behaviour::StallBeforeHeaders
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "stall-mid-stream",
            "10% of streams stall for good, half before the first token",
            false,
            |_, _, r| {
                if chance(r, 10) {
                    if chance(r, 50) {
                        Behaviour::StallAfter(0)
                    } else {
                        Behaviour::StallAfter(1 + r.below_or_equal(10) as u32)
                    }
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "429-bursts",
            "30 s of every 2 min: 80% 429 with Retry-After: 2",
            false,
            |_, t, r| {
                if t % 120_000 < 30_000 && chance(r, 80) {
                    Behaviour::Status(429, Some(2))
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "503-storm",
            "50% 503 on every endpoint, all run long",
            false,
            |_, _, r| {
                if chance(r, 50) {
                    Behaviour::Status(503, None)
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "primary-dead",
            "primary refuses connections for 10 minutes; fallback healthy",
            true,
            |e, t, _| {
                if e == 0 && t < 600_000 {
                    Behaviour::Refuse
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "primary-blackhole",
            "primary's connections hang for 10 minutes; fallback healthy",
            true,
            |e, t, _| {
                if e == 0 && t < 600_000 {
                    Behaviour::ConnectHang
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "flapping",
            "primary down 20 s / up 20 s (resets mid-stream); fallback healthy",
            true,
            |e, t, _| {
                if e == 0 && (t / 20_000) % 2 == 0 {
                    Behaviour::ResetAfter(0)
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "retry-after-1-day",
            "30% of primary answers are 503 with Retry-After: 86400",
            false,
            |e, _, r| {
                if e == 0 && chance(r, 30) {
                    Behaviour::Status(503, Some(86_400))
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "full-outage",
            "every endpoint answers 503 all run long",
            false,
            |_, _, _| Behaviour::Status(503, None),
        ),
    ];
    type Fault = fn(usize, u64, &mut Rng) -> Behaviour;
    // description, fault schedule, least success (1 endpoint, 2), most attempts/call, healthy
    // from; named in NAMES below
    type Schedule = (&'static str, Fault, [f64; 2], Option<f64>, Option<u64>);
    let overlapping: [Schedule; 4] = [
        (
            "25% of requests faulted: stall, reset, cut, 429, 503",
            |_, _, r| random_fault(r, 25),
            [0.99, 0.99],
            None,
            None,
        ),
        (
            "60% of requests faulted: stall, reset, cut, 429, 503",
            |_, _, r| random_fault(r, 60),
            [0.80, 0.80],
            None,
            None,
        ),
        (
            "every request faulted: stall, reset, cut, 429, 503",
            |_, _, r| random_fault(r, 100),
            [0.0, 0.0],
            Some(1.5),
            None,
        ),
        (
            "every request faulted for the first 60 s, then none",
            |_, t, r| {
                if t < OUTAGE_ENDS_MS {
                    random_fault(r, 100)
                } else {
                    Behaviour::Ok
                }
            },
            [0.0, 0.0],
            None,
            Some(OUTAGE_ENDS_MS),
        ),
    ];
    const NAMES: [[&str; 2]; 8] = [
        ["batch8-25pct-1ep", "batch8-25pct-2ep"],
        ["batch8-60pct-1ep", "batch8-60pct-2ep"],
        ["batch8-outage-1ep", "batch8-outage-2ep"],
        ["batch8-outage-ends-1ep", "batch8-outage-ends-2ep"],
        ["bursts8-25pct-1ep", "bursts8-25pct-2ep"],
        ["bursts8-60pct-1ep", "bursts8-60pct-2ep"],
        ["bursts8-outage-1ep", "bursts8-outage-2ep"],
        ["bursts8-outage-ends-1ep", "bursts8-outage-ends-2ep"],
    ];
    let arrivals = [
        Arrivals::Batch { concurrency: 8 },
        Arrivals::PoissonBursts {
            size: 8,
            mean_gap_ms: 4_000,
        },
    ];
    for (a, arrivals) in arrivals.into_iter().enumerate() {
        for (k, (description, behaviour, min, amp, healthy)) in overlapping.iter().enumerate() {
            for endpoints in [1, 2] {
                v.push(Scenario {
                    name: NAMES[a * 4 + k][endpoints - 1],
                    description,
                    endpoints,
                    calls: 400,
                    arrivals,
                    always_healthy_fallback: false,
                    min_success: min[endpoints - 1],
                    max_amplification: *amp,
                    healthy_from_ms: *healthy,
                    behaviour: *behaviour,
                    profile: STREAMED,
                    chunks: CHUNKS,
                    slow: false,
                });
            }
        }
    }
    // Slow but healthy work, which the defaults must let through at the first attempt.
    v.extend([
        Scenario::slow(
            "reasoning-silent",
            "a reasoning model thinks 60-180 s and sends nothing meanwhile",
            REASONING,
            CHUNKS,
            |_, _, r| {
                Behaviour::Answer(Answer {
                    think_ms: think(r),
                    ..Answer::USUAL
                })
            },
        ),
        Scenario::slow(
            "reasoning-keepalive",
            "thinks 60-180 s, a keep-alive comment every 15 s",
            REASONING,
            CHUNKS,
            |_, _, r| {
                Behaviour::Answer(Answer {
                    think_ms: think(r),
                    beat_ms: 15_000,
                    ..Answer::USUAL
                })
            },
        ),
        Scenario::slow(
            "reasoning-deltas",
            "streams its thinking for 60-180 s (20 B every 0.5 s), then the answer",
            REASONING,
            CHUNKS,
            |_, _, r| {
                Behaviour::Answer(Answer {
                    think_ms: think(r),
                    beat_ms: 500,
                    beat_bytes: 20,
                    ..Answer::USUAL
                })
            },
        ),
        Scenario::slow(
            "four-minute-answer",
            "a 48 KB answer streamed over 4 minutes (no max_tokens)",
            STREAMED,
            2_400,
            |_, _, _| {
                Behaviour::Answer(Answer {
                    chunks: 2_400,
                    chunk_ms: 100,
                    chunk_bytes: 20,
                    ..Answer::USUAL
                })
            },
        ),
        Scenario::slow(
            "whole-answer-90s",
            "not streamed: the head comes with the whole answer after 90 s",
            RequestProfile {
                non_streamed: true,
                ..STREAMED
            },
            1,
            |_, _, _| {
                Behaviour::Answer(Answer {
                    head_ms: 90_000,
                    chunks: 1,
                    chunk_ms: 0,
                    chunk_bytes: 4_000,
                    ..Answer::USUAL
                })
            },
        ),
    ]);
    v
}

impl Answer {
    /// The usual answer: head after 300 ms, 25 chunks of 4 bytes 40 ms apart.
    pub const USUAL: Answer = Answer {
        head_ms: HEAD_MS,
        think_ms: 0,
        beat_ms: 0,
        beat_bytes: 0,
        chunks: CHUNKS,
        chunk_ms: CHUNK_MS,
        chunk_bytes: CHUNK_BYTES,
    };
}

/// One call's record.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// Start, virtual ms.
    pub start_ms: u64,
    /// End, virtual ms.
    pub end_ms: u64,
    /// Success.
    pub ok: bool,
    /// Attempts made (requests sent).
    pub attempts: u32,
    /// The call's total deadline (steadyllm only).
    pub deadline_ms: Option<u64>,
    /// Longest single sleep.
    pub longest_sleep_ms: u64,
    /// Chunk ids the caller holds at the end (after any discard).
    pub received: Vec<u32>,
    /// Chunks the server generated again (a restart regenerates what an earlier attempt
    /// already sent; a resume regenerates nothing).
    pub regenerated: u64,
    /// Error text for failures.
    pub error: Option<String>,
}

/// Results of one policy on one scenario.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Every call, in arrival order.
    pub calls: Vec<CallRecord>,
}

impl RunResult {
    /// Successful calls / calls.
    pub fn success_rate(&self) -> f64 {
        self.calls.iter().filter(|c| c.ok).count() as f64 / self.calls.len().max(1) as f64
    }

    /// Attempts / calls.
    pub fn amplification(&self) -> f64 {
        self.calls
            .iter()
            .map(|c| u64::from(c.attempts))
            .sum::<u64>() as f64
            / self.calls.len().max(1) as f64
    }

    /// Chunks generated again, over all calls.
    pub fn regenerated(&self) -> u64 {
        self.calls.iter().map(|c| c.regenerated).sum()
    }

    /// A percentile of call duration (ms), over all calls.
    pub fn percentile_ms(&self, p: f64) -> u64 {
        let mut d: Vec<u64> = self.calls.iter().map(|c| c.end_ms - c.start_ms).collect();
        d.sort_unstable();
        let i = ((d.len() as f64 - 1.0) * p).round() as usize;
        d.get(i).copied().unwrap_or(0)
    }
}

/// Simulates one attempt of `plan` against `b` starting at `t`: returns the outcome, when it
/// ended, and the chunk ids delivered.
fn run_attempt(plan: &AttemptPlan, b: Behaviour, t: u64) -> (Outcome, u64, Vec<u32>) {
    run_attempt_from(plan, b, t, 0, CHUNKS)
}

/// [`run_attempt`] for an answer of `total` chunks whose chunks before `first` the caller has
/// (a resume): this attempt sends chunks `first..`, and a fault "after `k` chunks" counts this
/// attempt's.
fn run_attempt_from(
    plan: &AttemptPlan,
    b: Behaviour,
    t: u64,
    first: u32,
    total: u32,
) -> (Outcome, u64, Vec<u32>) {
    let deadline = plan.deadline.as_millis();
    let connect_by = plan.connect_by.as_millis();
    let none = RetryHints::default();
    let fail = |f: Failure, at: u64, got: Vec<u32>| {
        let bytes = got.len() as u64 * CHUNK_BYTES;
        (Outcome::failed(f, bytes, none), at.min(deadline), got)
    };
    match b {
        Behaviour::Refuse => return fail(Failure::Connect, t + 5, vec![]),
        Behaviour::ConnectHang => {
            return fail(Failure::Timeout(Phase::Connect), connect_by, vec![]);
        }
        _ => {}
    }
    let sent = t + CONNECT_MS;
    if sent >= connect_by {
        return fail(Failure::Timeout(Phase::Connect), connect_by, vec![]);
    }
    let head_by = sent + plan.first_byte.as_millis();
    let token_by = sent + plan.first_token.as_millis();
    let idle = plan.idle.as_millis();
    let (head_at, chunks, end) = match b {
        Behaviour::StallBeforeHeaders => {
            return fail(Failure::Timeout(Phase::FirstByte), head_by, vec![]);
        }
        Behaviour::Status(code, ra) => {
            let mut h = RetryHints::default();
            if let Some(s) = ra {
                h.observe("retry-after", s.to_string().as_bytes());
            }
            let at = (sent + 50).min(deadline);
            return (Outcome::failed(Failure::Status(code), 0, h), at, vec![]);
        }
        Behaviour::Ok => (sent + HEAD_MS, total.saturating_sub(first), None),
        Behaviour::StallAfter(k) => (
            sent + HEAD_MS,
            k.min(total.saturating_sub(first)),
            Some(Failure::Timeout(Phase::Idle)),
        ),
        Behaviour::ResetAfter(k) => (
            sent + HEAD_MS,
            k.min(total.saturating_sub(first)),
            Some(Failure::Stream(StreamFault::Network)),
        ),
        Behaviour::TruncateAfter(k) => (
            sent + HEAD_MS,
            k.min(total.saturating_sub(first)),
            Some(Failure::Stream(StreamFault::Truncated)),
        ),
        Behaviour::Answer(a) => return answer(plan, a, sent),
        Behaviour::Refuse | Behaviour::ConnectHang => unreachable!("handled above"),
    };
    if head_at > head_by {
        return fail(Failure::Timeout(Phase::FirstByte), head_by, vec![]);
    }
    let mut got = Vec::new();
    let mut now = head_at;
    for i in first..first + chunks {
        let at = now + CHUNK_MS;
        if at > deadline {
            return fail(Failure::Timeout(Phase::Idle), deadline, got);
        }
        now = at;
        got.push(i);
    }
    match end {
        None => {
            let bytes = got.len() as u64 * CHUNK_BYTES;
            (Outcome::completed(bytes, none), now + 1, got)
        }
        Some(Failure::Timeout(_)) => {
            // Silence: the first-token deadline applies until content came, then idle.
            let (at, kind) = if got.is_empty() {
                (token_by, Phase::FirstToken)
            } else {
                (now + idle, Phase::Idle)
            };
            fail(Failure::Timeout(kind), at, got)
        }
        Some(f) => fail(f, now + 1, got),
    }
}

/// A healthy answer of shape `a` to a request sent at `sent`, under `plan`'s timeouts as every
/// adapter applies them: the head by the first-byte deadline; before the first content only
/// the first-token deadline, from then on the idle timeout; and the total deadline as it
/// grows with what was delivered ([`AttemptPlan::deadline_after`]).
fn answer(plan: &AttemptPlan, a: Answer, sent: u64) -> (Outcome, u64, Vec<u32>) {
    let none = RetryHints::default();
    let mut delivered = 0u64;
    let mut got = Vec::new();
    let fail = |f: Failure, at: u64, delivered: u64, got: Vec<u32>| {
        (Outcome::failed(f, delivered, none), at, got)
    };
    let head_by = (sent + plan.first_byte.as_millis()).min(plan.deadline.as_millis());
    let head_at = sent + a.head_ms;
    if head_at > head_by {
        return fail(Failure::Timeout(Phase::FirstByte), head_by, 0, got);
    }
    let token_by = sent + plan.first_token.as_millis();
    let idle = plan.idle.as_millis();
    let mut now = head_at;
    // Thinking: beats (keep-alives or reasoning deltas) until the first content.
    let first_at = head_at + a.think_ms;
    let mut times = Vec::new();
    if a.beat_ms > 0 {
        let mut t = head_at + a.beat_ms;
        while t < first_at {
            times.push((t, a.beat_bytes, None));
            t += a.beat_ms;
        }
    }
    for i in 0..a.chunks {
        times.push((first_at + u64::from(i) * a.chunk_ms, a.chunk_bytes, Some(i)));
    }
    for (at, bytes, chunk) in times {
        let deadline = plan.deadline_after(delivered).as_millis();
        let (by, kind) = if got.is_empty() {
            (token_by, Phase::FirstToken)
        } else {
            (now + idle, Phase::Idle)
        };
        if at > by.min(deadline) {
            return fail(Failure::Timeout(kind), by.min(deadline), delivered, got);
        }
        now = at;
        delivered += bytes;
        if let Some(i) = chunk {
            got.push(i);
        }
    }
    (Outcome::completed(delivered, none), now + 1, got)
}

// ---------------------------------------------------------------------------------------------
// Policies: steadyllm and the two peers, as step machines over shared state
// ---------------------------------------------------------------------------------------------

/// What a policy's call does next.
enum Next {
    Attempt(AttemptPlan),
    Sleep(u64),
    Done(Result<(), String>),
}

/// A retry policy as the runner drives it: calls that share `Shared`.
trait Policy {
    type Shared;
    type Call;
    fn shared(&self, endpoints: usize) -> Self::Shared;
    fn start(
        &self,
        shared: &mut Self::Shared,
        profile: RequestProfile,
        now: u64,
        seed: u64,
    ) -> Self::Call;
    fn next(&self, call: &mut Self::Call, shared: &mut Self::Shared, now: u64) -> Next;
    /// Reports the attempt's end; `true` when the caller must discard what it was shown.
    fn finish(
        &self,
        call: &mut Self::Call,
        shared: &mut Self::Shared,
        o: Outcome,
        now: u64,
    ) -> bool;
    fn attempts(&self, call: &Self::Call) -> u32;
    fn deadline(&self, call: &Self::Call) -> Option<u64>;
}

struct Steadyllm<'c>(&'c CallConfig);

impl Policy for Steadyllm<'_> {
    type Shared = ClientState<4>;
    type Call = Call;

    fn shared(&self, endpoints: usize) -> ClientState<4> {
        ClientState::new(endpoints, self.0)
    }

    fn start(
        &self,
        state: &mut ClientState<4>,
        profile: RequestProfile,
        now: u64,
        seed: u64,
    ) -> Call {
        Call::new(self.0, profile, state, Instant::from_millis(now), seed)
    }

    fn next(&self, call: &mut Call, state: &mut ClientState<4>, now: u64) -> Next {
        match call.next(state, Instant::from_millis(now)) {
            Step::Attempt(p) => Next::Attempt(p),
            Step::Sleep(t) => Next::Sleep(t.as_millis()),
            Step::Done(r) => Next::Done(r.map(|_| ()).map_err(|e: CallError| e.to_string())),
        }
    }

    fn finish(&self, call: &mut Call, state: &mut ClientState<4>, o: Outcome, now: u64) -> bool {
        call.finish_attempt(state, o, Instant::from_millis(now));
        let mut discard = false;
        while let Some(e) = call.poll_event() {
            discard |= matches!(e, CallEvent::DiscardDelivered { .. });
        }
        discard
    }

    fn attempts(&self, call: &Call) -> u32 {
        call.attempts()
    }

    fn deadline(&self, call: &Call) -> Option<u64> {
        Some(call.deadline().as_millis())
    }
}

/// A peer's attempt plan: connect timeout, read timeout (per read), no total deadline.
fn peer_plan(endpoint: usize, number: u32, now: u64) -> AttemptPlan {
    const CONNECT_TIMEOUT: u64 = 5_000;
    const READ_TIMEOUT: Duration = Duration::from_secs(600);
    AttemptPlan {
        number,
        retry_count: number.saturating_sub(1),
        endpoint,
        connect_by: Instant::from_millis(now + CONNECT_TIMEOUT),
        first_byte: READ_TIMEOUT,
        first_token: READ_TIMEOUT,
        idle: READ_TIMEOUT,
        deadline: Instant::from_millis(u64::MAX / 4),
        total_per_kib: Duration::from_millis(0),
        latest: Instant::from_millis(u64::MAX / 4),
        resume_after: None,
    }
}

/// How a peer sees a failed attempt: `None` when it is raised to the caller as it is (a
/// stream that broke after its head: the SDK has returned the stream already), else whether
/// it retries it and the `Retry-After` seconds.
fn peer_view(o: &Outcome) -> Option<(bool, Option<u64>)> {
    match o.failure? {
        Failure::Connect | Failure::Timeout(Phase::Connect | Phase::FirstByte) => {
            Some((true, None))
        }
        Failure::Status(code) => {
            let retryable = matches!(code, 408 | 409 | 429) || code >= 500;
            Some((
                retryable,
                o.hints.retry_after.map(|d| d.as_millis().div_ceil(1000)),
            ))
        }
        _ => None,
    }
}

/// `min(0.5·2ⁿ, 8) s` minus up to 25 % (openai-python, and LiteLLM's copy of it).
fn peer_backoff(n: u32, rng: &mut Rng) -> u64 {
    let base = (500.0 * 2f64.powi(n as i32)).min(8000.0);
    let jitter = 1.0 - 0.25 * (rng.below_or_equal(1_000_000) as f64 / 1_000_000.0);
    (base * jitter) as u64
}

struct OpenAiPython;

struct PyCall {
    attempts: u32,
    sleep_until: Option<u64>,
    done: Option<Result<(), String>>,
    rng: Rng,
}

impl Policy for OpenAiPython {
    type Shared = ();
    type Call = PyCall;

    fn shared(&self, _: usize) {}

    fn start(&self, _: &mut (), _: RequestProfile, _: u64, seed: u64) -> PyCall {
        PyCall {
            attempts: 0,
            sleep_until: None,
            done: None,
            rng: Rng::new(seed),
        }
    }

    fn next(&self, c: &mut PyCall, _: &mut (), now: u64) -> Next {
        if let Some(d) = &c.done {
            return Next::Done(d.clone());
        }
        if let Some(t) = c.sleep_until.take()
            && t > now
        {
            c.sleep_until = Some(t);
            return Next::Sleep(t);
        }
        c.attempts += 1;
        Next::Attempt(peer_plan(0, c.attempts, now))
    }

    fn finish(&self, c: &mut PyCall, _: &mut (), o: Outcome, now: u64) -> bool {
        const MAX_RETRIES: u32 = 2;
        let Some(f) = o.failure else {
            c.done = Some(Ok(()));
            return false;
        };
        let err = Err(f.to_string());
        match peer_view(&o) {
            Some((true, ra)) if c.attempts <= MAX_RETRIES => {
                let delay = match ra {
                    Some(s) if s > 120 => {
                        c.done = Some(err);
                        return false;
                    }
                    Some(s) if s > 0 => s * 1000,
                    _ => peer_backoff(c.attempts - 1, &mut c.rng),
                };
                c.sleep_until = Some(now + delay);
            }
            _ => c.done = Some(err),
        }
        false
    }

    fn attempts(&self, c: &PyCall) -> u32 {
        c.attempts
    }

    fn deadline(&self, _: &PyCall) -> Option<u64> {
        None
    }
}

struct LiteLlmRouter;

/// One deployment's shared state in the Router.
#[derive(Clone, Copy, Default)]
struct Deployment {
    cooldown_until: u64,
    minute: u64,
    successes: u32,
    failures: u32,
}

struct RouterCall {
    /// Model group (= endpoint) in the fallback chain.
    group: usize,
    /// Attempts in this group.
    tries: u32,
    attempts: u32,
    sleep_until: Option<u64>,
    done: Option<Result<(), String>>,
    rng: Rng,
}

const ROUTER_NUM_RETRIES: u32 = 2;
const ROUTER_MAX_FALLBACKS: usize = 5;
const ROUTER_COOLDOWN_MS: u64 = 5_000;
const SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD: u32 = 1000;

impl Policy for LiteLlmRouter {
    type Shared = Vec<Deployment>;
    type Call = RouterCall;

    fn shared(&self, endpoints: usize) -> Vec<Deployment> {
        vec![Deployment::default(); endpoints]
    }

    fn start(&self, _: &mut Vec<Deployment>, _: RequestProfile, _: u64, seed: u64) -> RouterCall {
        RouterCall {
            group: 0,
            tries: 0,
            attempts: 0,
            sleep_until: None,
            done: None,
            rng: Rng::new(seed),
        }
    }

    fn next(&self, c: &mut RouterCall, deps: &mut Vec<Deployment>, now: u64) -> Next {
        if let Some(d) = &c.done {
            return Next::Done(d.clone());
        }
        if let Some(t) = c.sleep_until.take()
            && t > now
        {
            c.sleep_until = Some(t);
            return Next::Sleep(t);
        }
        // A deployment cooling down: "no deployments available" — straight to the fallback.
        while deps.get(c.group).is_some_and(|d| d.cooldown_until > now) {
            c.group += 1;
            c.tries = 0;
        }
        if c.group >= deps.len().min(ROUTER_MAX_FALLBACKS + 1) {
            let e = Err("no deployments available".to_string());
            c.done = Some(e.clone());
            return Next::Done(e);
        }
        c.tries += 1;
        c.attempts += 1;
        Next::Attempt(peer_plan(c.group, c.attempts, now))
    }

    fn finish(&self, c: &mut RouterCall, deps: &mut Vec<Deployment>, o: Outcome, now: u64) -> bool {
        let Some(d) = deps.get_mut(c.group) else {
            return false;
        };
        let minute = now / 60_000;
        if d.minute != minute {
            *d = Deployment {
                minute,
                ..Deployment::default()
            };
        }
        let Some(f) = o.failure else {
            d.successes += 1;
            c.done = Some(Ok(()));
            return false;
        };
        d.failures += 1;
        let view = peer_view(&o);
        // Cooldown: LiteLLM's gate (never for connection errors, nor for a 4xx other than
        // 401, 404, 408, 429), then its rule for a group of one deployment: every request of
        // the minute failed and there were at least 1,000, or a status it would not retry.
        let status = match f {
            Failure::Connect | Failure::Timeout(Phase::Connect) => None,
            Failure::Status(code) => Some(code),
            Failure::Timeout(_) => Some(408),
            _ => Some(500),
        };
        let total = d.successes + d.failures;
        let cooldown = match status {
            None => false,
            Some(c) if (400..500).contains(&c) && !matches!(c, 401 | 404 | 408 | 429) => false,
            Some(c) => {
                (d.successes == 0 && total >= SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD)
                    || !(matches!(c, 408 | 409 | 429) || c >= 500)
            }
        };
        if cooldown {
            d.cooldown_until = now + ROUTER_COOLDOWN_MS;
        }
        let err = Err(f.to_string());
        match view {
            // Raised to the caller from inside the stream: no retry, no fallback.
            None => c.done = Some(err),
            Some((true, ra)) if c.tries <= ROUTER_NUM_RETRIES => {
                let delay = match ra {
                    Some(s) if s > 0 && s <= 60 => s * 1000,
                    _ => peer_backoff(c.tries - 1, &mut c.rng),
                };
                c.sleep_until = Some(now + delay);
            }
            // Retries used up (or not retryable): the next group in the chain, at once.
            Some(_) => {
                c.group += 1;
                c.tries = 0;
                if c.group >= deps.len().min(ROUTER_MAX_FALLBACKS + 1) {
                    c.done = Some(err);
                }
            }
        }
        false
    }

    fn attempts(&self, c: &RouterCall) -> u32 {
        c.attempts
    }

    fn deadline(&self, _: &RouterCall) -> Option<u64> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

/// When each call may start, and how many may be in flight.
fn releases(s: &Scenario, seed: u64) -> (Vec<u64>, usize) {
    let mut rng = Rng::new(seed ^ 0xA5A5_5A5A_0F0F_F0F0);
    match s.arrivals {
        Arrivals::Sequential { interval_ms } => {
            ((0..s.calls as u64).map(|i| i * interval_ms).collect(), 1)
        }
        Arrivals::Batch { concurrency } => (vec![0; s.calls], concurrency.max(1)),
        Arrivals::PoissonBursts { size, mean_gap_ms } => {
            let mut t = 0u64;
            let mut v = Vec::with_capacity(s.calls);
            while v.len() < s.calls {
                for _ in 0..size.max(1) {
                    v.push(t);
                }
                let u = (rng.below_or_equal(1 << 52) as f64 + 1.0) / ((1u64 << 52) as f64 + 2.0);
                t += (-u.ln() * mean_gap_ms as f64) as u64;
            }
            v.truncate(s.calls);
            (v, usize::MAX)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Calls may start (a release time came).
    Release,
    /// Call `i` asks its policy what to do.
    Wake(usize),
    /// Call `i`'s attempt ended.
    AttemptEnd(usize),
}

/// Runs `policy` on `scenario` with `seed`.
fn run<P: Policy>(policy: &P, s: &Scenario, seed: u64) -> RunResult {
    run_dialect(policy, s, seed, false)
}

/// [`run`], with answers the server keeps and resumes when `resumable` (OpenAI's Responses
/// API in background mode): an attempt that got its head reports the last event it delivered
/// (`response.created` is event 0, chunk `i` event `i + 1`), and a resume attempt sends the
/// chunks after it.
fn run_dialect<P: Policy>(policy: &P, s: &Scenario, seed: u64, resumable: bool) -> RunResult {
    let mut world = Rng::new(seed);
    let mut shared = policy.shared(s.endpoints);
    let (release, cap) = releases(s, seed);
    let mut calls: Vec<Option<P::Call>> = (0..s.calls).map(|_| None).collect();
    let mut recs: Vec<CallRecord> = (0..s.calls)
        .map(|_| CallRecord {
            start_ms: 0,
            end_ms: 0,
            ok: false,
            attempts: 0,
            deadline_ms: None,
            longest_sleep_ms: 0,
            received: Vec::new(),
            regenerated: 0,
            error: None,
        })
        .collect();
    // Per call: chunks generated so far (the ids start at 0 and arrive in order).
    let mut generated: Vec<u32> = vec![0; s.calls];
    let mut pending: Vec<Option<(Outcome, Vec<u32>)>> = vec![None; s.calls];
    let mut queue: BinaryHeap<Reverse<(u64, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |q: &mut BinaryHeap<_>, t: u64, e: Ev| {
        seq += 1;
        q.push(Reverse((t, seq, e)));
    };
    let (mut started, mut in_flight, mut prev_end) = (0usize, 0usize, 0u64);
    let mut release_at = Some(0);
    let sequential = matches!(s.arrivals, Arrivals::Sequential { .. });
    push(&mut queue, 0, Ev::Release);
    while let Some(Reverse((now, _, ev))) = queue.pop() {
        match ev {
            Ev::Release => release_at = None,
            Ev::Wake(i) | Ev::AttemptEnd(i) => {
                let Some(call) = calls[i].as_mut() else {
                    continue;
                };
                if let Ev::AttemptEnd(_) = ev
                    && let Some((o, got)) = pending[i].take()
                {
                    recs[i].received.extend(got);
                    if policy.finish(call, &mut shared, o, now) {
                        recs[i].received.clear();
                    }
                }
                match policy.next(call, &mut shared, now) {
                    Next::Attempt(plan) => {
                        let b = (s.behaviour)(plan.endpoint, now, &mut world);
                        let first = match plan.resume_after {
                            Some(n) if resumable => n,
                            _ => 0,
                        };
                        let (mut o, end, got) = match b {
                            Behaviour::Answer(_) => run_attempt(&plan, b, now),
                            _ => run_attempt_from(&plan, b, now, first, s.chunks),
                        };
                        // Chunks before what the server had generated are generated again.
                        recs[i].regenerated +=
                            got.iter().filter(|&&id| id < generated[i]).count() as u64;
                        if let Some(&last) = got.last() {
                            generated[i] = generated[i].max(last + 1);
                        }
                        let head_came = !matches!(
                            o.failure,
                            Some(
                                Failure::Connect
                                    | Failure::Timeout(Phase::Connect | Phase::FirstByte)
                                    | Failure::Status(_)
                            )
                        );
                        if resumable && head_came {
                            o = o.resumable_after(Some(first + got.len() as u32));
                        }
                        pending[i] = Some((o, got));
                        push(&mut queue, end.max(now), Ev::AttemptEnd(i));
                    }
                    Next::Sleep(t) => {
                        let t = t.max(now + 1);
                        recs[i].longest_sleep_ms = recs[i].longest_sleep_ms.max(t - now);
                        push(&mut queue, t, Ev::Wake(i));
                    }
                    Next::Done(r) => {
                        let r_ = &mut recs[i];
                        r_.end_ms = now;
                        r_.ok = r.is_ok();
                        r_.error = r.err();
                        r_.attempts = policy.attempts(call);
                        r_.deadline_ms = policy.deadline(call);
                        calls[i] = None;
                        in_flight -= 1;
                        prev_end = now;
                    }
                }
            }
        }
        // Start every call whose time has come, while there is room.
        while started < s.calls && in_flight < cap {
            let at = if sequential {
                release[started].max(prev_end)
            } else {
                release[started]
            };
            if at > now {
                if release_at != Some(at) {
                    release_at = Some(at);
                    push(&mut queue, at, Ev::Release);
                }
                break;
            }
            let i = started;
            started += 1;
            in_flight += 1;
            calls[i] = Some(policy.start(&mut shared, s.profile, now, world.next_u64()));
            recs[i].start_ms = now;
            push(&mut queue, now, Ev::Wake(i));
        }
    }
    RunResult { calls: recs }
}

/// Runs steadyllm's engine on `scenario` with `config` and `seed`.
pub fn run_steadyllm(scenario: &Scenario, config: &CallConfig, seed: u64) -> RunResult {
    run(&Steadyllm(config), scenario, seed)
}

/// Runs steadyllm's engine on `scenario` as a Responses API client in background mode: broken
/// streams are resumed after their last event.
pub fn run_steadyllm_resumable(scenario: &Scenario, config: &CallConfig, seed: u64) -> RunResult {
    run_dialect(&Steadyllm(config), scenario, seed, true)
}

/// Runs the openai-python model on `scenario` (first endpoint only).
pub fn run_openai_python(scenario: &Scenario, seed: u64) -> RunResult {
    run(&OpenAiPython, scenario, seed)
}

/// Runs the LiteLLM Router model on `scenario` (every endpoint, as fallbacks).
pub fn run_litellm(scenario: &Scenario, seed: u64) -> RunResult {
    run(&LiteLlmRouter, scenario, seed)
}

/// The property violations of a run (empty when every property holds).
pub fn check_properties(s: &Scenario, config: &CallConfig, r: &RunResult) -> Vec<String> {
    let mut v = Vec::new();
    let tolerance = 5;
    for (i, c) in r.calls.iter().enumerate() {
        match c.deadline_ms {
            Some(d) if c.end_ms > d + tolerance => v.push(format!(
                "call {i} ended at {} ms, after its deadline {d} ms",
                c.end_ms
            )),
            None => v.push(format!("call {i} had no deadline")),
            _ => {}
        }
        if c.longest_sleep_ms > config.retry_after_cap.as_millis() {
            v.push(format!(
                "call {i} slept {} ms, past the Retry-After cap",
                c.longest_sleep_ms
            ));
        }
        let in_order = c.received.iter().enumerate().all(|(j, &id)| id == j as u32);
        if !in_order {
            v.push(format!(
                "call {i} received chunks out of order or twice: {:?}",
                c.received
            ));
        }
        if c.ok && c.received.len() != s.chunks as usize {
            v.push(format!(
                "call {i} succeeded with {} chunks",
                c.received.len()
            ));
        }
        if s.always_healthy_fallback && !c.ok {
            v.push(format!(
                "call {i} failed although a healthy endpoint existed: {:?}",
                c.error
            ));
        }
        if let Some(h) = s.healthy_from_ms
            && c.start_ms >= h + 5_000
            && !c.ok
        {
            v.push(format!(
                "call {i} started at {} ms, after the outage, and failed: {:?}",
                c.start_ms, c.error
            ));
        }
    }
    if r.success_rate() < s.min_success {
        v.push(format!(
            "success rate {:.3} < {:.3}",
            r.success_rate(),
            s.min_success
        ));
    }
    if let Some(max) = s.max_amplification
        && r.amplification() > max
    {
        v.push(format!(
            "outage amplification {:.3} > {max:.3}",
            r.amplification()
        ));
    }
    if s.name == "full-outage" {
        // The budget's share, the floor's refill over the run, and its reserve.
        let minutes = r.calls.last().map_or(0, |c| c.end_ms) as f64 / 60_000.0;
        let floor = f64::from(config.budget_floor_per_minute);
        let allowed = 1.0
            + f64::from(config.budget_ratio_permille) / 1000.0
            + (floor * minutes + floor.max(20.0)) / r.calls.len().max(1) as f64;
        if r.amplification() > allowed {
            v.push(format!(
                "outage amplification {:.3} > {:.3}",
                r.amplification(),
                allowed
            ));
        }
    }
    v
}

/// The mid-stream fault scenarios, run for both dialects: chat completions (a broken stream
/// fails the call with its partial answer, or is restarted with
/// [`CallConfig::restart_on_partial`]) and the Responses API in background mode (resumed).
pub fn mid_stream_scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::sequential(
            "reset-mid-answer",
            "10% of streams reset after 1-24 chunks",
            false,
            |_, _, r| {
                if chance(r, 10) {
                    Behaviour::ResetAfter(1 + r.below_or_equal(23) as u32)
                } else {
                    Behaviour::Ok
                }
            },
        ),
        Scenario::sequential(
            "drops-on-flaky-wifi",
            "30% of streams reset or stall after 0-24 chunks (two drops in an answer are common)",
            false,
            |_, _, r| {
                if chance(r, 30) {
                    let k = r.below_or_equal(24) as u32;
                    if chance(r, 50) {
                        Behaviour::ResetAfter(k)
                    } else {
                        Behaviour::StallAfter(k)
                    }
                } else {
                    Behaviour::Ok
                }
            },
        ),
    ];
    v.extend(
        scenarios()
            .into_iter()
            .filter(|s| s.name == "stall-mid-stream"),
    );
    v
}

/// One mid-stream scenario in both dialects.
#[derive(Clone, Debug)]
pub struct DialectRow {
    /// Scenario name.
    pub scenario: &'static str,
    /// Chat completions, the default configuration (a broken answer fails the call).
    pub chat: RunResult,
    /// Chat completions with [`CallConfig::restart_on_partial`] (the answer is regenerated).
    pub chat_restart: RunResult,
    /// The Responses API in background mode (the answer is resumed).
    pub responses: RunResult,
}

/// Runs every mid-stream scenario in both dialects with `config` (and its restart variant).
pub fn compare_dialects(config: &CallConfig, seed: u64) -> Vec<DialectRow> {
    let restart = CallConfig {
        restart_on_partial: true,
        ..*config
    };
    mid_stream_scenarios()
        .iter()
        .map(|s| DialectRow {
            scenario: s.name,
            chat: run_steadyllm(s, config, seed),
            chat_restart: run_steadyllm(s, &restart, seed),
            responses: run_steadyllm_resumable(s, config, seed),
        })
        .collect()
}

/// One row of the comparison.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// steadyllm's run.
    pub ours: RunResult,
    /// openai-python's run.
    pub theirs: RunResult,
    /// LiteLLM Router's run.
    pub litellm: RunResult,
}

/// "Ahead", in order of what the caller cares about: a higher success rate (by more than 0.5
/// points); or the same success rate (±0.5 points) with p99 call time and load amplification
/// both no worse (±1 %) and one of them better.
pub fn ahead_of(ours: &RunResult, theirs: &RunResult) -> bool {
    let (so, st) = (ours.success_rate(), theirs.success_rate());
    let (po, pt) = (
        ours.percentile_ms(0.99) as f64,
        theirs.percentile_ms(0.99) as f64,
    );
    let (ao, at) = (ours.amplification(), theirs.amplification());
    if so > st + 0.005 {
        return true;
    }
    let same = (so - st).abs() <= 0.005;
    same && po <= pt * 1.01 && ao <= at * 1.01 && (po < pt * 0.99 || ao < at * 0.99)
}

impl Row {
    /// Ahead of both peers (see [`ahead_of`]).
    pub fn ahead(&self) -> bool {
        ahead_of(&self.ours, &self.theirs) && ahead_of(&self.ours, &self.litellm)
    }

    /// Behind on work that is slow but healthy (see [`behind`]).
    pub fn behind(&self) -> bool {
        behind(&self.ours, &self.theirs) || behind(&self.ours, &self.litellm)
    }
}

/// On slow-healthy work: the peer is ahead (see [`ahead_of`]), or one of our calls did not
/// succeed at its first attempt.
pub fn behind(ours: &RunResult, theirs: &RunResult) -> bool {
    ahead_of(theirs, ours) || ours.calls.iter().any(|c| !c.ok || c.attempts != 1)
}

/// Runs every scenario for the three policies.
pub fn compare(config: &CallConfig, seed: u64) -> Vec<Row> {
    scenarios()
        .iter()
        .map(|s| Row {
            scenario: s.name,
            ours: run_steadyllm(s, config, seed),
            theirs: run_openai_python(s, seed),
            litellm: run_litellm(s, seed),
        })
        .collect()
}
