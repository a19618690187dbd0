//! The resilience engine: one [`Call`] state machine per logical request, and one
//! caller-owned [`ClientState`] shared by all calls (circuit breakers, rate-limit pauses, the
//! retry budget). Sans-IO: every input carries `now`; every random choice comes from the seeded
//! [`Rng`]; the adapter enforces the deadlines the engine hands out.
//!
//! ## Call order
//! The adapter's loop, here with attempts that the example makes up (the first gets a 503,
//! the second an answer) and a clock that jumps to each wake-up time:
//! ```
//! use steadyllm_core::call::{
//!     AttemptPlan, Call, CallConfig, ClientState, Failure, Outcome, RequestProfile, Step,
//! };
//! use steadyllm_core::hints::RetryHints;
//! use steadyllm_core::time::Instant;
//!
//! // An adapter connects by `plan.connect_by`, sends (with `plan.retry_count` in the
//! // retry-count header), wants the head by `plan.first_byte`, the first content by
//! // `plan.first_token`, no gap longer than `plan.idle`, everything by `plan.deadline`
//! // (growing with the answer: `plan.deadline_after`), and delivers content as it arrives.
//! fn run_attempt(plan: &AttemptPlan) -> Outcome {
//!     let mut hints = RetryHints::default();
//!     hints.observe("retry-after", b"1");
//!     match plan.number {
//!         1 => Outcome::failed(Failure::Status(503), 0, hints),
//!         _ => Outcome::completed(1234, RetryHints::default()),
//!     }
//! }
//!
//! let config = CallConfig::default();
//! let mut state = ClientState::<4>::new(1, &config); // shared by all calls
//! let mut now = Instant::from_millis(0);
//! // The budget's deposit for this call happens here.
//! let mut call = Call::new(&config, RequestProfile::default(), &mut state, now, 42);
//! let mut log = Vec::new();
//! let result = loop {
//!     match call.next(&mut state, now) {
//!         Step::Attempt(plan) => {
//!             let outcome = run_attempt(&plan);
//!             call.finish_attempt(&mut state, outcome, now);
//!         }
//!         Step::Sleep(until) => now = until, // an adapter sleeps until then
//!         Step::Done(result) => break result,
//!     }
//!     while let Some(event) = call.poll_event() {
//!         log.push(event.to_string()); // "retrying in 1.0 s …"
//!     }
//! };
//! assert_eq!(result.map(|s| s.attempts), Ok(2));
//! assert!(now >= Instant::from_millis(1000), "Retry-After was honoured");
//! assert!(!log.is_empty());
//! ```
//! [`RetryHints::observe`] turns response headers (`retry-after`, `retry-after-ms`,
//! `x-should-retry`, `x-ratelimit-*`) into the hints an [`Outcome`] carries.
//!
//! ## What it decides
//! - **Endpoints**: each attempt uses the first endpoint whose breaker is not open, that is not
//!   paused by rate-limit headers, and that this call has not already seen fail (when another
//!   one is left). 401/403 and `insufficient_quota` fail over instead of retrying.
//! - **Timeouts** ([`Timeouts::for_profile`]): connect, first byte, first token, idle, and a
//!   total deadline over all attempts and sleeps, tiered by request size, with room for
//!   reasoning requests and non-streamed answers; the deadline grows as the answer arrives.
//! - **Retries**: connect failures, timeouts, broken streams before any output, 408, 409, 429,
//!   500, 502, 503, 504, 529 and `x-should-retry: true`; never 400, 401, 403, 404, 422,
//!   `x-should-retry: false`, or 429 `insufficient_quota`.
//! - **Backoff**: exponential with full or decorrelated jitter; `Retry-After` / `retry-after-ms`
//!   honored up to [`CallConfig::retry_after_cap`] (beyond it: fail over, or fail with
//!   [`CallError::RetryAfterTooLong`]); no sleep ever ends past the deadline — the call fails
//!   at once instead.
//! - **Circuit breaker** per endpoint: when `breaker_threshold` of its last 16 attempts failed
//!   (connect failures, timeouts, broken streams, 5xx — not 429, which Retry-After handles), it
//!   opens for `breaker_cooldown`; then one probe (half-open); a success closes it. A ratio in a
//!   window, not a run of failures, so an endpoint failing half the time stays in use (retries
//!   get through) while a dead one is cut off. Breakers never refuse service on their own
//!   (Envoy's panic threshold, taken to its end): while another endpoint can take the calls an
//!   open one is skipped, but when every endpoint a call may use is out, the one whose cooldown
//!   ends first (the least bad) takes a probe at once. There is one probe in flight at a time
//!   (per endpoint while others serve, in all while every endpoint is out); concurrent calls
//!   wait for it (`Step::Sleep`, looking again every 200 ms, never past their deadline) and go
//!   as soon as it closes the breaker, or take the next probe when it failed. So dead
//!   endpoints see one request at a time, and a partly available one keeps serving.
//!   Rate-limit pauses are waited out when they end before the deadline; when they do not
//!   (and no endpoint is left), the call fails with [`CallError::NoEndpointAvailable`].
//! - **Retry budget** across calls, a token bucket in the spirit of AWS's retry quota and
//!   gRPC's retry throttling: every call deposits `budget_ratio_permille` of a retry, every
//!   answer that gets through deposits one retry, every retry withdraws one, and a retry that
//!   gets through is refunded; `budget_floor_per_minute` retries a minute are always allowed.
//!   The bucket holds the floor or 20 tokens, whichever is more: a burst of concurrent calls
//!   can retry at once. So a partly available endpoint keeps its retries (its answers pay for
//!   them), while a full outage adds little load: the ratio, the reserve and the floor. An
//!   empty budget fails a call that is alone fast with [`CallError::BudgetExhausted`]. When
//!   other calls are active, it waits instead (up to its deadline), together with them: it
//!   goes as soon as any call's answer gets through, or takes the shared probe slot — one
//!   retry for all waiting calls, 5 s after the last, the gap doubling to 60 s while nothing
//!   gets through (and while calls wait, the floor does not refill: the slot stands in for
//!   it). So a batch of calls rides out an outage that ends, at almost no load.
//! - **Streams**: an attempt that delivered content is never retried silently: the call fails
//!   with [`CallError::PartialOutput`] (the caller keeps what it got), unless
//!   [`CallConfig::restart_on_partial`] is set, in which case the next attempt starts over and
//!   [`CallEvent::DiscardDelivered`] tells the caller to drop what it showed.
//! - **Exact resume**: an answer the server keeps (OpenAI's Responses API in background mode)
//!   is resumed instead: the adapter reports the last event it delivered
//!   ([`Outcome::resume_after`]), and the next attempt ([`AttemptPlan::resume_after`],
//!   [`CallEvent::Resuming`]) asks the same endpoint for the events after it — nothing
//!   delivered twice, nothing regenerated. Resumes are retries to the engine: backoff,
//!   Retry-After, the budget and the deadline apply. The server's own verdicts
//!   (`response.failed`, `response.incomplete`) end the call; a resume the server cannot
//!   serve (a 4xx) ends it with the partial answer. Only a failure before anything
//!   identifying arrived posts the request again.

use core::fmt;

use crate::rng::Rng;
use crate::time::{Duration, Instant};

mod outcome;
mod timeouts;

use crate::hints::RetryHints;
pub use outcome::{
    CertificateFault, Coding, ContentKind, Failure, Outcome, Phase, ResponseFault, StreamFault,
};
pub use timeouts::{ASSUMED_ANSWER_TOKENS, MAX_TOTAL, RequestProfile, Timeouts};

/// Most endpoints a [`ClientState`] tracks when used through the default.
pub const MAX_ENDPOINTS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// How backoff delays are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Jitter {
    /// Uniform in `[0, min(cap, base × multiplierⁿ)]` (AWS "full jitter").
    Full,
    /// Uniform in `[base, previous × 3]`, capped (AWS "decorrelated jitter").
    Decorrelated,
    /// No randomness: `min(cap, base × multiplierⁿ)`.
    None,
}

/// Engine settings shared by calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CallConfig {
    /// Attempts per call, the first included (8: the retry budget, the breakers and the
    /// deadline are what bound the load; this only caps one call).
    pub max_attempts: u32,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Growth per retry.
    pub backoff_multiplier: u32,
    /// Longest backoff.
    pub backoff_cap: Duration,
    /// Jitter strategy.
    pub jitter: Jitter,
    /// Longest `Retry-After` the engine will wait; beyond it the call fails over or fails.
    pub retry_after_cap: Duration,
    /// Longest an endpoint is kept out by one server answer (a `Retry-After` beyond
    /// `retry_after_cap`, rate-limit headers): `Retry-After: 86400` must not mean a day without
    /// service on a device with one endpoint. The next call after it tries again.
    pub max_endpoint_pause: Duration,
    /// Timeouts; `None` derives them from the request profile ([`Timeouts::for_profile`]).
    pub timeouts: Option<Timeouts>,
    /// Failures among an endpoint's last 16 attempts that open its breaker (1–16; above 16
    /// it never opens).
    pub breaker_threshold: u32,
    /// How long an open breaker keeps an endpoint out while another endpoint can take its
    /// calls. When every endpoint is out, the least bad one takes one request at a time at
    /// once (see the module docs): a breaker never refuses service on its own.
    pub breaker_cooldown: Duration,
    /// Share of a retry each call earns, in per mille (150: in a full outage retries add at
    /// most 15 % load, plus the reserve and the floor). Every answer that gets through earns
    /// one more retry, so a partly available endpoint keeps its retries.
    pub budget_ratio_permille: u32,
    /// Retries a minute always allowed, however few calls were made. The budget holds at most
    /// this many, or 20, spare retries (its burst allowance).
    pub budget_floor_per_minute: u32,
    /// Opt-in: retry after content was delivered, telling the caller to discard it.
    pub restart_on_partial: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_multiplier: 2,
            backoff_cap: Duration::from_secs(8),
            jitter: Jitter::Full,
            retry_after_cap: Duration::from_secs(60),
            max_endpoint_pause: Duration::from_secs(300),
            timeouts: None,
            breaker_threshold: 14,
            breaker_cooldown: Duration::from_secs(30),
            budget_ratio_permille: 150,
            budget_floor_per_minute: 6,
            restart_on_partial: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state: breakers, rate-limit pauses, budget
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Breaker {
    /// Healthy; the last 16 attempt results, one bit each (1 = failed), newest lowest.
    Closed { window: u16 },
    /// Cooling down until then; afterwards half-open: the next attempt is a probe. While
    /// every endpoint is out, the one that reopens first takes a probe at once.
    Open { until: Instant },
    /// A probe in flight (one at a time); other calls wait for it. If it is never reported
    /// (a cancelled call), the endpoint becomes half-open again at `until`.
    Probing { until: Instant },
}

