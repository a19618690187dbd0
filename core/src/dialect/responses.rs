//! OpenAI's Responses API (`/v1/responses`) as a dialect: [`Dialect::Responses`] (feature
//! `responses`).
//!
//! - **Request bodies**: [`ChatRequest::write_body`] with [`Dialect::Responses`] writes the
//!   Responses form of the same request model: `input` (a string for a lone user text, else
//!   message, `function_call` and `function_call_output` items), a leading system or developer
//!   text as `instructions`, `tools`, `tool_choice`, `reasoning`, `max_output_tokens`, `text`
//!   (the response format), `stream`, and for a streamed request background mode
//!   (`"background":true,"store":true`, [`ChatRequest::background`]).
//! - **The resume request**: [`write_resume_head`] writes
//!   `GET {prefix}/v1/responses/{id}?stream=true&starting_after=N`, a head without a body.
//! - **The decoder**: [`StreamDecoder`] with [`Dialect::Responses`] reads the typed events
//!   (`data` carries `"type"` and `"sequence_number"`; the `event:` lines are not needed) and a
//!   whole (non-streamed) response object. `response.output_text.delta` is
//!   [`StreamItem::Content`]; reasoning-summary and reasoning-text deltas are
//!   [`StreamItem::Reasoning`]; `response.refusal.delta` is [`StreamItem::Refusal`]; a
//!   `function_call` item (`response.output_item.added`, with its `call_id` and name) and its
//!   `response.function_call_arguments.delta`s are [`StreamItem::ToolCall`]s whose index is
//!   the `output_index`; `response.created` (or `queued`, `in_progress`) gives the id once as
//!   [`StreamItem::Created`]; `response.completed` is [`StreamItem::Finish`] (the status,
//!   `completed`), [`StreamItem::Usage`] and [`StreamItem::Done`]; `response.incomplete` is
//!   a `Finish` with its reason (`max_output_tokens`, `content_filter`) and the stream then
//!   ends as [`StreamEnd::Incomplete`]; `response.failed` is a [`StreamItem::Error`] and
//!   [`StreamEnd::Failed`]; an `error` event is a [`StreamItem::Error`]. Other events
//!   (`response.output_item.done`, `response.content_part.added`, `…done`) yield nothing.
//!   The decoder's templates (see [`StreamDecoder`]) are not used for this dialect yet.
//!
//! ## Sequence numbers and resuming
//! An event's items are passed on only once the whole event has been read (a malformed event
//! yields nothing). When [`StreamDecoder::decode`] returns `Ok`, the event's items have been
//! delivered and [`StreamDecoder::sequence_number`] is its `sequence_number`: the `N` to resume
//! after. For a resumed stream, call [`StreamDecoder::finish`] and then
//! [`StreamDecoder::resume_after`]`(N)`: events numbered `N` or less then yield nothing (a
//! replay never delivers an item twice), whatever the server sends.
//!
//! ```
//! use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};
//!
//! let events = [
//!     r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"queued","output":[]}}"#,
//!     r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}"#,
//!     r#"{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" there","logprobs":[]}"#,
//! ];
//! let mut dec = StreamDecoder::new(Dialect::Responses);
//! let (mut id, mut text) = (String::new(), String::new());
//! let mut on_item = |item: StreamItem<'_>| match item {
//!     StreamItem::Created { id: i } => id = i.to_string(),
//!     StreamItem::Content { text: t, .. } => text.push_str(&t.to_string()),
//!     _ => {}
//! };
//! for e in &events[..2] {
//!     dec.decode(e, &mut on_item).unwrap();
//! }
//! // The stream breaks here: resume after the last event delivered.
//! let n = dec.sequence_number().unwrap();
//! assert!(!dec.finish().is_complete());
//! dec.resume_after(n);
//! // The server replays from the start: what was delivered is skipped.
//! for e in &events {
//!     dec.decode(e, &mut on_item).unwrap();
//! }
//! assert_eq!((id.as_str(), text.as_str()), ("resp_1", "Hi there"));
//! ```

use crate::decode::{
    ApiError, DecodeError, Dialect, StreamDecoder, StreamEnd, StreamItem, ToolCallDelta, Usage,
    clamp_u32, error_member, find_key_str, read_error_object,
};
use crate::http::{HeadError, HeaderError, OWN, RequestHead, percent_encode, write_headers};
use crate::json::{JsonStr, Reader, Writer};
use crate::request::{
    ChatRequest, Content, Members, Part, RequestError, ResponseFormat, Role, ToolChoice,
};

// ---------------------------------------------------------------------------------------------
// Request bodies

impl ChatRequest<'_> {
    /// The Responses body (see the module docs).
    pub(crate) fn emit_responses(
        &self,
        m: &mut Members<'_>,
        w: &mut Writer<'_>,
    ) -> Result<(), RequestError> {
        if !self.stop.is_empty() {
            return Err(RequestError::UnsupportedField);
        }
        m.put(w, b"{\"model\":");
        w.string(self.model);
        let mut messages = self.messages;
        if let Some((first, rest)) = messages.split_first()
            && matches!(first.role, Role::System | Role::Developer)
            && let Some(Content::Text(t)) = first.content
        {
            m.put(w, b",\"instructions\":");
            w.string(t);
            messages = rest;
        }
        m.put(w, b",\"input\":");
        match messages {
            [only]
                if only.role == Role::User
                    && only.tool_calls.is_empty()
                    && matches!(only.content, Some(Content::Text(_))) =>
            {
                if let Some(Content::Text(t)) = only.content {
                    w.string(t);
                }
            }
            _ => write_input_items(w, messages)?,
        }
        if let Some(max) = self.max_tokens.or(self.max_completion_tokens) {
            m.put(w, b",\"max_output_tokens\":");
            w.u64(u64::from(max));
        }
        self.emit_sampling(m, w);
        if let Some(u) = self.user {
            m.put(w, b",\"user\":");
            w.string(u);
        }
        if !self.tools.is_empty() {
            m.put(w, b",\"tools\":[");
            for (i, t) in self.tools.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.raw(b"{\"type\":\"function\",\"name\":");
                w.string(t.name);
                if let Some(d) = t.description {
                    w.raw(b",\"description\":");
                    w.string(d);
                }
                w.raw(b",\"parameters\":");
                match t.parameters {
                    Some(p) => w.raw(p.as_str().as_bytes()),
                    None => w.raw(b"{\"type\":\"object\",\"properties\":{}}"),
                }
                // Responses functions are strict unless told otherwise.
                w.raw(if t.strict {
                    b",\"strict\":true}"
                } else {
                    b",\"strict\":false}"
                });
            }
            w.byte(b']');
            if let Some(p) = self.parallel_tool_calls {
                m.put(w, b",\"parallel_tool_calls\":");
                w.raw(if p { b"true" } else { b"false" });
            }
        }
        if let Some(tc) = self.tool_choice {
            m.put(w, b",\"tool_choice\":");
            match tc {
                ToolChoice::Auto => w.raw(b"\"auto\""),
                ToolChoice::None => w.raw(b"\"none\""),
                ToolChoice::Required => w.raw(b"\"required\""),
                ToolChoice::Function(name) => {
                    w.raw(b"{\"type\":\"function\",\"name\":");
                    w.string(name);
                    w.byte(b'}');
                }
            }
        }
        if let Some(f) = self.response_format {
            m.put(w, b",\"text\":{\"format\":");
            match f {
                ResponseFormat::Text => w.raw(b"{\"type\":\"text\"}}"),
                ResponseFormat::JsonObject => w.raw(b"{\"type\":\"json_object\"}}"),
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => {
                    w.raw(b"{\"type\":\"json_schema\",\"name\":");
                    w.string(name);
                    w.raw(b",\"schema\":");
                    w.raw(schema.as_str().as_bytes());
                    w.raw(if strict { b",\"strict\":true}}" } else { b"}}" });
                }
            }
        }
        if let Some(e) = self.reasoning_effort {
            m.put(w, b",\"reasoning\":{\"effort\":");
            w.string(e.as_str());
            w.byte(b'}');
        }
        if self.stream {
            m.put(w, b",\"stream\":true");
            if !self.include_obfuscation {
                m.put(w, b",\"stream_options\":{\"include_obfuscation\":false}");
            }
            if self.background {
                m.put(w, b",\"background\":true");
                m.put(w, b",\"store\":true");
            }
        } else {
            m.put(w, b",\"stream\":false");
        }
        Ok(())
    }
}

