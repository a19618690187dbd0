//! The `conformance` contract: the core's SSE parser and stream decoder behind a stable
//! stdin/stdout interface of JSON lines, so any outside test suite can drive them.
//!
//! Modes (see the `conformance` binary):
//! - `sse`: `{"type":T,"data":D,"id":LAST_EVENT_ID}` per event, `{"retry":N}` per valid retry
//!   line;
//! - `decode`: one line per [`StreamItem`] (`role`, `content`, `reasoning`, `refusal`,
//!   `tool_call`, `finish`, `usage`, `error`, `done`; Responses: `{"kind":"created","id":ID}`)
//!   and `{"kind":"truncated"}` when the input ends without the end marker (Responses:
//!   `{"kind":"failed"}` or `{"kind":"incomplete"}` when `response.failed` or
//!   `response.incomplete` ended it);
//! - `error`: one `error` line for a non-2xx response body;
//! - `request` (one case per input line): a request described in the browser wrapper's shapes
//!   in, what the core sends out (see [`run_request`]);
//! - `error-object` (one case per input line): an error body as a JSON string in, the error
//!   object [`ApiError::parse`] reads out (see [`run_error_object`]).
//!
//! The last two are the core's side of the browser wrapper's parity tests
//! (`wasm-target/js/test/parity.test.mjs`).
//!
//! Keys are printed in the documented order. Problems that are not part of the stream's
//! content (an event larger than the parser, a malformed event) go to stderr, and the run ends
//! with a non-zero status.

use std::fmt::Write as _;

use steadyllm_core::decode::{ApiError, Dialect, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::dialect::responses::write_resume_head;
use steadyllm_core::http::{Endpoint, EndpointError, HeadError, RequestHead};
use steadyllm_core::json::JsonStr;
use steadyllm_core::request::{
    ChatRequest, Content, Message, Part, RawJson, ReasoningEffort, RequestError, ResponseFormat,
    Role, Thinking, Tool, ToolCall, ToolChoice,
};
use steadyllm_core::sse::{SseItem, SseParser};

/// Capacity of the conformance parser: events and lines up to 256 KiB.
pub const SSE_CAPACITY: usize = 256 * 1024;

/// The output lines of one run and the problems reported on the side.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// JSON lines for stdout.
    pub lines: Vec<String>,
    /// Messages for stderr; non-empty means the exit status is 1.
    pub problems: Vec<String>,
}

fn json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn json_str(out: &mut String, s: &JsonStr<'_>) {
    json_string(out, &s.to_string());
}

fn opt_str(out: &mut String, s: &Option<JsonStr<'_>>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

fn pieces(input: &[u8], chunk: Option<usize>) -> Vec<&[u8]> {
    match chunk {
        Some(n) if n > 0 => input.chunks(n).collect(),
        _ => vec![input],
    }
}

/// Runs the `sse` mode over `input`, fed in pieces of `chunk` bytes (whole when `None`).
pub fn run_sse(input: &[u8], chunk: Option<usize>) -> Output {
    let mut parser: Box<SseParser<SSE_CAPACITY>> = Box::new(SseParser::new());
    let mut out = Output::default();
    for piece in pieces(input, chunk) {
        let mut rest = piece;
        loop {
            match parser.feed(&mut rest) {
                Ok(Some(SseItem::Event(ev))) => {
                    let mut l = String::from("{\"type\":");
                    json_string(&mut l, ev.event_type());
                    l.push_str(",\"data\":");
                    json_string(&mut l, ev.data);
                    l.push_str(",\"id\":");
                    json_string(&mut l, ev.last_event_id);
                    l.push('}');
                    out.lines.push(l);
                }
                Ok(Some(SseItem::Retry(ms))) => out.lines.push(format!("{{\"retry\":{ms}}}")),
                Ok(None) => break,
                Err(e) => out.problems.push(e.to_string()),
            }
        }
    }
    parser.finish();
    out
}

/// Formats one decoded item as its contract line.
pub fn item_line(item: &StreamItem<'_>) -> String {
    let mut l = String::new();
    let text = |l: &mut String, kind: &str, choice: u32, field: &str, t: &JsonStr<'_>| {
        let _ = write!(l, "{{\"kind\":\"{kind}\",\"choice\":{choice},\"{field}\":");
        json_str(l, t);
        l.push('}');
    };
    match item {
        StreamItem::Role { choice, role } => text(&mut l, "role", *choice, "role", role),
        StreamItem::Content { choice, text: t } => text(&mut l, "content", *choice, "text", t),
        StreamItem::Reasoning { choice, text: t } => text(&mut l, "reasoning", *choice, "text", t),
        StreamItem::Refusal { choice, text: t } => text(&mut l, "refusal", *choice, "text", t),
        StreamItem::ToolCall(tc) => {
            let _ = write!(
                l,
                "{{\"kind\":\"tool_call\",\"choice\":{},\"index\":{},\"id\":",
                tc.choice, tc.index
            );
            opt_str(&mut l, &tc.id);
            l.push_str(",\"name\":");
            opt_str(&mut l, &tc.name);
            l.push_str(",\"arguments\":");
            json_str(&mut l, &tc.arguments);
            l.push('}');
        }
        StreamItem::Finish { choice, reason } => text(&mut l, "finish", *choice, "reason", reason),
        StreamItem::Usage(u) => {
            let _ = write!(
                l,
                "{{\"kind\":\"usage\",\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}",
                u.prompt_tokens, u.completion_tokens, u.total_tokens
            );
        }
        StreamItem::Error(e) => l = error_line(e),
        StreamItem::Done => l.push_str("{\"kind\":\"done\"}"),
        StreamItem::Created { id } => {
            l.push_str("{\"kind\":\"created\",\"id\":");
            json_str(&mut l, id);
            l.push('}');
        }
    }
    l
}

