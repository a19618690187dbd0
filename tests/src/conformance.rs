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
//! - `error`: one `error` line for a non-2xx response body.
//!
//! Keys are printed in the documented order. Problems that are not part of the stream's
//! content (an event larger than the parser, a malformed event) go to stderr, and the run ends
//! with a non-zero status.

use std::fmt::Write as _;

use steadyllm_core::decode::{ApiError, Dialect, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::json::JsonStr;
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
