//! steadyllm-wasm: the browser adapter behind the npm package `steadyllm`.
//!
//! The core's SSE parser, decoder and resilience engine run here; the browser supplies
//! `fetch` (a `web_sys::Request` given to the global `fetch`, the body read incrementally from
//! its `ReadableStream`), timers (`setTimeout`), the clock (`performance.now()`) and, through the
//! JS wrapper, a seed from `crypto.getRandomValues`.
//!
//! The JavaScript API users see (`Client`, `chat.stream`, error classes) is the hand-written
//! wrapper in `js/src/index.js`; the exports here are its internals:
//!
//! - [`Engine`]: one per `Client`, made with its settings, then [`Engine::add_endpoint`] per
//!   endpoint; its calls share breakers, rate-limit pauses and the retry budget.
//!   [`Engine::chat`] runs one [`ChatInput`] and hands decoded items to a JS function, one
//!   [`batch`] per network read.
//! - [`ChatInput`]: a request, built field by field (see [`input`]).
//! - [`Decoder`]: the SSE parser and decoder alone, over bytes the caller supplies.
//!
//! Nothing here panics on input: bad options and requests throw or reject with a message; a
//! failed call rejects with a plain object `{ reason, failure, status, attempts, serverError,
//! retryAfterMs, message }` (names, numbers, and a message only for `reason: "invalid"`) that
//! the wrapper turns into an `Error` subclass with a readable message.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![warn(missing_docs)]

extern crate alloc;

// In the browser: no `std` (its panic and formatting machinery would be most of the module),
// so an allocator and a panic handler of our own. Nothing here is meant to panic; if
// something does, the module traps and the JS wrapper turns the trap into an error.
// A free-list allocator: a tenth of dlmalloc's code, and the module is single-threaded.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
// SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one thread.
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

pub mod batch;
pub mod input;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use js_sys::{Function, JsString, Object, Promise, Reflect, Uint8Array, Uint32Array};
use steadyllm_core::call::{
    AttemptPlan, Call, CallError, ClientState, Failure, Outcome, Phase, RetryHints, Step,
    StreamFault,
};
use steadyllm_core::decode::{ApiError, Dialect, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::http::{Endpoint, RequestHead};
use steadyllm_core::json::{BufferTooSmall, Writer};
use steadyllm_core::request::{ChatRequest, RequestError};
use steadyllm_core::sse::{SseItem, SseParser};
use steadyllm_core::time::Instant;
use wasm_bindgen::prelude::*;
use web_sys::{
    AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, Request, RequestInit,
    Response,
};

use crate::batch::Batch;
use crate::input::owned;

/// Largest SSE event accepted (a line or an event beyond it fails the attempt as malformed).
pub const EVENT_CAPACITY: usize = 64 * 1024;
/// Largest error body read from a non-2xx answer.
const ERROR_BODY_CAP: usize = 64 * 1024;

#[wasm_bindgen(inline_js = r#"
const TIMEOUT = 1, ABORTED = 2, FAILED = 3;
// Settles with p's value, or rejects with TIMEOUT after ms, ABORTED when signal aborts,
// FAILED when p rejects (whatever it rejected with). Cleans up its timer and listener.
export function race(p, ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(ABORTED); return; }
    let timer;
    const done = (f, v) => {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      f(v);
    };
    const onAbort = () => done(reject, ABORTED);
    signal.addEventListener("abort", onAbort);
    // setTimeout fires at once beyond 2^31-1 ms: longer waits only end by p or the signal.
    if (ms < 2147483647) timer = setTimeout(() => done(reject, TIMEOUT), Math.max(0, ms));
    p.then((v) => done(resolve, v), () => done(reject, FAILED));
  });
}
export function never() { return new Promise(() => {}); }
export function now() { return performance.now(); }
export function fetchRequest(req) { return fetch(req); }
// One read of the body: its bytes, or null at the end.
export function readChunk(reader) { return reader.read().then((r) => (r.done ? null : r.value)); }
// The response headers as "name: value\n" lines (names are lower case).
export function headerLines(resp) {
  let s = "";
  resp.headers.forEach((v, k) => { s += k + ": " + v + "\n"; });
  return s;
}
export function cancelReader(reader) { reader.cancel().catch(() => {}); }
"#)]
extern "C" {
    fn race(p: &Promise, ms: f64, signal: &AbortSignal) -> Promise;
    fn never() -> Promise;
    #[wasm_bindgen(js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_name = fetchRequest)]
    fn fetch_request(req: &Request) -> Promise;
    #[wasm_bindgen(js_name = readChunk)]
    fn read_chunk(reader: &ReadableStreamDefaultReader) -> Promise;
    #[wasm_bindgen(js_name = headerLines)]
    fn header_lines(resp: &Response) -> String;
    #[wasm_bindgen(js_name = cancelReader)]
    fn cancel_reader(reader: &ReadableStreamDefaultReader);
}

