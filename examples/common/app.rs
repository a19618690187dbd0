//! What both firmware examples do once the network is up: the configuration given at build
//! time, DNS, the steadyllm client, and a chat completion streamed to the log (defmt) every
//! 30 seconds. Board-specific code (Wi-Fi, the network driver, the clock) is in each `main.rs`.
//!
//! Build-time settings (environment variables read by `option_env!`; rebuild after changing):
//!
//! | variable | default |
//! |---|---|
//! | `WIFI_SSID` | none: the firmware stops with a message saying to set it |
//! | `WIFI_PASSWORD` | empty (open network) |
//! | `STEADYLLM_BASE_URL` | `http://192.168.1.10:8080/v1` (the mock server on a LAN host) |
//! | `STEADYLLM_FALLBACK_URL` | none (set it to see failover) |
//! | `STEADYLLM_API_KEY` | `sk-mock` |
//! | `STEADYLLM_MODEL` | `gpt-4o-mini` |
//! | `STEADYLLM_PROMPT` | `Why is the sky blue? Answer in two sentences.` |
//! | `STEADYLLM_CA_DER_PATH` | none; with `--features tls`, the root certificates (DER, one or several back to back) that `https://` servers are checked against; with `--features builtin-roots` and no file, the library's built-in roots (Let's Encrypt, Google, DigiCert, Microsoft, Amazon, SSL.com, Sectigo) |

use embassy_net::Stack;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_time::{Duration, Timer};
use static_cell::{ConstStaticCell, StaticCell};
use steadyllm_embassy::steadyllm_core::call::CallConfig;
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, Event, SharedState};

macro_rules! or {
    ($v:expr, $default:expr) => {
        match $v {
            Some(v) => v,
            None => $default,
        }
    };
}

/// Wi-Fi network name; required.
pub const WIFI_SSID: Option<&str> = option_env!("WIFI_SSID");
/// Wi-Fi passphrase; empty for an open network.
pub const WIFI_PASSWORD: &str = or!(option_env!("WIFI_PASSWORD"), "");
const BASE_URL: &str = or!(
    option_env!("STEADYLLM_BASE_URL"),
    "http://192.168.1.10:8080/v1"
);
const FALLBACK_URL: Option<&str> = option_env!("STEADYLLM_FALLBACK_URL");
const API_KEY: &str = or!(option_env!("STEADYLLM_API_KEY"), "sk-mock");
const MODEL: &str = or!(option_env!("STEADYLLM_MODEL"), "gpt-4o-mini");
const PROMPT: &str = or!(
    option_env!("STEADYLLM_PROMPT"),
    "Why is the sky blue? Answer in two sentences."
);
/// The root certificates (DER, back to back) from `STEADYLLM_CA_DER_PATH`, copied by build.rs
/// (empty if unset).
#[cfg(feature = "tls")]
const CA_DER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ca.der"));

/// Sockets: one connection at a time, 4 KiB receive / 2 KiB send windows.
type Tcp = TcpClient<'static, 1, 4096, 2048>;
type AppClient = Client<'static, Tcp, DnsSocket<'static>>;

/// `size_of` the future an async fn returns, computed by the compiler for this target.
const fn future_size<A, B, Fut: core::future::Future>(_: &impl Fn(A, B) -> Fut) -> usize {
    core::mem::size_of::<Fut>()
}

/// A call like the one in [`run`] (with an empty callback), only for its future's size.
async fn call_for_size(
    client: &'static mut AppClient,
    bufs: &'static mut Buffers<'static>,
) -> Result<steadyllm_embassy::steadyllm_core::call::Summary, steadyllm_embassy::ChatError> {
    client
        .chat(&ChatRequest::new(MODEL, &[]), bufs, |_| {})
        .await
}

/// The per-call RAM: one call's future on this target, in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
static STEADYLLM_CALL_FUTURE_BYTES: u32 = future_size(&call_for_size) as u32;

/// The client object (it holds the SSE buffer), in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
static STEADYLLM_CLIENT_BYTES: u32 = core::mem::size_of::<AppClient>() as u32;

/// Stops here with a message, every 10 s (a misconfigured build).
pub async fn halt(why: &str) -> ! {
    loop {
        defmt::error!("{=str}", why);
        Timer::after(Duration::from_secs(10)).await;
    }
}

/// The text of the answer, printed a line at a time (defmt prints one frame per call).
struct LineOut {
    buf: [u8; 96],
    len: usize,
}

impl LineOut {
    fn push(&mut self, piece: &str) {
        for (i, c) in piece.char_indices() {
            let s = &piece[i..i + c.len_utf8()];
            if self.len + s.len() > self.buf.len() {
                self.flush();
            }
            if c == '\n' {
                self.flush();
                continue;
            }
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("");
            defmt::println!("> {=str}", text);
            self.len = 0;
        }
    }
}

