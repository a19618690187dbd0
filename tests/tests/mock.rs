//! Wire-level tests of the mock server: a hand-written HTTP/1.1 client over a raw TcpStream, so
//! the tests see exactly the bytes (and TCP events) a real client would.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use steadyllm_tests::mock::{
    DEFAULT_ANSWER, Fault, MockServer, RateLimit, Script, Step, split_deltas,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STREAM_BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":true,"stream_options":{"include_usage":true}}"#;
const PLAIN_BODY: &str =
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Why is the sky blue?"}]}"#;
const ANTHROPIC_STREAM: &str = r#"{"model":"claude-x","max_tokens":1024,"messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":true}"#;

// ------------------------------------------------------------------------------------------
// A tiny raw HTTP/1.1 client
// ------------------------------------------------------------------------------------------

async fn server() -> MockServer {
    MockServer::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind mock")
}

fn request(method: &str, path: &str, extra: &[(&str, &str)], body: &str, close: bool) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: mock\r\n");
    if !body.is_empty() || method == "POST" {
        r.push_str("Content-Type: application/json\r\n");
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (n, v) in extra {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Reset,
    Timeout,
    Error(io::ErrorKind),
}

/// Bytes read with the time (since `t0`) each read returned.
struct Read {
    bytes: Vec<u8>,
    reads: Vec<(Duration, usize)>,
    end: End,
}

async fn read_to_end(s: &mut TcpStream, limit: Duration, t0: Instant) -> Read {
    let mut out = Read {
        bytes: Vec::new(),
        reads: Vec::new(),
        end: End::Timeout,
    };
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => {
                out.end = End::Timeout;
                break;
            }
            Ok(Ok(0)) => {
                out.end = End::Eof;
                break;
            }
            Ok(Ok(n)) => {
                out.bytes.extend_from_slice(&buf[..n]);
                out.reads.push((t0.elapsed(), n));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                out.end = End::Reset;
                break;
            }
            Ok(Err(e)) => {
                out.end = End::Error(e.kind());
                break;
            }
        }
    }
    out
}

/// Sends one request with `Connection: close` and reads until the server closes.
async fn exchange(addr: SocketAddr, req: &[u8], limit: Duration) -> Read {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let t0 = Instant::now();
    s.write_all(req).await.expect("write request");
    read_to_end(&mut s, limit, t0).await
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
    /// Chunked: the terminating chunk arrived. Otherwise: the whole Content-Length arrived.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = std::str::from_utf8(&raw[..split]).expect("ascii head");
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().expect("status code");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let len: Option<usize> = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("content-length"));
        match len {
            Some(l) => (rest[..rest.len().min(l)].to_vec(), rest.len() >= l),
            None => (rest.to_vec(), true),
        }
    };
    Resp {
        status,
        headers,
        body,
        chunked,
        complete,
    }
}

fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_txt = std::str::from_utf8(&b[..eol]).expect("chunk size");
        let size = usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return (out, b.starts_with(b"\r\n"));
        }
        if b.len() < size + 2 {
            out.extend_from_slice(&b[..b.len().min(size)]);
            return (out, false);
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n", "chunk trailer");
        b = &b[size + 2..];
    }
}

#[derive(Debug)]
struct Event {
    event: Option<String>,
    data: String,
    comment: bool,
}

fn events(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut ev = Event {
                event: None,
                data: String::new(),
                comment: false,
            };
            for line in e.lines() {
                if line.starts_with(':') {
                    ev.comment = true;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(d);
                } else if let Some(n) = line.strip_prefix("event: ") {
                    ev.event = Some(n.to_string());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            ev
        })
        .collect()
}

fn data_events(body: &str) -> Vec<Event> {
    events(body).into_iter().filter(|e| !e.comment).collect()
}

/// Concatenated `choices[0].delta.content` of OpenAI chunks; panics on non-JSON data.
fn openai_content(evs: &[Event]) -> String {
    let mut s = String::new();
    for e in evs {
        if e.data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&e.data).expect("chunk JSON");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            s.push_str(c);
        }
    }
    s
}

async fn post_stream(server: &MockServer, body: &str) -> (Resp, Read) {
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/chat/completions", &[], body, true),
        Duration::from_secs(5),
    )
    .await;
    (parse(&r.bytes), r)
}

