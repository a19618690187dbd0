//! Pulling an answer: `next().await` instead of a callback.
//!
//! [`Client::chat`](crate::Client::chat) pushes every item into a callback; a [`DeltaQueue`]
//! is such a callback that keeps the items (copied, decoded) in a fixed buffer, and
//! [`ChatStream`] drives the call and hands them out one by one:
//!
//! ```no_run
//! # async fn demo(client: &mut steadyllm_embassy::Client<'_, steadyllm_embassy::host::HostStack, steadyllm_embassy::host::HostStack>,
//! #               request: &steadyllm_embassy::steadyllm_core::request::ChatRequest<'_>,
//! #               bufs: &mut steadyllm_embassy::Buffers<'_>) {
//! use core::pin::pin;
//! use steadyllm_embassy::{ChatStream, Delta, DeltaQueue};
//!
//! let queue = DeltaQueue::<8192>::new();
//! let call = pin!(client.chat(request, bufs, |event| queue.push(event)));
//! let mut stream = ChatStream::new(call, &queue);
//! while let Some(item) = stream.next().await {
//!     match item {
//!         Ok(Delta::Content { text, .. }) => { /* show it */ }
//!         Ok(_) => {}
//!         Err(e) => { /* the call failed; everything shown so far stays valid */ }
//!     }
//! }
//! # }
//! ```
//!
//! The call pauses after each network read until the stream has handed out everything that
//! read produced, so the queue never holds more than one read's worth: make `Q` at least
//! 1.25 × the response buffer (records carry a few bytes of framing each), and larger than
//! the largest whole tool call.
//!
//! Tool calls come as fragments ([`Delta::ToolCall`]) and whole ([`Delta::ToolCallDone`], just
//! before the finish reason that ends them): the queue joins them with the core's
//! [`ToolCallAssembler`] in `T` bytes of its own (each call takes its id, name and arguments
//! back to back; up to 8 calls per answer). Calls that do not fit are lost, and the stream
//! says so with [`ChatError::StreamQueueFull`].

use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::Poll;

use steadyllm_core::call::{CallEvent, Summary};
use steadyllm_core::decode::{StreamItem, Usage};
use steadyllm_core::json::JsonStr;
use steadyllm_core::tools::{CallBuffer, ToolCallAssembler};

use crate::{ChatError, Event};

/// One pulled item; strings borrow the stream until the next `next()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta<'s> {
    /// The author role (usually `assistant`).
    Role {
        /// Choice index.
        choice: u32,
        /// The role.
        role: &'s str,
    },
    /// Answer text.
    Content {
        /// Choice index.
        choice: u32,
        /// The text.
        text: &'s str,
    },
    /// Reasoning text.
    Reasoning {
        /// Choice index.
        choice: u32,
        /// The text.
        text: &'s str,
    },
    /// Refusal text.
    Refusal {
        /// Choice index.
        choice: u32,
        /// The text.
        text: &'s str,
    },
    /// A tool-call fragment (the whole call follows as [`Delta::ToolCallDone`]).
    ToolCall {
        /// Choice index.
        choice: u32,
        /// Call position.
        index: u32,
        /// Call id (first fragment).
        id: Option<&'s str>,
        /// Function name (first fragment).
        name: Option<&'s str>,
        /// A piece of the arguments JSON.
        arguments: &'s str,
    },
    /// A whole tool call, its fragments joined (before the finish reason that ended it).
    ToolCallDone {
        /// Choice index.
        choice: u32,
        /// Call position.
        index: u32,
        /// Call id.
        id: &'s str,
        /// Function name.
        name: &'s str,
        /// The arguments JSON.
        arguments: &'s str,
    },
    /// Why a choice ended.
    Finish {
        /// Choice index.
        choice: u32,
        /// The reason.
        reason: &'s str,
    },
    /// Token usage.
    Usage(Usage),
    /// An error the server sent inside the stream.
    StreamError {
        /// Its message.
        message: &'s str,
    },
    /// The server's error for a non-2xx answer.
    ServerError {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: &'s str,
    },
    /// An engine decision ("retrying in 2 s…", "discard what was shown").
    Engine(CallEvent),
    /// The end marker.
    Done,
}

