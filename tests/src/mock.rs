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
//! - `POST …/responses`: OpenAI's Responses API. Streaming sends, each with an `event:` line and
//!   a `sequence_number` counting from 0, `response.created` (status `queued` in background
//!   mode, else `in_progress`), `response.in_progress`, `response.output_item.added` and
//!   `response.content_part.added` for the message, one `response.output_text.delta` per word,
//!   `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
//!   per tool call `response.output_item.added` (`function_call`), its
//!   `response.function_call_arguments.delta`s, `.done` and `response.output_item.done`, then
//!   `response.completed` with usage — `response.incomplete` (`max_output_tokens`) when
//!   `max_output_tokens` cut the answer; otherwise one `response` JSON object. A streamed
//!   request with `"background": true` is kept under its id (`resp_mock<N>`, N the request's
//!   number) until a reset.
//! - `GET …/responses/{id}?stream=true&starting_after=N`: resumes a kept background stream: its
//!   events after sequence number N (all without `starting_after`), to the end. It consumes a
//!   script step like a POST, so a step's fault applies to the resume (`status` 503: a resume
//!   refused once; `reset_after`/`stall_after`: a resume that breaks again). An unknown id: 404.
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
//! many ms during any pause or stall), `rate_limit` (an object as in the `rate_limit` fault),
//! `headers` (extra `[name, value]` pairs) and `tool_calls`.
//!
//! `tool_calls` (`[{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}, …]`) makes the
//! answer call these tools after its text (ids `call_mock<request>_<i>`, Anthropic
//! `toolu_mock<request>_<i>`; finish reason `tool_calls` / `tool_use`). Streamed, each call is
//! a first fragment with its id and name and then its arguments in pieces of
//! [`TOOL_ARGUMENT_PIECE`] characters — OpenAI: `delta.tool_calls` with the call's `index`;
//! Anthropic: a `tool_use` content block (index `1 + i`, after the text block) with
//! `input_json_delta`s; whole: OpenAI's `message.tool_calls`, Anthropic's `tool_use` blocks
//! with the arguments as their `input`. Set `"answer": ""` for an answer of tool calls only.
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
//! | `{"fault":"response_failed","events":3}` | Responses stream: send 3 events, then a `response.failed` event (the next `sequence_number`, `error.code` `server_error`), then end the body; other APIs: their error event, as `error_event_after`; a whole answer: normal |
//! | `{"fault":"rate_limit","remaining_requests":0,"remaining_tokens":10,"reset_requests":"1s","reset_tokens":"6m0s"}` | normal answer with `x-ratelimit-*` headers (also `limit_requests`, `limit_tokens`) |
//! | `{"fault":"keepalive_every","ms":100}` | normal answer with `keepalive_every_ms` = `ms` |
//! | `{"fault":"page","code":200,"content_type":"text/html","body":"…"}` | that status, type and body whatever was asked (a captive portal's page; a redirect or a gzipped body with `headers` such as `[["location","…"]]`, `[["content-encoding","gzip"]]`) |
//! | `{"fault":"not_http"}` | an SSH banner instead of an HTTP response, then close |
//! | `{"fault":"whole"}` | the whole answer as one JSON object (`chat.completion`, Anthropic `message`, `Content-Type: application/json`) whatever was asked: a gateway or cache that ignores `"stream": true` |
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

use std::collections::{HashMap, VecDeque};
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
    /// Responses stream: send `events` events, then `response.failed`, then end the body
    /// (other APIs: their error event).
    ResponseFailed {
        /// Events sent before `response.failed`.
        events: usize,
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
    /// The whole answer as one JSON object, even to a streamed request (a gateway that
    /// ignores `stream: true`).
    Whole,
}

/// A tool call the mock's answer makes (see [`Step::tool_calls`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockToolCall {
    /// Function name.
    pub name: String,
    /// The arguments, JSON text (a JSON object for Anthropic's `input`).
    pub arguments: String,
}