/// Formats a whole tool call ([`steadyllm_core::tools`]) as a line of `chat --json`:
/// `{"kind":"tool_call_done","choice","index","id","name","arguments"}`.
pub fn tool_call_done_line(call: &steadyllm_core::tools::AssembledCall<'_>) -> String {
    let mut l = format!(
        "{{\"kind\":\"tool_call_done\",\"choice\":{},\"index\":{},\"id\":",
        call.choice, call.index
    );
    json_string(&mut l, call.id);
    l.push_str(",\"name\":");
    json_string(&mut l, call.name);
    l.push_str(",\"arguments\":");
    json_string(&mut l, call.arguments);
    l.push('}');
    l
}

/// Formats an error object as its contract line (`code` always a string).
pub fn error_line(e: &ApiError<'_>) -> String {
    let mut l = String::from("{\"kind\":\"error\",\"message\":");
    json_str(&mut l, &e.message);
    l.push_str(",\"type\":");
    opt_str(&mut l, &e.kind);
    l.push_str(",\"code\":");
    opt_str(&mut l, &e.code);
    l.push('}');
    l
}

/// Runs the `decode` mode.
pub fn run_decode(input: &[u8], chunk: Option<usize>, dialect: Dialect) -> Output {
    let mut parser: Box<SseParser<SSE_CAPACITY>> = Box::new(SseParser::new());
    let mut decoder = StreamDecoder::new(dialect);
    let mut out = Output::default();
    for piece in pieces(input, chunk) {
        let mut rest = piece;
        loop {
            match parser.feed(&mut rest) {
                Ok(Some(SseItem::Event(ev))) => {
                    let lines = &mut out.lines;
                    if let Err(e) = decoder.decode(ev.data, |item| lines.push(item_line(&item))) {
                        out.problems.push(e.to_string());
                    }
                }
                Ok(Some(SseItem::Retry(_))) => {}
                Ok(None) => break,
                Err(e) => out.problems.push(e.to_string()),
            }
        }
    }
    parser.finish();
    match decoder.finish() {
        StreamEnd::Complete => {}
        StreamEnd::Truncated => out.lines.push("{\"kind\":\"truncated\"}".into()),
        StreamEnd::Failed => out.lines.push("{\"kind\":\"failed\"}".into()),
        StreamEnd::Incomplete => out.lines.push("{\"kind\":\"incomplete\"}".into()),
    }
    out
}