/// How a raced wait ended.
enum Raced {
    Value(JsValue),
    Timeout,
    Aborted,
    Failed,
}

async fn race_until(p: &Promise, until: Instant, signal: &AbortSignal) -> Raced {
    let ms = until.saturating_since(now()).as_millis() as f64;
    match wasm_bindgen_futures::JsFuture::from(race(p, ms, signal)).await {
        Ok(v) => Raced::Value(v),
        Err(e) => match e.as_f64() {
            Some(1.0) => Raced::Timeout,
            Some(2.0) => Raced::Aborted,
            _ => Raced::Failed,
        },
    }
}

fn now() -> Instant {
    // performance.now() is a non-negative f64 of milliseconds; `as` saturates (NaN → 0).
    Instant::from_millis(performance_now() as u64)
}

/// Why a call stopped without the engine deciding.
enum Stop {
    Aborted,
    Invalid(String),
}

/// What one call remembers for its result.
struct CallCtx<'c> {
    sink: &'c Function,
    signal: &'c AbortSignal,
    batch: Batch,
    /// The last error object the server sent (status, message, type, code, param).
    server_error: Option<(u16, [Option<String>; 4])>,
    /// Status of the last attempt that got a response head.
    last_status: Option<u16>,
    /// Reused read buffer.
    buf: Vec<u8>,
}

impl CallCtx<'_> {
    fn flush(&mut self) {
        flush(&mut self.batch, self.sink);
    }

    fn remember_error(&mut self, status: u16, e: &ApiError<'_>) {
        self.server_error = Some((status, error_fields(e)));
    }
}

/// An error object's message, type, code and param, owned.
fn error_fields(e: &ApiError<'_>) -> [Option<String>; 4] {
    [
        Some(owned(e.message)),
        e.kind.map(owned),
        e.code.map(owned),
        e.param.map(owned),
    ]
}

fn flush(batch: &mut Batch, sink: &Function) {
    if batch.is_empty() {
        return;
    }
    // SAFETY: the view is only valid until wasm memory grows or `batch.words` changes (the
    // string is made first, so nothing here runs between the view and the call). The
    // sink (the wrapper's `decodeBatch`) copies what it needs into JS objects before it
    // returns and calls nothing in this module; after the call the view is not used again.
    // (A copy, `Uint32Array::from`, costs ten times as much per batch.)
    let text = JsString::from(batch.text.as_str());
    let words = unsafe { Uint32Array::view(batch.words.as_slice()) };
    // The sink is the wrapper's own queue function; if it throws there is no one to tell.
    let _ = sink.call2(&JsValue::UNDEFINED, &words, &text);
    batch.clear();
}

