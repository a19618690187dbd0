//! Handing decoded items to JavaScript cheaply: everything one network read produced goes over
//! in one call as a `Uint32Array` of records and one string. A record is a kind word and
//! fields; text fields are `[start, end)` offsets into the string in UTF-16 code units, so the
//! JS side slices with `String.prototype.slice` and creates no intermediate buffers.
//!
//! | kind | words after the kind |
//! |---|---|
//! | 1 content, 2 reasoning, 3 refusal, 5 finish, 10 role | choice, start, end |
//! | 4 tool call (a fragment), 15 whole tool call | choice, index, id start, id end, name start, name end, args start, args end (absent id/name: both [`NONE`]; a whole call has all three) |
//! | 6 usage | prompt, completion, total (saturated to `u32`) |
//! | 7 retry | next attempt, delay ms, reason (0 backoff, 1 retry-after, 2 rate limited), failure code, HTTP status (0 if none) |
//! | 8 failover | from, to |
//! | 9 discard | bytes (saturated) |
//! | 11 server error | HTTP status (200 for an error event in a stream), message start, end, type start, end, code start, end, param start, end (absent: both [`NONE`]) |
//! | 12 done | 1 ok / 0 failed, attempts, endpoint, reason (see [`reason`]), failure code, HTTP status (0 if none), requested Retry-After ms |
//! | 13 attempt | number, endpoint, retry count, first byte ms, first token ms, idle ms, deadline ms (times from the `now` given) |
//! | 14 sleep | ms |
//! | 16 resume | after (the sequence number of the last event delivered), response id start, end |
//!
//! Kinds 12–14 are the engine's steps (one per [`crate::Chat::next`], after its notices): the
//! JS side runs the attempt, sleeps, or ends the call.
//!
//! Failure codes (also in the call's error object, by name): 0 none, 1 connect, 2 first byte,
//! 3 first token, 4 idle, 5 status, 6 network, 7 truncated, 8 malformed, 9 server error,
//! 10 answer failed, 11 answer incomplete (the Responses API's own verdicts).
//! Messages for people are composed on the JS side: formatting here would pull `core::fmt`
//! into the module, a large share of its size.
//!
//! The JS reader is `decodeBatch` in `js/src/index.js`; the two change together. Both are
//! checked against one description, `wasm-target/batch-layout.json`: this module's tests (the
//! writer) and the package's `test/parity.test.mjs` (the reader).

use alloc::string::String;
use alloc::vec::Vec;
use steadyllm_core::call::{
    AttemptPlan, CallError, CallEvent, Failure, Phase, StreamFault, Summary, WaitReason,
};
use steadyllm_core::decode::{ApiError, StreamItem, ToolCallDelta};
use steadyllm_core::json::JsonStr;
use steadyllm_core::time::{Duration, Instant};
use steadyllm_core::tools::AssembledCall;

/// Offset of an absent text field.
pub const NONE: u32 = u32::MAX;

/// Record kinds.
pub mod kind {
    /// Answer text.
    pub const CONTENT: u32 = 1;
    /// Reasoning text.
    pub const REASONING: u32 = 2;
    /// Refusal text.
    pub const REFUSAL: u32 = 3;
    /// Tool-call fragment.
    pub const TOOL_CALL: u32 = 4;
    /// Finish reason.
    pub const FINISH: u32 = 5;
    /// Token usage.
    pub const USAGE: u32 = 6;
    /// Waiting before a retry.
    pub const RETRY: u32 = 7;
    /// Failing over.
    pub const FAILOVER: u32 = 8;
    /// Discard what was shown (restart on partial).
    pub const DISCARD: u32 = 9;
    /// The author role.
    pub const ROLE: u32 = 10;
    /// An error object from the server (an error body or an error event).
    pub const SERVER_ERROR: u32 = 11;
    /// Step: the call is over.
    pub const DONE: u32 = 12;
    /// Step: run this attempt.
    pub const ATTEMPT: u32 = 13;
    /// Step: wait.
    pub const SLEEP: u32 = 14;
    /// A whole tool call (its fragments joined by the core's assembler).
    pub const TOOL_CALL_DONE: u32 = 15;
    /// The next attempt resumes a Responses answer (before its attempt record).
    pub const RESUME: u32 = 16;
}

