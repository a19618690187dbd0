//! The size probe: the smallest RP2040 firmware that streams a chat completion over embassy-net.
//!
//! Built twice by `scripts/size-report`:
//! - default: the baseline — Embassy executor, embassy-net (DHCP, DNS, TCP), reqwless sending
//!   the request and reading the streamed body, the SSE lines split by hand and each chunk
//!   decoded with serde-json-core;
//! - `--features steadyllm`: the same firmware, the call made by steadyllm instead (request
//!   building, SSE, decoding, timeouts, retries, failover, breakers).
//!
//! Both variants use the same network stack, the same socket buffers and the same caller
//! buffers (request body, response, 4 KiB for one event), and hand the text to the same sink.
//! The network driver is a stand-in whose receive path the compiler cannot prove empty, so the
//! whole smoltcp receive path is linked as on a real board; the Wi-Fi driver is not part of
//! the comparison. Nothing here is meant to run.
//!
//! Two numbers are kept in the image for the report (read from the ELF's symbol table):
//! `STEADYLLM_CALL_FUTURE_BYTES`, the size of one call's future on this target (computed by the
//! compiler: the future type of `call`), and `STEADYLLM_CLIENT_BYTES`, the size of the long-lived
//! client object (reqwless `HttpClient` or steadyllm `Client`, which holds the SSE buffer).
#![no_std]
#![no_main]

use core::future::Future;
use core::ptr::{addr_of, addr_of_mut};

use embassy_executor::Spawner;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, StackResources};
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};
use embassy_time::{Duration, Timer};
use static_cell::StaticCell;

/// The mock server on a LAN host (nothing is sent: the probe is only linked).
const BASE_URL: &str = "http://192.168.1.10:8080/v1";
const API_KEY: &str = "sk-size-probe";
const MODEL: &str = "gpt-4o-mini";
const PROMPT: &str = "Why is the sky blue?";

/// Caller buffers, the same in both variants.
const BODY: usize = 1024;
const RESPONSE: usize = 4096;
/// One SSE event (the baseline's line buffer; steadyllm's parser capacity, inside its Client).
const EVENT: usize = 4096;

type Tcp = TcpClient<'static, 1, 4096, 1024>;
type Dns = DnsSocket<'static>;

/// Where the answer's text goes (a stand-in for a UART).
#[inline(never)]
fn sink(text: &[u8]) {
    core::hint::black_box(text);
}

/// `size_of` the future an async fn returns, computed by the compiler for this target.
const fn future_size<A, B, Fut: Future>(_: &impl Fn(A, B) -> Fut) -> usize {
    core::mem::size_of::<Fut>()
}

#[cfg(not(feature = "steadyllm"))]
mod variant {
    //! The baseline: reqwless + serde-json-core.
    use super::*;
    use reqwless::client::HttpClient;
    use reqwless::headers::ContentType;
    use reqwless::request::{Method, RequestBuilder};
    use serde::{Deserialize, Serialize};

    const URL: &str = "http://192.168.1.10:8080/v1/chat/completions";
    const AUTHORIZATION: &str = "Bearer sk-size-probe";

