//! What JavaScript hands over: the client options and each request, as compact JSON written by
//! the package's own wrapper (`js/src/index.js`), read with the core's validating JSON reader
//! into owned values, then lent to the core as its borrowed types.
//!
//! The wrapper checks types and turns numbers into integers (`temperature` travels as
//! millionths, the precision the core writes), so nothing here parses floats. Anything
//! unexpected is a typed [`InputError`], never a panic.

use alloc::string::String;
use alloc::vec::Vec;

use steadyllm_core::call::{CallConfig, Jitter, MAX_ENDPOINTS, Timeouts};
use steadyllm_core::decode::Dialect;
use steadyllm_core::http::{Endpoint, EndpointError, check_header_name, check_header_value};
use steadyllm_core::json::{self, JsonStr, Reader};
use steadyllm_core::request::{
    ChatRequest, Content, Message, Part, RawJson, Role, Tool, ToolCall, ToolChoice,
};
use steadyllm_core::time::Duration;

/// Why the options or a request were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// Not the JSON the wrapper writes.
    Json(json::Error),
    /// A field holds a value that cannot be used; the text says which and why.
    Invalid(String),
}

impl InputError {
    /// The message. (No `core::fmt` here: it would be most of the module's size.)
    pub fn message(&self) -> &str {
        match self {
            InputError::Json(_) => "malformed options or request (not the JSON the wrapper writes)",
            InputError::Invalid(s) => s,
        }
    }
}

impl From<json::Error> for InputError {
    fn from(e: json::Error) -> Self {
        InputError::Json(e)
    }
}

fn invalid(s: &str) -> InputError {
    InputError::Invalid(String::from(s))
}

/// Joins message pieces.
pub fn join(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(p);
    }
    out
}

/// `0`–`9` for small indexes (there are at most four endpoints).
fn digit(i: usize) -> &'static str {
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        .get(i)
        .copied()
        .unwrap_or("?")
}

/// The unescaped text of a JSON string.
#[inline(never)]
pub fn owned(s: JsonStr<'_>) -> String {
    let mut out = String::with_capacity(s.decoded_len());
    let mut p = s.pieces();
    while let Some(piece) = p.next_piece() {
        out.push_str(piece);
    }
    out
}

#[inline(never)]
fn string(r: &mut Reader<'_>) -> Result<String, InputError> {
    Ok(owned(r.string()?))
}

#[inline(never)]
fn opt_string(r: &mut Reader<'_>) -> Result<Option<String>, InputError> {
    Ok(r.string_or_null()?.map(owned))
}

#[inline(never)]
fn u32_of(r: &mut Reader<'_>, what: &str) -> Result<u32, InputError> {
    let v = r.u64()?;
    u32::try_from(v).map_err(|_| InputError::Invalid(join(&[what, " is too large"])))
}

#[inline(never)]
fn ms(r: &mut Reader<'_>) -> Result<Duration, InputError> {
    Ok(Duration::from_millis(r.u64()?))
}

/// One endpoint as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Base URL.
    pub base_url: String,
    /// Key, if any.
    pub api_key: Option<String>,
    /// Model override.
    pub model: Option<String>,
    /// Dialect.
    pub dialect: Dialect,
    /// Extra headers, validated.
    pub headers: Vec<(String, String)>,
}

impl EndpointSpec {
    /// The core's view of it (borrowing).
    pub fn endpoint(&self) -> Result<Endpoint<'_>, EndpointError> {
        let mut ep =
            Endpoint::new(&self.base_url, self.api_key.as_deref())?.with_dialect(self.dialect);
        if let Some(m) = &self.model {
            ep = ep.with_model(m);
        }
        Ok(ep)
    }
}

/// The client options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Primary first.
    pub endpoints: Vec<EndpointSpec>,
    /// Engine settings.
    pub config: CallConfig,
    /// Default model.
    pub model: String,
}