// ------------------------------------------------------------------------------------------
// Normal answers
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn ok_stream_is_gpt4o_shaped_and_complete() {
    let server = server().await;
    let (resp, read) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(read.end, End::Eof);
    assert_eq!(resp.status, 200);
    assert!(resp.chunked, "streams use chunked transfer-encoding");
    assert!(resp.complete, "terminating chunk");
    assert!(resp.header("content-length").is_none());
    assert_eq!(
        resp.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let body = resp.text();
    let evs = data_events(&body);
    assert_eq!(evs.last().map(|e| e.data.as_str()), Some("[DONE]"));
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(openai_content(&evs), DEFAULT_ANSWER);
    // role chunk, one per delta, finish, usage, [DONE]
    let n = split_deltas(DEFAULT_ANSWER).len();
    assert_eq!(evs.len(), n + 4);
    let first: Value = serde_json::from_str(&evs[0].data).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["choices"][0]["delta"]["content"], "");
    assert_eq!(first["model"], "gpt-4o");
    let finish: Value = serde_json::from_str(&evs[n + 1].data).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage: Value = serde_json::from_str(&evs[n + 2].data).unwrap();
    assert_eq!(usage["choices"], Value::Array(vec![]));
    assert_eq!(usage["usage"]["completion_tokens"], n as u64);
    // Deltas are word-sized.
    assert!(n > 30);
    assert_eq!(split_deltas("a  b\nc"), ["a", "  b", "\nc"]);
}

#[tokio::test]
async fn ok_stream_without_usage_has_no_usage_chunk() {
    let server = server().await;
    server.set_answer("Hello there, world.");
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let (resp, _) = post_stream(&server, body).await;
    let evs = data_events(&resp.text());
    assert_eq!(evs.len(), 3 + 3); // role, 3 deltas, finish, [DONE]
    assert!(!evs.iter().any(|e| e.data.contains("usage")));
    assert_eq!(openai_content(&evs), "Hello there, world.");
}

#[tokio::test]
async fn max_tokens_cuts_with_finish_reason_length() {
    let server = server().await;
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":3}"#;
    let (resp, _) = post_stream(&server, body).await;
    let evs = data_events(&resp.text());
    assert_eq!(openai_content(&evs), "The sky looks");
    let finish: Value = serde_json::from_str(&evs[evs.len() - 2].data).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn ok_non_stream_is_one_chat_completion() {
    let server = server().await;
    let (resp, _) = post_stream(&server, PLAIN_BODY).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.chunked);
    assert!(resp.complete);
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_ANSWER);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn anthropic_stream_and_json() {
    let server = server().await;
    let r = exchange(
        server.addr(),
        &request(
            "POST",
            "/v1/messages",
            &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
            ANTHROPIC_STREAM,
            true,
        ),
        Duration::from_secs(5),
    )
    .await;
    let resp = parse(&r.bytes);
    assert!(resp.chunked && resp.complete);
    let evs = data_events(&resp.text());
    let names: Vec<&str> = evs.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let n = split_deltas(DEFAULT_ANSWER).len();
    assert_eq!(
        names[..3],
        ["message_start", "content_block_start", "ping"],
        "{names:?}"
    );
    assert!(names[3..3 + n].iter().all(|&e| e == "content_block_delta"));
    assert_eq!(
        names[3 + n..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let mut text = String::new();
    for e in &evs {
        let v: Value = serde_json::from_str(&e.data).expect("event JSON");
        assert_eq!(v["type"].as_str(), e.event.as_deref());
        if let Some(t) = v["delta"]["text"].as_str() {
            text.push_str(t);
        }
        if e.event.as_deref() == Some("message_delta") {
            assert_eq!(v["delta"]["stop_reason"], "end_turn");
            assert_eq!(v["usage"]["output_tokens"], n as u64);
        }
    }
    assert_eq!(text, DEFAULT_ANSWER);

    let plain = ANTHROPIC_STREAM.replace(r#","stream":true"#, "");
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/messages", &[], &plain, true),
        Duration::from_secs(5),
    )
    .await;
    let v = parse(&r.bytes).json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], DEFAULT_ANSWER);
    let reqs = server.requests();
    assert_eq!(reqs[0].header("anthropic-version"), Some("2023-06-01"));
}