/// Why a call ended (the `reason` word of a done record).
pub mod reason {
    /// Completed.
    pub const OK: u32 = 0;
    /// The total deadline passed.
    pub const DEADLINE_EXCEEDED: u32 = 1;
    /// Attempts used up.
    pub const RETRIES_EXHAUSTED: u32 = 2;
    /// The retry budget is empty.
    pub const BUDGET_EXHAUSTED: u32 = 3;
    /// Retrying cannot help.
    pub const NOT_RETRYABLE: u32 = 4;
    /// Failed after part of the answer was delivered.
    pub const PARTIAL_OUTPUT: u32 = 5;
    /// The server asked to wait longer than allowed.
    pub const RETRY_AFTER_TOO_LONG: u32 = 6;
    /// Every endpoint is cooling down.
    pub const NO_ENDPOINT_AVAILABLE: u32 = 7;
}

/// A duration in ms as a word (saturated).
fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Records and text of one hand-over.
#[derive(Default, Debug)]
pub struct Batch {
    /// The records.
    pub words: Vec<u32>,
    /// All text fields, concatenated.
    pub text: String,
    /// `text`'s length in UTF-16 code units.
    utf16: u32,
}

/// UTF-16 length of valid UTF-8: one unit per scalar, two for scalars of four bytes.
fn utf16_len(s: &str) -> u32 {
    let mut n = 0u32;
    for &b in s.as_bytes() {
        // Continuation bytes add nothing; lead bytes of 4-byte scalars add two.
        n = n.wrapping_add(u32::from((b & 0xC0) != 0x80) + u32::from(b >= 0xF0));
    }
    n
}

impl Batch {
    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Forgets everything (keeps the allocations).
    pub fn clear(&mut self) {
        self.words.clear();
        self.text.clear();
        self.utf16 = 0;
    }

    fn push_str(&mut self, s: &str) -> (u32, u32) {
        let start = self.utf16;
        self.text.push_str(s);
        self.utf16 = self.utf16.wrapping_add(utf16_len(s));
        (start, self.utf16)
    }

    fn push_json(&mut self, s: JsonStr<'_>) -> (u32, u32) {
        let start = self.utf16;
        if let Some(plain) = s.as_str() {
            self.push_str(plain);
        } else {
            let mut p = s.pieces();
            while let Some(piece) = p.next_piece() {
                self.text.push_str(piece);
                self.utf16 = self.utf16.wrapping_add(utf16_len(piece));
            }
        }
        (start, self.utf16)
    }

    fn push_opt(&mut self, s: Option<JsonStr<'_>>) -> (u32, u32) {
        match s {
            Some(s) => self.push_json(s),
            None => (NONE, NONE),
        }
    }

    fn text_record(&mut self, k: u32, choice: u32, s: JsonStr<'_>) {
        let (a, b) = self.push_json(s);
        self.words.extend_from_slice(&[k, choice, a, b]);
    }

    /// Adds an error object the server sent with `status` (200: an event in a stream).
    pub fn server_error(&mut self, status: u16, e: &ApiError<'_>) {
        let (ma, mb) = self.push_json(e.message);
        let (ta, tb) = self.push_opt(e.kind);
        let (ca, cb) = self.push_opt(e.code);
        let (pa, pb) = self.push_opt(e.param);
        self.words.extend_from_slice(&[
            kind::SERVER_ERROR,
            u32::from(status),
            ma,
            mb,
            ta,
            tb,
            ca,
            cb,
            pa,
            pb,
        ]);
    }

    /// Adds the step "run this attempt"; times are relative to `now`.
    pub fn attempt(&mut self, p: &AttemptPlan, now: Instant) {
        self.words.extend_from_slice(&[
            kind::ATTEMPT,
            p.number,
            u32::try_from(p.endpoint).unwrap_or(u32::MAX),
            p.retry_count,
            ms(p.first_byte),
            ms(p.first_token),
            ms(p.idle),
            ms(p.deadline.saturating_since(now)),
        ]);
    }

    /// Adds the notice "the next attempt resumes response `id` after event `after`": the
    /// wrapper sends `GET …/responses/{id}?stream=true&starting_after={after}` for it.
    pub fn resume(&mut self, after: u32, id: &str) {
        let (a, b) = self.push_str(id);
        self.words.extend_from_slice(&[kind::RESUME, after, a, b]);
    }

    /// Adds the step "wait this long".
    pub fn sleep(&mut self, d: Duration) {
        self.words.extend_from_slice(&[kind::SLEEP, ms(d)]);
    }