/// Reads the options the wrapper wrote:
/// `{"endpoints":[{"baseUrl","apiKey","model","dialect","headers":[[n,v]…]}…],"model",
/// "maxAttempts","baseDelayMs","maxDelayMs","maxRetryAfterMs","restartOnPartial",
/// "budgetPermille","breakerThreshold","breakerCooldownMs",
/// "timeouts":{"firstByteMs","firstTokenMs","idleMs","totalMs"}}` (all but `endpoints` optional).
pub fn parse_options(src: &str) -> Result<Options, InputError> {
    let mut r = Reader::new(src);
    let mut o = r.object()?;
    let mut endpoints = Vec::new();
    let mut config = CallConfig::default();
    let mut model = String::new();
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(&mut r)? {
        match k.key(&mut kb) {
            "endpoints" => {
                let mut a = r.array()?;
                while a.next(&mut r)? {
                    endpoints.push(parse_endpoint(&mut r)?);
                }
            }
            "model" => model = string(&mut r)?,
            "maxAttempts" => config.max_attempts = u32_of(&mut r, "retries.maxAttempts")?,
            "baseDelayMs" => config.backoff_base = ms(&mut r)?,
            "maxDelayMs" => config.backoff_cap = ms(&mut r)?,
            "maxRetryAfterMs" => config.retry_after_cap = ms(&mut r)?,
            "restartOnPartial" => config.restart_on_partial = boolean(&mut r)?,
            "budgetPermille" => {
                config.budget_ratio_permille = u32_of(&mut r, "retries.budgetRatio")?
            }
            "breakerThreshold" => config.breaker_threshold = u32_of(&mut r, "breaker.threshold")?,
            "breakerCooldownMs" => config.breaker_cooldown = ms(&mut r)?,
            "jitter" => {
                config.jitter = match string(&mut r)?.as_str() {
                    "none" => Jitter::None,
                    "decorrelated" => Jitter::Decorrelated,
                    _ => Jitter::Full,
                }
            }
            "timeouts" => {
                if !r.null()? {
                    config.timeouts = Some(parse_timeouts(&mut r)?);
                }
            }
            _ => r.skip_value()?,
        }
    }
    r.end()?;
    if endpoints.is_empty() {
        return Err(invalid(
            "options.endpoints: at least one endpoint is needed",
        ));
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(invalid("options.endpoints: at most 4 endpoints"));
    }
    if config.max_attempts == 0 {
        return Err(invalid("retries.maxAttempts must be at least 1"));
    }
    for (i, e) in endpoints.iter().enumerate() {
        if let Err(err) = e.endpoint() {
            let text = match err {
                EndpointError::Url(u) => u.as_str(),
                EndpointError::Header(h) => h.as_str(),
            };
            let what = match err {
                EndpointError::Url(_) => "]: ",
                EndpointError::Header(_) => "]: API key: ",
            };
            return Err(InputError::Invalid(join(&[
                "endpoints[",
                digit(i),
                what,
                text,
            ])));
        }
        if e.model.is_none() && model.is_empty() {
            return Err(InputError::Invalid(join(&[
                "endpoints[",
                digit(i),
                "]: no model (set options.model or the endpoint's model)",
            ])));
        }
    }
    Ok(Options {
        endpoints,
        config,
        model,
    })
}

#[inline(never)]
fn boolean(r: &mut Reader<'_>) -> Result<bool, InputError> {
    match r.raw_value()? {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid("expected true or false")),
    }
}

#[inline(never)]
fn parse_timeouts(r: &mut Reader<'_>) -> Result<Timeouts, InputError> {
    // Unset fields take the small-prompt tier's value.
    let mut t = Timeouts::for_profile(Default::default());
    let mut o = r.object()?;
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut kb) {
            "connectMs" => t.connect = ms(r)?,
            "firstByteMs" => t.first_byte = ms(r)?,
            "firstTokenMs" => t.first_token = ms(r)?,
            "idleMs" => t.idle = ms(r)?,
            "totalMs" => t.total = ms(r)?,
            _ => r.skip_value()?,
        }
    }
    Ok(t)
}