/// Waits for DHCP, then asks the model every 30 s and streams the answer to the log.
/// `seed` seeds the backoff jitter only; with TLS, `tls_rng` (a CSPRNG fed by the board's
/// entropy source) makes every handshake's secrets.
pub async fn run(
    stack: Stack<'static>,
    seed: u64,
    #[cfg(feature = "tls")] tls_rng: &'static mut dyn steadyllm_embassy::tls::CryptoRngCore,
) -> ! {
    defmt::info!("waiting for DHCP…");
    stack.wait_config_up().await;
    if let Some(config) = stack.config_v4() {
        defmt::info!("IP address {}", config.address);
    }

    static TCP_STATE: StaticCell<TcpClientState<1, 4096, 2048>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let dns = DNS.init(DnsSocket::new(stack));

    // Endpoints, primary first. A bad URL or key (CR/LF, no scheme…) is a build mistake.
    static ENDPOINTS: StaticCell<[Endpoint<'static>; 2]> = StaticCell::new();
    let Ok(primary) = Endpoint::new(BASE_URL, Some(API_KEY)) else {
        halt("STEADYLLM_BASE_URL / STEADYLLM_API_KEY are not valid: rebuild with e.g. STEADYLLM_BASE_URL=http://192.168.1.10:8080/v1").await
    };
    let fallback = match FALLBACK_URL.map(|url| Endpoint::new(url, Some(API_KEY))) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => halt("STEADYLLM_FALLBACK_URL is not a valid URL").await,
    };
    let endpoints = ENDPOINTS.init([primary, fallback.unwrap_or(primary)]);
    let endpoints: &'static [Endpoint<'static>] = if fallback.is_some() {
        &endpoints[..]
    } else {
        &endpoints[..1]
    };
    if primary.base_url.is_tls() && !cfg!(feature = "tls") {
        halt("STEADYLLM_BASE_URL is https:// but the firmware was built without --features tls")
            .await;
    }

    let config = CallConfig::default();
    static SHARED: StaticCell<SharedState> = StaticCell::new();
    let shared = SHARED.init(SharedState::new(endpoints.len(), &config));
    #[allow(unused_mut)]
    let mut client: AppClient = Client::new(tcp, dns, endpoints, shared, config, seed);
    #[cfg(feature = "tls")]
    {
        use steadyllm_embassy::{TlsSettings, TlsVerify, TrustAnchors};
        let roots = if !CA_DER.is_empty() {
            TrustAnchors::from_der_bundle(CA_DER)
        } else {
            #[cfg(feature = "builtin-roots")]
            let builtin = steadyllm_embassy::tls::BUILTIN_ROOTS;
            #[cfg(not(feature = "builtin-roots"))]
            let builtin = TrustAnchors::from_der_list(&[]);
            builtin
        };
        if roots.is_empty() && primary.base_url.is_tls() {
            halt("https:// needs roots: rebuild with STEADYLLM_CA_DER_PATH=roots.der or --features builtin-roots").await;
        }
        // No RTC here: validity is checked against the build time as a floor (see the TLS docs;
        // an SNTP client would pass its time with `TlsSettings::with_clock`).
        client = client.with_tls(TlsSettings::new(TlsVerify::Roots(roots), tls_rng));
    }

    // The caller's buffers: request body, request head, response (head + body pieces), and
    // with TLS the record buffers (16 640 bytes is the largest record a server may send).
    static BODY: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);
    static HEAD: ConstStaticCell<[u8; 512]> = ConstStaticCell::new([0; 512]);
    static RESPONSE: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
    let (body, head, response) = (BODY.take(), HEAD.take(), RESPONSE.take());
    #[cfg(feature = "tls")]
    static TLS_READ: ConstStaticCell<[u8; 16640]> = ConstStaticCell::new([0; 16640]);
    #[cfg(feature = "tls")]
    static TLS_WRITE: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
    #[cfg(feature = "tls")]
    let (tls_read, tls_write) = (TLS_READ.take(), TLS_WRITE.take());

    let messages = [Message::system("Be brief."), Message::user(PROMPT)];
    let request = ChatRequest::new(MODEL, &messages);
    let mut out = LineOut {
        buf: [0; 96],
        len: 0,
    };
    loop {
        defmt::info!("asking {=str}: {=str}", BASE_URL, PROMPT);
        let bufs = Buffers::new(body, head, response);
        #[cfg(feature = "tls")]
        let bufs = bufs.with_tls(tls_read, tls_write);
        let mut bufs = bufs;
        // Engine decisions (attempt, backoff, 429 with Retry-After, failover, cooling down)
        // are logged by the library itself (its `defmt` feature); they also arrive here as
        // `Event::Engine` for a UI.
        let result = client
            .chat(&request, &mut bufs, |event| match event {
                Event::Item(StreamItem::Content { text, .. }) => {
                    let mut pieces = text.pieces();
                    while let Some(piece) = pieces.next_piece() {
                        out.push(piece);
                    }
                }
                Event::Item(StreamItem::Finish { reason, .. }) => {
                    out.flush();
                    defmt::info!("finish reason: {}", reason);
                }
                Event::Engine(
                    e @ steadyllm_embassy::steadyllm_core::call::CallEvent::DiscardDelivered {
                        ..
                    },
                ) => {
                    out.flush();
                    defmt::warn!("{} — the answer starts again", e);
                }
                Event::ServerError { status, error } => {
                    defmt::warn!("server answered {}: {}", status, error.message);
                }
                _ => {}
            })
            .await;
        out.flush();
        match result {
            Ok(summary) => defmt::info!(
                "complete answer: {} bytes after {} attempt(s), from endpoint {}",
                summary.delivered_bytes,
                summary.attempts,
                summary.endpoint
            ),
            Err(e) => defmt::error!("no complete answer: {}", e),
        }
        Timer::after(Duration::from_secs(30)).await;
    }
}
