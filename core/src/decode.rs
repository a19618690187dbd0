//! Zero-copy decoding of streamed chat completions and of error bodies.
//!
//! [`StreamDecoder`] turns the `data` of each server-sent event into semantic
//! [`StreamItem`]s — role, content, reasoning, refusal, tool-call fragments, finish reasons,
//! usage, in-stream errors and the end marker — for OpenAI-compatible
//! `chat.completion.chunk` streams, for Anthropic Messages streams and for the typed events of
//! OpenAI's Responses API (feature `responses`, see `crate::dialect::responses`) ([`Dialect`]).
//! [`ApiError::parse`] reads the body of a non-2xx response.
//!
//! The JSON is scanned once; strings are borrowed from the event as [`JsonStr`] and only
//! decoded when they contain escapes and the caller asks. Unknown fields are skipped (but
//! still validated). Nothing is allocated.
//!
//! ```
//! use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};
//!
//! let mut dec = StreamDecoder::new(Dialect::OpenAi);
//! let mut text = String::new();
//! for data in [
//!     r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
//!     r#"{"choices":[{"index":0,"delta":{"content":"Hi \u00e9"},"finish_reason":null}]}"#,
//!     r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
//!     "[DONE]",
//! ] {
//!     dec.decode(data, |item| {
//!         if let StreamItem::Content { text: t, .. } = item {
//!             text.push_str(&t.to_string());
//!         }
//!     })
//!     .unwrap();
//! }
//! assert_eq!(text, "Hi é");
//! assert!(dec.finish().is_complete());
//! ```

use core::fmt;

pub use crate::dialect::Dialect;
use crate::json::{self, JsonStr, Reader};

mod template;

pub use template::TEMPLATE_CAPACITY;
pub(crate) use template::{Seen, Template};

/// One semantic piece of a streamed answer. Strings borrow the event's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamItem<'a> {
    /// The author role of a choice (`assistant`), usually in the first chunk.
    Role {
        /// Choice index.
        choice: u32,
        /// The role.
        role: JsonStr<'a>,
    },
    /// Answer text (never empty).
    Content {
        /// Choice index.
        choice: u32,
        /// The text fragment.
        text: JsonStr<'a>,
    },
    /// Reasoning text (`reasoning_content` / `reasoning`, Anthropic `thinking`; never empty).
    Reasoning {
        /// Choice index.
        choice: u32,
        /// The text fragment.
        text: JsonStr<'a>,
    },
    /// Refusal text (never empty).
    Refusal {
        /// Choice index.
        choice: u32,
        /// The text fragment.
        text: JsonStr<'a>,
    },
    /// A fragment of a tool call.
    ToolCall(ToolCallDelta<'a>),
    /// Why a choice ended (`stop`, `length`, `tool_calls`, `content_filter`, Anthropic
    /// `end_turn`, `max_tokens`, `tool_use`, …).
    Finish {
        /// Choice index.
        choice: u32,
        /// The reason as sent.
        reason: JsonStr<'a>,
    },
    /// Token usage.
    Usage(Usage),
    /// An error the server sent inside the stream.
    Error(ApiError<'a>),
    /// The end marker (`[DONE]`, Anthropic `message_stop`, Responses `response.completed`).
    Done,
    /// Responses API: the response's id (`response.created`, `response.queued`,
    /// `response.in_progress`, once per stream; a whole answer's `id`). A broken stream is
    /// resumed with it (the `responses` module). Only with that feature: firmware's matches
    /// stay as they were.
    #[cfg(feature = "responses")]
    Created {
        /// The response id (`resp_…`).
        id: JsonStr<'a>,
    },
}

/// A fragment of a streamed tool call. Fragments with the same `choice` and `index` belong
/// to the same call; `arguments` fragments concatenate to the JSON arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolCallDelta<'a> {
    /// Choice index.
    pub choice: u32,
    /// Position of the call (`index`, or its position in the chunk's array when missing;
    /// the content block index for Anthropic).
    pub index: u32,
    /// Call id, usually only in the first fragment.
    pub id: Option<JsonStr<'a>>,
    /// Function name, usually only in the first fragment.
    pub name: Option<JsonStr<'a>>,
    /// A piece of the arguments JSON (may be empty).
    pub arguments: JsonStr<'a>,
}

/// Token counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum as reported (or computed when the server omits it).
    pub total_tokens: u64,
}

/// An error object from the server, in a stream or in a non-2xx body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ApiError<'a> {
    /// Human-readable message (empty if the server sent none).
    pub message: JsonStr<'a>,
    /// `type` (OpenAI `invalid_request_error`, Anthropic `overloaded_error`, …).
    pub kind: Option<JsonStr<'a>>,
    /// `code`, as text whether the server sent a string or a number.
    pub code: Option<JsonStr<'a>>,
    /// `param`, when present.
    pub param: Option<JsonStr<'a>>,
}

/// Why an event or body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The data is not valid JSON, or not a JSON object.
    Json(json::Error),
    /// An error body that is valid JSON but carries no error object.
    NotAnError,
    /// A dialect whose cargo feature (`anthropic`, `responses`) is off in this build.
    UnsupportedDialect,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "malformed event: {e}"),
            DecodeError::NotAnError => f.write_str("response body holds no error object"),
            DecodeError::UnsupportedDialect => f.write_str("the dialect's feature is off"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<json::Error> for DecodeError {
    fn from(e: json::Error) -> Self {
        DecodeError::Json(e)
    }
}

/// How a stream ended, from [`StreamDecoder::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamEnd {
    /// The end marker arrived.
    Complete,
    /// The input ended without the end marker: the answer may be cut short.
    Truncated,
    /// Responses API: `response.failed` ended the stream (its error came as an
    /// [`StreamItem::Error`]). The answer is final: not to be resumed.
    Failed,
    /// Responses API: `response.incomplete` ended the stream (its reason came as a
    /// [`StreamItem::Finish`]: `max_output_tokens`, `content_filter`). Final: not to be resumed.
    Incomplete,
}

