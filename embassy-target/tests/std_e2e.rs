//! End to end over std sockets: the real client (engine, HTTP/1.1 response reader, SSE parser,
//! decoder) against the fault-injecting mock server on 127.0.0.1. Every fault gets an asserted
//! outcome.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::{
    CallConfig, CallError, CallEvent, Failure, Jitter, Phase, StreamFault, Summary, Timeouts,
};
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::time::Duration;
use steadyllm_embassy::{Buffers, ChatError, Client, Event, SharedState};
use steadyllm_tests::mock::{Fault, MockServer, RateLimit, Script, Step};

fn config() -> CallConfig {
    CallConfig {
        timeouts: Some(Timeouts {
            connect: Duration::from_millis(1000),
            first_byte: Duration::from_millis(600),
            first_token: Duration::from_millis(1500),
            idle: Duration::from_millis(600),
            total: Duration::from_secs(10),
        }),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(200),
        jitter: Jitter::Full,
        ..CallConfig::default()
    }
}

fn server() -> MockServer {
    MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock server")
}

/// A base URL where nothing listens (connection refused).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

#[derive(Debug)]
struct Run {
    result: Result<Summary, ChatError>,
    text: String,
    events: Vec<CallEvent>,
    server_errors: Vec<(u16, String)>,
    elapsed: StdDuration,
}

fn chat_with(urls: &[String], config: CallConfig, shared: &SharedState) -> Run {
    let stack = HostStack::new();
    let endpoints: Vec<Endpoint<'_>> = urls
        .iter()
        .map(|u| Endpoint::new(u, Some("sk-test")).expect("endpoint"))
        .collect();
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, shared, config, 7);
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let (mut text, mut events, mut server_errors) = (String::new(), Vec::new(), Vec::new());
    let start = StdInstant::now();
    // Boxed: with TLS compiled in, a call's future is ~25 KB; eight at once overflow a test
    // thread's stack in debug builds.
    let result = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |e| match e {
        Event::Item(StreamItem::Content { text: t, .. }) => text.push_str(&t.to_string()),
        Event::Item(_) => {}
        Event::Engine(CallEvent::DiscardDelivered { .. }) => {
            events.push(CallEvent::DiscardDelivered {
                bytes: text.len() as u64,
            });
            text.clear();
        }
        Event::Engine(ev) => events.push(ev),
        Event::ServerError { status, error } => {
            server_errors.push((status, error.message.to_string()))
        }
    })));
    Run {
        result,
        text,
        events,
        server_errors,
        elapsed: start.elapsed(),
    }
}

fn chat(urls: &[String], config: CallConfig) -> Run {
    let shared = SharedState::new(urls.len(), &config);
    chat_with(urls, config, &shared)
}

fn one(script: impl Into<Script>) -> (MockServer, Run) {
    let s = server();
    s.set_script(script);
    let run = chat(&[s.base_url()], config());
    (s, run)
}

fn attempts(r: &Run) -> u32 {
    r.events
        .iter()
        .filter(|e| matches!(e, CallEvent::AttemptStarted { .. }))
        .count() as u32
}

