//! steadyllm-wasm: the browser adapter behind the npm package `steadyllm`.
//!
//! The core is sans-IO, and so is this module: the core's resilience engine, SSE parser and
//! decoder run here; the JS wrapper (`js/src/index.js`) does the IO with what the browser
//! has — `fetch` with an `AbortController` per attempt, the body read chunk by chunk from its
//! `ReadableStream`, `setTimeout` for every timeout and backoff, `performance.now()` for the
//! clock, `crypto.getRandomValues` for the seed. Keeping promises, closures and `web-sys`
//! out of the module keeps it small (the package budget is 30 KB gzip) and leaves nothing
//! asynchronous on this side that a trap could leave half done.
//!
//! The JavaScript API users see (`Client`, `chat.stream`, error classes) is the wrapper; the
//! exports here are its internals:
//!
//! - [`Engine`]: one per `Client`: settings and the state its calls share (breakers,
//!   rate-limit pauses, the retry budget).
//! - [`Chat`]: one call. The wrapper loops: [`Chat::next`] says what to do (a [`batch`] of
//!   notices ending in a step record: run an attempt, sleep, or done); for an attempt it
//!   fetches, reports the response head with [`Chat::head`], each body chunk with
//!   [`Chat::feed`] (decoded items come back as a batch) and how the attempt ended with
//!   [`Chat::end`]; then asks again. Every wait of an attempt lasts until the deadline the
//!   core's attempt timer gives: [`Chat::sent`] as the request goes out, [`Chat::wait`]
//!   before each read of the body; the module names a timeout by the timer's phase. An error body (non-2xx) is the wrapper's to read and
//!   parse (`JSON.parse`); it reports a spent quota with [`end::QUOTA`].
//!
//! OpenAI's Responses API (feature `responses`, the `steadyllm/responses` entry; endpoint `i`
//! by bit `4 + i` of [`Engine::create`]'s mask): the chat keeps the response's id
//! (`response.created`) and, when an attempt fails after it in background mode, reports the
//! last event delivered as the resume point; the engine then plans a resume, which the batch
//! announces with a resume record (the id and the point) before the attempt record, and the
//! wrapper fetches `GET …/responses/{id}?stream=true&starting_after=N` instead of posting. The
//! resumed stream's decoder skips every event at or below the point. `response.failed` and
//! `response.incomplete` end the call as answer failed / incomplete, never resumed.
//!
//! The JS `StreamDecoder` (the parser and decoder alone, over bytes the caller supplies) is a
//! `Chat` held at its first attempt with a 200 head: `feed` decodes, `head` starts over.
//!
//! Output of every call is a [`batch`]: records in `u32` words and their text, read in place
//! through `size()`/`words()` and the module's memory.
//!
//! Nothing here panics on input: bytes of any kind, any length and any split, hostile
//! headers and invalid JSON end as typed failures in the records.
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