/// `input` as an array of items: messages (`{"role","content"}`), the assistant's earlier
/// `function_call`s, and tool results as `function_call_output`s.
fn write_input_items(
    w: &mut Writer<'_>,
    messages: &[crate::request::Message<'_>],
) -> Result<(), RequestError> {
    w.byte(b'[');
    let mut first = true;
    let mut sep = |w: &mut Writer<'_>| {
        if !first {
            w.byte(b',');
        }
        first = false;
    };
    for msg in messages {
        if msg.role == Role::Tool {
            let id = msg.tool_call_id.ok_or(RequestError::MissingToolCallId)?;
            sep(w);
            w.raw(b"{\"type\":\"function_call_output\",\"call_id\":");
            w.string(id);
            w.raw(b",\"output\":");
            write_content(w, msg.content, false);
            w.byte(b'}');
            continue;
        }
        if msg.content.is_some() || msg.tool_calls.is_empty() {
            sep(w);
            w.raw(b"{\"role\":\"");
            w.raw(msg.role.as_str().as_bytes());
            w.raw(b"\",\"content\":");
            write_content(w, msg.content, msg.role == Role::Assistant);
            w.byte(b'}');
        }
        for c in msg.tool_calls {
            sep(w);
            w.raw(b"{\"type\":\"function_call\",\"call_id\":");
            w.string(c.id);
            w.raw(b",\"name\":");
            w.string(c.name);
            w.raw(b",\"arguments\":");
            w.string(c.arguments);
            w.byte(b'}');
        }
    }
    w.byte(b']');
    Ok(())
}

/// Message content: a string, or parts (`input_text`/`input_image`; an assistant's text parts
/// as `output_text`, its images left out: the API takes none there).
fn write_content(w: &mut Writer<'_>, content: Option<Content<'_>>, assistant: bool) {
    match content {
        None => w.raw(b"\"\""),
        Some(Content::Text(t)) => w.string(t),
        Some(Content::Parts(parts)) => {
            w.byte(b'[');
            let mut n = 0;
            for p in parts {
                match *p {
                    Part::Text(t) => {
                        if n > 0 {
                            w.byte(b',');
                        }
                        w.raw(if assistant {
                            b"{\"type\":\"output_text\",\"text\":"
                        } else {
                            b"{\"type\":\"input_text\",\"text\":"
                        });
                        w.string(t);
                        w.byte(b'}');
                    }
                    Part::ImageUrl { url, detail } if !assistant => {
                        if n > 0 {
                            w.byte(b',');
                        }
                        w.raw(b"{\"type\":\"input_image\",\"image_url\":");
                        w.string(url);
                        w.raw(b",\"detail\":");
                        w.string(detail.unwrap_or("auto"));
                        w.byte(b'}');
                    }
                    Part::ImageUrl { .. } => continue,
                }
                n += 1;
            }
            w.byte(b']');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The resume request

/// Writes the head of the request that resumes a background response's stream:
/// `GET {path}/{id}?stream=true&starting_after={after}` (the endpoint's query parameters
/// follow), with the same host, key, user agent, retry count, headers and `Connection` as
/// `head` would send, and neither body nor `Content-Type`/`Content-Length`. `head.endpoint`
/// should be a [`Dialect::Responses`] endpoint (the path is that dialect's);
/// `head.content_length` and `head.stream` are not used. The id is percent-encoded; an empty
/// one is refused ([`HeaderError::InvalidValue`]). Returns the head's length.
pub fn write_resume_head(
    head: &RequestHead<'_>,
    id: &str,
    after: u64,
    out: &mut [u8],
) -> Result<usize, HeadError> {
    if id.is_empty() {
        return Err(HeadError::Header(HeaderError::InvalidValue));
    }
    crate::http::check_header_value(head.user_agent).map_err(HeadError::Header)?;
    let ep = head.endpoint;
    let mut w = Writer::new(out);
    w.raw(b"GET ");
    ep.base_url.write_path(Dialect::Responses, &mut w);
    w.byte(b'/');
    percent_encode(&mut w, id);
    w.raw(b"?stream=true&starting_after=");
    w.u64(after);
    for (k, v) in ep.query {
        w.byte(b'&');
        percent_encode(&mut w, k);
        w.byte(b'=');
        percent_encode(&mut w, v);
    }
    w.raw(b" HTTP/1.1\r\nHost: ");
    ep.base_url.write_host(&mut w);
    if let Some(key) = ep.api_key {
        w.raw(b"\r\nAuthorization: Bearer ");
        w.raw(key.expose().as_bytes());
    }
    w.raw(b"\r\nAccept: text/event-stream\r\nAccept-Encoding: identity\r\nUser-Agent: ");
    w.raw(head.user_agent.as_bytes());
    w.raw(b"\r\nx-steadyllm-retry-count: ");
    w.u64(u64::from(head.retry_count));
    w.raw(b"\r\n");
    // `authorization`, the one name this head sets beyond the fixed ones (with a key).
    let own = if ep.api_key.is_some() {
        OWN.get(..14).unwrap_or_default()
    } else {
        &[]
    };
    write_headers(&mut w, ep.headers, own).map_err(HeadError::Header)?;
    write_headers(&mut w, head.extra_headers, own).map_err(HeadError::Header)?;
    if head.close {
        w.raw(b"Connection: close\r\n");
    }
    w.raw(b"\r\n");
    w.finish().map_err(HeadError::BufferTooSmall)
}

// ---------------------------------------------------------------------------------------------
// The decoder

/// The decoder's Responses state: sequence numbers and how the stream ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct State {
    /// The `sequence_number` of the last event delivered.
    last: Option<u64>,
    /// Events numbered at or below this yield nothing ([`StreamDecoder::resume_after`]).
    after: Option<u64>,
    /// `Failed` or `Incomplete` once such an event ended the stream.
    end: Option<StreamEnd>,
    /// The id was passed on ([`StreamItem::Created`] comes once).
    created: bool,
}

impl State {
    pub(crate) const NEW: State = State {
        last: None,
        after: None,
        end: None,
        created: false,
    };

    /// The end [`StreamDecoder::finish`] reports, given the one it found; resets.
    pub(crate) fn finish(&mut self, end: StreamEnd) -> StreamEnd {
        let end = match self.end {
            Some(e) if end == StreamEnd::Complete => e,
            _ => end,
        };
        *self = State::NEW;
        end
    }
}

/// What an event is, from its `type`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Reasoning,
    Refusal,
    Arguments,
    ItemAdded,
    Created,
    Completed,
    Incomplete,
    Failed,
    Error,
    Other,
}

impl Kind {
    fn of(t: JsonStr<'_>) -> Kind {
        const NAMES: [(&str, Kind); 12] = [
            ("response.output_text.delta", Kind::Text),
            ("response.function_call_arguments.delta", Kind::Arguments),
            ("response.reasoning_summary_text.delta", Kind::Reasoning),
            ("response.reasoning_text.delta", Kind::Reasoning),
            ("response.refusal.delta", Kind::Refusal),
            ("response.output_item.added", Kind::ItemAdded),
            ("response.created", Kind::Created),
            ("response.queued", Kind::Created),
            ("response.in_progress", Kind::Created),
            ("response.completed", Kind::Completed),
            ("response.incomplete", Kind::Incomplete),
            ("response.failed", Kind::Failed),
        ];
        if t.eq_str("error") {
            return Kind::Error;
        }
        NAMES
            .iter()
            .find(|(n, _)| t.eq_str(n))
            .map_or(Kind::Other, |&(_, k)| k)
    }
}

/// What a response object says beyond its output.
#[derive(Default)]
struct Summary<'a> {
    id: Option<JsonStr<'a>>,
    status: Option<JsonStr<'a>>,
    /// `incomplete_details.reason`.
    reason: Option<JsonStr<'a>>,
    /// `error` (a failed response's).
    error: Option<ApiError<'a>>,
    usage: Option<Usage>,
}