/// Most retry tokens (thousandths) the budget holds beyond the floor: what lets a burst of
/// concurrent calls retry before their answers have earned anything.
const BUDGET_BURST_MILLI: u64 = 20_000;
/// What an answer that got through earns the budget: one retry (a retry that got through
/// also gets its own cost back).
const SUCCESS_CREDIT_MILLI: u64 = 1000;
/// A call seen within this long counts as active (waiting calls look every [`PROBE_POLL`]).
const ACTIVE_WINDOW: Duration = Duration::from_millis(1000);
/// The shared probe slot's first and longest gap.
const PROBE_GAP_MIN: Duration = Duration::from_secs(5);
const PROBE_GAP_MAX: Duration = Duration::from_secs(60);
/// How often a call waiting for another call's probe looks again.
const PROBE_POLL: Duration = Duration::from_millis(200);

/// Where the next attempt of a call goes.
enum Pick {
    /// This endpoint, now.
    Go(usize),
    /// Every usable endpoint has a probe in flight: look again then.
    Wait(Instant),
    /// Nothing usable now (excluded, or rate-limit paused until the earliest of these).
    None(Option<Instant>),
}

/// What the engine remembers about one endpoint across calls.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EndpointState {
    breaker: Breaker,
    /// Rate-limit headers said "no more until then".
    paused_until: Instant,
}

impl EndpointState {
    const NEW: EndpointState = EndpointState {
        breaker: Breaker::Closed { window: 0 },
        paused_until: Instant::ZERO,
    };

    /// `true` when an attempt may go to this endpoint at `now` (closed breaker, cooled-down
    /// open breaker, or half-open without a probe in flight; not rate-limit paused).
    pub fn is_available(&self, now: Instant) -> bool {
        self.paused_until <= now
            && match self.breaker {
                Breaker::Closed { .. } => true,
                Breaker::Open { until } | Breaker::Probing { until } => until <= now,
            }
    }

    /// When this endpoint can next take an attempt (`now` when it can now).
    pub fn available_at(&self, now: Instant) -> Instant {
        let b = match self.breaker {
            Breaker::Open { until } | Breaker::Probing { until } => until,
            Breaker::Closed { .. } => now,
        };
        b.max(self.paused_until).max(now)
    }

    /// When only a rate-limit pause (not an open breaker) keeps this endpoint out: its end.
    pub fn paused_only_until(&self, now: Instant) -> Option<Instant> {
        (matches!(self.breaker, Breaker::Closed { .. }) && self.paused_until > now)
            .then_some(self.paused_until)
    }

    /// `true` while the breaker is open (cooling down).
    pub fn is_cooling_down(&self, now: Instant) -> bool {
        matches!(self.breaker, Breaker::Open { until } if until > now)
    }
}

/// Shared, caller-owned state of up to `N` endpoints and the retry budget. One per client;
/// calls borrow it mutably only inside `next`/`finish_attempt` (never across an await), so
/// concurrent calls can share it behind a mutex.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientState<const N: usize = MAX_ENDPOINTS> {
    endpoints: [EndpointState; N],
    count: usize,
    /// Retry tokens in thousandths.
    budget_milli: u64,
    budget_max_milli: u64,
    /// Floor refill: retries per minute, and when it was last applied.
    floor_per_minute: u32,
    refilled_at: Option<Instant>,
    /// Answers that got through (wrapping): calls waiting for the budget go when it changes.
    answers: u32,
    /// When a call waiting for the budget may next retry without a token, and the gap
    /// after that (doubling from 5 s to 60 s while nothing gets through).
    probe_slot_at: Instant,
    probe_gap: Duration,
    /// Calls started (wrapping): each call's id.
    calls: u32,
    /// The two calls most recently active (id, active until): whether a call is alone.
    active: [(u32, Instant); 2],
}

impl<const N: usize> ClientState<N> {
    /// State for `endpoints` endpoints (at most `N`) and `config`'s budget.
    pub fn new(endpoints: usize, config: &CallConfig) -> Self {
        let floor = u64::from(config.budget_floor_per_minute) * 1000;
        let max = floor.max(BUDGET_BURST_MILLI);
        ClientState {
            endpoints: [EndpointState::NEW; N],
            count: endpoints.min(N),
            budget_milli: max,
            budget_max_milli: max,
            floor_per_minute: config.budget_floor_per_minute,
            refilled_at: None,
            answers: 0,
            probe_slot_at: Instant::from_millis(0),
            probe_gap: PROBE_GAP_MIN,
            calls: 0,
            active: [(u32::MAX, Instant::from_millis(0)); 2],
        }
    }

    fn next_call_id(&mut self) -> u32 {
        self.calls = self.calls.wrapping_add(1) & (u32::MAX >> 1);
        self.calls
    }

    /// Records that call `id` is active until `until` (keeps the two most recent distinct
    /// calls).
    #[inline(never)]
    fn note_active(&mut self, id: u32, until: Instant) {
        if self.active[0].0 != id {
            self.active[1] = self.active[0];
        }
        self.active[0] = (id, until);
    }

    /// Call `id` is over: it no longer counts as active.
    fn forget(&mut self, id: u32) {
        for a in &mut self.active {
            if a.0 == id {
                a.0 = u32::MAX;
            }
        }
    }

    /// Whether a call other than `id` was active in the last second.
    fn others_active(&self, id: u32, now: Instant) -> bool {
        self.active
            .iter()
            .any(|&(other, until)| other != id && other != u32::MAX && until >= now)
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// `true` with no endpoints.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// One endpoint's state.
    pub fn endpoint(&self, i: usize) -> Option<&EndpointState> {
        self.endpoints.get(..self.count)?.get(i)
    }

    /// Retries the budget allows right now.
    pub fn budget_retries(&self) -> u64 {
        self.budget_milli / 1000
    }

    /// Adds the floor's refill for the time since the last refill.
    fn refill(&mut self, now: Instant) {
        // While calls wait for the budget, the shared probe slot stands in for the floor.
        if now < self.probe_slot_at {
            self.refilled_at = Some(now);
            return;
        }
        if let Some(at) = self.refilled_at {
            // Thousandths of a retry: floor × 1000 × ms / 60 000 = floor × ms / 60. Twenty
            // minutes of it (a floor of one a minute fills the burst) fill the budget (at most
            // max(floor, 20) retries) whatever the floor, so a longer gap counts as twenty
            // minutes: 32-bit arithmetic but for one widening multiply, no 64-bit division.
            let ms = (now - at).as_millis().min(BUDGET_BURST_MILLI * 60) as u32;
            let f = self.floor_per_minute;
            let add = u64::from(f / 60) * u64::from(ms) + u64::from(f % 60 * ms / 60);
            if add == 0 && ms < 60_000 {
                return; // keep the remainder for later
            }
            self.deposit(add);
        }
        self.refilled_at = Some(self.refilled_at.map_or(now, |at| at.max(now)));
    }

    fn deposit(&mut self, milli: u64) {
        self.budget_milli = self
            .budget_milli
            .saturating_add(milli)
            .min(self.budget_max_milli);
    }

    fn withdraw(&mut self) -> bool {
        if self.budget_milli >= 1000 {
            self.budget_milli -= 1000;
            true
        } else {
            false
        }
    }

    fn ep(&mut self, i: usize) -> Option<&mut EndpointState> {
        self.endpoints.get_mut(..self.count)?.get_mut(i)
    }
}

/// One attempt to run, from [`Call::next`].
#[must_use = "an attempt plan is what the adapter runs"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AttemptPlan {
    /// Attempt number, 1 for the first.
    pub number: u32,
    /// Value of the retry-count header (`number - 1`).
    pub retry_count: u32,
    /// Index of the endpoint to use.
    pub endpoint: usize,
    /// The connection must be up by then.
    pub connect_by: Instant,
    /// Request sent → response head.
    pub first_byte: Duration,
    /// Request sent → first content.
    pub first_token: Duration,
    /// Longest gap in the body.
    pub idle: Duration,
    /// The call's total deadline when the attempt starts; it moves later as the answer
    /// arrives ([`AttemptPlan::deadline_after`]).
    pub deadline: Instant,
    /// How much later the deadline moves per KiB delivered ([`Timeouts::total_per_kib`]).
    pub total_per_kib: Duration,
    /// The deadline never moves past this.
    pub latest: Instant,
    /// Resume the answer after this event instead of posting the request again (the
    /// Responses API: `GET /v1/responses/{id}?stream=true&starting_after=N`, events at or
    /// below `N` skipped), on the endpoint that has the response. Set when the last attempt
    /// reported [`Outcome::resume_after`].
    pub resume_after: Option<u32>,
}

impl AttemptPlan {
    /// The call's deadline once this attempt delivered `delivered` bytes of answer: the
    /// attempt's [`crate::attempt::AttemptTimer`] caps each wait by it (the one place the
    /// growth rule lives).
    #[inline(never)]
    #[must_use]
    pub fn deadline_after(&self, delivered: u64) -> Instant {
        // `latest` is never before `deadline` (the engine keeps it so).
        // At most 2^20 KiB × an hour: no overflow, and far past `latest` anyway.
        let kib = (delivered >> 10).min(1 << 20);
        let per_kib = self.total_per_kib.as_millis().min(3_600_000);
        (self.deadline + Duration::from_millis(kib * per_kib)).min(self.latest)
    }
}

/// What the adapter does next.
#[must_use = "a step says what the adapter must do next"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Step {
    /// Run this attempt, then call [`Call::finish_attempt`].
    Attempt(AttemptPlan),
    /// Sleep until then, then call [`Call::next`] again.
    Sleep(Instant),
    /// The call is over.
    Done(Result<Summary, CallError>),
}