// ------------------------------------------------------------------------------------------
// Status faults
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn status_faults_carry_retry_headers_and_error_bodies() {
    let server = server().await;
    server.set_script(vec![
        Fault::Status {
            code: 429,
            retry_after: Some("2".into()),
            retry_after_ms: None,
            should_retry: None,
            body: None,
        },
        Fault::Status {
            code: 503,
            retry_after: None,
            retry_after_ms: Some(1500),
            should_retry: None,
            body: None,
        },
        Fault::should_retry(500, false),
        Fault::status(401),
        Fault::Status {
            code: 418,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            body: Some("teapot".into()),
        },
    ]);
    let raw = |r: &Read| String::from_utf8_lossy(&r.bytes).into_owned();

    let r = exchange(
        server.addr(),
        &request("POST", "/v1/chat/completions", &[], STREAM_BODY, true),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        raw(&r).starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{}",
        raw(&r)
    );
    let resp = parse(&r.bytes);
    assert_eq!(resp.header("retry-after"), Some("2"));
    assert_eq!(resp.header("retry-after-ms"), None);
    let e = resp.json();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    for k in ["message", "type", "param", "code"] {
        assert!(e["error"].get(k).is_some(), "error.{k}");
    }
    assert!(
        resp.header("access-control-expose-headers")
            .unwrap()
            .contains("retry-after-ms")
    );

    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after-ms"), Some("1500"));
    assert_eq!(resp.header("retry-after"), None);

    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 500);
    assert_eq!(resp.header("x-should-retry"), Some("false"));
    assert_eq!(resp.json()["error"]["type"], "server_error");

    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"]["code"], "invalid_api_key");

    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "teapot");

    // Anthropic error shape on /messages.
    server.push(Fault::status(529));
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/messages", &[], ANTHROPIC_STREAM, true),
        Duration::from_secs(5),
    )
    .await;
    let resp = parse(&r.bytes);
    assert_eq!(resp.status, 529);
    assert_eq!(resp.json()["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn rate_limit_headers_on_a_normal_answer() {
    let server = server().await;
    let rl = RateLimit {
        remaining_requests: Some(0),
        remaining_tokens: Some(1200),
        reset_requests: Some("1s".into()),
        reset_tokens: Some("6m0s".into()),
        ..RateLimit::default()
    };
    server.set_script(vec![
        Step::new(Fault::RateLimit(rl.clone())),
        Step::new(Fault::status(429)).rate_limit(rl),
    ]);
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(resp.header("x-ratelimit-remaining-tokens"), Some("1200"));
    assert_eq!(resp.header("x-ratelimit-reset-requests"), Some("1s"));
    assert_eq!(resp.header("x-ratelimit-reset-tokens"), Some("6m0s"));
    assert_eq!(resp.header("x-ratelimit-limit-requests"), None);
    assert_eq!(openai_content(&data_events(&resp.text())), DEFAULT_ANSWER);
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("x-ratelimit-reset-tokens"), Some("6m0s"));
}

// ------------------------------------------------------------------------------------------
// Connection-level faults
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn refuse_resets_without_a_response() {
    let server = server().await;
    server.push(Fault::Refuse);
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/chat/completions", &[], STREAM_BODY, false),
        Duration::from_secs(3),
    )
    .await;
    assert!(r.bytes.is_empty(), "no response bytes");
    assert_eq!(r.end, End::Reset);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].step.as_ref().map(Step::name), Some("refuse"));
    // The next request is served normally.
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn stall_before_headers_sends_nothing_in_the_window() {
    let server = server().await;
    server.push(Fault::StallBeforeHeaders { ms: Some(300) });
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/chat/completions", &[], STREAM_BODY, true),
        Duration::from_secs(5),
    )
    .await;
    let first = r.reads.first().expect("some bytes").0;
    assert!(
        first >= Duration::from_millis(250),
        "first byte at {first:?}"
    );
    let resp = parse(&r.bytes);
    assert_eq!(resp.status, 200);
    assert_eq!(openai_content(&data_events(&resp.text())), DEFAULT_ANSWER);

    // Without ms: nothing at all.
    server.push(Fault::StallBeforeHeaders { ms: None });
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/chat/completions", &[], STREAM_BODY, true),
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(r.end, End::Timeout);
    assert!(r.bytes.is_empty());
}

#[tokio::test]
async fn stall_after_pauses_mid_stream_then_continues() {
    let server = server().await;
    server.push(Fault::StallAfter {
        events: 3,
        ms: Some(300),
    });
    let (resp, r) = post_stream(&server, STREAM_BODY).await;
    assert!(resp.complete);
    assert_eq!(openai_content(&data_events(&resp.text())), DEFAULT_ANSWER);
    // Find the gap: the read that completed event 3 came well before the next one.
    let mut seen = 0usize;
    let mut gap = Duration::ZERO;
    let mut prev: Option<Duration> = None;
    let mut acc = Vec::new();
    for (t, n) in &r.reads {
        let before = seen;
        acc.extend_from_slice(&r.bytes[acc.len()..acc.len() + n]);
        seen = String::from_utf8_lossy(&acc).matches("data: ").count();
        if before == 3 && seen > 3 {
            gap = *t - prev.unwrap();
        }
        prev = Some(*t);
    }
    assert!(gap >= Duration::from_millis(250), "gap {gap:?}");
}

#[tokio::test]
async fn reset_after_sends_events_then_rst() {
    let server = server().await;
    server.push(Fault::ResetAfter { events: 3 });
    let (resp, r) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(r.end, End::Reset, "connection reset by peer");
    assert_eq!(resp.status, 200);
    assert!(resp.chunked && !resp.complete, "no terminating chunk");
    let evs = data_events(&resp.text());
    assert_eq!(evs.len(), 3);
    assert_eq!(openai_content(&evs), "The sky");
}

