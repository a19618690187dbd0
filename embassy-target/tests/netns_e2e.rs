//! End to end on a real embassy-net stack: the steadyllm client runs on embassy-net over a TAP
//! device inside a network namespace this test creates (and deletes); the mock server listens on
//! the kernel side of the TAP in the same namespace. Every fault of the matrix gets its asserted
//! outcome, every TLS chain shape of the matrix streams (or is refused with its reason), and
//! every dialect and form of answer (streamed, whole, whole in answer to a streamed request)
//! completes in one attempt with its tool calls whole, over embassy-net; and every exact-resume
//! case (`resume/mod.rs`: Responses streams broken and resumed). Needs root; prints
//! `SKIPPED: <reason>` otherwise.
#![cfg(target_os = "linux")]

mod resume;

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use embassy_net::tcp::client::{TcpClient, TcpClientState};
use steadyllm_embassy::steadyllm_core::call::{
    CallConfig, CallError, CallEvent, CertificateFault, Failure, Jitter, Phase, StreamFault,
    Summary, Timeouts,
};
use steadyllm_embassy::steadyllm_core::decode::{Dialect, StreamItem};
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::time::Duration;
use steadyllm_embassy::steadyllm_core::tools::ToolCallAssembler;
use steadyllm_embassy::tls::decode_pem_bundle;
use steadyllm_embassy::{
    Buffers, ChatError, Client, Event, SharedState, TlsSettings, TlsVerify, TrustAnchors,
};
use steadyllm_tests::mock::{Fault, MockServer, Script, Step};
use steadyllm_tests::netns::{EmbassyNet, LiteralDns, NetNs};
use steadyllm_tests::tls::{BadChain, ChainShape, TestPki, TlsProxy};

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Completes after this many attempts with the full answer.
    Ok(u32),
    /// Fails with partial output after this failure; the text is a prefix of the answer.
    Partial(Failure),
    /// Fails without retrying.
    NotRetryable,
    /// Fails with this failure after exactly one attempt.
    Refused(Failure),
}

fn config() -> CallConfig {
    CallConfig {
        timeouts: Some(Timeouts {
            connect: Duration::from_millis(2000),
            first_byte: Duration::from_millis(800),
            first_token: Duration::from_millis(2000),
            idle: Duration::from_millis(800),
            total: Duration::from_secs(15),
            total_per_kib: Duration::from_millis(0),
        }),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(200),
        jitter: Jitter::Full,
        ..CallConfig::default()
    }
}

