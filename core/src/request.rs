//! The chat request model and its JSON body.
//!
//! A [`ChatRequest`] borrows everything (messages, tools, strings) from the caller and is
//! `Copy`. [`ChatRequest::write_body`] serializes it into a caller buffer for either
//! [`Dialect`]; a buffer that is too small is a [`RequestError::BufferTooSmall`] saying how many
//! bytes are needed, and the buffer is left untouched (the size is measured first).
//!
//! ```
//! use steadyllm_core::decode::Dialect;
//! use steadyllm_core::request::{ChatRequest, Message};
//!
//! let messages = [Message::system("Be brief."), Message::user("Why is the sky blue?")];
//! let mut req = ChatRequest::new("gpt-4o-mini", &messages);
//! req.max_tokens = Some(200);
//! let mut buf = [0u8; 512];
//! let n = req.write_body(Dialect::OpenAi, &mut buf).unwrap();
//! assert!(core::str::from_utf8(&buf[..n]).unwrap().starts_with(r#"{"model":"gpt-4o-mini","messages":["#));
//! ```
//!
//! Structured outputs, reasoning and raw members ([`ResponseFormat`], [`ReasoningEffort`],
//! [`Thinking`], [`ChatRequest::extra_body`]); each dialect gets its own form of each field:
//!
//! ```
//! use steadyllm_core::decode::Dialect;
//! use steadyllm_core::request::{ChatRequest, Message, RawJson, ReasoningEffort, ResponseFormat, Thinking};
//!
//! let messages = [Message::user("Where is the Eiffel Tower?")];
//! let schema = RawJson::new(r#"{"type":"object","properties":{"city":{"type":"string"}},
//!     "required":["city"],"additionalProperties":false}"#).unwrap();
//! let extra = [("service_tier", RawJson::new(r#""flex""#).unwrap())];
//! let mut req = ChatRequest::new("gpt-5-mini", &messages);
//! req.response_format = Some(ResponseFormat::JsonSchema { name: "place", schema, strict: true });
//! req.reasoning_effort = Some(ReasoningEffort::Low); // OpenAI; not sent to Anthropic
//! req.thinking = Some(Thinking::Enabled { budget_tokens: 2048 }); // Anthropic; not sent to OpenAI
//! req.max_tokens = Some(4096); // Anthropic's budget must be below it
//! req.extra_body = &extra; // a member the request already has would be refused
//! assert!(req.is_reasoning());
//! let mut buf = [0u8; 1024];
//! let n = req.write_body(Dialect::OpenAi, &mut buf).unwrap();
//! let body = core::str::from_utf8(&buf[..n]).unwrap();
//! assert!(body.contains(r#""reasoning_effort":"low""#) && body.ends_with(r#","service_tier":"flex"}"#));
//! let n = req.write_body(Dialect::Anthropic, &mut buf).unwrap();
//! let body = core::str::from_utf8(&buf[..n]).unwrap();
//! assert!(body.contains(r#""thinking":{"type":"enabled","budget_tokens":2048}"#));
//! assert!(body.contains(r#""output_config":{"format":{"type":"json_schema","schema":"#));
//! ```

use core::fmt;

use crate::dialect::Dialect;
use crate::http::Endpoint;
use crate::json::{self, BufferTooSmall, Reader, Writer};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Instructions (Anthropic: the top-level `system`).
    System,
    /// Newer OpenAI models' name for system instructions (Anthropic: `system`).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result (needs `tool_call_id`).
    Tool,
}

impl Role {
    /// The role's name on the wire (OpenAI).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One piece of multi-part content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text.
    Text(&'a str),
    /// An image by URL (`https://…` or a `data:image/…;base64,…` URL).
    ImageUrl {
        /// The URL.
        url: &'a str,
        /// OpenAI `detail`: `low`, `high` or `auto`.
        detail: Option<&'a str>,
    },
}

/// A message's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content<'a> {
    /// Plain text.
    Text(&'a str),
    /// Text and images.
    Parts(&'a [Part<'a>]),
}

/// A tool call the assistant made earlier in the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolCall<'a> {
    /// The call id the tool result refers to.
    pub id: &'a str,
    /// Function name.
    pub name: &'a str,
    /// Arguments as JSON text (as the model produced it).
    pub arguments: &'a str,
}

/// One message of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Author.
    pub role: Role,
    /// Content (`None` for an assistant turn that only calls tools).
    pub content: Option<Content<'a>>,
    /// Optional participant name (OpenAI).
    pub name: Option<&'a str>,
    /// For [`Role::Tool`]: the call this result answers.
    pub tool_call_id: Option<&'a str>,
    /// For [`Role::Assistant`]: calls it made.
    pub tool_calls: &'a [ToolCall<'a>],
}

impl<'a> Message<'a> {
    /// A message with text content.
    pub const fn text(role: Role, text: &'a str) -> Self {
        Message {
            role,
            content: Some(Content::Text(text)),
            name: None,
            tool_call_id: None,
            tool_calls: &[],
        }
    }

    /// A system message.
    pub const fn system(text: &'a str) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message.
    pub const fn user(text: &'a str) -> Self {
        Self::text(Role::User, text)
    }

    /// A user message with text and images.
    pub const fn user_parts(parts: &'a [Part<'a>]) -> Self {
        Message {
            role: Role::User,
            content: Some(Content::Parts(parts)),
            name: None,
            tool_call_id: None,
            tool_calls: &[],
        }
    }

    /// An assistant message.
    pub const fn assistant(text: &'a str) -> Self {
        Self::text(Role::Assistant, text)
    }

    /// An assistant turn that called tools.
    pub const fn assistant_tool_calls(calls: &'a [ToolCall<'a>]) -> Self {
        Message {
            role: Role::Assistant,
            content: None,
            name: None,
            tool_call_id: None,
            tool_calls: calls,
        }
    }

    /// A tool result.
    pub const fn tool(tool_call_id: &'a str, text: &'a str) -> Self {
        Message {
            role: Role::Tool,
            content: Some(Content::Text(text)),
            name: None,
            tool_call_id: Some(tool_call_id),
            tool_calls: &[],
        }
    }
}

