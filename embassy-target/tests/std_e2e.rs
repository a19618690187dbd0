//! End to end over std sockets: the real client (engine, HTTP/1.1 response reader, SSE parser,
//! decoder) against the fault-injecting mock server on 127.0.0.1. Every fault gets an asserted
//! outcome.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::{
    CallConfig, CallError, CallEvent, Failure, Jitter, Phase, StreamFault, Summary, Timeouts,
};
use steadyllm_embassy::steadyllm_core::decode::{Dialect, StreamItem};
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::time::Duration;
use steadyllm_embassy::steadyllm_core::tools::ToolCallAssembler;
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
            total_per_kib: Duration::from_millis(0),
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
    reasoning: String,
    events: Vec<CallEvent>,
    server_errors: Vec<(u16, String)>,
    /// `Event::Redirected`: status and location.
    redirects: Vec<(u16, String)>,
    /// Whole tool calls (`id name arguments`), joined by the core's assembler from the
    /// fragments the callback got, as `chat --json` does.
    tool_calls: Vec<String>,
    elapsed: StdDuration,
}

/// The dialect of the endpoints, and whether the request asks for a stream.
#[derive(Clone, Copy, Debug)]
struct Form {
    dialect: Dialect,
    stream: bool,
}

const OPENAI_STREAM: Form = Form {
    dialect: Dialect::OpenAi,
    stream: true,
};

fn chat_with(urls: &[String], config: CallConfig, shared: &SharedState) -> Run {
    chat_in(urls, config, shared, OPENAI_STREAM)
}

fn chat_in(urls: &[String], config: CallConfig, shared: &SharedState, form: Form) -> Run {
    let stack = HostStack::new();
    let endpoints: Vec<Endpoint<'_>> = urls
        .iter()
        .map(|u| {
            Endpoint::new(u, Some("sk-test"))
                .expect("endpoint")
                .with_dialect(form.dialect)
        })
        .collect();
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, shared, config, 7);
    let messages = [Message::user("Why is the sky blue?")];
    let mut request = ChatRequest::new("gpt-4o-mini", &messages);
    request.stream = form.stream;
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let (mut text, mut events, mut server_errors) = (String::new(), Vec::new(), Vec::new());
    let mut reasoning = String::new();
    let mut redirects = Vec::new();
    let mut assembler = ToolCallAssembler::new(vec![0u8; 1024]);
    let mut tool_calls = Vec::new();
    let start = StdInstant::now();
    // Boxed: with TLS compiled in, a call's future is ~25 KB; eight at once overflow a test
    // thread's stack in debug builds.
    let result = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |e| match e {
        Event::Item(item) => {
            assembler.handle_item(&item).expect("tool calls fit");
            while let Some(c) = assembler.poll_finished() {
                tool_calls.push(format!("{} {} {}", c.id, c.name, c.arguments));
            }
            match item {
                StreamItem::Content { text: t, .. } => text.push_str(&t.to_string()),
                StreamItem::Reasoning { text: t, .. } => reasoning.push_str(&t.to_string()),
                _ => {}
            }
        }
        Event::Engine(CallEvent::DiscardDelivered { .. }) => {
            events.push(CallEvent::DiscardDelivered {
                bytes: text.len() as u64,
            });
            text.clear();
            assembler.clear();
            tool_calls.clear();
        }
        Event::Engine(ev) => events.push(ev),
        Event::ServerError { status, error } => {
            server_errors.push((status, error.message.to_string()))
        }
        Event::Redirected { status, location } => redirects.push((status, location.to_string())),
        _ => {}
    })));
    if result.is_ok() {
        assembler.finish_all();
        while let Some(c) = assembler.poll_finished() {
            tool_calls.push(format!("{} {} {}", c.id, c.name, c.arguments));
        }
    }
    Run {
        result,
        text,
        reasoning,
        events,
        server_errors,
        redirects,
        tool_calls,
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
fn a_wait_cut_by_the_total_deadline_fails_in_the_phase_it_waited_in() {
    // Every per-phase timeout is longer than the whole call, so the total deadline cuts the
    // wait: the failure names what the attempt waited for (as the browser adapter does), not
    // "stalled" for every wait.
    let mut cfg = config();
    cfg.timeouts = cfg.timeouts.map(|t| Timeouts {
        first_byte: Duration::from_secs(5),
        first_token: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_millis(800),
        ..t
    });
    for (fault, want) in [
        (Fault::StallBeforeHeaders { ms: None }, Phase::FirstByte),
        (
            Fault::StallAfter {
                events: 0,
                ms: None,
            },
            Phase::FirstToken,
        ),
        (
            Fault::StallAfter {
                events: 3,
                ms: None,
            },
            Phase::Idle,
        ),
    ] {
        let s = server();
        s.set_script(vec![fault.clone()]);
        let r = chat(&[s.base_url()], cfg);
        match &r.result {
            Err(ChatError::Call(
                CallError::DeadlineExceeded {
                    last: Some(last), ..
                }
                | CallError::PartialOutput { last, .. },
            )) => assert_eq!(*last, Failure::Timeout(want), "{fault:?}"),
            other => panic!("{fault:?}: {other:?}"),
        }
    }
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
    let mut calls = ToolCallAssembler::new([0u8; 256]);
    // streamed, collected
    let c = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
    ))
    .expect("answer");
    assert_eq!((c.text, c.truncated), (s.answer().as_str(), false));
    // one JSON body (stream: false), collected
    request.stream = false;
    let mut out = [0u8; 4096];
    let c = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
    ))
    .expect("answer");
    assert_eq!(c.text, s.answer());
    let last = s.requests().pop().expect("request");
    assert_eq!(last.body_json().expect("json")["stream"], false);
    // a buffer too small: truncated at a character boundary, flagged
    request.stream = true;
    let mut small = [0u8; 10];
    let c = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut small, &mut calls),
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
        let mut calls = ToolCallAssembler::new([0u8; 0]);
        let c = async_io::block_on(Box::pin(
            client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
        ))
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