#[tokio::test]
async fn truncate_after_ends_cleanly_without_done() {
    let server = server().await;
    server.push(Fault::TruncateAfter { events: 4 });
    let (resp, r) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(r.end, End::Eof);
    assert!(resp.chunked && resp.complete, "clean chunked end");
    let evs = data_events(&resp.text());
    assert_eq!(evs.len(), 4);
    assert!(evs.iter().all(|e| e.data != "[DONE]"));
    assert_eq!(openai_content(&evs), "The sky looks");
}

#[tokio::test]
async fn malformed_after_sends_broken_json() {
    let server = server().await;
    server.push(Fault::MalformedAfter { events: 2 });
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    let evs = data_events(&resp.text());
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[2].data, "{not json");
    assert!(serde_json::from_str::<Value>(&evs[1].data).is_ok());
    assert!(resp.complete);
}

#[tokio::test]
async fn error_event_after_sends_an_error_object() {
    let server = server().await;
    server.push(Fault::ErrorEventAfter {
        events: 2,
        message: None,
        code: None,
    });
    server.push(Fault::ErrorEventAfter {
        events: 1,
        message: Some("boom".into()),
        code: Some("overloaded_error".into()),
    });
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    let evs = data_events(&resp.text());
    assert_eq!(evs.len(), 3);
    let e: Value = serde_json::from_str(&evs[2].data).unwrap();
    assert_eq!(e["error"]["type"], "server_error");
    assert!(e["error"]["message"].is_string());
    assert!(resp.complete);

    let r = exchange(
        server.addr(),
        &request("POST", "/v1/messages", &[], ANTHROPIC_STREAM, true),
        Duration::from_secs(5),
    )
    .await;
    let evs = data_events(&parse(&r.bytes).text());
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].event.as_deref(), Some("error"));
    let e: Value = serde_json::from_str(&evs[1].data).unwrap();
    assert_eq!(e["error"]["type"], "overloaded_error");
    assert_eq!(e["error"]["message"], "boom");
}

#[tokio::test]
async fn drip_sends_one_byte_per_write() {
    let server = server().await;
    server.set_script(Script {
        steps: vec![Fault::Drip { ms_per_byte: 1 }.into()],
        answer: Some("Hi \u{2014} there".into()),
        ..Script::default()
    });
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let (resp, r) = post_stream(&server, body).await;
    assert!(resp.complete);
    let text = resp.text();
    assert_eq!(openai_content(&data_events(&text)), "Hi \u{2014} there");
    // Each body byte is its own chunk `1\r\nX\r\n`, written separately over time.
    assert!(
        r.reads.len() > text.len() / 2,
        "{} reads for {} bytes",
        r.reads.len(),
        text.len()
    );
    let span = r.reads.last().unwrap().0 - r.reads.first().unwrap().0;
    assert!(
        span >= Duration::from_millis(text.len() as u64 / 2),
        "{span:?}"
    );
}

#[tokio::test]
async fn pacing_and_keepalive_comments() {
    let server = server().await;
    server.set_answer("a b");
    server.push(Step::new(Fault::KeepaliveEvery { ms: 40 }).delay_between_events(100));
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let (resp, r) = post_stream(&server, body).await;
    let text = resp.text();
    assert!(text.starts_with(": keep-alive\n\n"), "{text}");
    let all = events(&text);
    let comments = all.iter().filter(|e| e.comment).count();
    let data = data_events(&text);
    assert_eq!(data.len(), 5); // role, "a", " b", finish, [DONE]
    // one after the head, then (normally two) per 100 ms pause; at least one each
    assert!(comments >= 5, "{comments} comments");
    let span = r.reads.last().unwrap().0;
    assert!(span >= Duration::from_millis(380), "{span:?}");
    assert_eq!(openai_content(&data), "a b");
}

// ------------------------------------------------------------------------------------------
// CORS, control endpoint, recording, script order
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn cors_preflight() {
    let server = server().await;
    let r = exchange(
        server.addr(),
        &request(
            "OPTIONS",
            "/v1/chat/completions",
            &[
                ("Origin", "http://localhost:8000"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type,x-steadyllm-retry-count",
                ),
            ],
            "",
            true,
        ),
        Duration::from_secs(5),
    )
    .await;
    let resp = parse(&r.bytes);
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert!(
        resp.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("authorization,content-type,x-steadyllm-retry-count")
    );
    assert!(server.requests().is_empty(), "preflights are not recorded");
    assert_eq!(server.remaining_steps(), 0);
}

