//! A deterministic simulator for the resilience engine: calls run in virtual time against
//! scripted, seeded fault schedules, so thousands of calls take milliseconds and a failing
//! seed is reproducible.
//!
//! The same schedules also drive a model of openai-python's policy (2 retries, backoff
//! `min(0.5·2ⁿ, 8) s` minus up to 25 %, `Retry-After` honored up to 120 s, 5 s connect and 600 s
//! read timeouts with the read timeout restarting per chunk, no total deadline, one endpoint,
//! no breaker, no budget, a broken stream raised to the caller), for the comparison table of
//! `cargo run --release -p steadyllm-tests --bin simulate`.
//!
//! Calls run one after another (as one device would make them): call `i` starts at
//! `max(i × interval, end of call i−1)`.

use steadyllm_core::call::{
    AttemptPlan, Call, CallConfig, CallError, CallEvent, ClientState, Failure, Outcome, Phase,
    RequestProfile, RetryHints, Step, StreamFault,
};
use steadyllm_core::rng::Rng;
use steadyllm_core::time::Instant;

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
    /// A status with an optional `Retry-After` in seconds.
    Status(u16, Option<u64>),
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

/// A scenario: endpoints, calls, and the behaviour of each endpoint at each moment.
pub struct Scenario {
    /// Short name for the table.
    pub name: &'static str,
    /// What it models.
    pub description: &'static str,
    /// Endpoints (steadyllm gets all; the openai-python model only the first).
    pub endpoints: usize,
    /// Calls per run.
    pub calls: usize,
    /// Gap between call starts.
    pub interval_ms: u64,
    /// Whether some endpoint is always healthy (then every call can succeed).
    pub always_healthy_fallback: bool,
    /// The behaviour of `endpoint` for an attempt starting at `t_ms`.
    pub behaviour: fn(endpoint: usize, t_ms: u64, rng: &mut Rng) -> Behaviour,
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.below_or_equal(99) < percent
}