impl MockToolCall {
    /// A call of `name` with `arguments` (JSON text).
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        MockToolCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// Characters of arguments per streamed tool-call fragment.
pub const TOOL_ARGUMENT_PIECE: usize = 7;

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
    /// Tools the answer calls after its text (see the [module docs](self)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MockToolCall>,
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
            tool_calls: Vec::new(),
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
    /// Adds a tool call to the answer ([`Step::tool_calls`]).
    pub fn tool_call(mut self, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        self.tool_calls.push(MockToolCall::new(name, arguments));
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
            Fault::ResponseFailed { .. } => "response_failed",
            Fault::RateLimit(_) => "rate_limit",
            Fault::KeepaliveEvery { .. } => "keepalive_every",
            Fault::Page { .. } => "page",
            Fault::NotHttp => "not_http",
            Fault::Whole => "whole",
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
    /// Responses created in background mode: their whole event streams, by id.
    responses: HashMap<String, Vec<Bytes>>,
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
                responses: HashMap::new(),
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
        st.responses.clear();
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
        Api::OpenAi | Api::Responses => {
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
    Responses,
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

    let query = req.uri().query().unwrap_or_default().to_string();
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

    // `…/responses/{id}`: a Responses stream to resume.
    let resume_id = path
        .rsplit_once("/responses/")
        .map(|(_, id)| id.to_string())
        .filter(|id| !id.is_empty() && !id.contains('/'));
    let api = if path.ends_with("/chat/completions") {
        Some(Api::OpenAi)
    } else if path.ends_with("/messages") {
        Some(Api::Anthropic)
    } else if path.ends_with("/responses") || resume_id.is_some() {
        Some(Api::Responses)
    } else {
        None
    };
    let body_bytes = body.as_ref().map(|b| b.to_vec()).unwrap_or_default();
    let consumes = api.is_some()
        && match resume_id {
            Some(_) => method == Method::GET,
            None => method == Method::POST,
        };

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
            &format!(
                "Unknown path {path}: this mock serves …/chat/completions, …/messages, \
                 …/responses and …/responses/{{id}}"
            ),
            "invalid_request_error",
            None,
        );
    };
    let Some(step) = step else {
        return openai_error(
            405,
            &format!(
                "Method {method} not allowed; use {}",
                if resume_id.is_some() { "GET" } else { "POST" }
            ),
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

    if let Some(id) = resume_id {
        return resume_response(&shared, &id, &query, &step, index, ctl);
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
    let parsed = match api {
        Api::Responses => parse_responses_request(&body),
        _ => parse_chat_request(&body).map(|r| (r, false)),
    };
    let (parsed, background) = match parsed {
        Ok(p) => p,
        Err(msg) => return openai_error(400, &msg, "invalid_request_error", None),
    };
    let keep = background.then_some(&*shared);
    answer_response(api, &parsed, &step, index, &answer, keep, ctl)
}

/// `GET …/responses/{id}?stream=true&starting_after=N`: the kept stream's events after N.
fn resume_response(
    shared: &Shared,
    id: &str,
    query: &str,
    step: &Step,
    index: usize,
    ctl: Arc<ConnCtl>,
) -> Resp {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    if param("stream") != Some("true") {
        return openai_error(
            400,
            "This mock resumes streams only: add stream=true.",
            "invalid_request_error",
            None,
        );
    }
    let after = match param("starting_after").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return openai_error(
                400,
                "Invalid 'starting_after': expected a sequence number.",
                "invalid_request_error",
                Some("invalid_value"),
            );
        }
    };
    let Some(events) = shared.lock().responses.get(id).cloned() else {
        return openai_error(
            404,
            &format!("No response found with id '{id}'."),
            "invalid_request_error",
            None,
        );
    };
    // Event i carries sequence number i.
    let rest: Vec<Bytes> = events
        .into_iter()
        .skip(after.map_or(0, |n| n.saturating_add(1)))
        .collect();
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let mut r = Response::new(MockBody::Chan(rx));
    set_header(&mut r, "content-type", "text/event-stream; charset=utf-8");
    set_header(&mut r, "cache-control", "no-cache");
    let keepalive = match step.fault {
        Fault::KeepaliveEvery { ms } => Some(ms),
        _ => step.keepalive_every_ms,
    }
    .filter(|&ms| ms > 0)
    .map(Duration::from_millis);
    let pacing = Pacing {
        delay: step.delay_between_events_ms.map(Duration::from_millis),
        keepalive,
    };
    tokio::spawn(produce_stream(
        Api::Responses,
        rest,
        step.fault.clone(),
        pacing,
        tx,
        ctl,
    ));
    add_step_headers(&mut r, step, index);
    r
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

/// A request body that must be a JSON object, or the error message an API would give.
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err("The request body must be a JSON object.".into()),
        Err(e) => Err(format!(
            "We could not parse the JSON body of your request: {e}"
        )),
    }
}