#[tokio::test]
async fn control_endpoint_sets_script_and_lists_requests() {
    let server = server().await;
    let script = r#"{"steps":[{"fault":"status","code":503,"retry_after":"1"},{"fault":"truncate_after","events":2}],"then":{"fault":"status","code":500,"should_retry":false},"answer":"x y z"}"#;
    let r = exchange(
        server.addr(),
        &request("POST", "/__control/script", &[], script, true),
        Duration::from_secs(5),
    )
    .await;
    let resp = parse(&r.bytes);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["steps"], 2);

    let auth = [
        ("Authorization", "Bearer sk-test"),
        ("x-steadyllm-retry-count", "0"),
    ];
    let send = |retry: &'static str| {
        let mut h = auth.to_vec();
        h[1].1 = retry;
        request("POST", "/v1/chat/completions", &h, STREAM_BODY, true)
    };
    let statuses = [
        parse(
            &exchange(server.addr(), &send("0"), Duration::from_secs(5))
                .await
                .bytes,
        ),
        parse(
            &exchange(server.addr(), &send("1"), Duration::from_secs(5))
                .await
                .bytes,
        ),
        parse(
            &exchange(server.addr(), &send("2"), Duration::from_secs(5))
                .await
                .bytes,
        ),
        parse(
            &exchange(server.addr(), &send("3"), Duration::from_secs(5))
                .await
                .bytes,
        ),
    ];
    assert_eq!(statuses[0].status, 503);
    assert_eq!(statuses[1].status, 200);
    assert_eq!(
        openai_content(&data_events(&statuses[1].text())),
        "x",
        "answer set by the script"
    );
    assert_eq!(statuses[2].status, 500);
    assert_eq!(statuses[3].status, 500);

    let r = exchange(
        server.addr(),
        &request("GET", "/__control/requests", &[], "", true),
        Duration::from_secs(5),
    )
    .await;
    let list = parse(&r.bytes).json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["step"]["fault"], "status");
    assert_eq!(list[0]["script_index"], 0);
    assert_eq!(list[1]["step"]["fault"], "truncate_after");
    assert_eq!(list[2]["script_index"], Value::Null);
    assert_eq!(list[0]["path"], "/v1/chat/completions");
    let headers = list[3]["headers"].as_array().unwrap();
    assert!(headers.contains(&serde_json::json!(["x-steadyllm-retry-count", "3"])));
    let sent: Value = serde_json::from_str(list[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["stream"], true);

    // In-process view agrees.
    let reqs = server.requests();
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(reqs[0].body_json().unwrap()["model"], "gpt-4o");
    assert!(reqs.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));

    // push, bad script, reset
    let r = exchange(
        server.addr(),
        &request(
            "POST",
            "/__control/script",
            &[],
            r#"[{"fault":"nope"}]"#,
            true,
        ),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 400);
    let r = exchange(
        server.addr(),
        &request(
            "POST",
            "/__control/push",
            &[],
            r#"{"fault":"status","code":401}"#,
            true,
        ),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 200);
    assert_eq!(server.remaining_steps(), 1);
    let r = exchange(
        server.addr(),
        &request("POST", "/__control/reset", &[], "", true),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 200);
    assert!(server.requests().is_empty());
    assert_eq!(server.remaining_steps(), 0);
    assert_eq!(server.answer(), DEFAULT_ANSWER);

    // With defaults set (as the mock-server binary does for --answer/--delay-ms), a reset
    // returns to them rather than to the built-in ones.
    server.set_defaults(Script {
        steps: vec![Fault::status(503).into()],
        then: Some(Step::new(Fault::status(418))),
        answer: Some("Hello there.".into()),
        ..Script::default()
    });
    server.set_answer("changed");
    server.reset();
    assert_eq!(server.answer(), "Hello there.");
    assert_eq!(
        server.remaining_steps(),
        0,
        "the one-shot steps are not restored"
    );
    let (resp, _) = post_stream(&server, STREAM_BODY).await;
    assert_eq!(
        resp.status, 418,
        "the default step after the script is back"
    );
}

#[tokio::test]
async fn script_applies_in_order_and_repeat_keeps_the_last() {
    let server = server().await;
    server.set_script(Script {
        steps: vec![Fault::status(500).into(), Fault::status(502).into()],
        repeat: true,
        ..Script::default()
    });
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(post_stream(&server, STREAM_BODY).await.0.status);
    }
    assert_eq!(got, [500, 502, 502, 502]);
    let idx: Vec<_> = server.requests().iter().map(|r| r.script_index).collect();
    assert_eq!(idx, [Some(0), Some(1), None, None]);
    // Without repeat, plain ok after the script.
    server.set_script(vec![Fault::status(503)]);
    assert_eq!(post_stream(&server, STREAM_BODY).await.0.status, 503);
    assert_eq!(post_stream(&server, STREAM_BODY).await.0.status, 200);
}

#[tokio::test]
async fn keep_alive_connection_is_reused_and_recorded() {
    let server = server().await;
    server.set_answer("ok");
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    for _ in 0..2 {
        s.write_all(&request(
            "POST",
            "/v1/chat/completions",
            &[],
            PLAIN_BODY,
            false,
        ))
        .await
        .unwrap();
        // Read until the Content-Length body is complete.
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "server closed a keep-alive connection");
            buf.extend_from_slice(&tmp[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") && parse(&buf).complete {
                break;
            }
        }
        assert_eq!(parse(&buf).json()["choices"][0]["message"]["content"], "ok");
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].connection, reqs[1].connection);
}

