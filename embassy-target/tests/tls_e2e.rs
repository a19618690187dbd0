//! TLS 1.3 end to end: a local TLS server (rustls, TLS 1.3 only) with a freshly generated P-256
//! CA in front of the mock server; the client verifies against that CA over embedded-tls.

use std::net::SocketAddr;

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::{CallConfig, CallError};
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, ChatError, Client, Event, SharedState, TlsVerify};
use steadyllm_tests::mock::MockServer;
use steadyllm_tests::tls::{TestPki, TlsProxy};

struct Setup {
    _rt: tokio::runtime::Runtime,
    _proxy: TlsProxy,
    mock: MockServer,
    url: String,
    pki: TestPki,
}

fn setup() -> Setup {
    let mock = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    let pki = TestPki::generate("127.0.0.1").expect("pki");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt
        .block_on(TlsProxy::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            mock.addr(),
            &pki,
        ))
        .expect("tls proxy");
    let url = format!("https://127.0.0.1:{}/v1", proxy.addr().port());
    Setup {
        _rt: rt,
        _proxy: proxy,
        mock,
        url,
        pki,
    }
}

fn chat(url: &str, verify: Option<TlsVerify<'_>>) -> (Result<u32, ChatError>, String) {
    let stack = HostStack::new();
    let endpoints = [Endpoint::new(url, Some("sk-test")).expect("endpoint")];
    let cfg = CallConfig {
        max_attempts: 2,
        ..CallConfig::default()
    };
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 5);
    if let Some(v) = verify {
        client = client.with_tls(v);
    }
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 4096]);
    let mut bufs =
        Buffers::new(&mut body, &mut head, &mut response).with_tls(&mut tls_read, &mut tls_write);
    let mut text = String::new();
    let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |e| {
        if let Event::Item(StreamItem::Content { text: t, .. }) = e {
            text.push_str(&t.to_string());
        }
    })));
    (r.map(|s| s.attempts), text)
}

#[test]
fn streams_over_tls_verified_against_the_ca() {
    let s = setup();
    let (r, text) = chat(&s.url, Some(TlsVerify::Ca(&s.pki.ca_der)));
    assert_eq!(r, Ok(1));
    assert_eq!(text, s.mock.answer());
    let reqs = s.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test"));
}

#[test]
fn a_server_signed_by_another_ca_is_refused() {
    let s = setup();
    let other = TestPki::generate("127.0.0.1").expect("pki");
    let (r, text) = chat(&s.url, Some(TlsVerify::Ca(&other.ca_der)));
    assert!(matches!(r, Err(ChatError::Call(_))), "{r:?}");
    assert!(text.is_empty());
    assert!(
        s.mock.requests().is_empty(),
        "no request may reach an unverified server"
    );
}

#[test]
fn https_without_tls_settings_is_a_clear_error() {
    let s = setup();
    let (r, _) = chat(&s.url, None);
    assert_eq!(r, Err(ChatError::TlsNotConfigured));
    assert!(s.mock.requests().is_empty());
}

#[test]
fn insecure_mode_is_explicit_and_works() {
    let s = setup();
    let (r, text) = chat(&s.url, Some(TlsVerify::InsecureNoVerification));
    assert_eq!(r, Ok(1));
    assert_eq!(text, s.mock.answer());
}

#[test]
fn deadline_errors_stay_typed() {
    // A TLS port that is closed: connection refused, retried, then a typed engine error.
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "https://127.0.0.1:{}/v1",
            l.local_addr().expect("addr").port()
        )
    };
    let pki = TestPki::generate("127.0.0.1").expect("pki");
    let (r, _) = chat(&url, Some(TlsVerify::Ca(&pki.ca_der)));
    assert!(
        matches!(r, Err(ChatError::Call(CallError::RetriesExhausted { .. }))),
        "{r:?}"
    );
}
