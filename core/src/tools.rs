//! Whole tool calls from their fragments.
//!
//! An answer delivers a tool call in pieces ([`StreamItem::ToolCall`]): the id and the name
//! usually in the first fragment, the arguments JSON split over many. [`ToolCallAssembler`]
//! joins them, per call, in storage the caller owns — the one implementation every adapter
//! uses (the Embassy client's `chat_collect` and `ChatStream`, the browser package's
//! `complete()`, `chat --json`), for every dialect and for streamed and whole answers alike.
//!
//! The rules:
//! - fragments with the same `choice` and `index` belong to one call, whose `arguments` are
//!   their arguments concatenated (decoded);
//! - a call's id and name are the first ones sent: later ones are ignored (some servers send
//!   them again with every fragment);
//! - a fragment with another id for an open call's `choice` and `index` starts a new call (a
//!   server that numbers the calls of each chunk from 0 sends whole calls that way);
//! - a call is finished when its choice's finish reason arrives ([`StreamItem::Finish`]), at
//!   the end marker ([`StreamItem::Done`]), or when the caller says the answer is complete
//!   ([`ToolCallAssembler::finish_all`]) — a whole answer may have neither.
//!
//! Call order: [`ToolCallAssembler::handle_item`] with every item of the answer in order; after
//! each, [`ToolCallAssembler::poll_finished`] until `None` hands out the calls that item
//! finished — before the caller passes the item itself on, so finished calls come before the
//! finish reason. [`ToolCallAssembler::clear`] when the caller discards what it was shown (a
//! restarted answer). [`ToolCallAssembler::calls`] lists every call so far.
//!
//! ```
//! use steadyllm_core::decode::{Dialect, StreamDecoder};
//! use steadyllm_core::tools::ToolCallAssembler;
//!
//! let mut decoder = StreamDecoder::new(Dialect::OpenAi);
//! let mut calls = ToolCallAssembler::new([0u8; 256]);
//! let mut done = Vec::new();
//! for data in [
//!     r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get_weather","arguments":""}}]}}]}"#,
//!     r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
//!     r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
//!     r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
//! ] {
//!     decoder.decode(data, |item| {
//!         calls.handle_item(&item).unwrap();
//!         while let Some(call) = calls.poll_finished() {
//!             done.push(format!("{} {}({})", call.id, call.name, call.arguments));
//!         }
//!     }).unwrap();
//! }
//! assert_eq!(done, [r#"call_1 get_weather({"city":"Paris"})"#]);
//! ```
//!
//! ## Storage
//! The calls live in a [`ToolCallStorage`]: [`CallBuffer`] keeps up to `N` calls (8 unless the
//! type says) in a caller buffer, their texts back to back, with no heap; a program with a
//! heap may give one of its own. When a fragment does not fit, it is refused with
//! [`ToolCallError::StorageFull`] (saying how many bytes the buffer needed) or
//! [`ToolCallError::TooManyCalls`], the calls still open are dropped — never reported as
//! finished with text missing — and every later fragment is refused until
//! [`ToolCallAssembler::clear`]; calls finished before stay.

use core::fmt;

use crate::decode::{StreamItem, ToolCallDelta};
use crate::json::JsonStr;
use crate::request::ToolCall;

/// Why a fragment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ToolCallError {
    /// The storage is too small: it needed `required` bytes. The calls still open are
    /// dropped; see the [module docs](self).
    StorageFull {
        /// Bytes the storage would have needed.
        required: usize,
    },
    /// More calls than the storage has places for. The calls still open are dropped.
    TooManyCalls,
}

impl fmt::Display for ToolCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolCallError::StorageFull { required } => write!(
                f,
                "tool calls larger than their storage (needed {required} bytes); unfinished calls dropped"
            ),
            ToolCallError::TooManyCalls => {
                f.write_str("more tool calls than their storage holds; unfinished calls dropped")
            }
        }
    }
}

impl core::error::Error for ToolCallError {}

/// A call assembled from its fragments. Strings borrow the assembler's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssembledCall<'s> {
    /// Choice index.
    pub choice: u32,
    /// Position of the call (see [`ToolCallDelta::index`]).
    pub index: u32,
    /// Call id (empty when the server sent none).
    pub id: &'s str,
    /// Function name.
    pub name: &'s str,
    /// The arguments JSON, as the model wrote it (empty when the server sent none).
    pub arguments: &'s str,
}