    /// Adds the step "the call is over". `last_status`: the status of the last response
    /// head, reported when the failure has none of its own.
    pub fn done(&mut self, r: &Result<Summary, CallError>, attempts: u32, last_status: u16) {
        let (ok, endpoint, why, failure, wait) = match *r {
            Ok(s) => (1, s.endpoint, reason::OK, None, Duration::ZERO),
            Err(e) => {
                let (why, failure, wait) = match e {
                    CallError::DeadlineExceeded { last, .. } => {
                        (reason::DEADLINE_EXCEEDED, last, None)
                    }
                    CallError::RetriesExhausted { last, .. } => {
                        (reason::RETRIES_EXHAUSTED, Some(last), None)
                    }
                    CallError::BudgetExhausted { last } => {
                        (reason::BUDGET_EXHAUSTED, Some(last), None)
                    }
                    CallError::NotRetryable { last } => (reason::NOT_RETRYABLE, Some(last), None),
                    CallError::PartialOutput { last, .. } => {
                        (reason::PARTIAL_OUTPUT, Some(last), None)
                    }
                    CallError::RetryAfterTooLong { requested } => {
                        (reason::RETRY_AFTER_TOO_LONG, None, Some(requested))
                    }
                    CallError::NoEndpointAvailable => (reason::NO_ENDPOINT_AVAILABLE, None, None),
                };
                (0, 0, why, failure, wait.unwrap_or(Duration::ZERO))
            }
        };
        let status = match failure {
            Some(Failure::Status(s)) => s,
            None => last_status,
            _ => 0,
        };
        self.words.extend_from_slice(&[
            kind::DONE,
            ok,
            attempts,
            u32::try_from(endpoint).unwrap_or(u32::MAX),
            why,
            failure_code(failure),
            u32::from(status),
            ms(wait),
        ]);
    }