const TAG_ROLE: u8 = 1;
const TAG_CONTENT: u8 = 2;
const TAG_REASONING: u8 = 3;
const TAG_REFUSAL: u8 = 4;
const TAG_TOOL: u8 = 5;
const TAG_FINISH: u8 = 6;
const TAG_USAGE: u8 = 7;
const TAG_STREAM_ERROR: u8 = 8;
const TAG_SERVER_ERROR: u8 = 9;
const TAG_ENGINE: u8 = 10;
const TAG_DONE: u8 = 11;
const TAG_TOOL_DONE: u8 = 12;

const EVENTS: usize = 16;

/// The records waiting to be pulled.
struct Records<const Q: usize> {
    buf: [u8; Q],
    write: usize,
    read: usize,
    events: [Option<CallEvent>; EVENTS],
    overflow: bool,
}

struct Inner<const Q: usize, const T: usize> {
    records: Records<Q>,
    tools: ToolCallAssembler<CallBuffer<[u8; T]>>,
}

/// A fixed buffer of pulled items (`Q` bytes) with the storage that joins tool calls (`T`
/// bytes); see the module docs.
pub struct DeltaQueue<const Q: usize, const T: usize = 1024> {
    inner: RefCell<Inner<Q, T>>,
}

impl<const Q: usize, const T: usize> Default for DeltaQueue<Q, T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes one record: tag, choice, index, optional status/usage numbers, up to three strings
/// (each: presence byte, u16 length, bytes).
struct Rec<'a, const Q: usize> {
    inner: &'a mut Records<Q>,
    start: usize,
    ok: bool,
}

impl<const Q: usize> Rec<'_, Q> {
    fn bytes(&mut self, b: &[u8]) {
        let end = self.inner.write + b.len();
        match self.inner.buf.get_mut(self.inner.write..end) {
            Some(d) if self.ok => {
                d.copy_from_slice(b);
                self.inner.write = end;
            }
            _ => self.ok = false,
        }
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn str(&mut self, s: Option<JsonStr<'_>>) {
        let Some(s) = s else {
            self.bytes(&[0]);
            return;
        };
        let len = u16::try_from(s.decoded_len()).unwrap_or(u16::MAX);
        self.bytes(&[1]);
        self.bytes(&len.to_le_bytes());
        let mut p = s.pieces();
        let mut written = 0usize;
        while let Some(piece) = p.next_piece() {
            written += piece.len();
            if written > usize::from(len) {
                self.ok = false;
                return;
            }
            self.bytes(piece.as_bytes());
        }
    }

    fn finish(self) {
        if !self.ok {
            // Roll back the partial record and remember that something was lost.
            self.inner.write = self.start;
            self.inner.overflow = true;
        }
    }
}