impl StreamEnd {
    /// `true` for [`StreamEnd::Complete`].
    pub fn is_complete(self) -> bool {
        self == StreamEnd::Complete
    }
}

/// Decodes the events of one streamed response.
///
/// Call order: [`StreamDecoder::decode`] with the `data` of every event in order, then
/// [`StreamDecoder::finish`] at the end of the body. Items of one event are passed to the
/// callback in document order, except that a choice's `Finish` follows its delta. If an event
/// turns out malformed, the items found before the fault have already been passed on (they
/// are complete and correct); the error says where the JSON broke.
///
/// ## Templates
/// The chunks of one stream are nearly the same document: the same members in the same order,
/// with the text and a few values (an `obfuscation` string, a timestamp) changing. When a
/// chunk's full parse emitted only text, roles or tool-call arguments, the decoder keeps the
/// chunk (up to [`TEMPLATE_CAPACITY`] bytes) as a template: its bytes, and the spans of the
/// strings it emitted and of the values of root members it skipped. A later chunk made of the
/// same bytes around those spans, with a valid JSON value in each (a non-empty string for
/// text), is the same document with other values where the parse does not look at them or
/// passes them on as they are: the full parse would take exactly the same path. So the decoder
/// emits the same items with the new strings after comparing the bytes and scanning only the
/// values that changed. Anything else — other bytes, an empty text, a malformed value — gets
/// the full parse, which also learns the next template. Key order, extra members and escapes
/// play no part: a template is whatever the stream sends. Results are identical with
/// templates on or off ([`StreamDecoder::with_memo`]); property tests and the fuzzer compare
/// them.
#[derive(Clone)]
pub struct StreamDecoder {
    dialect: Dialect,
    pub(crate) done: bool,
    /// Anthropic: prompt tokens from `message_start`, reported with `message_delta`'s usage.
    pub(crate) input_tokens: u64,
    /// Anthropic: the index of the open block when it is a client `tool_use` (whose
    /// `input_json_delta`s are the caller's tool call; a server tool's are not).
    #[cfg(feature = "anthropic")]
    pub(crate) tool_block: Option<u32>,
    pub(crate) template: Template,
    pub(crate) fast: bool,
    /// Responses: sequence numbers and how the stream ended.
    #[cfg(feature = "responses")]
    pub(crate) resp: crate::dialect::responses::State,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new(Dialect::OpenAi)
    }
}

impl fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("dialect", &self.dialect)
            .field("done", &self.done)
            .field("template_len", &self.template.len)
            .finish()
    }
}

impl StreamDecoder {
    /// A decoder for a stream of the given dialect.
    pub const fn new(dialect: Dialect) -> Self {
        StreamDecoder {
            dialect,
            done: false,
            input_tokens: 0,
            #[cfg(feature = "anthropic")]
            tool_block: None,
            template: Template::EMPTY,
            fast: true,
            #[cfg(feature = "responses")]
            resp: crate::dialect::responses::State::NEW,
        }
    }

    /// The same decoder with templates (see the type's docs) on, the default, or off. Off,
    /// every event is parsed in full; results are identical either way.
    pub const fn with_memo(mut self, enabled: bool) -> Self {
        self.fast = enabled;
        self
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `true` once the end marker was decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one event's data and passes each item to `emit`. Events after the end marker
    /// produce nothing.
    pub fn decode<'a, F>(&mut self, data: &'a str, mut emit: F) -> Result<(), DecodeError>
    where
        F: FnMut(StreamItem<'a>),
    {
        self.decode_with(data, &mut emit)
    }

    /// [`StreamDecoder::decode`] behind one non-generic entry: the decoder's code exists once
    /// however many callbacks a program uses (an indirect call per item costs nothing next to
    /// the parse; it saves kilobytes of flash per extra callback on a microcontroller).
    fn decode_with<'a>(
        &mut self,
        data: &'a str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> Result<(), DecodeError> {
        if self.done {
            return Ok(());
        }
        match self.dialect {
            Dialect::OpenAi => {
                if data.trim_ascii() == "[DONE]" {
                    self.done = true;
                    emit(StreamItem::Done);
                    return Ok(());
                }
                self.decode_openai_chunk(data, emit)
            }
            #[cfg(feature = "anthropic")]
            Dialect::Anthropic => self.decode_anthropic(data, emit),
            #[cfg(not(feature = "anthropic"))]
            Dialect::Anthropic => Err(DecodeError::UnsupportedDialect),
            #[cfg(feature = "responses")]
            Dialect::Responses => self.decode_responses(data, emit),
            #[cfg(not(feature = "responses"))]
            Dialect::Responses => Err(DecodeError::UnsupportedDialect),
        }
    }