    /// Adds a decoded item. `Done` and in-stream errors add nothing (the caller reports
    /// errors with [`Batch::server_error`]).
    pub fn item(&mut self, item: &StreamItem<'_>) {
        match *item {
            StreamItem::Content { choice, text } => self.text_record(kind::CONTENT, choice, text),
            StreamItem::Reasoning { choice, text } => {
                self.text_record(kind::REASONING, choice, text)
            }
            StreamItem::Refusal { choice, text } => self.text_record(kind::REFUSAL, choice, text),
            StreamItem::Finish { choice, reason } => self.text_record(kind::FINISH, choice, reason),
            StreamItem::Role { choice, role } => self.text_record(kind::ROLE, choice, role),
            StreamItem::ToolCall(t) => self.tool_record(kind::TOOL_CALL, &t),
            StreamItem::Usage(u) => {
                let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                self.words.extend_from_slice(&[
                    kind::USAGE,
                    sat(u.prompt_tokens),
                    sat(u.completion_tokens),
                    sat(u.total_tokens),
                ]);
            }
            StreamItem::Error(_) | StreamItem::Done => {}
            // Responses' id (`StreamItem::Created`, with steadyllm-core's `responses`).
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Adds a whole tool call.
    pub fn tool_call_done(&mut self, c: &AssembledCall<'_>) {
        self.tool_record(
            kind::TOOL_CALL_DONE,
            &ToolCallDelta {
                choice: c.choice,
                index: c.index,
                id: Some(JsonStr::plain(c.id)),
                name: Some(JsonStr::plain(c.name)),
                arguments: JsonStr::plain(c.arguments),
            },
        );
    }

    fn tool_record(&mut self, k: u32, t: &ToolCallDelta<'_>) {
        let (ia, ib) = self.push_opt(t.id);
        let (na, nb) = self.push_opt(t.name);
        let (aa, ab) = self.push_json(t.arguments);
        self.words
            .extend_from_slice(&[k, t.choice, t.index, ia, ib, na, nb, aa, ab]);
    }

    /// Adds an engine decision the page may show; `next_attempt` is the attempt a wait
    /// leads to. Other decisions add nothing.
    pub fn engine(&mut self, e: &CallEvent, next_attempt: u32) {
        match *e {
            CallEvent::Waiting { delay, reason } => {
                let (code, failure) = match reason {
                    WaitReason::Backoff(f) => (0, Some(f)),
                    WaitReason::RetryAfter(f) => (1, Some(f)),
                    WaitReason::EndpointsUnavailable => (2, None),
                };
                let status = match failure {
                    Some(Failure::Status(s)) => u32::from(s),
                    _ => 0,
                };
                let ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
                self.words.extend_from_slice(&[
                    kind::RETRY,
                    next_attempt,
                    ms,
                    code,
                    failure_code(failure),
                    status,
                ]);
            }
            CallEvent::FailingOver { from, to } => {
                let idx = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
                self.words
                    .extend_from_slice(&[kind::FAILOVER, idx(from), idx(to)]);
            }
            CallEvent::DiscardDelivered { bytes } => {
                let b = u32::try_from(bytes).unwrap_or(u32::MAX);
                self.words.extend_from_slice(&[kind::DISCARD, b]);
            }
            _ => {}
        }
    }
}

/// The code of a failure (see the module docs).
pub fn failure_code(f: Option<Failure>) -> u32 {
    match f {
        None => 0,
        // A browser never shows the page a certificate, handshake, name or response-head
        // failure (fetch says only that it failed, and reads the head itself), so these come
        // from native adapters alone: a connection failure.
        Some(
            Failure::Connect
            | Failure::Certificate(_)
            | Failure::Tls
            | Failure::NameNotResolved
            | Failure::Response(_),
        ) => 1,
        Some(Failure::Timeout(Phase::Connect | Phase::FirstByte)) => 2,
        Some(Failure::Timeout(Phase::FirstToken)) => 3,
        Some(Failure::Timeout(Phase::Idle)) => 4,
        Some(Failure::Status(_)) => 5,
        Some(Failure::Stream(StreamFault::Network)) => 6,
        Some(Failure::Stream(StreamFault::Truncated)) => 7,
        Some(Failure::Stream(StreamFault::Malformed)) => 8,
        Some(Failure::Stream(StreamFault::ServerError)) => 9,
        Some(Failure::AnswerFailed) => 10,
        Some(Failure::AnswerIncomplete) => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steadyllm_core::decode::{StreamDecoder, Usage};
    use steadyllm_core::time::Duration;

    fn utf16_slice(text: &str, a: u32, b: u32) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        String::from_utf16(&units[a as usize..b as usize]).unwrap()
    }

    /// A field's expected content in a layout check.
    enum Want<'a> {
        Word(u32),
        Text(&'a str),
        Absent,
        /// The index of this name in the layout's code table of the field's type.
        Code(&'a str),
    }

    fn layout() -> serde_json::Value {
        serde_json::from_str(include_str!("../batch-layout.json")).expect("valid JSON")
    }

    /// Checks the one record in `batch` against the layout's kind `name`: its code, its length
    /// and every field (all must be given).
    fn check(layout: &serde_json::Value, name: &str, batch: &Batch, want: &[(&str, Want<'_>)]) {
        let k = &layout["kinds"][name];
        let w = &batch.words;
        assert_eq!(Some(u64::from(w[0])), k["code"].as_u64(), "{name}: code");
        let fields = k["fields"].as_array().expect("fields");
        assert_eq!(fields.len(), want.len(), "{name}: every field checked");
        let mut at = 1;
        for f in fields {
            let (field, ty) = (f[0].as_str().expect("name"), f[1].as_str().expect("type"));
            let (_, v) = want
                .iter()
                .find(|(n, _)| *n == field)
                .unwrap_or_else(|| panic!("{name}.{field}: no expectation"));
            let two = ty == "text" || ty == "opt_text";
            match v {
                Want::Word(n) => assert_eq!(w[at], *n, "{name}.{field}"),
                Want::Code(c) => {
                    let table = layout["codes"][ty].as_array().expect("a code table");
                    let i = table.iter().position(|t| t.as_str() == Some(c));
                    assert_eq!(Some(w[at] as usize), i, "{name}.{field}");
                }
                Want::Text(t) => {
                    assert!(two, "{name}.{field} is text");
                    assert_eq!(
                        utf16_slice(&batch.text, w[at], w[at + 1]),
                        *t,
                        "{name}.{field}"
                    );
                }
                Want::Absent => {
                    assert_eq!(ty, "opt_text", "{name}.{field} may be absent");
                    assert_eq!((w[at], w[at + 1]), (NONE, NONE), "{name}.{field}");
                }
            }
            at += if two { 2 } else { 1 };
        }
        assert_eq!(w.len(), at, "{name}: the record's length");
    }

    #[test]
    fn records_follow_batch_layout_json() {
        use Want::*;
        let l = layout();
        assert_eq!(l["none"].as_u64(), Some(u64::from(NONE)));
        let codes = |t: &str| -> Vec<Option<String>> {
            l["codes"][t]
                .as_array()
                .expect("table")
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect()
        };
        let reasons = codes("reason");
        for (code, name) in [
            (reason::OK, "ok"),
            (reason::DEADLINE_EXCEEDED, "deadline_exceeded"),
            (reason::RETRIES_EXHAUSTED, "retries_exhausted"),
            (reason::BUDGET_EXHAUSTED, "budget_exhausted"),
            (reason::NOT_RETRYABLE, "not_retryable"),
            (reason::PARTIAL_OUTPUT, "partial_output"),
            (reason::RETRY_AFTER_TOO_LONG, "retry_after_too_long"),
            (reason::NO_ENDPOINT_AVAILABLE, "no_endpoint_available"),
        ] {
            assert_eq!(reasons[code as usize].as_deref(), Some(name));
        }
        assert_eq!(reasons.len(), 8);
        let failures = codes("failure");
        for (f, name) in [
            (None, None),
            (Some(Failure::Connect), Some("connect")),
            (Some(Failure::Tls), Some("connect")),
            (Some(Failure::NameNotResolved), Some("connect")),
            (Some(Failure::Timeout(Phase::Connect)), Some("first_byte")),
            (Some(Failure::Timeout(Phase::FirstByte)), Some("first_byte")),
            (
                Some(Failure::Timeout(Phase::FirstToken)),
                Some("first_token"),
            ),
            (Some(Failure::Timeout(Phase::Idle)), Some("idle")),
            (Some(Failure::Status(500)), Some("status")),
            (Some(Failure::Stream(StreamFault::Network)), Some("network")),
            (
                Some(Failure::Stream(StreamFault::Truncated)),
                Some("truncated"),
            ),
            (
                Some(Failure::Stream(StreamFault::Malformed)),
                Some("malformed"),
            ),
            (
                Some(Failure::Stream(StreamFault::ServerError)),
                Some("server_error"),
            ),
            (Some(Failure::AnswerFailed), Some("answer_failed")),
            (Some(Failure::AnswerIncomplete), Some("answer_incomplete")),
        ] {
            assert_eq!(failures[failure_code(f) as usize].as_deref(), name, "{f:?}");
        }
        assert_eq!(failures.len(), 12);

        let one = |f: &dyn Fn(&mut Batch)| {
            let mut b = Batch::default();
            f(&mut b);
            b
        };
        let s = JsonStr::plain;
        for (name, item) in [
            (
                "content",
                StreamItem::Content {
                    choice: 3,
                    text: s("h\u{e9}😀"),
                },
            ),
            (
                "reasoning",
                StreamItem::Reasoning {
                    choice: 3,
                    text: s("h\u{e9}😀"),
                },
            ),
            (
                "refusal",
                StreamItem::Refusal {
                    choice: 3,
                    text: s("h\u{e9}😀"),
                },
            ),
            (
                "role",
                StreamItem::Role {
                    choice: 3,
                    role: s("h\u{e9}😀"),
                },
            ),
        ] {
            let field = if name == "role" { "role" } else { "text" };
            let b = one(&|b| b.item(&item));
            check(
                &l,
                name,
                &b,
                &[("choice", Word(3)), (field, Text("h\u{e9}😀"))],
            );
        }
        let b = one(&|b| {
            b.item(&StreamItem::Finish {
                choice: 2,
                reason: s("stop"),
            })
        });
        check(
            &l,
            "finish",
            &b,
            &[("choice", Word(2)), ("reason", Text("stop"))],
        );
        for (id, name) in [(Some("c\u{e9}"), Some("f")), (None, None)] {
            let b = one(&|b| {
                b.item(&StreamItem::ToolCall(ToolCallDelta {
                    choice: 1,
                    index: 2,
                    id: id.map(s),
                    name: name.map(s),
                    arguments: s("{\"a\":1}"),
                }))
            });
            let opt = |v: Option<&'static str>| v.map_or(Absent, Text);
            check(
                &l,
                "tool_call",
                &b,
                &[
                    ("choice", Word(1)),
                    ("index", Word(2)),
                    ("id", opt(id)),
                    ("name", opt(name)),
                    ("arguments", Text("{\"a\":1}")),
                ],
            );
        }
        let b = one(&|b| {
            b.tool_call_done(&AssembledCall {
                choice: 1,
                index: 4,
                id: "i",
                name: "n",
                arguments: "{}",
            })
        });
        check(
            &l,
            "tool_call_done",
            &b,
            &[
                ("choice", Word(1)),
                ("index", Word(4)),
                ("id", Text("i")),
                ("name", Text("n")),
                ("arguments", Text("{}")),
            ],
        );
        let b = one(&|b| {
            b.item(&StreamItem::Usage(steadyllm_core::decode::Usage {
                prompt_tokens: 5,
                completion_tokens: 6,
                total_tokens: 11,
            }))
        });
        check(
            &l,
            "usage",
            &b,
            &[
                ("prompt", Word(5)),
                ("completion", Word(6)),
                ("total", Word(11)),
            ],
        );
        let b = one(&|b| {
            b.engine(
                &CallEvent::Waiting {
                    delay: Duration::from_millis(2000),
                    reason: WaitReason::RetryAfter(Failure::Status(429)),
                },
                2,
            )
        });
        check(
            &l,
            "retry",
            &b,
            &[
                ("attempt", Word(2)),
                ("delay_ms", Word(2000)),
                ("reason", Code("retry_after")),
                ("failure", Code("status")),
                ("status", Word(429)),
            ],
        );
        let b = one(&|b| {
            b.engine(
                &CallEvent::Waiting {
                    delay: Duration::from_millis(5),
                    reason: WaitReason::EndpointsUnavailable,
                },
                3,
            )
        });
        check(
            &l,
            "retry",
            &b,
            &[
                ("attempt", Word(3)),
                ("delay_ms", Word(5)),
                ("reason", Code("rate_limited")),
                ("failure", Word(0)),
                ("status", Word(0)),
            ],
        );
        let b = one(&|b| b.engine(&CallEvent::FailingOver { from: 0, to: 1 }, 2));
        check(&l, "failover", &b, &[("from", Word(0)), ("to", Word(1))]);
        let b = one(&|b| b.engine(&CallEvent::DiscardDelivered { bytes: 12 }, 2));
        check(&l, "discard", &b, &[("bytes", Word(12))]);
        let b = one(&|b| b.resume(41, "resp_\u{e9}😀"));
        check(
            &l,
            "resume",
            &b,
            &[("after", Word(41)), ("id", Text("resp_\u{e9}😀"))],
        );
        let e = ApiError {
            message: s("m\u{e9}"),
            kind: Some(s("t")),
            code: Some(s("429")),
            param: None,
        };
        let b = one(&|b| b.server_error(503, &e));
        check(
            &l,
            "server_error",
            &b,
            &[
                ("status", Word(503)),
                ("message", Text("m\u{e9}")),
                ("type", Text("t")),
                ("code", Text("429")),
                ("param", Absent),
            ],
        );
        let b = one(&|b| {
            b.done(
                &Err(CallError::RetriesExhausted {
                    attempts: 3,
                    last: Failure::Timeout(Phase::Idle),
                }),
                3,
                0,
            )
        });
        check(
            &l,
            "done",
            &b,
            &[
                ("ok", Word(0)),
                ("attempts", Word(3)),
                ("endpoint", Word(0)),
                ("reason", Code("retries_exhausted")),
                ("failure", Code("idle")),
                ("status", Word(0)),
                ("retry_after_ms", Word(0)),
            ],
        );
        let b = one(&|b| {
            b.done(
                &Err(CallError::RetryAfterTooLong {
                    requested: Duration::from_millis(90_000),
                }),
                2,
                429,
            )
        });
        check(
            &l,
            "done",
            &b,
            &[
                ("ok", Word(0)),
                ("attempts", Word(2)),
                ("endpoint", Word(0)),
                ("reason", Code("retry_after_too_long")),
                ("failure", Word(0)),
                ("status", Word(429)),
                ("retry_after_ms", Word(90_000)),
            ],
        );
        let b = one(&|b| {
            b.done(
                &Ok(Summary {
                    attempts: 2,
                    endpoint: 1,
                    delivered_bytes: 9,
                }),
                2,
                200,
            )
        });
        check(
            &l,
            "done",
            &b,
            &[
                ("ok", Word(1)),
                ("attempts", Word(2)),
                ("endpoint", Word(1)),
                ("reason", Code("ok")),
                ("failure", Word(0)),
                ("status", Word(200)),
                ("retry_after_ms", Word(0)),
            ],
        );
        let now = Instant::from_millis(1000);
        let plan = AttemptPlan {
            number: 2,
            retry_count: 1,
            endpoint: 1,
            connect_by: now,
            first_byte: Duration::from_millis(3),
            first_token: Duration::from_millis(4),
            idle: Duration::from_millis(5),
            deadline: Instant::from_millis(1600),
            total_per_kib: Duration::ZERO,
            latest: Instant::from_millis(1600),
            resume_after: None,
        };
        let b = one(&|b| b.attempt(&plan, now));
        check(
            &l,
            "attempt",
            &b,
            &[
                ("number", Word(2)),
                ("endpoint", Word(1)),
                ("retry_count", Word(1)),
                ("first_byte_ms", Word(3)),
                ("first_token_ms", Word(4)),
                ("idle_ms", Word(5)),
                ("deadline_ms", Word(600)),
            ],
        );
        let b = one(&|b| b.sleep(Duration::from_millis(750)));
        check(&l, "sleep", &b, &[("ms", Word(750))]);
        assert_eq!(
            l["kinds"].as_object().map(|k| k.len()),
            Some(16),
            "every kind checked"
        );
    }

    #[test]
    fn utf16_offsets_match_javascript() {
        let mut batch = Batch::default();
        let mut dec = StreamDecoder::default();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"content":"a\u00e9—"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"😀 x\"y\\n"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"reasoning_content":"think"}}]}"#,
        ] {
            dec.decode(data, |item| batch.item(&item)).unwrap();
        }
        let w = &batch.words;
        assert_eq!(w.len(), 12);
        assert_eq!(w[0], kind::CONTENT);
        assert_eq!(utf16_slice(&batch.text, w[2], w[3]), "aé—");
        assert_eq!(w[4], kind::CONTENT);
        assert_eq!(utf16_slice(&batch.text, w[6], w[7]), "😀 x\"y\\n");
        assert_eq!((w[8], w[9]), (kind::REASONING, 1));
        assert_eq!(utf16_slice(&batch.text, w[10], w[11]), "think");
        assert_eq!(batch.utf16 as usize, batch.text.encode_utf16().count());
    }

