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
//! - the id and the name arrive once: a repeat of the same text is ignored (some servers send
//!   them with every fragment); a name that differs is appended (a name sent in pieces);
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
//! Each call takes [`HEADER`] bytes plus its id, name and arguments. Nothing else is kept:
//! the number of calls is bounded only by the storage. When a fragment does not fit, it is
//! refused with [`ToolCallError::StorageFull`] (saying how many bytes the storage needed),
//! the calls still open are dropped — never reported as finished with arguments missing —
//! and every later fragment is refused until [`ToolCallAssembler::clear`]; calls finished
//! before stay. Storage that grows at its end between two items (a `Vec` made longer) may
//! be used: nothing is kept past [`ToolCallAssembler::used`].

use core::fmt;

use crate::decode::{StreamItem, ToolCallDelta};
use crate::json::JsonStr;
use crate::request::ToolCall;

/// Bytes of storage each call takes besides its id, name and arguments.
pub const HEADER: usize = 21;

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
}

impl fmt::Display for ToolCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolCallError::StorageFull { required } => write!(
                f,
                "tool calls larger than their storage (needed {required} bytes); unfinished calls dropped"
            ),
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

/// A call's state, the last byte of its header.
const OPEN: u8 = 0;
const FINISHED: u8 = 1;
const REPORTED: u8 = 2;
const DROPPED: u8 = 3;

/// One call's header, read from the storage.
#[derive(Clone, Copy)]
struct Region {
    at: usize,
    choice: u32,
    index: u32,
    id: usize,
    name: usize,
    args: usize,
    state: u8,
}

impl Region {
    fn id_at(&self) -> usize {
        self.at + HEADER
    }
    fn name_at(&self) -> usize {
        self.id_at() + self.id
    }
    fn args_at(&self) -> usize {
        self.name_at() + self.name
    }
    fn end(&self) -> usize {
        self.args_at() + self.args
    }
}

/// Joins tool-call fragments into whole calls; see the [module docs](self) for the rules, the
/// call order and how the storage `B` (`[u8; N]`, `&mut [u8]`, a `Vec<u8>`) is used.
#[derive(Clone)]
pub struct ToolCallAssembler<B> {
    storage: B,
    used: usize,
    overflowed: bool,
}

impl<B> fmt::Debug for ToolCallAssembler<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCallAssembler")
            .field("used", &self.used)
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

fn str_at(b: &[u8], at: usize, len: usize) -> &str {
    b.get(at..at + len)
        .and_then(|s| core::str::from_utf8(s).ok())
        .unwrap_or_default()
}