/// Runs the `error` mode: one line for a non-2xx body. A body that holds no error object
/// (HTML from a proxy, plain text) is reported with its text as the message.
pub fn run_error(input: &[u8]) -> Output {
    let text = String::from_utf8_lossy(input);
    let mut out = Output::default();
    match ApiError::parse(&text) {
        Ok(e) => out.lines.push(error_line(&e)),
        Err(_) => {
            let mut l = String::from("{\"kind\":\"error\",\"message\":");
            json_string(&mut l, text.trim());
            l.push_str(",\"type\":null,\"code\":null}");
            out.lines.push(l);
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// `request` and `error-object`: the parity contract with the browser wrapper
// ------------------------------------------------------------------------------------------

/// The key that stands for the endpoint's API key in `request` output: the key itself is never
/// printed, only where it went.
pub const KEY_PLACEHOLDER: &str = "<api-key>";

/// Why a `request` description was not turned into a request: a stable class, the same names
/// the browser wrapper's parity test gives its errors.
fn request_error_class(e: &RequestError) -> &'static str {
    match e {
        RequestError::BufferTooSmall(_) => "buffer",
        RequestError::NonFiniteNumber => "sampling",
        RequestError::InvalidToolArguments => "tool_arguments",
        RequestError::MissingToolCallId => "tool_call_id",
        RequestError::UnsupportedDialect => "dialect",
        RequestError::InvalidSchemaName => "schema_name",
        RequestError::InvalidThinkingBudget => "thinking",
        RequestError::UnsupportedField => "json_object",
        RequestError::BodyMemberCollides => "extra_body",
        RequestError::InvalidMaxTokens => "max_tokens",
        RequestError::NoMessages => "no_messages",
        RequestError::InvalidToolName => "tool_name",
    }
}

/// A description that cannot be put into the core's types (a wrong JSON type, a role or
/// choice the core has no variant for, a number out of its field's range): the class names
/// the field.
struct Unrepresentable(&'static str);

type Desc<T> = Result<T, Unrepresentable>;

fn obj<'v>(
    v: Option<&'v serde_json::Value>,
    class: &'static str,
) -> Desc<Option<&'v serde_json::Map<String, serde_json::Value>>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Unrepresentable(class)),
    }
}

fn opt_string(v: Option<&serde_json::Value>, class: &'static str) -> Desc<Option<String>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Unrepresentable(class)),
    }
}

fn opt_u32(v: Option<&serde_json::Value>, class: &'static str) -> Desc<Option<u32>> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(Unrepresentable(class)),
    }
}

fn opt_f32(v: Option<&serde_json::Value>, class: &'static str) -> Desc<Option<f32>> {
    match v {
        None => Ok(None),
        // The core's sampling fields are f32: the value is rounded as a Rust caller's would be.
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as f32))
            .ok_or(Unrepresentable(class)),
    }
}

fn opt_bool(v: Option<&serde_json::Value>, class: &'static str) -> Desc<Option<bool>> {
    match v {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or(Unrepresentable(class)),
    }
}

fn string_map(v: Option<&serde_json::Value>, class: &'static str) -> Desc<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in obj(v, class)?.into_iter().flatten() {
        out.push((
            k.clone(),
            opt_string(Some(v), class)?.ok_or(Unrepresentable(class))?,
        ));
    }
    Ok(out)
}

/// Owned parts of one message, borrowed into a [`Message`] later.
struct OwnedMessage {
    role: Role,
    text: Option<String>,
    parts: Option<Vec<(bool, String, Option<String>)>>,
    name: Option<String>,
    tool_call_id: Option<String>,
    calls: Vec<(String, String, String)>,
}