/// A server's answer that is not an API response, each named, and none retried on the same
/// endpoint: one attempt, then the call ends (one endpoint) or fails over (two).
fn not_an_api_answer(fault: Fault, extra: &[(&str, &str)]) -> Step {
    let mut step = Step::from(fault);
    for (n, v) in extra {
        step = step.header(*n, *v);
    }
    step
}

fn page(code: u16, content_type: &str, body: &str) -> Fault {
    Fault::Page {
        code,
        content_type: content_type.into(),
        body: body.into(),
    }
}

#[test]
fn failures_are_named_for_what_they_are_and_not_retried_on_the_same_endpoint() {
    use steadyllm_embassy::steadyllm_core::call::{Coding, ContentKind, ResponseFault};
    let padding = "x".repeat(6000);
    let cases: Vec<(&str, Step, ResponseFault, &str)> = vec![
        (
            "head too large",
            not_an_api_answer(Fault::Ok, &[("x-padding", &padding)]),
            ResponseFault::HeadTooLarge { limit: 4096 },
            "response head larger than the 4096-byte response buffer",
        ),
        (
            "not http",
            Step::from(Fault::NotHttp),
            ResponseFault::NotHttp,
            "the server's answer is not HTTP",
        ),
        (
            "redirect",
            not_an_api_answer(
                page(302, "text/html", "<a href=\"/portal\">moved</a>"),
                &[("location", "http://portal.example/login?from=api")],
            ),
            ResponseFault::Redirected { status: 302 },
            "redirected (HTTP 302); a POST is not followed",
        ),
        (
            "captive portal",
            Step::from(page(
                200,
                "text/html; charset=utf-8",
                "<html><body>Welcome to Hotel Wi-Fi. Log in.</body></html>",
            )),
            ResponseFault::NotAnApiResponse(ContentKind::Html),
            "not an API response: an HTML page",
        ),
        (
            "gzipping proxy",
            not_an_api_answer(
                page(200, "text/event-stream", "\u{1f}\u{8b}\u{8}\u{0}binary"),
                &[("content-encoding", "gzip")],
            ),
            ResponseFault::ContentCoding(Coding::Gzip),
            "content coding the client cannot read (gzip)",
        ),
    ];
    for (name, step, fault, message) in cases {
        let (s, r) = one(vec![step.clone()]);
        let last = Failure::Response(fault);
        assert_eq!(
            r.result,
            Err(ChatError::Call(CallError::NotRetryable { last })),
            "{name}: {r:?}"
        );
        assert_eq!(attempts(&r), 1, "{name}: one attempt");
        assert_eq!(s.requests().len(), 1, "{name}");
        let text = r
            .result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(text.contains(message), "{name}: {text:?}");
        // With a healthy second endpoint, the call fails over at once.
        let good = server();
        s.set_script(vec![step]);
        let r = chat(&[s.base_url(), good.base_url()], config());
        assert_eq!(
            r.result.as_ref().map(|s| s.attempts),
            Ok(2),
            "{name}: {r:?}"
        );
        assert_eq!(r.text, good.answer(), "{name}");
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e, CallEvent::Waiting { .. })),
            "{name}: no backoff before failing over"
        );
    }
}