#[tokio::test]
async fn bad_requests_get_400_404_405() {
    let server = server().await;
    server.set_script(vec![Fault::Ok, Fault::Ok]);
    let (resp, _) = post_stream(&server, "{not json").await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    let (resp, _) = post_stream(&server, r#"{"model":"m"}"#).await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        server.remaining_steps(),
        0,
        "each API request consumes a step"
    );
    let r = exchange(
        server.addr(),
        &request("POST", "/v1/embeddings", &[], "{}", true),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 404);
    let r = exchange(
        server.addr(),
        &request("GET", "/v1/chat/completions", &[], "", true),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 405);
    // Any prefix works.
    let r = exchange(
        server.addr(),
        &request("POST", "/openai/chat/completions", &[], PLAIN_BODY, true),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse(&r.bytes).status, 200);
}

// ------------------------------------------------------------------------------------------
// Script JSON, chaos preset, background server, binary
// ------------------------------------------------------------------------------------------

#[test]
fn script_json_forms() {
    let s = Script::from_json(
        r#"[{"fault":"ok","delay_between_events_ms":5},{"fault":"stall_after","events":3},
            {"fault":"status","code":429,"retry_after":"2"},
            {"fault":"rate_limit","remaining_requests":0,"reset_requests":"1s"},
            {"fault":"keepalive_every","ms":100,"headers":[["x-a","b"]]}]"#,
    )
    .unwrap();
    assert_eq!(s.steps.len(), 5);
    assert_eq!(s.steps[0].delay_between_events_ms, Some(5));
    assert_eq!(
        s.steps[1].fault,
        Fault::StallAfter {
            events: 3,
            ms: None
        }
    );
    assert_eq!(s.steps[4].headers, [("x-a".to_string(), "b".to_string())]);
    assert!(
        matches!(&s.steps[3].fault, Fault::RateLimit(r) if r.reset_requests.as_deref() == Some("1s"))
    );
    // Round trip through the object form.
    let s2 = Script::from_json(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(s, s2);
    assert!(Script::from_json(r#"[{"fault":"reset_after"}]"#).is_err());
    assert!(Script::from_json("{").is_err());
    let chaos = Script::chaos();
    let names: Vec<_> = chaos.steps.iter().map(Step::name).collect();
    assert_eq!(names, ["stall_before_headers", "status", "reset_after"]);
}

#[test]
fn background_server_serves_std_clients() {
    use std::io::{Read as _, Write as _};
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert!(server.base_url().ends_with("/v1"));
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&request(
        "POST",
        "/v1/chat/completions",
        &[],
        STREAM_BODY,
        true,
    ))
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let resp = parse(&buf);
    assert_eq!(openai_content(&data_events(&resp.text())), DEFAULT_ANSWER);
    let addr = server.addr();
    drop(server);
    // Stopped: the port no longer accepts.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn mock_server_binary_prints_address_and_serves() {
    use std::io::{BufRead, Read as _, Write as _};
    let dir = std::env::temp_dir().join(format!("mock-script-{}", std::process::id()));
    std::fs::write(&dir, r#"[{"fault":"status","code":429,"retry_after":"3"}]"#).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mock-server"))
        .args(["--port", "0", "--host", "127.0.0.1", "--script"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("first line")
        .to_string();
    let exchange = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&request(
            "POST",
            "/v1/chat/completions",
            &[],
            PLAIN_BODY,
            true,
        ))
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        parse(&buf)
    };
    let first = exchange();
    let second = exchange();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&dir);
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("3"));
    assert_eq!(second.status, 200);
}

#[tokio::test]
async fn non_stream_requests_map_mid_stream_faults_onto_the_body() {
    let server = server().await;
    server.set_script(vec![
        Fault::ResetAfter { events: 0 },
        Fault::TruncateAfter { events: 1 },
        Fault::MalformedAfter { events: 1 },
        Fault::ErrorEventAfter {
            events: 1,
            message: None,
            code: None,
        },
        Fault::StallAfter {
            events: 1,
            ms: Some(300),
        },
    ]);
    let req = request("POST", "/v1/chat/completions", &[], PLAIN_BODY, true);
    let send = || exchange(server.addr(), &req, Duration::from_secs(5));
    let r = send().await;
    assert_eq!(r.end, End::Reset);
    let resp = parse(&r.bytes);
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());

    let r = send().await;
    let resp = parse(&r.bytes);
    assert!(!resp.complete, "shorter than Content-Length");
    assert!(!resp.body.is_empty());
    assert_ne!(r.end, End::Timeout);

    let resp = parse(&send().await.bytes);
    assert_eq!(resp.text(), "{not json");

    let resp = parse(&send().await.bytes);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["error"]["type"], "server_error");

    let r = send().await;
    let resp = parse(&r.bytes);
    assert!(resp.complete);
    let head_at = r.reads[0].0;
    let body_at = r.reads.last().unwrap().0;
    assert!(
        body_at - head_at >= Duration::from_millis(250),
        "{head_at:?} {body_at:?}"
    );
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        DEFAULT_ANSWER
    );
}