/// The scenarios of the comparison table.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "healthy",
            description: "no faults",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: true,
            behaviour: |_, _, _| Behaviour::Ok,
        },
        Scenario {
            name: "flaky-connect",
            description: "25% of connections refused",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, _, r| {
                if chance(r, 25) {
                    Behaviour::Refuse
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "stall-before-headers",
            description: "10% of requests never get a response head",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, _, r| {
                if chance(r, 10) {
                    Behaviour::StallBeforeHeaders
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "stall-mid-stream",
            description: "10% of streams stall for good, half before the first token",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, _, r| {
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
        },
        Scenario {
            name: "429-bursts",
            description: "30 s of every 2 min: 80% 429 with Retry-After: 2",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, t, r| {
                if t % 120_000 < 30_000 && chance(r, 80) {
                    Behaviour::Status(429, Some(2))
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "503-storm",
            description: "50% 503 on every endpoint, all run long",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, _, r| {
                if chance(r, 50) {
                    Behaviour::Status(503, None)
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "primary-dead",
            description: "primary refuses connections for 10 minutes; fallback healthy",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: true,
            behaviour: |e, t, _| {
                if e == 0 && t < 600_000 {
                    Behaviour::Refuse
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "primary-blackhole",
            description: "primary's connections hang for 10 minutes; fallback healthy",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: true,
            behaviour: |e, t, _| {
                if e == 0 && t < 600_000 {
                    Behaviour::ConnectHang
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "flapping",
            description: "primary down 20 s / up 20 s (resets mid-stream); fallback healthy",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: true,
            behaviour: |e, t, _| {
                if e == 0 && (t / 20_000) % 2 == 0 {
                    Behaviour::ResetAfter(0)
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "retry-after-1-day",
            description: "30% of primary answers are 503 with Retry-After: 86400",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |e, _, r| {
                if e == 0 && chance(r, 30) {
                    Behaviour::Status(503, Some(86_400))
                } else {
                    Behaviour::Ok
                }
            },
        },
        Scenario {
            name: "full-outage",
            description: "every endpoint answers 503 all run long",
            endpoints: 2,
            calls: 1000,
            interval_ms: 2000,
            always_healthy_fallback: false,
            behaviour: |_, _, _| Behaviour::Status(503, None),
        },
    ]
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
    /// Attempts made.
    pub attempts: u32,
    /// The call's total deadline (steadyllm only).
    pub deadline_ms: Option<u64>,
    /// Longest single sleep.
    pub longest_sleep_ms: u64,
    /// Chunk ids the caller holds at the end (after any discard).
    pub received: Vec<u32>,
    /// Error text for failures.
    pub error: Option<String>,
}

/// Results of one policy on one scenario.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Every call.
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

    /// A percentile of call duration (ms), over all calls.
    pub fn percentile_ms(&self, p: f64) -> u64 {
        let mut d: Vec<u64> = self.calls.iter().map(|c| c.end_ms - c.start_ms).collect();
        d.sort_unstable();
        let i = ((d.len() as f64 - 1.0) * p).round() as usize;
        d.get(i).copied().unwrap_or(0)
    }
}

/// Simulates one attempt of steadyllm's plan against `b` starting at `t`: returns the outcome,
/// when it ended, and the chunk ids delivered.
fn run_attempt(plan: &AttemptPlan, b: Behaviour, t: u64) -> (Outcome, u64, Vec<u32>) {
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
        Behaviour::Ok => (sent + HEAD_MS, CHUNKS, None),
        Behaviour::StallAfter(k) => (sent + HEAD_MS, k, Some(Failure::Timeout(Phase::Idle))),
        Behaviour::ResetAfter(k) => (
            sent + HEAD_MS,
            k,
            Some(Failure::Stream(StreamFault::Network)),
        ),
        Behaviour::Refuse | Behaviour::ConnectHang => unreachable!("handled above"),
    };
    if head_at > head_by {
        return fail(Failure::Timeout(Phase::FirstByte), head_by, vec![]);
    }
    let mut got = Vec::new();
    let mut now = head_at;
    for i in 0..chunks {
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
            let at = if got.is_empty() {
                (now + idle).min(token_by)
            } else {
                now + idle
            };
            let kind = if got.is_empty() && token_by < now + idle {
                Phase::FirstToken
            } else {
                Phase::Idle
            };
            fail(Failure::Timeout(kind), at, got)
        }
        Some(f) => fail(f, now + 1, got),
    }
}

/// Runs steadyllm's engine on `scenario` with `config` and `seed`.
pub fn run_steadyllm(scenario: &Scenario, config: &CallConfig, seed: u64) -> RunResult {
    let mut rng = Rng::new(seed);
    let mut state: ClientState<4> = ClientState::new(scenario.endpoints, config);
    let mut calls = Vec::with_capacity(scenario.calls);
    let mut prev_end = 0u64;
    for i in 0..scenario.calls {
        let start = (i as u64 * scenario.interval_ms).max(prev_end);
        let mut now = start;
        let mut call = Call::new(
            config,
            RequestProfile::default(),
            &mut state,
            Instant::from_millis(now),
            rng.next_u64(),
        );
        let deadline_ms = call.deadline().as_millis();
        let mut received: Vec<u32> = Vec::new();
        let mut longest_sleep = 0;
        let result = loop {
            match call.next(&mut state, Instant::from_millis(now)) {
                Step::Attempt(plan) => {
                    let b = (scenario.behaviour)(plan.endpoint, now, &mut rng);
                    let (outcome, end, got) = run_attempt(&plan, b, now);
                    received.extend(got);
                    now = end.max(now);
                    call.finish_attempt(&mut state, outcome, Instant::from_millis(now));
                }
                Step::Sleep(until) => {
                    longest_sleep = longest_sleep.max(until.as_millis() - now);
                    now = until.as_millis();
                }
                Step::Done(r) => break r,
            }
            while let Some(e) = call.poll_event() {
                if let CallEvent::DiscardDelivered { .. } = e {
                    received.clear();
                }
            }
        };
        prev_end = now;
        calls.push(CallRecord {
            start_ms: start,
            end_ms: now,
            ok: result.is_ok(),
            attempts: call.attempts(),
            deadline_ms: Some(deadline_ms),
            longest_sleep_ms: longest_sleep,
            received,
            error: result.err().map(|e: CallError| e.to_string()),
        });
    }
    RunResult { calls }
}

/// Runs the openai-python model on `scenario` (first endpoint only).
pub fn run_openai_python(scenario: &Scenario, seed: u64) -> RunResult {
    const MAX_RETRIES: u32 = 2;
    const CONNECT_TIMEOUT: u64 = 5_000;
    const READ_TIMEOUT: u64 = 600_000;
    let mut rng = Rng::new(seed);
    let mut calls = Vec::with_capacity(scenario.calls);
    let mut prev_end = 0u64;
    for i in 0..scenario.calls {
        let start = (i as u64 * scenario.interval_ms).max(prev_end);
        let mut now = start;
        let mut attempts = 0;
        let mut longest_sleep = 0;
        let mut received = Vec::new();
        let (ok, error) = loop {
            attempts += 1;
            let b = (scenario.behaviour)(0, now, &mut rng);
            // (retryable, Retry-After seconds, error) or success
            let failure: Option<(bool, Option<u64>, &str)> = match b {
                Behaviour::Refuse => {
                    now += 5;
                    Some((true, None, "connection error"))
                }
                Behaviour::ConnectHang => {
                    now += CONNECT_TIMEOUT;
                    Some((true, None, "connect timeout"))
                }
                Behaviour::StallBeforeHeaders => {
                    now += CONNECT_MS + READ_TIMEOUT;
                    Some((true, None, "read timeout"))
                }
                Behaviour::Status(code, ra) => {
                    now += CONNECT_MS + 50;
                    let retryable = matches!(code, 408 | 409 | 429) || code >= 500;
                    Some((retryable, ra, "status error"))
                }
                Behaviour::Ok => {
                    now += CONNECT_MS + HEAD_MS + u64::from(CHUNKS) * CHUNK_MS + 1;
                    received = (0..CHUNKS).collect();
                    None
                }
                Behaviour::StallAfter(k) => {
                    // Streaming errors reach the caller; they are not retried.
                    now += CONNECT_MS + HEAD_MS + u64::from(k) * CHUNK_MS + READ_TIMEOUT;
                    received = (0..k).collect();
                    break (false, Some("read timeout mid-stream".to_string()));
                }
                Behaviour::ResetAfter(k) => {
                    now += CONNECT_MS + HEAD_MS + u64::from(k) * CHUNK_MS + 1;
                    received = (0..k).collect();
                    break (false, Some("stream reset".to_string()));
                }
            };
            let Some((retryable, retry_after, err)) = failure else {
                break (true, None);
            };
            if !retryable || attempts > MAX_RETRIES {
                break (false, Some(err.to_string()));
            }
            let n = attempts - 1;
            let delay = match retry_after {
                Some(s) if s <= 120 => s * 1000,
                _ => {
                    let base = (500.0 * 2f64.powi(n as i32)).min(8000.0);
                    let jitter = 1.0 - 0.25 * (rng.below_or_equal(1_000_000) as f64 / 1_000_000.0);
                    (base * jitter) as u64
                }
            };
            longest_sleep = longest_sleep.max(delay);
            now += delay;
        };
        prev_end = now;
        calls.push(CallRecord {
            start_ms: start,
            end_ms: now,
            ok,
            attempts,
            deadline_ms: None,
            longest_sleep_ms: longest_sleep,
            received,
            error,
        });
    }
    RunResult { calls }
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
        if c.ok && c.received.len() != CHUNKS as usize {
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
    }
    if s.name == "full-outage" {
        // The budget's share, the floor's refill over the run, and its initial reserve.
        let minutes = r.calls.last().map_or(0, |c| c.end_ms) as f64 / 60_000.0;
        let floor = f64::from(config.budget_floor_per_minute);
        let allowed = 1.0
            + f64::from(config.budget_ratio_permille) / 1000.0
            + (floor * minutes + floor.max(10.0)) / r.calls.len().max(1) as f64;
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

/// One row of the comparison.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// steadyllm's run.
    pub ours: RunResult,
    /// openai-python's run.
    pub theirs: RunResult,
}

impl Row {
    /// "Ahead", in order of what the caller cares about: a higher success rate (by more than
    /// 0.5 points); or the same success rate (±0.5 points) with p99 call time and load
    /// amplification both no worse (±1 %) and one of them better.
    pub fn ahead(&self) -> bool {
        let (so, st) = (self.ours.success_rate(), self.theirs.success_rate());
        let (po, pt) = (
            self.ours.percentile_ms(0.99) as f64,
            self.theirs.percentile_ms(0.99) as f64,
        );
        let (ao, at) = (self.ours.amplification(), self.theirs.amplification());
        if so > st + 0.005 {
            return true;
        }
        let same = (so - st).abs() <= 0.005;
        same && po <= pt * 1.01 && ao <= at * 1.01 && (po < pt * 0.99 || ao < at * 0.99)
    }
}

/// Runs every scenario for both policies.
pub fn compare(config: &CallConfig, seed: u64) -> Vec<Row> {
    scenarios()
        .iter()
        .map(|s| Row {
            scenario: s.name,
            ours: run_steadyllm(s, config, seed),
            theirs: run_openai_python(s, seed),
        })
        .collect()
}