/// Words of a message's content: a string, or the `text` of its parts.
fn prompt_words(v: &Value) -> u64 {
    let words = |t: &str| t.split_whitespace().count() as u64;
    match v {
        Value::String(s) => words(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(words)
            .sum(),
        _ => 0,
    }
}

fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, String> {
    let obj = json_object(body)?;
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return Err("Missing required parameter: 'messages'.".into());
    };
    let mut words = 0u64;
    let mut count = |v: &Value| words += prompt_words(v);
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

/// A Responses request (`input` as a string or items, `instructions`, `max_output_tokens`,
/// `stream`) as the chat request the answer is planned from, and its `background` flag.
fn parse_responses_request(body: &[u8]) -> Result<(ChatRequest, bool), String> {
    let obj = json_object(body)?;
    let Some(input) = obj.get("input") else {
        return Err("Missing required parameter: 'input'.".into());
    };
    let mut words = 0u64;
    let mut count = |v: &Value| words += prompt_words(v);
    match input {
        Value::Array(items) => {
            for item in items {
                for key in ["content", "output", "arguments"] {
                    if let Some(c) = item.get(key) {
                        count(c);
                    }
                }
            }
        }
        other => count(other),
    }
    if let Some(i) = obj.get("instructions") {
        count(i);
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let background = obj
        .get("background")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if background && obj.get("store").and_then(Value::as_bool) == Some(false) {
        return Err("Background mode requires 'store' to be true.".into());
    }
    Ok((
        ChatRequest {
            stream,
            include_usage: true,
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
            max_tokens: obj.get("max_output_tokens").and_then(Value::as_u64),
            prompt_tokens: words.max(1),
        },
        background,
    ))
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
    /// Tool calls after the text (none when the text was cut): id and call.
    tools: Vec<(String, MockToolCall)>,
}

impl Answer {
    /// OpenAI's finish reason.
    fn openai_finish(&self) -> &'static str {
        match (self.truncated, self.tools.is_empty()) {
            (true, _) => "length",
            (false, false) => "tool_calls",
            (false, true) => "stop",
        }
    }

    /// Anthropic's stop reason.
    fn anthropic_stop(&self) -> &'static str {
        match (self.truncated, self.tools.is_empty()) {
            (true, _) => "max_tokens",
            (false, false) => "tool_use",
            (false, true) => "end_turn",
        }
    }

    /// Tokens of the answer (a word or a tool call each).
    fn tokens(&self) -> u64 {
        (self.deltas.len() + self.tools.len()) as u64
    }
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
    Answer {
        deltas,
        truncated,
        tools: Vec::new(),
    }
}

/// A tool call's arguments in streamed pieces of [`TOOL_ARGUMENT_PIECE`] characters.
fn argument_pieces(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    chars
        .chunks(TOOL_ARGUMENT_PIECE)
        .map(|c| c.iter().collect())
        .collect()
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
    for (i, (id, call)) in ans.tools.iter().enumerate() {
        ev.push(chunk(
            &format!(
                "{{\"tool_calls\":[{{\"index\":{i},\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":\"\"}}}}]}}",
                js(id),
                js(&call.name)
            ),
            "null",
        ));
        for piece in argument_pieces(&call.arguments) {
            ev.push(chunk(
                &format!(
                    "{{\"tool_calls\":[{{\"index\":{i},\"function\":{{\"arguments\":{}}}}}]}}",
                    js(&piece)
                ),
                "null",
            ));
        }
    }
    let finish = format!("\"{}\"", ans.openai_finish());
    ev.push(chunk("{}", &finish));
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
    let c = ans.tokens();
    format!(
        "{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}",
        p + c
    )
}