#[test]
fn a_redirect_says_where_it_pointed() {
    let s = server();
    s.set_script(vec![
        Step::from(page(307, "text/plain", ""))
            .header("location", "https://api.example.com/v2/chat/completions"),
    ]);
    let r = chat(&[s.base_url()], config());
    assert!(r.result.is_err());
    assert_eq!(
        r.redirects,
        vec![(
            307,
            "https://api.example.com/v2/chat/completions".to_string()
        )]
    );
}

#[test]
fn a_whole_json_answer_to_a_streamed_request_is_the_answer() {
    // A gateway or cache that ignores `stream: true`.
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"The whole answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}"#;
    let (s, r) = one(vec![page(200, "application/json", body)]);
    assert_eq!(r.result.as_ref().map(|s| s.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, "The whole answer.");
    assert_eq!(s.requests().len(), 1, "not retried");
}

#[test]
fn every_request_asks_for_an_identity_body() {
    let (s, r) = one(vec![Fault::Ok]);
    assert!(r.result.is_ok());
    assert_eq!(s.requests()[0].header("accept-encoding"), Some("identity"));
}

/// A resolver that knows no name (the adapter's DNS path, without asking a real resolver).
struct NoNames;

impl embedded_nal_async::Dns for NoNames {
    type Error = std::io::Error;
    async fn get_host_by_name(
        &self,
        _host: &str,
        _addr_type: embedded_nal_async::AddrType,
    ) -> Result<core::net::IpAddr, Self::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "NXDOMAIN",
        ))
    }
    async fn get_host_by_address(
        &self,
        _addr: core::net::IpAddr,
        _result: &mut [u8],
    ) -> Result<usize, Self::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "NXDOMAIN",
        ))
    }
}

#[test]
fn a_name_that_does_not_resolve_is_named_and_fails_over() {
    let good = server();
    let stack = HostStack::new();
    let urls = ["http://api.nowhere.invalid/v1".to_string(), good.base_url()];
    let endpoints: Vec<Endpoint<'_>> = urls
        .iter()
        .map(|u| Endpoint::new(u, None).expect("endpoint"))
        .collect();
    let cfg = config();
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    for (n, want) in [(1usize, None), (2, Some(2u32))] {
        let shared: SharedState = SharedState::new(n, &cfg);
        let mut client: Client<'_, _, _> =
            Client::new(&stack, &NoNames, &endpoints[..n], &shared, cfg, 1);
        let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
        let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
        let mut failed = Vec::new();
        let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |e| {
            if let Event::Engine(CallEvent::AttemptFailed { failure, .. }) = e {
                failed.push(failure);
            }
        })));
        assert_eq!(failed, vec![Failure::NameNotResolved], "{n} endpoint(s)");
        match want {
            None => {
                let e = r.expect_err("no endpoint resolves");
                assert_eq!(
                    e,
                    ChatError::Call(CallError::NotRetryable {
                        last: Failure::NameNotResolved
                    })
                );
                assert!(e.to_string().contains("does not resolve"), "{e}");
            }
            Some(a) => assert_eq!(r.map(|s| s.attempts), Ok(a)),
        }
    }
}

#[test]
fn a_spent_quota_or_spend_limit_is_not_retried() {
    for body in [
        r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        r#"{"error":{"message":"Project spend limit reached","type":"insufficient_quota","code":"project_spend_limit_exceeded"}}"#,
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"Spend cap reached","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
    ] {
        let (s, r) = one(vec![
            Fault::Status {
                code: 429,
                retry_after: None,
                retry_after_ms: None,
                should_retry: None,
                body: Some(body.into()),
            },
            Fault::Ok,
        ]);
        assert_eq!(
            r.result,
            Err(ChatError::Call(CallError::NotRetryable {
                last: Failure::Status(429)
            })),
            "{body}"
        );
        assert_eq!(s.requests().len(), 1, "{body}: not retried");
    }
    // A plain rate limit is retried.
    let (s, r) = one(vec![Fault::retry_after(429, "0"), Fault::Ok]);
    assert_eq!(r.result.map(|s| s.attempts), Ok(2));
    assert_eq!(s.requests().len(), 2);
}

