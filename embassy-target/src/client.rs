//! The client: runs the core's `Call` engine, one attempt at a time, over the network.

use core::cell::RefCell;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{NoopRawMutex, RawMutex};
use embassy_time::{Instant, Timer};
use embedded_io_async::{Read, Write};
use embedded_nal_async::{Dns, TcpConnect};
use steadyllm_core::attempt::AttemptTimer;
use steadyllm_core::call::{
    AttemptPlan, Call, CallConfig, CallError, CallEvent, ClientState, Failure, MAX_ENDPOINTS,
    Outcome, Phase, ResponseFault, Step, Summary,
};
use steadyllm_core::decode::{ApiError, StreamDecoder, StreamItem};
use steadyllm_core::hints::RetryHints;
use steadyllm_core::http::{Endpoint, RequestHead};
use steadyllm_core::request::ChatRequest;
use steadyllm_core::sse::SseParser;
use steadyllm_core::time;
use steadyllm_core::tools::{ToolCallAssembler, ToolCallStorage};
use steadyllm_core::transport::{self, BodyEnd, BodyKind};

use crate::attempt::{self, AttemptFailure, Conn, StreamSink, TimeoutKind, now};
use crate::connect;

/// Breakers, rate-limit pauses and the retry budget, shared by every [`Client`] of the same
/// endpoints. `M` is the mutex kind: [`NoopRawMutex`] when all tasks run on one executor,
/// `CriticalSectionRawMutex` across executors or interrupts.
pub struct SharedState<M: RawMutex = NoopRawMutex, const E: usize = MAX_ENDPOINTS> {
    inner: Mutex<M, RefCell<ClientState<E>>>,
}

impl<M: RawMutex, const E: usize> SharedState<M, E> {
    /// State for `endpoints` endpoints (at most `E`).
    pub fn new(endpoints: usize, config: &CallConfig) -> Self {
        SharedState {
            inner: Mutex::new(RefCell::new(ClientState::new(endpoints, config))),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ClientState<E>) -> R) -> R {
        self.inner.lock(|c| f(&mut c.borrow_mut()))
    }

    /// A copy of the current state (for logs and tests).
    pub fn snapshot(&self) -> ClientState<E> {
        self.inner.lock(|c| c.borrow().clone())
    }
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChatError {
    /// The request could not be written into the caller's buffer (too small, bad values).
    Request(steadyllm_core::request::RequestError),
    /// The request head could not be written.
    Head(steadyllm_core::http::HeadError),
    /// The engine gave up; the reason says why (deadline, budget, partial output …).
    Call(CallError),
    /// An `https://` endpoint without TLS: build with the `tls` feature, enable it with
    /// `Client::with_tls` (its `TlsSettings`), and give each call TLS record buffers
    /// (`Buffers::with_tls`).
    TlsNotConfigured,
    /// A [`crate::DeltaQueue`] too small for one network read's items; some were lost.
    StreamQueueFull,
}

impl core::fmt::Display for ChatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChatError::Request(e) => write!(f, "{e}"),
            ChatError::Head(e) => write!(f, "{e}"),
            ChatError::Call(e) => write!(f, "{e}"),
            ChatError::TlsNotConfigured => {
                f.write_str("https:// endpoint, but TLS is not configured for this client")
            }
            ChatError::StreamQueueFull => {
                f.write_str("the delta queue is smaller than one read's items; make it larger")
            }
        }
    }
}

impl core::error::Error for ChatError {}

/// What the caller sees while a call runs. New kinds may be added: match with a `_` arm.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'e> {
    /// A decoded item of the answer (content, reasoning, tool-call fragment, finish, usage…),
    /// delivered as soon as its event is complete.
    Item(StreamItem<'e>),
    /// A decision of the engine: attempt started, waiting, failing over, endpoint cooling
    /// down, budget exhausted, discard what was shown (restart mode).
    Engine(CallEvent),
    /// The server's error object for a non-2xx answer (when its body was JSON).
    ServerError {
        /// HTTP status.
        status: u16,
        /// The parsed error.
        error: ApiError<'e>,
    },
    /// The server redirected (a POST is not followed; the attempt fails with
    /// `ResponseFault::Redirected`): where it pointed.
    Redirected {
        /// HTTP status (301, 302, 307, 308…).
        status: u16,
        /// The `Location` header, when it was text.
        location: &'e str,
    },
}