#[test]
fn streams_the_answer_and_sends_a_valid_request() {
    let (s, r) = one(vec![Fault::Ok]);
    assert_eq!(r.result.map(|s| s.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, s.answer());
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.path, "/v1/chat/completions");
    assert_eq!(q.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(q.header("accept"), Some("text/event-stream"));
    assert_eq!(q.header("content-type"), Some("application/json"));
    assert_eq!(q.header("x-steadyllm-retry-count"), Some("0"));
    assert_eq!(
        q.header("host"),
        Some(format!("127.0.0.1:{}", s.addr().port()).as_str())
    );
    let json = q.body_json().expect("valid JSON body");
    assert_eq!(json["model"], "gpt-4o-mini");
    assert_eq!(json["messages"][0]["role"], "user");
    assert_eq!(json["stream"], true);
    assert_eq!(json["stream_options"]["include_usage"], true);
}

#[test]
fn unauthorized_is_not_retried_and_reports_the_error_body() {
    let (s, r) = one(vec![Fault::status(401)]);
    assert!(
        matches!(
            r.result,
            Err(ChatError::Call(CallError::NotRetryable {
                last: Failure::Status(401)
            }))
        ),
        "{r:?}"
    );
    assert_eq!(s.requests().len(), 1);
    assert_eq!(r.server_errors.len(), 1);
    assert_eq!(r.server_errors[0].0, 401);
}

#[test]
fn retry_after_2_is_honored() {
    let (s, r) = one(vec![Fault::retry_after(429, "2"), Fault::Ok]);
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.text, s.answer());
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at_ms - reqs[0].at_ms;
    assert!(gap >= 2000, "retried after {gap} ms");
    assert!(
        r.elapsed < StdDuration::from_secs(10),
        "before the deadline"
    );
    assert_eq!(reqs[1].header("x-steadyllm-retry-count"), Some("1"));
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, CallEvent::Waiting { .. }))
    );
}

#[test]
fn retry_after_ms_and_503_recover() {
    let (s, r) = one(vec![
        Fault::retry_after_ms(503, 300),
        Fault::status(502),
        Fault::Ok,
    ]);
    assert_eq!(r.result.map(|x| x.attempts), Ok(3), "{r:?}");
    assert_eq!(r.text, s.answer());
}