#[inline(never)]
fn parse_endpoint(r: &mut Reader<'_>) -> Result<EndpointSpec, InputError> {
    let mut e = EndpointSpec {
        base_url: String::new(),
        api_key: None,
        model: None,
        dialect: Dialect::OpenAi,
        headers: Vec::new(),
    };
    let mut o = r.object()?;
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut kb) {
            "baseUrl" => e.base_url = string(r)?,
            "apiKey" => e.api_key = opt_string(r)?,
            "model" => e.model = opt_string(r)?,
            "dialect" => {
                e.dialect = match string(r)?.as_str() {
                    "openai" => Dialect::OpenAi,
                    "anthropic" => Dialect::Anthropic,
                    _ => return Err(invalid("dialect must be \"openai\" or \"anthropic\"")),
                }
            }
            "headers" => {
                let mut a = r.array()?;
                while a.next(r)? {
                    let mut pair = r.array()?;
                    let mut name = None;
                    let mut value = None;
                    while pair.next(r)? {
                        let s = string(r)?;
                        if name.is_none() {
                            name = Some(s);
                        } else if value.is_none() {
                            value = Some(s);
                        } else {
                            return Err(invalid("a header is a [name, value] pair"));
                        }
                    }
                    let (Some(n), Some(v)) = (name, value) else {
                        return Err(invalid("a header is a [name, value] pair"));
                    };
                    if check_header_name(&n).is_err() {
                        return Err(invalid("a header name is not a valid token"));
                    }
                    if check_header_value(&v).is_err() {
                        // The value may be a secret: never echo it.
                        return Err(InputError::Invalid(join(&[
                            "header ",
                            &n,
                            ": value holds a control character",
                        ])));
                    }
                    e.headers.push((n, v));
                }
            }
            _ => r.skip_value()?,
        }
    }
    Ok(e)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum OwnedPart {
    Text(String),
    Image { url: String, detail: Option<String> },
}

#[derive(Clone, Debug, PartialEq)]
enum OwnedContent {
    Text(String),
    Parts(Vec<OwnedPart>),
}