/// An answer collected by [`Client::chat_collect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collected<'o> {
    /// How the call went.
    pub summary: Summary,
    /// The answer's text.
    pub text: &'o str,
    /// The answer did not fit the buffer.
    pub truncated: bool,
}

/// The caller's buffers for one call.
pub struct Buffers<'b> {
    body: &'b mut [u8],
    head: &'b mut [u8],
    response: &'b mut [u8],
    tls_read: &'b mut [u8],
    tls_write: &'b mut [u8],
}

impl<'b> Buffers<'b> {
    /// `body` receives the JSON body (its size bounds the request), `head` the request head
    /// (512 bytes is plenty), `response` the response head and body as they are read
    /// (2 KiB or more).
    pub fn new(body: &'b mut [u8], head: &'b mut [u8], response: &'b mut [u8]) -> Self {
        Buffers {
            body,
            head,
            response,
            tls_read: &mut [],
            tls_write: &mut [],
        }
    }

    /// TLS record buffers for `https://` endpoints: 16 640 bytes for reading (the largest
    /// record a server may send) and a few KiB for writing.
    pub fn with_tls(mut self, read: &'b mut [u8], write: &'b mut [u8]) -> Self {
        self.tls_read = read;
        self.tls_write = write;
        self
    }
}

/// A chat client over an `embedded-nal-async` stack, for a list of endpoints (primary first).
///
/// `N` is the SSE parser capacity: the largest event accepted (4096 is plenty for chat).
/// `https://` endpoints need the `tls` feature and `Client::with_tls`; plain connections
/// are kept alive and reused for the next call to the same endpoint.
pub struct Client<
    'a,
    T: TcpConnect,
    D: Dns,
    M: RawMutex = NoopRawMutex,
    const E: usize = MAX_ENDPOINTS,
    const N: usize = 4096,
> {
    tcp: &'a T,
    dns: &'a D,
    endpoints: &'a [Endpoint<'a>],
    shared: &'a SharedState<M, E>,
    config: CallConfig,
    seed: u64,
    sse: SseParser<N>,
    /// A kept-alive connection and the endpoint it goes to.
    idle_conn: Option<(usize, T::Connection<'a>)>,
    /// The decoder of the current attempt (here rather than in the call's future, which stays
    /// smaller).
    decoder: StreamDecoder,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsSettings<'a>>,
    /// Model name prefixes that mark a reasoning model ([`Client::with_reasoning_models`]).
    reasoning_models: &'a [&'a str],
    /// The current call's Responses id, kept to resume its stream.
    #[cfg(feature = "responses")]
    response_id: ResponseId,
}

/// Longest response id kept; a longer one makes the answer not resumable (OpenAI's are about
/// 55 bytes).
#[cfg(feature = "responses")]
const RESPONSE_ID_CAPACITY: usize = 96;

/// A Responses answer's id (`resp_…`), from its `response.created` event. Empty: none (or
/// one too long to keep), so the answer cannot be resumed.
#[cfg(feature = "responses")]
struct ResponseId {
    buf: [u8; RESPONSE_ID_CAPACITY],
    len: usize,
}

#[cfg(feature = "responses")]
impl ResponseId {
    const NONE: ResponseId = ResponseId {
        buf: [0; RESPONSE_ID_CAPACITY],
        len: 0,
    };

    /// Keeps `id` (decoded); one that does not fit is forgotten.
    #[inline(never)]
    fn set(&mut self, id: steadyllm_core::json::JsonStr<'_>) {
        self.len = 0;
        let mut at = 0;
        let mut pieces = id.pieces();
        while let Some(p) = pieces.next_piece() {
            let end = at + p.len();
            let Some(dst) = self.buf.get_mut(at..end) else {
                return;
            };
            dst.copy_from_slice(p.as_bytes());
            at = end;
        }
        self.len = at;
    }

    fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

fn to_embassy(t: time::Instant) -> Instant {
    Instant::from_millis(t.as_millis())
}

struct Sink<'f, F> {
    on_event: &'f mut F,
    /// The attempt's timer: what was delivered, whether content came, the next deadline.
    timer: AttemptTimer,
    server_error: bool,
    /// Where a Responses answer's id goes.
    #[cfg(feature = "responses")]
    id: &'f mut ResponseId,
}