#[test]
fn should_retry_false_is_final() {
    let (s, r) = one(vec![Fault::should_retry(500, false), Fault::Ok]);
    assert!(
        matches!(
            r.result,
            Err(ChatError::Call(CallError::NotRetryable { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn reset_before_any_answer_is_retried() {
    let (s, r) = one(vec![Fault::Refuse, Fault::Ok]);
    assert_eq!(r.result.map(|x| x.attempts), Ok(2), "{r:?}");
    assert_eq!(r.text, s.answer());
}

#[test]
fn stall_before_headers_times_out_and_retries() {
    let (s, r) = one(vec![Fault::StallBeforeHeaders { ms: None }, Fault::Ok]);
    assert_eq!(r.result.map(|x| x.attempts), Ok(2), "{r:?}");
    assert_eq!(r.text, s.answer());
    assert!(r.events.iter().any(|e| matches!(
        e,
        CallEvent::AttemptFailed {
            failure: Failure::Timeout(Phase::FirstByte),
            ..
        }
    )));
    assert!(r.elapsed < StdDuration::from_secs(3));
}

#[test]
fn stall_before_first_token_is_retried() {
    // Only the role chunk, then silence: no content was shown, so retrying is safe.
    let (s, r) = one(vec![
        Fault::StallAfter {
            events: 1,
            ms: None,
        },
        Fault::Ok,
    ]);
    assert_eq!(r.result.map(|x| x.attempts), Ok(2), "{r:?}");
    assert_eq!(r.text, s.answer());
}

#[test]
fn stall_mid_stream_fails_in_bounded_time_with_the_partial_text() {
    let (s, r) = one(vec![
        Fault::StallAfter {
            events: 4,
            ms: None,
        },
        Fault::Ok,
    ]);
    match r.result {
        Err(ChatError::Call(CallError::PartialOutput {
            delivered_bytes,
            last,
        })) => {
            assert_eq!(last, Failure::Timeout(Phase::Idle));
            assert_eq!(delivered_bytes, r.text.len() as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !r.text.is_empty() && s.answer().starts_with(&r.text),
        "partial text intact: {:?}",
        r.text
    );
    assert!(r.elapsed < StdDuration::from_secs(3));
    assert_eq!(s.requests().len(), 1, "not retried silently");
}

#[test]
fn a_stall_cut_by_the_total_deadline_is_the_deadline() {
    // Idle timeout longer than the whole call: the read is cut by the total deadline.
    let mut cfg = config();
    cfg.timeouts = cfg.timeouts.map(|t| Timeouts {
        idle: Duration::from_secs(5),
        total: Duration::from_millis(800),
        ..t
    });
    let s = server();
    s.set_script(vec![Fault::StallAfter {
        events: 4,
        ms: None,
    }]);
    let r = chat(&[s.base_url()], cfg);
    match r.result {
        Err(ChatError::Call(CallError::DeadlineExceeded {
            attempts: 1,
            last: Some(Failure::Timeout(_)),
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(!r.text.is_empty() && s.answer().starts_with(&r.text));
    assert!(r.elapsed < StdDuration::from_secs(3));
}

#[test]
fn reset_truncate_malformed_and_error_event_keep_the_partial_text() {
    for (fault, want) in [
        (
            Fault::ResetAfter { events: 4 },
            Failure::Stream(StreamFault::Network),
        ),
        (
            Fault::TruncateAfter { events: 4 },
            Failure::Stream(StreamFault::Truncated),
        ),
        (
            Fault::MalformedAfter { events: 4 },
            Failure::Stream(StreamFault::Malformed),
        ),
        (
            Fault::ErrorEventAfter {
                events: 4,
                message: None,
                code: None,
            },
            Failure::Stream(StreamFault::ServerError),
        ),
    ] {
        let (s, r) = one(vec![fault.clone(), Fault::Ok]);
        match r.result {
            Err(ChatError::Call(CallError::PartialOutput { last, .. })) => {
                assert_eq!(last, want, "{fault:?}")
            }
            ref other => panic!("{fault:?}: {other:?}"),
        }
        assert!(
            !r.text.is_empty() && s.answer().starts_with(&r.text),
            "{fault:?}: {:?}",
            r.text
        );
    }
}

#[test]
fn restart_mode_discards_and_completes() {
    let s = server();
    s.set_script(vec![Fault::ResetAfter { events: 4 }, Fault::Ok]);
    let cfg = CallConfig {
        restart_on_partial: true,
        ..config()
    };
    let r = chat(&[s.base_url()], cfg);
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.text, s.answer(), "the discarded prefix is not duplicated");
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, CallEvent::DiscardDelivered { bytes } if *bytes > 0))
    );
}

#[test]
fn slow_drip_completes() {
    let s = server();
    s.set_answer("Short answer.");
    s.set_script(vec![Fault::Drip { ms_per_byte: 1 }]);
    let r = chat(&[s.base_url()], config());
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.text, "Short answer.");
}

#[test]
fn dead_primary_fails_over_and_cools_down() {
    let s = server();
    let urls = [dead_url(), s.base_url()];
    let cfg = config();
    let shared = SharedState::new(2, &cfg);
    for _ in 0..cfg.breaker_threshold {
        let r = chat_with(&urls, cfg, &shared);
        assert_eq!(r.result.map(|x| x.endpoint), Ok(1), "{r:?}");
        assert_eq!(r.text, s.answer());
    }
    let state = shared.snapshot();
    let now = steadyllm_embassy::steadyllm_core::time::Instant::from_millis(
        embassy_time::Instant::now().as_millis(),
    );
    assert!(
        state.endpoint(0).is_some_and(|e| e.is_cooling_down(now)),
        "primary cooling down"
    );
    // Now calls go straight to the fallback.
    let r = chat_with(&urls, cfg, &shared);
    assert_eq!(attempts(&r), 1);
    assert_eq!(r.result.map(|x| x.endpoint), Ok(1));
}

#[test]
fn rate_limit_headers_pace_the_next_call() {
    let s = server();
    s.set_script(vec![
        Step::new(Fault::Ok).rate_limit(RateLimit {
            remaining_requests: Some(0),
            reset_requests: Some("1s".into()),
            ..RateLimit::default()
        }),
        Step::new(Fault::Ok),
    ]);
    let cfg = config();
    let shared = SharedState::new(1, &cfg);
    let first = chat_with(&[s.base_url()], cfg, &shared);
    assert!(first.result.is_ok(), "{first:?}");
    let second = chat_with(&[s.base_url()], cfg, &shared);
    assert!(second.result.is_ok(), "{second:?}");
    assert!(
        second.elapsed >= StdDuration::from_millis(900),
        "waited for the reset: {:?}",
        second.elapsed
    );
    let reqs = s.requests();
    assert!(reqs[1].at_ms - reqs[0].at_ms >= 1000);
}

#[test]
fn kept_alive_connection_is_reused() {
    let s = server();
    let stack = HostStack::new();
    let url = s.base_url();
    let endpoints = [Endpoint::new(&url, None).expect("endpoint")];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    for _ in 0..3 {
        let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |_| {})));
        assert!(r.is_ok(), "{r:?}");
    }
    let conns: Vec<u64> = s.requests().iter().map(|q| q.connection).collect();
    assert_eq!(conns, [conns[0]; 3], "one connection for three calls");
}

#[test]
fn eight_concurrent_streams_share_state_with_one_endpoint_failing() {
    let good = server();
    let urls = [dead_url(), good.base_url()];
    let cfg = config();
    let shared = SharedState::new(2, &cfg);
    let stack = HostStack::new();
    let endpoints: Vec<Endpoint<'_>> = urls
        .iter()
        .map(|u| Endpoint::new(u, None).expect("endpoint"))
        .collect();
    async fn one_call(
        stack: &HostStack,
        endpoints: &[Endpoint<'_>],
        shared: &SharedState,
        cfg: CallConfig,
        seed: u64,
    ) -> (Result<Summary, ChatError>, String) {
        let mut client: Client<'_, _, _> = Client::new(stack, stack, endpoints, shared, cfg, seed);
        let messages = [Message::user("hi")];
        let request = ChatRequest::new("m", &messages);
        let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
        let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
        let mut text = String::new();
        let r = Box::pin(client.chat(&request, &mut bufs, |e| {
            if let Event::Item(StreamItem::Content { text: t, .. }) = e {
                text.push_str(&t.to_string());
            }
        }))
        .await;
        (r, text)
    }
    let futures: [_; 8] =
        core::array::from_fn(|i| one_call(&stack, &endpoints, &shared, cfg, i as u64));
    let results = async_io::block_on(embassy_futures::join::join_array(futures));
    for (r, text) in results {
        assert_eq!(r.map(|x| x.endpoint), Ok(1));
        assert_eq!(text, good.answer());
    }
    let reqs = good.requests();
    assert_eq!(reqs.len(), 8);
    // the streams really overlapped: some request arrived before another finished streaming
    let mut starts: Vec<u64> = reqs.iter().map(|q| q.at_ms).collect();
    starts.sort_unstable();
    assert!(starts[7] - starts[0] < 2_000, "{starts:?}");
}

#[test]
fn non_streaming_answers_and_collecting_into_a_buffer() {
    let s = server();
    let stack = HostStack::new();
    let url = s.base_url();
    let endpoints = [Endpoint::new(&url, None).expect("endpoint")];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::user("hi")];
    let mut request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 8192]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let mut out = [0u8; 4096];
    // streamed, collected
    let c = async_io::block_on(Box::pin(client.chat_collect(&request, &mut bufs, &mut out)))
        .expect("answer");
    assert_eq!((c.text, c.truncated), (s.answer().as_str(), false));
    // one JSON body (stream: false), collected
    request.stream = false;
    let mut out = [0u8; 4096];
    let c = async_io::block_on(Box::pin(client.chat_collect(&request, &mut bufs, &mut out)))
        .expect("answer");
    assert_eq!(c.text, s.answer());
    let last = s.requests().pop().expect("request");
    assert_eq!(last.body_json().expect("json")["stream"], false);
    // a buffer too small: truncated at a character boundary, flagged
    request.stream = true;
    let mut small = [0u8; 10];
    let c = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut small),
    ))
    .expect("answer");
    assert!(c.truncated);
    assert!(s.answer().starts_with(c.text) && !c.text.is_empty());
}

