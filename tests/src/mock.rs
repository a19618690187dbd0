//! A fault-injecting mock of the OpenAI chat-completions API and Anthropic's Messages API.
//!
//! The server is a real HTTP/1.1 server (tokio + hyper, keep-alive on). It writes its SSE bytes
//! itself and does not depend on `steadyllm-core`, so it is an independent oracle for the client.
//!
//! # Endpoints
//! - `POST …/chat/completions` (any path ending so, e.g. `/v1/chat/completions`): with
//!   `"stream": true` an SSE stream of `chat.completion.chunk` objects shaped as OpenAI sends
//!   them in 2026: members `id, object, created, model, service_tier, system_fingerprint,
//!   choices, usage` (`usage` only when usage was asked for) and last `obfuscation`, a random
//!   string of 1–16 base62 characters, different in every chunk (seeded by the request's number,
//!   so a run is reproducible), left out when the request says
//!   `stream_options.include_obfuscation: false`. The chunks: a first one with
//!   `delta {"role":"assistant","content":"","refusal":null}`, one per word-sized content delta,
//!   one with `finish_reason` `"stop"` — `"length"` when `max_tokens`/`max_completion_tokens`
//!   cut the answer —, a usage chunk with `"choices":[]` when `stream_options.include_usage` is
//!   true, then `data: [DONE]`); otherwise one `chat.completion` JSON object.
//! - `POST …/messages`: Anthropic Messages. Streaming sends, each with an `event:` line,
//!   `message_start`, `content_block_start`, `ping`, one `content_block_delta` (`text_delta`) per
//!   word, `content_block_stop`, `message_delta` (`stop_reason` `"end_turn"` or `"max_tokens"`,
//!   usage) and `message_stop`; otherwise one `message` JSON object.
//! - `OPTIONS` on any path: a CORS preflight answer (204). Every answer carries
//!   `Access-Control-Allow-Origin: *` and exposes the retry and rate-limit headers.
//! - `POST /__control/script` (body: a script, see below) replaces the script;
//!   `POST /__control/push` (body: one step) appends a step; `GET /__control/requests` returns the
//!   recorded requests as a JSON array; `POST /__control/reset` clears the script and the
//!   requests, and returns the answer and the step after the script to the server's defaults
//!   ([`MockServer::set_defaults`]; the `mock-server` binary's `--answer`/`--delay-ms`).
//!   Control requests and preflights are neither recorded nor consume script steps.
//! - Anything else: 404 (recorded, no step consumed). A non-POST request to an API path: 405.
//!
//! The answer text is deterministic ([`DEFAULT_ANSWER`] unless set with
//! [`MockServer::set_answer`] or the script's `answer`), split into word-sized deltas by
//! [`split_deltas`] (each delta after the first starts with the whitespace before its word), so
//! the concatenation of the deltas is exactly the answer.
//!
//! # Script
//! Every request to an API path consumes exactly one [`Step`] of the script, in order (even when
//! its body turns out to be invalid: then a step that needs the body answers 400). When the script
//! is exhausted, the server uses the script's `then` step, or the last step again when `repeat`
//! is true, or a plain `ok` — unless the script has `"random": {"percent": P, "seed": S}`: then
//! P % of those requests, chosen at random, get a fault that comes before any content (a stall
//! before the head, a reset or a clean end after the role event, 429 with `Retry-After: 1`, 503;
//! [`RandomFaults`]), for soak runs.
//!
//! A script in JSON is either a bare list of steps or an object:
//! ```json
//! {"steps": [{"fault":"status","code":429,"retry_after":"2"}, {"fault":"ok"}],
//!  "repeat": false, "then": {"fault":"ok","delay_between_events_ms":20}, "answer": "Hi there."}
//! ```
//! A step is an object with a `fault` tag, the fault's fields, and options that combine with any
//! fault: `delay_between_events_ms` (pause before every event after the first),
//! `keepalive_every_ms` (an SSE comment `: keep-alive` right after the headers and then every so
//! many ms during any pause or stall), `rate_limit` (an object as in the `rate_limit` fault) and
//! `headers` (extra `[name, value]` pairs).
//!
//! "Events" below count the SSE events of the normal stream, starting with the first (role)
//! chunk and including `data: [DONE]` (OpenAI) or `ping` (Anthropic); `events: 0` faults right
//! after the response head.
//!
//! | JSON | behaviour |
//! |---|---|
//! | `{"fault":"ok"}` | normal answer |
//! | `{"fault":"refuse"}` | read the request, then close the connection with a TCP RST and no response (a listening socket cannot refuse one connection; test a real refusal with a closed port) |
//! | `{"fault":"stall_before_headers","ms":300}` | send nothing for `ms`, then answer normally; without `ms`, never answer |
//! | `{"fault":"stall_after","events":3,"ms":500}` | send 3 events, pause `ms`, then go on; without `ms`, stall forever |
//! | `{"fault":"reset_after","events":3}` | send 3 events, then close with a TCP RST (SO_LINGER 0) |
//! | `{"fault":"truncate_after","events":3}` | send 3 events, then end the chunked body cleanly (no `[DONE]`) |
//! | `{"fault":"drip","ms_per_byte":5}` | send the normal body one byte at a time, one write each |
//! | `{"fault":"status","code":429,"retry_after":"2","retry_after_ms":1500,"should_retry":false,"body":"…"}` | that status, optional `retry-after`, `retry-after-ms`, `x-should-retry` headers, and `body` or an OpenAI-shaped `{"error":{"message","type","param","code"}}` (Anthropic-shaped on `/messages`) |
//! | `{"fault":"malformed_after","events":3}` | send 3 events, then `data: {not json`, then end the body |
//! | `{"fault":"error_event_after","events":3,"message":"…","code":"…"}` | send 3 events, then an error event (`{"error":{…,"type":"server_error"}}`, Anthropic: `event: error`), then end |
//! | `{"fault":"rate_limit","remaining_requests":0,"remaining_tokens":10,"reset_requests":"1s","reset_tokens":"6m0s"}` | normal answer with `x-ratelimit-*` headers (also `limit_requests`, `limit_tokens`) |
//! | `{"fault":"keepalive_every","ms":100}` | normal answer with `keepalive_every_ms` = `ms` |
//! | `{"fault":"page","code":200,"content_type":"text/html","body":"…"}` | that status, type and body whatever was asked (a captive portal's page; a redirect or a gzipped body with `headers` such as `[["location","…"]]`, `[["content-encoding","gzip"]]`) |
//! | `{"fault":"not_http"}` | an SSH banner instead of an HTTP response, then close |
//!
//! For a non-streaming request the `*_after` faults act on the single JSON body: `stall_after`
//! stalls between head and body, `reset_after` resets after the head (or after the body when
//! `events` ≥ 1), `truncate_after` sends half the body then closes, `malformed_after` sends
//! `{not json` and `error_event_after` sends the error object, both with status 200.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use steadyllm_tests::mock::{Fault, MockServer};
//! let server = MockServer::start(([127, 0, 0, 1], 0).into()).await?;
//! server.set_script(vec![Fault::retry_after(503, "1"), Fault::Ok]);
//! // point the client at server.base_url(), then:
//! assert_eq!(server.requests().len(), 2);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};