/// Decoded length of an optional string.
fn len_of(s: Option<JsonStr<'_>>) -> usize {
    s.map_or(0, |s| s.decoded_len())
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ToolCallAssembler<B> {
    /// An assembler over `storage`, empty.
    pub const fn new(storage: B) -> Self {
        ToolCallAssembler {
            storage,
            used: 0,
            overflowed: false,
        }
    }

    /// Bytes of the storage in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The storage (to make a growable one longer; see the [module docs](self)).
    pub fn storage_mut(&mut self) -> &mut B {
        &mut self.storage
    }

    /// `true` when a fragment was refused since the last [`ToolCallAssembler::clear`]: calls
    /// were lost.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Storage a fragment can need at most: a new call's header, its id and name, its
    /// arguments.
    pub fn room_for(t: &ToolCallDelta<'_>) -> usize {
        HEADER + len_of(t.id) + len_of(t.name) + t.arguments.decoded_len()
    }

    /// Forgets every call (the caller discarded what it was shown).
    pub fn clear(&mut self) {
        self.used = 0;
        self.overflowed = false;
    }

    /// Takes one item of the answer: a tool-call fragment joins its call; a finish reason
    /// finishes its choice's calls, the end marker every call. Other items change nothing.
    /// Then call [`ToolCallAssembler::poll_finished`].
    // Out of line: one copy, however many adapters' callbacks call it.
    #[inline(never)]
    pub fn handle_item(&mut self, item: &StreamItem<'_>) -> Result<(), ToolCallError> {
        match *item {
            StreamItem::ToolCall(ref t) => self.add(t),
            StreamItem::Finish { choice, .. } => {
                self.finish_where(Some(choice));
                Ok(())
            }
            StreamItem::Done => {
                self.finish_all();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Finishes every open call: the answer is complete (a whole answer may carry neither a
    /// finish reason nor an end marker). Then call [`ToolCallAssembler::poll_finished`].
    pub fn finish_all(&mut self) {
        self.finish_where(None);
    }

    /// The next finished call not handed out yet, in the order the calls began.
    #[must_use]
    pub fn poll_finished(&mut self) -> Option<AssembledCall<'_>> {
        let mut at = 0;
        while let Some(r) = self.region(at) {
            if r.state == FINISHED {
                self.set_state(&r, REPORTED);
                return Some(self.view(&r));
            }
            at = r.end();
        }
        None
    }

    /// Every call so far that was not dropped, finished or not, in the order they began.
    pub fn calls(&self) -> Calls<'_> {
        Calls {
            storage: self.storage.as_ref(),
            at: 0,
            used: self.used,
        }
    }

    fn region(&self, at: usize) -> Option<Region> {
        region(self.storage.as_ref(), at, self.used)
    }

    fn view(&self, r: &Region) -> AssembledCall<'_> {
        view(self.storage.as_ref(), r)
    }

    fn set_state(&mut self, r: &Region, state: u8) {
        if let Some(s) = self.storage.as_mut().get_mut(r.at + HEADER - 1) {
            *s = state;
        }
    }

    fn set_len(&mut self, at: usize, len: usize) {
        if let Some(d) = self.storage.as_mut().get_mut(at..at + 4) {
            d.copy_from_slice(&(len as u32).to_le_bytes());
        }
    }

    /// Open calls of `choice` (all, for `None`) become finished.
    fn finish_where(&mut self, choice: Option<u32>) {
        let mut at = 0;
        while let Some(r) = self.region(at) {
            if r.state == OPEN && choice.is_none_or(|c| c == r.choice) {
                self.set_state(&r, FINISHED);
            }
            at = r.end();
        }
    }

    fn add(&mut self, t: &ToolCallDelta<'_>) -> Result<(), ToolCallError> {
        if self.overflowed {
            return Err(ToolCallError::StorageFull {
                required: self.used.saturating_add(Self::room_for(t)),
            });
        }
        // The open call with this choice and index (the latest, should there be several).
        let mut open = None;
        let mut at = 0;
        while let Some(r) = self.region(at) {
            if r.state == OPEN && r.choice == t.choice && r.index == t.index {
                open = Some(r);
            }
            at = r.end();
        }
        let b = self.storage.as_ref();
        // Another id at the same place: a new call (the open one is complete).
        if let (Some(r), Some(id)) = (open, t.id)
            && r.id > 0
            && !id.is_empty()
            && !id.eq_str(str_at(b, r.id_at(), r.id))
        {
            self.set_state(&r, FINISHED);
            open = None;
        }
        let b = self.storage.as_ref();
        // What goes where: (position in the storage, header field of its length, its new
        // length, the text), in storage order.
        let (id, name, args) = match open {
            None => (t.id, t.name, t.arguments),
            Some(r) => {
                let id = t.id.filter(|_| r.id == 0);
                let name = t
                    .name
                    .filter(|n| r.name == 0 || !n.eq_str(str_at(b, r.name_at(), r.name)));
                (id, name, t.arguments)
            }
        };
        let (id_len, name_len, args_len) = (len_of(id), len_of(name), args.decoded_len());
        let header = if open.is_none() { HEADER } else { 0 };
        let grow = header + id_len + name_len + args_len;
        if grow == 0 {
            return Ok(());
        }
        let required = self.used.saturating_add(grow);
        if required > self.storage.as_ref().len() {
            self.overflow();
            return Err(ToolCallError::StorageFull { required });
        }
        match open {
            None => {
                let at = self.used;
                let mut h = [0u8; HEADER];
                for (i, v) in [
                    t.choice,
                    t.index,
                    id_len as u32,
                    name_len as u32,
                    args_len as u32,
                ]
                .into_iter()
                .enumerate()
                {
                    if let Some(d) = h.get_mut(4 * i..4 * i + 4) {
                        d.copy_from_slice(&v.to_le_bytes());
                    }
                }
                self.write(at, &h);
                let mut p = at + HEADER;
                for s in [id, name, Some(args)].into_iter().flatten() {
                    p = self.write_str(p, s);
                }
                self.used = p;
            }
            Some(r) => {
                // Back to front, so each insertion leaves the earlier positions in place.
                self.insert(r.end(), args, args_len);
                self.set_len(r.at + 16, r.args + args_len);
                if let Some(n) = name {
                    self.insert(r.args_at(), n, name_len);
                    self.set_len(r.at + 12, r.name + name_len);
                }
                if let Some(i) = id {
                    self.insert(r.name_at(), i, id_len);
                    self.set_len(r.at + 8, r.id + id_len);
                }
            }
        }
        Ok(())
    }

    /// Open calls are dropped and every later fragment is refused.
    fn overflow(&mut self) {
        self.overflowed = true;
        let mut at = 0;
        while let Some(r) = self.region(at) {
            if r.state == OPEN {
                self.set_state(&r, DROPPED);
            }
            at = r.end();
        }
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        if let Some(d) = self.storage.as_mut().get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
    }

    /// Writes `s` decoded at `at`; returns where it ends.
    fn write_str(&mut self, mut at: usize, s: JsonStr<'_>) -> usize {
        let mut p = s.pieces();
        while let Some(piece) = p.next_piece() {
            self.write(at, piece.as_bytes());
            at += piece.len();
        }
        at
    }

    /// Makes room for `len` bytes at `at` (moving what follows) and writes `s` there.
    fn insert(&mut self, at: usize, s: JsonStr<'_>, len: usize) {
        if len == 0 {
            return;
        }
        let used = self.used;
        let buf = self.storage.as_mut();
        if at < used && used + len <= buf.len() {
            buf.copy_within(at..used, at + len);
        }
        self.used = used + len;
        self.write_str(at, s);
    }
}

fn region(b: &[u8], at: usize, used: usize) -> Option<Region> {
    if at.checked_add(HEADER)? > used {
        return None;
    }
    let r = Region {
        at,
        choice: read_u32(b, at),
        index: read_u32(b, at + 4),
        id: read_u32(b, at + 8) as usize,
        name: read_u32(b, at + 12) as usize,
        args: read_u32(b, at + 16) as usize,
        state: *b.get(at + HEADER - 1)?,
    };
    (r.end() <= used).then_some(r)
}

fn view<'s>(b: &'s [u8], r: &Region) -> AssembledCall<'s> {
    AssembledCall {
        choice: r.choice,
        index: r.index,
        id: str_at(b, r.id_at(), r.id),
        name: str_at(b, r.name_at(), r.name),
        arguments: str_at(b, r.args_at(), r.args),
    }
}