    #[derive(Serialize)]
    struct Msg<'a> {
        role: &'a str,
        content: &'a str,
    }

    #[derive(Serialize)]
    struct Req<'a> {
        model: &'a str,
        stream: bool,
        messages: [Msg<'a>; 1],
    }

    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(borrow)]
        content: Option<&'a str>,
    }

    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow)]
        delta: Delta<'a>,
    }

    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        choices: (Choice<'a>,),
    }

    pub type Client = HttpClient<'static, Tcp, Dns>;

    pub struct Bufs {
        body: [u8; BODY],
        response: [u8; RESPONSE],
        line: [u8; EVENT],
    }

    pub fn setup(tcp: &'static Tcp, dns: &'static Dns) -> (&'static mut Client, &'static mut Bufs) {
        let _ = (BASE_URL, API_KEY);
        static CLIENT: StaticCell<Client> = StaticCell::new();
        static BUFS: StaticCell<Bufs> = StaticCell::new();
        let client = CLIENT.init(HttpClient::new(tcp, dns));
        let bufs = BUFS.init(Bufs {
            body: [0; BODY],
            response: [0; RESPONSE],
            line: [0; EVENT],
        });
        (client, bufs)
    }

    #[derive(Debug)]
    pub enum Error {
        Http,
        Status,
        Json,
        LineTooLong,
        Timeout,
    }

    impl From<reqwless::Error> for Error {
        fn from(_: reqwless::Error) -> Self {
            Error::Http
        }
    }

    /// One streamed chat completion.
    pub async fn call(
        client: &'static mut Client,
        bufs: &'static mut Bufs,
    ) -> Result<usize, Error> {
        embassy_time::with_timeout(Duration::from_secs(60), call_inner(client, bufs))
            .await
            .map_err(|_| Error::Timeout)?
    }

    async fn call_inner(client: &mut Client, bufs: &mut Bufs) -> Result<usize, Error> {
        let req = Req {
            model: MODEL,
            stream: true,
            messages: [Msg {
                role: "user",
                content: PROMPT,
            }],
        };
        let n = serde_json_core::to_slice(&req, &mut bufs.body).map_err(|_| Error::Json)?;
        let headers = [
            ("Authorization", AUTHORIZATION),
            ("Accept", "text/event-stream"),
        ];
        let mut handle = client
            .request(Method::POST, URL)
            .await?
            .content_type(ContentType::ApplicationJson)
            .headers(&headers)
            .body(&bufs.body[..n]);
        let response = handle.send(&mut bufs.response).await?;
        if !response.status.is_successful() {
            return Err(Error::Status);
        }
        let mut reader = response.body().reader();
        let line = &mut bufs.line;
        let (mut len, mut delivered) = (0usize, 0usize);
        loop {
            let n = embedded_io_async::Read::read(&mut reader, &mut line[len..])
                .await
                .map_err(|_| Error::Http)?;
            if n == 0 {
                return Err(Error::Http);
            }
            len += n;
            while let Some(end) = line[..len].iter().position(|&b| b == b'\n') {
                if let Some(data) = line[..end].strip_prefix(b"data: ") {
                    if data == b"[DONE]" {
                        return Ok(delivered);
                    }
                    if let Ok((chunk, _)) = serde_json_core::from_slice::<Chunk<'_>>(data)
                        && let Some(text) = chunk.choices.0.delta.content
                    {
                        delivered += text.len();
                        sink(text.as_bytes());
                    }
                }
                line.copy_within(end + 1..len, 0);
                len -= end + 1;
            }
            if len == line.len() {
                return Err(Error::LineTooLong);
            }
        }
    }
}

#[cfg(feature = "steadyllm")]
mod variant {
    //! steadyllm.
    use super::*;
    use steadyllm_core::call::CallConfig;
    use steadyllm_core::decode::StreamItem;
    use steadyllm_core::http::Endpoint;
    use steadyllm_core::request::{ChatRequest, Message};
    use steadyllm_embassy::{Buffers, ChatError, Event, SharedState};

    pub type Client = steadyllm_embassy::Client<
        'static,
        Tcp,
        Dns,
        embassy_sync_noop::Noop,
        { steadyllm_core::call::MAX_ENDPOINTS },
        EVENT,
    >;

    mod embassy_sync_noop {
        pub type Noop = embassy_sync::blocking_mutex::raw::NoopRawMutex;
    }

    pub struct Bufs {
        request: ChatRequest<'static>,
        buffers: Buffers<'static>,
    }