/// JSON text passed through verbatim (a tool's JSON-schema `parameters`), checked to be one
/// valid JSON value when constructed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// Validates `text` as one JSON value.
    pub fn new(text: &'a str) -> Result<Self, json::Error> {
        let mut r = Reader::new(text);
        r.skip_value()?;
        r.end()?;
        Ok(RawJson(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A function the model may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool<'a> {
    /// Function name.
    pub name: &'a str,
    /// What it does.
    pub description: Option<&'a str>,
    /// JSON schema of its arguments.
    pub parameters: Option<RawJson<'a>>,
    /// Strict schema adherence: the arguments always follow `parameters` (OpenAI
    /// `function.strict`, Anthropic `strict`; the schema must then meet the provider's rules
    /// for strict schemas, e.g. `additionalProperties: false`).
    pub strict: bool,
}

impl<'a> Tool<'a> {
    /// A function with a name and nothing else (no description, no schema, not strict).
    pub const fn new(name: &'a str) -> Self {
        Tool {
            name,
            description: None,
            parameters: None,
            strict: false,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This function.
    Function(&'a str),
}

/// The shape of the answer (`response_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat<'a> {
    /// Plain text (OpenAI `{"type":"text"}`; nothing is sent to Anthropic).
    Text,
    /// Any JSON object (OpenAI's JSON mode, `{"type":"json_object"}`). Anthropic has no such
    /// mode: that dialect refuses it with [`RequestError::UnsupportedField`] (use a schema).
    JsonObject,
    /// Structured outputs: the answer is JSON that follows `schema`. OpenAI:
    /// `{"type":"json_schema","json_schema":{"name","schema","strict"}}`; Anthropic:
    /// `output_config.format` `{"type":"json_schema","schema"}` (always strict; `name` and
    /// `strict` are not sent).
    JsonSchema {
        /// The schema's name: 1 to 64 of `a-z A-Z 0-9 _ -` (checked:
        /// [`RequestError::InvalidSchemaName`]).
        name: &'a str,
        /// The JSON schema, validated as one JSON value by [`RawJson::new`].
        schema: RawJson<'a>,
        /// OpenAI `strict: true`: the answer always follows the schema (which must then meet
        /// OpenAI's rules for strict schemas).
        strict: bool,
    },
}

/// How hard a reasoning model thinks before it answers (OpenAI `reasoning_effort`).
///
/// OpenAI dialect only: Anthropic's equivalent is [`ChatRequest::thinking`], and the Anthropic
/// dialect sends nothing for this field (the same request can fail over between dialects).
/// Values beyond these (a provider's `"none"` or `"xhigh"`) can be sent as an
/// [`ChatRequest::extra_body`] member while this field is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReasoningEffort {
    /// `"minimal"`.
    Minimal,
    /// `"low"`.
    Low,
    /// `"medium"`.
    Medium,
    /// `"high"`.
    High,
}

impl ReasoningEffort {
    /// The value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// Anthropic extended thinking (`thinking`).
///
/// Anthropic dialect only: the OpenAI dialect sends nothing for it and does not check it (its
/// equivalent is [`ChatRequest::reasoning_effort`]; the same request can fail over between
/// dialects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Thinking {
    /// `{"type":"enabled","budget_tokens":N}`: think for up to `budget_tokens` tokens, at
    /// least [`MIN_THINKING_BUDGET`] and fewer than the request's `max_tokens` (which then
    /// must be set above it: the default of [`DEFAULT_ANTHROPIC_MAX_TOKENS`] leaves no room).
    /// Otherwise [`RequestError::InvalidThinkingBudget`].
    Enabled {
        /// Tokens the model may spend thinking.
        budget_tokens: u32,
    },
}

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// A chat-completion request. Every field borrows from the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChatRequest<'a> {
    /// Model name (an [`crate::http::Endpoint`] may override it).
    pub model: &'a str,
    /// The conversation.
    pub messages: &'a [Message<'a>],
    /// `max_tokens` (Anthropic requires one; [`DEFAULT_ANTHROPIC_MAX_TOKENS`] is used when
    /// neither limit is set).
    pub max_tokens: Option<u32>,
    /// `max_completion_tokens` (newer OpenAI models).
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Stop sequences.
    pub stop: &'a [&'a str],
    /// Sampling seed (OpenAI).
    pub seed: Option<i64>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<&'a str>,
    /// Functions the model may call.
    pub tools: &'a [Tool<'a>],
    /// Tool choice.
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// Ask for a usage chunk at the end of the stream (`stream_options.include_usage`).
    pub include_usage: bool,
    /// OpenAI's stream obfuscation (default `true`: nothing is sent and OpenAI keeps it on).
    /// `false` sends `stream_options.include_obfuscation: false`, and OpenAI then leaves out
    /// the `obfuscation` member — 1 to 16 random characters in every chunk, some 10 % of a
    /// chunk's bytes — which saves bandwidth on a slow link.
    ///
    /// The trade-off: the padding is there so that someone who sees the encrypted traffic
    /// (a shared Wi-Fi, an ISP, a proxy) cannot tell the length of each streamed token from
    /// the size of the TLS records, a side channel from which the text of an answer can be
    /// partly reconstructed. Turn it off only where that observer is not a concern (a trusted
    /// network, or a device whose answers are not sensitive). OpenAI dialect only; servers
    /// that do not know the option usually ignore it.
    pub include_obfuscation: bool,
    /// The shape of the answer: JSON mode or a JSON schema (structured outputs).
    pub response_format: Option<ResponseFormat<'a>>,
    /// How hard a reasoning model thinks (OpenAI dialect; see [`ReasoningEffort`]).
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Whether the model may call several tools in one turn. Sent only with `tools` (OpenAI
    /// refuses it without them): OpenAI `parallel_tool_calls`; Anthropic sends `false` as
    /// `tool_choice.disable_parallel_tool_use: true` (on `auto` when no tool choice is set)
    /// and nothing for `true`, its default.
    pub parallel_tool_calls: Option<bool>,
    /// Anthropic extended thinking (Anthropic dialect; see [`Thinking`]).
    pub thinking: Option<Thinking>,
    /// More top-level members of the body, written last as `"key":value`: the key is escaped
    /// as a JSON string, the value is sent as given (a [`RawJson`] is one valid JSON value).
    /// For what the builder has no field for (`top_k`, `service_tier`, a gateway's options).
    /// A key the builder itself writes for this request (`model`, `stream`, or a field that is
    /// set) is refused with [`RequestError::BodyMemberCollides`]: set the field instead.
    pub extra_body: &'a [(&'a str, RawJson<'a>)],
    /// Responses dialect (feature `responses`): a streamed request creates the response in
    /// background mode (`"background":true,"store":true`), the form whose broken stream can be
    /// resumed (see [`crate::dialect::responses`]). Default `true`; `false` sends neither member (then
    /// `store` may be an [`ChatRequest::extra_body`] member). Not sent without `stream`.
    #[cfg(feature = "responses")]
    pub background: bool,
}