impl StreamDecoder {
    /// Responses: the `sequence_number` of the last event whose items were delivered (`None`
    /// before the first, or when the server sends none). See [`crate::dialect::responses`].
    pub fn sequence_number(&self) -> Option<u64> {
        self.resp.last
    }

    /// Responses: events numbered `n` or less yield nothing from now on, and `n` is the
    /// [`StreamDecoder::sequence_number`]: for the stream that resumes after event `n`
    /// (call [`StreamDecoder::finish`] on the broken one first). The id is not passed on
    /// again ([`StreamItem::Created`]: the caller had it to resume).
    pub fn resume_after(&mut self, n: u64) {
        self.resp.after = Some(n);
        self.resp.last = Some(n);
        // The id, the resume's own premise, was delivered before.
        self.resp.created = true;
    }

    // Out of line: flash (crate docs).
    #[inline(never)]
    pub(crate) fn decode_responses<'a>(
        &mut self,
        data: &'a str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let Some(kind) = find_key_str(r, "type")? else {
            // A whole (non-streamed) response object.
            let s = read_response(&mut r, Some(&mut *emit))?;
            r.end()?;
            self.end_with(s, emit);
            return Ok(());
        };
        let kind = Kind::of(kind);
        let mut seq = None;
        let mut item = None;
        let mut summary = None;
        let mut index = 0;
        let mut err = ApiError::default();
        let mut o = r.object()?;
        while let Some(k) = o.next_key(&mut r)? {
            match (k.key(&mut [0; 32]), kind) {
                ("sequence_number", _) => seq = r.u64_or_null()?,
                ("output_index", _) => index = r.u64_or_null()?.map_or(0, clamp_u32),
                ("delta", Kind::Text) => {
                    item = text_item(r.string()?, |c, text| StreamItem::Content {
                        choice: c,
                        text,
                    })
                }
                ("delta", Kind::Reasoning) => {
                    item = text_item(r.string()?, |c, text| StreamItem::Reasoning {
                        choice: c,
                        text,
                    })
                }
                ("delta", Kind::Refusal) => {
                    item = text_item(r.string()?, |c, text| StreamItem::Refusal {
                        choice: c,
                        text,
                    })
                }
                ("delta", Kind::Arguments) => {
                    item = Some(StreamItem::ToolCall(ToolCallDelta {
                        choice: 0,
                        index: 0,
                        id: None,
                        name: None,
                        arguments: r.string()?,
                    }));
                }
                ("item", Kind::ItemAdded) => item = read_added_item(&mut r)?,
                ("response", Kind::Created | Kind::Completed | Kind::Incomplete | Kind::Failed) => {
                    summary = Some(read_response(&mut r, None)?);
                }
                ("error", Kind::Error) => {
                    if let Some(e) = read_error_object(&mut r)? {
                        err = e;
                    }
                }
                (k @ ("message" | "code" | "param"), Kind::Error) => {
                    error_member(&mut err, k, &mut r)?;
                }
                _ => r.skip_value()?,
            }
        }
        r.end()?;
        if let (Some(n), Some(after)) = (seq, self.resp.after)
            && n <= after
        {
            return Ok(());
        }
        if seq.is_some() {
            self.resp.last = seq;
        }
        if let Some(mut item) = item {
            if let StreamItem::ToolCall(t) = &mut item {
                t.index = index;
            }
            emit(item);
        }
        match (kind, summary) {
            (Kind::Error, _) => emit(StreamItem::Error(err)),
            (Kind::Created, Some(s)) => {
                if let Some(id) = s.id {
                    self.created(id, emit);
                }
            }
            (_, Some(mut s)) => {
                // The event's type says how the response ended.
                s.status = Some(JsonStr::plain(match kind {
                    Kind::Completed => "completed",
                    Kind::Incomplete => "incomplete",
                    _ => "failed",
                }));
                self.end_with(s, emit);
            }
            _ => {}
        }
        Ok(())
    }

    /// [`StreamDecoder::dropped`] for the Responses API.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub(crate) fn dropped_responses<'a>(
        &mut self,
        event_type: &str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> bool {
        let status = match event_type {
            "response.completed" => "completed",
            "response.incomplete" => "incomplete",
            "response.failed" => "failed",
            "response.created" | "response.queued" | "response.in_progress" => return true,
            t => return t.starts_with("response.") && t.ends_with(".done"),
        };
        let s = Summary {
            status: Some(JsonStr::plain(status)),
            ..Summary::default()
        };
        self.end_with(s, emit);
        true
    }

    /// Passes the id on, once per stream.
    fn created<'a>(&mut self, id: JsonStr<'a>, emit: &mut dyn FnMut(StreamItem<'a>)) {
        if !self.resp.created {
            self.resp.created = true;
            emit(StreamItem::Created { id });
        }
    }

    /// The end of a response (`response.completed`, `.incomplete`, `.failed`, or a whole
    /// response): its finish, usage, error and end marker, by its status.
    fn end_with<'a>(&mut self, s: Summary<'a>, emit: &mut dyn FnMut(StreamItem<'a>)) {
        let is = |t: &str| s.status.is_some_and(|st| st.eq_str(t));
        if let Some(id) = s.id {
            self.created(id, emit);
        }
        let end = if is("completed") {
            None
        } else if is("incomplete") {
            Some(StreamEnd::Incomplete)
        } else if is("failed") {
            Some(StreamEnd::Failed)
        } else {
            // Still running (a whole response fetched early): not an end.
            if let Some(u) = s.usage {
                emit(StreamItem::Usage(u));
            }
            return;
        };
        match end {
            Some(StreamEnd::Failed) => emit(StreamItem::Error(s.error.unwrap_or_default())),
            _ => {
                if let Some(reason) = s.reason.or(s.status) {
                    emit(StreamItem::Finish { choice: 0, reason });
                }
            }
        }
        if let Some(u) = s.usage {
            emit(StreamItem::Usage(u));
        }
        self.done = true;
        self.resp.end = end;
        if end.is_none() {
            emit(StreamItem::Done);
        }
    }
}

