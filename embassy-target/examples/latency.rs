//! `latency`: what the client adds on top of the network.
//!
//! ```text
//! cargo run --release -p steadyllm-embassy --example latency
//! ```
//!
//! 1. Time to first token: the same request to the bundled mock server (on loopback), read
//!    (a) with a raw socket that stops at the first byte of the first content chunk and
//!    (b) through the full client (engine, request building, HTTP response reader, SSE
//!    parser, decoder) until the first content item reaches the callback. Medians over many
//!    runs; the difference is what the client adds.
//! 2. Delivery: the socket is wrapped to count reads and the events each read completes (the
//!    `\n\n` that ends an event); every content item must reach the callback during the read
//!    that completed its event (never a read later), and the time from that read returning to
//!    the callback is reported. One read may complete several events when the server's writes
//!    coalesce; their items then all arrive during that read.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use embedded_io_async::{ErrorType, Read, Write};
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::CallConfig;
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::{Endpoint, RequestHead};
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, Event, SharedState};
use steadyllm_tests::mock::{Fault, MockServer, Script, Step};

const RUNS: usize = 200;

static READS: AtomicU64 = AtomicU64::new(0);
static LAST_READ_NS: AtomicU64 = AtomicU64::new(0);
/// Events (`\n\n`) completed by the last read.
static LAST_READ_EVENTS: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The host stack, with every read counted and time-stamped.
struct TimedStack(HostStack);
/// The connection, and whether the last byte read was `\n` (an event end may span reads).
struct TimedConn<C>(C, bool);

impl<C: ErrorType> ErrorType for TimedConn<C> {
    type Error = C::Error;
}

impl<C: Read> Read for TimedConn<C> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.0.read(buf).await?;
        if n > 0 {
            let mut events = 0;
            for &b in &buf[..n] {
                if b == b'\n' && self.1 {
                    events += 1;
                }
                self.1 = b == b'\n';
            }
            LAST_READ_EVENTS.store(events, Ordering::SeqCst);
            LAST_READ_NS.store(now_ns(), Ordering::SeqCst);
            READS.fetch_add(1, Ordering::SeqCst);
        }
        Ok(n)
    }
}

impl<C: Write> Write for TimedConn<C> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
}

impl TcpConnect for TimedStack {
    type Error = std::io::Error;
    type Connection<'a> = TimedConn<<HostStack as TcpConnect>::Connection<'a>>;
    async fn connect(
        &self,
        remote: core::net::SocketAddr,
    ) -> Result<Self::Connection<'_>, Self::Error> {
        self.0.connect(remote).await.map(|c| TimedConn(c, false))
    }
}

impl Dns for TimedStack {
    type Error = std::io::Error;
    async fn get_host_by_name(
        &self,
        host: &str,
        t: AddrType,
    ) -> Result<core::net::IpAddr, Self::Error> {
        self.0.get_host_by_name(host, t).await
    }
    async fn get_host_by_address(
        &self,
        a: core::net::IpAddr,
        r: &mut [u8],
    ) -> Result<usize, Self::Error> {
        self.0.get_host_by_address(a, r).await
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock");
    // Every event paced 2 ms apart, forever: each read then carries one event.
    server.set_script(Script {
        steps: vec![],
        repeat: false,
        then: Some(Step::new(Fault::Ok).delay_between_events(2)),
        answer: None,
        random: None,
    });
    let url = server.base_url();
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);

    // (a) raw socket: time until the first content chunk's first byte.
    let mut body = [0u8; 1024];
    let mut head = [0u8; 512];
    let body_len = request
        .write_body(endpoint.dialect, &mut body)
        .expect("body");
    let mut raw = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut h = RequestHead::new(&endpoint, body_len, true);
        h.close = true;
        let head_len = h.write(&mut head).expect("head");
        let start = Instant::now();
        let mut s = TcpStream::connect(server.addr()).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.write_all(&head[..head_len]).expect("write");
        s.write_all(&body[..body_len]).expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "server closed before content");
            got.extend_from_slice(&buf[..n]);
            // The first content chunk is the second event ("content":"<non-empty>").
            if got
                .windows(12)
                .any(|w| w.starts_with(b"\"content\":\"") && w[11] != b'"')
            {
                break;
            }
        }
        raw.push(start.elapsed().as_micros() as u64);
    }

    // (b) the client, one call per run (a fresh client, so a fresh connection as in (a)).
    let stack = TimedStack(HostStack::new());
    let cfg = CallConfig::default();
    let endpoints = [endpoint];
    let mut ours = Vec::with_capacity(RUNS);
    let mut late = 0u64;
    let mut delivery_ns = Vec::new();
    let (mut body, mut head, mut response) = ([0u8; 1024], [0u8; 512], [0u8; 4096]);
    for i in 0..RUNS {
        let shared: SharedState = SharedState::new(1, &cfg);
        let mut client: Client<'_, _, _> =
            Client::new(&stack, &stack, &endpoints, &shared, cfg, i as u64);
        let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
        let start = Instant::now();
        let mut first: Option<u64> = None;
        let (mut seen_read, mut in_read) = (0u64, 0u64);
        let r = async_io::block_on(client.chat(&request, &mut bufs, |e| {
            if let Event::Item(StreamItem::Content { .. }) = e {
                let t = now_ns();
                first.get_or_insert(start.elapsed().as_micros() as u64);
                let reads = READS.load(Ordering::SeqCst);
                // Each event holds one content item: a read delivers at most as many as it
                // completed events; more means an item whose event an earlier read completed.
                if reads != seen_read {
                    (seen_read, in_read) = (reads, 0);
                }
                in_read += 1;
                if in_read > LAST_READ_EVENTS.load(Ordering::SeqCst) {
                    late += 1;
                }
                delivery_ns.push(t.saturating_sub(LAST_READ_NS.load(Ordering::SeqCst)));
            }
        }));
        r.expect("complete answer");
        ours.push(first.expect("content"));
    }
    let (raw_ms, ours_ms) = (median(&mut raw), median(&mut ours));
    delivery_ns.sort_unstable();
    let p = |q: f64| delivery_ns[((delivery_ns.len() - 1) as f64 * q) as usize];
    println!("time to first token over loopback, median of {RUNS} (new connection each):");
    println!("  raw socket read          {:>8} µs", raw_ms);
    println!("  steadyllm-embassy client {:>8} µs", ours_ms);
    println!(
        "  added by the client      {:>8} µs",
        ours_ms as i64 - raw_ms as i64
    );
    println!(
        "delivery: {} content items; read → callback p50 {} ns, p99 {} ns, max {} ns; items delivered a read late: {late}",
        delivery_ns.len(),
        p(0.5),
        p(0.99),
        delivery_ns.last().copied().unwrap_or(0)
    );
}