/// `max_tokens` sent to Anthropic when the request sets no limit.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 1024;

/// Why a body could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError {
    /// The buffer is too small (it was left untouched).
    BufferTooSmall(BufferTooSmall),
    /// `temperature` or `top_p` is NaN, infinite, or 10¹² or more in magnitude.
    NonFiniteNumber,
    /// A tool call's `arguments` is not valid JSON, or (Anthropic, whose `tool_use` input is
    /// an object) not a JSON object.
    InvalidToolArguments,
    /// A tool message without `tool_call_id`.
    MissingToolCallId,
    /// A dialect whose cargo feature (`anthropic`, `responses`) is off in this build.
    UnsupportedDialect,
    /// A [`ResponseFormat::JsonSchema`] name that is empty, longer than 64 bytes or holds
    /// characters other than `a-z A-Z 0-9 _ -`.
    InvalidSchemaName,
    /// An Anthropic thinking budget below [`MIN_THINKING_BUDGET`] or not below `max_tokens`.
    InvalidThinkingBudget,
    /// A field the dialect cannot express (Anthropic: [`ResponseFormat::JsonObject`];
    /// Responses: [`ChatRequest::stop`]).
    UnsupportedField,
    /// An [`ChatRequest::extra_body`] member repeats a key the builder writes.
    BodyMemberCollides,
    /// `max_tokens` or `max_completion_tokens` is 0 (providers refuse it: at least 1).
    InvalidMaxTokens,
    /// No messages (Anthropic: none but system and developer messages); providers refuse it.
    NoMessages,
    /// A [`Tool`] name that is empty, longer than 64 bytes or holds characters other than
    /// `a-z A-Z 0-9 _ -` (OpenAI's and Anthropic's rule).
    InvalidToolName,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BufferTooSmall(e) => write!(f, "request body: {e}"),
            RequestError::NonFiniteNumber => {
                f.write_str("temperature/top_p must be finite and below 1e12")
            }
            RequestError::InvalidToolArguments => {
                f.write_str("tool call arguments are not valid JSON")
            }
            RequestError::MissingToolCallId => f.write_str("tool message without tool_call_id"),
            RequestError::UnsupportedDialect => f.write_str("the dialect's feature is off"),
            RequestError::InvalidSchemaName => {
                f.write_str("JSON schema name must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
            }
            RequestError::InvalidThinkingBudget => {
                f.write_str("thinking budget must be at least 1024 tokens and below max_tokens")
            }
            RequestError::UnsupportedField => f.write_str(
                "no such field in the dialect (Anthropic: json_object, Responses: stop)",
            ),
            RequestError::BodyMemberCollides => {
                f.write_str("an extra body member repeats a key the request already writes")
            }
            RequestError::InvalidMaxTokens => f.write_str("max_tokens must be at least 1"),
            RequestError::NoMessages => f.write_str("a request needs a message"),
            RequestError::InvalidToolName => {
                f.write_str("tool name must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
            }
        }
    }
}

impl core::error::Error for RequestError {}

