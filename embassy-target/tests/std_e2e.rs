//! End to end over std sockets: the real client against the fault-injecting mock server.

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, ChatError, Client, Event};
use steadyllm_tests::mock::{Fault, MockServer};

fn run<F: std::future::Future>(f: F) -> F::Output {
    async_io::block_on(f)
}

#[test]
fn streams_the_answer_and_sends_a_valid_request() {
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    let url = server.base_url();
    let stack = HostStack::new();
    let endpoint = Endpoint::new(&url, Some("sk-test-secret")).expect("endpoint");
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, endpoint);
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers {
        body: &mut body,
        head: &mut head,
        response: &mut response,
    };
    let mut text = String::new();
    let outcome = run(client.chat(&request, &mut bufs, |e| {
        if let Event::Item(StreamItem::Content { text: t, .. }) = e {
            text.push_str(&t.to_string());
        }
    }))
    .expect("answer");
    assert_eq!(text, server.answer());
    assert_eq!(outcome.delivered_bytes, text.len());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test-secret"));
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(r.header("x-steadyllm-retry-count"), Some("0"));
    assert_eq!(
        r.header("host"),
        Some(url.trim_start_matches("http://").trim_end_matches("/v1"))
    );
    let json = r.body_json().expect("valid JSON body");
    assert_eq!(json["model"], "gpt-4o-mini");
    assert_eq!(json["messages"][0]["content"], "Why is the sky blue?");
    assert_eq!(json["stream"], true);
}

#[test]
fn non_2xx_reports_status_and_error_body() {
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    server.set_script(vec![Fault::status(401)]);
    let url = server.base_url();
    let stack = HostStack::new();
    let mut client: Client<'_, _, _> =
        Client::new(&stack, &stack, Endpoint::new(&url, None).expect("endpoint"));
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 1024], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers {
        body: &mut body,
        head: &mut head,
        response: &mut response,
    };
    let mut server_error = None;
    let r = run(client.chat(&request, &mut bufs, |e| {
        if let Event::ServerError { status, error } = e {
            server_error = Some((status, error.message.to_string()));
        }
    }));
    assert_eq!(r, Err(ChatError::Status(401)));
    let (status, message) = server_error.expect("error body parsed");
    assert_eq!(status, 401);
    assert!(!message.is_empty());
}
