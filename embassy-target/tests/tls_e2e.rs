//! TLS 1.3 end to end on std sockets: a local TLS server (rustls, TLS 1.3 only) in front of the
//! mock server presents each chain shape real servers serve (P-256; P-384 root; RSA-4096 root
//! with an RSA-2048 issuing CA and an ECDSA leaf; all-RSA with a PSS handshake signature; the
//! right root third in a bundle), and the client streams the whole answer over each. A wrong
//! host name, an untrusted root and an expired leaf each fail with their own typed reason
//! after one attempt per endpoint, and the handshake's randomness comes from the caller's
//! CSPRNG, not from the jitter seed.

use std::net::SocketAddr;

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::{CallConfig, CallError, CertificateFault, Failure};
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::tools::ToolCallAssembler;
use steadyllm_embassy::tls::decode_pem_bundle;
use steadyllm_embassy::{
    Buffers, ChatError, Client, Event, SharedState, TlsSettings, TlsVerify, TrustAnchors,
};
use steadyllm_tests::mock::MockServer;
use steadyllm_tests::tls::{BadChain, ChainShape, TestPki, TlsProxy, client_hello_key_shares};

struct Server {
    _rt: tokio::runtime::Runtime,
    proxy: TlsProxy,
    mock: MockServer,
}

/// The mock server behind a TLS proxy presenting `pki`, reached as `localhost`.
fn serve(pki: &TestPki) -> Server {
    let mock = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt
        .block_on(TlsProxy::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            mock.addr(),
            pki,
        ))
        .expect("tls proxy");
    Server {
        _rt: rt,
        proxy,
        mock,
    }
}

fn url(s: &Server, host: &str) -> String {
    format!("https://{host}:{}/v1", s.proxy.addr().port())
}

struct Run {
    result: Result<u32, ChatError>,
    text: String,
    attempts_failed: Vec<(usize, Failure)>,
}

/// One call over `urls` (primary first), trusting the PEM bundle `roots_pem`.
fn chat(urls: &[String], verify: Option<&str>, seed: u64) -> Run {
    let stack = HostStack::new();
    let endpoints: Vec<Endpoint<'_>> = urls
        .iter()
        .map(|u| Endpoint::new(u, Some("sk-test")).expect("endpoint"))
        .collect();
    let cfg = CallConfig {
        max_attempts: 4,
        ..CallConfig::default()
    };
    let shared: SharedState = SharedState::new(endpoints.len(), &cfg);
    let mut der = vec![0u8; 64 * 1024];
    let mut rng = rand_core::OsRng;
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, seed);
    if let Some(pem) = verify {
        let n = decode_pem_bundle(pem.as_bytes(), &mut der).expect("pem");
        der.truncate(n);
        let anchors = TrustAnchors::from_der_bundle(&der);
        client = client.with_tls(TlsSettings::new(TlsVerify::Roots(anchors), &mut rng));
    }
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 4096]);
    let mut bufs =
        Buffers::new(&mut body, &mut head, &mut response).with_tls(&mut tls_read, &mut tls_write);
    let mut text = String::new();
    let mut attempts_failed = Vec::new();
    let r = async_io::block_on(Box::pin(client.chat(&request, &mut bufs, |e| match e {
        Event::Item(StreamItem::Content { text: t, .. }) => text.push_str(&t.to_string()),
        Event::Engine(steadyllm_embassy::steadyllm_core::call::CallEvent::AttemptFailed {
            endpoint,
            failure,
            ..
        }) => attempts_failed.push((endpoint, failure)),
        _ => {}
    })));
    Run {
        result: r.map(|s| s.attempts),
        text,
        attempts_failed,
    }
}

#[test]
fn every_chain_shape_streams_the_whole_answer() {
    for shape in ChainShape::ALL {
        let pki = TestPki::shape(shape, "localhost").expect("pki");
        let s = serve(&pki);
        let run = chat(&[url(&s, "localhost")], Some(&pki.roots_pem), 1);
        assert_eq!(run.result, Ok(1), "{shape:?}: {:?}", run.attempts_failed);
        assert_eq!(run.text, s.mock.answer(), "{shape:?}");
        let reqs = s.mock.requests();
        assert_eq!(reqs.len(), 1, "{shape:?}");
        assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test"));
    }
}

#[test]
fn ip_literal_hosts_match_ip_address_entries() {
    let pki = TestPki::shape(ChainShape::P256, "127.0.0.1").expect("pki");
    let s = serve(&pki);
    let run = chat(&[url(&s, "127.0.0.1")], Some(&pki.roots_pem), 1);
    assert_eq!(run.result, Ok(1));
    // The same certificate does not cover `localhost`.
    let run = chat(&[url(&s, "localhost")], Some(&pki.roots_pem), 1);
    assert_eq!(
        run.result,
        Err(ChatError::Call(CallError::NotRetryable {
            last: Failure::Certificate(CertificateFault::NameMismatch)
        }))
    );
}