#[tokio::test]
async fn dropping_the_server_closes_stalled_connections() {
    let server = server().await;
    server.push(Fault::StallAfter {
        events: 2,
        ms: None,
    });
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(&request(
        "POST",
        "/v1/chat/completions",
        &[],
        STREAM_BODY,
        true,
    ))
    .await
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    drop(server);
    let r = read_to_end(&mut s, Duration::from_secs(2), Instant::now()).await;
    assert_ne!(r.end, End::Timeout, "connection closed on shutdown");
}

#[tokio::test]
async fn random_faults_come_before_any_content_at_the_given_share() {
    use steadyllm_tests::mock::RandomFaults;
    let server = MockServer::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("start");
    server.set_script(Script {
        random: Some(RandomFaults {
            percent: 50,
            seed: 7,
        }),
        ..Script::default()
    });
    let mut faulted = 0;
    let mut st = 7u64;
    let r = RandomFaults {
        percent: 50,
        seed: 7,
    };
    for _ in 0..200 {
        if let Some(f) = r.pick(&mut st) {
            faulted += 1;
            assert!(
                matches!(
                    f,
                    Fault::StallBeforeHeaders { ms: None }
                        | Fault::ResetAfter { events: 1 }
                        | Fault::TruncateAfter { events: 1 }
                        | Fault::Status { .. }
                ),
                "{f:?}"
            );
        }
    }
    assert!((70..130).contains(&faulted), "{faulted} of 200");
    // The server draws the same sequence: the first faulted request is the first pick.
    let mut st = 7u64;
    let first = (0..)
        .find_map(|i| r.pick(&mut st).map(|f| (i, f)))
        .expect("a fault");
    for _ in 0..first.0 {
        let (resp, _) = post_stream(&server, STREAM_BODY).await;
        assert!(resp.complete);
    }
    let steps: Vec<_> = server.requests().iter().map(|q| q.step.clone()).collect();
    assert!(
        steps
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.fault == Fault::Ok))
    );
    let zero = RandomFaults {
        percent: 0,
        seed: 1,
    };
    assert!((0..100).all(|_| zero.pick(&mut st).is_none()));
    let all = RandomFaults {
        percent: 100,
        seed: 1,
    };
    assert!((0..100).all(|_| all.pick(&mut st).is_some()));
}

// ------------------------------------------------------------------------------------------
// OpenAI's Responses API: background streams and their resume
// ------------------------------------------------------------------------------------------

const RESPONSES_STREAM: &str = r#"{"model":"gpt-5-mini","input":"Why is the sky blue?","stream":true,"background":true,"store":true}"#;

async fn send(server: &MockServer, method: &str, path: &str, body: &str) -> (Resp, Read) {
    let r = exchange(
        server.addr(),
        &request(method, path, &[], body, true),
        Duration::from_secs(5),
    )
    .await;
    (parse(&r.bytes), r)
}

/// The events as JSON, each checked: its `event:` line names its `type`.
fn responses_events(resp: &Resp) -> Vec<Value> {
    data_events(&resp.text())
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).expect("event JSON");
            assert_eq!(e.event.as_deref(), v["type"].as_str(), "{}", e.data);
            v
        })
        .collect()
}

fn sequence(evs: &[Value]) -> Vec<u64> {
    evs.iter()
        .map(|v| v["sequence_number"].as_u64().expect("sequence_number"))
        .collect()
}

fn output_text(evs: &[Value]) -> String {
    evs.iter()
        .filter(|v| v["type"] == "response.output_text.delta")
        .map(|v| v["delta"].as_str().expect("delta"))
        .collect()
}

#[tokio::test]
async fn responses_stream_is_numbered_and_complete() {
    let server = server().await;
    let (resp, _) = send(&server, "POST", "/v1/responses", RESPONSES_STREAM).await;
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    let evs = responses_events(&resp);
    let n = evs.len() as u64;
    assert_eq!(sequence(&evs), (0..n).collect::<Vec<_>>());
    assert_eq!(evs[0]["type"], "response.created");
    assert_eq!(evs[0]["response"]["id"], "resp_mock0");
    assert_eq!(evs[0]["response"]["status"], "queued");
    assert_eq!(output_text(&evs), DEFAULT_ANSWER);
    let last = &evs[evs.len() - 1];
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        DEFAULT_ANSWER
    );
    assert_eq!(
        last["response"]["usage"]["output_tokens"].as_u64(),
        Some(split_deltas(DEFAULT_ANSWER).len() as u64)
    );
    // Cut by `max_output_tokens`: incomplete.
    let body = r#"{"model":"m","input":"hi","stream":true,"max_output_tokens":3}"#;
    let (resp, _) = send(&server, "POST", "/v1/responses", body).await;
    let evs = responses_events(&resp);
    let last = &evs[evs.len() - 1];
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(output_text(&evs), "The sky looks");
    // Not streamed: one response object.
    let (resp, _) = send(
        &server,
        "POST",
        "/v1/responses",
        r#"{"model":"m","input":"hi"}"#,
    )
    .await;
    let v = resp.json();
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert_eq!(v["output"][0]["content"][0]["text"], DEFAULT_ANSWER);
}