impl<F: FnMut(Event<'_>)> StreamSink for Sink<'_, F> {
    fn on_item(&mut self, item: StreamItem<'_>) {
        self.timer.on_item(&item);
        if let StreamItem::Error(_) = item {
            self.server_error = true;
        }
        #[cfg(feature = "responses")]
        if let StreamItem::Created { id } = item {
            self.id.set(id);
        }
        (self.on_event)(Event::Item(item));
    }

    fn timer(&mut self) -> &mut AttemptTimer {
        &mut self.timer
    }
}

/// One attempt's request as written into the caller's buffers.
struct Wire<'w> {
    head: &'w [u8],
    body: &'w [u8],
    /// Streamed (SSE) answer, or one JSON body.
    stream: bool,
    /// A streamed Responses answer in background mode: the server keeps it, so a broken
    /// stream can be resumed.
    #[cfg(feature = "responses")]
    resumable: bool,
    /// This attempt resumes the answer after this event (a `GET`, events up to it skipped).
    #[cfg(feature = "responses")]
    resume: Option<u32>,
}

/// Writes the head of a resume (`GET …/v1/responses/{id}?stream=true&starting_after=N`, no
/// body); returns its length.
#[cfg(feature = "responses")]
#[inline(never)]
fn prepare_resume(
    ep: &Endpoint<'_>,
    id: &ResponseId,
    after: u32,
    retry_count: u32,
    head: &mut [u8],
) -> Result<usize, ChatError> {
    let mut h = RequestHead::new(ep, 0, true);
    h.retry_count = retry_count;
    steadyllm_core::dialect::responses::write_resume_head(&h, id.as_str(), u64::from(after), head)
        .map_err(ChatError::Head)
}

/// Responses: the server's final verdicts (`response.failed`, `response.incomplete`) as
/// failures the engine does not retry, and the event a broken resumable stream can be resumed
/// after (`id_known`: its id arrived in this call).
#[cfg(feature = "responses")]
#[inline(never)]
fn responses_verdict(
    failure: Option<Failure>,
    read: &attempt::BodyRead,
    resumable: bool,
    id_known: bool,
) -> (Option<Failure>, Option<u32>) {
    use steadyllm_core::decode::StreamEnd;
    let failure = match read.stream_end {
        StreamEnd::Failed => Some(Failure::AnswerFailed),
        StreamEnd::Incomplete => Some(Failure::AnswerIncomplete),
        _ => failure,
    };
    let after = match failure {
        Some(Failure::AnswerFailed | Failure::AnswerIncomplete) | None => None,
        Some(_) if resumable && id_known => read.last_event.and_then(|n| u32::try_from(n).ok()),
        Some(_) => None,
    };
    (failure, after)
}

/// Writes one attempt's body and head into the caller's buffers (the endpoint's model, the
/// plan's retry count); returns their lengths. Out of the async state machine, which would
/// otherwise keep a copy of the request in the call's future.
#[inline(never)]
fn prepare(
    ep: &Endpoint<'_>,
    request: &ChatRequest<'_>,
    retry_count: u32,
    body: &mut [u8],
    head: &mut [u8],
) -> Result<(usize, usize), ChatError> {
    let mut req = *request;
    if let Some(m) = ep.model {
        req.model = m;
    }
    let body_len = req
        .write_body(ep.dialect, body)
        .map_err(ChatError::Request)?;
    let mut h = RequestHead::new(ep, body_len, req.stream);
    h.retry_count = retry_count;
    let head_len = h.write(head).map_err(ChatError::Head)?;
    Ok((body_len, head_len))
}

/// A redirect's `Location`, to the caller (out of the async state machine).
#[inline(never)]
fn report_redirect<F: FnMut(Event<'_>)>(
    f: Failure,
    head: &attempt::Head,
    buf: &[u8],
    on_event: &mut F,
) {
    let location = head
        .location
        .and_then(|(at, len)| buf.get(at..at.saturating_add(len)))
        .and_then(|l| core::str::from_utf8(l).ok());
    if let (Failure::Response(ResponseFault::Redirected { .. }), Some(location)) = (f, location) {
        on_event(Event::Redirected {
            status: head.status,
            location,
        });
    }
}