#[test]
fn refused_chains_name_their_reason_after_one_attempt() {
    for (bad, want) in [
        (BadChain::WrongHost, CertificateFault::NameMismatch),
        (BadChain::UntrustedRoot, CertificateFault::UnknownIssuer),
        (BadChain::ExpiredLeaf, CertificateFault::Expired),
    ] {
        let pki = TestPki::bad(bad, "localhost").expect("pki");
        let s = serve(&pki);
        let run = chat(&[url(&s, "localhost")], Some(&pki.roots_pem), 1);
        let last = Failure::Certificate(want);
        assert_eq!(
            run.result,
            Err(ChatError::Call(CallError::NotRetryable { last })),
            "{bad:?}"
        );
        assert_eq!(run.attempts_failed, vec![(0, last)], "{bad:?}: one attempt");
        assert!(
            s.mock.requests().is_empty(),
            "{bad:?}: no request may reach a refused server"
        );
        let msg = ChatError::Call(CallError::NotRetryable { last }).to_string();
        assert!(msg.contains("certificate"), "{msg}");
    }
}

#[test]
fn a_self_signed_server_certificate_given_as_the_root_is_trusted() {
    // What a self-hosted gateway often has: one self-signed certificate, CA flag set.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("cert");
    let pki = TestPki {
        roots_der: vec![cert.der().to_vec()],
        roots_pem: cert.pem(),
        chain_der: vec![cert.der().to_vec()],
        key_der: key.serialize_der(),
    };
    let s = serve(&pki);
    let run = chat(&[url(&s, "localhost")], Some(&pki.roots_pem), 1);
    assert_eq!(run.result, Ok(1), "{:?}", run.attempts_failed);
    // The pin does not cover another name.
    let run = chat(&[url(&s, "127.0.0.1")], Some(&pki.roots_pem), 1);
    assert_eq!(
        run.result,
        Err(ChatError::Call(CallError::NotRetryable {
            last: Failure::Certificate(CertificateFault::NameMismatch)
        }))
    );
}

#[test]
fn a_refused_certificate_fails_over_to_the_next_endpoint() {
    let bad = TestPki::bad(BadChain::ExpiredLeaf, "localhost").expect("pki");
    let good = TestPki::shape(ChainShape::P256, "localhost").expect("pki");
    let (s_bad, s_good) = (serve(&bad), serve(&good));
    let roots = format!("{}{}", bad.roots_pem, good.roots_pem);
    let run = chat(
        &[url(&s_bad, "localhost"), url(&s_good, "localhost")],
        Some(&roots),
        1,
    );
    assert_eq!(run.result, Ok(2));
    assert_eq!(run.text, s_good.mock.answer());
    assert_eq!(
        run.attempts_failed,
        vec![(0, Failure::Certificate(CertificateFault::Expired))]
    );
}

#[test]
fn the_same_jitter_seed_gives_different_key_shares() {
    let pki = TestPki::generate("localhost").expect("pki");
    let s = serve(&pki);
    for _ in 0..2 {
        let run = chat(&[url(&s, "localhost")], Some(&pki.roots_pem), 42);
        assert_eq!(run.result, Ok(1));
    }
    let hellos = s.proxy.client_hellos();
    assert_eq!(hellos.len(), 2);
    let shares: Vec<Vec<Vec<u8>>> = hellos
        .iter()
        .map(|h| client_hello_key_shares(h).expect("a ClientHello with a key share"))
        .collect();
    assert_eq!(shares[0].len(), 1);
    assert_eq!(shares[0][0].len(), 65, "an uncompressed P-256 point");
    assert_ne!(
        shares[0], shares[1],
        "two clients with jitter seed 42 must not share a TLS key"
    );
}

#[test]
fn https_without_tls_settings_is_a_clear_error() {
    let pki = TestPki::generate("localhost").expect("pki");
    let s = serve(&pki);
    let run = chat(&[url(&s, "localhost")], None, 1);
    assert_eq!(run.result, Err(ChatError::TlsNotConfigured));
    assert!(s.mock.requests().is_empty());
}

#[test]
fn insecure_mode_is_explicit_and_works() {
    let pki = TestPki::bad(BadChain::UntrustedRoot, "localhost").expect("pki");
    let s = serve(&pki);
    let stack = HostStack::new();
    let u = url(&s, "localhost");
    let endpoints = [Endpoint::new(&u, None).expect("endpoint")];
    let cfg = CallConfig::default();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut rng = rand_core::OsRng;
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 3)
        .with_tls(TlsSettings::new(
            TlsVerify::InsecureNoVerification,
            &mut rng,
        ));
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 4096]);
    let mut bufs =
        Buffers::new(&mut body, &mut head, &mut response).with_tls(&mut tls_read, &mut tls_write);
    let mut out = [0u8; 4096];
    let mut calls = ToolCallAssembler::new([0u8; 0]);
    let got = async_io::block_on(Box::pin(
        client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
    ))
    .expect("insecure call");
    assert_eq!(got.text, s.mock.answer());
}

#[test]
fn a_closed_tls_port_is_retried_as_a_connection_failure() {
    let u = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "https://localhost:{}/v1",
            l.local_addr().expect("addr").port()
        )
    };
    let pki = TestPki::generate("localhost").expect("pki");
    let run = chat(&[u], Some(&pki.roots_pem), 1);
    assert!(
        matches!(
            run.result,
            Err(ChatError::Call(CallError::RetriesExhausted {
                last: Failure::Connect,
                ..
            }))
        ),
        "{:?}",
        run.result
    );
}