pub mod abi;
pub mod batch;
pub mod input;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use steadyllm_core::attempt::AttemptTimer;
use steadyllm_core::call::{Call, CallConfig, ClientState, Failure, Outcome, RequestProfile, Step};
use steadyllm_core::decode::{Dialect, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::hints::RetryHints;
use steadyllm_core::json::JsonStr;
use steadyllm_core::sse::{SseItem, SseParser};
use steadyllm_core::time::Instant;
use steadyllm_core::tools::{CallHead, Part, ToolCallAssembler, ToolCallError, ToolCallStorage};
use steadyllm_core::transport::{self, BodyEnd};

use crate::batch::Batch;

/// Largest SSE event accepted (a line or an event beyond it fails the attempt as malformed).
pub const EVENT_CAPACITY: usize = 64 * 1024;

/// Flags [`Chat::feed`] returns.
pub mod flag {
    /// The batch holds records.
    pub const RECORDS: u32 = 1;
    /// This attempt delivered content: text, a refusal or a tool call, not reasoning.
    pub const CONTENT: u32 = 2;
    /// Stop reading: the end marker came, an event was malformed, or the error body is
    /// as long as it may be. Report it with [`crate::Chat::end`] and [`crate::end::BODY`].
    pub const OVER: u32 = 4;
    /// An event was malformed or too large (with [`OVER`]).
    pub const MALFORMED: u32 = 8;
    /// An error event came (the stream will fail; reading goes on to the end marker).
    pub const SERVER_ERROR: u32 = 16;
}

/// How an attempt ended, for [`Chat::end`].
pub mod end {
    /// The body ended, or [`crate::flag::OVER`] stopped the reading; the module knows why.
    pub const BODY: u32 = 0;
    /// `fetch` failed before a response head (refused, DNS, TLS, CORS, offline).
    pub const CONNECT: u32 = 1;
    /// The deadline [`crate::Chat::sent`] or [`crate::Chat::wait`] gave passed; the module
    /// names the timeout by what the attempt waited for (head, first content, next bytes).
    pub const TIMEOUT: u32 = 2;
    /// Reading the body failed (reset).
    pub const NETWORK: u32 = 6;
    /// Added to the code: the error body's `code` or `type` is `insufficient_quota` (a 429
    /// that retrying cannot fix).
    pub const QUOTA: u32 = 16;
}

/// `performance.now()` milliseconds as the core's clock (`as` saturates; NaN → 0).
fn instant(ms: f64) -> Instant {
    Instant::from_millis(ms as u64)
}

/// The dialect of endpoint `i` by an engine's mask: bit `i` Anthropic, bit `4 + i` OpenAI's
/// Responses API (each needs its feature), else OpenAI chat completions.
fn dialect(mask: u32, i: usize) -> Dialect {
    let bit = |at: usize| mask.checked_shr(at as u32).unwrap_or(0) & 1 == 1;
    #[cfg(feature = "responses")]
    if bit(4 + i) {
        return Dialect::Responses;
    }
    if bit(i) {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// Tool calls joined by the core's assembler, kept in heap strings (as many as come).
type Tools = ToolCallAssembler<Calls>;

/// The calls of an answer: head and id, name and arguments.
#[derive(Default)]
struct Calls(Vec<(CallHead, [String; 3])>);

impl ToolCallStorage for Calls {
    fn calls(&self) -> usize {
        self.0.len()
    }

    fn head(&self, i: usize) -> Option<&CallHead> {
        self.0.get(i).map(|c| &c.0)
    }

    fn head_mut(&mut self, i: usize) -> Option<&mut CallHead> {
        self.0.get_mut(i).map(|c| &mut c.0)
    }

    fn begin(&mut self, head: CallHead) -> Result<(), ToolCallError> {
        self.0.push((head, Default::default()));
        Ok(())
    }

    fn append(&mut self, i: usize, part: Part, text: JsonStr<'_>) -> Result<(), ToolCallError> {
        if let Some(s) = self.0.get_mut(i).and_then(|c| c.1.get_mut(part as usize)) {
            let mut p = text.pieces();
            while let Some(piece) = p.next_piece() {
                s.push_str(piece);
            }
        }
        Ok(())
    }

    fn text(&self, i: usize, part: Part) -> &str {
        self.0
            .get(i)
            .and_then(|c| c.1.get(part as usize))
            .map_or("", String::as_str)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Where decoded items go: the batch, the attempt's timer (what it delivered), the tool calls
/// being joined.
struct Sink {
    out: Batch,
    /// The timer of the attempt in flight.
    timer: Option<AttemptTimer>,
    server_error: bool,
    /// The core's assembler.
    tools: Tools,
    /// Responses: the id of the response this call created (kept to resume it).
    #[cfg(feature = "responses")]
    id: Option<String>,
}

impl Sink {
    fn item(&mut self, item: StreamItem<'_>) {
        if let Some(t) = &mut self.timer {
            t.on_item(&item);
        }
        if let StreamItem::Error(e) = item {
            self.server_error = true;
            self.out.server_error(200, &e);
        }
        #[cfg(feature = "responses")]
        if let StreamItem::Created { id } = item {
            use alloc::string::ToString;
            self.id = Some(id.to_string());
        }
        // The heap storage refuses nothing.
        let _ = self.tools.handle_item(&item);
        // Whole calls before the item that finished them.
        self.report_finished();
        self.out.item(&item);
    }

    fn report_finished(&mut self) {
        while let Some(c) = self.tools.poll_finished() {
            self.out.tool_call_done(&c);
        }
    }
}

/// A body being decoded: parser, decoder, the records it produced.
struct Body {
    sse: Box<SseParser<EVENT_CAPACITY>>,
    decoder: StreamDecoder,
    sink: Sink,
    malformed: bool,
}

impl Body {
    fn new(dialect: Dialect) -> Body {
        Body {
            sse: Box::new(SseParser::new()),
            decoder: StreamDecoder::new(dialect),
            sink: Sink {
                out: Batch::default(),
                timer: None,
                server_error: false,
                tools: Tools::with_storage(Calls(Vec::new())),
                #[cfg(feature = "responses")]
                id: None,
            },
            malformed: false,
        }
    }

    /// Ready for another stream (keeps the allocations).
    fn reset(&mut self, dialect: Dialect) {
        self.sse.reset();
        self.decoder = StreamDecoder::new(dialect);
        self.sink.server_error = false;
        self.sink.tools.clear();
        self.malformed = false;
    }

    /// `true` once reading can stop.
    fn over(&self) -> bool {
        self.malformed || self.decoder.is_done()
    }

    /// Feeds bytes through the parser and decoder into `out`. Stops at the end marker or at
    /// the first malformed event, or oversized one the stream cannot go on without (items
    /// before it stay in `out`).
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !self.over() {
            match self.sse.feed(&mut rest) {
                Ok(Some(SseItem::Event(ev))) => {
                    let sink = &mut self.sink;
                    self.malformed = self
                        .decoder
                        .decode(ev.data, |item| sink.item(item))
                        .is_err();
                }
                Ok(Some(SseItem::Retry(_))) => {}
                Ok(None) => return,
                // Larger than the parser's buffer: an event the stream can go on without (the
                // Responses API's summaries of a long answer), or the end; else malformed.
                Err(_) => {
                    let (t, sink) = (self.sse.dropped_event_type(), &mut self.sink);
                    self.malformed = !self.decoder.dropped(t, |item| sink.item(item));
                }
            }
        }
    }

    /// Ends the stream: `Complete` when the end marker came. Resets the parser and decoder.
    fn finish(&mut self) -> StreamEnd {
        self.sse.finish();
        self.decoder.finish()
    }
}

/// One `Client`'s engine: settings and the state its calls share.
pub struct Engine {
    config: CallConfig,
    state: ClientState,
    seed: u64,
    /// Bit `i` set: endpoint `i` speaks Anthropic's API; bit `4 + i`: OpenAI's Responses API.
    dialects: u32,
}

impl Engine {
    /// An engine for `endpoints` endpoints (1–4; bit `i` of `dialects` marks endpoint `i` as
    /// Anthropic, which needs the `anthropic` feature, bit `4 + i` as OpenAI's Responses API,
    /// which needs the `responses` feature) with the settings in `numbers` (see [`input::cfg`]; [`input::UNSET`] keeps
    /// a default); the seed words come from `crypto.getRandomValues`. `None` when a number
    /// is out of range (the wrapper checks them first, with messages).
    pub fn create(
        numbers: &[u32],
        endpoints: u32,
        dialects: u32,
        seed_lo: u32,
        seed_hi: u32,
    ) -> Option<Engine> {
        let config = input::config(numbers)?;
        let n = endpoints as usize;
        if !(1..=input::ENDPOINTS).contains(&n)
            || (dialects & 0xf != 0 && !cfg!(feature = "anthropic"))
            || (dialects & !0xf != 0 && !cfg!(feature = "responses"))
        {
            return None;
        }
        Some(Engine {
            state: ClientState::new(n, &config),
            config,
            seed: u64::from(seed_hi) << 32 | u64::from(seed_lo),
            dialects,
        })
    }

    /// Per endpoint, two bits (endpoint `i` at bit `2i`): 1 available now, 2 breaker open
    /// (cooling down), 0 otherwise (rate-limit paused, or a half-open probe in flight).
    pub fn health(&self, now: f64) -> u32 {
        let t = instant(now);
        let mut bits = 0;
        for i in 0..self.state.len() {
            let v = match self.state.endpoint(i) {
                Some(e) if e.is_available(t) => 1,
                Some(e) if e.is_cooling_down(t) => 2,
                _ => 0,
            };
            bits |= v << (2 * i);
        }
        bits
    }
}

/// One call: the engine's decisions and the attempt in flight.
pub struct Chat {
    call: Call,
    body: Body,
    /// The dialect of the attempt's endpoint.
    dialect: Dialect,
    /// Responses: background mode is on (the answer can be resumed).
    #[cfg(feature = "responses")]
    background: bool,
    /// Responses: this attempt resumes the answer after this event.
    #[cfg(feature = "responses")]
    resume: Option<u32>,
    /// Status of this attempt's response head (0: none yet).
    status: u16,
    /// Status of the last response head of the call.
    last_status: u16,
    hints: RetryHints,
    /// Bytes the wrapper hands in ([`abi::chat_input`]).
    input: Vec<u8>,
}

impl Chat {
    /// Starts a call at `now` for a request of `prompt_bytes` bytes of prompt text, a token
    /// limit (0: none) and `kind` (bit 0: it carries images; bit 1: a reasoning request;
    /// bit 2: a Responses request not in background mode, which cannot be resumed); these
    /// pick the timeouts.
    pub fn new(
        engine: &mut Engine,
        now: f64,
        prompt_bytes: u32,
        max_tokens: u32,
        kind: u32,
    ) -> Chat {
        engine.seed = steadyllm_core::rng::next_call_seed(engine.seed);
        let profile = RequestProfile {
            prompt_bytes,
            max_tokens: (max_tokens != 0).then_some(max_tokens),
            has_images: kind & 1 != 0,
            reasoning: kind & 2 != 0,
            non_streamed: false,
        };
        Chat {
            call: Call::new(
                &engine.config,
                profile,
                &mut engine.state,
                instant(now),
                engine.seed,
            ),
            body: Body::new(Dialect::OpenAi),
            dialect: Dialect::OpenAi,
            #[cfg(feature = "responses")]
            background: kind & 4 == 0,
            #[cfg(feature = "responses")]
            resume: None,
            status: 0,
            last_status: 0,
            hints: RetryHints::default(),
            input: Vec::new(),
        }
    }

    /// What to do next: the batch holds the engine's notices and ends with a step record
    /// (attempt, sleep or done; see [`batch`]).
    pub fn next(&mut self, engine: &mut Engine, now: f64) {
        let now = instant(now);
        let out = &mut self.body.sink.out;
        out.clear();
        let step = self.call.next(&mut engine.state, now);
        while let Some(e) = self.call.poll_event() {
            out.engine(&e, self.call.attempts() + 1);
        }
        match step {
            Step::Attempt(p) => {
                // Until `sent` says when the request went out: from now.
                self.body.sink.timer = Some(AttemptTimer::new(&p, now));
                self.dialect = dialect(engine.dialects, p.endpoint);
                self.status = 0;
                self.hints = RetryHints::default();
                // A resume: the wrapper asks for the events after `after` of the response it
                // names instead of posting the request again.
                #[cfg(feature = "responses")]
                {
                    self.resume = p.resume_after;
                    if let (Some(after), Some(id)) = (p.resume_after, &self.body.sink.id) {
                        out.resume(after, id);
                    }
                }
                out.attempt(&p, now);
            }
            Step::Sleep(until) => out.sleep(until.saturating_since(now)),
            Step::Done(r) => out.done(&r, self.call.attempts(), self.last_status),
        }
    }

    /// The attempt's request goes out at `now`: starts its timer; returns the deadline of the
    /// response head (`performance.now()` ms; see [`Chat::wait`]).
    pub fn sent(&mut self, now: f64) -> f64 {
        if let Some(t) = &mut self.body.sink.timer {
            *t = AttemptTimer::new(t.plan(), instant(now));
        }
        self.wait(now)
    }

    /// A wait of the attempt begins at `now` (a read of the body, after what the last one
    /// brought was handled): until when it may last (`performance.now()` ms; beyond `2^53`
    /// ms: no limit), as the core's attempt timer says — the first-byte deadline until the
    /// head, in a stream the first-token deadline until content, else the idle timeout, all
    /// capped by the call's total deadline as it grew with the answer.
    pub fn wait(&mut self, now: f64) -> f64 {
        self.body.sink.timer.as_mut().map_or(f64::INFINITY, |t| {
            t.on_read(instant(now));
            t.deadline().0.as_millis() as f64
        })
    }

    /// The attempt's response head: its status and headers as `name: value` lines (UTF-8,
    /// as `TextEncoder` makes them).
    pub fn head(&mut self, status: u16, headers: &[u8]) {
        self.status = status;
        self.last_status = status;
        // A 2xx is a stream unless its type names JSON (a whole answer, as the wrapper reads
        // it); an error body is collected whole too.
        let mut stream = (200..300).contains(&status);
        for line in headers.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = line.split_at(colon);
            if let (Ok(name), Some(value)) = (core::str::from_utf8(name), value.get(1..)) {
                if name.eq_ignore_ascii_case("content-type")
                    && value.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"))
                {
                    stream = false;
                }
                self.hints.observe(name, value.trim_ascii());
            }
        }
        if let Some(t) = &mut self.body.sink.timer {
            t.on_head(stream);
        }
        self.body.reset(self.dialect);
        // A resumed stream: the events up to the point are skipped, whatever the server sends.
        #[cfg(feature = "responses")]
        if let Some(n) = self.resume {
            self.body.decoder.resume_after(u64::from(n));
        }
        self.body.sink.out.clear();
    }

    /// A chunk of a 2xx body; returns [`flag`]s; the decoded items go to the batch. (An error
    /// body is the wrapper's to read: `JSON.parse` does it in a few bytes of JS; this returns
    /// [`flag::OVER`] for one.) A whole JSON answer (a `200` whose type names JSON: a gateway
    /// that ignored `stream: true`) comes as one event, its lines as `data:` lines, followed
    /// by `data: [DONE]` (the wrapper frames it; the decoder reads it like a chunk).
    pub fn feed(&mut self, bytes: &[u8]) -> u32 {
        let b = &mut self.body;
        b.sink.out.clear();
        if !(200..300).contains(&self.status) {
            return flag::OVER;
        }
        b.feed(bytes);
        let mut f = 0;
        if !b.sink.out.is_empty() {
            f |= flag::RECORDS;
        }
        if b.sink.timer.is_some_and(|t| t.got_content()) {
            f |= flag::CONTENT;
        }
        if b.over() {
            f |= flag::OVER;
        }
        if b.malformed {
            f |= flag::MALFORMED;
        }
        if b.sink.server_error {
            f |= flag::SERVER_ERROR;
        }
        f
    }

    /// Reports how the attempt ended (see [`mod@end`]; with [`end::QUOTA`] added when an
    /// error body said the quota is spent). Ignored when no attempt is in flight.
    pub fn end(&mut self, engine: &mut Engine, now: f64, how: u32) {
        self.body.sink.out.clear();
        // The attempt in flight, if any.
        let Some(timer) = self.body.sink.timer.take() else {
            return;
        };
        let mut hints = self.hints;
        hints.insufficient_quota = how & end::QUOTA != 0;
        let how = how & !end::QUOTA;
        let status = self.status;
        // What the attempt waited for when its deadline passed.
        let waiting = timer.waiting();
        // Responses: the last event delivered (before `finish` forgets it).
        #[cfg(feature = "responses")]
        let last = self.body.decoder.sequence_number();
        let failure = if status == 0 {
            Some(if how == end::TIMEOUT {
                Failure::Timeout(waiting)
            } else {
                Failure::Connect
            })
        } else if !(200..300).contains(&status) {
            Some(Failure::Status(status))
        } else {
            // The core's mapping, as on every adapter (an error event fails the stream even
            // after the end marker).
            let b = &mut self.body;
            // The server's own verdict on the answer (Responses): final, never resumed.
            #[cfg_attr(not(feature = "responses"), allow(unused_mut))]
            let mut verdict = None;
            let end = match how {
                end::TIMEOUT => BodyEnd::Timeout(waiting),
                end::NETWORK => BodyEnd::Network,
                _ => match b.finish() {
                    StreamEnd::Complete => BodyEnd::Complete,
                    #[cfg(feature = "responses")]
                    StreamEnd::Failed => {
                        verdict = Some(Failure::AnswerFailed);
                        BodyEnd::EndedEarly
                    }
                    #[cfg(feature = "responses")]
                    StreamEnd::Incomplete => {
                        verdict = Some(Failure::AnswerIncomplete);
                        BodyEnd::EndedEarly
                    }
                    _ => BodyEnd::EndedEarly,
                },
            };
            // (Complete means the end marker came, which finished every tool call.)
            verdict.or(transport::body_failure(
                end,
                b.malformed,
                b.sink.server_error,
            ))
        };
        // Responses in background mode, once the response's id came: a failed attempt is
        // resumed after the last event delivered. (Nothing identifying yet: posted again.)
        #[cfg(feature = "responses")]
        let resume_after = match (&self.body.sink.id, failure) {
            (Some(_), Some(f))
                if self.background
                    && self.dialect == Dialect::Responses
                    && !matches!(f, Failure::AnswerFailed | Failure::AnswerIncomplete) =>
            {
                last.and_then(|n| u32::try_from(n).ok())
            }
            _ => None,
        };
        #[cfg(not(feature = "responses"))]
        let resume_after = None;
        let o = Outcome {
            failure,
            delivered_bytes: timer.delivered(),
            hints,
            resume_after,
        };
        self.call.finish_attempt(&mut engine.state, o, instant(now));
    }

    /// Where the batch's words are (valid until the next call into the module): its
    /// [`Chat::size`] record words, then two more — where the batch's text (UTF-8) lies in
    /// the module's memory and its length in bytes — added by this call.
    pub fn words(&mut self) -> *const u32 {
        let b = &mut self.body.sink.out;
        let text = [b.text.as_ptr() as u32, b.text.len() as u32];
        b.words.extend_from_slice(&text);
        b.words.as_ptr()
    }

    /// How many record words.
    pub fn size(&self) -> u32 {
        self.body.sink.out.words.len() as u32
    }
}

#[cfg(test)]
mod tests {
    //! The module is sans-IO, so whole calls run here natively: the tests play the wrapper's
    //! part (fetch results, chunks, timeouts) and read the records the JS side would read.
    use super::*;
    use crate::batch::{NONE, kind, reason};
    use alloc::vec;

    const OK: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
        data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
        data: [DONE]\n\n";

    fn engine(max_attempts: u32) -> Engine {
        let mut n = [input::UNSET; input::cfg::LEN];
        n[input::cfg::MAX_ATTEMPTS] = max_attempts;
        Engine::create(&n, 1, 0, 1, 2).expect("valid")
    }

    /// The records of a batch as (kind, words after the kind) with texts resolved.
    fn records(b: &Batch) -> Vec<(u32, Vec<u32>)> {
        let w = &b.words;
        let mut out = Vec::new();
        let mut i = 0;
        while i < w.len() {
            let n = match w[i] {
                kind::CONTENT | kind::REASONING | kind::REFUSAL | kind::FINISH | kind::ROLE => 3,
                kind::TOOL_CALL | kind::TOOL_CALL_DONE => 8,
                kind::USAGE => 3,
                kind::RETRY => 5,
                kind::FAILOVER => 2,
                kind::DISCARD => 1,
                kind::SERVER_ERROR => 9,
                kind::DONE | kind::ATTEMPT => 7,
                kind::SLEEP => 1,
                kind::RESUME => 3,
                k => panic!("unknown kind {k}"),
            };
            out.push((w[i], w[i + 1..i + 1 + n].to_vec()));
            i += 1 + n;
        }
        out
    }

    fn text(b: &Batch, a: u32, e: u32) -> String {
        let units: Vec<u16> = b.text.encode_utf16().collect();
        String::from_utf16(&units[a as usize..e as usize]).unwrap()
    }

    /// Runs `next` and returns the step record.
    fn step(chat: &mut Chat, e: &mut Engine, now: f64) -> (u32, Vec<u32>) {
        chat.next(e, now);
        records(&chat.body.sink.out).pop().expect("a step record")
    }

    #[test]
    fn the_kind_picks_the_timeouts_and_the_deadline_grows_with_the_answer() {
        let mut e = engine(3);
        let plain = Chat::new(&mut e, 0.0, 10, 0, 0).call.timeouts();
        let think = Chat::new(&mut e, 0.0, 10, 0, 2).call.timeouts();
        assert_eq!(plain.first_token.as_millis(), 45_000);
        assert_eq!(think.first_token.as_millis(), 300_000);
        // `sent` and `wait` give the attempt timer's deadlines (ms): head, first token, idle,
        // all capped by the total deadline, which grows with the answer.
        let mut n = [input::UNSET; input::cfg::LEN];
        for (i, ms) in [(0, 2_000), (1, 10_000), (2, 4_000), (3, 12_000)] {
            n[input::cfg::FIRST_BYTE + i] = ms;
        }
        let mut e = Engine::create(&n, 1, 0, 1, 2).expect("valid");
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        let (k, _) = step(&mut chat, &mut e, 0.0);
        assert_eq!(k, kind::ATTEMPT);
        assert_eq!(chat.sent(1_000.0), 3_000.0, "first byte");
        chat.head(200, b"content-type: text/event-stream\n");
        assert_eq!(chat.wait(1_500.0), 11_000.0, "first token");
        let reasoning = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"reasoning_content\":\"{}\"}}}}]}}\n\n",
            "r".repeat(100)
        );
        let f = chat.feed(reasoning.as_bytes());
        assert_eq!(f & flag::CONTENT, 0, "reasoning is not content");
        assert_eq!(chat.wait(5_000.0), 11_000.0, "still the first token");
        let word = "x".repeat(300);
        let event = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}}}}]}}\n\n"
        );
        let f = chat.feed(event.as_bytes());
        assert_ne!(f & flag::CONTENT, 0);
        assert_eq!(chat.wait(6_000.0), 10_000.0, "idle from the read's start");
        assert_eq!(
            chat.wait(9_000.0),
            12_000.0,
            "the total (400 bytes: not grown) caps idle"
        );
        // 1,300 bytes (1 KiB): the total is 30 s later (the default growth), idle bounds again.
        for _ in 0..3 {
            chat.feed(event.as_bytes());
        }
        assert_eq!(chat.wait(9_000.0), 13_000.0);
        let t = chat.body.sink.timer.expect("an attempt");
        assert_eq!(t.delivered(), 1_300);
        // A whole JSON answer is bounded by idle from the start.
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        step(&mut chat, &mut e, 0.0);
        chat.sent(1_000.0);
        chat.head(200, b"Content-Type: application/JSON\n");
        assert_eq!(chat.wait(1_500.0), 5_500.0);
    }

    #[test]
    fn a_whole_call_in_pieces_of_any_size() {
        for piece in [1, 2, 7, 64, OK.len()] {
            let mut e = engine(3);
            let mut chat = Chat::new(&mut e, 1000.0, 10, 0, 0);
            let (k, a) = step(&mut chat, &mut e, 1000.0);
            assert_eq!(k, kind::ATTEMPT);
            assert_eq!(
                (a[0], a[1], a[2]),
                (1, 0, 0),
                "attempt 1, endpoint 0, retry count 0"
            );
            chat.head(200, b"content-type: text/event-stream\n");
            let mut got = String::new();
            let mut flags = 0;
            for c in OK.as_bytes().chunks(piece) {
                flags = chat.feed(c);
                for (k, w) in records(&chat.body.sink.out) {
                    if k == kind::CONTENT {
                        got.push_str(&text(&chat.body.sink.out, w[1], w[2]));
                    }
                }
                if flags & flag::OVER != 0 {
                    break;
                }
            }
            assert_eq!(got, "Hello", "pieces of {piece}");
            assert_eq!(
                flags & (flag::CONTENT | flag::OVER),
                flag::CONTENT | flag::OVER
            );
            chat.end(&mut e, 1100.0, end::BODY);
            let (k, d) = step(&mut chat, &mut e, 1100.0);
            assert_eq!(k, kind::DONE);
            assert_eq!(
                (d[0], d[1], d[3]),
                (1, 1, reason::OK),
                "ok after one attempt"
            );
        }
    }

    #[test]
    fn a_503_with_an_error_body_and_retry_after_then_success() {
        let mut e = engine(3);
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        step(&mut chat, &mut e, 0.0);
        chat.head(503, b"Retry-After: 2\ncontent-type: application/json\n");
        // The wrapper reads an error body itself; the module ignores one.
        assert_eq!(
            chat.feed(br#"{"error":{"message":"overloaded"}}"#),
            flag::OVER
        );
        chat.end(&mut e, 5.0, end::BODY);
        assert!(chat.body.sink.out.is_empty());
        chat.next(&mut e, 5.0);
        let recs = records(&chat.body.sink.out);
        let (k, retry) = &recs[0];
        assert_eq!(*k, kind::RETRY);
        assert_eq!((retry[0], retry[1], retry[2], retry[4]), (2, 2000, 1, 503));
        assert_eq!(recs.last().unwrap(), &(kind::SLEEP, vec![2000]));
        let (k, a) = step(&mut chat, &mut e, 2005.0);
        assert_eq!(
            (k, a[2]),
            (kind::ATTEMPT, 1),
            "the retry count header says 1"
        );
        chat.head(200, b"");
        assert_ne!(chat.feed(OK.as_bytes()) & flag::OVER, 0);
        chat.end(&mut e, 2100.0, end::BODY);
        let (k, d) = step(&mut chat, &mut e, 2100.0);
        assert_eq!((k, d[0], d[1]), (kind::DONE, 1, 2));
    }

    #[test]
    fn a_spent_quota_is_not_retried() {
        for (how, attempts) in [(end::BODY, 3), (end::BODY | end::QUOTA, 1)] {
            let mut e = engine(3);
            let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
            let mut t = 0.0;
            let done = loop {
                let (k, w) = step(&mut chat, &mut e, t);
                match k {
                    kind::ATTEMPT => {
                        chat.head(429, b"");
                        chat.end(&mut e, t, how);
                    }
                    kind::SLEEP => t += f64::from(w[0]),
                    _ => break w,
                }
            };
            assert_eq!((done[0], done[1], done[4]), (0, attempts, 5), "how {how}");
        }
    }

    #[test]
    fn timeouts_and_faults_end_as_their_failure() {
        // (how the attempt ended, what the body held, failure code of the done record)
        let cases: [(u32, &[u8], u32); 7] = [
            (end::CONNECT, b"", 1),
            (end::TIMEOUT, b"", 2),
            (end::TIMEOUT, b": keep-alive\n\n", 3),
            (
                end::TIMEOUT,
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
                4,
            ),
            (end::NETWORK, b"", 6),
            (end::BODY, b"data: {\"choices\":[]}\n\n", 7),
            (end::BODY, b"data: {not json\n\n", 8),
        ];
        for (how, body, code) in cases {
            let mut e = engine(1);
            let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
            step(&mut chat, &mut e, 0.0);
            if how != end::CONNECT && !(how == end::TIMEOUT && body.is_empty()) {
                chat.head(200, b"");
                chat.feed(body);
            }
            chat.end(&mut e, 10.0, how);
            let (k, d) = step(&mut chat, &mut e, 10.0);
            assert_eq!(k, kind::DONE);
            assert_eq!((d[0], d[4]), (0, code), "how {how}");
        }
    }

    #[test]
    fn an_error_event_fails_the_stream_with_the_servers_object() {
        let mut e = engine(1);
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        step(&mut chat, &mut e, 0.0);
        chat.head(200, b"");
        let f = chat.feed(b"data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n");
        assert_ne!(f & flag::RECORDS, 0);
        let recs = records(&chat.body.sink.out);
        assert_eq!((recs[0].0, recs[0].1[0]), (kind::SERVER_ERROR, 200));
        assert_eq!(
            text(&chat.body.sink.out, recs[0].1[1], recs[0].1[2]),
            "boom"
        );
        assert_eq!(&recs[0].1[3..], &[NONE; 6], "no type, code or param");
        chat.end(&mut e, 1.0, end::BODY);
        let (_, d) = step(&mut chat, &mut e, 1.0);
        assert_eq!((d[0], d[4]), (0, 9), "server error in stream");
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let alphabet = b"data: {}[]\",:\\u0\n\r \xff\xc3\xa9[DONE]event:retry:id:";
        for round in 0..300 {
            let mut e = engine(2);
            let mut chat = Chat::new(&mut e, 0.0, u32::MAX, u32::MAX, 1);
            let mut t = 0.0;
            for _ in 0..4 {
                chat.next(&mut e, t);
                let status = [200, 200, 429, 500, 0][(next() % 5) as usize];
                // Raw bytes: invalid UTF-8 included.
                let headers: Vec<u8> = (0..(next() % 40))
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect();
                chat.head(status, &headers);
                for _ in 0..(next() % 6) {
                    let n = (next() % 300) as usize;
                    let bytes: Vec<u8> = (0..n)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect();
                    chat.feed(&bytes);
                    records(&chat.body.sink.out);
                }
                chat.end(&mut e, t, (next() % 7) as u32);
                t += 70_000.0;
            }
            // The JS StreamDecoder's use: a Chat held at its first attempt with a 200 head.
            let n = [input::UNSET; input::cfg::LEN];
            let anthropic = u32::from(cfg!(feature = "anthropic")) * (round % 2);
            let mut e = Engine::create(&n, 1, anthropic, 0, 0).expect("valid");
            let mut d = Chat::new(&mut e, 0.0, 0, 0, 0);
            d.next(&mut e, 0.0);
            d.head(200, b"");
            let big = vec![b'x'; EVENT_CAPACITY + 10];
            d.feed(b"data: ");
            let over = flag::OVER | flag::MALFORMED;
            assert_eq!(d.feed(&big) & over, over, "an oversized event is malformed");
            assert_eq!(d.feed(b"\n\n") & over, over, "and decoding stays ended");
            d.head(200, b"");
            if anthropic == 0 {
                let f = d.feed(b"data: {\"error\":{\"message\":\"x\"}}\n\n");
                assert_eq!(f, flag::RECORDS | flag::SERVER_ERROR);
                d.head(200, b"");
                let f = d.feed(OK.as_bytes());
                let want = flag::RECORDS | flag::CONTENT | flag::OVER;
                assert_eq!(f, want, "a new stream after a head");
            }
        }
    }

    /// A record as a test sees it: kind, words after the kind, its texts.
    type Seen = (u32, Vec<u32>, Vec<String>);

    /// Runs one attempt that answers `status` with `headers` and `body` (in pieces of
    /// `piece` bytes); returns every record it produced (feeds and end) and the done record.
    fn one_attempt(
        e: &mut Engine,
        headers: &[u8],
        body: &[u8],
        piece: usize,
    ) -> (Vec<Seen>, Vec<u32>) {
        let mut chat = Chat::new(e, 0.0, 10, 0, 0);
        step(&mut chat, e, 0.0);
        chat.head(200, headers);
        let mut got = Vec::new();
        let mut take = |chat: &Chat| {
            let b = &chat.body.sink.out;
            for (k, w) in records(b) {
                // Text fields resolved: pairs of offsets after the kind's first words.
                let texts = match k {
                    kind::CONTENT | kind::FINISH => vec![text(b, w[1], w[2])],
                    kind::TOOL_CALL | kind::TOOL_CALL_DONE => [(2, 3), (4, 5), (6, 7)]
                        .iter()
                        .map(|&(a, z)| {
                            if w[a] == NONE {
                                "-".into()
                            } else {
                                text(b, w[a], w[z])
                            }
                        })
                        .collect(),
                    _ => vec![],
                };
                got.push((k, w, texts));
            }
        };
        for c in body.chunks(piece.max(1)) {
            let f = chat.feed(c);
            take(&chat);
            if f & flag::OVER != 0 {
                break;
            }
        }
        chat.end(e, 10.0, end::BODY);
        take(&chat);
        let (k, d) = step(&mut chat, e, 10.0);
        assert_eq!(k, kind::DONE);
        (got, d)
    }

    /// A whole JSON answer as the wrapper hands it over: one event, the body's lines its data
    /// lines, then the end marker.
    fn frame_whole(body: &str) -> String {
        let lines: Vec<&str> = body.split("\r\n").flat_map(|l| l.split('\n')).collect();
        format!("data: {}\n\ndata: [DONE]\n\n", lines.join("\ndata: "))
    }

    const WHOLE: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The whole answer.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;

    #[test]
    fn a_whole_json_answer_to_a_stream_is_the_answer_after_one_attempt() {
        // Pretty-printed: its lines become data lines, which the parser joins again.
        let pretty = WHOLE
            .replace(",\"", ",\n  \"")
            .replace("\"id\"", "\r\n\"id\"");
        for (piece, body) in [(1, WHOLE), (7, WHOLE), (7, &pretty), (WHOLE.len(), WHOLE)] {
            let mut e = engine(3);
            let (got, done) = one_attempt(
                &mut e,
                b"content-type: application/json; charset=utf-8\n",
                frame_whole(body).as_bytes(),
                piece,
            );
            assert_eq!(
                (done[0], done[1], done[3]),
                (1, 1, reason::OK),
                "ok, one attempt"
            );
            let kinds: Vec<u32> = got.iter().map(|g| g.0).collect();
            assert_eq!(
                kinds,
                [
                    kind::ROLE,
                    kind::CONTENT,
                    kind::TOOL_CALL,
                    kind::TOOL_CALL_DONE,
                    kind::FINISH,
                    kind::USAGE
                ],
                "pieces of {piece}"
            );
            assert_eq!(got[1].2, ["The whole answer."]);
            assert_eq!(got[3].2, ["call_1", "get_weather", r#"{"city":"Paris"}"#]);
        }
        // Cut short, it is malformed (code 8), not a truncated stream.
        let mut e = engine(1);
        let (got, done) = one_attempt(
            &mut e,
            b"Content-Type: application/json\n",
            frame_whole(&WHOLE[..40]).as_bytes(),
            64,
        );
        assert!(got.is_empty());
        assert_eq!((done[0], done[4]), (0, 8));
    }

    #[test]
    fn tool_calls_come_whole_before_the_finish_reason() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"function\":{\"name\":\"g\",\"arguments\":\"[1,\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\\\"\\u00e9\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"2]\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for piece in [1, 13, stream.len()] {
            let mut e = engine(1);
            let (got, done) = one_attempt(&mut e, b"", stream.as_bytes(), piece);
            assert_eq!(done[0], 1);
            let whole: Vec<&Vec<String>> = got
                .iter()
                .filter(|g| g.0 == kind::TOOL_CALL_DONE)
                .map(|g| &g.2)
                .collect();
            assert_eq!(
                whole,
                [
                    &vec!["call_1".to_string(), "f".into(), r#"{"a":"é"}"#.into()],
                    &vec!["call_2".to_string(), "g".into(), "[1,2]".into()]
                ]
            );
            let at = |k| got.iter().position(|g| g.0 == k);
            assert!(at(kind::TOOL_CALL_DONE) < at(kind::FINISH));
            assert_eq!(got.iter().filter(|g| g.0 == kind::TOOL_CALL).count(), 4);
        }
        // Ended by [DONE] with no finish reason: whole at the end marker.
        let no_finish = stream.replace(
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "",
        );
        let mut e = engine(1);
        let (got, _) = one_attempt(&mut e, b"", no_finish.as_bytes(), 64);
        assert_eq!(
            got.iter().filter(|g| g.0 == kind::TOOL_CALL_DONE).count(),
            2
        );
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_whole_message_to_a_stream() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Hi."},{"type":"tool_use","id":"toolu_1","name":"f","input":{"q":"a\"b"}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let n = [input::UNSET; input::cfg::LEN];
        let mut e = Engine::create(&n, 1, 1, 1, 2).expect("valid");
        let (got, done) = one_attempt(
            &mut e,
            b"content-type: application/json\n",
            frame_whole(body).as_bytes(),
            9,
        );
        assert_eq!((done[0], done[1]), (1, 1));
        let whole: Vec<&Vec<String>> = got
            .iter()
            .filter(|g| g.0 == kind::TOOL_CALL_DONE)
            .map(|g| &g.2)
            .collect();
        assert_eq!(
            whole,
            [&vec![
                "toolu_1".to_string(),
                "f".into(),
                r#"{"q":"a\"b"}"#.into()
            ]]
        );
        assert!(got.iter().any(|g| g.0 == kind::CONTENT && g.2 == ["Hi."]));
    }

    /// A Responses event numbered `n`: `created`, `completed`, `failed`, or else an output-text
    /// delta of that text.
    #[cfg(feature = "responses")]
    fn responses_event(n: u32, kind: &str) -> String {
        match kind {
            "created" => format!(
                "data: {{\"type\":\"response.created\",\"sequence_number\":{n},\"response\":{{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"queued\",\"output\":[]}}}}\n\n"
            ),
            "completed" => format!(
                "data: {{\"type\":\"response.completed\",\"sequence_number\":{n},\"response\":{{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[]}}}}\n\n"
            ),
            "failed" => format!(
                "data: {{\"type\":\"response.failed\",\"sequence_number\":{n},\"response\":{{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"failed\",\"error\":{{\"code\":\"server_error\",\"message\":\"boom\"}},\"output\":[]}}}}\n\n"
            ),
            text => format!(
                "data: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{n},\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":\"{text}\"}}\n\n"
            ),
        }
    }

    #[test]
    #[cfg(feature = "responses")]
    fn a_responses_answer_resumes_after_the_last_event_and_skips_the_replay() {
        let ev = |n, k| responses_event(n, k);
        // Endpoint 0 speaks the Responses API (bit 4).
        let mut n = [input::UNSET; input::cfg::LEN];
        n[input::cfg::MAX_ATTEMPTS] = 4;
        let mut e = Engine::create(&n, 1, 1 << 4, 1, 2).expect("valid");
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        let mut got = String::new();
        let mut take = |chat: &Chat| {
            let b = &chat.body.sink.out;
            for (k, w) in records(b) {
                if k == kind::CONTENT {
                    got.push_str(&text(b, w[1], w[2]));
                }
            }
        };
        let (k, _) = step(&mut chat, &mut e, 0.0);
        assert_eq!(k, kind::ATTEMPT);
        assert!(
            records(&chat.body.sink.out)
                .iter()
                .all(|r| r.0 != kind::RESUME)
        );
        chat.head(200, b"content-type: text/event-stream\n");
        chat.feed(format!("{}{}{}", ev(0, "created"), ev(1, "Hel"), ev(2, "lo")).as_bytes());
        take(&chat);
        chat.end(&mut e, 10.0, end::NETWORK);
        // The next step: a resume after event 2 of resp_1, then its attempt.
        let mut t = 10.0;
        let recs = loop {
            chat.next(&mut e, t);
            let recs = records(&chat.body.sink.out);
            match recs.last() {
                Some((kind::SLEEP, w)) => t += f64::from(w[0]),
                _ => break recs,
            }
        };
        let at = recs
            .iter()
            .position(|r| r.0 == kind::RESUME)
            .expect("a resume record");
        assert_eq!(recs[at].1[0], 2);
        assert_eq!(
            text(&chat.body.sink.out, recs[at].1[1], recs[at].1[2]),
            "resp_1"
        );
        assert_eq!(recs.last().map(|r| r.0), Some(kind::ATTEMPT));
        // The server replays from the start: nothing is delivered twice.
        chat.head(200, b"content-type: text/event-stream\n");
        let replay = format!(
            "{}{}{}{}{}",
            ev(0, "created"),
            ev(1, "Hel"),
            ev(2, "lo"),
            ev(3, " there"),
            ev(4, "completed")
        );
        let f = chat.feed(replay.as_bytes());
        take(&chat);
        assert_ne!(f & flag::OVER, 0);
        chat.end(&mut e, t, end::BODY);
        let (k, d) = step(&mut chat, &mut e, t);
        assert_eq!((k, d[0], d[1]), (kind::DONE, 1, 2), "ok after two attempts");
        assert_eq!(got, "Hello there");

        // `response.failed` ends the call (answer failed, code 10): no resume.
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        step(&mut chat, &mut e, t);
        chat.head(200, b"");
        chat.feed(format!("{}{}{}", ev(0, "created"), ev(1, "a"), ev(2, "failed")).as_bytes());
        chat.end(&mut e, t, end::BODY);
        let (k, d) = step(&mut chat, &mut e, t);
        assert_eq!((k, d[0], d[1], d[4]), (kind::DONE, 0, 1, 10));

        // Background mode off (kind bit 2): a drop after text is partial output (reason 5).
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 4);
        step(&mut chat, &mut e, t);
        chat.head(200, b"");
        chat.feed(format!("{}{}", ev(0, "created"), ev(1, "a")).as_bytes());
        chat.end(&mut e, t, end::NETWORK);
        let (k, d) = step(&mut chat, &mut e, t);
        assert_eq!((k, d[0], d[3]), (kind::DONE, 0, reason::PARTIAL_OUTPUT));
    }

    #[test]
    #[cfg(feature = "responses")]
    fn a_long_responses_answer_goes_on_past_summaries_larger_than_the_buffer() {
        // `.done` events and the final response object repeat the whole answer: past the
        // parser's buffer they are dropped and the stream goes on; `response.completed` still
        // ends it. An oversized delta is still malformed.
        let big = "x".repeat(EVENT_CAPACITY);
        let summary = |t: &str, n: u32| {
            format!(
                "event: {t}\ndata: {{\"type\":\"{t}\",\"sequence_number\":{n},\"text\":\"{big}\"}}\n\n"
            )
        };
        let mut e =
            Engine::create(&[input::UNSET; input::cfg::LEN], 1, 1 << 4, 1, 2).expect("valid");
        let mut chat = Chat::new(&mut e, 0.0, 10, 0, 0);
        step(&mut chat, &mut e, 0.0);
        chat.head(200, b"content-type: text/event-stream\n");
        let stream = [
            responses_event(0, "created"),
            responses_event(1, "Hel"),
            responses_event(2, "lo"),
            summary("response.output_text.done", 3),
            summary("response.output_item.done", 4),
        ]
        .concat();
        let f = chat.feed(stream.as_bytes());
        assert_eq!(f & (flag::OVER | flag::MALFORMED), 0, "the stream goes on");
        let b = &chat.body.sink.out;
        let got: String = records(b)
            .iter()
            .filter(|(k, _)| *k == kind::CONTENT)
            .map(|(_, w)| text(b, w[1], w[2]))
            .collect();
        assert_eq!(got, "Hello");
        let f = chat.feed(summary("response.completed", 5).as_bytes());
        assert_eq!(
            f & (flag::OVER | flag::MALFORMED),
            flag::OVER,
            "and ends complete"
        );
        chat.end(&mut e, 10.0, end::BODY);
        let (k, d) = step(&mut chat, &mut e, 10.0);
        assert_eq!((k, d[0], d[1]), (kind::DONE, 1, 1), "ok, one attempt");

        let mut chat = Chat::new(&mut e, 20.0, 10, 0, 0);
        step(&mut chat, &mut e, 20.0);
        chat.head(200, b"content-type: text/event-stream\n");
        let f = chat.feed(summary("response.output_text.delta", 0).as_bytes());
        assert_eq!(f & flag::MALFORMED, flag::MALFORMED, "content lost");
    }

    #[test]
    fn health_bits() {
        let mut n = [input::UNSET; input::cfg::LEN];
        n[input::cfg::BREAKER_THRESHOLD] = 1;
        let mask = if cfg!(feature = "anthropic") { 0b10 } else { 0 };
        let mut e = Engine::create(&n, 2, mask, 1, 2).expect("valid");
        assert_eq!(e.health(0.0), 0b0101);
        let mut chat = Chat::new(&mut e, 0.0, 1, 0, 0);
        step(&mut chat, &mut e, 0.0);
        chat.end(&mut e, 1.0, end::CONNECT);
        assert_eq!(e.health(2.0) & 0b11, 2, "endpoint 0 cooling down");
        assert!(Engine::create(&n, 0, 0, 0, 0).is_none());
        let refused = Engine::create(&n, 2, 0b10, 1, 2).is_none();
        assert_eq!(
            refused,
            !cfg!(feature = "anthropic"),
            "Anthropic needs the feature"
        );
        assert!(Engine::create(&n, 5, 0, 0, 0).is_none());
    }
}