impl<'a> ChatRequest<'a> {
    /// A streaming request with usage reporting and no other options.
    pub const fn new(model: &'a str, messages: &'a [Message<'a>]) -> Self {
        ChatRequest {
            model,
            messages,
            max_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            stop: &[],
            seed: None,
            user: None,
            tools: &[],
            tool_choice: None,
            stream: true,
            include_usage: true,
            include_obfuscation: true,
            response_format: None,
            reasoning_effort: None,
            parallel_tool_calls: None,
            thinking: None,
            extra_body: &[],
            #[cfg(feature = "responses")]
            background: true,
        }
    }

    /// `true` for a request that asks a model to reason first: a reasoning effort, or
    /// Anthropic thinking. Such answers can take minutes before their first token.
    pub fn is_reasoning(&self) -> bool {
        self.reasoning_effort.is_some() || self.thinking.is_some()
    }

    /// The same, or the request's model (or an endpoint's model that replaces it) starts with
    /// one of `reasoning_models`: a configuration's list of models that think before they
    /// answer (`["o1", "o3", "o4", "gpt-5", "deepseek-reasoner"]`), so that their requests get
    /// minutes before the first token without naming an effort.
    pub fn is_reasoning_with(&self, reasoning_models: &[&str], endpoints: &[Endpoint<'_>]) -> bool {
        let marked = |m: &str| reasoning_models.iter().any(|p| m.starts_with(p));
        self.is_reasoning()
            || marked(self.model)
            || endpoints.iter().any(|e| e.model.is_some_and(marked))
    }

    /// What the resilience engine needs to pick timeouts: prompt size, answer limit, images,
    /// whether it reasons first ([`ChatRequest::is_reasoning`]), whether it streams.
    pub fn profile(&self) -> crate::call::RequestProfile {
        let mut bytes: usize = 0;
        let mut images = false;
        for m in self.messages {
            match m.content {
                Some(Content::Text(t)) => bytes = bytes.saturating_add(t.len()),
                Some(Content::Parts(parts)) => {
                    for p in parts {
                        match p {
                            Part::Text(t) => bytes = bytes.saturating_add(t.len()),
                            Part::ImageUrl { .. } => images = true,
                        }
                    }
                }
                None => {}
            }
            for c in m.tool_calls {
                bytes = bytes.saturating_add(c.arguments.len());
            }
        }
        crate::call::RequestProfile {
            prompt_bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            max_tokens: self.max_tokens.or(self.max_completion_tokens),
            has_images: images,
            reasoning: self.is_reasoning(),
            non_streamed: !self.stream,
        }
    }

    /// Bytes [`ChatRequest::write_body`] needs.
    pub fn body_len(&self, dialect: Dialect) -> Result<usize, RequestError> {
        let mut w = Writer::new(&mut []);
        self.emit(dialect, &mut w)?;
        Ok(w.len())
    }

    /// Writes the JSON body into `out` and returns its length. The size is measured first,
    /// so on `BufferTooSmall` the buffer is untouched.
    pub fn write_body(&self, dialect: Dialect, out: &mut [u8]) -> Result<usize, RequestError> {
        let need = self.body_len(dialect)?;
        if need > out.len() {
            return Err(RequestError::BufferTooSmall(BufferTooSmall {
                required: need,
            }));
        }
        let mut w = Writer::new(out);
        self.emit(dialect, &mut w)?;
        w.finish().map_err(RequestError::BufferTooSmall)
    }

    fn emit(&self, dialect: Dialect, w: &mut Writer<'_>) -> Result<(), RequestError> {
        for v in [self.temperature, self.top_p].into_iter().flatten() {
            if !json::f32_writable(v) {
                return Err(RequestError::NonFiniteNumber);
            }
        }
        if self.max_tokens == Some(0) || self.max_completion_tokens == Some(0) {
            return Err(RequestError::InvalidMaxTokens);
        }
        if self.messages.is_empty() {
            return Err(RequestError::NoMessages);
        }
        if let Some(ResponseFormat::JsonSchema { name, .. }) = self.response_format
            && !valid_name(name)
        {
            return Err(RequestError::InvalidSchemaName);
        }
        if !self.tools.iter().all(|t| valid_name(t.name)) {
            return Err(RequestError::InvalidToolName);
        }
        let mut m = Members {
            extra: self.extra_body,
            clash: false,
        };
        match dialect {
            Dialect::OpenAi => self.emit_openai(&mut m, w)?,
            #[cfg(feature = "anthropic")]
            Dialect::Anthropic => self.emit_anthropic(&mut m, w)?,
            #[cfg(not(feature = "anthropic"))]
            Dialect::Anthropic => return Err(RequestError::UnsupportedDialect),
            #[cfg(feature = "responses")]
            Dialect::Responses => self.emit_responses(&mut m, w)?,
            #[cfg(not(feature = "responses"))]
            Dialect::Responses => return Err(RequestError::UnsupportedDialect),
        }
        for (k, v) in self.extra_body {
            w.byte(b',');
            w.string(k);
            w.byte(b':');
            w.raw(v.as_str().as_bytes());
        }
        w.byte(b'}');
        if m.clash {
            return Err(RequestError::BodyMemberCollides);
        }
        Ok(())
    }

    pub(crate) fn emit_sampling(&self, m: &mut Members<'_>, w: &mut Writer<'_>) {
        if let Some(t) = self.temperature {
            m.put(w, b",\"temperature\":");
            w.f32(t);
        }
        if let Some(p) = self.top_p {
            m.put(w, b",\"top_p\":");
            w.f32(p);
        }
    }
}

/// A schema's or a tool's name as providers take it: 1 to 64 of `a-z A-Z 0-9 _ -`.
fn valid_name(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    !name.is_empty() && name.len() <= 64 && name.bytes().all(ok)
}

/// Writes the builder's top-level members and notes one whose key an extra member repeats
/// (the keys actually written, so an extra member may carry what an unset field would).
pub(crate) struct Members<'x> {
    extra: &'x [(&'x str, RawJson<'x>)],
    clash: bool,
}

impl Members<'_> {
    /// Writes `lit`, the start of a top-level member (`,"key":…`, or `{"key":…` for the
    /// first), and compares its key with the extra members'.
    #[inline(never)]
    pub(crate) fn put(&mut self, w: &mut Writer<'_>, lit: &[u8]) {
        w.raw(lit);
        let key = lit.get(2..).unwrap_or_default();
        let end = key.iter().position(|&b| b == b'"').unwrap_or(0);
        let key = key.get(..end).unwrap_or_default();
        for (k, _) in self.extra {
            if k.as_bytes() == key {
                self.clash = true;
            }
        }
    }
}