#[tokio::test]
async fn responses_resume_replays_after_n_and_can_be_refused_once() {
    let server = server().await;
    server.set_script(Script::from(vec![
        Fault::ResetAfter { events: 7 },
        Fault::status(503),
        Fault::StallAfter {
            events: 2,
            ms: Some(50),
        },
    ]));
    let (first, r) = send(&server, "POST", "/v1/responses", RESPONSES_STREAM).await;
    assert_eq!(r.end, End::Reset);
    let got = responses_events(&first);
    assert_eq!(sequence(&got), (0..7).collect::<Vec<_>>());
    let id = got[0]["response"]["id"].as_str().expect("id").to_string();
    let resume = format!("/v1/responses/{id}?stream=true&starting_after=6");
    // Refused once.
    let (refused, _) = send(&server, "GET", &resume, "").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["type"], "server_error");
    // Then the events after 6, to the end (through a short stall).
    let (rest, _) = send(&server, "GET", &resume, "").await;
    assert_eq!(rest.status, 200);
    assert!(rest.complete);
    let rest = responses_events(&rest);
    let mut all = got.clone();
    all.extend(rest.iter().cloned());
    let n = all.len() as u64;
    assert_eq!(
        sequence(&all),
        (0..n).collect::<Vec<_>>(),
        "each event once"
    );
    assert_eq!(output_text(&all), DEFAULT_ANSWER);
    assert_eq!(all[all.len() - 1]["type"], "response.completed");
    // Without `starting_after`: the whole stream again; an unknown id: 404.
    let (again, _) = send(
        &server,
        "GET",
        &format!("/v1/responses/{id}?stream=true"),
        "",
    )
    .await;
    assert_eq!(
        sequence(&responses_events(&again)),
        (0..n).collect::<Vec<_>>()
    );
    let (unknown, _) = send(&server, "GET", "/v1/responses/resp_nope?stream=true", "").await;
    assert_eq!(unknown.status, 404);
    // One POST; every request recorded.
    let reqs = server.requests();
    assert_eq!(reqs.iter().filter(|q| q.method == "POST").count(), 1);
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[1].path, resume);
}

#[tokio::test]
async fn response_failed_ends_the_stream_numbered_after_the_last_event() {
    let server = server().await;
    server.set_script(Script::from(vec![
        Fault::ResponseFailed { events: 6 },
        Fault::Ok,
        Fault::ResponseFailed { events: 2 },
    ]));
    let (resp, _) = send(&server, "POST", "/v1/responses", RESPONSES_STREAM).await;
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the body ends cleanly");
    let evs = responses_events(&resp);
    assert_eq!(sequence(&evs), (0..7).collect::<Vec<_>>());
    let last = &evs[6];
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["id"], "resp_mock0");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    // On a resume: after the events it replays (11 and 12), numbered 13.
    send(&server, "POST", "/v1/responses", RESPONSES_STREAM).await;
    let (rest, _) = send(
        &server,
        "GET",
        "/v1/responses/resp_mock1?stream=true&starting_after=10",
        "",
    )
    .await;
    let evs = responses_events(&rest);
    assert_eq!(sequence(&evs), [11, 12, 13]);
    assert_eq!(evs[2]["type"], "response.failed");
    assert_eq!(evs[2]["response"]["id"], "resp_mock1");
}

#[tokio::test]
async fn responses_without_background_are_not_kept() {
    let server = server().await;
    let body = r#"{"model":"m","input":[{"role":"user","content":"hi"}],"stream":true}"#;
    let (resp, _) = send(&server, "POST", "/v1/responses", body).await;
    let evs = responses_events(&resp);
    assert_eq!(evs[0]["response"]["status"], "in_progress");
    let (r, _) = send(
        &server,
        "GET",
        "/v1/responses/resp_mock0?stream=true&starting_after=1",
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let (r, _) = send(&server, "POST", "/v1/responses", r#"{"model":"m"}"#).await;
    assert_eq!(r.status, 400);
    let bad = r#"{"model":"m","input":"hi","stream":true,"background":true,"store":false}"#;
    let (r, _) = send(&server, "POST", "/v1/responses", bad).await;
    assert_eq!(r.status, 400);
}