    #[test]
    fn tool_calls_usage_and_absent_fields() {
        let mut batch = Batch::default();
        batch.item(&StreamItem::ToolCall(ToolCallDelta {
            choice: 0,
            index: 2,
            id: None,
            name: Some(JsonStr::plain("get_weather")),
            arguments: JsonStr::plain("{\"city\""),
        }));
        batch.item(&StreamItem::Usage(Usage {
            prompt_tokens: 1,
            completion_tokens: u64::MAX,
            total_tokens: 3,
        }));
        batch.item(&StreamItem::Done);
        let w = &batch.words;
        assert_eq!(&w[..5], &[kind::TOOL_CALL, 0, 2, NONE, NONE]);
        assert_eq!(utf16_slice(&batch.text, w[5], w[6]), "get_weather");
        assert_eq!(utf16_slice(&batch.text, w[7], w[8]), "{\"city\"");
        assert_eq!(&w[9..], &[kind::USAGE, 1, u32::MAX, 3]);
    }

    #[test]
    fn engine_notices_carry_codes() {
        let mut batch = Batch::default();
        batch.engine(
            &CallEvent::Waiting {
                delay: Duration::from_millis(2000),
                reason: WaitReason::RetryAfter(Failure::Status(429)),
            },
            2,
        );
        batch.engine(&CallEvent::FailingOver { from: 0, to: 1 }, 3);
        batch.engine(&CallEvent::BudgetExhausted, 3);
        batch.engine(
            &CallEvent::Waiting {
                delay: Duration::from_millis(700),
                reason: WaitReason::Backoff(Failure::Timeout(Phase::Idle)),
            },
            4,
        );
        batch.engine(&CallEvent::DiscardDelivered { bytes: 12 }, 4);
        assert_eq!(
            batch.words,
            [
                kind::RETRY,
                2,
                2000,
                1,
                5,
                429,
                kind::FAILOVER,
                0,
                1,
                kind::RETRY,
                4,
                700,
                0,
                4,
                0,
                kind::DISCARD,
                12
            ]
        );
        assert!(batch.text.is_empty());
        batch.clear();
        assert!(batch.is_empty());
    }
}