/// How an attempt whose body was read ends: an error body's status (its error object, when it
/// is JSON, goes to the caller), or the core's verdict on the body
/// ([`transport::body_failure`]); a whole JSON answer is decoded here. Out of the async state
/// machine, where it would cost flash.
#[inline(never)]
fn settle<F: FnMut(Event<'_>)>(
    kind: BodyKind,
    end: Result<(), AttemptFailure>,
    collected: &[u8],
    decoder: &mut StreamDecoder,
    sink: &mut Sink<'_, F>,
    hints: &mut RetryHints,
) -> Option<Failure> {
    if let BodyKind::ErrorBody(status) = kind {
        // The error object, when the body is JSON (a cut-off body gives the status alone).
        let error = core::str::from_utf8(collected)
            .ok()
            .and_then(|t| ApiError::parse(t).ok());
        hints.insufficient_quota = transport::quota_exhausted(error.as_ref(), collected);
        if let Some(error) = error {
            (sink.on_event)(Event::ServerError { status, error });
        }
        return Some(Failure::Status(status));
    }
    let (end, mut malformed) = body_end(end, sink.timer.waiting());
    if end == BodyEnd::Complete && kind == BodyKind::WholeJson {
        // One JSON document, decoded like a chunk ("message" reads like "delta").
        let decoded = core::str::from_utf8(collected)
            .ok()
            .map(|text| attempt::decode_into(decoder, text, sink));
        malformed = !matches!(decoded, Some(Ok(_)));
    }
    transport::body_failure(end, malformed, sink.server_error)
}