/// A successful call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// Attempts made.
    pub attempts: u32,
    /// The endpoint that answered.
    pub endpoint: usize,
    /// Content bytes of the answer.
    pub delivered_bytes: u64,
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CallError {
    /// The total deadline passed (or a retry could not finish before it).
    DeadlineExceeded {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        last: Option<Failure>,
    },
    /// `max_attempts` used up.
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        last: Failure,
    },
    /// The retry budget is empty (an outage: retrying would only add load).
    BudgetExhausted {
        /// The failure that was not retried.
        last: Failure,
    },
    /// A failure that retrying cannot fix (400, 401/403 with no other endpoint, 404, 422,
    /// `x-should-retry: false`, `insufficient_quota`).
    NotRetryable {
        /// The failure.
        last: Failure,
    },
    /// Content was delivered before the failure; it was not retried (see
    /// [`CallConfig::restart_on_partial`]). The caller has everything that was delivered.
    PartialOutput {
        /// Content bytes delivered.
        delivered_bytes: u64,
        /// What broke.
        last: Failure,
    },
    /// The server asked to wait longer than [`CallConfig::retry_after_cap`] and no other
    /// endpoint was available.
    RetryAfterTooLong {
        /// What it asked for.
        requested: Duration,
    },
    /// Every endpoint the call may use is rate-limit paused past the deadline (open
    /// breakers alone never cause this: see the module docs): failing fast.
    NoEndpointAvailable,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::DeadlineExceeded {
                attempts,
                last: Some(l),
            } => {
                write!(
                    f,
                    "deadline exceeded after {attempts} attempt(s); last: {l}"
                )
            }
            CallError::DeadlineExceeded {
                attempts,
                last: None,
            } => {
                write!(f, "deadline exceeded after {attempts} attempt(s)")
            }
            CallError::RetriesExhausted { attempts, last } => {
                write!(f, "gave up after {attempts} attempts; last: {last}")
            }
            CallError::BudgetExhausted { last } => {
                write!(f, "retry budget exhausted (likely an outage); last: {last}")
            }
            CallError::NotRetryable { last } => write!(f, "{last} (not retryable)"),
            CallError::PartialOutput {
                delivered_bytes,
                last,
            } => {
                write!(f, "{last} after {delivered_bytes} bytes were delivered")
            }
            CallError::RetryAfterTooLong { requested } => {
                write!(
                    f,
                    "server asked to retry after {requested}, longer than allowed"
                )
            }
            CallError::NoEndpointAvailable => {
                f.write_str("no endpoint available: rate-limited past the deadline")
            }
        }
    }
}

impl core::error::Error for CallError {}

/// Why the engine waits before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WaitReason {
    /// Exponential backoff after this failure.
    Backoff(Failure),
    /// The server's `Retry-After`.
    RetryAfter(Failure),
    /// Every usable endpoint is rate-limit paused (headers said the quota is spent).
    EndpointsUnavailable,
}

/// A decision, for logs and UIs ("server busy — retrying in 2 s").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CallEvent {
    /// An attempt starts.
    AttemptStarted {
        /// Attempt number.
        number: u32,
        /// Endpoint index.
        endpoint: usize,
        /// Its timeouts.
        timeouts: Timeouts,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Attempt number.
        number: u32,
        /// Endpoint index.
        endpoint: usize,
        /// What went wrong.
        failure: Failure,
    },
    /// Waiting before the next attempt.
    Waiting {
        /// How long.
        delay: Duration,
        /// Why.
        reason: WaitReason,
    },
    /// The next attempt goes to another endpoint.
    FailingOver {
        /// From.
        from: usize,
        /// To.
        to: usize,
    },
    /// An endpoint's breaker opened.
    EndpointCoolingDown {
        /// Endpoint index.
        endpoint: usize,
        /// Until.
        until: Instant,
    },
    /// Rate-limit headers paused an endpoint.
    EndpointPaused {
        /// Endpoint index.
        endpoint: usize,
        /// Until.
        until: Instant,
    },
    /// A retryable failure was not retried: the budget is empty.
    BudgetExhausted,
    /// The next attempt resumes the answer after event `after` (nothing delivered is
    /// repeated, nothing is regenerated).
    Resuming {
        /// The last event delivered.
        after: u32,
    },
    /// Restarting after partial output: discard what was shown of this answer.
    DiscardDelivered {
        /// Bytes to discard.
        bytes: u64,
    },
}

impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallEvent::AttemptStarted {
                number, endpoint, ..
            } => {
                write!(f, "attempt {number} on endpoint {endpoint}")
            }
            CallEvent::AttemptFailed {
                number,
                endpoint,
                failure,
            } => {
                write!(
                    f,
                    "attempt {number} on endpoint {endpoint} failed: {failure}"
                )
            }
            CallEvent::Waiting { delay, reason } => match reason {
                WaitReason::Backoff(fl) => write!(f, "{fl} — retrying in {delay}"),
                WaitReason::RetryAfter(fl) => {
                    write!(f, "{fl} — server asked to wait; retrying in {delay}")
                }
                WaitReason::EndpointsUnavailable => {
                    write!(f, "rate limit reached — continuing in {delay}")
                }
            },
            CallEvent::FailingOver { from, to } => {
                write!(f, "failing over from endpoint {from} to endpoint {to}")
            }
            CallEvent::EndpointCoolingDown { endpoint, until } => {
                write!(f, "endpoint {endpoint} cooling down until {until:?}")
            }
            CallEvent::EndpointPaused { endpoint, until } => {
                write!(f, "endpoint {endpoint} rate-limited until {until:?}")
            }
            CallEvent::BudgetExhausted => f.write_str("retry budget exhausted; not retrying"),
            CallEvent::Resuming { after } => write!(f, "resuming after event {after}"),
            CallEvent::DiscardDelivered { bytes } => {
                write!(f, "restarting the answer: discard the {bytes} bytes shown")
            }
        }
    }
}

const EVENT_QUEUE: usize = 8;

// ---------------------------------------------------------------------------------------------
// The call
// ---------------------------------------------------------------------------------------------

/// One logical request: its attempts, sleeps and final result. See the module docs for the
/// call order.
#[derive(Clone, Debug)]
pub struct Call {
    config: CallConfig,
    timeouts: Timeouts,
    deadline: Instant,
    /// The deadline grows up to this.
    latest: Instant,
    attempts: u32,
    in_flight: Option<AttemptPlan>,
    wait_until: Option<Instant>,
    last: Option<Failure>,
    /// Endpoints that failed in this call (bit per index) — skipped while another is left.
    failed_here: u32,
    /// Endpoints that answered 401/403/insufficient quota in this call — never retried here.
    excluded: u32,
    prev_endpoint: Option<usize>,
    prev_backoff: Duration,
    /// The attempt in flight is its endpoint's probe.
    probe: bool,
    /// The budget was empty while other calls were active: the call waits for an answer to
    /// get through (this is the count of answers then) or for a shared probe slot.
    budget_wait: Option<u32>,
    /// Tells this call from others in [`ClientState`]'s activity record.
    id: u32,
    rng: Rng,
    done: Option<Result<Summary, CallError>>,
    events: [Option<CallEvent>; EVENT_QUEUE],
    ev_head: usize,
    ev_len: usize,
    delivered_total: u64,
    /// The answer can be resumed after this event (see [`Outcome::resume_after`]).
    resume: Option<u32>,
}

impl Call {
    /// Starts a call at `now`; the shared budget earns its share for this call.
    pub fn new<const N: usize>(
        config: &CallConfig,
        profile: RequestProfile,
        state: &mut ClientState<N>,
        now: Instant,
        seed: u64,
    ) -> Call {
        let timeouts = config
            .timeouts
            .unwrap_or_else(|| Timeouts::for_profile(profile));
        state.refill(now);
        state.deposit(u64::from(config.budget_ratio_permille));
        Call {
            config: *config,
            timeouts,
            deadline: now + timeouts.total,
            latest: now + timeouts.total.max(MAX_TOTAL),
            attempts: 0,
            in_flight: None,
            wait_until: None,
            last: None,
            failed_here: 0,
            excluded: 0,
            prev_endpoint: None,
            prev_backoff: config.backoff_base,
            probe: false,
            budget_wait: None,
            id: state.next_call_id(),
            rng: Rng::new(seed),
            done: None,
            events: [None; EVENT_QUEUE],
            ev_head: 0,
            ev_len: 0,
            delivered_total: 0,
            resume: None,
        }
    }