#[derive(Clone, Debug, PartialEq)]
struct OwnedMessage {
    role: Role,
    content: Option<OwnedContent>,
    name: Option<String>,
    tool_call_id: Option<String>,
    tool_calls: Vec<(String, String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
struct OwnedTool {
    name: String,
    description: Option<String>,
    parameters: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum OwnedChoice {
    Auto,
    None,
    Required,
    Function(String),
}

/// A request as given, owning its text.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestSpec {
    model: String,
    messages: Vec<OwnedMessage>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Vec<String>,
    seed: Option<i64>,
    user: Option<String>,
    tools: Vec<OwnedTool>,
    tool_choice: Option<OwnedChoice>,
}

/// Reads a request the wrapper wrote: the JS `ChatRequest` shape with `temperatureE6` /
/// `topPE6` (millionths) instead of floats and `parameters` as JSON.
pub fn parse_request(src: &str) -> Result<RequestSpec, InputError> {
    let mut r = Reader::new(src);
    let mut o = r.object()?;
    let mut q = RequestSpec {
        model: String::new(),
        messages: Vec::new(),
        max_tokens: None,
        max_completion_tokens: None,
        temperature: None,
        top_p: None,
        stop: Vec::new(),
        seed: None,
        user: None,
        tools: Vec::new(),
        tool_choice: None,
    };
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(&mut r)? {
        match k.key(&mut kb) {
            "model" => q.model = string(&mut r)?,
            "messages" => {
                let mut a = r.array()?;
                while a.next(&mut r)? {
                    q.messages.push(parse_message(&mut r)?);
                }
            }
            "maxTokens" => q.max_tokens = Some(u32_of(&mut r, "maxTokens")?),
            "maxCompletionTokens" => {
                q.max_completion_tokens = Some(u32_of(&mut r, "maxCompletionTokens")?)
            }
            "temperatureE6" => q.temperature = Some(millionths(&mut r)?),
            "topPE6" => q.top_p = Some(millionths(&mut r)?),
            "stop" => {
                let mut a = r.array()?;
                while a.next(&mut r)? {
                    q.stop.push(string(&mut r)?);
                }
            }
            "seed" => {
                let raw = r.string_or_number()?.map(|s| s.raw()).unwrap_or("");
                q.seed = Some(
                    raw.parse::<i64>()
                        .map_err(|_| invalid("seed must be an integer"))?,
                );
            }
            "user" => q.user = Some(string(&mut r)?),
            "tools" => {
                let mut a = r.array()?;
                while a.next(&mut r)? {
                    q.tools.push(parse_tool(&mut r)?);
                }
            }
            "toolChoice" => {
                q.tool_choice = Some(if r.peek()? == b'"' {
                    match string(&mut r)?.as_str() {
                        "auto" => OwnedChoice::Auto,
                        "none" => OwnedChoice::None,
                        "required" => OwnedChoice::Required,
                        _ => {
                            return Err(invalid(
                                "toolChoice: \"auto\", \"none\", \"required\" or { name }",
                            ));
                        }
                    }
                } else {
                    let mut name = None;
                    let mut to = r.object()?;
                    while let Some(k) = to.next_key(&mut r)? {
                        if k.eq_str("name") {
                            name = Some(string(&mut r)?);
                        } else {
                            r.skip_value()?;
                        }
                    }
                    OwnedChoice::Function(name.ok_or_else(|| invalid("toolChoice needs a name"))?)
                })
            }
            _ => r.skip_value()?,
        }
    }
    r.end()?;
    if q.messages.is_empty() {
        return Err(invalid("request.messages: at least one message is needed"));
    }
    Ok(q)
}

#[inline(never)]
fn millionths(r: &mut Reader<'_>) -> Result<f32, InputError> {
    let raw = r.string_or_number()?.map(|s| s.raw()).unwrap_or("");
    let v: i64 = raw
        .parse()
        .map_err(|_| invalid("temperature/topP must be finite numbers"))?;
    Ok((v as f64 / 1e6) as f32)
}

fn role(s: &str) -> Result<Role, InputError> {
    Ok(match s {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => {
            return Err(invalid(
                "message role must be system, developer, user, assistant or tool",
            ));
        }
    })
}

#[inline(never)]
fn parse_message(r: &mut Reader<'_>) -> Result<OwnedMessage, InputError> {
    let mut m = OwnedMessage {
        role: Role::User,
        content: None,
        name: None,
        tool_call_id: None,
        tool_calls: Vec::new(),
    };
    let mut has_role = false;
    let mut o = r.object()?;
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut kb) {
            "role" => {
                m.role = role(&string(r)?)?;
                has_role = true;
            }
            "content" => {
                m.content = match r.peek()? {
                    b'n' => {
                        r.null()?;
                        None
                    }
                    b'"' => Some(OwnedContent::Text(string(r)?)),
                    _ => {
                        let mut parts = Vec::new();
                        let mut a = r.array()?;
                        while a.next(r)? {
                            parts.push(parse_part(r)?);
                        }
                        Some(OwnedContent::Parts(parts))
                    }
                }
            }
            "name" => m.name = opt_string(r)?,
            "toolCallId" => m.tool_call_id = opt_string(r)?,
            "toolCalls" => {
                let mut a = r.array()?;
                while a.next(r)? {
                    let (mut id, mut name, mut args) =
                        (String::new(), String::new(), String::new());
                    let mut to = r.object()?;
                    while let Some(k) = to.next_key(r)? {
                        match k.key(&mut kb) {
                            "id" => id = string(r)?,
                            "name" => name = string(r)?,
                            "arguments" => args = string(r)?,
                            _ => r.skip_value()?,
                        }
                    }
                    m.tool_calls.push((id, name, args));
                }
            }
            _ => r.skip_value()?,
        }
    }
    if !has_role {
        return Err(invalid("every message needs a role"));
    }
    Ok(m)
}

#[inline(never)]
fn parse_part(r: &mut Reader<'_>) -> Result<OwnedPart, InputError> {
    let (mut kind, mut text, mut url, mut detail) = (String::new(), None, None, None);
    let mut o = r.object()?;
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut kb) {
            "type" => kind = string(r)?,
            "text" => text = Some(string(r)?),
            "imageUrl" => url = Some(string(r)?),
            "detail" => detail = opt_string(r)?,
            _ => r.skip_value()?,
        }
    }
    match (kind.as_str(), text, url) {
        ("text", Some(t), _) => Ok(OwnedPart::Text(t)),
        ("image_url", _, Some(url)) => Ok(OwnedPart::Image { url, detail }),
        _ => Err(invalid(
            "a content part is { type: \"text\", text } or { type: \"image_url\", imageUrl }",
        )),
    }
}