/// A non-empty text fragment as an item of choice 0.
fn text_item<'a>(
    text: JsonStr<'a>,
    item: fn(u32, JsonStr<'a>) -> StreamItem<'a>,
) -> Option<StreamItem<'a>> {
    (!text.is_empty()).then(|| item(0, text))
}

/// The `item` of `response.output_item.added`: a `function_call` (its `call_id`, name and
/// arguments so far) or a `message` (its role); others yield nothing.
fn read_added_item<'a>(r: &mut Reader<'a>) -> Result<Option<StreamItem<'a>>, DecodeError> {
    let kind = find_key_str(*r, "type")?;
    let is = |t: &str| kind.is_some_and(|k: JsonStr<'_>| k.eq_str(t));
    let mut call = ToolCallDelta {
        choice: 0,
        index: 0,
        id: None,
        name: None,
        arguments: JsonStr::default(),
    };
    let mut role = None;
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "call_id" => call.id = r.string_or_null()?,
            "name" => call.name = r.string_or_null()?,
            "arguments" => call.arguments = r.string_or_null()?.unwrap_or_default(),
            "role" => role = r.string_or_null()?,
            _ => r.skip_value()?,
        }
    }
    Ok(if is("function_call") {
        Some(StreamItem::ToolCall(call))
    } else if is("message") {
        role.map(|role| StreamItem::Role { choice: 0, role })
    } else {
        None
    })
}

/// Reads a response object. With `output`, its output items are passed on (a whole answer:
/// messages' text and refusals, reasoning summaries and text, function calls); without, they
/// are skipped (the events carried them).
fn read_response<'a>(
    r: &mut Reader<'a>,
    mut output: Option<&mut dyn FnMut(StreamItem<'a>)>,
) -> Result<Summary<'a>, DecodeError> {
    let mut s = Summary::default();
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "id" => s.id = r.string_or_null()?,
            "status" => s.status = r.string_or_null()?,
            "error" => s.error = read_error_object(r)?,
            "incomplete_details" => {
                if r.null()? {
                    continue;
                }
                let mut d = r.object()?;
                while let Some(k) = d.next_key(r)? {
                    match k.key(&mut [0; 32]) {
                        "reason" => s.reason = r.string_or_null()?,
                        _ => r.skip_value()?,
                    }
                }
            }
            "usage" => {
                if !r.null()? {
                    s.usage = Some(read_usage(r)?);
                }
            }
            "output" => match output.as_deref_mut() {
                Some(emit) if r.peek()? == b'[' => {
                    let mut arr = r.array()?;
                    let mut index = 0u32;
                    while arr.next(r)? {
                        read_output_item(r, index, emit)?;
                        index = index.saturating_add(1);
                    }
                }
                _ => r.skip_value()?,
            },
            _ => r.skip_value()?,
        }
    }
    Ok(s)
}

/// One item of a whole response's `output`.
fn read_output_item<'a>(
    r: &mut Reader<'a>,
    index: u32,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    let kind = find_key_str(*r, "type")?;
    let is = |t: &str| kind.is_some_and(|k: JsonStr<'_>| k.eq_str(t));
    let (message, reasoning, call) = (is("message"), is("reasoning"), is("function_call"));
    let mut tc = ToolCallDelta {
        choice: 0,
        index,
        id: None,
        name: None,
        arguments: JsonStr::default(),
    };
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "role" if message => {
                if let Some(role) = r.string_or_null()? {
                    emit(StreamItem::Role { choice: 0, role });
                }
            }
            "content" if message => read_parts(r, false, emit)?,
            "summary" | "content" if reasoning => read_parts(r, true, emit)?,
            "call_id" if call => tc.id = r.string_or_null()?,
            "name" if call => tc.name = r.string_or_null()?,
            "arguments" if call => tc.arguments = r.string_or_null()?.unwrap_or_default(),
            _ => r.skip_value()?,
        }
    }
    if call {
        emit(StreamItem::ToolCall(tc));
    }
    Ok(())
}

/// An array of content parts: each `text` as content (or reasoning), each `refusal` as a
/// refusal; empty texts yield nothing.
fn read_parts<'a>(
    r: &mut Reader<'a>,
    reasoning: bool,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    if r.null()? {
        return Ok(());
    }
    let mut arr = r.array()?;
    while arr.next(r)? {
        let mut o = r.object()?;
        while let Some(k) = o.next_key(r)? {
            let item = match k.key(&mut [0; 32]) {
                "text" if reasoning => text_item(r.string()?, |c, text| StreamItem::Reasoning {
                    choice: c,
                    text,
                }),
                "text" => text_item(r.string()?, |c, text| StreamItem::Content {
                    choice: c,
                    text,
                }),
                "refusal" => text_item(r.string()?, |c, text| StreamItem::Refusal {
                    choice: c,
                    text,
                }),
                _ => {
                    r.skip_value()?;
                    None
                }
            };
            if let Some(item) = item {
                emit(item);
            }
        }
    }
    Ok(())
}