fn set(o: &JsValue, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

/// The plain object a failed call rejects with.
fn error_object(
    reason: &str,
    failure: Option<Failure>,
    attempts: u32,
    message: &str,
    ctx: Option<&CallCtx<'_>>,
) -> JsValue {
    let o = Object::new();
    set(&o, "reason", &reason.into());
    set(&o, "attempts", &attempts.into());
    if !message.is_empty() {
        set(&o, "message", &message.into());
    }
    if let Some(f) = failure {
        // A code of `batch::failure_code`; the wrapper names it (one table, in JS).
        set(&o, "failure", &batch::failure_code(Some(f)).into());
        if let Failure::Status(s) = f {
            set(&o, "status", &s.into());
        }
    }
    if let Some((status, fields)) = ctx.and_then(|c| c.server_error.as_ref()) {
        let e = Object::new();
        for (k, v) in ["message", "type", "code", "param"].iter().zip(fields) {
            if let Some(v) = v {
                set(&e, k, &v.as_str().into());
            }
        }
        set(&o, "serverError", &e);
        if failure.is_none() || !matches!(failure, Some(Failure::Status(_))) {
            set(&o, "serverErrorStatus", &(*status).into());
        }
    }
    if let (None, Some(s)) = (failure, ctx.and_then(|c| c.last_status)) {
        set(&o, "status", &s.into());
    }
    o.into()
}

/// What a cancelled call rejects with (the wrapper adds the signal's reason).
fn aborted(attempts: u32, ctx: &CallCtx<'_>) -> JsValue {
    error_object("aborted", None, attempts, "", Some(ctx))
}

fn call_error_object(
    e: &CallError,
    attempts: u32,
    deadline_passed: bool,
    ctx: &CallCtx<'_>,
) -> JsValue {
    let (reason, failure) = match *e {
        // A read cut short by the total deadline fails as a timeout of its phase; the engine
        // then reports the partial output or the exhausted attempts. For the caller it was
        // the deadline.
        CallError::PartialOutput {
            last: last @ Failure::Timeout(_),
            ..
        }
        | CallError::RetriesExhausted {
            last: last @ Failure::Timeout(_),
            ..
        } if deadline_passed => ("deadline_exceeded", Some(last)),
        CallError::DeadlineExceeded { last, .. } => ("deadline_exceeded", last),
        CallError::RetriesExhausted { last, .. } => ("retries_exhausted", Some(last)),
        CallError::BudgetExhausted { last } => ("budget_exhausted", Some(last)),
        CallError::NotRetryable { last } => ("not_retryable", Some(last)),
        CallError::PartialOutput { last, .. } => ("partial_output", Some(last)),
        CallError::RetryAfterTooLong { .. } => ("retry_after_too_long", None),
        CallError::NoEndpointAvailable => ("no_endpoint_available", None),
    };
    let requested = match *e {
        CallError::RetryAfterTooLong { requested } => requested.as_millis(),
        _ => 0,
    };
    let o = error_object(reason, failure, attempts, "", Some(ctx));
    if requested > 0 {
        set(&o, "retryAfterMs", &(requested as f64).into());
    }
    o
}

/// One `Client`'s engine: options and the state its calls share. Made with [`Engine::new`],
/// then [`Engine::add_endpoint`] for each endpoint (primary first), before the first call.
#[wasm_bindgen]
pub struct Engine {
    shared: Rc<Shared>,
}

struct Shared {
    config: steadyllm_core::call::CallConfig,
    model: String,
    endpoints: Vec<input::EndpointSpec>,
    state: RefCell<ClientState>,
    seed: Cell<u64>,
}

#[wasm_bindgen]
impl Engine {
    /// An engine with the settings in `numbers` (see [`input::cfg`]; [`input::UNSET`] keeps a
    /// default) and a default `model`; the seed words come from `crypto.getRandomValues`.
    /// Throws an `Error` saying what is wrong.
    #[wasm_bindgen(constructor)]
    pub fn new(
        numbers: &[u32],
        model: String,
        seed_lo: u32,
        seed_hi: u32,
    ) -> Result<Engine, JsError> {
        let config = input::config(numbers).map_err(JsError::new)?;
        Ok(Engine {
            shared: Rc::new(Shared {
                state: RefCell::new(ClientState::new(0, &config)),
                config,
                model,
                endpoints: Vec::new(),
                seed: Cell::new(u64::from(seed_hi) << 32 | u64::from(seed_lo)),
            }),
        })
    }

    /// Adds an endpoint (see [`input::EndpointSpec::new`]; `headers` is `name\nvalue\n…`).
    /// Throws when it is invalid (the message never holds the key or a header value), when
    /// there are already four, or once a call has started.
    pub fn add_endpoint(
        &mut self,
        base_url: String,
        api_key: Option<String>,
        model: Option<String>,
        anthropic: bool,
        headers: &str,
    ) -> Result<(), JsError> {
        let dialect = if anthropic {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        };
        let spec = input::EndpointSpec::new(base_url, api_key, model, dialect, headers)
            .map_err(|e| JsError::new(&e))?;
        let Some(shared) = Rc::get_mut(&mut self.shared) else {
            return Err(JsError::new("endpoints are fixed once a call has started"));
        };
        if shared.endpoints.len() >= input::ENDPOINTS {
            return Err(JsError::new("at most 4 endpoints"));
        }
        if !spec.has_model() && shared.model.is_empty() {
            return Err(JsError::new(
                "no model: set options.model or the endpoint's model",
            ));
        }
        shared.endpoints.push(spec);
        shared.state = RefCell::new(ClientState::new(shared.endpoints.len(), &shared.config));
        Ok(())
    }

    /// Runs one call of `request`. Each network read's items and the engine's notices go to
    /// `sink(words, text)` (see [`batch`]). Resolves with `{ attempts, endpoint }`; rejects
    /// with the error object described in the crate docs. `signal` aborting ends the call at
    /// once (reason `"aborted"`) and aborts the fetch in flight.
    pub fn chat(&self, request: ChatInput, sink: Function, signal: AbortSignal) -> Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            run(&shared, &request.spec, &sink, &signal).await
        })
    }

    /// Per endpoint, `1` available now, `2` breaker open (cooling down), `0` otherwise
    /// (rate-limit paused, or a half-open probe in flight).
    pub fn health(&self) -> Vec<u8> {
        let state = self.shared.state.borrow();
        let t = now();
        (0..state.len())
            .map(|i| match state.endpoint(i) {
                Some(e) if e.is_available(t) => 1,
                Some(e) if e.is_cooling_down(t) => 2,
                _ => 0,
            })
            .collect()
    }
}