#[test]
fn endpoint_headers_query_parameters_and_request_fields_reach_the_server() {
    use steadyllm_embassy::steadyllm_core::http::{HeadError, HeaderError};
    use steadyllm_embassy::steadyllm_core::request::{RawJson, ReasoningEffort, ResponseFormat};
    let s = server();
    s.set_script(vec![Fault::Ok, Fault::Ok]);
    let stack = HostStack::new();
    let url = s.base_url();
    // Azure OpenAI's shape: the key in `api-key`, the API version in the query.
    let headers = [("api-key", "azure-key"), ("x-trace", "t 1")];
    let query = [("api-version", "2024-10-21"), ("note", "a b&c")];
    let endpoints = [Endpoint::new(&url, None)
        .expect("endpoint")
        .with_headers(&headers)
        .with_query(&query)];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 3);
    let messages = [Message::user("hi")];
    let extra = [("top_k", RawJson::new("40").expect("json"))];
    let mut request = ChatRequest::new("gpt-4o-mini", &messages);
    request.reasoning_effort = Some(ReasoningEffort::Low);
    request.response_format = Some(ResponseFormat::JsonSchema {
        name: "answer",
        schema: RawJson::new(r#"{"type":"object"}"#).expect("json"),
        strict: true,
    });
    request.extra_body = &extra;
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |_| {})));
    assert_eq!(r.map(|s| s.attempts), Ok(1));
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(
        q.path,
        "/v1/chat/completions?api-version=2024-10-21&note=a%20b%26c"
    );
    assert_eq!(q.header("api-key"), Some("azure-key"));
    assert_eq!(q.header("x-trace"), Some("t 1"));
    assert_eq!(q.header("authorization"), None);
    let json = q.body_json().expect("JSON body");
    assert_eq!(json["reasoning_effort"], "low");
    assert_eq!(json["top_k"], 40);
    assert_eq!(
        json["response_format"],
        serde_json::json!({"type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
    );

    // A header the client sets itself ends the call with a typed error; nothing is sent.
    let reserved = [("Content-Length", "0")];
    let endpoints = [Endpoint::new(&url, None)
        .expect("endpoint")
        .with_headers(&reserved)];
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 4);
    let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |_| {})));
    assert_eq!(
        r,
        Err(ChatError::Head(HeadError::Header(HeaderError::Reserved)))
    );
    assert_eq!(s.requests().len(), 1, "nothing more was sent");
}

fn with_timeouts(first_token_ms: u64, total_ms: u64, per_kib_ms: u64) -> CallConfig {
    let mut cfg = config();
    cfg.timeouts = cfg.timeouts.map(|t| Timeouts {
        first_token: Duration::from_millis(first_token_ms),
        total: Duration::from_millis(total_ms),
        total_per_kib: Duration::from_millis(per_kib_ms),
        ..t
    });
    cfg
}