/// Responses usage: `input_tokens`, `output_tokens`, `total_tokens` (their sum when missing).
fn read_usage(r: &mut Reader<'_>) -> Result<Usage, DecodeError> {
    let mut u = Usage::default();
    let mut total = None;
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "input_tokens" => u.prompt_tokens = r.u64_or_null()?.unwrap_or(0),
            "output_tokens" => u.completion_tokens = r.u64_or_null()?.unwrap_or(0),
            "total_tokens" => total = r.u64_or_null()?,
            _ => r.skip_value()?,
        }
    }
    u.total_tokens = total.unwrap_or(u.prompt_tokens.saturating_add(u.completion_tokens));
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{items_through, render};
    use crate::http::Endpoint;
    use crate::request::{Message, RawJson, ReasoningEffort, Tool, ToolCall};
    use crate::sse::{SseItem, SseParser};
    use serde_json::{Value, json};
    use std::prelude::rust_2024::*;
    use std::{format, vec};

    /// Decodes `events` (their `data`) with `dec`: the rendered items, and the sequence number
    /// after each event.
    fn run(dec: &mut StreamDecoder, events: &[&str]) -> (Vec<String>, Vec<Option<u64>>) {
        let mut out = Vec::new();
        let mut seqs = Vec::new();
        for e in events {
            dec.decode(e, |i| out.push(render(&i)))
                .unwrap_or_else(|err| std::panic!("{err}: {e}"));
            seqs.push(dec.sequence_number());
        }
        (out, seqs)
    }

    fn decode_all(events: &[&str]) -> (Vec<String>, StreamEnd) {
        let mut dec = StreamDecoder::new(Dialect::Responses);
        let (items, _) = run(&mut dec, events);
        (items, dec.finish())
    }

    const RESPONSE_QUEUED: &str = r#"{"id":"resp_68af","object":"response","created_at":1756315657,"status":"queued","background":true,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-5-mini-2025-08-07","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"low","summary":"auto"},"store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":null,"user":null,"metadata":{}}"#;

    /// A background stream as OpenAI sends it: reasoning summary, text with escapes, a function
    /// call, and the completed response with its whole output and usage.
    fn full_stream() -> Vec<String> {
        let completed = r#"{"id":"resp_68af","object":"response","created_at":1756315657,"status":"completed","background":true,"error":null,"incomplete_details":null,"output":[{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking."}]},{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi \"you\"\n\u00e9"}],"role":"assistant"},{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_9","name":"get_weather"}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123},"user":null,"metadata":{}}"#;
        vec![
            format!(r#"{{"type":"response.created","sequence_number":0,"response":{RESPONSE_QUEUED}}}"#),
            format!(r#"{{"type":"response.queued","sequence_number":1,"response":{RESPONSE_QUEUED}}}"#),
            format!(
                r#"{{"type":"response.in_progress","sequence_number":2,"response":{}}}"#,
                RESPONSE_QUEUED.replace("queued", "in_progress")
            ),
            r#"{"type":"response.output_item.added","sequence_number":3,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}"#.into(),
            r#"{"type":"response.reasoning_summary_part.added","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}"#.into(),
            r#"{"type":"response.reasoning_summary_text.delta","sequence_number":5,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking.","obfuscation":"x1"}"#.into(),
            r#"{"type":"response.reasoning_summary_text.done","sequence_number":6,"item_id":"rs_1","output_index":0,"summary_index":0,"text":"Thinking."}"#.into(),
            r#"{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking."}]}}"#.into(),
            r#"{"type":"response.output_item.added","sequence_number":8,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#.into(),
            r#"{"type":"response.content_part.added","sequence_number":9,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#.into(),
            r#"{"type":"response.output_text.delta","sequence_number":10,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi \"you\"","logprobs":[],"obfuscation":"dRtQ"}"#.into(),
            r#"{"type":"response.output_text.delta","sequence_number":11,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"\n\u00e9","logprobs":[],"obfuscation":"aB"}"#.into(),
            r#"{"type":"response.output_text.delta","sequence_number":12,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"","logprobs":[]}"#.into(),
            r#"{"type":"response.output_text.done","sequence_number":13,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hi \"you\"\n\u00e9","logprobs":[]}"#.into(),
            r#"{"type":"response.content_part.done","sequence_number":14,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi \"you\"\n\u00e9"}}"#.into(),
            r#"{"type":"response.output_item.done","sequence_number":15,"output_index":1,"item":{"id":"msg_1","type":"message","status":"completed","content":[],"role":"assistant"}}"#.into(),
            r#"{"type":"response.output_item.added","sequence_number":16,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_9","name":"get_weather"}}"#.into(),
            r#"{"type":"response.function_call_arguments.delta","sequence_number":17,"item_id":"fc_1","output_index":2,"delta":"{\"city\":","obfuscation":"q"}"#.into(),
            r#"{"type":"response.function_call_arguments.delta","sequence_number":18,"item_id":"fc_1","output_index":2,"delta":"\"Paris\"}"}"#.into(),
            r#"{"type":"response.function_call_arguments.done","sequence_number":19,"item_id":"fc_1","output_index":2,"arguments":"{\"city\":\"Paris\"}"}"#.into(),
            r#"{"type":"response.output_item.done","sequence_number":20,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_9","name":"get_weather"}}"#.into(),
            format!(r#"{{"type":"response.completed","sequence_number":21,"response":{completed}}}"#),
        ]
    }

    const FULL_ITEMS: [&str; 11] = [
        "created resp_68af",
        "reasoning 0 Thinking.",
        "role 0 assistant",
        "content 0 Hi \"you\"",
        "content 0 \né",
        "tool 0 2 call_9 get_weather ",
        "tool 0 2 - - {\"city\":",
        "tool 0 2 - - \"Paris\"}",
        "finish 0 completed",
        "usage 36 87 123",
        "done",
    ];

    #[test]
    fn a_full_stream_and_its_sequence_numbers() {
        let events = full_stream();
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let mut dec = StreamDecoder::new(Dialect::Responses);
        assert_eq!(dec.sequence_number(), None);
        let (items, seqs) = run(&mut dec, &events);
        assert_eq!(items, FULL_ITEMS);
        // Every event, skipped kinds too, advances the number.
        assert_eq!(seqs, (0..=21).map(Some).collect::<Vec<_>>());
        assert!(dec.is_done());
        // After the end, nothing more.
        let mut after = 0;
        dec.decode(events[10], |_| after += 1).expect("valid");
        assert_eq!(after, 0);
        assert_eq!(dec.finish(), StreamEnd::Complete);
        assert_eq!(dec.sequence_number(), None, "finish resets");
    }

    /// The stream as SSE text, with the `event:` lines OpenAI sends.
    fn sse_text(events: &[String]) -> String {
        let mut s = String::new();
        for e in events {
            let v: Value = serde_json::from_str(e).expect("json");
            s.push_str(&format!(
                "event: {}\ndata: {e}\n\n",
                v["type"].as_str().expect("type")
            ));
        }
        s
    }

    fn items_of_sse(pieces: &[&[u8]]) -> (Vec<String>, StreamEnd) {
        let mut parser = SseParser::<4096>::new();
        let mut dec = StreamDecoder::new(Dialect::Responses);
        let mut out = Vec::new();
        for piece in pieces {
            let mut rest = *piece;
            while let Some(item) = parser.feed(&mut rest).expect("fits") {
                if let SseItem::Event(ev) = item {
                    dec.decode(ev.data, |i| out.push(render(&i)))
                        .expect("valid");
                }
            }
        }
        (out, dec.finish())
    }

    /// The items and end of `text` through a parser of `N` bytes, dropping what the adapters
    /// drop ([`crate::decode::tests::items_through`]).
    fn items_of_small_sse<const N: usize>(text: &str) -> Option<(Vec<String>, StreamEnd)> {
        items_through::<N>(Dialect::Responses, text).map(|(items, end, _)| (items, end))
    }

    #[test]
    fn events_too_large_for_the_parser_are_dropped_when_they_only_repeat() {
        // At 560 bytes the response objects of `created`, `queued`, `in_progress` and
        // `completed` do not fit: the id and the usage are lost, everything else comes, and
        // the stream ends complete.
        let text = sse_text(&full_stream());
        let (items, end) = items_of_small_sse::<560>(&text).expect("goes on");
        let want: Vec<&str> = FULL_ITEMS
            .into_iter()
            .filter(|i| !i.starts_with("created") && !i.starts_with("usage"))
            .collect();
        assert_eq!(
            (items, end),
            (
                want.iter().map(|s| s.to_string()).collect(),
                StreamEnd::Complete
            )
        );
        // At 300 bytes the `.done` summaries go too; a delta that does not fit is lost content.
        let (items, _) = items_of_small_sse::<300>(&text).expect("goes on");
        assert!(items.contains(&"content 0 \né".to_string()), "{items:?}");
        let long = format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"{}\"}}\n\n",
            "x".repeat(400)
        );
        assert_eq!(items_of_small_sse::<300>(&long), None);
        // The ends, dropped, still end the stream as their type says.
        for (t, want, end) in [
            (
                "response.completed",
                "finish 0 completed",
                StreamEnd::Complete,
            ),
            (
                "response.incomplete",
                "finish 0 incomplete",
                StreamEnd::Incomplete,
            ),
            ("response.failed", "error", StreamEnd::Failed),
        ] {
            let mut dec = StreamDecoder::new(Dialect::Responses);
            let mut out = Vec::new();
            assert!(dec.dropped(Some(t), |i| out.push(render(&i))), "{t}");
            assert!(dec.is_done() && out[0].starts_with(want), "{t}: {out:?}");
            assert_eq!(dec.finish(), end, "{t}");
        }
        // Content, a tool call's start, an error, an unknown type or none: never.
        for t in [
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "error",
            "message",
        ] {
            let mut dec = StreamDecoder::new(Dialect::Responses);
            assert!(!dec.dropped(Some(t), |_| {}), "{t}");
        }
        let mut dec = StreamDecoder::new(Dialect::Responses);
        assert!(!dec.dropped(None, |_| {}), "no type");
        // Nor in another dialect.
        let mut dec = StreamDecoder::new(Dialect::OpenAi);
        assert!(!dec.dropped(Some("response.output_text.done"), |_| {}));
    }

    #[test]
    fn a_stream_split_at_every_byte_decodes_the_same() {
        let text = sse_text(&full_stream());
        let b = text.as_bytes();
        let whole = items_of_sse(&[b]);
        assert_eq!(
            whole,
            (FULL_ITEMS.map(String::from).to_vec(), StreamEnd::Complete)
        );
        for at in 0..=b.len() {
            let (x, y) = b.split_at(at);
            assert_eq!(items_of_sse(&[x, y]), whole, "split at {at}");
        }
    }

    #[test]
    fn events_at_or_below_the_resume_point_are_skipped() {
        let events = full_stream();
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        for n in 0..events.len() - 1 {
            // The first stream breaks after event n (before the last, the end).
            let mut dec = StreamDecoder::new(Dialect::Responses);
            let (mut got, seqs) = run(&mut dec, &events[..=n]);
            let last = seqs[n].expect("numbered");
            assert_eq!(last, n as u64);
            assert_eq!(dec.finish(), StreamEnd::Truncated, "broken after {n}");
            // A server that replays everything, and one that honours `starting_after`.
            for replay in [&events[..], &events[n + 1..]] {
                let mut d = dec.clone();
                d.resume_after(last);
                assert_eq!(d.sequence_number(), Some(last));
                let (rest, _) = run(&mut d, replay);
                let mut all = got.clone();
                all.extend(rest);
                assert_eq!(all, FULL_ITEMS, "resumed after {n}");
                assert_eq!(d.finish(), StreamEnd::Complete);
            }
            got.clear();
        }
    }

    #[test]
    fn incomplete_failed_and_error_events() {
        let (got, end) = decode_all(&[
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"m","output_index":0,"content_index":0,"delta":"Hel"}"#,
            r#"{"type":"response.incomplete","sequence_number":5,"response":{"id":"resp_2","object":"response","status":"incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"},"output":[],"usage":{"input_tokens":5,"output_tokens":16,"total_tokens":21}}}"#,
        ]);
        assert_eq!(
            got,
            [
                "content 0 Hel",
                "created resp_2",
                "finish 0 max_output_tokens",
                "usage 5 16 21"
            ]
        );
        assert_eq!(end, StreamEnd::Incomplete);
        assert!(!end.is_complete());

        let (got, end) = decode_all(&[
            r#"{"type":"response.failed","sequence_number":3,"response":{"id":"resp_3","object":"response","status":"failed","error":{"code":"server_error","message":"The model failed"},"incomplete_details":null,"output":[],"usage":null}}"#,
            // Nothing after the end.
            r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"late"}"#,
        ]);
        assert_eq!(
            got,
            ["created resp_3", "error The model failed - server_error -"]
        );
        assert_eq!(end, StreamEnd::Failed);

        let (got, end) = decode_all(&[
            r#"{"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,"sequence_number":1}"#,
            r#"{"type":"error","sequence_number":2,"error":{"type":"invalid_request_error","code":"bad","message":"Nested","param":"input"}}"#,
        ]);
        assert_eq!(
            got,
            [
                "error Something went wrong - ERR_SOMETHING -",
                "error Nested invalid_request_error bad input"
            ]
        );
        assert_eq!(end, StreamEnd::Truncated, "an error event is not an end");
    }

    #[test]
    fn refusals_reasoning_text_and_skipped_events() {
        let (got, end) = decode_all(&[
            r#"{"type":"response.reasoning_text.delta","sequence_number":1,"item_id":"rs","output_index":0,"content_index":0,"delta":"step \u0031"}"#,
            r#"{"type":"response.refusal.delta","sequence_number":2,"item_id":"m","output_index":1,"content_index":0,"delta":"I can't"}"#,
            r#"{"type":"response.refusal.done","sequence_number":3,"item_id":"m","output_index":1,"content_index":0,"refusal":"I can't"}"#,
            r#"{"type":"response.web_search_call.searching","sequence_number":4,"output_index":2,"item_id":"ws"}"#,
            r#"{"type":"response.output_item.added","sequence_number":5,"output_index":3,"item":{"type":"web_search_call","id":"ws","status":"in_progress"}}"#,
            r#"{"delta":"type second","type":"response.output_text.delta","sequence_number":6}"#,
            r#"{"sequence_number":7,"type":"response.output_text.delta","delta":"no index"}"#,
        ]);
        assert_eq!(
            got,
            [
                "reasoning 0 step 1",
                "refusal 0 I can't",
                "content 0 type second",
                "content 0 no index"
            ]
        );
        assert_eq!(end, StreamEnd::Truncated);
    }

    #[test]
    fn keys_and_types_with_escapes() {
        let (got, _) = decode_all(&[
            r#"{"\u0074ype":"response.output_text.\u0064elta","sequence_\u006eumber":9,"\u0064elta":"\ud83d\ude00 \\ \/"}"#,
        ]);
        assert_eq!(got, ["content 0 😀 \\ /"]);
    }

    #[test]
    fn malformed_events_yield_nothing_and_keep_the_number() {
        let mut dec = StreamDecoder::new(Dialect::Responses);
        run(
            &mut dec,
            &[r#"{"type":"response.output_text.delta","sequence_number":3,"delta":"a"}"#],
        );
        for bad in [
            r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"b""#,
            r#"{"type":"response.output_text.delta","sequence_number":4,"delta":7}"#,
            r#"{"type":"response.output_text.delta","delta":"b","sequence_number":-1}"#,
            "",
            "[DONE]",
            r#"{"type":"response.completed","sequence_number":5,"response":[]}"#,
        ] {
            let mut n = 0;
            assert!(dec.decode(bad, |_| n += 1).is_err(), "{bad}");
            assert_eq!(n, 0, "{bad}");
            assert_eq!(dec.sequence_number(), Some(3), "{bad}");
        }
        assert!(!dec.is_done());
    }

    #[test]
    fn whole_responses() {
        let (got, end) = decode_all(&[
            r#"{"id":"resp_w","object":"response","created_at":1,"status":"completed","error":null,"incomplete_details":null,"output":[{"id":"rs","type":"reasoning","summary":[{"type":"summary_text","text":"Plan"}],"content":[{"type":"reasoning_text","text":"raw"}]},{"id":"msg","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":"Hello"},{"type":"refusal","refusal":"no"}]},{"type":"function_call","id":"fc","call_id":"call_a","name":"f","arguments":"{}"},{"type":"function_call","id":"fc2","call_id":"call_b","name":"g","arguments":"{\"x\":1}"}],"usage":{"input_tokens":3,"output_tokens":4}}"#,
        ]);
        assert_eq!(
            got,
            [
                "reasoning 0 Plan",
                "reasoning 0 raw",
                "role 0 assistant",
                "content 0 Hello",
                "refusal 0 no",
                "tool 0 2 call_a f {}",
                "tool 0 3 call_b g {\"x\":1}",
                "created resp_w",
                "finish 0 completed",
                "usage 3 4 7",
                "done"
            ]
        );
        assert_eq!(end, StreamEnd::Complete);
        let (got, end) = decode_all(&[
            r#"{"id":"resp_i","object":"response","status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":null,"usage":null}"#,
        ]);
        assert_eq!(got, ["created resp_i", "finish 0 content_filter"]);
        assert_eq!(end, StreamEnd::Incomplete);
        // Fetched while still running: no end.
        let (got, end) =
            decode_all(&[r#"{"id":"resp_q","object":"response","status":"queued","output":[]}"#]);
        assert_eq!(got, ["created resp_q"]);
        assert_eq!(end, StreamEnd::Truncated);
    }

    // --- Request bodies ---------------------------------------------------------------------

    fn body(r: &ChatRequest<'_>) -> Value {
        let n = r.body_len(Dialect::Responses).expect("body");
        let mut buf = vec![0u8; n];
        assert_eq!(r.write_body(Dialect::Responses, &mut buf), Ok(n));
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn a_lone_user_text_is_a_string_input_in_background_mode() {
        let msgs = [Message::system("Be brief."), Message::user("Why?")];
        let mut r = ChatRequest::new("gpt-5-mini", &msgs);
        r.max_tokens = Some(300);
        r.reasoning_effort = Some(ReasoningEffort::Low);
        r.include_obfuscation = false;
        assert_eq!(
            body(&r),
            json!({"model":"gpt-5-mini","instructions":"Be brief.","input":"Why?",
                "max_output_tokens":300,"reasoning":{"effort":"low"},"stream":true,
                "stream_options":{"include_obfuscation":false},"background":true,"store":true})
        );
        r.background = false;
        r.stream = false;
        r.include_obfuscation = true;
        assert_eq!(
            body(&r),
            json!({"model":"gpt-5-mini","instructions":"Be brief.","input":"Why?",
                "max_output_tokens":300,"reasoning":{"effort":"low"},"stream":false})
        );
        // Not streamed: never background.
        r.background = true;
        assert_eq!(body(&r).get("background"), None);
    }

    #[test]
    fn conversations_become_input_items() {
        let calls = [ToolCall {
            id: "call_1",
            name: "get_weather",
            arguments: "{\"city\":\"Paris\"}",
        }];
        let parts = [
            Part::Text("What is this?"),
            Part::ImageUrl {
                url: "https://x/y.png",
                detail: None,
            },
        ];
        let msgs = [
            Message {
                role: Role::Developer,
                ..Message::system("Rules.")
            },
            Message::user_parts(&parts),
            Message::assistant_tool_calls(&calls),
            Message::tool("call_1", "18 °C"),
            Message::system("Late system text."),
            Message::assistant("It is 18 °C."),
        ];
        let schema = RawJson::new(r#"{"type":"object"}"#).expect("valid");
        let tools = [
            Tool {
                name: "get_weather",
                description: Some("Weather"),
                parameters: Some(schema),
                strict: true,
            },
            Tool::new("now"),
        ];
        let mut r = ChatRequest::new("m", &msgs);
        r.tools = &tools;
        r.tool_choice = Some(ToolChoice::Function("now"));
        r.parallel_tool_calls = Some(false);
        r.temperature = Some(0.5);
        r.user = Some("u1");
        r.seed = Some(7);
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "out",
            schema,
            strict: true,
        });
        assert_eq!(
            body(&r),
            json!({"model":"m","instructions":"Rules.","input":[
                {"role":"user","content":[{"type":"input_text","text":"What is this?"},
                    {"type":"input_image","image_url":"https://x/y.png","detail":"auto"}]},
                {"type":"function_call","call_id":"call_1","name":"get_weather",
                    "arguments":"{\"city\":\"Paris\"}"},
                {"type":"function_call_output","call_id":"call_1","output":"18 °C"},
                {"role":"system","content":"Late system text."},
                {"role":"assistant","content":"It is 18 °C."}],
                "temperature":0.5,"user":"u1",
                "tools":[{"type":"function","name":"get_weather","description":"Weather",
                    "parameters":{"type":"object"},"strict":true},
                    {"type":"function","name":"now","parameters":{"type":"object","properties":{}},
                    "strict":false}],
                "parallel_tool_calls":false,
                "tool_choice":{"type":"function","name":"now"},
                "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},
                    "strict":true}},
                "stream":true,"background":true,"store":true})
        );
    }

    #[test]
    fn request_errors() {
        let msgs = [
            Message::user("hi"),
            Message {
                tool_call_id: None,
                ..Message::tool("call_1", "out")
            },
        ];
        assert_eq!(
            ChatRequest::new("m", &msgs).body_len(Dialect::Responses),
            Err(RequestError::MissingToolCallId)
        );
        let msgs = [Message::user("hi")];
        let mut r = ChatRequest::new("m", &msgs);
        r.stop = &["END"];
        assert_eq!(
            r.body_len(Dialect::Responses),
            Err(RequestError::UnsupportedField)
        );
        r.stop = &[];
        for key in ["model", "input", "stream", "background", "store"] {
            let extra = [(key, RawJson::new("1").expect("valid"))];
            let mut q = r;
            q.extra_body = &extra;
            assert_eq!(
                q.body_len(Dialect::Responses),
                Err(RequestError::BodyMemberCollides),
                "{key}"
            );
        }
        // Without background mode `store` is the caller's.
        let extra = [("store", RawJson::new("false").expect("valid"))];
        r.background = false;
        r.extra_body = &extra;
        assert_eq!(body(&r)["store"], false);
    }

    #[test]
    fn paths_and_the_resume_head() {
        let key_headers = [("OpenAI-Project", "proj_1")];
        let query = [("api-version", "preview")];
        for (base, path) in [
            ("https://api.openai.com/v1", "/v1/responses"),
            ("http://127.0.0.1:8080", "/v1/responses"),
            ("http://h/openai/v1/", "/openai/v1/responses"),
        ] {
            let ep = Endpoint::new(base, Some("sk-secret"))
                .expect("ok")
                .with_dialect(Dialect::Responses);
            let mut buf = [0u8; 512];
            let n = RequestHead::new(&ep, 10, true)
                .write(&mut buf)
                .expect("head");
            let head = core::str::from_utf8(&buf[..n]).expect("utf8");
            assert!(
                head.starts_with(&format!("POST {path} HTTP/1.1\r\n")),
                "{head}"
            );
            assert!(
                head.contains("\r\nAuthorization: Bearer sk-secret\r\n"),
                "{head}"
            );
        }
        let ep = Endpoint::new("https://api.openai.com/v1", Some("sk-secret"))
            .expect("ok")
            .with_dialect(Dialect::Responses)
            .with_headers(&key_headers)
            .with_query(&query);
        let mut h = RequestHead::new(&ep, 10, true);
        h.retry_count = 2;
        h.close = true;
        let mut buf = [0u8; 512];
        let n = write_resume_head(&h, "resp_68af", 41, &mut buf).expect("head");
        let want = format!(
            "GET /v1/responses/resp_68af?stream=true&starting_after=41&api-version=preview HTTP/1.1\r\n\
             Host: api.openai.com\r\nAuthorization: Bearer sk-secret\r\n\
             Accept: text/event-stream\r\nAccept-Encoding: identity\r\n\
             User-Agent: steadyllm/{}\r\nx-steadyllm-retry-count: 2\r\n\
             OpenAI-Project: proj_1\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(core::str::from_utf8(&buf[..n]).expect("utf8"), want);
        // The id is percent-encoded; an empty one, a small buffer and a bad header are errors.
        let n = write_resume_head(&h, "a/b?c", 0, &mut buf).expect("head");
        assert!(buf[..n].starts_with(
            b"GET /v1/responses/a%2Fb%3Fc?stream=true&starting_after=0&api-version=preview "
        ));
        assert_eq!(
            write_resume_head(&h, "", 0, &mut buf),
            Err(HeadError::Header(HeaderError::InvalidValue))
        );
        let need = match write_resume_head(&h, "resp_68af", 41, &mut [0u8; 16]) {
            Err(HeadError::BufferTooSmall(e)) => e.required,
            other => std::panic!("{other:?}"),
        };
        assert_eq!(
            need,
            write_resume_head(&h, "resp_68af", 41, &mut buf).expect("head")
        );
        for bad in [
            [("Authorization", "x")],
            [("X-Ok", "a\r\nb")],
            [("Content-Length", "1")],
        ] {
            let mut q = h;
            q.extra_headers = &bad;
            assert!(
                write_resume_head(&q, "resp_1", 1, &mut buf).is_err(),
                "{bad:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_delta_round_trips(
            texts in proptest::collection::vec(
                proptest::string::string_regex("(\\PC|[\\x00-\\x1f\"\\\\\\n])*").expect("regex"), 1..5),
            start in 0u64..1_000_000,
        ) {
            let events: Vec<String> = texts.iter().enumerate().map(|(i, t)| {
                json!({"type":"response.output_text.delta","sequence_number":start + i as u64,
                    "item_id":"msg","output_index":0,"content_index":0,"delta":t,"logprobs":[]})
                    .to_string()
            }).collect();
            let mut dec = StreamDecoder::new(Dialect::Responses);
            let mut got = Vec::new();
            for (i, e) in events.iter().enumerate() {
                dec.decode(e, |item| if let StreamItem::Content { text, .. } = item {
                    got.push(text.to_string());
                }).expect("valid");
                proptest::prop_assert_eq!(dec.sequence_number(), Some(start + i as u64));
            }
            let want: Vec<&String> = texts.iter().filter(|t| !t.is_empty()).collect();
            proptest::prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
        }

        #[test]
        fn random_bytes_never_panic(s in "\\PC{0,120}") {
            let mut dec = StreamDecoder::new(Dialect::Responses);
            let _ = dec.decode(&s, |_| {});
            let _ = dec.finish();
        }
    }
}