fn cases() -> Vec<(&'static str, Script, Expect)> {
    use steadyllm_embassy::steadyllm_core::call::{Coding, ContentKind, ResponseFault};
    let page = |code: u16, ct: &str, body: &str| Fault::Page {
        code,
        content_type: ct.into(),
        body: body.into(),
    };
    let refused = |f| Expect::Refused(Failure::Response(f));
    let named: Vec<(&'static str, Script, Expect)> = vec![
        (
            "head too large",
            Script::from(vec![
                Step::from(Fault::Ok).header("x-padding", "y".repeat(6000)),
            ]),
            refused(ResponseFault::HeadTooLarge { limit: 4096 }),
        ),
        (
            "not http",
            Script::from(vec![Fault::NotHttp]),
            refused(ResponseFault::NotHttp),
        ),
        (
            "redirect",
            Script::from(vec![
                Step::from(page(301, "text/html", "moved")).header("location", "http://x.example/"),
            ]),
            refused(ResponseFault::Redirected { status: 301 }),
        ),
        (
            "captive portal",
            Script::from(vec![page(
                200,
                "text/html",
                "<html>Log in to the Wi-Fi</html>",
            )]),
            refused(ResponseFault::NotAnApiResponse(ContentKind::Html)),
        ),
        (
            "gzip",
            Script::from(vec![
                Step::from(page(200, "text/event-stream", "\u{1f}\u{8b}"))
                    .header("content-encoding", "gzip"),
            ]),
            refused(ResponseFault::ContentCoding(Coding::Gzip)),
        ),
        (
            "name does not resolve",
            Script::from(vec![Fault::Ok]),
            Expect::Refused(Failure::NameNotResolved),
        ),
    ];
    let faults: Vec<(&'static str, Vec<Fault>, Expect)> = vec![
        ("ok", vec![Fault::Ok], Expect::Ok(1)),
        (
            "429 Retry-After 1",
            vec![Fault::retry_after(429, "1"), Fault::Ok],
            Expect::Ok(2),
        ),
        (
            "503 retry-after-ms",
            vec![Fault::retry_after_ms(503, 200), Fault::Ok],
            Expect::Ok(2),
        ),
        (
            "500 x-should-retry false",
            vec![Fault::should_retry(500, false), Fault::Ok],
            Expect::NotRetryable,
        ),
        (
            "401",
            vec![Fault::status(401), Fault::Ok],
            Expect::NotRetryable,
        ),
        ("refuse", vec![Fault::Refuse, Fault::Ok], Expect::Ok(2)),
        (
            "stall before headers",
            vec![Fault::StallBeforeHeaders { ms: None }, Fault::Ok],
            Expect::Ok(2),
        ),
        (
            "stall before first token",
            vec![
                Fault::StallAfter {
                    events: 1,
                    ms: None,
                },
                Fault::Ok,
            ],
            Expect::Ok(2),
        ),
        (
            "stall mid-stream",
            vec![
                Fault::StallAfter {
                    events: 4,
                    ms: None,
                },
                Fault::Ok,
            ],
            Expect::Partial(Failure::Timeout(Phase::Idle)),
        ),
        (
            "reset mid-stream",
            vec![Fault::ResetAfter { events: 4 }, Fault::Ok],
            Expect::Partial(Failure::Stream(StreamFault::Network)),
        ),
        (
            "truncated",
            vec![Fault::TruncateAfter { events: 4 }, Fault::Ok],
            Expect::Partial(Failure::Stream(StreamFault::Truncated)),
        ),
        (
            "malformed",
            vec![Fault::MalformedAfter { events: 4 }, Fault::Ok],
            Expect::Partial(Failure::Stream(StreamFault::Malformed)),
        ),
        (
            "error event",
            vec![
                Fault::ErrorEventAfter {
                    events: 4,
                    message: None,
                    code: None,
                },
                Fault::Ok,
            ],
            Expect::Partial(Failure::Stream(StreamFault::ServerError)),
        ),
        ("drip", vec![Fault::Drip { ms_per_byte: 0 }], Expect::Ok(1)),
    ];
    faults
        .into_iter()
        .map(|(n, f, e)| (n, Script::from(f), e))
        .chain(named)
        .collect()
}

/// The dialect of the endpoint, and whether the request asks for a stream.
#[derive(Clone, Copy, Debug)]
struct Form {
    dialect: Dialect,
    stream: bool,
}

const OPENAI_STREAM: Form = Form {
    dialect: Dialect::OpenAi,
    stream: true,
};

/// What one call saw.
struct Call {
    result: Result<Summary, ChatError>,
    text: String,
    /// Attempts that failed.
    failed: u32,
    /// Whole tool calls (`id name arguments`), joined by the core's assembler.
    tool_calls: Vec<String>,
}