#[test]
fn a_model_that_thinks_in_silence_is_not_cut_by_the_idle_timeout() {
    // The role chunk, then 1.5 s of nothing (OpenAI's chat completions while a reasoning model
    // thinks), then the answer: before the first content only the first-token deadline (3 s)
    // applies, not the 600 ms idle timeout.
    let s = server();
    s.set_script(vec![Fault::StallAfter {
        events: 1,
        ms: Some(1500),
    }]);
    let r = chat(&[s.base_url()], with_timeouts(3000, 10_000, 0));
    assert_eq!(r.result.as_ref().map(|x| x.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, s.answer());
}

#[test]
fn reasoning_keeps_a_stream_alive_but_is_not_its_first_token() {
    // Ten reasoning deltas 100 ms apart (1 s of thinking), each gap inside the 600 ms idle
    // timeout, then a short answer.
    let thinking = || Step::new(Fault::Ok).reasoning(10).delay_between_events(100);
    let s = server();
    s.set_answer("Blue light scatters most.");
    s.set_script(vec![thinking()]);
    let r = chat(&[s.base_url()], with_timeouts(3000, 10_000, 0));
    assert_eq!(r.result.as_ref().map(|x| x.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, s.answer());
    assert!(r.reasoning.starts_with("Thought 0. Thought 1."), "{r:?}");
    // With a 700 ms first-token deadline the thinking outlasts it: reasoning is not the
    // first token. What was shown (the reasoning) is kept and not silently repeated.
    s.set_script(vec![thinking()]);
    let r = chat(&[s.base_url()], with_timeouts(700, 10_000, 0));
    match &r.result {
        Err(ChatError::Call(CallError::PartialOutput {
            last: Failure::Timeout(Phase::FirstToken),
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(attempts(&r), 1);
    assert!(r.text.is_empty() && !r.reasoning.is_empty());
}

#[test]
fn the_total_deadline_grows_with_the_answer() {
    // A 6 KB answer streamed over more than 2 s against a 1.5 s total deadline: with 1 s more
    // per KiB delivered it completes; with a fixed deadline it is cut.
    let long: String = (0..1000).map(|i| format!("w{i:03} ")).collect();
    let s = server();
    s.set_answer(long.clone());
    s.set_script(vec![Step::new(Fault::Ok).delay_between_events(2)]);
    let r = chat(&[s.base_url()], with_timeouts(3000, 1500, 1000));
    assert_eq!(r.result.as_ref().map(|x| x.attempts), Ok(1), "{r:?}");
    assert_eq!(r.text, long);
    s.set_script(vec![Step::new(Fault::Ok).delay_between_events(2)]);
    let r = chat(&[s.base_url()], with_timeouts(3000, 1500, 0));
    match &r.result {
        Err(ChatError::Call(CallError::DeadlineExceeded { attempts: 1, .. })) => {}
        other => panic!("{other:?}"),
    }
}

/// The forms an answer takes, for each dialect: streamed, whole (`stream: false`), and whole
/// in answer to a streamed request (a gateway that ignores `stream: true`).
fn forms() -> Vec<(String, Form, Fault)> {
    let mut v = Vec::new();
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        for (name, stream, fault) in [
            ("streamed", true, Fault::Ok),
            ("whole", false, Fault::Ok),
            ("whole answer to a stream", true, Fault::Whole),
        ] {
            v.push((
                format!("{dialect:?} {name}"),
                Form { dialect, stream },
                fault,
            ));
        }
    }
    v
}

/// The tools the mock's answer calls (escapes and non-ASCII in the arguments).
const CALLS: [(&str, &str); 2] = [
    (
        "get_weather",
        r#"{"city":"Paris","note":"a \"quoted\" é, \\ and a long tail to split"}"#,
    ),
    ("get_time", "{}"),
];

/// The calls as the mock makes them (`id name arguments`) for its request number `request`.
fn expected_calls(dialect: Dialect, request: usize) -> Vec<String> {
    let prefix = match dialect {
        Dialect::OpenAi => "call_mock",
        Dialect::Anthropic => "toolu_mock",
        Dialect::Responses => unreachable!("the mock serves no Responses calls yet"),
    };
    CALLS
        .iter()
        .enumerate()
        .map(|(i, (name, args))| format!("{prefix}{request}_{i} {name} {args}"))
        .collect()
}

fn with_tools(fault: Fault) -> Step {
    CALLS
        .iter()
        .fold(Step::from(fault), |s, (n, a)| s.tool_call(*n, *a))
}

#[test]
fn every_dialect_and_form_of_answer_completes_in_one_attempt() {
    for (name, form, fault) in forms() {
        let s = server();
        s.set_script(vec![fault]);
        let shared = SharedState::new(1, &config());
        let r = chat_in(&[s.base_url()], config(), &shared, form);
        assert_eq!(
            r.result.as_ref().map(|x| x.attempts),
            Ok(1),
            "{name}: {r:?}"
        );
        assert_eq!(r.text, s.answer(), "{name}");
        assert!(r.tool_calls.is_empty(), "{name}");
        let reqs = s.requests();
        assert_eq!(reqs.len(), 1, "{name}: not retried");
        let q = &reqs[0];
        let json = q.body_json().expect("json body");
        assert_eq!(json["stream"], form.stream, "{name}");
        match form.dialect {
            Dialect::OpenAi => {
                assert_eq!(q.path, "/v1/chat/completions", "{name}");
                assert_eq!(q.header("authorization"), Some("Bearer sk-test"));
            }
            Dialect::Anthropic => {
                assert_eq!(q.path, "/v1/messages", "{name}");
                assert_eq!(q.header("x-api-key"), Some("sk-test"));
                assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
                assert!(json["max_tokens"].as_u64().is_some(), "{name}: max_tokens");
            }
            Dialect::Responses => unreachable!("the mock serves no Responses calls yet"),
        }
        let accept = q.header("accept");
        assert_eq!(
            accept == Some("text/event-stream"),
            form.stream,
            "{name}: {accept:?}"
        );
    }
}

/// The answer pulled through `ChatStream`: the text, the whole calls (`id name arguments`),
/// the number of fragments, and whether every whole call came before the finish reason.
fn pull(url: &str, form: Form) -> (String, Vec<String>, usize, bool) {
    use steadyllm_embassy::{ChatStream, Delta, DeltaQueue};
    let stack = HostStack::new();
    let endpoints = [Endpoint::new(url, None)
        .expect("endpoint")
        .with_dialect(form.dialect)];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::user("hi")];
    let mut request = ChatRequest::new("m", &messages);
    request.stream = form.stream;
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let queue = DeltaQueue::<8192, 512>::new();
    async_io::block_on(Box::pin(async {
        let call = core::pin::pin!(client.chat(&request, &mut bufs, |e| queue.push(e)));
        let mut stream = ChatStream::new(call, &queue);
        let (mut text, mut done, mut fragments, mut finished) =
            (String::new(), Vec::new(), 0, false);
        let mut in_order = true;
        while let Some(item) = stream.next().await {
            match item.expect("no error") {
                Delta::Content { text: t, .. } => text.push_str(t),
                Delta::ToolCall { .. } => fragments += 1,
                Delta::ToolCallDone {
                    id,
                    name,
                    arguments,
                    ..
                } => {
                    in_order &= !finished;
                    done.push(format!("{id} {name} {arguments}"));
                }
                Delta::Finish { .. } => finished = true,
                _ => {}
            }
        }
        assert!(stream.summary().is_some());
        (text, done, fragments, in_order)
    }))
}

#[test]
fn tool_calls_come_out_whole_the_same_through_every_api() {
    for (name, form, fault) in forms() {
        let s = server();
        let url = s.base_url();
        let want = expected_calls(form.dialect, 0);
        // The callback, with the core's assembler (as `chat --json`).
        s.set_script(vec![with_tools(fault.clone())]);
        let shared = SharedState::new(1, &config());
        let r = chat_in(std::slice::from_ref(&url), config(), &shared, form);
        assert_eq!(
            r.result.as_ref().map(|x| x.attempts),
            Ok(1),
            "{name}: {r:?}"
        );
        assert_eq!(r.text, s.answer(), "{name}");
        assert_eq!(r.tool_calls, want, "{name}: callback");
        // chat_collect.
        s.reset();
        s.set_script(vec![with_tools(fault.clone())]);
        let stack = HostStack::new();
        let endpoints = [Endpoint::new(&url, None)
            .expect("endpoint")
            .with_dialect(form.dialect)];
        let cfg = config();
        let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
        let messages = [Message::user("hi")];
        let mut request = ChatRequest::new("m", &messages);
        request.stream = form.stream;
        let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
        let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
        let mut out = [0u8; 4096];
        let mut calls = ToolCallAssembler::new([0u8; 512]);
        let c = async_io::block_on(Box::pin(
            client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.text, s.answer(), "{name}");
        let got: Vec<String> = calls
            .calls()
            .map(|c| format!("{} {} {}", c.id, c.name, c.arguments))
            .collect();
        assert_eq!(got, want, "{name}: chat_collect");
        assert!(!calls.overflowed());
        // ChatStream.
        s.reset();
        s.set_script(vec![with_tools(fault)]);
        let (text, done, fragments, in_order) = pull(&url, form);
        assert_eq!(text, s.answer(), "{name}");
        assert_eq!(done, want, "{name}: ChatStream");
        assert!(in_order, "{name}: whole calls before the finish reason");
        if form.stream && !name.contains("whole") {
            assert!(fragments > CALLS.len(), "{name}: {fragments} fragments");
        }
    }
}

#[test]
fn tool_calls_too_large_for_their_storage_are_lost_not_cut() {
    let s = server();
    s.set_script(vec![with_tools(Fault::Ok)]);
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
    let mut out = [0u8; 4096];
    let mut calls = ToolCallAssembler::new([0u8; 60]);
    let c = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
    ))
    .expect("answer");
    assert_eq!(c.text, s.answer());
    assert!(calls.overflowed());
    assert_eq!(calls.calls().count(), 0, "the open call was dropped");
}