fn owned_message(v: &serde_json::Value) -> Desc<OwnedMessage> {
    let m = obj(Some(v), "type")?.ok_or(Unrepresentable("type"))?;
    let role = match m.get("role").and_then(|r| r.as_str()) {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        _ => return Err(Unrepresentable("type")),
    };
    let (mut text, mut parts) = (None, None);
    match m.get("content") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) => text = Some(s.clone()),
        Some(serde_json::Value::Array(a)) => {
            let mut ps = Vec::new();
            for p in a {
                let p = obj(Some(p), "type")?.ok_or(Unrepresentable("type"))?;
                match p.get("type").and_then(|t| t.as_str()) {
                    Some("text") => ps.push((
                        true,
                        opt_string(p.get("text"), "type")?.ok_or(Unrepresentable("type"))?,
                        None,
                    )),
                    Some("image_url") => ps.push((
                        false,
                        opt_string(p.get("imageUrl"), "type")?.ok_or(Unrepresentable("type"))?,
                        opt_string(p.get("detail"), "type")?,
                    )),
                    _ => return Err(Unrepresentable("type")),
                }
            }
            parts = Some(ps);
        }
        Some(_) => return Err(Unrepresentable("type")),
    }
    let mut calls = Vec::new();
    if let Some(a) = m.get("toolCalls") {
        for c in a.as_array().ok_or(Unrepresentable("type"))? {
            let c = obj(Some(c), "type")?.ok_or(Unrepresentable("type"))?;
            let s = |k: &str| opt_string(c.get(k), "type")?.ok_or(Unrepresentable("type"));
            calls.push((s("id")?, s("name")?, s("arguments")?));
        }
    }
    Ok(OwnedMessage {
        role,
        text,
        parts,
        name: opt_string(m.get("name"), "type")?,
        tool_call_id: opt_string(m.get("toolCallId"), "type")?,
        calls,
    })
}

/// The names of `options.endpoints[0].query` in the order written.
#[derive(serde::Deserialize)]
struct QueryOrder {
    options: QueryOptions,
}

#[derive(serde::Deserialize)]
struct QueryOptions {
    endpoints: Vec<QueryEndpoint>,
}

#[derive(serde::Deserialize)]
struct QueryEndpoint {
    #[serde(default)]
    query: Names,
}

/// An object's member names, in order.
#[derive(Default)]
struct Names(Vec<String>);

impl<'de> serde::Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Names, A::Error> {
                let mut names = Vec::new();
                while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                    names.push(k);
                }
                Ok(Names(names))
            }
        }
        d.deserialize_map(V)
    }
}