/// One call from embassy-net to `url` in `form`, over TLS verified against `roots_pem` when
/// given.
async fn call(
    stack: embassy_net::Stack<'static>,
    url: String,
    roots_pem: Option<String>,
    form: Form,
) -> Call {
    stack.wait_config_up().await;
    let state: TcpClientState<2, 4096, 4096> = TcpClientState::new();
    let tcp = TcpClient::new(stack, &state);
    let endpoints = [Endpoint::new(&url, Some("sk-test"))
        .expect("endpoint")
        .with_dialect(form.dialect)];
    let cfg = config();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut der = vec![0u8; 16 * 1024];
    let mut rng = rand_core::OsRng;
    let mut client: Client<'_, _, _> = Client::new(&tcp, &LiteralDns, &endpoints, &shared, cfg, 3);
    if let Some(pem) = roots_pem {
        let n = decode_pem_bundle(pem.as_bytes(), &mut der).expect("pem");
        der.truncate(n);
        let roots = TlsVerify::Roots(TrustAnchors::from_der_bundle(&der));
        client = client.with_tls(TlsSettings::new(roots, &mut rng));
    }
    let messages = [Message::user("Why is the sky blue?")];
    let mut request = ChatRequest::new("gpt-4o-mini", &messages);
    request.stream = form.stream;
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 4096]);
    let mut bufs =
        Buffers::new(&mut body, &mut head, &mut response).with_tls(&mut tls_read, &mut tls_write);
    let mut text = String::new();
    let mut failed = 0u32;
    let mut assembler = ToolCallAssembler::new([0u8; 1024]);
    let mut tool_calls = Vec::new();
    let result = client
        .chat(&request, &mut bufs, |e| match e {
            Event::Item(item) => {
                assembler.handle_item(&item).expect("tool calls fit");
                while let Some(c) = assembler.poll_finished() {
                    tool_calls.push(format!("{} {} {}", c.id, c.name, c.arguments));
                }
                if let StreamItem::Content { text: t, .. } = item {
                    text.push_str(&t.to_string());
                }
            }
            Event::Engine(CallEvent::AttemptFailed { .. }) => failed += 1,
            _ => {}
        })
        .await;
    if result.is_ok() {
        assembler.finish_all();
        while let Some(c) = assembler.poll_finished() {
            tool_calls.push(format!("{} {} {}", c.id, c.name, c.arguments));
        }
    }
    Call {
        result,
        text,
        failed,
        tool_calls,
    }
}

/// A network namespace with the mock server bound inside it (threads inherit the namespace)
/// and embassy-net on its TAP device; `None`, after a SKIPPED line, where namespaces cannot be
/// made (not root).
fn namespace_with_mock() -> Option<(NetNs, MockServer, EmbassyNet)> {
    if let Err(why) = NetNs::available() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let ns = NetNs::new().expect("namespace");
    let host = ns.host_addr();
    let server = ns
        .spawn(move || MockServer::start_background(SocketAddr::from((host, 0))))
        .expect("thread in namespace")
        .join()
        .expect("join")
        .expect("mock server in the namespace");
    let net = EmbassyNet::start(&ns).expect("embassy-net on the TAP");
    Some((ns, server, net))
}

#[test]
fn fault_matrix_on_embassy_net_in_a_namespace() {
    let Some((ns, server, net)) = namespace_with_mock() else {
        return;
    };
    let name = ns.name().to_string();
    let host = ns.host_addr();
    let url = server.base_url();
    let answer = server.answer();
    let mut passed = 0;
    for (name, script, expect) in cases() {
        server.set_script(script);
        // A name (LiteralDns resolves only IP literals) for the DNS case.
        let url = if name == "name does not resolve" {
            format!("http://api.nowhere.invalid:{}/v1", server.addr().port())
        } else {
            url.clone()
        };
        let Call {
            result: r,
            text,
            failed,
            ..
        } = net
            .run(StdDuration::from_secs(30), move |stack| {
                call(stack, url, None, OPENAI_STREAM)
            })
            .unwrap_or_else(|e| panic!("{name}: embassy job: {e:?}"));
        match (&expect, &r) {
            (Expect::Ok(n), Ok(s)) => {
                assert_eq!(s.attempts, *n, "{name}");
                assert_eq!(text, answer, "{name}");
            }
            (
                Expect::Partial(f),
                Err(ChatError::Call(CallError::PartialOutput {
                    last,
                    delivered_bytes,
                })),
            ) => {
                assert_eq!(last, f, "{name}");
                assert_eq!(*delivered_bytes, text.len() as u64, "{name}");
                assert!(
                    !text.is_empty() && answer.starts_with(&text),
                    "{name}: {text:?}"
                );
            }
            (Expect::NotRetryable, Err(ChatError::Call(CallError::NotRetryable { .. }))) => {}
            (Expect::Refused(f), Err(ChatError::Call(CallError::NotRetryable { last }))) => {
                assert_eq!(last, f, "{name}");
                assert_eq!(failed, 1, "{name}: one attempt");
            }
            _ => panic!("{name}: expected {expect:?}, got {r:?} (text {text:?})"),
        }
        passed += 1;
    }
    // The request the mock received over embassy-net is valid, with the right headers.
    let reqs = server.requests();
    let q = reqs.first().expect("requests recorded");
    assert_eq!(
        q.header("host"),
        Some(format!("{host}:{}", server.addr().port()).as_str())
    );
    assert_eq!(q.header("authorization"), Some("Bearer sk-test"));
    assert!(q.body_json().is_some());
    drop(net);
    drop(server);
    drop(ns);
    assert!(
        !NetNs::exists(&name).expect("ip netns list"),
        "namespace deleted"
    );
    eprintln!(
        "netns e2e: {passed} fault cases passed on embassy-net in namespace {name} (deleted)"
    );
}