impl<'s> AssembledCall<'s> {
    /// The call as the assistant turn of the next request needs it
    /// ([`crate::request::Message::assistant_tool_calls`]).
    pub fn to_request(&self) -> ToolCall<'s> {
        ToolCall {
            id: self.id,
            name: self.name,
            arguments: self.arguments,
        }
    }
}

/// A call's state. (A call still open when a fragment was refused is dropped: never
/// finished, not listed.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Open,
    Finished,
    Reported,
}

/// A call's place in the answer and its state: what a [`ToolCallStorage`] keeps for the
/// assembler besides the call's text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallHead {
    /// Choice index.
    pub choice: u32,
    /// Position of the call.
    pub index: u32,
    state: State,
}

/// One of a call's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The call id.
    Id = 0,
    /// The function name.
    Name = 1,
    /// The arguments.
    Arguments = 2,
}

/// Where an assembler keeps the calls: their heads and texts, numbered from 0 in the order
/// they began. [`CallBuffer`] keeps them in caller memory (no heap); a program with a heap may
/// keep them in strings of its own (the browser module does). [`ToolCallStorage::begin`] adds
/// call number [`ToolCallStorage::calls`]; [`ToolCallStorage::append`] adds all of a text or,
/// refusing it, none.
pub trait ToolCallStorage {
    /// How many calls are held.
    fn calls(&self) -> usize;
    /// Call `i`'s head.
    fn head(&self, i: usize) -> Option<&CallHead>;
    /// Call `i`'s head, to change.
    fn head_mut(&mut self, i: usize) -> Option<&mut CallHead>;
    /// Adds a call after the others, its texts empty.
    fn begin(&mut self, head: CallHead) -> Result<(), ToolCallError>;
    /// Appends `text`, decoded, to `part` of call `i` (all of it, or nothing).
    fn append(&mut self, i: usize, part: Part, text: JsonStr<'_>) -> Result<(), ToolCallError>;
    /// `part` of call `i` so far.
    fn text(&self, i: usize, part: Part) -> &str;
    /// Forgets every call.
    fn clear(&mut self);
}

/// Calls kept in a caller buffer `B` (`[u8; SIZE]`, `&mut [u8]`, …), up to `N` of them: their
/// texts back to back in the order the calls began, each call its id, name and arguments. A
/// text added to a call that is not the last moves what follows it.
#[derive(Clone)]
pub struct CallBuffer<B, const N: usize = 8> {
    bytes: B,
    /// Each call's head and where its id, name and arguments end (from the call's start).
    calls: [(CallHead, [usize; 3]); N],
    len: usize,
    used: usize,
}

impl<B, const N: usize> fmt::Debug for CallBuffer<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallBuffer")
            .field("calls", &self.len)
            .field("used", &self.used)
            .finish()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> CallBuffer<B, N> {
    /// Storage in `bytes`, empty.
    pub const fn new(bytes: B) -> Self {
        CallBuffer {
            bytes,
            calls: [(
                CallHead {
                    choice: 0,
                    index: 0,
                    state: State::Open,
                },
                [0; 3],
            ); N],
            len: 0,
            used: 0,
        }
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Where call `i` starts and where its parts end (from its start).
    fn place(&self, i: usize) -> (usize, [usize; 3]) {
        let start = self
            .calls
            .iter()
            .take(i.min(self.len))
            .map(|c| c.1[2])
            .sum();
        (start, self.calls.get(i).map_or([0; 3], |c| c.1))
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> ToolCallStorage for CallBuffer<B, N> {
    fn calls(&self) -> usize {
        self.len
    }

    fn head(&self, i: usize) -> Option<&CallHead> {
        self.calls.get(i).filter(|_| i < self.len).map(|c| &c.0)
    }

    fn head_mut(&mut self, i: usize) -> Option<&mut CallHead> {
        self.calls
            .get_mut(i)
            .filter(|_| i < self.len)
            .map(|c| &mut c.0)
    }

    fn begin(&mut self, head: CallHead) -> Result<(), ToolCallError> {
        let slot = self
            .calls
            .get_mut(self.len)
            .ok_or(ToolCallError::TooManyCalls)?;
        *slot = (head, [0; 3]);
        self.len += 1;
        Ok(())
    }

    fn append(&mut self, i: usize, part: Part, text: JsonStr<'_>) -> Result<(), ToolCallError> {
        let (n, used) = (text.decoded_len(), self.used);
        let buf = self.bytes.as_mut();
        if used + n > buf.len() {
            return Err(ToolCallError::StorageFull { required: used + n });
        }
        let (start, ends) = self.place(i);
        let mut at = (start + ends[part as usize]).min(used);
        let buf = self.bytes.as_mut();
        buf.copy_within(at..used, at + n);
        let mut p = text.pieces();
        while let Some(piece) = p.next_piece() {
            if let Some(d) = buf.get_mut(at..at + piece.len()) {
                d.copy_from_slice(piece.as_bytes());
            }
            at += piece.len();
        }
        self.used = used + n;
        if let Some(c) = self.calls.get_mut(i) {
            for e in c.1.iter_mut().skip(part as usize) {
                *e += n;
            }
        }
        Ok(())
    }

    fn text(&self, i: usize, part: Part) -> &str {
        let (start, ends) = self.place(i);
        let p = part as usize;
        let from = start + p.checked_sub(1).map_or(0, |q| ends[q]);
        self.bytes
            .as_ref()
            .get(from..start + ends[p])
            .and_then(|t| core::str::from_utf8(t).ok())
            .unwrap_or_default()
    }

    fn clear(&mut self) {
        self.len = 0;
        self.used = 0;
    }
}

/// Joins tool-call fragments into whole calls kept in `S` ([`CallBuffer`] unless the type says);
/// see the [module docs](self) for the rules and the call order.
#[derive(Clone)]
pub struct ToolCallAssembler<S> {
    storage: S,
    /// The first refusal since the last clear: every later fragment gets it too.
    refused: Option<ToolCallError>,
}

impl<S> fmt::Debug for ToolCallAssembler<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCallAssembler")
            .field("refused", &self.refused)
            .finish()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ToolCallAssembler<CallBuffer<B>> {
    /// An assembler keeping up to 8 calls per answer in `bytes`, empty.
    pub const fn new(bytes: B) -> Self {
        Self::with_storage(CallBuffer::new(bytes))
    }
}

impl<S: ToolCallStorage> ToolCallAssembler<S> {
    /// An assembler keeping the calls in `storage`, which must be empty.
    pub const fn with_storage(storage: S) -> Self {
        ToolCallAssembler {
            storage,
            refused: None,
        }
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// `true` when a fragment was refused since the last [`ToolCallAssembler::clear`]: calls
    /// were lost.
    pub fn overflowed(&self) -> bool {
        self.refused.is_some()
    }

    /// Forgets every call (the caller discarded what it was shown).
    pub fn clear(&mut self) {
        self.storage.clear();
        self.refused = None;
    }

    /// Takes one item of the answer: a tool-call fragment joins its call; a finish reason
    /// finishes its choice's calls, the end marker every call. Other items change nothing.
    /// Then call [`ToolCallAssembler::poll_finished`].
    // Out of line: one copy, however many adapters' callbacks call it.
    #[inline(never)]
    pub fn handle_item(&mut self, item: &StreamItem<'_>) -> Result<(), ToolCallError> {
        match *item {
            StreamItem::ToolCall(ref t) => {
                // After a refusal the calls still open are dropped (never reported with
                // text missing), and every later fragment is refused.
                if let Some(e) = self.refused {
                    return Err(e);
                }
                let r = self.add(t);
                self.refused = r.err();
                return r;
            }
            StreamItem::Finish { choice, .. } => self.finish_where(Some(choice)),
            StreamItem::Done => self.finish_all(),
            _ => {}
        }
        Ok(())
    }

    /// Finishes every open call: the answer is complete (a whole answer may carry neither a
    /// finish reason nor an end marker). Then call [`ToolCallAssembler::poll_finished`].
    pub fn finish_all(&mut self) {
        self.finish_where(None);
    }

    /// The next finished call not handed out yet, in the order the calls began.
    #[must_use]
    pub fn poll_finished(&mut self) -> Option<AssembledCall<'_>> {
        let mut found = None;
        for i in 0..self.storage.calls() {
            if let Some(h) = self.storage.head_mut(i)
                && h.state == State::Finished
            {
                h.state = State::Reported;
                found = Some(i);
                break;
            }
        }
        found.and_then(|i| self.view(i))
    }

    /// Every call so far that was not dropped, finished or not, in the order they began.
    pub fn calls(&self) -> impl Iterator<Item = AssembledCall<'_>> {
        (0..self.storage.calls()).filter_map(move |i| self.view(i))
    }

    fn view(&self, i: usize) -> Option<AssembledCall<'_>> {
        let h = self.storage.head(i)?;
        if self.refused.is_some() && h.state == State::Open {
            return None;
        }
        Some(AssembledCall {
            choice: h.choice,
            index: h.index,
            id: self.storage.text(i, Part::Id),
            name: self.storage.text(i, Part::Name),
            arguments: self.storage.text(i, Part::Arguments),
        })
    }

    /// Open calls of `choice` (all, for `None`) become finished; after an overflow they stay
    /// open, dropped.
    fn finish_where(&mut self, choice: Option<u32>) {
        for i in 0..self.storage.calls() {
            if let Some(h) = self.storage.head_mut(i)
                && h.state == State::Open
                && self.refused.is_none()
                && choice.is_none_or(|c| c == h.choice)
            {
                h.state = State::Finished;
            }
        }
    }

    fn add(&mut self, t: &ToolCallDelta<'_>) -> Result<(), ToolCallError> {
        // The open call with this choice and index (the latest, should there be several);
        // another id there starts a new call (the open one is complete).
        let mut open = None;
        for i in 0..self.storage.calls() {
            let same = self.storage.head(i).is_some_and(|h| {
                h.state == State::Open && h.choice == t.choice && h.index == t.index
            });
            if !same {
                continue;
            }
            open = Some(i);
            let id = self.storage.text(i, Part::Id);
            if let Some(new) = t.id
                && !id.is_empty()
                && !new.is_empty()
                && !new.eq_str(id)
                && let Some(h) = self.storage.head_mut(i)
            {
                h.state = State::Finished;
                open = None;
            }
        }
        let i = match open {
            Some(i) => i,
            None => {
                self.storage.begin(CallHead {
                    choice: t.choice,
                    index: t.index,
                    state: State::Open,
                })?;
                self.storage.calls().saturating_sub(1)
            }
        };
        // The id and the name once: later ones (repeats) are ignored.
        if let Some(s) = t.id
            && self.storage.text(i, Part::Id).is_empty()
        {
            self.storage.append(i, Part::Id, s)?;
        }
        if let Some(s) = t.name
            && self.storage.text(i, Part::Name).is_empty()
        {
            self.storage.append(i, Part::Name, s)?;
        }
        self.storage.append(i, Part::Arguments, t.arguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Dialect, StreamDecoder};
    use std::prelude::rust_2024::*;
    use std::vec;

    /// Decodes `events` and assembles: the finished calls as `choice index id name args`
    /// lines, each before the item that finished it (shown as `finish`/`done`).
    fn run(dialect: Dialect, events: &[&str], storage: usize) -> (Vec<String>, Vec<String>) {
        let mut dec = StreamDecoder::new(dialect);
        let mut calls = ToolCallAssembler::new(vec![0u8; storage]);
        let mut out = Vec::new();
        for e in events {
            dec.decode(e, |item| {
                let _ = calls.handle_item(&item);
                while let Some(c) = calls.poll_finished() {
                    out.push(format!(
                        "{} {} {} {} {}",
                        c.choice, c.index, c.id, c.name, c.arguments
                    ));
                }
                match item {
                    StreamItem::Finish { .. } => out.push("finish".into()),
                    StreamItem::Done => out.push("done".into()),
                    _ => {}
                }
            })
            .expect("valid");
        }
        calls.finish_all();
        while let Some(c) = calls.poll_finished() {
            out.push(format!("end {} {} {}", c.id, c.name, c.arguments));
        }
        let all = calls
            .calls()
            .map(|c| format!("{} {} {}", c.id, c.name, c.arguments))
            .collect();
        (out, all)
    }

    #[test]
    fn openai_fragments_become_whole_calls_before_the_finish() {
        let (out, all) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"get_time","arguments":"{\"tz\""}}]}}]}"#,
                // Interleaved: the first call goes on after the second began.
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris \u00e9\"}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":\"UTC\"}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                "[DONE]",
            ],
            256,
        );
        assert_eq!(
            out,
            [
                r#"0 0 call_1 get_weather {"city":"Paris é"}"#,
                r#"0 1 call_2 get_time {"tz":"UTC"}"#,
                "finish",
                "done"
            ]
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn repeated_ids_and_names_are_kept_once() {
        // A server that repeats the id and the name in every fragment.
        let (out, _) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_weather","arguments":"{"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_weather","arguments":"}"}}]}}]}"#,
            ],
            128,
        );
        assert_eq!(out, ["end c1 get_weather {}"]);
        // An id that comes after the first fragment, with an empty id before it.
        let (out, _) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"","function":{"name":"f","arguments":"["}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c2","function":{"arguments":"]"}}]}}]}"#,
            ],
            128,
        );
        assert_eq!(out, ["end c2 f []"]);
    }

    #[test]
    fn whole_calls_numbered_from_zero_in_every_chunk_stay_apart() {
        // Gemini's compatibility endpoint: no index, each chunk's calls counted from 0.
        let (out, _) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{\"x\":1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            ],
            128,
        );
        assert_eq!(out, ["0 0 a f {}", r#"0 0 b g {"x":1}"#, "finish"]);
    }

    #[test]
    fn a_choice_finishes_only_its_own_calls() {
        let (out, _) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}},{"index":1,"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"["}}]}}]}"#,
                r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"]"}}]},"finish_reason":"tool_calls"}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]},"finish_reason":"tool_calls"}]}"#,
            ],
            256,
        );
        assert_eq!(out, ["1 0 b g []", "finish", "0 0 a f {}", "finish"]);
    }

    #[test]
    fn whole_openai_answers_and_ones_without_a_finish_reason() {
        let whole = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":\"x\\\"y\"}"}},{"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let (out, _) = run(Dialect::OpenAi, &[whole], 256);
        assert_eq!(
            out,
            [r#"0 0 call_1 f {"a":"x\"y"}"#, "0 1 call_2 g {}", "finish"]
        );
        let no_finish = whole.replace(r#""finish_reason":"tool_calls""#, r#""finish_reason":null"#);
        let (out, _) = run(Dialect::OpenAi, &[&no_finish], 256);
        assert_eq!(out, [r#"end call_1 f {"a":"x\"y"}"#, "end call_2 g {}"]);
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_streamed_and_whole() {
        let (out, _) = run(
            Dialect::Anthropic,
            &[
                r#"{"type":"message_start","message":{"role":"assistant","usage":{"input_tokens":5}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me look."}}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
                r#"{"type":"content_block_stop","index":1}"#,
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
                r#"{"type":"message_stop"}"#,
            ],
            128,
        );
        assert_eq!(
            out,
            [
                r#"0 1 toolu_1 get_weather {"city": "Paris"}"#,
                "finish",
                "done"
            ]
        );
        let (out, _) = run(
            Dialect::Anthropic,
            &[
                r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"tool_use","id":"toolu_2","name":"f","input":{"q":"a\"b","n":[1, 2]}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#,
            ],
            128,
        );
        assert_eq!(
            out,
            [r#"0 1 toolu_2 f {"q":"a\"b","n":[1, 2]}"#, "finish", "done"]
        );
    }

    #[test]
    fn a_full_storage_drops_open_calls_and_keeps_finished_ones() {
        let first = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let second = r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{\"long\":\"arguments\"}"}}]}}]}"#;
        let third = r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"x"}}]},"finish_reason":"tool_calls"}]}"#;
        // Room for the first call (1 + 1 + 2 bytes) and a little more.
        let mut calls = ToolCallAssembler::new([0u8; 10]);
        let mut dec = StreamDecoder::new(Dialect::OpenAi);
        let mut errors = Vec::new();
        let mut done = Vec::new();
        for e in [first, second, third] {
            dec.decode(e, |item| {
                if let Err(e) = calls.handle_item(&item) {
                    errors.push(e);
                }
                while let Some(c) = calls.poll_finished() {
                    done.push(c.id.to_string());
                }
            })
            .expect("valid");
        }
        assert_eq!(done, ["a"]);
        assert_eq!(
            errors,
            [
                ToolCallError::StorageFull {
                    required: 4 + 1 + 1 + 20
                },
                ToolCallError::StorageFull {
                    required: 4 + 1 + 1 + 20
                }
            ]
        );
        assert!(calls.overflowed());
        assert_eq!(calls.calls().count(), 1);
        calls.clear();
        assert!(!calls.overflowed() && calls.calls().next().is_none());
    }

    #[test]
    fn a_failed_insertion_changes_nothing() {
        // The second call's fragment does not fit: the first call, still open, is dropped,
        // but its bytes are not overwritten and nothing is reported.
        let mut calls = ToolCallAssembler::new([0u8; 8]);
        let frag = |index, id: Option<&'static str>, args: &'static str| {
            StreamItem::ToolCall(ToolCallDelta {
                choice: 0,
                index,
                id: id.map(JsonStr::plain),
                name: None,
                arguments: JsonStr::plain(args),
            })
        };
        assert_eq!(calls.handle_item(&frag(0, Some("a"), "[1")), Ok(()));
        assert_eq!(calls.storage().used(), 3);
        assert!(calls.handle_item(&frag(0, None, "2345678")).is_err());
        assert_eq!(calls.storage().used(), 3);
        assert!(calls.handle_item(&frag(0, None, "]")).is_err(), "sticky");
        calls.finish_all();
        assert_eq!(calls.poll_finished(), None);
    }

    #[test]
    fn more_calls_than_places_are_refused() {
        let mut calls = ToolCallAssembler::with_storage(CallBuffer::<_, 2>::new([0u8; 64]));
        for (i, want) in [
            (0, Ok(())),
            (1, Ok(())),
            (2, Err(ToolCallError::TooManyCalls)),
        ] {
            let frag = StreamItem::ToolCall(ToolCallDelta {
                choice: 0,
                index: i,
                id: Some(JsonStr::plain("x")),
                name: None,
                arguments: JsonStr::plain("{}"),
            });
            assert_eq!(calls.handle_item(&frag), want);
        }
        calls.finish_all();
        assert_eq!(calls.poll_finished(), None, "the open calls were dropped");
        assert_eq!(calls.calls().count(), 0);
    }

    proptest::proptest! {
        /// Any split of any arguments, any interleaving of two calls, any storage size: a
        /// finished call's arguments are exactly its fragments joined; with too little
        /// storage, calls are dropped, never cut.
        #[test]
        fn any_split_and_interleaving_joins_exactly(
            a in "\\PC{0,40}",
            b in "\\PC{0,40}",
            cuts in proptest::collection::vec(0usize..40, 0..6),
            order in proptest::collection::vec(proptest::bool::ANY, 0..20),
            storage in 0usize..200,
        ) {
            let split = |s: &str| -> Vec<String> {
                let chars: Vec<char> = s.chars().collect();
                let mut at: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
                at.push(0);
                at.push(chars.len());
                at.sort_unstable();
                at.windows(2).map(|w| chars[w[0]..w[1]].iter().collect()).collect()
            };
            let (pa, pb) = (split(&a), split(&b));
            let mut frags: Vec<(u32, String)> = Vec::new();
            let (mut ia, mut ib) = (pa.iter(), pb.iter());
            let mut o = order.iter();
            loop {
                let take_a = o.next().copied().unwrap_or(true);
                match (take_a, ia.len() > 0, ib.len() > 0) {
                    (_, false, false) => break,
                    (true, true, _) | (false, true, false) => frags.push((0, ia.next().cloned().unwrap_or_default())),
                    _ => frags.push((1, ib.next().cloned().unwrap_or_default())),
                }
            }
            let mut calls = ToolCallAssembler::new(vec![0u8; storage]);
            let ids = ["call_a", "call_b"];
            let mut started = [false; 2];
            for (index, text) in &frags {
                let i = *index as usize;
                let escaped = serde_json::to_string(text).expect("json");
                let raw = &escaped[1..escaped.len() - 1];
                let json = format!(r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{index}{},"function":{{"arguments":"{raw}"}}}}]}}}}]}}"#,
                    if started[i] { String::new() } else { format!(r#","id":"{}""#, ids[i]) });
                started[i] = true;
                StreamDecoder::new(Dialect::OpenAi).decode(&json, |item| { let _ = calls.handle_item(&item); }).expect("valid");
            }
            calls.finish_all();
            let mut got = Vec::new();
            while let Some(c) = calls.poll_finished() {
                got.push((c.id.to_string(), c.arguments.to_string()));
            }
            let want_a = ("call_a".to_string(), a.clone());
            let want_b = ("call_b".to_string(), b.clone());
            if !calls.overflowed() {
                let mut want = vec![want_a, want_b];
                if frags.first().is_some_and(|f| f.0 == 1) {
                    want.reverse();
                }
                proptest::prop_assert_eq!(got, want);
            } else {
                for g in &got {
                    proptest::prop_assert!(g == &want_a || g == &want_b);
                }
            }
        }
    }
}