/// A request, built field by field by the wrapper (see [`input::RequestSpec`]); each part or
/// tool call goes to the last message added.
#[wasm_bindgen]
pub struct ChatInput {
    spec: input::RequestSpec,
}

#[wasm_bindgen]
impl ChatInput {
    /// An empty request for `model` (empty: the client's default).
    #[wasm_bindgen(constructor)]
    pub fn new(model: String) -> ChatInput {
        ChatInput {
            spec: input::RequestSpec::new(model),
        }
    }

    /// Adds a message; `role`: 0 system, 1 developer, 2 user, 3 assistant, 4 tool.
    /// `false` for an unknown role.
    pub fn message(
        &mut self,
        role: u32,
        text: Option<String>,
        name: Option<String>,
        tool_call_id: Option<String>,
    ) -> bool {
        match input::role(role) {
            Some(r) => {
                self.spec.message(r, text, name, tool_call_id);
                true
            }
            None => false,
        }
    }

    /// Adds a text part to the last message.
    pub fn text_part(&mut self, text: String) -> bool {
        self.spec.text_part(text)
    }

    /// Adds an image part to the last message.
    pub fn image_part(&mut self, url: String, detail: Option<String>) -> bool {
        self.spec.image_part(url, detail)
    }

    /// Adds a tool call to the last message.
    pub fn tool_call(&mut self, id: String, name: String, arguments: String) -> bool {
        self.spec.tool_call(id, name, arguments)
    }

    /// Adds a stop sequence.
    pub fn stop(&mut self, s: String) {
        self.spec.stop(s);
    }

    /// Adds a tool (`parameters`: JSON Schema as JSON text).
    pub fn tool(&mut self, name: String, description: Option<String>, parameters: Option<String>) {
        self.spec.tool(name, description, parameters);
    }

    /// Tool choice: 0 auto, 1 none, 2 required, 3 the function `name`.
    pub fn tool_choice(&mut self, kind: u32, name: Option<String>) -> bool {
        self.spec.tool_choice(kind, name)
    }

    /// Numbers: token limits (0: unset), temperature and top-p (NaN: unset; the wrapper
    /// checks they are finite), seed (a safe integer; NaN: unset).
    pub fn numbers(
        &mut self,
        max_tokens: u32,
        max_completion_tokens: u32,
        temperature: f64,
        top_p: f64,
        seed: f64,
    ) {
        let nz = |v: u32| (v != 0).then_some(v);
        let f = |v: f64| (!v.is_nan()).then_some(v as f32);
        self.spec.max_tokens = nz(max_tokens);
        self.spec.max_completion_tokens = nz(max_completion_tokens);
        self.spec.temperature = f(temperature);
        self.spec.top_p = f(top_p);
        // `as` saturates; the wrapper only passes safe integers.
        self.spec.seed = (!seed.is_nan()).then_some(seed as i64);
    }