    /// The call's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The total deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next decision event, if any (the queue keeps the latest eight).
    #[must_use = "an event taken from the queue is gone"]
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        if self.ev_len == 0 {
            return None;
        }
        let e = self.events.get_mut(self.ev_head).and_then(Option::take);
        self.ev_head = (self.ev_head + 1) % EVENT_QUEUE;
        self.ev_len -= 1;
        e
    }

    fn push(&mut self, e: CallEvent) {
        if self.ev_len == EVENT_QUEUE {
            self.ev_head = (self.ev_head + 1) % EVENT_QUEUE;
            self.ev_len -= 1;
        }
        let i = (self.ev_head + self.ev_len) % EVENT_QUEUE;
        if let Some(slot) = self.events.get_mut(i) {
            *slot = Some(e);
        }
        self.ev_len += 1;
    }

    fn finish(&mut self, r: Result<Summary, CallError>) -> Step {
        self.conclude(r);
        Step::Done(r)
    }

    /// Ends the call with `r` (the next [`Call::next`] returns it).
    fn conclude(&mut self, r: Result<Summary, CallError>) {
        self.done = Some(r);
    }

    /// What to do next at `now`. While an attempt is in flight (planned but not finished)
    /// this returns the same plan again.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn next<const N: usize>(&mut self, state: &mut ClientState<N>, now: Instant) -> Step {
        let step = self.decide(state, now);
        if self.done.is_some() {
            state.forget(self.id);
        }
        step
    }

    fn decide<const N: usize>(&mut self, state: &mut ClientState<N>, now: Instant) -> Step {
        if let Some(r) = self.done {
            return Step::Done(r);
        }
        if let Some(p) = self.in_flight {
            return Step::Attempt(p);
        }
        if now >= self.deadline {
            let last = self.last;
            return self.finish(Err(CallError::DeadlineExceeded {
                attempts: self.attempts,
                last,
            }));
        }
        if let Some(t) = self.wait_until {
            if t > now {
                return Step::Sleep(t);
            }
            self.wait_until = None;
        }
        state.note_active(self.id, now + ACTIVE_WINDOW);
        if let Some(seen) = self.budget_wait {
            if state.answers == seen {
                if now < state.probe_slot_at {
                    let at = state.probe_slot_at.min(now + PROBE_POLL);
                    return Step::Sleep(at.min(self.deadline));
                }
                state.probe_slot_at = now + state.probe_gap;
                state.probe_gap = (state.probe_gap + state.probe_gap).min(PROBE_GAP_MAX);
            }
            self.budget_wait = None;
        }
        let pick = match (self.resume, self.prev_endpoint) {
            // The response lives on the endpoint that created it: resume there.
            (Some(_), Some(prev)) => Pick::Go(prev),
            _ => self.pick(state, now),
        };
        let endpoint = match pick {
            Pick::Go(i) => i,
            // Another call's probe decides: wait for it (never past the deadline).
            Pick::Wait(t) => return Step::Sleep(t.min(self.deadline)),
            Pick::None(paused_until) => {
                // Nothing usable now: every endpoint is excluded or rate-limit paused. A
                // pause is waited out when it ends in time; otherwise fail now.
                return match paused_until {
                    Some(at) if at < self.deadline => {
                        self.wait_until = Some(at);
                        self.push(CallEvent::Waiting {
                            delay: at - now,
                            reason: WaitReason::EndpointsUnavailable,
                        });
                        Step::Sleep(at)
                    }
                    _ => match self.last {
                        Some(last) if self.excluded != 0 => {
                            self.finish(Err(CallError::NotRetryable { last }))
                        }
                        _ => self.finish(Err(CallError::NoEndpointAvailable)),
                    },
                };
            }
        };
        let cooldown = self.config.breaker_cooldown;
        self.probe = false;
        if let Some(ep) = state.ep(endpoint)
            && !matches!(ep.breaker, Breaker::Closed { .. })
        {
            // Half-open (or every endpoint out): this attempt is the probe.
            ep.breaker = Breaker::Probing {
                until: now + cooldown,
            };
            self.probe = true;
        }
        if let Some(prev) = self.prev_endpoint
            && prev != endpoint
        {
            self.push(CallEvent::FailingOver {
                from: prev,
                to: endpoint,
            });
        }
        self.prev_endpoint = Some(endpoint);
        self.attempts += 1;
        let t = self.timeouts;
        let plan = AttemptPlan {
            number: self.attempts,
            retry_count: self.attempts - 1,
            endpoint,
            connect_by: (now + t.connect).min(self.deadline),
            first_byte: t.first_byte,
            // A resume of an answer that already delivered content: the model is past its
            // thinking, and the server replays what it kept at once, so the first event is
            // due within the idle timeout.
            first_token: match self.resume {
                Some(_) if self.delivered_total > 0 => t.first_token.min(t.idle),
                _ => t.first_token,
            },
            idle: t.idle,
            deadline: self.deadline,
            total_per_kib: t.total_per_kib,
            latest: self.latest,
            resume_after: self.resume,
        };
        if let Some(after) = self.resume {
            self.push(CallEvent::Resuming { after });
        }
        self.in_flight = Some(plan);
        // Active while the attempt runs (a call dropped meanwhile stops counting by then).
        state.note_active(self.id, self.deadline);
        self.push(CallEvent::AttemptStarted {
            number: plan.number,
            endpoint,
            timeouts: t,
        });
        Step::Attempt(plan)
    }

    /// The first available endpoint, preferring ones that have not failed in this call. When
    /// every endpoint this call may use is out (breakers open or probing) but not rate-limit
    /// paused, breakers do not refuse the call (Envoy's "panic" mode): the endpoint whose
    /// cooldown ends first takes a probe now, or, when a probe is in flight, the call waits
    /// for it.
    fn pick<const N: usize>(&self, state: &ClientState<N>, now: Instant) -> Pick {
        // Key: the rank in the top bits (0 available, 1 available but failed in this call, 2
        // a probe in flight — while every endpoint is out, one probe at a time: wait for it —,
        // 3 out, a probe may go now), then when it reopens; the lowest key wins, the first
        // endpoint on a tie.
        const RANK: u32 = 60;
        let mut best = (u64::MAX, 0);
        let mut paused: Option<Instant> = None;
        for i in 0..state.count.min(32) {
            let Some(e) = state.endpoint(i) else { break };
            if self.excluded & (1 << i) != 0 {
                continue;
            }
            if e.paused_until > now {
                paused = Some(paused.map_or(e.paused_until, |p| p.min(e.paused_until)));
                continue;
            }
            let key = match e.breaker {
                Breaker::Open { until } | Breaker::Probing { until } if until <= now => 0,
                Breaker::Closed { .. } => 0,
                Breaker::Probing { until } => 2 << RANK | until.as_millis(),
                Breaker::Open { until } => 3 << RANK | until.as_millis(),
            };
            let key = key | u64::from(key == 0 && self.failed_here & (1 << i) != 0) << RANK;
            if key < best.0 {
                best = (key, i);
            }
        }
        match best.0 >> RANK {
            2 => Pick::Wait(Instant::from_millis(best.0 & ((1 << RANK) - 1)).min(now + PROBE_POLL)),
            0..=3 => Pick::Go(best.1),
            _ => Pick::None(paused),
        }
    }

    /// Reports how the planned attempt ended, at `now`.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn finish_attempt<const N: usize>(
        &mut self,
        state: &mut ClientState<N>,
        outcome: Outcome,
        now: Instant,
    ) {
        self.settle(state, outcome, now);
        if self.done.is_some() {
            state.forget(self.id);
        }
    }

    fn settle<const N: usize>(
        &mut self,
        state: &mut ClientState<N>,
        outcome: Outcome,
        now: Instant,
    ) {
        let Some(plan) = self.in_flight.take() else {
            return;
        };
        let ep_i = plan.endpoint;
        state.note_active(self.id, now + ACTIVE_WINDOW);
        self.delivered_total = self.delivered_total.saturating_add(outcome.delivered_bytes);
        self.deadline = plan.deadline_after(outcome.delivered_bytes);
        // Rate-limit headers count on any answer.
        let max_pause = self.config.max_endpoint_pause;
        if let Some(d) = outcome.hints.rate_limited_for
            && let Some(ep) = state.ep(ep_i)
        {
            let until = now + d.min(max_pause);
            ep.paused_until = ep.paused_until.max(until);
            self.push(CallEvent::EndpointPaused {
                endpoint: ep_i,
                until,
            });
        }
        let Some(failure) = outcome.failure else {
            record_alive(state, ep_i);
            // An answer earns the budget a retry, and a retry that got through its cost back.
            let refund = if self.attempts > 1 { 1000 } else { 0 };
            state.deposit(SUCCESS_CREDIT_MILLI + refund);
            state.answers = state.answers.wrapping_add(1);
            state.probe_gap = PROBE_GAP_MIN;
            self.conclude(Ok(Summary {
                attempts: self.attempts,
                endpoint: ep_i,
                // A resumed answer is all its attempts' bytes; a restarted one its last's.
                delivered_bytes: match self.resume {
                    Some(_) => self.delivered_total,
                    None => outcome.delivered_bytes,
                },
            }));
            return;
        };
        self.last = Some(failure);
        // Something identifying arrived: resume after it. (A resume that delivered nothing
        // keeps the point it started from.)
        if outcome.resume_after.is_some() {
            self.resume = outcome.resume_after;
        }
        self.push(CallEvent::AttemptFailed {
            number: plan.number,
            endpoint: ep_i,
            failure,
        });
        let class = classify(failure, &outcome.hints);
        // Breaker bookkeeping: endpoint health failures only.
        if class.endpoint_fault {
            self.record_failure(state, ep_i, now);
            self.failed_here |= 1 << ep_i.min(31);
        } else {
            // The endpoint answered (a 4xx or 429): it is alive.
            record_alive(state, ep_i);
        }
        // A timeout at the total deadline is the deadline, whatever phase the adapter was
        // timing (its read was cut short by it): every adapter reports it the same way.
        if matches!(failure, Failure::Timeout(_)) && now >= self.deadline {
            let attempts = self.attempts;
            self.conclude(Err(CallError::DeadlineExceeded {
                attempts,
                last: Some(failure),
            }));
            return;
        }
        if outcome.delivered_bytes > 0 && !self.config.restart_on_partial && self.resume.is_none() {
            self.conclude(Err(CallError::PartialOutput {
                delivered_bytes: outcome.delivered_bytes,
                last: failure,
            }));
            return;
        }
        // A resume cannot go elsewhere (the response lives on its endpoint), nor past a
        // malformed event (or one too large for the adapter): the replay sends the same bytes.
        let resume_cannot_help = !matches!(class.action, Action::Retry)
            || failure == Failure::Stream(StreamFault::Malformed);
        match class.action {
            _ if self.resume.is_some() && resume_cannot_help => {
                self.conclude(Err(match self.delivered_total {
                    0 => CallError::NotRetryable { last: failure },
                    delivered_bytes => CallError::PartialOutput {
                        delivered_bytes,
                        last: failure,
                    },
                }));
                return;
            }
            Action::Fail => {
                self.conclude(Err(CallError::NotRetryable { last: failure }));
                return;
            }
            Action::FailOver => {
                self.excluded |= 1 << ep_i.min(31);
                let other = (0..state.count.min(32)).any(|i| self.excluded & (1 << i) == 0);
                if !other {
                    self.conclude(Err(CallError::NotRetryable { last: failure }));
                    return;
                }
            }
            Action::Retry => {}
        }
        if self.attempts >= self.config.max_attempts {
            self.conclude(Err(CallError::RetriesExhausted {
                attempts: self.attempts,
                last: failure,
            }));
            return;
        }
        state.refill(now);
        if !state.withdraw() {
            // Other calls are active: wait (up to the deadline) for an answer to get through,
            // or for the shared probe slot (one retry per breaker cooldown for all waiting
            // calls). An outage that ends then lets the waiting calls through, at almost no
            // load; a call alone fails at once, as waiting would cost it a request of its own.
            if state.others_active(self.id, now) {
                self.budget_wait = Some(state.answers);
                return;
            }
            self.push(CallEvent::BudgetExhausted);
            self.conclude(Err(CallError::BudgetExhausted { last: failure }));
            return;
        }
        // How long to wait.
        let mut reason = WaitReason::Backoff(failure);
        let delay = match (class.action, outcome.hints.retry_after) {
            (Action::FailOver, _) => Duration::ZERO,
            (_, Some(ra)) if ra > self.config.retry_after_cap => {
                // Too long for this endpoint: pause it and try another one now, if any.
                if let Some(ep) = state.ep(ep_i) {
                    let until = now + ra.min(max_pause);
                    ep.paused_until = ep.paused_until.max(until);
                    self.push(CallEvent::EndpointPaused {
                        endpoint: ep_i,
                        until,
                    });
                }
                // (A resume has nowhere else to go.)
                if self.resume.is_some() || matches!(self.pick(state, now), Pick::None(_)) {
                    self.conclude(Err(CallError::RetryAfterTooLong { requested: ra }));
                    return;
                }
                Duration::ZERO
            }
            (_, Some(ra)) => {
                reason = WaitReason::RetryAfter(failure);
                ra
            }
            _ => {
                // Another healthy endpoint can take the retry at once (not a resume: its
                // response lives on this one).
                if class.endpoint_fault
                    && self.resume.is_none()
                    && self.other_healthy(state, ep_i, now)
                {
                    Duration::ZERO
                } else {
                    self.backoff()
                }
            }
        };
        let at = now + delay;
        if at >= self.deadline {
            let attempts = self.attempts;
            self.conclude(Err(CallError::DeadlineExceeded {
                attempts,
                last: Some(failure),
            }));
            return;
        }
        // Restart mode: only now that another attempt is certain is what was shown void. (When
        // the call ends here instead, the caller keeps the last attempt's text.)
        if outcome.delivered_bytes > 0 && self.resume.is_none() {
            self.push(CallEvent::DiscardDelivered {
                bytes: outcome.delivered_bytes,
            });
        }
        if delay > Duration::ZERO {
            self.wait_until = Some(at);
            self.push(CallEvent::Waiting { delay, reason });
        }
    }

    fn other_healthy<const N: usize>(
        &self,
        state: &ClientState<N>,
        except: usize,
        now: Instant,
    ) -> bool {
        (0..state.count.min(32)).any(|i| {
            i != except
                && self.excluded & (1 << i) == 0
                && self.failed_here & (1 << i) == 0
                && state.endpoint(i).is_some_and(|e| e.is_available(now))
        })
    }

    fn record_failure<const N: usize>(
        &mut self,
        state: &mut ClientState<N>,
        i: usize,
        now: Instant,
    ) {
        let threshold = self.config.breaker_threshold.clamp(1, 17);
        let cooldown = self.config.breaker_cooldown;
        let probe = self.probe;
        let Some(ep) = state.ep(i) else { return };
        let open = match ep.breaker {
            Breaker::Closed { window } => {
                let w = (window << 1) | 1;
                ep.breaker = Breaker::Closed { window: w };
                w.count_ones() >= threshold
            }
            // A failed probe, or a failure reported late while open: (re)open. A late failure
            // of an older attempt leaves another call's probe in flight alone.
            Breaker::Probing { .. } => probe,
            Breaker::Open { .. } => true,
        };
        if open {
            let until = now + cooldown;
            ep.breaker = Breaker::Open { until };
            self.push(CallEvent::EndpointCoolingDown { endpoint: i, until });
        }
    }

    /// The next backoff delay (also advances the decorrelated state).
    fn backoff(&mut self) -> Duration {
        let c = &self.config;
        let n = self.attempts.saturating_sub(1).min(30);
        let exp = c
            .backoff_base
            .saturating_mul(u64::from(c.backoff_multiplier.max(1)).saturating_pow(n))
            .min(c.backoff_cap);
        let d = match c.jitter {
            Jitter::None => exp,
            Jitter::Full => Duration::from_millis(self.rng.below_or_equal(exp.as_millis())),
            Jitter::Decorrelated => {
                let hi = self.prev_backoff.saturating_mul(3).max(c.backoff_base);
                let v = self.rng.between(c.backoff_base.as_millis(), hi.as_millis());
                Duration::from_millis(v).min(c.backoff_cap)
            }
        };
        self.prev_backoff = d;
        d
    }
}