/// The calls of an assembler; see [`ToolCallAssembler::calls`].
#[derive(Clone, Debug)]
pub struct Calls<'s> {
    storage: &'s [u8],
    at: usize,
    used: usize,
}

impl<'s> Iterator for Calls<'s> {
    type Item = AssembledCall<'s>;

    fn next(&mut self) -> Option<AssembledCall<'s>> {
        loop {
            let r = region(self.storage, self.at, self.used)?;
            self.at = r.end();
            if r.state != DROPPED {
                return Some(view(self.storage, &r));
            }
        }
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
    fn repeated_ids_and_names_are_kept_once_and_pieces_of_a_name_join() {
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
        // A name sent in pieces.
        let (out, _) = run(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_","arguments":"{"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"}"}}]}}]}"#,
            ],
            128,
        );
        assert_eq!(out, ["end c1 get_weather {}"]);
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
        // Room for the first call (21 + 1 + 1 + 2 bytes) and a little more.
        let mut calls = ToolCallAssembler::new([0u8; 40]);
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
                    required: 25 + 21 + 1 + 1 + 20
                },
                ToolCallError::StorageFull {
                    required: 25 + 21 + 1
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
        let mut calls = ToolCallAssembler::new([0u8; 30]);
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
        assert_eq!(calls.used(), HEADER + 3);
        assert!(calls.handle_item(&frag(0, None, "2345678")).is_err());
        assert_eq!(calls.used(), HEADER + 3);
        assert!(calls.handle_item(&frag(0, None, "]")).is_err(), "sticky");
        calls.finish_all();
        assert_eq!(calls.poll_finished(), None);
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