fn openai_json(req: &ChatRequest, id: &str, ans: &Answer) -> Bytes {
    let text: String = ans.deltas.concat();
    let finish = ans.openai_finish();
    let content = if text.is_empty() && !ans.tools.is_empty() {
        "null".to_string()
    } else {
        js(&text)
    };
    let tools = if ans.tools.is_empty() {
        String::new()
    } else {
        let calls: Vec<String> = ans
            .tools
            .iter()
            .map(|(id, call)| {
                format!(
                    "{{\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":{}}}}}",
                    js(id),
                    js(&call.name),
                    js(&call.arguments)
                )
            })
            .collect();
        format!(",\"tool_calls\":[{}]", calls.join(","))
    };
    Bytes::from(format!(
        "{{\"id\":{},\"object\":\"chat.completion\",\"created\":{CREATED},\"model\":{},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{content},\"refusal\":null,\"annotations\":[]{tools}}},\"logprobs\":null,\"finish_reason\":\"{finish}\"}}],\"usage\":{},\"system_fingerprint\":\"fp_mock\"}}",
        js(id),
        js(&req.model),
        openai_usage(req, ans)
    ))
}

fn sse(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// A Responses `response` object: `status`, and `output` and `usage` once it ended.
fn responses_object(
    req: &ChatRequest,
    id: &str,
    ans: &Answer,
    status: &str,
    background: bool,
    ended: bool,
) -> String {
    let (output, usage, details) = if ended {
        let mut items = vec![format!(
            "{{\"id\":\"msg_{id}\",\"type\":\"message\",\"status\":\"completed\",\"content\":[{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{}}}],\"role\":\"assistant\"}}",
            js(&ans.deltas.concat())
        )];
        for (i, (call_id, call)) in ans.tools.iter().enumerate() {
            items.push(format!(
                "{{\"id\":\"fc_{id}_{i}\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":{},\"call_id\":{},\"name\":{}}}",
                js(&call.arguments),
                js(call_id),
                js(&call.name)
            ));
        }
        let p = req.prompt_tokens;
        let c = ans.tokens();
        let details = if ans.truncated {
            "{\"reason\":\"max_output_tokens\"}"
        } else {
            "null"
        };
        (
            items.join(","),
            format!(
                "{{\"input_tokens\":{p},\"input_tokens_details\":{{\"cached_tokens\":0}},\"output_tokens\":{c},\"output_tokens_details\":{{\"reasoning_tokens\":0}},\"total_tokens\":{}}}",
                p + c
            ),
            details,
        )
    } else {
        (String::new(), "null".to_string(), "null")
    };
    format!(
        "{{\"id\":{},\"object\":\"response\",\"created_at\":{CREATED},\"status\":\"{status}\",\"background\":{background},\"error\":null,\"incomplete_details\":{details},\"instructions\":null,\"max_output_tokens\":{},\"model\":{},\"output\":[{output}],\"parallel_tool_calls\":true,\"store\":true,\"temperature\":1.0,\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\"usage\":{usage},\"metadata\":{{}}}}",
        js(id),
        req.max_tokens.map_or("null".to_string(), |m| m.to_string()),
        js(&req.model)
    )
}

/// A Responses stream (see the module docs); event `i` carries `sequence_number` `i`.
fn responses_events(req: &ChatRequest, id: &str, ans: &Answer, background: bool) -> Vec<Bytes> {
    let mut ev = Vec::new();
    let mut push = |kind: &str, rest: &str| {
        let seq = ev.len();
        ev.push(sse(
            kind,
            &format!("{{\"type\":\"{kind}\",\"sequence_number\":{seq}{rest}}}"),
        ));
    };
    let first = if background { "queued" } else { "in_progress" };
    let obj = |status: &str, ended: bool| responses_object(req, id, ans, status, background, ended);
    push(
        "response.created",
        &format!(",\"response\":{}", obj(first, false)),
    );
    push(
        "response.in_progress",
        &format!(",\"response\":{}", obj("in_progress", false)),
    );
    let msg = format!("msg_{id}");
    push(
        "response.output_item.added",
        &format!(
            ",\"output_index\":0,\"item\":{{\"id\":\"{msg}\",\"type\":\"message\",\"status\":\"in_progress\",\"content\":[],\"role\":\"assistant\"}}"
        ),
    );
    push(
        "response.content_part.added",
        &format!(
            ",\"item_id\":\"{msg}\",\"output_index\":0,\"content_index\":0,\"part\":{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\"}}"
        ),
    );
    for d in &ans.deltas {
        push(
            "response.output_text.delta",
            &format!(
                ",\"item_id\":\"{msg}\",\"output_index\":0,\"content_index\":0,\"delta\":{},\"logprobs\":[]",
                js(d)
            ),
        );
    }
    let text = js(&ans.deltas.concat());
    push(
        "response.output_text.done",
        &format!(
            ",\"item_id\":\"{msg}\",\"output_index\":0,\"content_index\":0,\"text\":{text},\"logprobs\":[]"
        ),
    );
    push(
        "response.content_part.done",
        &format!(
            ",\"item_id\":\"{msg}\",\"output_index\":0,\"content_index\":0,\"part\":{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{text}}}"
        ),
    );
    push(
        "response.output_item.done",
        &format!(
            ",\"output_index\":0,\"item\":{{\"id\":\"{msg}\",\"type\":\"message\",\"status\":\"completed\",\"content\":[{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{text}}}],\"role\":\"assistant\"}}"
        ),
    );
    for (i, (call_id, call)) in ans.tools.iter().enumerate() {
        let out = i + 1;
        let fc = format!("fc_{id}_{i}");
        let item = |status: &str, arguments: &str| {
            format!(
                "{{\"id\":\"{fc}\",\"type\":\"function_call\",\"status\":\"{status}\",\"arguments\":{},\"call_id\":{},\"name\":{}}}",
                js(arguments),
                js(call_id),
                js(&call.name)
            )
        };
        push(
            "response.output_item.added",
            &format!(
                ",\"output_index\":{out},\"item\":{}",
                item("in_progress", "")
            ),
        );
        for piece in argument_pieces(&call.arguments) {
            push(
                "response.function_call_arguments.delta",
                &format!(
                    ",\"item_id\":\"{fc}\",\"output_index\":{out},\"delta\":{}",
                    js(&piece)
                ),
            );
        }
        push(
            "response.function_call_arguments.done",
            &format!(
                ",\"item_id\":\"{fc}\",\"output_index\":{out},\"arguments\":{}",
                js(&call.arguments)
            ),
        );
        push(
            "response.output_item.done",
            &format!(
                ",\"output_index\":{out},\"item\":{}",
                item("completed", &call.arguments)
            ),
        );
    }
    let (kind, status) = if ans.truncated {
        ("response.incomplete", "incomplete")
    } else {
        ("response.completed", "completed")
    };
    push(kind, &format!(",\"response\":{}", obj(status, true)));
    ev
}

/// A non-streamed Responses answer: one `response` object.
fn responses_json(req: &ChatRequest, id: &str, ans: &Answer) -> Bytes {
    let status = if ans.truncated {
        "incomplete"
    } else {
        "completed"
    };
    Bytes::from(responses_object(req, id, ans, status, false, true))
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
    for (i, (id, call)) in ans.tools.iter().enumerate() {
        let block = i + 1;
        ev.push(sse(
            "content_block_start",
            &format!(
                "{{\"type\":\"content_block_start\",\"index\":{block},\"content_block\":{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{{}}}}}}",
                js(id),
                js(&call.name)
            ),
        ));
        for piece in argument_pieces(&call.arguments) {
            ev.push(sse(
                "content_block_delta",
                &format!(
                    "{{\"type\":\"content_block_delta\",\"index\":{block},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}",
                    js(&piece)
                ),
            ));
        }
        ev.push(sse(
            "content_block_stop",
            &format!("{{\"type\":\"content_block_stop\",\"index\":{block}}}"),
        ));
    }
    let stop = ans.anthropic_stop();
    ev.push(sse(
        "message_delta",
        &format!(
            "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}",
            ans.tokens()
        ),
    ));
    ev.push(sse("message_stop", "{\"type\":\"message_stop\"}"));
    ev
}

fn anthropic_json(req: &ChatRequest, id: &str, ans: &Answer) -> Bytes {
    let stop = ans.anthropic_stop();
    let mut blocks = vec![format!(
        "{{\"type\":\"text\",\"text\":{}}}",
        js(&ans.deltas.concat())
    )];
    for (id, call) in &ans.tools {
        // The arguments as the block's `input` (a JSON value; `{}` when they are not one).
        let input = serde_json::from_str::<Value>(&call.arguments)
            .map(|_| call.arguments.clone())
            .unwrap_or_else(|_| "{}".into());
        blocks.push(format!(
            "{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{input}}}",
            js(id),
            js(&call.name)
        ));
    }
    Bytes::from(format!(
        "{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{}],\"stop_reason\":\"{stop}\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{},\"output_tokens\":{}}}}}",
        js(id),
        js(&req.model),
        blocks.join(","),
        req.prompt_tokens,
        ans.tokens()
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
        // Without a sequence number: the mock sends it outside the numbered stream.
        Api::Responses => sse(
            "error",
            &format!(
                "{{\"type\":\"error\",\"code\":{},\"message\":{},\"param\":null}}",
                js(code.unwrap_or("server_error")),
                js(message.unwrap_or(
                    "The server had an error while processing your request. Sorry about that!"
                ))
            ),
        ),
    }
}

fn malformed_event(api: Api) -> Bytes {
    match api {
        Api::OpenAi => Bytes::from_static(b"data: {not json\n\n"),
        Api::Anthropic => Bytes::from_static(b"event: content_block_delta\ndata: {not json\n\n"),
        Api::Responses => {
            Bytes::from_static(b"event: response.output_text.delta\ndata: {not json\n\n")
        }
    }
}

fn answer_response(
    api: Api,
    req: &ChatRequest,
    step: &Step,
    index: usize,
    text: &str,
    keep: Option<&Shared>,
    ctl: Arc<ConnCtl>,
) -> Resp {
    let mut ans = plan_answer(text, req.max_tokens);
    let id = match api {
        Api::OpenAi => format!("chatcmpl-mock{index}"),
        Api::Anthropic => format!("msg_mock{index}"),
        Api::Responses => format!("resp_mock{index}"),
    };
    if !ans.truncated {
        let prefix = match api {
            Api::OpenAi | Api::Responses => "call_mock",
            Api::Anthropic => "toolu_mock",
        };
        ans.tools = step
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{prefix}{index}_{i}"), c.clone()))
            .collect();
    }
    // A gateway that ignores `stream: true` answers with the whole completion.
    let stream = req.stream && step.fault != Fault::Whole;
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
        keepalive: if stream { keepalive } else { None },
    };
    if stream {
        set_header(&mut r, "content-type", "text/event-stream; charset=utf-8");
        set_header(&mut r, "cache-control", "no-cache");
        let mut events = match api {
            Api::OpenAi => openai_events(req, &id, index, &ans),
            Api::Anthropic => anthropic_events(req, &id, &ans),
            Api::Responses => responses_events(req, &id, &ans, keep.is_some()),
        };
        if let (Api::Responses, Some(shared)) = (api, keep) {
            shared.lock().responses.insert(id.clone(), events.clone());
        }
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
            Api::Responses => responses_json(req, &id, &ans),
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
        | Fault::ErrorEventAfter { events, .. }
        | Fault::ResponseFailed { events } => Some(*events),
        _ => None,
    };
    // The `sequence_number` of the last event sent (Responses; `response_failed` follows it).
    let mut last_seq: Option<u64> = None;
    let drip = match fault {
        Fault::Drip { ms_per_byte } => Some(Duration::from_millis(ms_per_byte)),
        _ => None,
    };
    if pacing.keepalive.is_some() && tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
        return;
    }
    let n = events.len();
    // The response's id, for `response_failed` (the created event or, on a resume, the
    // completed one carries it).
    let resp_id = match (&fault, api) {
        (Fault::ResponseFailed { .. }, Api::Responses) => events.iter().find_map(|ev| {
            let s = std::str::from_utf8(ev).ok()?;
            let key = "\"response\":{\"id\":\"";
            let at = s.find(key)? + key.len();
            let rest = s.get(at..)?;
            Some(rest.get(..rest.find('"')?)?.to_string())
        }),
        _ => None,
    };
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
                Fault::ResponseFailed { .. } => {
                    let ev = match api {
                        Api::Responses => response_failed_event(
                            last_seq.map_or(0, |s| s + 1),
                            resp_id.as_deref().unwrap_or_default(),
                        ),
                        _ => error_event(api, None, None),
                    };
                    let _ = tx.send(ev).await;
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
        if api == Api::Responses {
            last_seq = sequence_number(&ev).or(last_seq);
        }
        if !send_bytes(&tx, ev, drip).await {
            return;
        }
    }
}