    /// The end user's id.
    pub fn user(&mut self, user: String) {
        self.spec.user = Some(user);
    }
}

async fn run(
    shared: &Shared,
    spec: &input::RequestSpec,
    sink: &Function,
    signal: &AbortSignal,
) -> Result<JsValue, JsValue> {
    let invalid = |m: &str| error_object("invalid", None, 0, m, None);
    if shared.endpoints.is_empty() {
        return Err(invalid("no endpoints"));
    }
    let parts = spec.lend_parts();
    let lent = spec.lend(&parts).map_err(invalid)?;
    let req = spec.chat_request(&lent, &shared.model);
    let mut endpoints = Vec::with_capacity(shared.endpoints.len());
    for e in &shared.endpoints {
        // Validated when the engine was made.
        endpoints.push(
            e.endpoint()
                .map_err(|_| invalid("an endpoint became invalid"))?,
        );
    }
    // Every dialect in use must be able to carry the request before anything is sent.
    for ep in &endpoints {
        let mut r = req;
        if let Some(m) = ep.model {
            r.model = m;
        }
        r.body_len(ep.dialect)
            .map_err(|e| invalid(&request_error_text(e)))?;
    }
    let seed = shared
        .seed
        .get()
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    shared.seed.set(seed);
    let mut call = Call::new(
        &shared.config,
        req.profile(),
        &mut shared.state.borrow_mut(),
        now(),
        seed,
    );
    let mut ctx = CallCtx {
        sink,
        signal,
        batch: Batch::default(),
        server_error: None,
        last_status: None,
        buf: Vec::new(),
    };
    let mut sse: Box<SseParser<EVENT_CAPACITY>> = Box::new(SseParser::new());
    loop {
        let step = call.next(&mut shared.state.borrow_mut(), now());
        while let Some(e) = call.poll_event() {
            ctx.batch.engine(&e, call.attempts() + 1);
        }
        ctx.flush();
        match step {
            Step::Attempt(plan) => {
                let spec_ep = shared.endpoints.get(plan.endpoint);
                let outcome = attempt(&mut ctx, &mut sse, &plan, &req, &endpoints, spec_ep).await;
                match outcome {
                    Ok(o) => call.finish_attempt(&mut shared.state.borrow_mut(), o, now()),
                    Err(Stop::Aborted) => {
                        return Err(aborted(call.attempts(), &ctx));
                    }
                    Err(Stop::Invalid(m)) => return Err(invalid(&m)),
                }
            }
            Step::Sleep(until) => {
                if let Raced::Aborted = race_until(&never(), until, signal).await {
                    return Err(aborted(call.attempts(), &ctx));
                }
            }
            // The step's events were handed over above.
            Step::Done(Ok(summary)) => {
                let o = Object::new();
                set(&o, "attempts", &summary.attempts.into());
                set(&o, "endpoint", &(summary.endpoint as u32).into());
                return Ok(o.into());
            }
            Step::Done(Err(e)) => {
                let passed = now() >= call.deadline();
                return Err(call_error_object(&e, call.attempts(), passed, &ctx));
            }
        }
    }
}

fn request_error_text(e: RequestError) -> String {
    String::from(match e {
        RequestError::BufferTooSmall(_) => "request too large",
        RequestError::NonFiniteNumber => "temperature/topP must be finite and below 1e12",
        RequestError::InvalidToolArguments => {
            "tool call arguments are not valid JSON (Anthropic needs an object)"
        }
        RequestError::MissingToolCallId => "tool message without toolCallId",
        RequestError::UnsupportedDialect => "this build has no Anthropic dialect",
    })
}

/// Writes with a growing buffer: `f` reports the size it needs when the buffer is too small.
fn write_growing<E>(
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    too_small: impl Fn(&E) -> Option<BufferTooSmall>,
) -> Result<Vec<u8>, E> {
    let mut buf = alloc::vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) => match too_small(&e) {
                Some(t) if t.required > buf.len() => buf.resize(t.required, 0),
                _ => return Err(e),
            },
        }
    }
}

/// The absolute URL of an endpoint's request.
fn url_of(ep: &Endpoint<'_>) -> String {
    let mut buf = [0u8; 2048];
    let mut w = Writer::new(&mut buf);
    w.raw(if ep.base_url.is_tls() {
        b"https://"
    } else {
        b"http://"
    });
    ep.base_url.write_host(&mut w);
    ep.base_url.write_path(ep.dialect, &mut w);
    match w.finish() {
        Ok(n) => String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned(),
        // Longer than any sane base URL; fetch will refuse the empty URL as a connect error.
        Err(_) => String::new(),
    }
}

