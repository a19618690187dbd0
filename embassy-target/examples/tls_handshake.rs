//! `tls_handshake`: what TLS costs per call on the host, per certificate chain shape.
//!
//! ```text
//! cargo run --release -p steadyllm-embassy --example tls_handshake
//! ```
//!
//! The mock server answers a one-word completion, over plain HTTP and behind a local TLS 1.3
//! proxy presenting each chain shape of the TLS matrix. Each call runs on a new connection
//! (TLS connections are not kept between calls). Medians of 30 calls; the difference to the
//! plain call is the handshake with its chain verification.

use std::net::SocketAddr;
use std::time::Instant;

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::CallConfig;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::tools::ToolCallAssembler;
use steadyllm_embassy::tls::decode_pem_bundle;
use steadyllm_embassy::{Buffers, Client, SharedState, TlsSettings, TlsVerify, TrustAnchors};
use steadyllm_tests::mock::MockServer;
use steadyllm_tests::tls::{ChainShape, TestPki, TlsProxy};

const RUNS: usize = 30;

fn median_ms(url: &str, roots: Option<&[u8]>) -> f64 {
    let stack = HostStack::new();
    let endpoints = [Endpoint::new(url, Some("sk-test")).expect("endpoint")];
    let cfg = CallConfig::default();
    let shared: SharedState = SharedState::new(1, &cfg);
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let mut rng = rand_core::OsRng;
        let mut client: Client<'_, _, _> =
            Client::new(&stack, &stack, &endpoints, &shared, cfg, i as u64);
        if let Some(der) = roots {
            client = client.with_tls(TlsSettings::new(
                TlsVerify::Roots(TrustAnchors::from_der_bundle(der)),
                &mut rng,
            ));
        }
        let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
        let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 4096]);
        let mut bufs = Buffers::new(&mut body, &mut head, &mut response)
            .with_tls(&mut tls_read, &mut tls_write);
        let mut out = [0u8; 256];
        let t = Instant::now();
        let mut calls = ToolCallAssembler::new([0u8; 0]);
        let r = async_io::block_on(Box::pin(
            client.chat_collect(&request, &mut bufs, &mut out, &mut calls),
        ));
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(r.is_ok(), "{url}: {r:?}");
    }
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let mock = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    mock.set_answer("Hi.");
    let plain = median_ms(&mock.base_url(), None);
    println!("plain http call: {plain:.2} ms (median of {RUNS})");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for shape in ChainShape::ALL {
        let pki = TestPki::shape(shape, "localhost").expect("pki");
        let proxy = rt
            .block_on(TlsProxy::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                mock.addr(),
                &pki,
            ))
            .expect("proxy");
        let mut der = vec![0u8; 64 * 1024];
        let n = decode_pem_bundle(pki.roots_pem.as_bytes(), &mut der).expect("pem");
        der.truncate(n);
        let url = format!("https://localhost:{}/v1", proxy.addr().port());
        let tls = median_ms(&url, Some(&der));
        println!(
            "tls shape={:<20} call: {tls:7.2} ms  handshake + verification: {:7.2} ms",
            shape.name(),
            tls - plain
        );
    }
}