/// Starts a call for `request`, with the next seed: out of the async state machine, where it
/// would cost flash.
#[inline(never)]
fn start<M: RawMutex, const E: usize>(
    shared: &SharedState<M, E>,
    config: &CallConfig,
    request: &ChatRequest<'_>,
    seed: &mut u64,
    reasoning_models: &[&str],
    endpoints: &[Endpoint<'_>],
) -> Call {
    *seed = steadyllm_core::rng::next_call_seed(*seed);
    let mut profile = request.profile();
    profile.reasoning = request.is_reasoning_with(reasoning_models, endpoints);
    shared.with(|s| Call::new(config, profile, s, now(), *seed))
}

/// The phase a timeout of kind `k` failed the attempt in; when the total deadline cut the wait
/// short, the phase the attempt was `waiting` in (the attempt timer's, as in the browser).
fn phase(k: TimeoutKind, waiting: Phase) -> Phase {
    match k {
        TimeoutKind::Connect => Phase::Connect,
        TimeoutKind::FirstByte => Phase::FirstByte,
        TimeoutKind::FirstToken => Phase::FirstToken,
        TimeoutKind::Idle => Phase::Idle,
        TimeoutKind::Total => waiting,
    }
}

/// The failure of an attempt that ended before its body: connecting, the handshake, sending,
/// the head; `waiting` is the phase the attempt was in.
fn failure_of(f: AttemptFailure, waiting: Phase) -> Failure {
    match f {
        AttemptFailure::Timeout(k) => Failure::Timeout(phase(k, waiting)),
        AttemptFailure::NameNotResolved => Failure::NameNotResolved,
        AttemptFailure::Response(r) => Failure::Response(r),
        AttemptFailure::Certificate(c) => Failure::Certificate(c),
        AttemptFailure::TlsHandshake => Failure::Tls,
        AttemptFailure::Network(_)
        | AttemptFailure::Protocol
        | AttemptFailure::EventTooLarge
        | AttemptFailure::Malformed
        | AttemptFailure::Truncated
        | AttemptFailure::TlsNotConfigured => Failure::Connect,
    }
}

/// How a 2xx body's read ended, for [`transport::body_failure`]: the end, and whether an
/// event was malformed or too large.
fn body_end(end: Result<(), AttemptFailure>, waiting: Phase) -> (BodyEnd, bool) {
    match end {
        Ok(()) => (BodyEnd::Complete, false),
        Err(AttemptFailure::Timeout(k)) => (BodyEnd::Timeout(phase(k, waiting)), false),
        Err(AttemptFailure::Network(_)) => (BodyEnd::Network, false),
        Err(AttemptFailure::Truncated) => (BodyEnd::EndedEarly, false),
        Err(_) => (BodyEnd::EndedEarly, true),
    }
}

impl<'a, T: TcpConnect, D: Dns, M: RawMutex, const E: usize, const N: usize>
    Client<'a, T, D, M, E, N>
{
    /// A client for `endpoints` (primary first), sharing `shared` with other clients of the same
    /// endpoints. `seed` seeds the backoff jitter only (it varies the retry timing between
    /// devices; it is never used for TLS, which takes its own generator in `Client::with_tls`, feature `tls`).
    pub fn new(
        tcp: &'a T,
        dns: &'a D,
        endpoints: &'a [Endpoint<'a>],
        shared: &'a SharedState<M, E>,
        config: CallConfig,
        seed: u64,
    ) -> Self {
        Client {
            tcp,
            dns,
            endpoints,
            shared,
            config,
            seed,
            sse: SseParser::new(),
            idle_conn: None,
            decoder: StreamDecoder::new(steadyllm_core::decode::Dialect::OpenAi),
            #[cfg(feature = "tls")]
            tls: None,
            reasoning_models: &[],
            #[cfg(feature = "responses")]
            response_id: ResponseId::NONE,
        }
    }

    /// Marks models whose names start with one of `prefixes` (`["o3", "gpt-5",
    /// "deepseek-reasoner"]`) as reasoning models: their calls get the reasoning timeouts
    /// (minutes before the first token) even when the request names no reasoning effort or
    /// thinking budget.
    pub fn with_reasoning_models(mut self, prefixes: &'a [&'a str]) -> Self {
        self.reasoning_models = prefixes;
        self
    }

    /// Enables `https://` endpoints (feature `tls`): servers verified as `settings` say, with
    /// the handshake's randomness from its cryptographically secure generator. Each call then
    /// needs TLS record buffers ([`Buffers::with_tls`]).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, settings: crate::tls::TlsSettings<'a>) -> Self {
        self.tls = Some(settings);
        self
    }

    /// Runs [`Client::chat`] and collects the answer's text into `out` and its tool calls,
    /// whole, into `tool_calls` (the core's [`ToolCallAssembler`], cleared first; read them
    /// with its `calls()`, and `overflowed()` says whether some did not fit its storage).
    /// Returns the summary and the text; `truncated` says the answer was longer than `out`
    /// (the text then ends at the last whole character that fit). With restart-on-partial, a
    /// restart clears both.
    pub async fn chat_collect<'o, S: ToolCallStorage>(
        &mut self,
        request: &ChatRequest<'_>,
        bufs: &mut Buffers<'_>,
        out: &'o mut [u8],
        tool_calls: &mut ToolCallAssembler<S>,
    ) -> Result<Collected<'o>, ChatError> {
        let mut len = 0usize;
        let mut truncated = false;
        tool_calls.clear();
        let summary = self
            .chat(request, bufs, |e| match e {
                Event::Item(StreamItem::Content { text, .. }) => {
                    let mut pieces = text.pieces();
                    while let Some(p) = pieces.next_piece() {
                        let end = len + p.len();
                        match out.get_mut(len..end) {
                            Some(dst) if !truncated => {
                                dst.copy_from_slice(p.as_bytes());
                                len = end;
                            }
                            _ => truncated = true,
                        }
                    }
                }
                // A refused fragment is reported by `overflowed()`.
                Event::Item(item) => {
                    let _ = tool_calls.handle_item(&item);
                }
                Event::Engine(CallEvent::DiscardDelivered { .. }) => {
                    len = 0;
                    truncated = false;
                    tool_calls.clear();
                }
                _ => {}
            })
            .await?;
        // A whole answer may end without a finish reason: its calls are complete now.
        tool_calls.finish_all();
        let text = core::str::from_utf8(out.get(..len).unwrap_or_default()).unwrap_or_default();
        Ok(Collected {
            summary,
            text,
            truncated,
        })
    }

    /// Sends `request`, retrying and failing over as the engine decides, and passes each
    /// decoded item and each engine decision to `on_event` as they happen.
    pub async fn chat<F: FnMut(Event<'_>)>(
        &mut self,
        request: &ChatRequest<'_>,
        bufs: &mut Buffers<'_>,
        mut on_event: F,
    ) -> Result<Summary, ChatError> {
        // Check the request once (all endpoints get the same body, but for the model name).
        request
            .body_len(steadyllm_core::decode::Dialect::OpenAi)
            .map_err(ChatError::Request)?;
        let mut call = start(
            self.shared,
            &self.config,
            request,
            &mut self.seed,
            self.reasoning_models,
            self.endpoints,
        );
        #[cfg(feature = "responses")]
        {
            self.response_id.len = 0;
        }
        loop {
            let step = self.shared.with(|s| call.next(s, now()));
            let mut any = false;
            while let Some(e) = call.poll_event() {
                log_event!(e);
                on_event(Event::Engine(e));
                any = true;
            }
            if any {
                attempt::yield_now().await;
            }
            match step {
                Step::Attempt(plan) => {
                    let outcome = match self.attempt(&plan, request, bufs, &mut on_event).await {
                        Ok(o) => o,
                        Err(e) => return Err(e),
                    };
                    self.shared.with(|s| call.finish_attempt(s, outcome, now()));
                }
                Step::Sleep(until) => Timer::at(to_embassy(until)).await,
                Step::Done(r) => {
                    while let Some(e) = call.poll_event() {
                        log_event!(e);
                        on_event(Event::Engine(e));
                    }
                    return r.map_err(ChatError::Call);
                }
            }
        }
    }

    async fn attempt<F: FnMut(Event<'_>)>(
        &mut self,
        plan: &AttemptPlan,
        request: &ChatRequest<'_>,
        bufs: &mut Buffers<'_>,
        on_event: &mut F,
    ) -> Result<Outcome, ChatError> {
        let none = RetryHints::default();
        let Some(ep) = self.endpoints.get(plan.endpoint).copied() else {
            return Ok(Outcome::failed(Failure::Connect, 0, none));
        };
        // A resume (the engine planned one, and the id is known) sends a `GET` without a body.
        #[cfg(feature = "responses")]
        let resume = plan.resume_after.filter(|_| self.response_id.len > 0);
        #[cfg(feature = "responses")]
        let (body_len, head_len) = match resume {
            Some(after) => (
                0,
                prepare_resume(&ep, &self.response_id, after, plan.retry_count, bufs.head)?,
            ),
            None => prepare(&ep, request, plan.retry_count, bufs.body, bufs.head)?,
        };
        #[cfg(not(feature = "responses"))]
        let (body_len, head_len) = prepare(&ep, request, plan.retry_count, bufs.body, bufs.head)?;
        let connect_by = to_embassy(plan.connect_by);
        let Buffers {
            head: head_buf,
            body: body_buf,
            response,
            tls_read,
            tls_write,
        } = bufs;
        let wire = Wire {
            head: head_buf.get(..head_len).unwrap_or_default(),
            body: body_buf.get(..body_len).unwrap_or_default(),
            stream: request.stream,
            #[cfg(feature = "responses")]
            resumable: request.stream
                && request.background
                && ep.dialect == steadyllm_core::decode::Dialect::Responses,
            #[cfg(feature = "responses")]
            resume,
        };

        if ep.base_url.is_tls() {
            #[cfg(feature = "tls")]
            {
                if self.tls.is_none() || tls_read.is_empty() || tls_write.is_empty() {
                    return Err(ChatError::TlsNotConfigured);
                }
                let socket = match connect::connect_tcp(
                    self.tcp,
                    self.dns,
                    &ep.base_url,
                    connect_by,
                )
                .await
                {
                    Ok(c) => c,
                    Err(f) => return Ok(Outcome::failed(failure_of(f, Phase::Connect), 0, none)),
                };
                let host = ep.base_url.host_unbracketed();
                let Some(settings) = self.tls.as_mut() else {
                    return Err(ChatError::TlsNotConfigured);
                };
                let tls = match crate::tls::handshake(
                    socket, host, settings, tls_read, tls_write, connect_by,
                )
                .await
                {
                    Ok(t) => t,
                    Err(f) => return Ok(Outcome::failed(failure_of(f, Phase::Connect), 0, none)),
                };
                let mut conn = Conn::Tls(tls);
                let (outcome, _) = self
                    .exchange(&mut conn, plan, wire, response, on_event)
                    .await;
                return Ok(outcome);
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (tls_read, tls_write);
                return Err(ChatError::TlsNotConfigured);
            }
        }

        // A kept-alive connection to the same endpoint, or a new one.
        let socket = match self.idle_conn.take() {
            Some((i, c)) if i == plan.endpoint => c,
            _ => match connect::connect_tcp(self.tcp, self.dns, &ep.base_url, connect_by).await {
                Ok(c) => c,
                Err(f) => return Ok(Outcome::failed(failure_of(f, Phase::Connect), 0, none)),
            },
        };
        let mut conn = Conn::Plain(socket, core::marker::PhantomData);
        let (outcome, reusable) = self
            .exchange(&mut conn, plan, wire, response, on_event)
            .await;
        if reusable && let Conn::Plain(c, _) = conn {
            self.idle_conn = Some((plan.endpoint, c));
        }
        Ok(outcome)
    }

    /// Sends the request on `conn` and reads the answer into `buf` (the response buffer):
    /// streamed through the SSE parser and decoder, or — a whole JSON answer, an error
    /// body — collected first. Returns the outcome and whether the connection ended cleanly
    /// and may be reused.
    async fn exchange<C: Read + Write, F: FnMut(Event<'_>)>(
        &mut self,
        conn: &mut Conn<'_, C>,
        plan: &AttemptPlan,
        wire: Wire<'_>,
        buf: &mut [u8],
        on_event: &mut F,
    ) -> (Outcome, bool) {
        let dialect = self
            .endpoints
            .get(plan.endpoint)
            .map(|e| e.dialect)
            .unwrap_or_default();
        // The request goes out now.
        let mut timer = AttemptTimer::new(plan, now());
        let mut hints = RetryHints::default();
        // Responses: the event to resume after, when the stream broke.
        #[cfg(feature = "responses")]
        let mut resume_after = None;
        // Every way out gives (failure, bytes delivered, reusable), made into the outcome in
        // one place: each outcome built is code.
        let (failure, delivered, reusable) = 'attempt: {
            if let Err(f) = attempt::send(conn, wire.head, wire.body, &mut timer).await {
                break 'attempt (Some(failure_of(f, timer.waiting())), 0, false);
            }
            let head =
                match attempt::read_head(conn, buf, &mut timer, &mut hints, wire.stream).await {
                    Ok(h) => h,
                    Err(f) => break 'attempt (Some(failure_of(f, timer.waiting())), 0, false),
                };
            let kind = match head.kind {
                Ok(k) => k,
                Err(f) => {
                    report_redirect(f, &head, buf, on_event);
                    break 'attempt (Some(f), 0, false);
                }
            };
            // Streams go through the parser as they arrive; a whole JSON answer or an error
            // body is collected first.
            let collect = kind != BodyKind::EventStream;
            timer.on_head(!collect);
            self.sse.finish();
            self.decoder = StreamDecoder::new(dialect);
            #[cfg(feature = "responses")]
            if let Some(after) = wire.resume {
                // What was delivered before is not delivered again, whatever the server sends.
                self.decoder.resume_after(u64::from(after));
            }
            let mut sink = Sink {
                on_event,
                timer,
                server_error: false,
                #[cfg(feature = "responses")]
                id: &mut self.response_id,
            };
            let stream = attempt::Stream {
                sse: &mut self.sse,
                decoder: &mut self.decoder,
                sink: &mut sink,
            };
            let read = attempt::read_body(conn, buf, &head, collect, stream).await;
            let collected = buf.get(..read.kept).unwrap_or_default();
            let failure = settle(
                kind,
                read.end,
                collected,
                &mut self.decoder,
                &mut sink,
                &mut hints,
            );
            #[cfg(feature = "responses")]
            let failure = {
                let (failure, after) =
                    responses_verdict(failure, &read, wire.resumable, sink.id.len > 0);
                resume_after = after;
                failure
            };
            match failure {
                Some(Failure::Status(s)) => (Some(Failure::Status(s)), 0, false),
                Some(f) => (Some(f), sink.timer.delivered(), false),
                None => (None, sink.timer.delivered(), read.reusable),
            }
        };
        let outcome = Outcome {
            failure,
            delivered_bytes: delivered,
            hints,
            #[cfg(feature = "responses")]
            resume_after,
            #[cfg(not(feature = "responses"))]
            resume_after: None,
        };
        (outcome, reusable)
    }
}

#[cfg(all(test, feature = "responses"))]
mod tests {
    use steadyllm_core::json::JsonStr;

    use super::{RESPONSE_ID_CAPACITY, ResponseId};

    #[test]
    fn a_response_id_that_does_not_fit_is_forgotten_not_cut() {
        let mut id = ResponseId::NONE;
        let fits = "r".repeat(RESPONSE_ID_CAPACITY);
        id.set(JsonStr::plain(&fits));
        assert_eq!(id.as_str(), fits);
        let long = "r".repeat(RESPONSE_ID_CAPACITY + 1);
        id.set(JsonStr::plain(&long));
        assert_eq!((id.len, id.as_str()), (0, ""));
        id.set(JsonStr::plain("resp_1"));
        assert_eq!(id.as_str(), "resp_1");
    }
}