/// Headers the browser sets itself or forbids scripts to set.
fn browser_owned(name: &str) -> bool {
    [
        "host",
        "content-length",
        "connection",
        "user-agent",
        "accept-encoding",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

async fn attempt(
    ctx: &mut CallCtx<'_>,
    sse: &mut SseParser<EVENT_CAPACITY>,
    plan: &AttemptPlan,
    request: &ChatRequest<'_>,
    endpoints: &[Endpoint<'_>],
    spec: Option<&input::EndpointSpec>,
) -> Result<Outcome, Stop> {
    let none = RetryHints::default();
    let (Some(ep), Some(spec)) = (endpoints.get(plan.endpoint), spec) else {
        return Ok(Outcome::failed(Failure::Connect, 0, none));
    };
    let mut req = *request;
    if let Some(m) = ep.model {
        req.model = m;
    }
    let body = write_growing(
        |b| req.write_body(ep.dialect, b),
        |e| match e {
            RequestError::BufferTooSmall(t) => Some(*t),
            _ => None,
        },
    )
    .map_err(|e| Stop::Invalid(request_error_text(e)))?;
    let extra: Vec<(&str, &str)> = spec
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut head = RequestHead::new(ep, body.len(), true);
    head.retry_count = plan.retry_count;
    head.extra_headers = &extra;
    let head = write_growing(
        |b| head.write(b),
        |e| match e {
            steadyllm_core::http::HeadError::BufferTooSmall(t) => Some(*t),
            _ => None,
        },
    )
    .map_err(|e| {
        Stop::Invalid(String::from(match e {
            steadyllm_core::http::HeadError::Header(h) => h.as_str(),
            steadyllm_core::http::HeadError::BufferTooSmall(_) => "request head too large",
        }))
    })?;

    let headers = Headers::new().map_err(|_| Stop::Invalid("Headers unavailable".into()))?;
    // The core wrote `Name: value\r\n` lines after the request line; names and values are
    // validated, so the first `:` ends the name.
    let head_text = core::str::from_utf8(&head).unwrap_or_default();
    for line in head_text.lines().skip(1) {
        if let Some(colon) = line.find(':') {
            let (n, v) = (&line[..colon], line[colon + 1..].trim_ascii());
            if !n.is_empty() && !browser_owned(n) {
                let _ = headers.append(n, v);
            }
        }
    }
    if ep.dialect == Dialect::Anthropic {
        // Anthropic refuses cross-origin calls from pages without this acknowledgement.
        let _ = headers.append("anthropic-dangerous-direct-browser-access", "true");
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    let body_text = String::from_utf8(body).unwrap_or_default();
    init.set_body(&JsValue::from_str(&body_text));
    let controller =
        AbortController::new().map_err(|_| Stop::Invalid("AbortController unavailable".into()))?;
    init.set_signal(Some(&controller.signal()));
    let url = url_of(ep);
    let Ok(request) = Request::new_with_str_and_init(&url, &init) else {
        return Ok(Outcome::failed(Failure::Connect, 0, none));
    };

    // In a browser, connecting is part of waiting for the response head: fetch tells nothing
    // in between, so the first-byte timeout covers both (the connect timeout is unused).
    let sent = now();
    let head_by = sent.saturating_add(plan.first_byte).min(plan.deadline);
    let response = match race_until(&fetch_request(&request), head_by, ctx.signal).await {
        Raced::Value(v) => match v.dyn_into::<Response>() {
            Ok(r) => r,
            Err(_) => return Ok(Outcome::failed(Failure::Connect, 0, none)),
        },
        Raced::Timeout => {
            controller.abort();
            return Ok(Outcome::failed(Failure::Timeout(Phase::FirstByte), 0, none));
        }
        Raced::Aborted => {
            controller.abort();
            return Err(Stop::Aborted);
        }
        Raced::Failed => return Ok(Outcome::failed(Failure::Connect, 0, none)),
    };
    let status = response.status();
    ctx.last_status = Some(status);
    let mut hints = RetryHints::default();
    for line in header_lines(&response).lines() {
        if let Some(colon) = line.find(':') {
            hints.observe(&line[..colon], line[colon + 1..].trim_ascii().as_bytes());
        }
    }
    let Some(body) = response.body() else {
        let f = if (200..300).contains(&status) {
            Failure::Stream(StreamFault::Truncated)
        } else {
            Failure::Status(status)
        };
        return Ok(Outcome::failed(f, 0, hints));
    };
    let Ok(reader) = body.get_reader().dyn_into::<ReadableStreamDefaultReader>() else {
        return Ok(Outcome::failed(
            Failure::Stream(StreamFault::Network),
            0,
            hints,
        ));
    };
    let first_token_at = sent.saturating_add(plan.first_token).min(plan.deadline);

    if !(200..300).contains(&status) {
        // A small error body: read what arrives in time, then parse it.
        let mut text = Vec::new();
        while text.len() < ERROR_BODY_CAP {
            let at = now().saturating_add(plan.idle).min(plan.deadline);
            match race_until(&read_chunk(&reader), at, ctx.signal).await {
                Raced::Value(v) if !v.is_null() => {
                    let chunk = Uint8Array::new(&v);
                    let start = text.len();
                    let n = (chunk.length() as usize).min(ERROR_BODY_CAP - start);
                    text.resize(start + n, 0);
                    if let Some(dst) = text.get_mut(start..) {
                        chunk.subarray(0, n as u32).copy_to(dst);
                    }
                }
                Raced::Aborted => {
                    controller.abort();
                    return Err(Stop::Aborted);
                }
                _ => break,
            }
        }
        controller.abort();
        if let Ok(t) = core::str::from_utf8(&text)
            && let Ok(e) = ApiError::parse(t)
        {
            hints.insufficient_quota = e.is_insufficient_quota();
            ctx.remember_error(status, &e);
        }
        return Ok(Outcome::failed(Failure::Status(status), 0, hints));
    }

    sse.reset();
    let mut decoder = StreamDecoder::new(ep.dialect);
    let mut delivered = 0u64;
    let mut got_content = false;
    let mut server_error = false;
    loop {
        let idle_at = now().saturating_add(plan.idle);
        let (at, phase) = if !got_content && first_token_at < idle_at {
            (first_token_at, Phase::FirstToken)
        } else {
            (idle_at.min(plan.deadline), Phase::Idle)
        };
        let chunk = match race_until(&read_chunk(&reader), at, ctx.signal).await {
            Raced::Value(v) => v,
            Raced::Timeout => {
                controller.abort();
                return Ok(Outcome::failed(Failure::Timeout(phase), delivered, hints));
            }
            Raced::Aborted => {
                controller.abort();
                return Err(Stop::Aborted);
            }
            Raced::Failed => {
                controller.abort();
                return Ok(Outcome::failed(
                    Failure::Stream(StreamFault::Network),
                    delivered,
                    hints,
                ));
            }
        };
        if chunk.is_null() {
            sse.finish();
            let complete = decoder.finish() == StreamEnd::Complete;
            return Ok(stream_end(complete, server_error, delivered, hints));
        }
        let chunk = Uint8Array::new(&chunk);
        ctx.buf.resize(chunk.length() as usize, 0);
        chunk.copy_to(&mut ctx.buf);
        let fed = feed(sse, &mut decoder, &ctx.buf, &mut ctx.batch);
        delivered += fed.delivered;
        got_content |= fed.content;
        if let Some((status, e)) = fed.server_error {
            server_error = true;
            ctx.server_error = Some((status, e));
        }
        ctx.flush();
        if let Some(f) = fed.failure {
            controller.abort();
            return Ok(Outcome::failed(Failure::Stream(f), delivered, hints));
        }
        if decoder.is_done() {
            // The answer is complete; whatever follows the end marker is not needed.
            cancel_reader(&reader);
            sse.finish();
            decoder.finish();
            return Ok(stream_end(true, server_error, delivered, hints));
        }
    }
}

/// How a stream that ended ended: an error event fails it even after the end marker; no end
/// marker is a truncation.
fn stream_end(complete: bool, server_error: bool, delivered: u64, hints: RetryHints) -> Outcome {
    if server_error {
        Outcome::failed(Failure::Stream(StreamFault::ServerError), delivered, hints)
    } else if complete {
        Outcome::completed(delivered, hints)
    } else {
        Outcome::failed(Failure::Stream(StreamFault::Truncated), delivered, hints)
    }
}

/// What one read produced.
#[derive(Default)]
struct Fed {
    delivered: u64,
    content: bool,
    failure: Option<StreamFault>,
    server_error: Option<(u16, [Option<String>; 4])>,
}

/// Feeds one read through the parser and decoder into `batch`. Stops at the end marker or at
/// the first malformed or oversized event (items before it stay in `batch`).
fn feed<const N: usize>(
    sse: &mut SseParser<N>,
    decoder: &mut StreamDecoder,
    bytes: &[u8],
    batch: &mut Batch,
) -> Fed {
    let mut fed = Fed::default();
    let mut rest = bytes;
    loop {
        match sse.feed(&mut rest) {
            Ok(Some(SseItem::Event(ev))) => {
                let r = decoder.decode(ev.data, |item| {
                    match item {
                        StreamItem::Content { text, .. }
                        | StreamItem::Reasoning { text, .. }
                        | StreamItem::Refusal { text, .. } => {
                            fed.delivered += text.decoded_len() as u64;
                            fed.content = true;
                        }
                        StreamItem::ToolCall(t) => {
                            fed.delivered += t.arguments.decoded_len().max(1) as u64;
                            fed.content = true;
                        }
                        StreamItem::Error(e) => fed.server_error = Some((200, error_fields(&e))),
                        _ => {}
                    }
                    batch.item(&item);
                });
                if r.is_err() {
                    fed.failure = Some(StreamFault::Malformed);
                    return fed;
                }
                if decoder.is_done() {
                    return fed;
                }
            }
            Ok(Some(SseItem::Retry(_))) => {}
            Ok(None) => return fed,
            Err(_) => {
                fed.failure = Some(StreamFault::Malformed);
                return fed;
            }
        }
    }
}

/// The SSE parser and decoder over bytes the caller supplies (an SSE body from anywhere), for
/// the JS `StreamDecoder` and the in-browser benchmark.
#[wasm_bindgen]
pub struct Decoder {
    sse: Box<SseParser<EVENT_CAPACITY>>,
    decoder: StreamDecoder,
    batch: Batch,
    failed: Option<StreamFault>,
    /// The input copied in, reused (one copy, no allocation per push).
    buf: Vec<u8>,
}

#[wasm_bindgen]
impl Decoder {
    /// A decoder for OpenAI chunks, or Anthropic events when `anthropic`.
    #[wasm_bindgen(constructor)]
    pub fn new(anthropic: bool) -> Decoder {
        Decoder {
            sse: Box::new(SseParser::new()),
            decoder: StreamDecoder::new(if anthropic {
                Dialect::Anthropic
            } else {
                Dialect::OpenAi
            }),
            batch: Batch::default(),
            failed: None,
            buf: Vec::new(),
        }
    }

    /// Decodes `bytes` and hands what they complete to `sink(words, text)`. Returns 0, or
    /// after a failure (which ends decoding; later calls return it again) 1 malformed event,
    /// 2 server error event, 3 the end marker already came.
    pub fn push(&mut self, bytes: &Uint8Array, sink: &Function) -> u32 {
        if let Some(f) = self.failed {
            return fault_code(f);
        }
        if self.decoder.is_done() {
            return 3;
        }
        self.buf.resize(bytes.length() as usize, 0);
        bytes.copy_to(&mut self.buf);
        let fed = feed(&mut self.sse, &mut self.decoder, &self.buf, &mut self.batch);
        flush(&mut self.batch, sink);
        if fed.server_error.is_some() {
            self.failed = Some(StreamFault::ServerError);
        }
        if let Some(f) = fed.failure {
            self.failed = Some(f);
        }
        self.failed.map(fault_code).unwrap_or(0)
    }

    /// Ends the stream: `true` when the end marker came. Resets for another stream.
    pub fn end(&mut self) -> bool {
        self.sse.finish();
        self.failed = None;
        self.decoder.finish() == StreamEnd::Complete
    }
}

fn fault_code(f: StreamFault) -> u32 {
    match f {
        StreamFault::ServerError => 2,
        _ => 1,
    }
}
