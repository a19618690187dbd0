//! What JavaScript hands over: client options and requests, as owned values built field by
//! field through the exported builders (numbers and strings cross the boundary as they are;
//! nothing is serialised to JSON and parsed again), then lent to the core as its borrowed types.
//!
//! The JS wrapper checks types first and gives friendly messages; everything that reaches
//! here is checked again and refused with a message, never a panic.

use alloc::string::String;
use alloc::vec::Vec;

use steadyllm_core::call::{CallConfig, MAX_ENDPOINTS, Timeouts};
use steadyllm_core::decode::Dialect;
use steadyllm_core::http::{Endpoint, EndpointError, check_header_name, check_header_value};
use steadyllm_core::json::JsonStr;
use steadyllm_core::request::{
    ChatRequest, Content, Message, Part, RawJson, Role, Tool, ToolCall, ToolChoice,
};
use steadyllm_core::time::Duration;

/// The unescaped text of a JSON string.
pub fn owned(s: JsonStr<'_>) -> String {
    let mut out = String::with_capacity(s.decoded_len());
    let mut p = s.pieces();
    while let Some(piece) = p.next_piece() {
        out.push_str(piece);
    }
    out
}

/// Joins message pieces (no `core::fmt` in this module: it would be a large share of it).
pub fn join(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(p);
    }
    out
}

/// One endpoint as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    base_url: String,
    api_key: Option<String>,
    model: Option<String>,
    dialect: Dialect,
    headers: Vec<(String, String)>,
}

impl EndpointSpec {
    /// Checks and keeps an endpoint. `headers` is `name\nvalue\n…` (neither may hold a line
    /// break, which the header checks refuse anyway). Messages never echo the key or a value.
    pub fn new(
        base_url: String,
        api_key: Option<String>,
        model: Option<String>,
        dialect: Dialect,
        headers: &str,
    ) -> Result<EndpointSpec, String> {
        let mut pairs = Vec::new();
        if !headers.is_empty() {
            let mut it = headers.split('\n');
            while let Some(name) = it.next() {
                let Some(value) = it.next() else {
                    return Err(String::from("headers: a name without a value"));
                };
                if check_header_name(name).is_err() {
                    return Err(String::from("headers: a name is not a valid token"));
                }
                if check_header_value(value).is_err() {
                    return Err(join(&[
                        "header ",
                        name,
                        ": value holds a control character",
                    ]));
                }
                pairs.push((String::from(name), String::from(value)));
            }
        }
        let spec = EndpointSpec {
            base_url,
            api_key,
            model,
            dialect,
            headers: pairs,
        };
        if let Err(e) = spec.endpoint() {
            return Err(String::from(match e {
                EndpointError::Url(u) => u.as_str(),
                EndpointError::Header(_) => "API key: holds CR, LF or a control character",
            }));
        }
        Ok(spec)
    }

    /// The core's view of it (borrowing).
    pub fn endpoint(&self) -> Result<Endpoint<'_>, EndpointError> {
        let mut ep =
            Endpoint::new(&self.base_url, self.api_key.as_deref())?.with_dialect(self.dialect);
        if let Some(m) = &self.model {
            ep = ep.with_model(m);
        }
        Ok(ep)
    }

    /// Extra headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// `true` when the endpoint names its own model.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }
}

/// Positions in the numbers [`config`] reads; [`UNSET`] leaves a default.
pub mod cfg {
    /// Attempts per call.
    pub const MAX_ATTEMPTS: usize = 0;
    /// First backoff step, ms.
    pub const BASE_DELAY: usize = 1;
    /// Longest backoff, ms.
    pub const MAX_DELAY: usize = 2;
    /// Longest Retry-After honoured, ms.
    pub const MAX_RETRY_AFTER: usize = 3;
    /// 1: retry after partial output.
    pub const RESTART_ON_PARTIAL: usize = 4;
    /// Budget share, per mille.
    pub const BUDGET_PERMILLE: usize = 5;
    /// Breaker threshold (failures of the last 16).
    pub const BREAKER_THRESHOLD: usize = 6;
    /// Breaker cooldown, ms.
    pub const BREAKER_COOLDOWN: usize = 7;
    /// Timeouts, ms: first byte, first token, idle, total. Any set fixes the table.
    pub const FIRST_BYTE: usize = 8;
    /// See [`FIRST_BYTE`].
    pub const FIRST_TOKEN: usize = 9;
    /// See [`FIRST_BYTE`].
    pub const IDLE: usize = 10;
    /// See [`FIRST_BYTE`].
    pub const TOTAL: usize = 11;
    /// How many numbers.
    pub const LEN: usize = 12;
}

/// A number left at its default.
pub const UNSET: u32 = u32::MAX;