#[test]
fn pulling_with_next_await() {
    use steadyllm_embassy::{ChatStream, Delta, DeltaQueue};
    let s = server();
    s.set_script(vec![
        Fault::retry_after_ms(503, 50),
        Fault::Ok,
        Fault::ResetAfter { events: 4 },
    ]);
    let stack = HostStack::new();
    let url = s.base_url();
    let endpoints = [Endpoint::new(&url, None).expect("endpoint")];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    for round in 0..2 {
        let queue = DeltaQueue::<8192>::new();
        let (text, engine, error, summary) = async_io::block_on(Box::pin(async {
            let call = core::pin::pin!(client.chat(&request, &mut bufs, |e| queue.push(e)));
            let mut stream = ChatStream::new(call, &queue);
            let (mut text, mut engine, mut error) = (String::new(), 0, None);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Delta::Content { text: t, .. }) => text.push_str(t),
                    Ok(Delta::Engine(_)) => engine += 1,
                    Ok(_) => {}
                    Err(e) => error = Some(e),
                }
            }
            (text, engine, error, stream.summary())
        }));
        if round == 0 {
            // a 503, a retry, then the whole answer, pulled item by item
            assert_eq!(text, s.answer());
            assert!(
                engine >= 3,
                "attempt, failure, wait, attempt events: {engine}"
            );
            assert_eq!(error, None);
            assert_eq!(summary.map(|x| x.attempts), Some(2));
        } else {
            // a reset mid-answer: the items, then the error once
            assert!(
                !text.is_empty() && s.answer().starts_with(&text),
                "{text:?}"
            );
            assert!(
                matches!(
                    error,
                    Some(ChatError::Call(CallError::PartialOutput { .. }))
                ),
                "{error:?}"
            );
            assert_eq!(summary, None);
        }
    }
}