/// One `request` description, parsed; see [`run_request`].
fn request_line(
    line: &str,
    desc: &serde_json::Value,
) -> Desc<Result<serde_json::Value, &'static str>> {
    let o = obj(desc.get("options"), "type")?.ok_or(Unrepresentable("type"))?;
    let r = obj(desc.get("request"), "type")?.ok_or(Unrepresentable("type"))?;
    let e = match o
        .get("endpoints")
        .and_then(|e| e.as_array())
        .map(Vec::as_slice)
    {
        Some([e]) => obj(Some(e), "type")?.ok_or(Unrepresentable("type"))?,
        _ => return Err(Unrepresentable("type")),
    };
    let base_url = opt_string(e.get("baseUrl"), "type")?.ok_or(Unrepresentable("type"))?;
    let api_key = opt_string(e.get("apiKey"), "type")?;
    let ep_model = opt_string(e.get("model"), "type")?;
    let dialect = match e.get("dialect").and_then(|d| d.as_str()) {
        None => Dialect::OpenAi,
        Some("openai") => Dialect::OpenAi,
        Some("anthropic") => Dialect::Anthropic,
        Some(_) => return Err(Unrepresentable("type")),
    };
    // `api` (the endpoint's, else the client's): `"responses"` is OpenAI's Responses API.
    let dialect = match e.get("api").or_else(|| o.get("api")).map(|a| a.as_str()) {
        None | Some(Some("chat")) => dialect,
        Some(Some("responses")) if dialect == Dialect::OpenAi => Dialect::Responses,
        Some(_) => return Err(Unrepresentable("type")),
    };
    let headers = string_map(e.get("headers"), "header")?;
    let mut query = string_map(e.get("query"), "type")?;
    // serde_json's map sorts its keys: the parameters go in the order written.
    if let Ok(q) = serde_json::from_str::<QueryOrder>(line) {
        let rank = |k: &String| {
            q.options
                .endpoints
                .first()
                .and_then(|e| e.query.0.iter().position(|n| n == k))
        };
        query.sort_by_key(|(k, _)| rank(k));
    }
    // The request's model, else the client's; an endpoint's model replaces both.
    let model = match opt_string(r.get("model"), "type")? {
        Some(m) if !m.is_empty() => m,
        _ => opt_string(o.get("model"), "type")?.unwrap_or_default(),
    };

    let messages: Vec<OwnedMessage> = r
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or(Unrepresentable("type"))?
        .iter()
        .map(owned_message)
        .collect::<Desc<_>>()?;
    let stop: Vec<String> = match r.get("stop") {
        None => Vec::new(),
        Some(s) => s
            .as_array()
            .ok_or(Unrepresentable("type"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or(Unrepresentable("type"))
            })
            .collect::<Desc<_>>()?,
    };
    let mut tools = Vec::new();
    for t in r
        .get("tools")
        .map(|t| t.as_array().ok_or(Unrepresentable("type")))
        .transpose()?
        .into_iter()
        .flatten()
    {
        let t = obj(Some(t), "type")?.ok_or(Unrepresentable("type"))?;
        let params = match t.get("parameters") {
            None => None,
            Some(p @ serde_json::Value::Object(_)) => Some(p.to_string()),
            Some(_) => return Err(Unrepresentable("type")),
        };
        tools.push((
            opt_string(t.get("name"), "type")?.ok_or(Unrepresentable("type"))?,
            opt_string(t.get("description"), "type")?,
            params,
            opt_bool(t.get("strict"), "type")?.unwrap_or(false),
        ));
    }
    let tool_choice = match r.get("toolChoice") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(match s.as_str() {
            "auto" => Err(ToolChoice::Auto),
            "none" => Err(ToolChoice::None),
            "required" => Err(ToolChoice::Required),
            _ => return Err(Unrepresentable("type")),
        }),
        Some(c) => Some(Ok(obj(Some(c), "type")?
            .and_then(|c| c.get("name"))
            .and_then(|n| n.as_str())
            .ok_or(Unrepresentable("type"))?
            .to_string())),
    };
    // response_format: OpenAI's wire shape.
    let format = match obj(r.get("responseFormat"), "type")? {
        None => None,
        Some(f) => match f.get("type").and_then(|t| t.as_str()) {
            Some("text") => Some((0, String::new(), String::new(), false)),
            Some("json_object") => Some((1, String::new(), String::new(), false)),
            Some("json_schema") => {
                let s = obj(f.get("json_schema"), "type")?.ok_or(Unrepresentable("type"))?;
                Some((
                    2,
                    opt_string(s.get("name"), "schema_name")?
                        .ok_or(Unrepresentable("schema_name"))?,
                    s.get("schema").ok_or(Unrepresentable("type"))?.to_string(),
                    opt_bool(s.get("strict"), "type")?.unwrap_or(false),
                ))
            }
            _ => return Err(Unrepresentable("type")),
        },
    };
    // A reasoning effort the core has no variant for goes as an extra body member, as the
    // core's docs say to send one.
    let mut extra: Vec<(String, String)> = Vec::new();
    let effort = match opt_string(r.get("reasoningEffort"), "type")?.as_deref() {
        None => None,
        Some("minimal") => Some(ReasoningEffort::Minimal),
        Some("low") => Some(ReasoningEffort::Low),
        Some("medium") => Some(ReasoningEffort::Medium),
        Some("high") => Some(ReasoningEffort::High),
        // (The wrapper sends it to OpenAI-compatible APIs only.)
        Some(other) => {
            if dialect == Dialect::OpenAi {
                extra.push((
                    "reasoning_effort".into(),
                    serde_json::Value::from(other).to_string(),
                ));
            } else if dialect == Dialect::Responses {
                extra.push((
                    "reasoning".into(),
                    serde_json::json!({ "effort": other }).to_string(),
                ));
            }
            None
        }
    };
    for (k, v) in obj(r.get("extraBody"), "type")?.into_iter().flatten() {
        extra.push((k.clone(), v.to_string()));
    }
    let thinking = match obj(r.get("thinking"), "thinking")? {
        None => None,
        Some(t) => {
            Some(opt_u32(t.get("budgetTokens"), "thinking")?.ok_or(Unrepresentable("thinking"))?)
        }
    };
    let seed = match r.get("seed") {
        None => None,
        Some(s) => Some(s.as_i64().ok_or(Unrepresentable("seed"))?),
    };

    // Borrowed views.
    let parts: Vec<Vec<Part<'_>>> = messages
        .iter()
        .map(|m| {
            m.parts
                .iter()
                .flatten()
                .map(|(text, s, detail)| {
                    if *text {
                        Part::Text(s)
                    } else {
                        Part::ImageUrl {
                            url: s,
                            detail: detail.as_deref(),
                        }
                    }
                })
                .collect()
        })
        .collect();
    let calls: Vec<Vec<ToolCall<'_>>> = messages
        .iter()
        .map(|m| {
            m.calls
                .iter()
                .map(|(id, name, arguments)| ToolCall {
                    id,
                    name,
                    arguments,
                })
                .collect()
        })
        .collect();
    let msgs: Vec<Message<'_>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| Message {
            role: m.role,
            content: match (&m.text, &m.parts) {
                (Some(t), _) => Some(Content::Text(t)),
                (None, Some(_)) => Some(Content::Parts(&parts[i])),
                (None, None) => None,
            },
            name: m.name.as_deref(),
            tool_call_id: m.tool_call_id.as_deref(),
            tool_calls: &calls[i],
        })
        .collect();
    let stop_refs: Vec<&str> = stop.iter().map(String::as_str).collect();
    let mut tool_list = Vec::new();
    for (name, description, params, strict) in &tools {
        tool_list.push(Tool {
            name,
            description: description.as_deref(),
            parameters: match params {
                Some(p) => Some(RawJson::new(p).map_err(|_| Unrepresentable("type"))?),
                None => None,
            },
            strict: *strict,
        });
    }
    let mut extra_refs = Vec::new();
    for (k, v) in &extra {
        extra_refs.push((
            k.as_str(),
            RawJson::new(v).map_err(|_| Unrepresentable("type"))?,
        ));
    }
    let mut req = ChatRequest::new(&model, &msgs);
    if let Some(m) = &ep_model {
        req.model = m;
    }
    req.max_tokens = opt_u32(r.get("maxTokens"), "max_tokens")?;
    req.max_completion_tokens = opt_u32(r.get("maxCompletionTokens"), "max_tokens")?;
    req.temperature = opt_f32(r.get("temperature"), "sampling")?;
    req.top_p = opt_f32(r.get("topP"), "sampling")?;
    req.stop = &stop_refs;
    req.seed = seed;
    req.user = r
        .get("user")
        .map(|u| u.as_str().ok_or(Unrepresentable("type")))
        .transpose()?;
    req.tools = &tool_list;
    req.tool_choice = tool_choice.as_ref().map(|c| match c {
        Err(c) => *c,
        Ok(name) => ToolChoice::Function(name),
    });
    req.include_obfuscation = opt_bool(r.get("includeObfuscation"), "type")?.unwrap_or(true);
    req.background = opt_bool(r.get("background"), "type")?.unwrap_or(true);
    req.response_format = match &format {
        None => None,
        Some((0, ..)) => Some(ResponseFormat::Text),
        Some((1, ..)) => Some(ResponseFormat::JsonObject),
        Some((_, name, schema, strict)) => Some(ResponseFormat::JsonSchema {
            name,
            schema: RawJson::new(schema).map_err(|_| Unrepresentable("type"))?,
            strict: *strict,
        }),
    };
    req.reasoning_effort = effort;
    req.parallel_tool_calls = opt_bool(r.get("parallelToolCalls"), "type")?;
    req.thinking = thinking.map(|budget_tokens| Thinking::Enabled { budget_tokens });
    req.extra_body = &extra_refs;

    let ep = match Endpoint::new(&base_url, api_key.as_deref()) {
        Ok(ep) => ep,
        Err(EndpointError::Url(_)) => return Ok(Err("base_url")),
        Err(EndpointError::Header(_)) => return Ok(Err("api_key")),
    };
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let query_refs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut ep = ep
        .with_dialect(dialect)
        .with_headers(&header_refs)
        .with_query(&query_refs);
    if let Some(m) = &ep_model {
        ep = ep.with_model(m);
    }
    let len = match req.body_len(dialect) {
        Ok(n) => n,
        Err(e) => return Ok(Err(request_error_class(&e))),
    };
    let mut body = vec![0u8; len];
    if let Err(e) = req.write_body(dialect, &mut body) {
        return Ok(Err(request_error_class(&e)));
    }
    let head = RequestHead::new(&ep, len, req.stream);
    let mut buf = vec![
        0u8;
        4096 + base_url.len()
            + 3 * header_refs
                .iter()
                .chain(&query_refs)
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
    ];
    // `"resume":{"id","after"}`: the head that resumes the response instead (no body).
    let resume = match obj(desc.get("resume"), "type")? {
        None => None,
        Some(r) => Some((
            opt_string(r.get("id"), "type")?.ok_or(Unrepresentable("type"))?,
            r.get("after")
                .and_then(|a| a.as_u64())
                .ok_or(Unrepresentable("type"))?,
        )),
    };
    let written = match &resume {
        Some((id, after)) => write_resume_head(&head, id, *after, &mut buf),
        None => head.write(&mut buf),
    };
    let n = match written {
        Ok(n) => n,
        Err(HeadError::Header(_)) => return Ok(Err("header")),
        Err(HeadError::BufferTooSmall(_)) => return Ok(Err("buffer")),
    };
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut start = start.splitn(3, ' ');
    let method = start.next().unwrap_or_default();
    let path = start.next().unwrap_or_default();
    let key = api_key.as_deref().filter(|k| !k.is_empty());
    let mut head_lines = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let (name, value) = l.split_once(": ").unwrap_or((l, ""));
        let value = match key {
            Some(k) => value.replace(k, KEY_PLACEHOLDER),
            None => value.to_string(),
        };
        head_lines.push(serde_json::json!([name.to_ascii_lowercase(), value]));
    }
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(_) if resume.is_some() => serde_json::Value::Null,
        Ok(v) => v,
        Err(_) => return Ok(Err("body_not_json")),
    };
    Ok(Ok(serde_json::json!({
        "ok": true,
        "method": method,
        "path": path,
        "headers": head_lines,
        "body": body,
    })))
}