    /// An event the SSE parser had to drop, larger than its buffer, known by the type its
    /// `event` line gave, if any ([`crate::sse::SseParser::dropped_event_type`]). `true` when the
    /// stream goes on without it: the Responses API repeats the whole answer in its `.done`
    /// events and in the response object of its first and last events, so on a small buffer
    /// a long answer's are too large; the deltas carried it all already. A dropped
    /// `response.completed`, `.incomplete` or `.failed` still ends the stream as its type says
    /// (without its usage, error details or reason); a dropped `response.created` loses the id
    /// (the call cannot be resumed). Anthropic: a `content_block_start` that large is a server
    /// tool's results (web search, code execution; a text or `tool_use` block starts small),
    /// dropped with the block. `false` for anything else: the stream lost content.
    pub fn dropped<'a, F>(&mut self, event_type: Option<&str>, mut emit: F) -> bool
    where
        F: FnMut(StreamItem<'a>),
    {
        if self.done {
            return true;
        }
        let Some(event_type) = event_type else {
            // Nothing says what was lost.
            return false;
        };
        match self.dialect {
            #[cfg(feature = "responses")]
            Dialect::Responses => self.dropped_responses(event_type, &mut emit),
            #[cfg(feature = "anthropic")]
            Dialect::Anthropic => self.dropped_anthropic(event_type),
            _ => {
                let _ = (event_type, &mut emit);
                false
            }
        }
    }

    /// Ends the stream and says whether the end marker came. Resets the decoder for reuse.
    pub fn finish(&mut self) -> StreamEnd {
        let end = if self.done {
            StreamEnd::Complete
        } else {
            StreamEnd::Truncated
        };
        #[cfg(feature = "responses")]
        let end = self.resp.finish(end);
        self.done = false;
        self.input_tokens = 0;
        #[cfg(feature = "anthropic")]
        {
            self.tool_block = None;
        }
        self.template.forget();
        end
    }
}

/// Looks ahead in the object at `r` for a string member `key` without moving `r`.
/// The common case — the key comes first — costs one key comparison.
#[cfg(any(feature = "anthropic", feature = "responses"))]
pub(crate) fn find_key_str<'a>(
    mut r: Reader<'a>,
    key: &str,
) -> Result<Option<JsonStr<'a>>, DecodeError> {
    let mut o = r.object()?;
    while let Some(k) = o.next_key(&mut r)? {
        if k.eq_str(key) {
            return Ok(r.string_or_null().ok().flatten());
        }
        r.skip_value()?;
    }
    Ok(None)
}

pub(crate) fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Reads an `error` member: an object with `message`/`type`/`code`/`param`, or a bare string.
pub(crate) fn read_error_object<'a>(
    r: &mut Reader<'a>,
) -> Result<Option<ApiError<'a>>, DecodeError> {
    match r.peek()? {
        b'"' => {
            let message = r.string()?;
            Ok(Some(ApiError {
                message,
                ..ApiError::default()
            }))
        }
        b'{' => {
            let mut e = ApiError::default();
            let mut o = r.object()?;
            while let Some(k) = o.next_key(r)? {
                if !error_member(&mut e, k.key(&mut [0; 32]), r)? {
                    r.skip_value()?;
                }
            }
            Ok(Some(e))
        }
        _ => {
            r.skip_value()?;
            Ok(None)
        }
    }
}

/// Reads the value of `key` into `e` when it is a member of an error object (`message`,
/// `type`, `code`, `param`); `false`, with nothing read, otherwise.
pub(crate) fn error_member<'a>(
    e: &mut ApiError<'a>,
    key: &str,
    r: &mut Reader<'a>,
) -> Result<bool, DecodeError> {
    // One read for all four members (each read's error conversion is code); the key's first
    // letter then says which member it was. A string, or a number as its text; another value
    // (an object, `true`) counts as absent, the rest of the object kept (its code may still
    // say `insufficient_quota`).
    let v = match key {
        "message" | "type" | "code" | "param" => r.string_or_number()?,
        _ => return Ok(false),
    };
    match key.as_bytes().first() {
        Some(b'm') => e.message = v.unwrap_or_default(),
        Some(b't') => e.kind = v,
        Some(b'c') => e.code = v,
        _ => e.param = v,
    }
    Ok(true)
}