#[inline(never)]
fn parse_tool(r: &mut Reader<'_>) -> Result<OwnedTool, InputError> {
    let mut t = OwnedTool {
        name: String::new(),
        description: None,
        parameters: None,
    };
    let mut o = r.object()?;
    let mut kb = [0u8; 32];
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut kb) {
            "name" => t.name = string(r)?,
            "description" => t.description = opt_string(r)?,
            "parameters" => {
                if !r.null()? {
                    t.parameters = Some(String::from(r.raw_value()?));
                }
            }
            _ => r.skip_value()?,
        }
    }
    if t.name.is_empty() {
        return Err(invalid("every tool needs a name"));
    }
    Ok(t)
}

/// The borrowed pieces a [`ChatRequest`] points into (built once per call).
pub struct Lent<'s> {
    messages: Vec<Message<'s>>,
    stop: Vec<&'s str>,
    tools: Vec<Tool<'s>>,
}

/// Second-level borrowed storage (message parts and tool calls).
pub struct LentParts<'s> {
    parts: Vec<Vec<Part<'s>>>,
    calls: Vec<Vec<ToolCall<'s>>>,
}

impl RequestSpec {
    /// The parts and tool calls, borrowed.
    pub fn lend_parts(&self) -> LentParts<'_> {
        LentParts {
            parts: self
                .messages
                .iter()
                .map(|m| match &m.content {
                    Some(OwnedContent::Parts(ps)) => ps
                        .iter()
                        .map(|p| match p {
                            OwnedPart::Text(t) => Part::Text(t),
                            OwnedPart::Image { url, detail } => Part::ImageUrl {
                                url,
                                detail: detail.as_deref(),
                            },
                        })
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
            calls: self
                .messages
                .iter()
                .map(|m| {
                    m.tool_calls
                        .iter()
                        .map(|(id, name, arguments)| ToolCall {
                            id,
                            name,
                            arguments,
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// Messages, stop sequences and tools, borrowed.
    pub fn lend<'s>(&'s self, parts: &'s LentParts<'s>) -> Result<Lent<'s>, InputError> {
        let mut tools = Vec::with_capacity(self.tools.len());
        for t in &self.tools {
            let parameters = match &t.parameters {
                Some(p) => Some(
                    RawJson::new(p).map_err(|_| invalid("tool parameters are not valid JSON"))?,
                ),
                None => None,
            };
            tools.push(Tool {
                name: &t.name,
                description: t.description.as_deref(),
                parameters,
            });
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| Message {
                role: m.role,
                content: match &m.content {
                    None => None,
                    Some(OwnedContent::Text(t)) => Some(Content::Text(t)),
                    Some(OwnedContent::Parts(_)) => Some(Content::Parts(
                        parts.parts.get(i).map(Vec::as_slice).unwrap_or_default(),
                    )),
                },
                name: m.name.as_deref(),
                tool_call_id: m.tool_call_id.as_deref(),
                tool_calls: parts.calls.get(i).map(Vec::as_slice).unwrap_or_default(),
            })
            .collect();
        Ok(Lent {
            messages,
            stop: self.stop.iter().map(String::as_str).collect(),
            tools,
        })
    }

    /// The core's request (streaming, with usage), for `default_model` when the request
    /// names none.
    pub fn chat_request<'s>(
        &'s self,
        lent: &'s Lent<'s>,
        default_model: &'s str,
    ) -> ChatRequest<'s> {
        let mut req = ChatRequest::new(
            if self.model.is_empty() {
                default_model
            } else {
                &self.model
            },
            &lent.messages,
        );
        req.max_tokens = self.max_tokens;
        req.max_completion_tokens = self.max_completion_tokens;
        req.temperature = self.temperature;
        req.top_p = self.top_p;
        req.stop = &lent.stop;
        req.seed = self.seed;
        req.user = self.user.as_deref();
        req.tools = &lent.tools;
        req.tool_choice = self.tool_choice.as_ref().map(|c| match c {
            OwnedChoice::Auto => ToolChoice::Auto,
            OwnedChoice::None => ToolChoice::None,
            OwnedChoice::Required => ToolChoice::Required,
            OwnedChoice::Function(n) => ToolChoice::Function(n),
        });
        req
    }
}