/// The `sequence_number` in a Responses event's bytes.
fn sequence_number(ev: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sequence_number\":";
    let at = ev.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = ev[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&ev[at..at + digits]).ok()?.parse().ok()
}

/// A Responses `response.failed` event numbered `seq`.
fn response_failed_event(seq: u64, id: &str) -> Bytes {
    sse(
        "response.failed",
        &format!(
            "{{\"type\":\"response.failed\",\"sequence_number\":{seq},\"response\":{{\"id\":{},\"object\":\"response\",\"status\":\"failed\",\"error\":{{\"code\":\"server_error\",\"message\":\"The model failed to generate a response.\"}},\"output\":[]}}}}",
            js(id)
        ),
    )
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

#[cfg(test)]
mod tool_call_shape {
    use super::*;

    fn answer(api: Api) -> Answer {
        let mut ans = plan_answer("Let me check.", None);
        let prefix = if api == Api::OpenAi {
            "call_"
        } else {
            "toolu_"
        };
        ans.tools = vec![
            (
                format!("{prefix}1"),
                MockToolCall::new("get_weather", r#"{"city":"Paris \"é\"","days":[1,2]}"#),
            ),
            (format!("{prefix}2"), MockToolCall::new("get_time", "{}")),
        ];
        ans
    }

    fn req(stream: bool) -> ChatRequest {
        ChatRequest {
            stream,
            include_usage: false,
            include_obfuscation: false,
            model: "m".into(),
            max_tokens: None,
            prompt_tokens: 3,
        }
    }

    fn data(events: Vec<Bytes>) -> Vec<Value> {
        events
            .iter()
            .filter_map(|b| {
                let s = String::from_utf8(b.to_vec()).unwrap();
                s.lines()
                    .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
            })
            .filter(|d| d != "[DONE]")
            .map(|d| serde_json::from_str(&d).unwrap())
            .collect()
    }

    #[test]
    fn streamed_fragments_join_to_the_calls_in_both_apis() {
        let want = [
            (r#"{"city":"Paris \"é\"","days":[1,2]}"#, "get_weather"),
            ("{}", "get_time"),
        ];
        // OpenAI: id and name first, then the arguments in pieces, per index.
        let mut calls = vec![(String::new(), String::new()); 2];
        let mut finish = None;
        for v in data(openai_events(&req(true), "c", 1, &answer(Api::OpenAi))) {
            let choice = &v["choices"][0];
            if let Some(tcs) = choice["delta"]["tool_calls"].as_array() {
                for tc in tcs {
                    let i = tc["index"].as_u64().unwrap() as usize;
                    if let Some(n) = tc["function"]["name"].as_str() {
                        calls[i].1 = n.into();
                    }
                    calls[i].0 += tc["function"]["arguments"].as_str().unwrap();
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        for (i, (args, name)) in want.iter().enumerate() {
            assert_eq!((calls[i].0.as_str(), calls[i].1.as_str()), (*args, *name));
        }
        assert_eq!(finish.as_deref(), Some("tool_calls"));
        // Anthropic: a tool_use block per call, input_json_delta pieces.
        let mut calls = vec![(String::new(), String::new()); 3];
        let mut stop = None;
        for v in data(anthropic_events(&req(true), "m", &answer(Api::Anthropic))) {
            let i = v["index"].as_u64().unwrap_or(0) as usize;
            match v["type"].as_str().unwrap() {
                "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                    calls[i].1 = v["content_block"]["name"].as_str().unwrap().into()
                }
                "content_block_delta" if v["delta"]["type"] == "input_json_delta" => {
                    calls[i].0 += v["delta"]["partial_json"].as_str().unwrap()
                }
                "message_delta" => stop = v["delta"]["stop_reason"].as_str().map(String::from),
                _ => {}
            }
        }
        for (i, (args, name)) in want.iter().enumerate() {
            assert_eq!(
                (calls[i + 1].0.as_str(), calls[i + 1].1.as_str()),
                (*args, *name)
            );
        }
        assert_eq!(stop.as_deref(), Some("tool_use"));
    }

    #[test]
    fn whole_answers_carry_the_calls() {
        let v: Value =
            serde_json::from_slice(&openai_json(&req(false), "c", &answer(Api::OpenAi))).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Let me check.");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris \"é\"","days":[1,2]}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let v: Value =
            serde_json::from_slice(&anthropic_json(&req(false), "m", &answer(Api::Anthropic)))
                .unwrap();
        assert_eq!(v["content"][1]["type"], "tool_use");
        assert_eq!(v["content"][1]["input"]["days"][1], 2);
        assert_eq!(v["content"][2]["name"], "get_time");
        assert_eq!(v["stop_reason"], "tool_use");
    }
}