impl<'a> ApiError<'a> {
    /// Parses the body of a non-2xx response: OpenAI's `{"error":{...}}` (also Anthropic's
    /// `{"type":"error","error":{...}}`, and `{"error":"text"}`) or the bare
    /// `{"object":"error","message":...}` shape (vLLM and others).
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn parse(body: &'a str) -> Result<ApiError<'a>, DecodeError> {
        let mut r = Reader::new(body);
        let mut o = r.object()?;
        let mut nested = None;
        let mut bare = ApiError::default();
        let mut has_message = false;
        while let Some(k) = o.next_key(&mut r)? {
            match k.key(&mut [0; 32]) {
                "error" => nested = read_error_object(&mut r)?,
                k if error_member(&mut bare, k, &mut r)? => has_message |= k == "message",
                _ => r.skip_value()?,
            }
        }
        r.end()?;
        match nested {
            Some(e) => Ok(e),
            None if has_message => Ok(bare),
            None => Err(DecodeError::NotAnError),
        }
    }

    /// `true` when `code` (or `type`) is `insufficient_quota`: a 429 that retrying cannot fix.
    pub fn is_insufficient_quota(&self) -> bool {
        self.code.is_some_and(|c| c.eq_str("insufficient_quota"))
            || self.kind.is_some_and(|c| c.eq_str("insufficient_quota"))
    }
}

impl fmt::Display for ApiError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(k) = self.kind {
            write!(f, " (type {k}")?;
            if let Some(c) = self.code {
                write!(f, ", code {c}")?;
            }
            f.write_str(")")?;
        } else if let Some(c) = self.code {
            write!(f, " (code {c})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::prelude::rust_2024::*;
    use std::{format, vec};

    /// Items rendered as compact strings for comparison.
    fn items(dialect: Dialect, events: &[&str]) -> (Vec<String>, StreamEnd) {
        let mut dec = StreamDecoder::new(dialect);
        let mut out = Vec::new();
        for e in events {
            dec.decode(e, |item| out.push(render(&item)))
                .expect("valid event");
        }
        (out, dec.finish())
    }

    /// One line per item (the dialects' tests share it).
    /// The items of the SSE `text` through a parser of `N` bytes, handling events too large for
    /// it as the adapters do ([`StreamDecoder::dropped`]): the items, the end, and how many
    /// events were dropped; `None` when one could not be.
    #[cfg(any(feature = "anthropic", feature = "responses"))]
    pub(crate) fn items_through<const N: usize>(
        dialect: Dialect,
        text: &str,
    ) -> Option<(Vec<String>, StreamEnd, usize)> {
        let mut parser = crate::sse::SseParser::<N>::new();
        let mut dec = StreamDecoder::new(dialect);
        let (mut out, mut dropped) = (Vec::new(), 0);
        let mut rest = text.as_bytes();
        loop {
            match parser.feed(&mut rest) {
                Ok(Some(crate::sse::SseItem::Event(ev))) => dec
                    .decode(ev.data, |i| out.push(render(&i)))
                    .expect("valid"),
                Ok(Some(crate::sse::SseItem::Retry(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    dropped += 1;
                    let t = parser.dropped_event_type();
                    if !dec.dropped(t, |i| out.push(render(&i))) {
                        return None;
                    }
                }
            }
        }
        Some((out, dec.finish(), dropped))
    }

    pub(crate) fn render(item: &StreamItem<'_>) -> String {
        let o = |s: &Option<JsonStr<'_>>| s.map_or("-".to_string(), |s| s.to_string());
        match item {
            StreamItem::Role { choice, role } => format!("role {choice} {role}"),
            StreamItem::Content { choice, text } => format!("content {choice} {text}"),
            StreamItem::Reasoning { choice, text } => format!("reasoning {choice} {text}"),
            StreamItem::Refusal { choice, text } => format!("refusal {choice} {text}"),
            StreamItem::ToolCall(t) => format!(
                "tool {} {} {} {} {}",
                t.choice,
                t.index,
                o(&t.id),
                o(&t.name),
                t.arguments
            ),
            StreamItem::Finish { choice, reason } => format!("finish {choice} {reason}"),
            StreamItem::Usage(u) => {
                format!(
                    "usage {} {} {}",
                    u.prompt_tokens, u.completion_tokens, u.total_tokens
                )
            }
            StreamItem::Error(e) => format!(
                "error {} {} {} {}",
                e.message,
                o(&e.kind),
                o(&e.code),
                o(&e.param)
            ),
            StreamItem::Done => "done".into(),
            #[cfg(feature = "responses")]
            StreamItem::Created { id } => format!("created {id}"),
        }
    }

    #[test]
    fn openai_stream() {
        let (got, end) = items(
            Dialect::OpenAi,
            &[
                r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"delta":{"content":"a\"b"},"index":1}]}"#,
                r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think"}},{"index":2,"delta":{"reasoning":"more"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"refusal":"no"}}]}"#,
                r#"{"choices":[{"finish_reason":"length","index":0,"delta":{"content":"end"}}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}"#,
                "[DONE]",
                r#"{"choices":[{"index":0,"delta":{"content":"after done"}}]}"#,
            ],
        );
        assert_eq!(
            got,
            [
                "role 0 assistant",
                "content 1 a\"b",
                "reasoning 0 think",
                "reasoning 2 more",
                "refusal 0 no",
                "content 0 end",
                "finish 0 length",
                "usage 5 2 7",
                "done"
            ]
        );
        assert_eq!(end, StreamEnd::Complete);
    }

    #[test]
    fn tool_call_fragments() {
        let (got, _) = items(
            Dialect::OpenAi,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
                // Gemini-style: no index, several calls in one chunk; null index.
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},{"index":null,"id":"b","function":{"name":"g"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":null,"tool_calls":null},"finish_reason":"tool_calls"}]}"#,
            ],
        );
        assert_eq!(
            got,
            [
                "tool 0 0 call_1 get_weather ",
                "tool 0 0 - - {\"city\":",
                "tool 0 0 a f {}",
                "tool 0 1 b g ",
                "finish 0 tool_calls"
            ]
        );
    }

    #[test]
    fn filtered_and_keepalive_chunks_produce_nothing() {
        let (got, end) = items(
            Dialect::OpenAi,
            &[
                r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
                r#"{"choices":[{"index":0,"content_filter_offsets":{"check_offset":35},"content_filter_results":{}}]}"#,
                r#"{"choices":[{"index":0,"delta":{}}]}"#,
                r#"{"choices":null,"usage":null}"#,
            ],
        );
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(end, StreamEnd::Truncated);
    }

    #[test]
    fn errors_in_stream() {
        let (got, _) = items(
            Dialect::OpenAi,
            &[
                r#"{"error":{"message":"Rate limited","type":"rate_limit","param":null,"code":429}}"#,
                r#"{"error":{"message":"Bad","type":null,"code":"bad_thing"}}"#,
                r#"{"object":"error","message":"vllm says no","type":"BadRequestError","code":400}"#,
            ],
        );
        assert_eq!(
            got,
            [
                "error Rate limited rate_limit 429 -",
                "error Bad - bad_thing -",
                "error vllm says no BadRequestError 400 -"
            ]
        );
    }

    #[test]
    fn malformed_events_are_errors() {
        let mut dec = StreamDecoder::new(Dialect::OpenAi);
        for bad in [
            "{not json",
            "",
            "42",
            r#"{"choices":[{"delta":{"content":"x"}}]"#,
            "{} x",
        ] {
            assert!(dec.decode(bad, |_| {}).is_err(), "{bad:?}");
        }
        // items before the fault are delivered, and are correct
        let mut got = vec![];
        let r = dec.decode(
            r#"{"choices":[{"index":0,"delta":{"content":"ok"}},{"#,
            |i| got.push(render(&i)),
        );
        assert!(r.is_err());
        assert_eq!(got, ["content 0 ok"]);
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_stream() {
        let (got, end) = items(
            Dialect::Anthropic,
            &[
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
                r#"{"type":"ping"}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}"#,
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"loc"}}"#,
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
                r#"{"type":"message_stop"}"#,
            ],
        );
        assert_eq!(
            got,
            [
                "role 0 assistant",
                "reasoning 0 hmm",
                "content 0 Hello",
                "tool 0 2 toolu_1 get_weather ",
                "tool 0 2 - - {\"loc",
                "finish 0 tool_use",
                "usage 25 15 40",
                "done"
            ]
        );
        assert_eq!(end, StreamEnd::Complete);
        let (got, end) = items(
            Dialect::Anthropic,
            &[r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#],
        );
        assert_eq!(got, ["error Overloaded overloaded_error - -"]);
        assert_eq!(end, StreamEnd::Truncated);
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_server_tools_are_not_the_callers_tool_calls() {
        // Web search as Anthropic streams it: the server's tool use (its query as
        // `input_json_delta`s), the results block, cited text, then a tool of the caller's. Only
        // the caller's is a tool call, in templates on and off alike.
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\": "}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"weather\"}"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","title":"W","url":"https://w.example","encrypted_content":"Eqg","page_age":null}]}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Sunny."}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","cited_text":"Sunny","url":"https://w.example","title":"W","encrypted_index":"Eo8"}}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"content_block_stop","index":3}"#,
            r#"{"type":"content_block_start","index":4,"content_block":{"type":"mcp_tool_use","id":"mcptoolu_1","name":"g","server_name":"s","input":{}}}"#,
            r#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let dec = sequence_agrees(Dialect::Anthropic, &events);
        assert!(dec.is_done());
        let (got, _) = items(Dialect::Anthropic, &events);
        let want = [
            "role 0 assistant",
            "content 0 Sunny.",
            "tool 0 3 toolu_1 f ",
            "tool 0 3 - - {\"a\":",
            "tool 0 3 - - 1}",
            "finish 0 tool_use",
            "usage 9 15 24",
            "done",
        ];
        assert_eq!(got, want);
        // The results block past a small parser's buffer (real ones run to many KB): dropped
        // with its block (`StreamDecoder::dropped`), the same items.
        let long = "E".repeat(600);
        let mut text = String::new();
        for e in events {
            let v: serde_json::Value = serde_json::from_str(e).expect("json");
            let data = e.replace(
                r#""encrypted_content":"Eqg""#,
                &format!(r#""encrypted_content":"{long}""#),
            );
            text.push_str(&format!(
                "event: {}\ndata: {data}\n\n",
                v["type"].as_str().expect("type")
            ));
        }
        let (got, end, dropped) = items_through::<512>(Dialect::Anthropic, &text).expect("goes on");
        assert_eq!(
            (got, dropped, end),
            (want.map(String::from).to_vec(), 1, StreamEnd::Complete)
        );
        // Content that large is lost content.
        let mut dec = StreamDecoder::new(Dialect::Anthropic);
        assert!(!dec.dropped(Some("content_block_delta"), |_| {}));
        assert!(!dec.dropped(Some("message_delta"), |_| {}));
    }

    #[test]
    #[cfg(not(feature = "anthropic"))]
    fn anthropic_is_refused_without_its_feature() {
        let mut dec = StreamDecoder::new(Dialect::Anthropic);
        let mut n = 0;
        assert_eq!(
            dec.decode(r#"{"type":"message_stop"}"#, |_| n += 1),
            Err(DecodeError::UnsupportedDialect)
        );
        assert_eq!((n, dec.is_done()), (0, false));
    }

    #[test]
    #[cfg(not(feature = "responses"))]
    fn responses_is_refused_without_its_feature() {
        let mut dec = StreamDecoder::new(Dialect::Responses);
        let mut n = 0;
        let event = r#"{"type":"response.output_text.delta","sequence_number":1,"delta":"x"}"#;
        assert_eq!(
            dec.decode(event, |_| n += 1),
            Err(DecodeError::UnsupportedDialect)
        );
        assert_eq!(n, 0);
        let msgs = [crate::request::Message::user("hi")];
        assert_eq!(
            crate::request::ChatRequest::new("m", &msgs).body_len(Dialect::Responses),
            Err(crate::request::RequestError::UnsupportedDialect)
        );
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_whole_message_and_escaped_keys() {
        let (got, end) = items(
            Dialect::Anthropic,
            &[
                r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"Hmm.","signature":"sig"},{"type":"text","text":"Hi"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a": [1, "\"q\""]}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#,
            ],
        );
        assert_eq!(
            got,
            [
                "role 0 assistant",
                "reasoning 0 Hmm.",
                "content 0 Hi",
                "tool 0 2 toolu_1 f {\"a\": [1, \"\\\"q\\\"\"]}",
                "finish 0 tool_use",
                "usage 3 4 7",
                "done"
            ]
        );
        assert_eq!(end, StreamEnd::Complete);
        let (got, _) = items(
            Dialect::OpenAi,
            &[r#"{"choices":[{"index":0,"delta":{"con\u0074ent":"esc"}}]}"#],
        );
        assert_eq!(got, ["content 0 esc"]);
    }

    #[test]
    fn error_bodies() {
        let e = ApiError::parse(
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        )
        .expect("openai shape");
        assert!(e.is_insufficient_quota());
        assert_eq!(e.message.to_string(), "You exceeded your current quota");
        let e = ApiError::parse(
            r#"{"object":"error","message":"m","type":"t","param":"p","code":400}"#,
        )
        .expect("bare shape");
        assert_eq!(
            (e.code.map(|c| c.raw()), e.param.map(|c| c.raw())),
            (Some("400"), Some("p"))
        );
        let e =
            ApiError::parse(r#"{"type":"error","error":{"type":"not_found_error","message":"x"}}"#)
                .expect("anthropic shape");
        assert_eq!(e.kind.map(|k| k.raw()), Some("not_found_error"));
        let e = ApiError::parse(r#"{"error":"plain text"}"#).expect("string error");
        assert_eq!(e.message.raw(), "plain text");
        assert_eq!(
            ApiError::parse(r#"{"ok":true}"#),
            Err(DecodeError::NotAnError)
        );
        assert!(ApiError::parse("<html>502 Bad Gateway</html>").is_err());
        // A message or type that is not a string counts as absent: the object is kept, and
        // with it a code that says the quota is gone (the browser wrapper reads it the same).
        for body in [
            r#"{"error":{"message":{"detail":"x"},"type":true,"code":"insufficient_quota"}}"#,
            r#"{"error":{"message":["x"],"code":"insufficient_quota"}}"#,
            r#"{"message":{},"code":"insufficient_quota"}"#,
        ] {
            let e = ApiError::parse(body).expect(body);
            assert!(e.is_insufficient_quota(), "{body}");
            assert!(e.message.is_empty() && e.kind.is_none(), "{body}");
        }
        // A number is kept as its text, as a code is.
        let e = ApiError::parse(r#"{"error":{"message":404,"type":1.5}}"#).expect("numbers");
        assert_eq!(
            (e.message.raw(), e.kind.map(|k| k.raw())),
            ("404", Some("1.5"))
        );
        assert!(ApiError::parse(r#"{"type":true}"#).is_err());
    }

    /// Decodes `second` after `first` with templates on (so one learned from `first` may apply)
    /// and off; items and state must agree. Returns whether the template learned from `first`
    /// replays `second`.
    fn templates_agree_in(dialect: Dialect, first: &str, second: &str) -> bool {
        // Anthropic's tool arguments are the caller's inside a `tool_use` block only.
        let start = r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#;
        let in_block = |d: &mut StreamDecoder| {
            if dialect == Dialect::Anthropic && first.contains("input_json_delta") {
                // (Refused alike by both decoders without the `anthropic` feature.)
                let _ = d.decode(start, |_| {});
            }
        };
        let mut warm = StreamDecoder::new(dialect);
        in_block(&mut warm);
        let _ = warm.decode(first, |_| {});
        if warm.is_done() {
            // After the end marker nothing more is decoded, by design.
            return false;
        }
        let mut learned = warm.template.clone();
        let mut a = Vec::new();
        let ra = warm.decode(second, |i| a.push(render(&i))).is_ok();
        let mut b = Vec::new();
        let mut cold = StreamDecoder::new(dialect).with_memo(false);
        in_block(&mut cold);
        let _ = cold.decode(first, |_| {});
        let rb = cold.decode(second, |i| b.push(render(&i))).is_ok();
        assert_eq!((ra, &a), (rb, &b), "{first} then {second}");
        assert_eq!(warm.is_done(), cold.is_done());
        assert_eq!(warm.input_tokens, cold.input_tokens);
        learned.replay(second, &mut |_| {})
    }

    fn templates_agree(first: &str, second: &str) -> bool {
        templates_agree_in(Dialect::OpenAi, first, second)
    }

    /// Decodes `events` in order with templates on and off; every event's items and result
    /// must agree. Returns the decoder with templates on.
    fn sequence_agrees(dialect: Dialect, events: &[&str]) -> StreamDecoder {
        let mut warm = StreamDecoder::new(dialect);
        let mut cold = StreamDecoder::new(dialect).with_memo(false);
        for e in events {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = warm.decode(e, |i| a.push(render(&i))).is_ok();
            let rb = cold.decode(e, |i| b.push(render(&i))).is_ok();
            assert_eq!((ra, &a), (rb, &b), "{e} in {events:?}");
        }
        assert_eq!(warm.is_done(), cold.is_done());
        warm
    }

    /// The chunks providers send (see core/benches/support/corpus.rs), with `{T}` for the text
    /// and `{O}` for a value that varies per chunk.
    const SHAPES: [(Dialect, &str); 7] = [
        (
            Dialect::OpenAi,
            r#"{"id":"chatcmpl-C1","object":"chat.completion.chunk","created":1725,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":{T}},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":{O}}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"}},"delta":{"content":{T}},"finish_reason":null,"index":0,"logprobs":null}],"created":{O},"id":"chatcmpl-A","model":"gpt-4o","object":"chat.completion.chunk","system_fingerprint":"fp_2"}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":{O},"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":{T}},"finish_reason":null}]}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"id":"c","choices":[{"index":2,"delta":{"reasoning_content":{T}},"logprobs":null}],"x":{O}}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":{T}}}]}}],"o":{O}}"#,
        ),
        (
            Dialect::Anthropic,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":{T}}}"#,
        ),
        (
            Dialect::Anthropic,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":{T}}}"#,
        ),
    ];

    fn fill(shape: &str, text: &str, other: &str) -> String {
        shape.replace("{T}", text).replace("{O}", other)
    }

    #[test]
    fn templates_apply_to_every_shape_and_never_change_results() {
        for (dialect, shape) in SHAPES {
            if dialect == Dialect::Anthropic && cfg!(not(feature = "anthropic")) {
                continue;
            }
            let first = fill(shape, r#""Hello""#, r#""abc""#);
            for (text, text_ok, other, other_ok) in [
                (r#"" world""#, true, r#""abc""#, true),
                (r#""\u00e9\n\"q\"""#, true, r#""Zx9""#, true),
                (r#""\ud83e\udd80""#, true, "17", true),
                (r#""x""#, true, r#"{"a":[1,null]}"#, true),
                (r#""x""#, true, r#""unterminated"#, false),
                (r#""x""#, true, "nul", false),
                (r#""bad\x""#, false, r#""abc""#, true),
                ("null", false, r#""abc""#, true),
                ("12", false, r#""abc""#, true),
            ] {
                let second = fill(shape, text, other);
                let replayed = text_ok && (other_ok || !shape.contains("{O}"));
                assert_eq!(
                    templates_agree_in(dialect, &first, &second),
                    replayed,
                    "{second}"
                );
            }
            // Empty text is left to the full parse; tool arguments replay even when empty.
            let second = fill(shape, r#""""#, r#""abc""#);
            let tool = shape.contains("arguments") || shape.contains("partial_json");
            assert_eq!(
                templates_agree_in(dialect, &first, &second),
                tool,
                "{second}"
            );
        }
    }

    #[test]
    fn a_free_value_that_differed_is_compared_on_its_own_with_the_same_results() {
        for (dialect, shape) in SHAPES {
            if !shape.contains("{O}") {
                continue;
            }
            let first = fill(shape, r#""Hello""#, r#""abc""#);
            let second = fill(shape, r#"" world""#, r#""Zx9""#);
            let third = fill(shape, r#""!""#, r#""Q1w""#);
            let warm = sequence_agrees(dialect, &[&first, &second]);
            // `second`'s other value differed from the template's: it is marked,
            assert_ne!(warm.template.varies, 0, "{second}");
            // the next event is replayed with it compared on its own,
            assert!(warm.template.clone().replay(&third, &mut |_| {}), "{third}");
            // and once it is seen equal again (`third`'s, kept), its stretch is compared whole
            // (after the text it starts one; before it, it lies in the stretch from the start)
            let same = fill(shape, r#""?""#, r#""Q1w""#);
            let warm = sequence_agrees(dialect, &[&first, &second, &third, &same]);
            if shape.find("{T}") < shape.find("{O}") {
                assert_eq!(warm.template.varies, 0, "{same}");
            }
            for last in [
                third.clone(),
                fill(shape, r#""!""#, r#""abc""#),
                fill(shape, r#""!""#, r#""unterminated"#),
                fill(shape, r#""!""#, "nul"),
                fill(shape, r#""""#, r#""abc""#),
                fill(shape, r#""!""#, r#""abc""#).replace(':', ": "),
                // the bytes before a marked value change what the event means
                third.replace(r#""finish_reason":null"#, r#""finish_reason":"ab""#),
            ] {
                sequence_agrees(dialect, &[&first, &second, &third, &last]);
            }
        }
    }

    #[test]
    fn templates_never_change_results_of_edited_chunks() {
        let first = r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        for second in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1234,"model":"m","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m",}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","choices":[{"index":0,"delta":{"content":"b"}}]} x"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","error":{"message":"x"}}"#,
            r#"{"id":"c1","object":"error","message":"bare","created":123}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m""#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123,"model":"m","choices":[]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":123.5,"model":"m","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":12,"model":"m","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
        ] {
            templates_agree(first, second);
        }
        // the template was really used for the common case
        assert!(templates_agree(first, &first.replace(r#""a""#, r#""zz""#)));
        assert!(templates_agree(first, &first.replace("123", "99999")));
        assert!(templates_agree(
            first,
            &first.replace(r#""m""#, r#""other""#)
        ));
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn state_changing_anthropic_events_are_not_learned() {
        let start = r#"{"type":"message_start","message":{"role":"assistant","usage":{"input_tokens":25,"output_tokens":1}}}"#;
        let mut dec = StreamDecoder::new(Dialect::Anthropic);
        dec.decode(start, |_| {}).expect("valid");
        assert_eq!(dec.template.holes_len, 0);
        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":30,"output_tokens":15}}"#;
        dec.decode(delta, |_| {}).expect("valid");
        assert_eq!(dec.template.holes_len, 0);
        assert!(!templates_agree_in(Dialect::Anthropic, start, start));
    }

    #[test]
    fn keys_written_with_escapes_are_recognised() {
        // Every key of every path written with \u escapes decodes like the plain form.
        fn escape_keys(json: &str) -> String {
            rewrite(json, true)
        }
        fn rewrite(json: &str, escape: bool) -> String {
            let v: serde_json::Value = serde_json::from_str(json).expect("json");
            fn walk(v: &serde_json::Value, out: &mut String, escape: bool) {
                match v {
                    serde_json::Value::Object(m) => {
                        out.push('{');
                        for (i, (k, v)) in m.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push('"');
                            for c in k.chars() {
                                if escape {
                                    out.push_str(&format!("\\u{:04x}", c as u32));
                                } else {
                                    out.push(c);
                                }
                            }
                            out.push_str("\":");
                            walk(v, out, escape);
                        }
                        out.push('}');
                    }
                    serde_json::Value::Array(a) => {
                        out.push('[');
                        for (i, v) in a.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            walk(v, out, escape);
                        }
                        out.push(']');
                    }
                    v => out.push_str(&v.to_string()),
                }
            }
            let mut out = String::new();
            walk(&v, &mut out, escape);
            out
        }
        let openai = [
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"hi","reasoning_content":"r","reasoning":"s","refusal":"no"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"error":{"message":"m","type":"t","code":1,"param":"p"}}"#,
            r#"{"object":"error","message":"bare","type":"t","code":400}"#,
        ];
        #[cfg(feature = "anthropic")]
        let anthropic = [
            r#"{"type":"message_start","message":{"role":"assistant","usage":{"input_tokens":3}}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"b"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"o"}}"#,
            r#"{"type":"message","role":"assistant","content":[{"type":"text","text":"t"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#,
        ];
        for (dialect, events) in [
            (Dialect::OpenAi, &openai[..]),
            #[cfg(feature = "anthropic")]
            (Dialect::Anthropic, &anthropic[..]),
        ] {
            // Same key order as the escaped form (serde_json's map sorts keys).
            let plain: Vec<String> = events.iter().map(|e| rewrite(e, false)).collect();
            let escaped: Vec<String> = events.iter().map(|e| escape_keys(e)).collect();
            let want = items(
                dialect,
                &plain.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            );
            assert!(!want.0.is_empty());
            let got = items(
                dialect,
                &escaped.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            );
            assert_eq!(got, want, "{escaped:?}");
            // and through templates: an escaped chunk learned, then replayed
            for e in &escaped {
                templates_agree_in(dialect, e, e);
            }
        }
        assert!(ApiError::parse(&escape_keys(openai[3])).is_ok_and(|e| e.message.eq_str("m")));
    }

    proptest::proptest! {
        #[test]
        fn content_shape_agrees_for_any_content(t in "(\\PC|[\\x00-\\x1f\"\\\\])*", tail in proptest::sample::select(vec!["", "null", "\"stop\"", "1"])) {
            let first = r#"{"id":"c","model":"m","choices":[{"index":3,"delta":{"content":"x"},"finish_reason":null}]}"#;
            let text = serde_json::to_string(&t).expect("json");
            let second = format!(r#"{{"id":"c","model":"m","choices":[{{"index":3,"delta":{{"content":{text}}},"finish_reason":null}}]}}{}"#, if tail == "1" { " " } else { "" });
            templates_agree(first, &second);
            let third = format!(r#"{{"id":"c","model":"m","choices":[{{"index":3,"delta":{{"content":{text}}},"finish_reason":{}}}]}}"#, if tail.is_empty() { "null" } else { tail });
            templates_agree(first, &third);
        }

        #[test]
        fn templates_agree_on_random_edits(cut in 0usize..140, insert in proptest::sample::select(vec!["", ",", "}", "1", "\"", " ", "x", "]", "{}"])) {
            let first = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1725,"model":"gpt","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#;
            let cut = cut.min(first.len());
            let second = format!("{}{}{}", &first[..cut], insert, &first[cut..]);
            templates_agree(first, &second);
        }

        #[test]
        fn templates_agree_on_random_edits_of_every_shape(
            shape in 0usize..SHAPES.len(),
            t in "(\\PC|[\\x00-\\x1f\"\\\\])*",
            o in "[0-9A-Za-z]{1,16}",
            cut in 0usize..400,
            insert in proptest::sample::select(vec!["", ",", "}", "{", "1", "\"", "\\", " ", "x", "]", "[", "{}", "null", ":", "\"a\":1,"]),
        ) {
            let (dialect, shape) = SHAPES[shape];
            let first = fill(shape, r#""first""#, r#""Q""#);
            let text = serde_json::to_string(&t).expect("json");
            let second = fill(shape, &text, &format!("\"{o}\""));
            templates_agree_in(dialect, &first, &second);
            let mut cut = cut.min(second.len());
            while !second.is_char_boundary(cut) {
                cut -= 1;
            }
            let edited = format!("{}{}{}", &second[..cut], insert, &second[cut..]);
            templates_agree_in(dialect, &first, &edited);
            templates_agree_in(dialect, &second, &edited);
            // after a replay in which a value differed (its stretch is then compared one
            // value at a time)
            sequence_agrees(dialect, &[&first, &second, &edited]);
        }

        #[test]
        fn content_matches_serde_json(
            texts in proptest::collection::vec(proptest::string::string_regex("(\\PC|[\\x00-\\x1f\"\\\\\\n])*").expect("regex"), 1..5),
            extra in proptest::collection::vec(("[a-z]{1,8}", proptest::num::i64::ANY), 0..4),
        ) {
            for t in &texts {
                let mut chunk = serde_json::json!({
                    "id": "chatcmpl-1",
                    "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}],
                });
                for (k, v) in &extra {
                    chunk[k.as_str()] = serde_json::json!({"nested": [v, null, true, {"x": "y"}]});
                }
                let data = serde_json::to_string(&chunk).expect("serialize");
                let mut got = String::new();
                StreamDecoder::new(Dialect::OpenAi)
                    .decode(&data, |i| if let StreamItem::Content { text, .. } = i { got.push_str(&text.to_string()) })
                    .expect("decodes");
                proptest::prop_assert_eq!(&got, t);
            }
        }

        #[test]
        fn random_bytes_never_panic(s in "\\PC{0,80}") {
            let _ = StreamDecoder::new(Dialect::OpenAi).decode(&s, |_| {});
            let _ = StreamDecoder::new(Dialect::Anthropic).decode(&s, |_| {});
            let _ = ApiError::parse(&s);
        }
    }
}