/// The engine settings from the numbers the wrapper passes (see [`mod@cfg`]).
pub fn config(n: &[u32]) -> Result<CallConfig, &'static str> {
    let get = |i: usize| n.get(i).copied().filter(|&v| v != UNSET);
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let mut c = CallConfig::default();
    if let Some(v) = get(cfg::MAX_ATTEMPTS) {
        if v == 0 {
            return Err("retries.maxAttempts must be at least 1");
        }
        c.max_attempts = v;
    }
    if let Some(v) = get(cfg::BASE_DELAY) {
        c.backoff_base = ms(v);
    }
    if let Some(v) = get(cfg::MAX_DELAY) {
        c.backoff_cap = ms(v);
    }
    if let Some(v) = get(cfg::MAX_RETRY_AFTER) {
        c.retry_after_cap = ms(v);
    }
    if let Some(v) = get(cfg::RESTART_ON_PARTIAL) {
        c.restart_on_partial = v != 0;
    }
    if let Some(v) = get(cfg::BUDGET_PERMILLE) {
        c.budget_ratio_permille = v;
    }
    if let Some(v) = get(cfg::BREAKER_THRESHOLD) {
        if v == 0 {
            return Err("breaker.threshold must be at least 1");
        }
        c.breaker_threshold = v;
    }
    if let Some(v) = get(cfg::BREAKER_COOLDOWN) {
        c.breaker_cooldown = ms(v);
    }
    let t = [cfg::FIRST_BYTE, cfg::FIRST_TOKEN, cfg::IDLE, cfg::TOTAL].map(get);
    if t.iter().any(Option::is_some) {
        // Unset fields take the small-prompt tier's value.
        let mut table = Timeouts::for_profile(Default::default());
        let slots = [
            &mut table.first_byte,
            &mut table.first_token,
            &mut table.idle,
            &mut table.total,
        ];
        for (slot, v) in slots.into_iter().zip(t) {
            if let Some(v) = v {
                if v == 0 {
                    return Err("timeouts must be at least 1 ms");
                }
                *slot = ms(v);
            }
        }
        c.timeouts = Some(table);
    }
    Ok(c)
}

/// At most this many endpoints.
pub const ENDPOINTS: usize = MAX_ENDPOINTS;

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

/// A request as given, owning its text; built with the methods below in the order of the
/// JS request (each part or tool call goes to the last message).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RequestSpec {
    model: String,
    messages: Vec<OwnedMessage>,
    /// `maxTokens`.
    pub max_tokens: Option<u32>,
    /// `maxCompletionTokens`.
    pub max_completion_tokens: Option<u32>,
    /// `temperature`.
    pub temperature: Option<f32>,
    /// `topP`.
    pub top_p: Option<f32>,
    stop: Vec<String>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `user`.
    pub user: Option<String>,
    tools: Vec<OwnedTool>,
    tool_choice: Option<OwnedChoice>,
}

/// Role codes: 0 system, 1 developer, 2 user, 3 assistant, 4 tool.
pub fn role(code: u32) -> Option<Role> {
    Some(match code {
        0 => Role::System,
        1 => Role::Developer,
        2 => Role::User,
        3 => Role::Assistant,
        4 => Role::Tool,
        _ => return None,
    })
}

impl RequestSpec {
    /// An empty request for `model` (empty: the client's default).
    pub fn new(model: String) -> Self {
        RequestSpec {
            model,
            ..Default::default()
        }
    }

    /// Adds a message with text content (or none).
    pub fn message(
        &mut self,
        role: Role,
        text: Option<String>,
        name: Option<String>,
        tool_call_id: Option<String>,
    ) {
        self.messages.push(OwnedMessage {
            role,
            content: text.map(OwnedContent::Text),
            name,
            tool_call_id,
            tool_calls: Vec::new(),
        });
    }

    fn last_parts(&mut self) -> Option<&mut Vec<OwnedPart>> {
        let m = self.messages.last_mut()?;
        if !matches!(m.content, Some(OwnedContent::Parts(_))) {
            m.content = Some(OwnedContent::Parts(Vec::new()));
        }
        match &mut m.content {
            Some(OwnedContent::Parts(p)) => Some(p),
            _ => None,
        }
    }

    /// Adds a text part to the last message. `false` without a message.
    pub fn text_part(&mut self, text: String) -> bool {
        self.last_parts()
            .map(|p| p.push(OwnedPart::Text(text)))
            .is_some()
    }

    /// Adds an image part to the last message. `false` without a message.
    pub fn image_part(&mut self, url: String, detail: Option<String>) -> bool {
        self.last_parts()
            .map(|p| p.push(OwnedPart::Image { url, detail }))
            .is_some()
    }

    /// Adds a tool call to the last message. `false` without a message.
    pub fn tool_call(&mut self, id: String, name: String, arguments: String) -> bool {
        self.messages
            .last_mut()
            .map(|m| m.tool_calls.push((id, name, arguments)))
            .is_some()
    }

    /// Adds a stop sequence.
    pub fn stop(&mut self, s: String) {
        self.stop.push(s);
    }

    /// Adds a tool; `parameters` is its JSON Schema as JSON text.
    pub fn tool(&mut self, name: String, description: Option<String>, parameters: Option<String>) {
        self.tools.push(OwnedTool {
            name,
            description,
            parameters,
        });
    }