pub(crate) fn string_array(w: &mut Writer<'_>, items: &[&str]) {
    w.byte(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            w.byte(b',');
        }
        w.string(s);
    }
    w.byte(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::prelude::rust_2024::*;

    fn body(req: &ChatRequest<'_>, d: Dialect) -> Value {
        let n = req.body_len(d).expect("valid");
        let mut buf = vec![0u8; n];
        assert_eq!(req.write_body(d, &mut buf), Ok(n));
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    const CALLS: [ToolCall<'static>; 1] = [ToolCall {
        id: "call_1",
        name: "get_weather",
        arguments: "{\"city\":\"Paris\"}",
    }];

    fn conversation() -> [Message<'static>; 5] {
        [
            Message::system("You are terse."),
            Message::user("Weather in \"Paris\"?\n"),
            Message::assistant_tool_calls(&CALLS),
            Message::tool("call_1", "12°C"),
            Message::assistant("It is 12°C."),
        ]
    }

    #[test]
    fn a_configured_model_makes_a_reasoning_request() {
        let messages = [Message::user("hi")];
        let mut req = ChatRequest::new("o3-mini", &messages);
        let marks: &[&str] = &["o3", "deepseek-reasoner"];
        assert!(!req.is_reasoning());
        assert!(req.is_reasoning_with(marks, &[]));
        assert!(!req.is_reasoning_with(&[], &[]));
        req.model = "gpt-4o";
        assert!(!req.is_reasoning_with(marks, &[]));
        // An endpoint that asks for a marked model makes the call a reasoning one.
        let ep = Endpoint::new("http://127.0.0.1/v1", None)
            .expect("endpoint")
            .with_model("deepseek-reasoner");
        assert!(req.is_reasoning_with(marks, &[ep]));
        req.reasoning_effort = Some(ReasoningEffort::Low);
        assert!(req.is_reasoning_with(&[], &[]));
    }

    #[test]
    fn openai_body_has_every_field() {
        let msgs = conversation();
        let params = RawJson::new(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#)
            .expect("valid");
        let tools = [Tool {
            name: "get_weather",
            description: Some("Weather"),
            parameters: Some(params),
            strict: false,
        }];
        let mut r = ChatRequest::new("gpt-4o", &msgs);
        r.max_tokens = Some(100);
        r.max_completion_tokens = Some(200);
        r.temperature = Some(0.7);
        r.top_p = Some(0.9);
        r.stop = &["\n\n", "END"];
        r.seed = Some(-5);
        r.user = Some("u-1");
        r.tools = &tools;
        r.tool_choice = Some(ToolChoice::Function("get_weather"));
        let v = body(&r, Dialect::OpenAi);
        assert_eq!(
            v,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Weather in \"Paris\"?\n"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    {"role": "tool", "content": "12°C", "tool_call_id": "call_1"},
                    {"role": "assistant", "content": "It is 12°C."}
                ],
                "max_tokens": 100, "max_completion_tokens": 200,
                "temperature": 0.7, "top_p": 0.9, "stop": ["\n\n", "END"], "seed": -5, "user": "u-1",
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type":"object","properties":{"city":{"type":"string"}}}}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
        r.include_obfuscation = false;
        assert_eq!(
            body(&r, Dialect::OpenAi)["stream_options"],
            json!({"include_usage": true, "include_obfuscation": false})
        );
        r.include_usage = false;
        assert_eq!(
            body(&r, Dialect::OpenAi)["stream_options"],
            json!({"include_obfuscation": false})
        );
        r.include_obfuscation = true;
        assert_eq!(body(&r, Dialect::OpenAi).get("stream_options"), None);
        r.include_usage = true;
        r.stream = false;
        r.tool_choice = Some(ToolChoice::Required);
        let v = body(&r, Dialect::OpenAi);
        assert_eq!(
            (
                v["stream"].clone(),
                v.get("stream_options"),
                v["tool_choice"].clone()
            ),
            (json!(false), None, json!("required"))
        );
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_body() {
        let msgs = conversation();
        let parts = [
            Part::Text("What is this?"),
            Part::ImageUrl {
                url: "data:image/png;base64,iVBOR",
                detail: None,
            },
        ];
        let mut all = msgs.to_vec();
        all.push(Message::user_parts(&parts));
        let tools = [Tool::new("get_weather")];
        let mut r = ChatRequest::new("claude-sonnet-4", &all);
        r.tools = &tools;
        r.tool_choice = Some(ToolChoice::Required);
        r.stop = &["END"];
        let v = body(&r, Dialect::Anthropic);
        assert_eq!(
            v,
            json!({
                "model": "claude-sonnet-4",
                "max_tokens": 1024,
                "system": [{"type": "text", "text": "You are terse."}],
                "messages": [
                    {"role": "user", "content": "Weather in \"Paris\"?\n"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "12°C"}]},
                    {"role": "assistant", "content": "It is 12°C."},
                    {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]}
                ],
                "stop_sequences": ["END"],
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "stream": true
            })
        );
        // OpenAI's stream options mean nothing to Anthropic.
        r.include_obfuscation = false;
        assert_eq!(body(&r, Dialect::Anthropic), v);
    }

    /// The tool and schema of the request-field tests.
    fn weather_tool(strict: bool) -> Tool<'static> {
        Tool {
            name: "get_weather",
            description: None,
            parameters: Some(RawJson::new(r#"{"type":"object"}"#).expect("valid")),
            strict,
        }
    }

    fn schema_format(name: &str, strict: bool) -> ResponseFormat<'_> {
        ResponseFormat::JsonSchema {
            name,
            schema: RawJson::new(r#"{"type":"object","properties":{"a":{"type":"number"}}}"#)
                .expect("valid"),
            strict,
        }
    }

    #[test]
    fn openai_request_fields() {
        let msgs = [Message::user("hi")];
        let tools = [weather_tool(true)];
        let mut r = ChatRequest::new("gpt-5", &msgs);
        assert!(!r.is_reasoning());
        let v = body(&r, Dialect::OpenAi);
        for k in [
            "response_format",
            "reasoning_effort",
            "parallel_tool_calls",
            "thinking",
        ] {
            assert_eq!(v.get(k), None, "{k} is off by default");
        }
        r.response_format = Some(schema_format("answer", true));
        r.reasoning_effort = Some(ReasoningEffort::Minimal);
        r.tools = &tools;
        r.parallel_tool_calls = Some(false);
        // Anthropic's: neither sent nor checked here.
        r.thinking = Some(Thinking::Enabled { budget_tokens: 1 });
        let v = body(&r, Dialect::OpenAi);
        assert_eq!(
            v["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer",
                "schema": {"type": "object", "properties": {"a": {"type": "number"}}}, "strict": true}})
        );
        assert_eq!(v["reasoning_effort"], "minimal");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tools"],
            json!([{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object"}, "strict": true}}])
        );
        assert_eq!(v.get("thinking"), None);
        assert!(r.is_reasoning());

        r.response_format = Some(schema_format("answer", false));
        assert_eq!(
            body(&r, Dialect::OpenAi)["response_format"]["json_schema"].get("strict"),
            None
        );
        r.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(
            body(&r, Dialect::OpenAi)["response_format"],
            json!({"type": "json_object"})
        );
        r.response_format = Some(ResponseFormat::Text);
        assert_eq!(
            body(&r, Dialect::OpenAi)["response_format"],
            json!({"type": "text"})
        );
        for (e, want) in [
            (ReasoningEffort::Minimal, "minimal"),
            (ReasoningEffort::Low, "low"),
            (ReasoningEffort::Medium, "medium"),
            (ReasoningEffort::High, "high"),
        ] {
            r.reasoning_effort = Some(e);
            assert_eq!(e.as_str(), want);
            assert_eq!(body(&r, Dialect::OpenAi)["reasoning_effort"], want);
        }
        r.parallel_tool_calls = Some(true);
        assert_eq!(body(&r, Dialect::OpenAi)["parallel_tool_calls"], true);
        // Without tools OpenAI refuses the member: it is not sent.
        r.tools = &[];
        assert_eq!(body(&r, Dialect::OpenAi).get("parallel_tool_calls"), None);
        let plain = [weather_tool(false)];
        r.tools = &plain;
        assert_eq!(
            body(&r, Dialect::OpenAi)["tools"][0]["function"].get("strict"),
            None
        );
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_request_fields() {
        let msgs = [Message::user("hi")];
        let tools = [weather_tool(true)];
        let mut r = ChatRequest::new("claude-sonnet-4", &msgs);
        r.max_tokens = Some(8192);
        r.thinking = Some(Thinking::Enabled {
            budget_tokens: 4096,
        });
        r.response_format = Some(schema_format("answer", false));
        // OpenAI's: not sent to Anthropic.
        r.reasoning_effort = Some(ReasoningEffort::High);
        r.tools = &tools;
        r.parallel_tool_calls = Some(false);
        let v = body(&r, Dialect::Anthropic);
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 4096})
        );
        assert_eq!(
            v["output_config"],
            json!({"format": {"type": "json_schema",
                "schema": {"type": "object", "properties": {"a": {"type": "number"}}}}})
        );
        assert_eq!(
            v["tools"],
            json!([{"name": "get_weather", "input_schema": {"type": "object"}, "strict": true}])
        );
        assert_eq!(
            v["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        for k in ["reasoning_effort", "response_format", "parallel_tool_calls"] {
            assert_eq!(v.get(k), None, "{k}");
        }
        // The flag joins whichever choice is set (`none` takes no flag).
        for (choice, want) in [
            (
                ToolChoice::Required,
                json!({"type": "any", "disable_parallel_tool_use": true}),
            ),
            (
                ToolChoice::Function("get_weather"),
                json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
            ),
            (ToolChoice::None, json!({"type": "none"})),
        ] {
            r.tool_choice = Some(choice);
            assert_eq!(body(&r, Dialect::Anthropic)["tool_choice"], want);
        }
        // `true` is Anthropic's default: nothing is sent; without tools neither.
        r.tool_choice = None;
        r.parallel_tool_calls = Some(true);
        assert_eq!(body(&r, Dialect::Anthropic).get("tool_choice"), None);
        r.parallel_tool_calls = Some(false);
        r.tools = &[];
        assert_eq!(body(&r, Dialect::Anthropic).get("tool_choice"), None);
        // Plain text is Anthropic's only kind of answer without a schema: nothing is sent.
        r.response_format = Some(ResponseFormat::Text);
        r.thinking = Some(Thinking::Enabled {
            budget_tokens: MIN_THINKING_BUDGET,
        });
        let v = body(&r, Dialect::Anthropic);
        assert_eq!(v.get("output_config"), None);
        assert_eq!(v["thinking"]["budget_tokens"], MIN_THINKING_BUDGET);
    }

    #[test]
    fn extra_body_members_are_appended_escaped() {
        let msgs = [Message::user("hi")];
        let extra = [
            ("top_k", RawJson::new("40").expect("valid")),
            (
                "we\"ird\nkey",
                RawJson::new(r#" {"a": [1, null]} "#).expect("valid"),
            ),
            // The field is unset, so the member may carry a value it has no variant for.
            (
                "reasoning_effort",
                RawJson::new(r#""xhigh""#).expect("valid"),
            ),
        ];
        let mut r = ChatRequest::new("m", &msgs);
        r.extra_body = &extra;
        #[cfg(feature = "anthropic")]
        let dialects = [Dialect::OpenAi, Dialect::Anthropic];
        #[cfg(not(feature = "anthropic"))]
        let dialects = [Dialect::OpenAi];
        for d in dialects {
            let v = body(&r, d);
            assert_eq!(v["top_k"], 40);
            assert_eq!(v["we\"ird\nkey"], json!({"a": [1, null]}));
            assert_eq!(v["reasoning_effort"], "xhigh");
            assert_eq!(v["model"], "m");
        }
    }

    #[test]
    fn request_field_errors() {
        let msgs = [Message::system("s"), Message::user("hi")];
        #[cfg(feature = "anthropic")]
        let dialects = [Dialect::OpenAi, Dialect::Anthropic];
        #[cfg(not(feature = "anthropic"))]
        let dialects = [Dialect::OpenAi];
        let long = "n".repeat(65);
        let max = "n".repeat(64);
        for d in dialects {
            let mut r = ChatRequest::new("m", &msgs);
            r.max_tokens = Some(4096);
            for bad in ["", long.as_str(), "has space", "dot.ted", "ünï"] {
                r.response_format = Some(schema_format(bad, true));
                assert_eq!(
                    r.body_len(d),
                    Err(RequestError::InvalidSchemaName),
                    "{d:?} {bad:?}"
                );
            }
            for good in ["a", "A-z_09", max.as_str()] {
                r.response_format = Some(schema_format(good, true));
                assert!(r.body_len(d).is_ok(), "{d:?} {good:?}");
            }
            r.response_format = None;
            // Keys the builder writes for this request, whichever fields are set.
            let always: &[&str] = match d {
                Dialect::OpenAi => &["model", "messages", "stream", "stream_options"],
                Dialect::Anthropic => &["model", "messages", "stream", "max_tokens", "system"],
                Dialect::Responses => &["model", "input", "instructions", "stream", "background"],
            };
            for key in always {
                let extra = [(*key, RawJson::new("1").expect("valid"))];
                let mut q = r;
                q.extra_body = &extra;
                let mut buf = [7u8; 1024];
                assert_eq!(
                    q.write_body(d, &mut buf),
                    Err(RequestError::BodyMemberCollides),
                    "{d:?} {key}"
                );
                assert!(buf.iter().all(|&b| b == 7), "buffer untouched");
            }
            // A key of a field collides once the field is set.
            let extra = [("temperature", RawJson::new("1").expect("valid"))];
            r.extra_body = &extra;
            assert!(r.body_len(d).is_ok());
            r.temperature = Some(0.5);
            assert_eq!(r.body_len(d), Err(RequestError::BodyMemberCollides));
        }
    }

    #[test]
    #[cfg(feature = "anthropic")]
    fn anthropic_limits() {
        let msgs = [Message::user("hi")];
        let mut r = ChatRequest::new("claude", &msgs);
        // No max_tokens: 1024 is sent, which leaves no room for a budget of at least 1024.
        r.thinking = Some(Thinking::Enabled {
            budget_tokens: 1024,
        });
        assert!(r.is_reasoning());
        assert_eq!(
            r.body_len(Dialect::Anthropic),
            Err(RequestError::InvalidThinkingBudget)
        );
        r.max_completion_tokens = Some(2000);
        for (budget, ok) in [
            (1023, false),
            (1024, true),
            (1999, true),
            (2000, false),
            (u32::MAX, false),
        ] {
            r.thinking = Some(Thinking::Enabled {
                budget_tokens: budget,
            });
            assert_eq!(
                r.body_len(Dialect::Anthropic).is_ok(),
                ok,
                "budget {budget}"
            );
            if !ok {
                assert_eq!(
                    r.body_len(Dialect::Anthropic),
                    Err(RequestError::InvalidThinkingBudget)
                );
            }
            // The OpenAI dialect neither sends nor checks it.
            assert!(r.body_len(Dialect::OpenAi).is_ok());
        }
        r.thinking = None;
        r.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(
            r.body_len(Dialect::Anthropic),
            Err(RequestError::UnsupportedField)
        );
        assert!(r.body_len(Dialect::OpenAi).is_ok());
    }

    #[test]
    fn errors_say_what_to_fix() {
        for (e, want) in [
            (RequestError::InvalidSchemaName, "schema name"),
            (RequestError::InvalidThinkingBudget, "thinking budget"),
            (RequestError::UnsupportedField, "json_object"),
            (RequestError::BodyMemberCollides, "extra body member"),
            (RequestError::InvalidMaxTokens, "at least 1"),
            (RequestError::NoMessages, "needs a message"),
            (RequestError::InvalidToolName, "tool name"),
        ] {
            assert!(std::format!("{e}").contains(want), "{e}");
        }
    }

    #[test]
    fn profile_sums_prompt_and_sees_images() {
        let parts = [
            Part::Text("abc"),
            Part::ImageUrl {
                url: "https://x/y.png",
                detail: None,
            },
        ];
        let msgs = [Message::system("12345"), Message::user_parts(&parts)];
        let mut r = ChatRequest::new("m", &msgs);
        r.max_completion_tokens = Some(99);
        let p = r.profile();
        assert_eq!(
            (p.prompt_bytes, p.max_tokens, p.has_images),
            (8, Some(99), true)
        );
        // A reasoning effort or thinking makes it a reasoning request (minutes to the first
        // token), whichever dialect it goes to.
        assert!(!p.reasoning);
        r.reasoning_effort = Some(ReasoningEffort::Medium);
        assert!(r.profile().reasoning);
        r.reasoning_effort = None;
        r.thinking = Some(Thinking::Enabled {
            budget_tokens: 2048,
        });
        assert!(r.profile().reasoning);
    }

    #[test]
    fn errors() {
        let msgs = [Message::user("hi")];
        let mut r = ChatRequest::new("m", &msgs);
        let need = r.body_len(Dialect::OpenAi).expect("ok");
        let mut small = vec![7u8; need - 1];
        assert_eq!(
            r.write_body(Dialect::OpenAi, &mut small),
            Err(RequestError::BufferTooSmall(BufferTooSmall {
                required: need
            }))
        );
        assert!(small.iter().all(|&b| b == 7), "buffer untouched");
        r.temperature = Some(f32::NAN);
        assert_eq!(
            r.body_len(Dialect::OpenAi),
            Err(RequestError::NonFiniteNumber)
        );
        let bad_calls = [ToolCall {
            id: "c",
            name: "f",
            arguments: "{oops",
        }];
        let msgs = [Message::assistant_tool_calls(&bad_calls)];
        #[cfg(feature = "anthropic")]
        assert_eq!(
            ChatRequest::new("m", &msgs).body_len(Dialect::Anthropic),
            Err(RequestError::InvalidToolArguments)
        );
        #[cfg(not(feature = "anthropic"))]
        assert_eq!(
            ChatRequest::new("m", &msgs).write_body(Dialect::Anthropic, &mut [0; 256]),
            Err(RequestError::UnsupportedDialect)
        );
        // Anthropic's tool_use input is an object: valid JSON of another kind is refused too.
        #[cfg(feature = "anthropic")]
        for args in ["[1]", "\"x\"", "42", "null", " [] "] {
            let calls = [ToolCall {
                id: "c",
                name: "f",
                arguments: args,
            }];
            let msgs = [Message::assistant_tool_calls(&calls)];
            let r = ChatRequest::new("m", &msgs);
            assert_eq!(
                r.body_len(Dialect::Anthropic),
                Err(RequestError::InvalidToolArguments),
                "{args}"
            );
            // OpenAI carries arguments as text, as the model wrote them.
            assert!(r.body_len(Dialect::OpenAi).is_ok());
        }
        // A limit of 0 tokens: providers want at least 1.
        let plain = [Message::user("hi")];
        let mut r = ChatRequest::new("m", &plain);
        for (max, max_completion) in [(Some(0), None), (None, Some(0)), (Some(5), Some(0))] {
            r.max_tokens = max;
            r.max_completion_tokens = max_completion;
            assert_eq!(
                r.body_len(Dialect::OpenAi),
                Err(RequestError::InvalidMaxTokens)
            );
        }
        r.max_tokens = Some(1);
        r.max_completion_tokens = Some(u32::MAX);
        assert!(r.body_len(Dialect::OpenAi).is_ok());
        // Tool names as providers take them: 1 to 64 of a-z A-Z 0-9 _ -.
        let long = "n".repeat(65);
        for (name, ok) in [
            ("", false),
            ("get_weather-2", true),
            (&long[..64], true),
            (long.as_str(), false),
            ("dot.ted", false),
            ("ünï", false),
        ] {
            let tools = [Tool::new(name)];
            let mut q = r;
            q.tools = &tools;
            let want = if ok {
                Ok(())
            } else {
                Err(RequestError::InvalidToolName)
            };
            assert_eq!(q.body_len(Dialect::OpenAi).map(|_| ()), want, "{name:?}");
        }
        // No messages; for Anthropic, none besides system and developer messages.
        assert_eq!(
            ChatRequest::new("m", &[]).body_len(Dialect::OpenAi),
            Err(RequestError::NoMessages)
        );
        #[cfg(feature = "anthropic")]
        {
            let only_system = [Message::system("s"), Message::text(Role::Developer, "d")];
            let r = ChatRequest::new("m", &only_system);
            assert_eq!(
                r.body_len(Dialect::Anthropic),
                Err(RequestError::NoMessages)
            );
            assert!(r.body_len(Dialect::OpenAi).is_ok());
        }
        let mut t = Message::tool("x", "y");
        t.tool_call_id = None;
        let msgs = [t];
        assert_eq!(
            ChatRequest::new("m", &msgs).body_len(Dialect::OpenAi),
            Err(RequestError::MissingToolCallId)
        );
        assert!(RawJson::new("{\"a\":").is_err());
        assert!(RawJson::new("{} {}").is_err());
    }

    /// Every key the builder could write, for the property test below.
    const BUILDER_KEYS: [&str; 23] = [
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "stream",
        "stream_options",
        "system",
        "stop_sequences",
        "metadata",
        "output_config",
        "thinking",
        "top_k",
        "",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// An extra member is refused exactly when the body without it has its key, and is
        /// otherwise in the body as given, whichever fields are set.
        #[test]
        fn extra_members_collide_exactly_with_written_keys(
            pick in 0usize..23, other in "\\PC{0,12}", use_other: bool, value in 0u32..1000,
            set in proptest::collection::vec(proptest::prelude::any::<bool>(), 9),
            d in 0usize..2,
        ) {
            let d = if d == 0 { Dialect::OpenAi } else { Dialect::Anthropic };
            #[cfg(not(feature = "anthropic"))]
            let d = { let _ = d; Dialect::OpenAi };
            let msgs = [Message::system("s"), Message::user("hi")];
            let tools = [weather_tool(false)];
            let mut r = ChatRequest::new("m", &msgs);
            r.max_tokens = set[0].then_some(4096);
            r.temperature = set[1].then_some(0.5);
            r.seed = set[2].then_some(1);
            r.tools = if set[3] { &tools } else { &[] };
            r.parallel_tool_calls = set[4].then_some(false);
            r.response_format = set[5].then(|| schema_format("s", true));
            r.reasoning_effort = set[6].then_some(ReasoningEffort::Low);
            // (a budget needs a max_tokens above it)
            r.thinking = (set[7] && set[0]).then_some(Thinking::Enabled { budget_tokens: 2048 });
            r.stream = set[8];
            let key = if use_other { other.as_str() } else { BUILDER_KEYS[pick] };
            let without = body(&r, d);
            let text = std::format!("{value}");
            let extra = [(key, RawJson::new(&text).expect("a number"))];
            r.extra_body = &extra;
            if without.get(key).is_some() {
                proptest::prop_assert_eq!(r.body_len(d), Err(RequestError::BodyMemberCollides));
            } else {
                let with = body(&r, d);
                proptest::prop_assert_eq!(&with[key], &json!(value));
                let mut rest = with.clone();
                rest.as_object_mut().expect("an object").remove(key);
                proptest::prop_assert_eq!(rest, without);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn strings_round_trip_through_serde_json(
            model in "\\PC*", text in ".*|[\\x00-\\x1f\"\\\\\u{80}-\u{10ffff}]*", user in "\\PC*",
        ) {
            let msgs = [Message::user(&text), Message::assistant(&text)];
            let mut r = ChatRequest::new(&model, &msgs);
            r.user = Some(&user);
            let stop = [text.as_str()];
            r.stop = &stop;
            #[cfg(feature = "anthropic")]
            let dialects = [Dialect::OpenAi, Dialect::Anthropic];
            #[cfg(not(feature = "anthropic"))]
            let dialects = [Dialect::OpenAi];
            for d in dialects {
                let v = body(&r, d);
                proptest::prop_assert_eq!(v["model"].as_str(), Some(model.as_str()));
                proptest::prop_assert_eq!(v["messages"][0]["content"].as_str(), Some(text.as_str()));
                proptest::prop_assert_eq!(v["messages"][1]["content"].as_str(), Some(text.as_str()));
            }
            let v = body(&r, Dialect::OpenAi);
            proptest::prop_assert_eq!(v["user"].as_str(), Some(user.as_str()));
            proptest::prop_assert_eq!(v["stop"][0].as_str(), Some(text.as_str()));
        }

        #[test]
        fn floats_are_written_to_six_decimals(t in -1e11f32..1e11f32) {
            let msgs = [Message::user("x")];
            let mut r = ChatRequest::new("m", &msgs);
            r.temperature = Some(t);
            let v = body(&r, Dialect::OpenAi);
            let got = v["temperature"].as_f64().expect("a JSON number");
            // within half a millionth, plus the f64 rounding of the scaled value
            let tol = 5e-7 + f64::from(t).abs() * 1e-15;
            proptest::prop_assert!((got - f64::from(t)).abs() <= tol, "{} -> {}", t, got);
        }

        #[test]
        fn common_sampling_values_print_as_written(tenths in 0u32..=20) {
            let msgs = [Message::user("x")];
            let mut r = ChatRequest::new("m", &msgs);
            let t = tenths as f32 / 10.0;
            r.temperature = Some(t);
            let mut buf = [0u8; 256];
            let n = r.write_body(Dialect::OpenAi, &mut buf).expect("fits");
            let text = core::str::from_utf8(&buf[..n]).expect("utf8");
            let want = if tenths % 10 == 0 { std::format!("{}", tenths / 10) } else { std::format!("{}.{}", tenths / 10, tenths % 10) };
            let expected = std::format!("\"temperature\":{want},");
            proptest::prop_assert!(text.contains(&expected), "{}", text);
        }
    }
}