/// Runs the `request` mode over one line: a JSON description of a request in the browser
/// wrapper's shapes (`{"options":{"model","endpoints":[one endpoint]},"request":{…}}`, and
/// with `"resume":{"id","after"}` the head of the GET that resumes that Responses answer
/// instead, its body `null`), out
/// `{"ok":true,"method","path","headers":[[name,value]…],"body"}` (names lowercase, the API
/// key replaced by [`KEY_PLACEHOLDER`]) or `{"ok":false,"error":CLASS}`: the class of the
/// core's typed error (`base_url`, `api_key`, `header`, `sampling`, `max_tokens`,
/// `tool_arguments`, `tool_call_id`, `schema_name`, `thinking`, `json_object`, `extra_body`,
/// `no_messages`, `tool_name`),
/// or, with `"unrepresentable":true`, the field of a description the core's types cannot hold.
pub fn run_request(line: &str) -> String {
    let desc: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return r#"{"ok":false,"error":"description_not_json"}"#.into(),
    };
    let out = match request_line(line, &desc) {
        Ok(Ok(v)) => v,
        Ok(Err(class)) => serde_json::json!({"ok": false, "error": class}),
        Err(Unrepresentable(class)) => {
            serde_json::json!({"ok": false, "error": class, "unrepresentable": true})
        }
    };
    out.to_string()
}

/// Runs the `error-object` mode over one line, a JSON string holding an error body: out the
/// error object [`ApiError::parse`] reads, `{"message"[,"type"][,"code"][,"param"]}` (absent
/// members left out), or `null` when the body holds none.
pub fn run_error_object(line: &str) -> String {
    let body: String = match serde_json::from_str(line) {
        Ok(b) => b,
        Err(_) => return r#"{"error":"line is not a JSON string"}"#.into(),
    };
    match ApiError::parse(&body) {
        Ok(e) => {
            let mut o = serde_json::Map::new();
            o.insert("message".into(), e.message.to_string().into());
            for (k, v) in [("type", e.kind), ("code", e.code), ("param", e.param)] {
                if let Some(v) = v {
                    o.insert(k.into(), v.to_string().into());
                }
            }
            serde_json::Value::Object(o).to_string()
        }
        Err(_) => "null".into(),
    }
}