/// Exact resume over the Responses API on embassy-net: every case of `resume/mod.rs` (one
/// POST per call, two when nothing identifying arrived; the whole answer exactly once).
#[test]
fn every_resume_case_on_embassy_net_in_a_namespace() {
    let Some((ns, server, net)) = namespace_with_mock() else {
        return;
    };
    let name = ns.name().to_string();
    let url = server.base_url();
    let answer = server.answer();
    let mut passed = 0;
    for case in resume::cases() {
        server.reset();
        server.set_script(case.script.clone());
        let (url, c) = (url.clone(), case.clone());
        let run = net
            .run(StdDuration::from_secs(30), move |stack| async move {
                stack.wait_config_up().await;
                let state: TcpClientState<2, 4096, 4096> = TcpClientState::new();
                let tcp = TcpClient::new(stack, &state);
                resume::call(&tcp, &LiteralDns, &url, &c).await
            })
            .unwrap_or_else(|e| panic!("{}: embassy job: {e:?}", case.name));
        resume::check(&case, &run, &server.requests(), &answer);
        passed += 1;
    }
    drop(net);
    drop(server);
    drop(ns);
    assert!(
        !NetNs::exists(&name).expect("ip netns list"),
        "namespace deleted"
    );
    eprintln!(
        "netns e2e: {passed} resume cases passed on embassy-net in namespace {name} (deleted)"
    );
}

/// A TLS proxy (in front of `upstream`) on the namespace's host address, presenting `pki`;
/// it lives until the returned sender is dropped.
fn tls_in_namespace(
    ns: &NetNs,
    upstream: SocketAddr,
    pki: TestPki,
) -> (SocketAddr, std::sync::mpsc::Sender<()>) {
    let host = ns.host_addr();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    ns.spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let proxy = rt
            .block_on(TlsProxy::start(SocketAddr::from((host, 0)), upstream, &pki))
            .expect("tls proxy in the namespace");
        let _ = addr_tx.send(proxy.addr());
        let _ = stop_rx.recv();
        drop(proxy);
    })
    .expect("thread in namespace");
    (addr_rx.recv().expect("proxy address"), stop_tx)
}