/// The default answer: a few sentences on why the sky is blue. It contains an em dash and double
/// quotes, so byte-wise delivery splits a UTF-8 sequence and the JSON needs escapes.
pub const DEFAULT_ANSWER: &str = "The sky looks blue because of Rayleigh scattering. Sunlight \
contains every colour, but the molecules of the air scatter short wavelengths far more strongly \
than long ones. Blue light is scattered all over the sky, so it reaches your eyes from every \
direction \u{2014} that is the \"blue sky\" you see. At sunset the light crosses much more air, \
the blue is scattered away, and the reds and oranges remain.";

/// The `created` timestamp of every answer (fixed, so answers are deterministic).
pub const CREATED: u64 = 1_700_000_000;

/// The largest request body accepted (larger bodies get 413).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

const CORS_ALLOW_HEADERS: &str = "authorization, content-type, accept, x-api-key, \
anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access, \
x-steadyllm-retry-count, openai-organization, openai-project";
const CORS_EXPOSE_HEADERS: &str = "retry-after, retry-after-ms, x-should-retry, x-request-id, \
x-ratelimit-limit-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, \
x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens";

// ---------------------------------------------------------------------------------------------
// Script model
// ---------------------------------------------------------------------------------------------

/// What the server does with one request. JSON form: `{"fault":"<snake_case name>", …fields}`;
/// see the [module docs](self) for every variant's exact wire effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// A normal answer.
    Ok,
    /// Read the request, then close the connection with a TCP RST and no response.
    Refuse,
    /// Send nothing for `ms` (forever when `None`), then answer normally.
    StallBeforeHeaders {
        /// Pause in milliseconds; `None` stalls until the client gives up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// Send `events` events, pause `ms` (forever when `None`), then continue the stream.
    StallAfter {
        /// Events sent before the stall.
        events: usize,
        /// Pause in milliseconds; `None` stalls until the client gives up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// Send `events` events, then reset the connection (TCP RST via SO_LINGER 0).
    ResetAfter {
        /// Events sent before the reset.
        events: usize,
    },
    /// Send `events` events, then end the body cleanly (no `[DONE]` / `message_stop`).
    TruncateAfter {
        /// Events sent before the end.
        events: usize,
    },
    /// Send the normal body one byte per write, `ms_per_byte` apart.
    Drip {
        /// Pause between bytes in milliseconds.
        ms_per_byte: u64,
    },
    /// Answer with an HTTP status and an API-shaped error body.
    Status {
        /// The status code (100..=999).
        code: u16,
        /// Value of a `retry-after` header (seconds or an HTTP date), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
        /// Value of a `retry-after-ms` header, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// Value of an `x-should-retry` header, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        should_retry: Option<bool>,
        /// The body to send instead of the default error JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Send `events` events, then `data: {not json`, then end the body.
    MalformedAfter {
        /// Events sent before the malformed one.
        events: usize,
    },
    /// Send `events` events, then an error event, then end the body.
    ErrorEventAfter {
        /// Events sent before the error.
        events: usize,
        /// The error message (a default server-error text when `None`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The error code (OpenAI `code`, Anthropic error `type`); defaults per API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A normal answer carrying `x-ratelimit-*` headers.
    RateLimit(RateLimit),
    /// A normal answer with SSE keep-alive comments every `ms` (see [`Step::keepalive_every_ms`]).
    KeepaliveEvery {
        /// Interval in milliseconds.
        ms: u64,
    },
    /// Answer with this status, `Content-Type` and body, whatever was asked: a captive
    /// portal's `200 text/html` login page, a redirect (add `Location` with
    /// [`Step::header`]), a gzipped stream (add `Content-Encoding`).
    Page {
        /// The status code.
        code: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: String,
    },
    /// Answer with bytes that are not HTTP (an SSH banner), then close.
    NotHttp,
}

/// OpenAI-style rate-limit headers (`x-ratelimit-<field with - for _>`); absent fields are not sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// `x-ratelimit-limit-requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-limit-tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    /// `x-ratelimit-remaining-requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-remaining-tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_tokens: Option<u64>,
    /// `x-ratelimit-reset-requests`, e.g. `"1s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_requests: Option<String>,
    /// `x-ratelimit-reset-tokens`, e.g. `"6m0s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_tokens: Option<String>,
}

impl RateLimit {
    fn headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        let mut num = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                h.push((format!("x-ratelimit-{name}"), v.to_string()));
            }
        };
        num("limit-requests", self.limit_requests);
        num("limit-tokens", self.limit_tokens);
        num("remaining-requests", self.remaining_requests);
        num("remaining-tokens", self.remaining_tokens);
        if let Some(v) = &self.reset_requests {
            h.push(("x-ratelimit-reset-requests".into(), v.clone()));
        }
        if let Some(v) = &self.reset_tokens {
            h.push(("x-ratelimit-reset-tokens".into(), v.clone()));
        }
        h
    }
}

/// One script entry: a [`Fault`] plus options that combine with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What happens to the request.
    #[serde(flatten)]
    pub fault: Fault,
    /// Pause before every event after the first, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_between_events_ms: Option<u64>,
    /// Send `: keep-alive` right after the response head and then every so many milliseconds
    /// during any pause or stall of a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_every_ms: Option<u64>,
    /// Rate-limit headers added to the response (whatever its status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Extra response headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// A streamed OpenAI-compatible answer first sends this many reasoning deltas
    /// (`delta.reasoning_content`, as DeepSeek, vLLM and OpenRouter stream a model's thinking),
    /// right after the role chunk; they count as events for the faults' `events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_events: Option<usize>,
}