    /// Tool choice: 0 auto, 1 none, 2 required, 3 the function `name`.
    pub fn tool_choice(&mut self, kind: u32, name: Option<String>) -> bool {
        self.tool_choice = Some(match (kind, name) {
            (0, _) => OwnedChoice::Auto,
            (1, _) => OwnedChoice::None,
            (2, _) => OwnedChoice::Required,
            (3, Some(n)) => OwnedChoice::Function(n),
            _ => return false,
        });
        true
    }

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
    pub fn lend<'s>(&'s self, parts: &'s LentParts<'s>) -> Result<Lent<'s>, &'static str> {
        if self.messages.is_empty() {
            return Err("request.messages: at least one message is needed");
        }
        let mut tools = Vec::with_capacity(self.tools.len());
        for t in &self.tools {
            if t.name.is_empty() {
                return Err("every tool needs a name");
            }
            let parameters = match &t.parameters {
                Some(p) => Some(RawJson::new(p).map_err(|_| "tool parameters are not valid JSON")?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn a_built_request_writes_both_dialects() {
        let mut q = RequestSpec::new(String::new());
        q.message(Role::System, Some(s("Be brief.")), None, None);
        q.message(Role::User, None, None, None);
        assert!(q.text_part(s("What is in")));
        assert!(q.image_part(s("https://x/cat.png"), Some(s("low"))));
        q.message(Role::Assistant, None, None, None);
        assert!(q.tool_call(s("call_1"), s("look"), s("{\"at\":\"cat\"}")));
        q.message(Role::Tool, Some(s("a cat")), None, Some(s("call_1")));
        q.tool(
            s("look"),
            Some(s("Looks")),
            Some(s("{\"type\":\"object\"}")),
        );
        assert!(q.tool_choice(3, Some(s("look"))));
        q.stop(s("END"));
        q.max_tokens = Some(100);
        q.temperature = Some(0.5);
        let parts = q.lend_parts();
        let lent = q.lend(&parts).unwrap();
        let req = q.chat_request(&lent, "gpt-4o");
        let mut buf = alloc::vec![0u8; 4096];
        let n = req.write_body(Dialect::OpenAi, &mut buf).unwrap();
        let body = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(body.starts_with("{\"model\":\"gpt-4o\""), "{body}");
        assert!(body.contains("\"image_url\":{\"url\":\"https://x/cat.png\",\"detail\":\"low\"}"));
        assert!(body.contains("\"tool_call_id\":\"call_1\""));
        assert!(body.contains("\"stop\":[\"END\"]"));
        let n = req.write_body(Dialect::Anthropic, &mut buf).unwrap();
        let body = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            body.contains("\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}]"),
            "{body}"
        );
        assert!(body.contains("\"tool_use\""));
    }

    #[test]
    fn bad_pieces_are_refused() {
        let empty = RequestSpec::new(String::new());
        assert!(empty.lend(&empty.lend_parts()).is_err());
        let mut q = RequestSpec::new(String::new());
        assert!(!q.text_part(s("no message yet")));
        assert!(!q.tool_call(s("1"), s("f"), s("{}")));
        q.message(Role::User, Some(s("hi")), None, None);
        q.tool(s("f"), None, Some(s("{not json")));
        assert!(q.lend(&q.lend_parts()).is_err());
        assert!(!q.tool_choice(3, None));
        assert_eq!(role(9), None);
        assert_eq!(role(4), Some(Role::Tool));
    }

    #[test]
    fn endpoints_and_headers_are_checked_without_echoing_values() {
        let ok = EndpointSpec::new(
            s("http://127.0.0.1:1/v1"),
            Some(s("k")),
            None,
            Dialect::OpenAi,
            "x-a\n1\nx-b\n2",
        );
        assert_eq!(ok.unwrap().headers().len(), 2);
        for (url, key, headers) in [
            ("ftp://x", None, ""),
            ("http://127.0.0.1/v1", Some("k\r\nx: y"), ""),
            ("http://127.0.0.1/v1", None, "bad name\nv"),
            ("http://127.0.0.1/v1", None, "x-a"),
            ("http://127.0.0.1/v1", None, "x-a\nsecret\u{7}"),
        ] {
            let e =
                EndpointSpec::new(s(url), key.map(s), None, Dialect::OpenAi, headers).unwrap_err();
            assert!(!e.contains("secret") && !e.contains("x: y"), "{e}");
        }
    }

    #[test]
    fn config_numbers() {
        let mut n = [UNSET; cfg::LEN];
        let d = config(&n).unwrap();
        assert_eq!(d, CallConfig::default());
        n[cfg::MAX_ATTEMPTS] = 2;
        n[cfg::IDLE] = 300;
        let c = config(&n).unwrap();
        assert_eq!(c.max_attempts, 2);
        let t = c.timeouts.unwrap();
        assert_eq!(t.idle, Duration::from_millis(300));
        assert_eq!(
            t.first_byte,
            Timeouts::for_profile(Default::default()).first_byte
        );
        n[cfg::MAX_ATTEMPTS] = 0;
        assert!(config(&n).is_err());
        assert!(config(&[]).is_ok());
    }
}