#[test]
fn anthropic_dialect_streamed_and_whole() {
    use steadyllm_embassy::steadyllm_core::decode::Dialect;
    let s = server();
    let stack = HostStack::new();
    let url = s.base_url();
    let endpoints = [Endpoint::new(&url, Some("sk-ant"))
        .expect("endpoint")
        .with_dialect(Dialect::Anthropic)];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::system("Be brief."), Message::user("hi")];
    let mut request = ChatRequest::new("claude-sonnet-4", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 8192]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    for stream in [true, false] {
        request.stream = stream;
        let mut out = [0u8; 4096];
        let c = async_io::block_on(Box::pin(client.chat_collect(&request, &mut bufs, &mut out)))
            .unwrap_or_else(|e| panic!("stream={stream}: {e}"));
        assert_eq!(c.text, s.answer(), "stream={stream}");
        let q = s.requests().pop().expect("request");
        assert_eq!(q.path, "/v1/messages");
        assert_eq!(q.header("x-api-key"), Some("sk-ant"));
        assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
        let json = q.body_json().expect("json");
        assert_eq!(json["system"][0]["text"], "Be brief.");
        assert_eq!(json["stream"], stream);
    }
}

#[test]
fn the_only_endpoint_keeps_serving_while_its_breaker_is_open() {
    // Its breaker opens after `breaker_threshold` failures; as the only endpoint it still
    // takes the next call (one probe at a time) instead of refusing it for the cooldown.
    let s = server();
    let cfg = CallConfig {
        max_attempts: 1,
        ..config()
    };
    let shared = SharedState::new(1, &cfg);
    s.set_script(Script {
        steps: vec![Step::new(Fault::status(503)); cfg.breaker_threshold as usize],
        ..Script::default()
    });
    for _ in 0..cfg.breaker_threshold {
        let r = chat_with(&[s.base_url()], cfg, &shared);
        assert!(r.result.is_err(), "{r:?}");
    }
    let now = steadyllm_embassy::steadyllm_core::time::Instant::from_millis(
        embassy_time::Instant::now().as_millis(),
    );
    assert!(
        shared
            .snapshot()
            .endpoint(0)
            .is_some_and(|e| e.is_cooling_down(now)),
        "breaker open"
    );
    let r = chat_with(&[s.base_url()], cfg, &shared);
    assert_eq!(r.result.map(|x| x.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, s.answer());
    assert_eq!(s.requests().len(), cfg.breaker_threshold as usize + 1);
}