/// An attempt reached a live endpoint: a 0 into its breaker window, or close a half-open one.
fn record_alive<const N: usize>(state: &mut ClientState<N>, i: usize) {
    if let Some(ep) = state.ep(i) {
        ep.breaker = match ep.breaker {
            Breaker::Closed { window } => Breaker::Closed {
                window: window << 1,
            },
            Breaker::Open { .. } | Breaker::Probing { .. } => Breaker::Closed { window: 0 },
        };
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    FailOver,
    Fail,
}

struct Class {
    action: Action,
    /// Counts against the endpoint's health (breaker, in-call failover).
    endpoint_fault: bool,
}

fn classify(f: Failure, h: &RetryHints) -> Class {
    let (action, endpoint_fault) = match f {
        Failure::Connect | Failure::Timeout(_) => (Action::Retry, true),
        // The same server will present the same chain and refuse the same handshake.
        Failure::Certificate(_) | Failure::Tls => (Action::FailOver, false),
        // The same name, URL or middlebox gives the same answer.
        Failure::NameNotResolved | Failure::Response(_) => (Action::FailOver, false),
        Failure::Stream(StreamFault::Malformed) => (Action::Retry, true),
        Failure::Stream(_) => (Action::Retry, true),
        // The server's own verdict on the answer.
        Failure::AnswerFailed | Failure::AnswerIncomplete => (Action::Fail, false),
        Failure::Status(s) => {
            if h.insufficient_quota {
                (Action::FailOver, false)
            } else if h.should_retry == Some(false) {
                (Action::Fail, false)
            } else if h.should_retry == Some(true) {
                (Action::Retry, s >= 500)
            } else {
                match s {
                    401 | 403 => (Action::FailOver, false),
                    408 | 409 | 429 => (Action::Retry, false),
                    500 | 502 | 503 | 504 | 529 => (Action::Retry, true),
                    _ => (Action::Fail, false),
                }
            }
        }
    };
    Class {
        action,
        endpoint_fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_the_answer_up_to_the_cap() {
        let cfg = CallConfig::default();
        let mut state = ClientState::<4>::new(1, &cfg);
        let t0 = Instant::from_millis(1_000);
        let mut call = Call::new(&cfg, RequestProfile::default(), &mut state, t0, 1);
        assert_eq!(call.deadline(), t0 + Duration::from_secs(120));
        let Step::Attempt(p) = call.next(&mut state, t0) else {
            panic!("no attempt")
        };
        assert_eq!(p.deadline_after(1023), p.deadline);
        assert_eq!(
            p.deadline_after(4096),
            p.deadline + Duration::from_secs(120)
        );
        assert_eq!(p.deadline_after(u64::MAX), t0 + MAX_TOTAL);
        // A four-minute answer of 60 KiB: past the first 120 s, and the engine agrees.
        let at = t0 + Duration::from_secs(240);
        assert!(p.deadline_after(60 * 1024) > at);
        let o = Outcome::failed(
            Failure::Timeout(Phase::Idle),
            60 * 1024,
            RetryHints::default(),
        );
        call.finish_attempt(&mut state, o, at);
        assert_eq!(call.deadline(), p.deadline_after(60 * 1024));
        // Fixed timeouts with no growth keep their deadline.
        let fixed = CallConfig {
            timeouts: Some(Timeouts {
                total_per_kib: Duration::from_millis(0),
                ..Timeouts::for_profile(RequestProfile::default())
            }),
            ..CallConfig::default()
        };
        let mut call = Call::new(&fixed, RequestProfile::default(), &mut state, t0, 1);
        let Step::Attempt(p) = call.next(&mut state, t0) else {
            panic!("no attempt")
        };
        assert_eq!(p.deadline_after(u64::MAX), p.deadline);
    }

    struct Harness {
        cfg: CallConfig,
        state: ClientState<4>,
        now: Instant,
    }

    impl Harness {
        fn new(endpoints: usize, cfg: CallConfig) -> Self {
            Harness {
                state: ClientState::new(endpoints, &cfg),
                cfg,
                now: Instant::from_millis(1_000),
            }
        }

        /// Runs a call whose attempts end as `script` says (endpoint → outcome), in virtual time.
        fn run(
            &mut self,
            mut script: impl FnMut(&AttemptPlan) -> (Outcome, u64),
        ) -> (Result<Summary, CallError>, std::vec::Vec<usize>) {
            let mut call = Call::new(
                &self.cfg,
                RequestProfile::default(),
                &mut self.state,
                self.now,
                7,
            );
            let mut endpoints = std::vec::Vec::new();
            loop {
                match call.next(&mut self.state, self.now) {
                    Step::Attempt(p) => {
                        endpoints.push(p.endpoint);
                        let (o, took) = script(&p);
                        self.now += Duration::from_millis(took);
                        call.finish_attempt(&mut self.state, o, self.now);
                    }
                    Step::Sleep(t) => {
                        assert!(t > self.now && t < call.deadline());
                        self.now = t;
                    }
                    Step::Done(r) => return (r, endpoints),
                }
            }
        }
    }

    fn ok() -> (Outcome, u64) {
        (Outcome::completed(10, RetryHints::default()), 100)
    }

    fn fail(f: Failure) -> (Outcome, u64) {
        (Outcome::failed(f, 0, RetryHints::default()), 10)
    }

    #[test]
    fn retries_then_succeeds() {
        let mut h = Harness::new(1, CallConfig::default());
        let mut n = 0;
        let (r, eps) = h.run(|_| {
            n += 1;
            if n < 3 {
                fail(Failure::Status(503))
            } else {
                ok()
            }
        });
        assert_eq!(r.map(|s| s.attempts), Ok(3));
        assert_eq!(eps, [0, 0, 0]);
    }

    #[test]
    fn non_retryable_statuses_fail_at_once() {
        for s in [400, 404, 422] {
            let mut h = Harness::new(1, CallConfig::default());
            let (r, eps) = h.run(|_| fail(Failure::Status(s)));
            assert_eq!(
                r,
                Err(CallError::NotRetryable {
                    last: Failure::Status(s)
                })
            );
            assert_eq!(eps.len(), 1);
        }
        let mut h = Harness::new(1, CallConfig::default());
        let (r, _) = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.observe("x-should-retry", b"false");
            (Outcome::failed(Failure::Status(500), 0, hints), 5)
        });
        assert!(matches!(r, Err(CallError::NotRetryable { .. })));
    }

    #[test]
    fn auth_errors_and_quota_fail_over() {
        let mut h = Harness::new(2, CallConfig::default());
        let (r, eps) = h.run(|p| {
            if p.endpoint == 0 {
                fail(Failure::Status(401))
            } else {
                ok()
            }
        });
        assert_eq!(r.map(|s| s.endpoint), Ok(1));
        assert_eq!(eps, [0, 1]);
        let mut h = Harness::new(1, CallConfig::default());
        let (r, eps) = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.insufficient_quota = true;
            (Outcome::failed(Failure::Status(429), 0, hints), 5)
        });
        assert!(matches!(r, Err(CallError::NotRetryable { .. })));
        assert_eq!(eps.len(), 1);
    }

    #[test]
    fn dead_primary_fails_over_and_cools_down() {
        let cfg = CallConfig::default();
        let mut h = Harness::new(2, cfg);
        for _ in 0..cfg.breaker_threshold {
            let (r, _) = h.run(|p| {
                if p.endpoint == 0 {
                    fail(Failure::Connect)
                } else {
                    ok()
                }
            });
            assert_eq!(r.map(|s| s.endpoint), Ok(1));
        }
        assert!(
            h.state
                .endpoint(0)
                .is_some_and(|e| e.is_cooling_down(h.now))
        );
        // while cooling down, calls go straight to the fallback
        let (_, eps) = h.run(|_| ok());
        assert_eq!(eps, [1]);
        // after the cooldown one probe goes to the primary; success closes the breaker
        h.now += cfg.breaker_cooldown;
        let (_, eps) = h.run(|_| ok());
        assert_eq!(eps, [0]);
        assert!(h.state.endpoint(0).is_some_and(|e| e.is_available(h.now)));
    }

    #[test]
    fn a_day_long_retry_after_pauses_the_only_endpoint_for_minutes_not_a_day() {
        let mut h = Harness::new(1, CallConfig::default());
        let asked = |_: &AttemptPlan| {
            let mut hints = RetryHints::default();
            hints.observe("retry-after", b"86400");
            (Outcome::failed(Failure::Status(503), 0, hints), 10)
        };
        let (r, _) = h.run(asked);
        assert_eq!(
            r,
            Err(CallError::RetryAfterTooLong {
                requested: Duration::from_secs(86_400)
            })
        );
        let paused_until = h.state.endpoint(0).map(|e| e.available_at(h.now));
        assert_eq!(paused_until, Some(h.now + Duration::from_secs(300)));
        // Within the pause a call fails fast without a request ...
        h.now += Duration::from_secs(100);
        let (r, eps) = h.run(|_| ok());
        assert!(r.is_err() && eps.is_empty(), "{r:?} {eps:?}");
        // ... and once it is over, service resumes.
        h.now += Duration::from_secs(201);
        let (r, eps) = h.run(|_| ok());
        assert_eq!(r.map(|s| s.attempts), Ok(1));
        assert_eq!(eps, [0]);
        // Rate-limit headers are bounded the same way.
        let mut h = Harness::new(1, CallConfig::default());
        let (r, _) = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.observe("x-ratelimit-remaining-requests", b"0");
            hints.observe("x-ratelimit-reset-requests", b"20h");
            (Outcome::completed(10, hints), 10)
        });
        assert!(r.is_ok());
        let until = h.state.endpoint(0).map(|e| e.available_at(h.now));
        assert_eq!(until, Some(h.now + Duration::from_secs(300)));
    }

    #[test]
    fn retry_after_is_honored_and_capped() {
        let mut h = Harness::new(1, CallConfig::default());
        let start = h.now;
        let mut n = 0;
        let (r, _) = h.run(|_| {
            n += 1;
            if n == 1 {
                let mut hints = RetryHints::default();
                hints.observe("retry-after", b"2");
                (Outcome::failed(Failure::Status(429), 0, hints), 10)
            } else {
                ok()
            }
        });
        assert!(r.is_ok());
        assert!(h.now - start >= Duration::from_millis(2_010));
        // 14 days with one endpoint: fail at once, clearly
        let mut h = Harness::new(1, CallConfig::default());
        let (r, _) = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.observe("retry-after", b"1209600");
            (Outcome::failed(Failure::Status(503), 0, hints), 10)
        });
        assert_eq!(
            r,
            Err(CallError::RetryAfterTooLong {
                requested: Duration::from_secs(1_209_600)
            })
        );
        // ... with a second endpoint: fail over instead
        let mut h = Harness::new(2, CallConfig::default());
        let (r, eps) = h.run(|p| {
            if p.endpoint == 0 {
                let mut hints = RetryHints::default();
                hints.observe("retry-after", b"1209600");
                (Outcome::failed(Failure::Status(503), 0, hints), 10)
            } else {
                ok()
            }
        });
        assert!(r.is_ok());
        assert_eq!(eps, [0, 1]);
    }

    #[test]
    fn partial_output_is_never_retried_silently() {
        let mut h = Harness::new(1, CallConfig::default());
        let (r, eps) = h.run(|_| {
            (
                Outcome::failed(Failure::Timeout(Phase::Idle), 42, RetryHints::default()),
                10,
            )
        });
        assert_eq!(
            r,
            Err(CallError::PartialOutput {
                delivered_bytes: 42,
                last: Failure::Timeout(Phase::Idle)
            })
        );
        assert_eq!(eps.len(), 1);
        // opt-in: restart, and say so
        let cfg = CallConfig {
            restart_on_partial: true,
            ..CallConfig::default()
        };
        let (mut h, mut call) = reset_after_42_bytes(cfg);
        let mut saw_discard = false;
        while let Some(e) = call.poll_event() {
            saw_discard |= e == CallEvent::DiscardDelivered { bytes: 42 };
        }
        assert!(saw_discard);
        assert!(!matches!(
            call.next(&mut h.state, h.now + Duration::from_secs(10)),
            Step::Done(_)
        ));
    }

    /// A run of a resumable answer: attempts end as `script` says (plan → outcome); returns
    /// the result, the plans and the call's events.
    fn run_resumable(
        endpoints: usize,
        mut script: impl FnMut(&AttemptPlan) -> Outcome,
    ) -> (
        Result<Summary, CallError>,
        std::vec::Vec<AttemptPlan>,
        std::vec::Vec<CallEvent>,
    ) {
        let mut h = Harness::new(endpoints, CallConfig::default());
        let mut call = Call::new(&h.cfg, RequestProfile::default(), &mut h.state, h.now, 3);
        let (mut plans, mut events) = (std::vec::Vec::new(), std::vec::Vec::new());
        loop {
            let step = call.next(&mut h.state, h.now);
            while let Some(e) = call.poll_event() {
                events.push(e);
            }
            match step {
                Step::Attempt(p) => {
                    plans.push(p);
                    let o = script(&p);
                    h.now += Duration::from_millis(50);
                    call.finish_attempt(&mut h.state, o, h.now);
                }
                Step::Sleep(t) => h.now = t,
                Step::Done(r) => return (r, plans, events),
            }
        }
    }

    fn reset(delivered: u64, resume: Option<u32>) -> Outcome {
        Outcome::failed(
            Failure::Stream(StreamFault::Network),
            delivered,
            RetryHints::default(),
        )
        .resumable_after(resume)
    }

    #[test]
    fn a_resumable_answer_resumes_on_its_endpoint_after_the_last_event() {
        // Two drops in one answer, with another healthy endpoint that must not be used.
        let (r, plans, events) = run_resumable(2, |p| match p.number {
            1 => reset(100, Some(7)),
            2 => reset(50, Some(12)),
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert_eq!(r.map(|s| (s.attempts, s.delivered_bytes)), Ok((3, 180)));
        let resumes: std::vec::Vec<_> =
            plans.iter().map(|p| (p.endpoint, p.resume_after)).collect();
        assert_eq!(resumes, [(0, None), (0, Some(7)), (0, Some(12))]);
        assert!(events.contains(&CallEvent::Resuming { after: 7 }));
        assert!(events.contains(&CallEvent::Resuming { after: 12 }));
        // Nothing is discarded: the answer goes on.
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, CallEvent::DiscardDelivered { .. }))
        );
        // Resumes wait their backoff like retries.
        assert!(
            events
                .iter()
                .any(|e| matches!(e, CallEvent::Waiting { .. }))
        );
    }

    #[test]
    fn a_refused_resume_is_retried_from_the_same_point() {
        let (r, plans, _) = run_resumable(1, |p| match p.number {
            1 => reset(100, Some(7)),
            // A 503 on the resume: nothing delivered, no new point reported.
            2 => Outcome::failed(Failure::Status(503), 0, RetryHints::default()),
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert!(r.is_ok());
        let points: std::vec::Vec<_> = plans.iter().map(|p| p.resume_after).collect();
        assert_eq!(points, [None, Some(7), Some(7)]);
    }

    #[test]
    fn only_an_answer_with_nothing_identifying_is_posted_again() {
        // A drop before any event: a new POST (no resume point), then the answer.
        let (r, plans, _) = run_resumable(1, |p| match p.number {
            1 => reset(0, None),
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert!(r.is_ok());
        assert_eq!(
            plans
                .iter()
                .map(|p| p.resume_after)
                .collect::<std::vec::Vec<_>>(),
            [None, None]
        );
        // A drop after `response.created` but before any text resumes after it.
        let (r, plans, _) = run_resumable(1, |p| match p.number {
            1 => reset(0, Some(0)),
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert!(r.is_ok());
        assert_eq!(plans.last().and_then(|p| p.resume_after), Some(0));
    }

    #[test]
    fn a_malformed_event_is_not_resumed_the_replay_would_repeat_it() {
        // An event the adapter could not take (malformed, or too large for it) after the id:
        // a resume replays the same bytes, so the call ends with what it delivered.
        let (r, plans, events) = run_resumable(2, |_| {
            Outcome::failed(
                Failure::Stream(StreamFault::Malformed),
                80,
                RetryHints::default(),
            )
            .resumable_after(Some(9))
        });
        assert_eq!(plans.len(), 1);
        assert_eq!(
            r,
            Err(CallError::PartialOutput {
                delivered_bytes: 80,
                last: Failure::Stream(StreamFault::Malformed),
            })
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, CallEvent::Resuming { .. }))
        );
        // Without a resume point it is a new answer: retried as before.
        let (r, plans, _) = run_resumable(1, |p| match p.number {
            1 => Outcome::failed(
                Failure::Stream(StreamFault::Malformed),
                0,
                RetryHints::default(),
            ),
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert!(r.is_ok());
        assert_eq!(plans.len(), 2);
    }

    #[test]
    fn the_servers_verdict_on_the_answer_is_final() {
        for f in [Failure::AnswerFailed, Failure::AnswerIncomplete] {
            let (r, plans, _) = run_resumable(2, |_| {
                Outcome::failed(f, 80, RetryHints::default()).resumable_after(Some(9))
            });
            assert_eq!(plans.len(), 1, "{f:?}");
            assert_eq!(
                r,
                Err(CallError::PartialOutput {
                    delivered_bytes: 80,
                    last: f
                })
            );
            // Before any content: not retryable either.
            let (r, plans, _) = run_resumable(2, |_| Outcome::failed(f, 0, RetryHints::default()));
            assert_eq!(plans.len(), 1);
            assert_eq!(r, Err(CallError::NotRetryable { last: f }));
        }
    }

    #[test]
    fn a_resume_that_cannot_work_keeps_what_was_delivered() {
        // The response is gone (404 on the resume): the call ends with the partial answer.
        let (r, plans, _) = run_resumable(2, |p| match p.number {
            1 => reset(100, Some(7)),
            _ => Outcome::failed(Failure::Status(404), 0, RetryHints::default()),
        });
        assert_eq!(plans.len(), 2);
        assert_eq!(
            r,
            Err(CallError::PartialOutput {
                delivered_bytes: 100,
                last: Failure::Status(404)
            })
        );
        // Resumes obey the deadline: a Retry-After past it ends the call.
        let (r, _, _) = run_resumable(1, |p| match p.number {
            1 => {
                let mut h = RetryHints::default();
                h.observe("retry-after", b"3000");
                let mut o = reset(100, Some(7));
                o.hints = h;
                o
            }
            _ => Outcome::completed(30, RetryHints::default()),
        });
        assert!(
            matches!(
                r,
                Err(CallError::DeadlineExceeded { .. }) | Err(CallError::RetryAfterTooLong { .. })
            ),
            "{r:?}"
        );
    }

    /// A call whose first attempt delivered 42 bytes, then the stream was reset.
    fn reset_after_42_bytes(cfg: CallConfig) -> (Harness, Call) {
        let mut h = Harness::new(1, cfg);
        let mut call = Call::new(&cfg, RequestProfile::default(), &mut h.state, h.now, 1);
        let Step::Attempt(_) = call.next(&mut h.state, h.now) else {
            panic!("attempt")
        };
        call.finish_attempt(
            &mut h.state,
            Outcome::failed(
                Failure::Stream(StreamFault::Network),
                42,
                RetryHints::default(),
            ),
            h.now,
        );
        (h, call)
    }

    #[test]
    fn no_discard_when_no_attempt_follows() {
        let cfg = CallConfig {
            restart_on_partial: true,
            max_attempts: 1,
            ..CallConfig::default()
        };
        let (mut h, mut call) = reset_after_42_bytes(cfg);
        while let Some(e) = call.poll_event() {
            assert!(
                !matches!(e, CallEvent::DiscardDelivered { .. }),
                "the last attempt's text stays: {e:?}"
            );
        }
        assert!(matches!(
            call.next(&mut h.state, h.now),
            Step::Done(Err(CallError::RetriesExhausted { attempts: 1, .. }))
        ));
    }

    #[test]
    fn an_open_breaker_never_refuses_the_last_endpoint() {
        let cfg = CallConfig::default();
        let mut h = Harness::new(1, cfg);
        for _ in 0..cfg.breaker_threshold {
            let _ = h.run(|_| fail(Failure::Connect));
        }
        assert!(
            h.state
                .endpoint(0)
                .is_some_and(|e| e.is_cooling_down(h.now))
        );
        // Cooling down, but it is the only endpoint: the call goes through at once, as the
        // probe, and its success closes the breaker.
        let start = h.now;
        let (r, eps) = h.run(|_| ok());
        assert_eq!(r.map(|s| s.attempts), Ok(1));
        assert_eq!(eps, [0]);
        assert!(h.now - start < Duration::from_secs(1));
        assert!(
            h.state
                .endpoint(0)
                .is_some_and(|e| !e.is_cooling_down(h.now))
        );
    }

    /// Opens the breaker of endpoint 0 of `h` (every attempt a connect failure).
    fn open_breaker(h: &mut Harness) {
        for _ in 0..h.cfg.breaker_threshold {
            let _ = h.run(|_| fail(Failure::Connect));
        }
    }

    fn start(h: &mut Harness, seed: u64) -> Call {
        Call::new(&h.cfg, RequestProfile::default(), &mut h.state, h.now, seed)
    }

    #[test]
    fn one_probe_at_a_time_and_the_others_wait_for_it() {
        for probe_works in [true, false] {
            let mut h = Harness::new(1, CallConfig::default());
            open_breaker(&mut h);
            let (mut a, mut b) = (start(&mut h, 1), start(&mut h, 2));
            let Step::Attempt(_) = a.next(&mut h.state, h.now) else {
                panic!("the first call probes")
            };
            // The second call neither fails nor sends a request: it waits for the probe.
            let Step::Sleep(t) = b.next(&mut h.state, h.now) else {
                panic!("the second call waits")
            };
            assert!(t > h.now && t <= h.now + PROBE_POLL);
            h.now = t;
            assert!(matches!(b.next(&mut h.state, h.now), Step::Sleep(_)));
            let outcome = if probe_works {
                Outcome::completed(10, RetryHints::default())
            } else {
                Outcome::failed(Failure::Status(503), 0, RetryHints::default())
            };
            a.finish_attempt(&mut h.state, outcome, h.now);
            // Either way the waiting call goes now: after a success the breaker is closed,
            // after a failure it takes the next probe itself.
            let Step::Attempt(p) = b.next(&mut h.state, h.now) else {
                panic!("the second call goes once the probe is back ({probe_works})")
            };
            assert_eq!(p.endpoint, 0);
            assert_eq!(b.probe, !probe_works);
        }
    }

    #[test]
    fn a_cancelled_probe_frees_its_slot_after_the_cooldown() {
        let mut h = Harness::new(1, CallConfig::default());
        open_breaker(&mut h);
        let mut a = start(&mut h, 1);
        assert!(matches!(a.next(&mut h.state, h.now), Step::Attempt(_)));
        let _ = a; // cancelled: never reported
        let mut b = start(&mut h, 2);
        let mut waited = Duration::ZERO;
        let begun = h.now;
        loop {
            match b.next(&mut h.state, h.now) {
                Step::Sleep(t) => h.now = t,
                Step::Attempt(_) => break,
                Step::Done(r) => panic!("{r:?}"),
            }
            waited = h.now - begun;
        }
        assert!(waited >= h.cfg.breaker_cooldown && waited < b.timeouts().total);
    }

    #[test]
    fn a_late_failure_leaves_the_probe_in_flight_alone() {
        let mut h = Harness::new(1, CallConfig::default());
        let mut old = start(&mut h, 9);
        assert!(matches!(old.next(&mut h.state, h.now), Step::Attempt(_)));
        open_breaker(&mut h);
        let mut probe = start(&mut h, 1);
        assert!(matches!(probe.next(&mut h.state, h.now), Step::Attempt(_)));
        // An attempt from before the breaker opened fails now: the probe keeps its slot.
        old.finish_attempt(
            &mut h.state,
            Outcome::failed(Failure::Connect, 0, RetryHints::default()),
            h.now,
        );
        let mut other = start(&mut h, 2);
        assert!(matches!(other.next(&mut h.state, h.now), Step::Sleep(_)));
    }

    #[test]
    fn with_every_endpoint_out_the_one_reopening_first_takes_the_probe() {
        let mut h = Harness::new(2, CallConfig::default());
        for _ in 0..h.cfg.breaker_threshold {
            let _ = h.run(|_| fail(Failure::Connect));
            h.now += Duration::from_millis(100);
        }
        let until = |h: &Harness, i| match h.state.endpoint(i).map(|e| e.breaker) {
            Some(Breaker::Open { until }) => until,
            b => panic!("{b:?}"),
        };
        let first = usize::from(until(&h, 1) < until(&h, 0));
        let mut a = start(&mut h, 1);
        let Step::Attempt(p) = a.next(&mut h.state, h.now) else {
            panic!("attempt")
        };
        assert_eq!(p.endpoint, first);
        // One probe at a time while every endpoint is out: the next call waits for it.
        let mut b = start(&mut h, 2);
        assert!(matches!(b.next(&mut h.state, h.now), Step::Sleep(_)));
        // The probe failed: now the other endpoint reopens first and takes the next probe.
        a.finish_attempt(
            &mut h.state,
            Outcome::failed(Failure::Connect, 0, RetryHints::default()),
            h.now,
        );
        let Step::Attempt(q) = b.next(&mut h.state, h.now) else {
            panic!("attempt")
        };
        assert_eq!(q.endpoint, 1 - first);
    }

    #[test]
    fn partial_availability_keeps_its_retries() {
        // Two requests in five get through, as on an endpoint 60 % faulted: the breaker may
        // open now and then, but calls still go through and answers keep the budget full.
        let cfg = CallConfig::default();
        let mut h = Harness::new(1, cfg);
        let mut rng = Rng::new(5);
        let mut ok_calls = 0;
        let calls = 400;
        for _ in 0..calls {
            let (r, _) = h.run(|_| {
                if rng.below_or_equal(99) < 60 {
                    fail(Failure::Status(503))
                } else {
                    ok()
                }
            });
            ok_calls += usize::from(r.is_ok());
            h.now += Duration::from_millis(500);
        }
        assert!(ok_calls * 100 >= calls * 90, "{ok_calls} of {calls}");
    }

    #[test]
    fn answers_earn_retries_and_a_retry_that_works_is_refunded() {
        let cfg = CallConfig {
            budget_floor_per_minute: 0,
            ..CallConfig::default()
        };
        let mut h = Harness::new(1, cfg);
        let full = h.state.budget_milli;
        h.state.budget_milli = 5_000;
        let mut n = 0;
        let (r, _) = h.run(|_| {
            n += 1;
            if n == 1 {
                fail(Failure::Status(503))
            } else {
                ok()
            }
        });
        assert!(r.is_ok());
        // + the call's share, − one retry, + the retry back, + one for the answer
        let share = u64::from(cfg.budget_ratio_permille);
        assert_eq!(h.state.budget_milli, 5_000 + share + SUCCESS_CREDIT_MILLI);
        // Retries that fail are not refunded.
        h.state.budget_milli = 5_000;
        let mut n = 0;
        let (r, _) = h.run(|_| {
            n += 1;
            let f = Failure::Stream(StreamFault::Network);
            if n < 3 {
                fail(f)
            } else {
                (
                    Outcome::failed(Failure::Status(400), 0, RetryHints::default()),
                    5,
                )
            }
        });
        assert!(r.is_err());
        assert_eq!(h.state.budget_milli, 5_000 + share - 2000);
        assert!(h.state.budget_milli <= full);
    }

    #[test]
    fn rate_limit_pause_is_waited_out() {
        let mut h = Harness::new(1, CallConfig::default());
        let _ = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.observe("x-ratelimit-remaining-requests", b"0");
            hints.observe("x-ratelimit-reset-requests", b"2s");
            (Outcome::completed(10, hints), 100)
        });
        let start = h.now;
        let (r, _) = h.run(|_| ok());
        assert!(r.is_ok());
        assert!(
            h.now - start >= Duration::from_millis(1_900),
            "waited for the reset"
        );
    }

    #[test]
    fn budget_limits_retries_in_an_outage() {
        // Breakers off and no time-based floor, so only the ratio and the reserve limit retries.
        let cfg = CallConfig {
            breaker_threshold: u32::MAX,
            budget_floor_per_minute: 0,
            ..CallConfig::default()
        };
        let mut h = Harness::new(1, cfg);
        let mut attempts = 0u32;
        let calls = 200u32;
        for _ in 0..calls {
            let (r, eps) = h.run(|_| fail(Failure::Status(503)));
            assert!(r.is_err());
            attempts += eps.len() as u32;
            h.now += Duration::from_secs(1);
        }
        let extra = attempts - calls;
        let allowed = calls * cfg.budget_ratio_permille / 1000 + 20;
        assert!(extra <= allowed, "{extra} retries > {allowed}");
        // without the budget every call would have made max_attempts
        assert!(attempts < calls * cfg.max_attempts / 2);
        assert!(extra > 0);
    }

    #[test]
    fn out_of_budget_calls_wait_together_and_go_when_an_answer_gets_through() {
        let cfg = CallConfig {
            breaker_threshold: u32::MAX,
            budget_floor_per_minute: 0,
            budget_ratio_permille: 0,
            ..CallConfig::default()
        };
        let mut state = ClientState::<4>::new(1, &cfg);
        // Spend the burst allowance.
        while state.withdraw() {}
        let t0 = Instant::from_millis(10_000);
        let mut a = Call::new(&cfg, RequestProfile::default(), &mut state, t0, 1);
        let mut b = Call::new(&cfg, RequestProfile::default(), &mut state, t0, 2);
        let fail_503 = || Outcome::failed(Failure::Status(503), 0, RetryHints::default());
        // Both attempt; `b` is still in flight when `a` fails: `a` waits instead of failing.
        assert!(matches!(a.next(&mut state, t0), Step::Attempt(_)));
        assert!(matches!(b.next(&mut state, t0), Step::Attempt(_)));
        let t1 = t0 + Duration::from_millis(100);
        a.finish_attempt(&mut state, fail_503(), t1);
        assert!(a.done.is_none());
        // The first shared probe slot is free: `a` retries at once, without a token.
        assert!(matches!(a.next(&mut state, t1), Step::Attempt(_)));
        let t2 = t1 + Duration::from_millis(100);
        a.finish_attempt(&mut state, fail_503(), t2);
        // The next slot is 5 s away: `a` sleeps, looking every 200 ms.
        assert_eq!(a.next(&mut state, t2), Step::Sleep(t2 + PROBE_POLL));
        // `b`'s answer gets through: `a` goes at its next look.
        b.finish_attempt(&mut state, Outcome::completed(5, RetryHints::default()), t2);
        assert!(matches!(b.next(&mut state, t2), Step::Done(Ok(_))));
        let t3 = t2 + PROBE_POLL;
        assert!(matches!(a.next(&mut state, t3), Step::Attempt(_)));
        a.finish_attempt(&mut state, Outcome::completed(5, RetryHints::default()), t3);
        assert!(matches!(a.next(&mut state, t3), Step::Done(Ok(s)) if s.attempts == 3));
        // A call alone with an empty budget fails at once, as before.
        while state.withdraw() {}
        let t4 = t3 + Duration::from_secs(10);
        let mut c = Call::new(&cfg, RequestProfile::default(), &mut state, t4, 3);
        assert!(matches!(c.next(&mut state, t4), Step::Attempt(_)));
        c.finish_attempt(&mut state, fail_503(), t4);
        assert!(matches!(
            c.next(&mut state, t4),
            Step::Done(Err(CallError::BudgetExhausted { .. }))
        ));
    }

    #[test]
    fn budget_floor_keeps_a_slow_device_retrying() {
        // One call a minute, each needing one retry: the floor always allows it.
        let cfg = CallConfig {
            breaker_threshold: u32::MAX,
            ..CallConfig::default()
        };
        let mut h = Harness::new(1, cfg);
        for _ in 0..100 {
            let mut n = 0;
            let (r, _) = h.run(|_| {
                n += 1;
                if n == 1 {
                    fail(Failure::Status(503))
                } else {
                    ok()
                }
            });
            assert!(r.is_ok());
            h.now += Duration::from_secs(60);
        }
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let cfg = CallConfig {
            timeouts: Some(Timeouts {
                total: Duration::from_secs(5),
                ..Timeouts::for_profile(RequestProfile::default())
            }),
            ..CallConfig::default()
        };
        let mut h = Harness::new(1, cfg);
        let start = h.now;
        let (r, _) = h.run(|_| {
            let mut hints = RetryHints::default();
            hints.observe("retry-after", b"30");
            (Outcome::failed(Failure::Status(429), 0, hints), 10)
        });
        assert!(matches!(r, Err(CallError::DeadlineExceeded { .. })));
        assert!(
            h.now - start < Duration::from_secs(1),
            "failed fast instead of sleeping"
        );
    }

    #[test]
    fn a_timeout_at_the_deadline_is_the_deadline() {
        // A read the adapter cut at the total deadline reports the phase it was timing; the
        // call fails as DeadlineExceeded, also after partial output and on the last attempt.
        for (delivered, max_attempts) in [(0, 6), (40, 6), (0, 1), (40, 1)] {
            let cfg = CallConfig {
                max_attempts,
                timeouts: Some(Timeouts {
                    total: Duration::from_secs(5),
                    ..Timeouts::for_profile(RequestProfile::default())
                }),
                ..CallConfig::default()
            };
            let mut h = Harness::new(1, cfg);
            let (r, _) = h.run(|_| {
                let f = Failure::Timeout(Phase::Idle);
                (Outcome::failed(f, delivered, RetryHints::default()), 5_000)
            });
            assert_eq!(
                r,
                Err(CallError::DeadlineExceeded {
                    attempts: 1,
                    last: Some(Failure::Timeout(Phase::Idle))
                }),
                "delivered {delivered}, max attempts {max_attempts}"
            );
        }
        // Before the deadline an idle timeout after partial output stays PartialOutput.
        let mut h = Harness::new(1, CallConfig::default());
        let (r, _) = h.run(|_| {
            let f = Failure::Timeout(Phase::Idle);
            (Outcome::failed(f, 40, RetryHints::default()), 1_000)
        });
        assert!(matches!(r, Err(CallError::PartialOutput { .. })), "{r:?}");
    }

    #[test]
    fn backoff_stays_within_bounds() {
        for jitter in [Jitter::Full, Jitter::Decorrelated, Jitter::None] {
            let cfg = CallConfig {
                jitter,
                ..CallConfig::default()
            };
            let mut state = ClientState::<1>::new(1, &cfg);
            let mut call = Call::new(
                &cfg,
                RequestProfile::default(),
                &mut state,
                Instant::ZERO,
                3,
            );
            for n in 1..10 {
                call.attempts = n;
                let d = call.backoff();
                assert!(d <= cfg.backoff_cap, "{jitter:?} {d:?}");
                if jitter == Jitter::Decorrelated {
                    assert!(d >= cfg.backoff_base);
                }
            }
        }
    }

    #[test]
    fn events_describe_decisions() {
        let mut h = Harness::new(2, CallConfig::default());
        let cfg = h.cfg;
        let mut call = Call::new(&cfg, RequestProfile::default(), &mut h.state, h.now, 1);
        let Step::Attempt(p) = call.next(&mut h.state, h.now) else {
            panic!("attempt")
        };
        assert_eq!((p.number, p.retry_count, p.endpoint), (1, 0, 0));
        call.finish_attempt(
            &mut h.state,
            Outcome::failed(Failure::Connect, 0, RetryHints::default()),
            h.now,
        );
        let Step::Attempt(p) = call.next(&mut h.state, h.now) else {
            panic!("attempt")
        };
        assert_eq!((p.number, p.retry_count, p.endpoint), (2, 1, 1));
        let mut text = std::string::String::new();
        while let Some(e) = call.poll_event() {
            text += &std::format!("{e}\n");
        }
        assert!(
            text.contains("attempt 1 on endpoint 0 failed: connection failed"),
            "{text}"
        );
        assert!(
            text.contains("failing over from endpoint 0 to endpoint 1"),
            "{text}"
        );
    }
}