fn rec<const Q: usize>(
    records: &mut Records<Q>,
    tag: u8,
    choice: u32,
    index: u32,
    f: impl FnOnce(&mut Rec<'_, Q>),
) {
    let start = records.write;
    let mut r = Rec {
        inner: records,
        start,
        ok: true,
    };
    r.bytes(&[tag]);
    r.u32(choice);
    r.u32(index);
    f(&mut r);
    r.finish();
}

impl<const Q: usize, const T: usize> Inner<Q, T> {
    /// Passes `item` to the tool-call assembler and records the calls it finished. The first
    /// refused fragment of a call is reported (once) as an overflow.
    fn assemble(&mut self, item: &StreamItem<'_>) {
        let before = self.tools.overflowed();
        let _ = self.tools.handle_item(item);
        if self.tools.overflowed() && !before {
            self.records.overflow = true;
        }
        self.record_finished();
    }

    /// Records every finished call not recorded yet; `true` if there was one.
    fn record_finished(&mut self) -> bool {
        let mut any = false;
        while let Some(c) = self.tools.poll_finished() {
            any = true;
            rec(&mut self.records, TAG_TOOL_DONE, c.choice, c.index, |r| {
                r.str(Some(JsonStr::plain(c.id)));
                r.str(Some(JsonStr::plain(c.name)));
                r.str(Some(JsonStr::plain(c.arguments)));
            });
        }
        any
    }
}

impl<const Q: usize, const T: usize> DeltaQueue<Q, T> {
    /// An empty queue.
    pub const fn new() -> Self {
        DeltaQueue {
            inner: RefCell::new(Inner {
                records: Records {
                    buf: [0; Q],
                    write: 0,
                    read: 0,
                    events: [None; EVENTS],
                    overflow: false,
                },
                tools: ToolCallAssembler::new([0; T]),
            }),
        }
    }

    fn rec(&self, tag: u8, choice: u32, index: u32, f: impl FnOnce(&mut Rec<'_, Q>)) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        rec(&mut inner.records, tag, choice, index, f);
    }

    /// Passes an item to the tool-call assembler (recording the calls it finished).
    fn assemble(&self, item: &StreamItem<'_>) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.assemble(item);
        }
    }

    /// The answer is complete: records the tool calls still open; `true` if there were any.
    fn finish_tool_calls(&self) -> bool {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return false;
        };
        inner.tools.finish_all();
        inner.record_finished()
    }

    /// Keeps one event of a call: pass `|event| queue.push(event)` as the call's callback.
    pub fn push(&self, event: Event<'_>) {
        if let Event::Item(ref item @ (StreamItem::Finish { .. } | StreamItem::Done)) = event {
            // Whole calls before the finish reason or end marker that ends them.
            self.assemble(item);
        }
        match event {
            Event::Item(item) => match item {
                StreamItem::Role { choice, role } => {
                    self.rec(TAG_ROLE, choice, 0, |r| r.str(Some(role)))
                }
                StreamItem::Content { choice, text } => {
                    self.rec(TAG_CONTENT, choice, 0, |r| r.str(Some(text)))
                }
                StreamItem::Reasoning { choice, text } => {
                    self.rec(TAG_REASONING, choice, 0, |r| r.str(Some(text)))
                }
                StreamItem::Refusal { choice, text } => {
                    self.rec(TAG_REFUSAL, choice, 0, |r| r.str(Some(text)))
                }
                StreamItem::ToolCall(t) => {
                    self.rec(TAG_TOOL, t.choice, t.index, |r| {
                        r.str(t.id);
                        r.str(t.name);
                        r.str(Some(t.arguments));
                    });
                    self.assemble(&item);
                }
                StreamItem::Finish { choice, reason } => {
                    self.rec(TAG_FINISH, choice, 0, |r| r.str(Some(reason)))
                }
                StreamItem::Usage(u) => self.rec(TAG_USAGE, 0, 0, |r| {
                    r.u64(u.prompt_tokens);
                    r.u64(u.completion_tokens);
                    r.u64(u.total_tokens);
                }),
                StreamItem::Error(e) => {
                    self.rec(TAG_STREAM_ERROR, 0, 0, |r| r.str(Some(e.message)))
                }
                StreamItem::Done => self.rec(TAG_DONE, 0, 0, |_| {}),
                // Responses' id (`StreamItem::Created`, with steadyllm-core's `responses`
                // feature): for the engine's resume, not part of the answer.
                #[allow(unreachable_patterns)]
                _ => {}
            },
            Event::ServerError { status, error } => {
                self.rec(TAG_SERVER_ERROR, 0, u32::from(status), |r| {
                    r.str(Some(error.message))
                })
            }
            // The attempt's failure (`redirected`) reaches the stream as an engine event.
            Event::Redirected { .. } => {}
            Event::Engine(e) => {
                let Ok(mut inner) = self.inner.try_borrow_mut() else {
                    return;
                };
                // A new call, or a restarted answer: the calls so far are gone.
                if matches!(
                    e,
                    CallEvent::AttemptStarted { number: 1, .. }
                        | CallEvent::DiscardDelivered { .. }
                ) {
                    inner.tools.clear();
                }
                let records = &mut inner.records;
                let Some(slot) = records.events.iter().position(Option::is_none) else {
                    records.overflow = true;
                    return;
                };
                if let Some(s) = records.events.get_mut(slot) {
                    *s = Some(e);
                }
                rec(records, TAG_ENGINE, 0, slot as u32, |_| {});
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.inner
            .try_borrow()
            .map(|i| i.records.read >= i.records.write)
            .unwrap_or(true)
    }

    /// Moves the next record into `out`; returns its length, or the engine event it names.
    fn pop_into(&self, out: &mut [u8]) -> Option<(usize, Option<CallEvent>)> {
        let mut guard = self.inner.try_borrow_mut().ok()?;
        let inner = &mut guard.records;
        if inner.read >= inner.write {
            return None;
        }
        let len = record_len(inner.buf.get(inner.read..inner.write)?)?;
        let (r, w) = (inner.read, inner.read + len);
        out.get_mut(..len)?.copy_from_slice(inner.buf.get(r..w)?);
        inner.read = w;
        let mut event = None;
        if out.first() == Some(&TAG_ENGINE) {
            let slot = u32::from_le_bytes(out.get(5..9)?.try_into().ok()?) as usize;
            event = inner.events.get_mut(slot).and_then(Option::take);
        }
        if inner.read >= inner.write {
            inner.read = 0;
            inner.write = 0;
        }
        Some((len, event))
    }

    fn take_overflow(&self) -> bool {
        self.inner
            .try_borrow_mut()
            .map(|mut i| core::mem::take(&mut i.records.overflow))
            .unwrap_or(false)
    }
}

/// Length of the record at the start of `b`.
fn record_len(b: &[u8]) -> Option<usize> {
    let tag = *b.first()?;
    let mut at = 9;
    let strings = match tag {
        TAG_TOOL | TAG_TOOL_DONE => 3,
        TAG_USAGE => {
            at += 24;
            0
        }
        TAG_ENGINE | TAG_DONE => 0,
        _ => 1,
    };
    for _ in 0..strings {
        if *b.get(at)? == 0 {
            at += 1;
        } else {
            let len = u16::from_le_bytes(b.get(at + 1..at + 3)?.try_into().ok()?) as usize;
            at += 3 + len;
        }
    }
    (at <= b.len()).then_some(at)
}

fn parse(rec: &[u8], event: Option<CallEvent>) -> Option<Delta<'_>> {
    let tag = *rec.first()?;
    let choice = u32::from_le_bytes(rec.get(1..5)?.try_into().ok()?);
    let index = u32::from_le_bytes(rec.get(5..9)?.try_into().ok()?);
    let mut at = 9;
    let mut next_str = || -> Option<Option<&str>> {
        if *rec.get(at)? == 0 {
            at += 1;
            return Some(None);
        }
        let len = u16::from_le_bytes(rec.get(at + 1..at + 3)?.try_into().ok()?) as usize;
        let s = core::str::from_utf8(rec.get(at + 3..at + 3 + len)?).ok()?;
        at += 3 + len;
        Some(Some(s))
    };
    Some(match tag {
        TAG_ROLE => Delta::Role {
            choice,
            role: next_str()?.unwrap_or_default(),
        },
        TAG_CONTENT => Delta::Content {
            choice,
            text: next_str()?.unwrap_or_default(),
        },
        TAG_REASONING => Delta::Reasoning {
            choice,
            text: next_str()?.unwrap_or_default(),
        },
        TAG_REFUSAL => Delta::Refusal {
            choice,
            text: next_str()?.unwrap_or_default(),
        },
        TAG_TOOL => {
            let id = next_str()?;
            let name = next_str()?;
            let arguments = next_str()?.unwrap_or_default();
            Delta::ToolCall {
                choice,
                index,
                id,
                name,
                arguments,
            }
        }
        TAG_TOOL_DONE => {
            let id = next_str()?.unwrap_or_default();
            let name = next_str()?.unwrap_or_default();
            let arguments = next_str()?.unwrap_or_default();
            Delta::ToolCallDone {
                choice,
                index,
                id,
                name,
                arguments,
            }
        }
        TAG_FINISH => Delta::Finish {
            choice,
            reason: next_str()?.unwrap_or_default(),
        },
        TAG_USAGE => {
            let n = |o: usize| -> Option<u64> {
                Some(u64::from_le_bytes(rec.get(9 + o..17 + o)?.try_into().ok()?))
            };
            Delta::Usage(Usage {
                prompt_tokens: n(0)?,
                completion_tokens: n(8)?,
                total_tokens: n(16)?,
            })
        }
        TAG_STREAM_ERROR => Delta::StreamError {
            message: next_str()?.unwrap_or_default(),
        },
        TAG_SERVER_ERROR => Delta::ServerError {
            status: u16::try_from(index).unwrap_or(0),
            message: next_str()?.unwrap_or_default(),
        },
        TAG_ENGINE => Delta::Engine(event?),
        TAG_DONE => Delta::Done,
        _ => return None,
    })
}

/// Drives a call and hands out its items one at a time; see the module docs.
pub struct ChatStream<
    'r,
    F: Future<Output = Result<Summary, ChatError>>,
    const Q: usize,
    const T: usize = 1024,
> {
    call: Pin<&'r mut F>,
    queue: &'r DeltaQueue<Q, T>,
    scratch: [u8; Q],
    result: Option<Result<Summary, ChatError>>,
    summary: Option<Summary>,
    finished: bool,
}

impl<'r, F: Future<Output = Result<Summary, ChatError>>, const Q: usize, const T: usize>
    ChatStream<'r, F, Q, T>
{
    /// A stream over `call` (the pinned future of [`Client::chat`](crate::Client::chat) whose
    /// callback pushes into `queue`).
    pub fn new(call: Pin<&'r mut F>, queue: &'r DeltaQueue<Q, T>) -> Self {
        ChatStream {
            call,
            queue,
            scratch: [0; Q],
            result: None,
            summary: None,
            finished: false,
        }
    }

    /// The next item; `None` after the answer completed. A failed call yields its error once
    /// (after every item it delivered), then `None`.
    pub async fn next(&mut self) -> Option<Result<Delta<'_>, ChatError>> {
        loop {
            if self.queue.take_overflow() {
                return Some(Err(ChatError::StreamQueueFull));
            }
            if !self.queue.is_empty() {
                break;
            }
            if let Some(r) = self.result.take() {
                // A complete answer may end without a finish reason (a whole answer): its
                // open tool calls are whole now.
                if r.is_ok() && self.queue.finish_tool_calls() {
                    self.result = Some(r);
                    continue;
                }
                self.finished = true;
                match r {
                    Ok(s) => {
                        self.summary = Some(s);
                        return None;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            if self.finished {
                return None;
            }
            let call = &mut self.call;
            let queue = self.queue;
            let done = core::future::poll_fn(|cx| match call.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending if !queue.is_empty() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            })
            .await;
            if let Some(r) = done {
                self.result = Some(r);
            }
        }
        let (len, event) = self.queue.pop_into(&mut self.scratch)?;
        let rec = self.scratch.get(..len)?;
        parse(rec, event).map(Ok)
    }

    /// How the call ended, once `next()` returned `None` after a complete answer.
    pub fn summary(&self) -> Option<Summary> {
        self.summary
    }
}