impl Step {
    /// A step with no options.
    pub fn new(fault: Fault) -> Self {
        Step {
            fault,
            delay_between_events_ms: None,
            keepalive_every_ms: None,
            rate_limit: None,
            headers: Vec::new(),
            reasoning_events: None,
        }
    }
    /// Sets [`Step::reasoning_events`].
    pub fn reasoning(mut self, events: usize) -> Self {
        self.reasoning_events = Some(events);
        self
    }
    /// Sets [`Step::delay_between_events_ms`].
    pub fn delay_between_events(mut self, ms: u64) -> Self {
        self.delay_between_events_ms = Some(ms);
        self
    }
    /// Sets [`Step::keepalive_every_ms`].
    pub fn keepalive_every(mut self, ms: u64) -> Self {
        self.keepalive_every_ms = Some(ms);
        self
    }
    /// Sets [`Step::rate_limit`].
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }
    /// Adds an extra response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// The fault's JSON tag, e.g. `"reset_after"`.
    pub fn name(&self) -> &'static str {
        match self.fault {
            Fault::Ok => "ok",
            Fault::Refuse => "refuse",
            Fault::StallBeforeHeaders { .. } => "stall_before_headers",
            Fault::StallAfter { .. } => "stall_after",
            Fault::ResetAfter { .. } => "reset_after",
            Fault::TruncateAfter { .. } => "truncate_after",
            Fault::Drip { .. } => "drip",
            Fault::Status { .. } => "status",
            Fault::MalformedAfter { .. } => "malformed_after",
            Fault::ErrorEventAfter { .. } => "error_event_after",
            Fault::RateLimit(_) => "rate_limit",
            Fault::KeepaliveEvery { .. } => "keepalive_every",
            Fault::Page { .. } => "page",
            Fault::NotHttp => "not_http",
        }
    }
}

impl From<Fault> for Step {
    fn from(fault: Fault) -> Self {
        Step::new(fault)
    }
}

impl Fault {
    /// `status` with only a code.
    pub fn status(code: u16) -> Self {
        Fault::Status {
            code,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            body: None,
        }
    }
    /// `status` with a `retry-after` header, e.g. `Fault::retry_after(429, "2")`.
    pub fn retry_after(code: u16, value: impl Into<String>) -> Self {
        Fault::Status {
            code,
            retry_after: Some(value.into()),
            retry_after_ms: None,
            should_retry: None,
            body: None,
        }
    }
    /// `status` with a `retry-after-ms` header.
    pub fn retry_after_ms(code: u16, ms: u64) -> Self {
        Fault::Status {
            code,
            retry_after: None,
            retry_after_ms: Some(ms),
            should_retry: None,
            body: None,
        }
    }
    /// `status` with `x-should-retry: <should_retry>`.
    pub fn should_retry(code: u16, should_retry: bool) -> Self {
        Fault::Status {
            code,
            retry_after: None,
            retry_after_ms: None,
            should_retry: Some(should_retry),
            body: None,
        }
    }
}

/// A list of steps, one per request, and what to do once they are used up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Steps consumed in order, one per API request.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// When the steps are used up, repeat the last one (takes precedence over `then`).
    #[serde(default)]
    pub repeat: bool,
    /// When the steps are used up, use this step (default: plain `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Step>,
    /// Replace the answer text, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// When the steps are used up, fault this share of requests at random (the others get
    /// the step after the script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomFaults>,
}

/// Random faults, independent per request and seeded: `{"percent":25,"seed":1}`. A faulted
/// request gets, with equal odds, a stall before the head (forever), a reset or a clean end
/// right after the first (role) event, 429 with `Retry-After: 1`, or 503 — each before any
/// content, so a client may retry every one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomFaults {
    /// Share of requests faulted, 0–100.
    pub percent: u32,
    /// Seed of the choices.
    #[serde(default)]
    pub seed: u64,
}

impl RandomFaults {
    /// The next request's fault (`None`: not faulted); `state` carries the sequence.
    pub fn pick(&self, state: &mut u64) -> Option<Fault> {
        let mut next = || {
            // SplitMix64
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        if next() % 100 >= u64::from(self.percent) {
            return None;
        }
        Some(match next() % 5 {
            0 => Fault::StallBeforeHeaders { ms: None },
            1 => Fault::ResetAfter { events: 1 },
            2 => Fault::TruncateAfter { events: 1 },
            3 => Fault::retry_after(429, "1"),
            _ => Fault::status(503),
        })
    }
}

impl Script {
    /// Parses a script from JSON: a bare list of steps or a [`Script`] object.
    pub fn from_json(text: &str) -> Result<Script, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        Script::from_value(value)
    }

    /// Like [`Script::from_json`], from a parsed value.
    pub fn from_value(value: Value) -> Result<Script, String> {
        if value.is_array() {
            let steps: Vec<Step> =
                serde_json::from_value(value).map_err(|e| format!("invalid step list: {e}"))?;
            Ok(Script::from(steps))
        } else {
            serde_json::from_value(value).map_err(|e| format!("invalid script: {e}"))
        }
    }

    /// The preset used by `--chaos` and the `chat` demo: a stall before the headers (60 s, so
    /// the client's first-byte timeout fires), a 429 with `Retry-After: 1`, a reset after the
    /// first (role) chunk, then normal answers paced 20 ms per event.
    pub fn chaos() -> Script {
        Script {
            steps: vec![
                Fault::StallBeforeHeaders { ms: Some(60_000) }.into(),
                Fault::retry_after(429, "1").into(),
                Fault::ResetAfter { events: 1 }.into(),
            ],
            repeat: false,
            then: Some(Step::new(Fault::Ok).delay_between_events(20)),
            answer: None,
            random: None,
        }
    }

    /// The step used once `steps` are exhausted.
    fn after(&self) -> Step {
        if self.repeat
            && let Some(last) = self.steps.last()
        {
            return last.clone();
        }
        self.then.clone().unwrap_or_else(|| Step::new(Fault::Ok))
    }
}

impl From<Vec<Step>> for Script {
    fn from(steps: Vec<Step>) -> Self {
        Script {
            steps,
            ..Script::default()
        }
    }
}