#[test]
fn tls_chains_on_embassy_net_in_a_namespace() {
    let Some((ns, server, net)) = namespace_with_mock() else {
        return;
    };
    let name = ns.name().to_string();
    let host = ns.host_addr();
    let answer = server.answer();
    let ip = host.to_string();
    let mut cases: Vec<(String, TestPki, Result<(), CertificateFault>)> = ChainShape::ALL
        .iter()
        .map(|&s| {
            let pki = TestPki::shape(s, &ip).expect("pki");
            (s.name().to_string(), pki, Ok(()))
        })
        .collect();
    for (bad, fault) in [
        (BadChain::WrongHost, CertificateFault::NameMismatch),
        (BadChain::UntrustedRoot, CertificateFault::UnknownIssuer),
        (BadChain::ExpiredLeaf, CertificateFault::Expired),
    ] {
        let pki = TestPki::bad(bad, &ip).expect("pki");
        cases.push((bad.name().to_string(), pki, Err(fault)));
    }
    let mut passed = 0;
    for (case, pki, expect) in cases {
        let (addr, _stop) = tls_in_namespace(&ns, server.addr(), pki.clone());
        let url = format!("https://{ip}:{}/v1", addr.port());
        let before = server.requests().len();
        let roots = pki.roots_pem.clone();
        let Call {
            result: r,
            text,
            failed,
            ..
        } = net
            .run(StdDuration::from_secs(60), move |stack| {
                call(stack, url, Some(roots), OPENAI_STREAM)
            })
            .unwrap_or_else(|e| panic!("{case}: embassy job: {e:?}"));
        let r = r.map(|s| s.attempts);
        match expect {
            Ok(()) => {
                assert_eq!(r, Ok(1), "{case}");
                assert_eq!(text, answer, "{case}");
                assert_eq!(server.requests().len(), before + 1, "{case}");
            }
            Err(fault) => {
                assert_eq!(
                    r,
                    Err(ChatError::Call(CallError::NotRetryable {
                        last: Failure::Certificate(fault)
                    })),
                    "{case}"
                );
                assert_eq!(failed, 1, "{case}: one attempt");
                assert_eq!(server.requests().len(), before, "{case}: nothing sent");
            }
        }
        passed += 1;
    }
    drop(net);
    drop(server);
    drop(ns);
    assert!(
        !NetNs::exists(&name).expect("ip netns list"),
        "namespace deleted"
    );
    eprintln!(
        "netns e2e: {passed} TLS chain cases passed on embassy-net in namespace {name} (deleted)"
    );
}

#[test]
fn every_dialect_and_form_of_answer_on_embassy_net_with_tool_calls_whole() {
    let Some((ns, server, net)) = namespace_with_mock() else {
        return;
    };
    let name = ns.name().to_string();
    let url = server.base_url();
    let answer = server.answer();
    let calls = [
        (
            "get_weather",
            r#"{"city":"Paris","note":"a \"quoted\" é, split in pieces"}"#,
        ),
        ("get_time", "{}"),
    ];
    let mut passed = 0;
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        for (form_name, stream, fault) in [
            ("streamed", true, Fault::Ok),
            ("whole", false, Fault::Ok),
            ("whole answer to a stream", true, Fault::Whole),
        ] {
            for tools in [false, true] {
                let case = format!("{dialect:?} {form_name}, tool calls: {tools}");
                let mut step = Step::from(fault.clone());
                if tools {
                    for (n, a) in calls {
                        step = step.tool_call(n, a);
                    }
                }
                server.reset();
                server.set_script(vec![step]);
                let url = url.clone();
                let form = Form { dialect, stream };
                let c = net
                    .run(StdDuration::from_secs(30), move |stack| {
                        call(stack, url, None, form)
                    })
                    .unwrap_or_else(|e| panic!("{case}: embassy job: {e:?}"));
                assert_eq!(c.result.map(|s| s.attempts), Ok(1), "{case}");
                assert_eq!(c.text, answer, "{case}");
                let prefix = match dialect {
                    Dialect::OpenAi => "call_mock0_",
                    Dialect::Anthropic => "toolu_mock0_",
                    Dialect::Responses => unreachable!("the mock serves no Responses calls yet"),
                };
                let want: Vec<String> = if tools {
                    calls
                        .iter()
                        .enumerate()
                        .map(|(i, (n, a))| format!("{prefix}{i} {n} {a}"))
                        .collect()
                } else {
                    Vec::new()
                };
                assert_eq!(c.tool_calls, want, "{case}");
                let reqs = server.requests();
                assert_eq!(reqs.len(), 1, "{case}: one request");
                let body = reqs[0].body_json().expect("json");
                assert_eq!(body["stream"], stream, "{case}");
                if dialect == Dialect::Anthropic {
                    assert_eq!(reqs[0].path, "/v1/messages", "{case}");
                    assert_eq!(
                        reqs[0].header("anthropic-version"),
                        Some("2023-06-01"),
                        "{case}"
                    );
                }
                passed += 1;
            }
        }
    }
    drop(net);
    drop(server);
    drop(ns);
    assert!(
        !NetNs::exists(&name).expect("ip netns list"),
        "namespace deleted"
    );
    eprintln!(
        "netns e2e: {passed} dialect and answer-form cases passed on embassy-net in namespace {name} (deleted)"
    );
}
