//! The core's Responses dialect against the mock server: a body written by
//! `ChatRequest::write_body(Dialect::Responses)`, a stream broken mid-answer, the resume head
//! from `responses::write_resume_head`, and the decoder's `resume_after`: the answer arrives
//! whole and exactly once, with one POST.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use steadyllm_core::decode::{Dialect, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::dialect::responses::write_resume_head;
use steadyllm_core::http::{Endpoint, RequestHead};
use steadyllm_core::request::{ChatRequest, Message};
use steadyllm_core::sse::{SseItem, SseParser};
use steadyllm_tests::mock::{DEFAULT_ANSWER, Fault, MockServer, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `req`, reads until the server closes or resets; returns the status and the body
/// (de-chunked, as far as it came).
async fn exchange(server: &MockServer, req: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no end within 5 s"),
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut rest = &raw[split + 4..];
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, rest.to_vec());
    }
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        rest = &rest[eol + 2..];
        let take = size.min(rest.len());
        body.extend_from_slice(&rest[..take]);
        if size == 0 || rest.len() < size + 2 {
            break;
        }
        rest = &rest[size + 2..];
    }
    (status, body)
}

/// Feeds a body to the parser and decoder, collecting the text and the response id.
fn decode(dec: &mut StreamDecoder, body: &[u8], text: &mut String, id: &mut Option<String>) {
    let mut parser = SseParser::<8192>::new();
    let mut input = body;
    while let Some(item) = parser.feed(&mut input).unwrap() {
        if let SseItem::Event(ev) = item {
            dec.decode(ev.data, |i| match i {
                StreamItem::Content { text: t, .. } => text.push_str(&t.to_string()),
                StreamItem::Created { id: i } => {
                    assert!(id.is_none(), "the id comes once");
                    *id = Some(i.to_string());
                }
                _ => {}
            })
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_broken_stream_resumes_exactly_once_with_one_post() {
    let server = MockServer::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    // Two drops (after 6 events, then 5 more), a resume refused once, then the rest.
    server.set_script(Script::from(vec![
        Fault::ResetAfter { events: 6 },
        Fault::ResetAfter { events: 5 },
        Fault::status(503),
        Fault::Ok,
    ]));
    let base = format!("http://{}/v1", server.addr());
    let ep = Endpoint::new(&base, Some("sk-test"))
        .unwrap()
        .with_dialect(Dialect::Responses);
    let messages = [Message::user("Why is the sky blue?")];
    let req = ChatRequest::new("gpt-5-mini", &messages);
    let mut body = vec![0u8; req.body_len(Dialect::Responses).unwrap()];
    req.write_body(Dialect::Responses, &mut body).unwrap();
    let mut head = vec![0u8; 1024];
    let mut h = RequestHead::new(&ep, body.len(), true);
    h.close = true;
    let n = h.write(&mut head).unwrap();
    let mut post = head[..n].to_vec();
    post.extend_from_slice(&body);

    let mut dec = StreamDecoder::new(Dialect::Responses);
    let (mut text, mut id) = (String::new(), None);
    let (status, got) = exchange(&server, &post).await;
    assert_eq!(status, 200);
    decode(&mut dec, &got, &mut text, &mut id);
    let mut resumes = 0;
    while !dec.is_done() {
        let after = dec.sequence_number().expect("an event arrived");
        assert_eq!(dec.finish(), StreamEnd::Truncated);
        dec.resume_after(after);
        h.retry_count += 1;
        let n = write_resume_head(&h, id.as_deref().unwrap(), after, &mut head).unwrap();
        let (status, got) = exchange(&server, &head[..n]).await;
        resumes += 1;
        if status == 503 {
            continue;
        }
        assert_eq!(status, 200);
        decode(&mut dec, &got, &mut text, &mut id);
    }
    assert_eq!(dec.finish(), StreamEnd::Complete);
    assert_eq!(text, DEFAULT_ANSWER, "the whole answer, each piece once");
    assert_eq!(resumes, 3);
    let reqs = server.requests();
    assert_eq!(reqs.iter().filter(|q| q.method == "POST").count(), 1);
    let posted: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(posted["background"], true);
    assert_eq!(posted["input"], "Why is the sky blue?");
    assert_eq!(
        reqs[1].path,
        "/v1/responses/resp_mock0?stream=true&starting_after=5"
    );
    assert_eq!(
        reqs[1]
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str()),
        Some("Bearer sk-test")
    );
}