impl From<Vec<Fault>> for Script {
    fn from(faults: Vec<Fault>) -> Self {
        Script::from(faults.into_iter().map(Step::from).collect::<Vec<_>>())
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------------------------

/// A request the server received (control requests and preflights are not recorded).
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// Position among recorded requests, from 0.
    pub index: usize,
    /// Id of the TCP connection it came on (from 0, in accept order): equal ids mean reuse.
    pub connection: u64,
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// Headers in the order received, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body (in JSON: as text, invalid UTF-8 replaced).
    #[serde(serialize_with = "ser_lossy")]
    pub body: Vec<u8>,
    /// When the head arrived, in milliseconds since the server started.
    pub at_ms: u64,
    /// The script step applied (`None` for requests that consume none, e.g. 404).
    pub step: Option<Step>,
    /// Index of that step in the script set last, `None` when it was the after-script step.
    pub script_index: Option<usize>,
}

fn ser_lossy<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

impl RecordedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct State {
    steps: VecDeque<(usize, Step)>,
    next_index: usize,
    after: Step,
    answer: String,
    requests: Vec<RecordedRequest>,
    /// What a reset returns `after` and `answer` to.
    default_after: Step,
    default_answer: String,
    /// Random faults after the script, with the state of their sequence; and the default.
    random: Option<(RandomFaults, u64)>,
    default_random: Option<RandomFaults>,
}

impl State {
    /// The step for a request once the script is used up.
    fn after_script(&mut self) -> Step {
        let fault = self.random.as_mut().and_then(|(r, st)| r.pick(st));
        fault.map_or_else(|| self.after.clone(), Step::new)
    }
}

struct Shared {
    started: Instant,
    state: Mutex<State>,
    next_conn: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Shared {
            started: Instant::now(),
            state: Mutex::new(State {
                steps: VecDeque::new(),
                next_index: 0,
                after: Step::new(Fault::Ok),
                answer: DEFAULT_ANSWER.to_string(),
                requests: Vec::new(),
                default_after: Step::new(Fault::Ok),
                default_answer: DEFAULT_ANSWER.to_string(),
                random: None,
                default_random: None,
            }),
            next_conn: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_script(&self, script: Script) {
        let mut st = self.lock();
        st.after = script.after();
        st.steps = script.steps.into_iter().enumerate().collect();
        st.next_index = st.steps.len();
        st.random = script.random.map(|r| (r, r.seed));
        if let Some(answer) = script.answer {
            st.answer = answer;
        }
    }

    fn push(&self, step: Step) {
        let mut st = self.lock();
        let i = st.next_index;
        st.next_index += 1;
        st.steps.push_back((i, step));
    }

    fn reset(&self) {
        let mut st = self.lock();
        st.steps.clear();
        st.next_index = 0;
        st.after = st.default_after.clone();
        st.answer = st.default_answer.clone();
        st.random = st.default_random.map(|r| (r, r.seed));
        st.requests.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// The server handle
// ---------------------------------------------------------------------------------------------

/// A running mock server. Dropping it (or [`MockServer::shutdown`]) stops it and closes every
/// connection.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> io::Result<MockServer> {
        let (shutdown, rx) = watch::channel(false);
        let shared = Arc::new(Shared::new());
        let addr = spawn_server(addr, shared.clone(), rx).await?;
        Ok(MockServer {
            addr,
            shared,
            shutdown,
            thread: None,
        })
    }

    /// Binds `addr` and serves on a tokio runtime of its own, on a new thread; for clients that
    /// are not on tokio (e.g. an embassy executor). Dropping the server stops the thread.
    pub fn start_background(addr: SocketAddr) -> io::Result<MockServer> {
        let (shutdown, mut rx) = watch::channel(false);
        let shared = Arc::new(Shared::new());
        let (tx_addr, rx_addr) = std::sync::mpsc::channel();
        let shared2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mock-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx_addr.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let bound = spawn_server(addr, shared2, rx.clone()).await;
                    let ok = bound.is_ok();
                    let _ = tx_addr.send(bound);
                    if ok {
                        while !*rx.borrow_and_update() {
                            if rx.changed().await.is_err() {
                                break;
                            }
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        let addr = match rx_addr.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(io::Error::other("mock server thread ended")),
        };
        Ok(MockServer {
            addr,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`, the base URL to give an OpenAI-compatible client.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the script (and the answer, when the script sets one). Requests recorded so far
    /// stay.
    pub fn set_script(&self, script: impl Into<Script>) {
        self.shared.set_script(script.into());
    }

    /// Appends one step to the script.
    pub fn push(&self, step: impl Into<Step>) {
        self.shared.push(step.into());
    }

    /// Replaces the answer text.
    pub fn set_answer(&self, answer: impl Into<String>) {
        self.shared.lock().answer = answer.into();
    }

    /// The answer text currently served.
    pub fn answer(&self) -> String {
        self.shared.lock().answer.clone()
    }

    /// Steps of the script not consumed yet.
    pub fn remaining_steps(&self) -> usize {
        self.shared.lock().steps.len()
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Sets the script, and makes its step after the script and its answer (or the answer
    /// already set) what [`MockServer::reset`] returns to.
    pub fn set_defaults(&self, script: impl Into<Script>) {
        self.shared.set_script(script.into());
        let mut st = self.shared.lock();
        st.default_after = st.after.clone();
        st.default_answer = st.answer.clone();
        st.default_random = st.random.map(|(r, _)| r);
    }

    /// Clears the script and the recorded requests; the answer and the step after the script
    /// go back to the defaults ([`MockServer::set_defaults`], else [`DEFAULT_ANSWER`] and `ok`).
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops the server (same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn spawn_server(
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _peer)) => {
                        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(serve_conn(stream, id, shared.clone(), shutdown.clone()));
                    }
                    // e.g. EMFILE: back off a little instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
        }
    });
    Ok(bound)
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Per-connection control: lets a request handler abort its connection with an RST.
struct ConnCtl {
    rst: AtomicBool,
    kill: Notify,
    /// The next write sends [`NOT_HTTP`] instead of hyper's response, then the connection ends.
    garbage: AtomicBool,
}

/// What [`Fault::NotHttp`] sends.
const NOT_HTTP: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n";

impl ConnCtl {
    fn reset(&self) {
        self.rst.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }
}

/// The TCP stream under hyper; on drop after [`ConnCtl::reset`] it closes with an RST.
struct ConnIo {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.ctl.rst.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl ConnIo {
    /// [`Fault::NotHttp`]: writes the banner in place of `len` bytes of hyper's response and
    /// ends the connection.
    fn poll_garbage(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, NOT_HTTP) {
            Poll::Ready(_) => {
                self.ctl.garbage.store(false, Ordering::SeqCst);
                self.ctl.kill.notify_one();
                Poll::Ready(Ok(len))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.garbage.load(Ordering::SeqCst) {
            return self.poll_garbage(cx, buf.len());
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.garbage.load(Ordering::SeqCst) {
            let len = bufs.iter().map(|b| b.len()).sum();
            return self.poll_garbage(cx, len);
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn serve_conn(
    stream: TcpStream,
    id: u64,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let ctl = Arc::new(ConnCtl {
        rst: AtomicBool::new(false),
        kill: Notify::new(),
        garbage: AtomicBool::new(false),
    });
    let io = ConnIo {
        stream,
        ctl: ctl.clone(),
    };
    let ctl2 = ctl.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let ctl = ctl2.clone();
        async move { Ok::<_, Infallible>(handle(shared, ctl, id, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        biased;
        _ = conn => {}
        _ = ctl.kill.notified() => {}
        _ = async { while !*shutdown.borrow_and_update() { if shutdown.changed().await.is_err() { break } } } => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------

/// The response body: a whole buffer, or frames fed by a producer task.
enum MockBody {
    Full(Option<Bytes>),
    Chan(mpsc::Receiver<Bytes>),
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Chan(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Chan(_) => SizeHint::default(),
        }
    }
}

type Resp = Response<MockBody>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(MockBody::Full(Some(body.into())));
    *r.status_mut() = status;
    set_header(&mut r, "content-type", content_type);
    r
}

fn set_header(r: &mut Resp, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        r.headers_mut().append(n, v);
    }
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Resp {
    let code = code.map(js).unwrap_or_else(|| "null".into());
    let body = format!(
        "{{\"error\":{{\"message\":{},\"type\":{},\"param\":null,\"code\":{code}}}}}",
        js(message),
        js(kind)
    );
    full(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body,
    )
}

fn default_error_body(api: Api, code: u16) -> String {
    match api {
        Api::OpenAi => {
            let (message, kind, err_code) = match code {
                400 => ("Invalid request.", "invalid_request_error", None),
                401 => (
                    "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    Some("invalid_api_key"),
                ),
                403 => (
                    "You are not allowed to access this resource.",
                    "invalid_request_error",
                    Some("unsupported_country_region_territory"),
                ),
                404 => (
                    "The model does not exist or you do not have access to it.",
                    "invalid_request_error",
                    Some("model_not_found"),
                ),
                429 => (
                    "Rate limit reached for requests. Please try again later.",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
                500 => (
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                ),
                503 => (
                    "The engine is currently overloaded, please try again later.",
                    "server_error",
                    None,
                ),
                _ => ("Mock error.", "server_error", None),
            };
            let code = err_code.map(js).unwrap_or_else(|| "null".into());
            format!(
                "{{\"error\":{{\"message\":{},\"type\":{},\"param\":null,\"code\":{code}}}}}",
                js(message),
                js(kind)
            )
        }
        Api::Anthropic => {
            let (kind, message) = match code {
                400 => ("invalid_request_error", "Invalid request."),
                401 => ("authentication_error", "invalid x-api-key"),
                403 => ("permission_error", "Permission denied."),
                404 => ("not_found_error", "Not found."),
                413 => ("request_too_large", "Request too large."),
                429 => (
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit.",
                ),
                529 | 503 => ("overloaded_error", "Overloaded"),
                _ => ("api_error", "Internal server error"),
            };
            format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":{},\"message\":{}}}}}",
                js(kind),
                js(message)
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

async fn handle(shared: Arc<Shared>, ctl: Arc<ConnCtl>, conn: u64, req: Request<Incoming>) -> Resp {
    let mut resp = route(shared, ctl, conn, req).await;
    set_header(&mut resp, "access-control-allow-origin", "*");
    set_header(
        &mut resp,
        "access-control-expose-headers",
        CORS_EXPOSE_HEADERS,
    );
    resp
}

async fn route(shared: Arc<Shared>, ctl: Arc<ConnCtl>, conn: u64, req: Request<Incoming>) -> Resp {
    let at_ms = shared.started.elapsed().as_millis() as u64;
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    if method == Method::OPTIONS {
        let mut r = full(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
        r.headers_mut().remove("content-type");
        set_header(&mut r, "access-control-allow-methods", "GET, POST, OPTIONS");
        // Echo what the browser asks for (a `*` would not cover `authorization`).
        let allow = req
            .headers()
            .get("access-control-request-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(CORS_ALLOW_HEADERS)
            .to_string();
        set_header(&mut r, "access-control-allow-headers", &allow);
        set_header(&mut r, "access-control-max-age", "600");
        return r;
    }

    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(e.to_string()),
    };

    if let Some(cmd) = path.strip_prefix("/__control/") {
        let body = match body {
            Ok(b) => b,
            Err(e) => return openai_error(400, &e, "invalid_request_error", None),
        };
        return control(&shared, &method, cmd, &body);
    }

    let api = if path.ends_with("/chat/completions") {
        Some(Api::OpenAi)
    } else if path.ends_with("/messages") {
        Some(Api::Anthropic)
    } else {
        None
    };
    let body_bytes = body.as_ref().map(|b| b.to_vec()).unwrap_or_default();
    let consumes = api.is_some() && method == Method::POST;

    // Take the step and record the request under one lock.
    let (step, index, answer) = {
        let mut st = shared.lock();
        let (script_index, step) = if consumes {
            match st.steps.pop_front() {
                Some((i, s)) => (Some(i), Some(s)),
                None => (None, Some(st.after_script())),
            }
        } else {
            (None, None)
        };
        let index = st.requests.len();
        st.requests.push(RecordedRequest {
            index,
            connection: conn,
            method: method.as_str().to_string(),
            path: path_and_query,
            headers,
            body: body_bytes,
            at_ms,
            step: step.clone(),
            script_index,
        });
        (step, index, st.answer.clone())
    };

    let Some(api) = api else {
        return openai_error(
            404,
            &format!("Unknown path {path}: this mock serves …/chat/completions and …/messages"),
            "invalid_request_error",
            None,
        );
    };
    let Some(step) = step else {
        return openai_error(
            405,
            &format!("Method {method} not allowed; use POST"),
            "invalid_request_error",
            None,
        );
    };

    match &step.fault {
        Fault::Refuse => {
            ctl.reset();
            return std::future::pending().await;
        }
        Fault::StallBeforeHeaders { ms } => match ms {
            Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            None => return std::future::pending().await,
        },
        Fault::Status {
            code,
            retry_after,
            retry_after_ms,
            should_retry,
            body,
        } => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = body
                .clone()
                .unwrap_or_else(|| default_error_body(api, status.as_u16()));
            let mut r = full(status, "application/json", text);
            if let Some(v) = retry_after {
                set_header(&mut r, "retry-after", v);
            }
            if let Some(v) = retry_after_ms {
                set_header(&mut r, "retry-after-ms", &v.to_string());
            }
            if let Some(v) = should_retry {
                set_header(&mut r, "x-should-retry", if *v { "true" } else { "false" });
            }
            add_step_headers(&mut r, &step, index);
            return r;
        }
        Fault::Page {
            code,
            content_type,
            body,
        } => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::OK);
            let mut r = full(status, content_type, body.clone());
            add_step_headers(&mut r, &step, index);
            return r;
        }
        Fault::NotHttp => {
            ctl.garbage.store(true, Ordering::SeqCst);
            return full(StatusCode::OK, "text/plain", String::new());
        }
        _ => {}
    }

    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return openai_error(
                413,
                &format!("request body: {e}"),
                "invalid_request_error",
                None,
            );
        }
    };
    let parsed = match parse_chat_request(&body) {
        Ok(p) => p,
        Err(msg) => return openai_error(400, &msg, "invalid_request_error", None),
    };
    answer_response(api, &parsed, &step, index, &answer, ctl)
}

fn add_step_headers(r: &mut Resp, step: &Step, index: usize) {
    set_header(r, "x-request-id", &format!("req_mock_{index}"));
    let mut extra = Vec::new();
    if let Fault::RateLimit(rl) = &step.fault {
        extra.extend(rl.headers());
    }
    if let Some(rl) = &step.rate_limit {
        extra.extend(rl.headers());
    }
    extra.extend(step.headers.iter().cloned());
    for (n, v) in extra {
        set_header(r, &n, &v);
    }
}

fn control(shared: &Shared, method: &Method, cmd: &str, body: &[u8]) -> Resp {
    let ok = |n: usize| {
        full(
            StatusCode::OK,
            "application/json",
            format!("{{\"ok\":true,\"steps\":{n}}}"),
        )
    };
    match (method, cmd) {
        (&Method::POST, "script") => {
            match std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(Script::from_json)
            {
                Ok(script) => {
                    let n = script.steps.len();
                    shared.set_script(script);
                    ok(n)
                }
                Err(e) => openai_error(400, &e, "invalid_request_error", None),
            }
        }
        (&Method::POST, "push") => match serde_json::from_slice::<Step>(body) {
            Ok(step) => {
                shared.push(step);
                ok(shared.lock().steps.len())
            }
            Err(e) => openai_error(
                400,
                &format!("invalid step: {e}"),
                "invalid_request_error",
                None,
            ),
        },
        (&Method::POST, "reset") => {
            shared.reset();
            ok(0)
        }
        (&Method::GET, "requests") => {
            let reqs = shared.lock().requests.clone();
            match serde_json::to_vec(&reqs) {
                Ok(v) => full(StatusCode::OK, "application/json", v),
                Err(e) => openai_error(500, &e.to_string(), "server_error", None),
            }
        }
        _ => openai_error(
            404,
            "control endpoints: POST /__control/script, POST /__control/push, POST /__control/reset, GET /__control/requests",
            "invalid_request_error",
            None,
        ),
    }
}

struct ChatRequest {
    stream: bool,
    include_usage: bool,
    /// `stream_options.include_obfuscation` (OpenAI's default: true).
    include_obfuscation: bool,
    model: String,
    max_tokens: Option<u64>,
    prompt_tokens: u64,
}

fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("We could not parse the JSON body of your request: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("The request body must be a JSON object.".into());
    };
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return Err("Missing required parameter: 'messages'.".into());
    };
    let mut words = 0u64;
    let mut count = |v: &Value| match v {
        Value::String(s) => words += s.split_whitespace().count() as u64,
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    words += t.split_whitespace().count() as u64;
                }
            }
        }
        _ => {}
    };
    for m in messages {
        if let Some(c) = m.get("content") {
            count(c);
        }
    }
    if let Some(s) = obj.get("system") {
        count(s);
    }
    Ok(ChatRequest {
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        include_obfuscation: obj
            .get("stream_options")
            .and_then(|o| o.get("include_obfuscation"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        model: obj
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("gpt-4o-mock")
            .to_string(),
        max_tokens: obj
            .get("max_completion_tokens")
            .or_else(|| obj.get("max_tokens"))
            .and_then(Value::as_u64),
        prompt_tokens: words.max(1),
    })
}

/// Splits `text` into word-sized deltas: each delta after the first starts with the whitespace
/// that precedes its word. Concatenating the deltas gives `text` back.
pub fn split_deltas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_space = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if space && !prev_space && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        prev_space = space;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Answer {
    deltas: Vec<String>,
    truncated: bool,
}

fn plan_answer(text: &str, max_tokens: Option<u64>) -> Answer {
    let mut deltas = split_deltas(text);
    let mut truncated = false;
    if let Some(max) = max_tokens {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if deltas.len() > max {
            deltas.truncate(max);
            truncated = true;
        }
    }
    Answer { deltas, truncated }
}

fn openai_events(req: &ChatRequest, id: &str, index: usize, ans: &Answer) -> Vec<Bytes> {
    let usage_null = if req.include_usage {
        ",\"usage\":null"
    } else {
        ""
    };
    let head = format!(
        "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":{},\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\",\"choices\":",
        js(id),
        js(&req.model)
    );
    // OpenAI's `obfuscation`: 1–16 random base62 characters, a new length and text per chunk.
    let mut rng = SplitMix(0x5eed_0000 ^ index as u64);
    let mut obfuscation = move || {
        if !req.include_obfuscation {
            return String::new();
        }
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let len = 1 + (rng.next() % 16) as usize;
        let text: String = (0..len)
            .map(|_| char::from(BASE62[(rng.next() % 62) as usize]))
            .collect();
        format!(",\"obfuscation\":\"{text}\"")
    };
    let mut chunk = |delta: &str, finish: &str| {
        Bytes::from(format!(
            "data: {head}[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage_null}{}}}\n\n",
            obfuscation()
        ))
    };
    let mut ev = vec![chunk(
        "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
        "null",
    )];
    for d in &ans.deltas {
        ev.push(chunk(&format!("{{\"content\":{}}}", js(d)), "null"));
    }
    let finish = if ans.truncated {
        "\"length\""
    } else {
        "\"stop\""
    };
    ev.push(chunk("{}", finish));
    if req.include_usage {
        ev.push(Bytes::from(format!(
            "data: {head}[],\"usage\":{}{}}}\n\n",
            openai_usage(req, ans),
            obfuscation()
        )));
    }
    ev.push(Bytes::from_static(b"data: [DONE]\n\n"));
    ev
}

/// SplitMix64: the mock's deterministic source of `obfuscation` strings.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn openai_usage(req: &ChatRequest, ans: &Answer) -> String {
    let p = req.prompt_tokens;
    let c = ans.deltas.len() as u64;
    format!(
        "{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}",
        p + c
    )
}

fn openai_json(req: &ChatRequest, id: &str, ans: &Answer) -> Bytes {
    let text: String = ans.deltas.concat();
    let finish = if ans.truncated { "length" } else { "stop" };
    Bytes::from(format!(
        "{{\"id\":{},\"object\":\"chat.completion\",\"created\":{CREATED},\"model\":{},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{},\"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"{finish}\"}}],\"usage\":{},\"system_fingerprint\":\"fp_mock\"}}",
        js(id),
        js(&req.model),
        js(&text),
        openai_usage(req, ans)
    ))
}

fn sse(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn anthropic_events(req: &ChatRequest, id: &str, ans: &Answer) -> Vec<Bytes> {
    let mut ev = vec![
        sse(
            "message_start",
            &format!(
                "{{\"type\":\"message_start\",\"message\":{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{},\"output_tokens\":1}}}}}}",
                js(id),
                js(&req.model),
                req.prompt_tokens
            ),
        ),
        sse(
            "content_block_start",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        ),
        sse("ping", "{\"type\":\"ping\"}"),
    ];
    for d in &ans.deltas {
        ev.push(sse(
            "content_block_delta",
            &format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                js(d)
            ),
        ));
    }
    ev.push(sse(
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
    ));
    let stop = if ans.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };
    ev.push(sse(
        "message_delta",
        &format!(
            "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}",
            ans.deltas.len()
        ),
    ));
    ev.push(sse("message_stop", "{\"type\":\"message_stop\"}"));
    ev
}

fn anthropic_json(req: &ChatRequest, id: &str, ans: &Answer) -> Bytes {
    let stop = if ans.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };
    Bytes::from(format!(
        "{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\"text\":{}}}],\"stop_reason\":\"{stop}\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{},\"output_tokens\":{}}}}}",
        js(id),
        js(&req.model),
        js(&ans.deltas.concat()),
        req.prompt_tokens,
        ans.deltas.len()
    ))
}

fn error_event(api: Api, message: Option<&str>, code: Option<&str>) -> Bytes {
    match api {
        Api::OpenAi => Bytes::from(format!(
            "data: {{\"error\":{{\"message\":{},\"type\":\"server_error\",\"param\":null,\"code\":{}}}}}\n\n",
            js(message.unwrap_or(
                "The server had an error while processing your request. Sorry about that!"
            )),
            js(code.unwrap_or("server_error"))
        )),
        Api::Anthropic => sse(
            "error",
            &format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":{},\"message\":{}}}}}",
                js(code.unwrap_or("overloaded_error")),
                js(message.unwrap_or("Overloaded"))
            ),
        ),
    }
}

fn malformed_event(api: Api) -> Bytes {
    match api {
        Api::OpenAi => Bytes::from_static(b"data: {not json\n\n"),
        Api::Anthropic => Bytes::from_static(b"event: content_block_delta\ndata: {not json\n\n"),
    }
}

fn answer_response(
    api: Api,
    req: &ChatRequest,
    step: &Step,
    index: usize,
    text: &str,
    ctl: Arc<ConnCtl>,
) -> Resp {
    let ans = plan_answer(text, req.max_tokens);
    let id = match api {
        Api::OpenAi => format!("chatcmpl-mock{index}"),
        Api::Anthropic => format!("msg_mock{index}"),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let mut r = Response::new(MockBody::Chan(rx));
    let keepalive = match step.fault {
        Fault::KeepaliveEvery { ms } => Some(ms),
        _ => step.keepalive_every_ms,
    }
    .filter(|&ms| ms > 0)
    .map(Duration::from_millis);
    let pacing = Pacing {
        delay: step.delay_between_events_ms.map(Duration::from_millis),
        keepalive: if req.stream { keepalive } else { None },
    };
    if req.stream {
        set_header(&mut r, "content-type", "text/event-stream; charset=utf-8");
        set_header(&mut r, "cache-control", "no-cache");
        let mut events = match api {
            Api::OpenAi => openai_events(req, &id, index, &ans),
            Api::Anthropic => anthropic_events(req, &id, &ans),
        };
        if let (Api::OpenAi, Some(n)) = (api, step.reasoning_events) {
            let thought = |i: usize| {
                Bytes::from(format!(
                    "data: {{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":{},\"choices\":[{{\"index\":0,\"delta\":{{\"reasoning_content\":\"Thought {i}. \"}},\"finish_reason\":null}}]}}\n\n",
                    js(&id),
                    js(&req.model)
                ))
            };
            let at = 1.min(events.len());
            events.splice(at..at, (0..n).map(thought));
        }
        tokio::spawn(produce_stream(
            api,
            events,
            step.fault.clone(),
            pacing,
            tx,
            ctl,
        ));
    } else {
        let mut body = match api {
            Api::OpenAi => openai_json(req, &id, &ans),
            Api::Anthropic => anthropic_json(req, &id, &ans),
        };
        match &step.fault {
            Fault::MalformedAfter { .. } => body = Bytes::from_static(b"{not json"),
            Fault::ErrorEventAfter { message, code, .. } => {
                let ev = error_event(api, message.as_deref(), code.as_deref());
                // The event minus `data: ` / `event: …` framing: the bare JSON.
                let s = String::from_utf8_lossy(&ev);
                let json = s
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("{}")
                    .to_string();
                body = Bytes::from(json);
            }
            _ => {}
        }
        set_header(&mut r, "content-type", "application/json");
        set_header(&mut r, "content-length", &body.len().to_string());
        tokio::spawn(produce_single(body, step.fault.clone(), tx, ctl));
    }
    add_step_headers(&mut r, step, index);
    r
}

#[derive(Clone, Copy)]
struct Pacing {
    delay: Option<Duration>,
    keepalive: Option<Duration>,
}

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Waits `dur` (forever when `None`), sending keep-alive comments if asked. Returns false when
/// the client is gone.
async fn wait(
    tx: &mpsc::Sender<Bytes>,
    dur: Option<Duration>,
    keepalive: Option<Duration>,
) -> bool {
    let deadline = dur.map(|d| tokio::time::Instant::now() + d);
    loop {
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return true;
        }
        let next = match (deadline, keepalive) {
            (Some(d), Some(k)) => Some(d.min(now + k)),
            (Some(d), None) => Some(d),
            (None, Some(k)) => Some(now + k),
            (None, None) => None,
        };
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = tx.closed() => return false,
        }
        let fired_keepalive = match (deadline, next) {
            (Some(d), Some(n)) => n < d,
            _ => true,
        };
        if fired_keepalive && tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
            return false;
        }
    }
}

/// Waits until hyper has taken the frames queued so far and (very likely) written them.
async fn settle(tx: &mpsc::Sender<Bytes>) {
    // With a channel of capacity 1, a permit means hyper has taken the last frame; hyper flushes
    // in the same poll, and the short sleep covers the socket write.
    if let Ok(permit) = tx.reserve().await {
        drop(permit);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Lets hyper take and flush the frames already queued, then resets the connection.
async fn reset_connection(tx: mpsc::Sender<Bytes>, ctl: Arc<ConnCtl>) {
    settle(&tx).await;
    ctl.reset();
    // Keep the body open (no terminating chunk) until the connection is gone.
    tx.closed().await;
}

async fn send_bytes(tx: &mpsc::Sender<Bytes>, b: Bytes, drip: Option<Duration>) -> bool {
    match drip {
        None => tx.send(b).await.is_ok(),
        Some(d) => {
            for i in 0..b.len() {
                if i > 0 && !wait(tx, Some(d), None).await {
                    return false;
                }
                if tx.send(b.slice(i..i + 1)).await.is_err() {
                    return false;
                }
            }
            true
        }
    }
}

async fn produce_stream(
    api: Api,
    events: Vec<Bytes>,
    fault: Fault,
    pacing: Pacing,
    tx: mpsc::Sender<Bytes>,
    ctl: Arc<ConnCtl>,
) {
    let cut = match &fault {
        Fault::StallAfter { events, .. }
        | Fault::ResetAfter { events }
        | Fault::TruncateAfter { events }
        | Fault::MalformedAfter { events }
        | Fault::ErrorEventAfter { events, .. } => Some(*events),
        _ => None,
    };
    let drip = match fault {
        Fault::Drip { ms_per_byte } => Some(Duration::from_millis(ms_per_byte)),
        _ => None,
    };
    if pacing.keepalive.is_some() && tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
        return;
    }
    let n = events.len();
    for (i, ev) in events
        .into_iter()
        .chain(std::iter::once(Bytes::new()))
        .enumerate()
    {
        if cut.map(|c| c.min(n)) == Some(i) {
            match &fault {
                Fault::StallAfter { ms, .. } => {
                    let client_alive =
                        wait(&tx, ms.map(Duration::from_millis), pacing.keepalive).await;
                    if !client_alive {
                        return;
                    }
                }
                Fault::ResetAfter { .. } => return reset_connection(tx, ctl).await,
                Fault::TruncateAfter { .. } => return,
                Fault::MalformedAfter { .. } => {
                    let _ = tx.send(malformed_event(api)).await;
                    return;
                }
                Fault::ErrorEventAfter { message, code, .. } => {
                    let _ = tx
                        .send(error_event(api, message.as_deref(), code.as_deref()))
                        .await;
                    return;
                }
                _ => {}
            }
        }
        if i == n {
            return;
        }
        if i > 0 && pacing.delay.is_some() && !wait(&tx, pacing.delay, pacing.keepalive).await {
            return;
        }
        if !send_bytes(&tx, ev, drip).await {
            return;
        }
    }
}

async fn produce_single(body: Bytes, fault: Fault, tx: mpsc::Sender<Bytes>, ctl: Arc<ConnCtl>) {
    match fault {
        Fault::StallAfter { ms, .. } => {
            if !wait(&tx, ms.map(Duration::from_millis), None).await {
                return;
            }
            let _ = tx.send(body).await;
        }
        Fault::ResetAfter { events } => {
            if events > 0 && tx.send(body).await.is_err() {
                return;
            }
            reset_connection(tx, ctl).await;
        }
        Fault::TruncateAfter { .. } => {
            let half = body.len() / 2;
            if tx.send(body.slice(..half)).await.is_ok() {
                // hyper drops buffered bytes when a body ends short of its Content-Length: let
                // it write them before ending.
                settle(&tx).await;
            }
        }
        Fault::Drip { ms_per_byte } => {
            let _ = send_bytes(&tx, body, Some(Duration::from_millis(ms_per_byte))).await;
        }
        _ => {
            let _ = tx.send(body).await;
        }
    }
}

#[cfg(test)]
mod chunk_shape {
    use super::*;

    fn request(include_obfuscation: bool) -> ChatRequest {
        ChatRequest {
            stream: true,
            include_usage: true,
            include_obfuscation,
            model: "gpt-4o".into(),
            max_tokens: None,
            prompt_tokens: 3,
        }
    }

    fn chunks(req: &ChatRequest) -> Vec<String> {
        let ans = plan_answer("Blue light scatters more.", None);
        openai_events(req, "chatcmpl-mock1", 1, &ans)
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .filter_map(|e| e.strip_prefix("data: ").map(|d| d.trim_end().to_string()))
            .filter(|d| d != "[DONE]")
            .collect()
    }

    #[test]
    fn chunks_have_openais_2026_shape_with_obfuscation_last() {
        let mut seen = std::collections::HashSet::new();
        for data in chunks(&request(true)) {
            let v: Value = serde_json::from_str(&data).unwrap();
            let at = |k: &str| data.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
            let order = [
                "id",
                "object",
                "created",
                "model",
                "service_tier",
                "system_fingerprint",
                "choices",
                "usage",
                "obfuscation",
            ];
            assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{data}");
            assert_eq!(v.as_object().map(|o| o.len()), Some(order.len()), "{data}");
            assert!(
                data.ends_with("\"}"),
                "obfuscation is the last member: {data}"
            );
            let o = v["obfuscation"].as_str().unwrap();
            assert!((1..=16).contains(&o.len()), "{o}");
            assert!(o.bytes().all(|b| b.is_ascii_alphanumeric()), "{o}");
            seen.insert(o.to_string());
        }
        assert!(seen.len() > 3, "obfuscation differs between chunks");
    }

    #[test]
    fn include_obfuscation_false_drops_it() {
        for data in chunks(&request(false)) {
            assert!(!data.contains("obfuscation"), "{data}");
            assert!(data.ends_with('}'), "{data}");
        }
    }
}