    pub fn setup(tcp: &'static Tcp, dns: &'static Dns) -> (&'static mut Client, &'static mut Bufs) {
        static ENDPOINTS: StaticCell<[Endpoint<'static>; 1]> = StaticCell::new();
        static SHARED: StaticCell<SharedState> = StaticCell::new();
        static MESSAGES: [Message<'static>; 1] = [Message::user(PROMPT)];
        static CLIENT: StaticCell<Client> = StaticCell::new();
        static BUFS: StaticCell<Bufs> = StaticCell::new();
        static mut BODY_BUF: [u8; BODY] = [0; BODY];
        static mut HEAD_BUF: [u8; 512] = [0; 512];
        static mut RESPONSE_BUF: [u8; RESPONSE] = [0; RESPONSE];

        let Ok(endpoint) = Endpoint::new(BASE_URL, Some(API_KEY)) else {
            panic!()
        };
        let endpoints = ENDPOINTS.init([endpoint]);
        let config = CallConfig::default();
        let shared = SHARED.init(SharedState::new(endpoints.len(), &config));
        let client = CLIENT.init(steadyllm_embassy::Client::new(
            tcp, dns, endpoints, shared, config, 0x5eed,
        ));
        // SAFETY: `setup` runs once (the StaticCells above panic on a second call).
        let (body, head, response) = unsafe {
            (
                &mut *addr_of_mut!(BODY_BUF),
                &mut *addr_of_mut!(HEAD_BUF),
                &mut *addr_of_mut!(RESPONSE_BUF),
            )
        };
        let bufs = BUFS.init(Bufs {
            request: ChatRequest::new(MODEL, &MESSAGES),
            buffers: Buffers::new(body, head, response),
        });
        (client, bufs)
    }

    /// One streamed chat completion.
    pub async fn call(
        client: &'static mut Client,
        bufs: &'static mut Bufs,
    ) -> Result<usize, ChatError> {
        let mut delivered = 0usize;
        client
            .chat(&bufs.request, &mut bufs.buffers, |event| {
                if let Event::Item(StreamItem::Content { text, .. }) = event {
                    let mut pieces = text.pieces();
                    while let Some(piece) = pieces.next_piece() {
                        delivered += piece.len();
                        sink(piece.as_bytes());
                    }
                }
            })
            .await?;
        Ok(delivered)
    }
}

/// Size of one call's future on this target, in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
pub static STEADYLLM_CALL_FUTURE_BYTES: u32 = future_size(&variant::call) as u32;

/// Size of the long-lived client object, in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
pub static STEADYLLM_CLIENT_BYTES: u32 = core::mem::size_of::<variant::Client>() as u32;

/// A network driver whose receive path depends on memory the compiler cannot see through.
struct ProbeDriver;
struct ProbeRx;
struct ProbeTx;

static mut FRAME: [u8; 1514] = [0; 1514];
static mut FRAME_LEN: usize = 0;

fn frame() -> &'static mut [u8] {
    // SAFETY: single core, the network task is the only user.
    unsafe {
        let len = core::ptr::read_volatile(addr_of!(FRAME_LEN)).min(1514);
        &mut (&mut *addr_of_mut!(FRAME))[..len]
    }
}

impl embassy_net_driver::RxToken for ProbeRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(frame())
    }
}

impl embassy_net_driver::TxToken for ProbeTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // SAFETY: as in `frame`.
        unsafe { core::ptr::write_volatile(addr_of_mut!(FRAME_LEN), len) };
        let r = f(frame());
        core::hint::black_box(frame());
        r
    }
}

impl Driver for ProbeDriver {
    type RxToken<'a> = ProbeRx;
    type TxToken<'a> = ProbeTx;

    fn receive(
        &mut self,
        _cx: &mut core::task::Context,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // SAFETY: as in `frame`.
        let pending = unsafe { core::ptr::read_volatile(addr_of!(FRAME_LEN)) } != 0;
        pending.then_some((ProbeRx, ProbeTx))
    }

    fn transmit(&mut self, _cx: &mut core::task::Context) -> Option<Self::TxToken<'_>> {
        Some(ProbeTx)
    }

    fn link_state(&mut self, _cx: &mut core::task::Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = 1514;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet([0x02, 0, 0, 0, 0, 0x01])
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, ProbeDriver>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn call_task(client: &'static mut variant::Client, bufs: &'static mut variant::Bufs) -> ! {
    let (client, bufs): (*mut variant::Client, *mut variant::Bufs) = (client, bufs);
    loop {
        // SAFETY: each call's borrows end before the next call starts.
        let result = variant::call(unsafe { &mut *client }, unsafe { &mut *bufs }).await;
        core::hint::black_box(&result);
        Timer::after(Duration::from_secs(10)).await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let _p = embassy_rp::init(Default::default());
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, runner) = embassy_net::new(
        ProbeDriver,
        config,
        RESOURCES.init(StackResources::new()),
        0x5eed,
    );
    spawner.spawn(net_task(runner).unwrap());
    stack.wait_config_up().await;

    static TCP_STATE: StaticCell<TcpClientState<1, 4096, 1024>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    static DNS: StaticCell<Dns> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let dns = DNS.init(DnsSocket::new(stack));
    let (client, bufs) = variant::setup(tcp, dns);
    spawner.spawn(call_task(client, bufs).unwrap());
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m_asm_nop();
    }
}

#[inline(always)]
fn cortex_m_asm_nop() {
    core::hint::spin_loop();
}
