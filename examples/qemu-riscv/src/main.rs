//! steadyllm on QEMU's riscv32 `virt` board — emulation, not hardware.
//!
//! Built for `riscv32imc-unknown-none-elf` (the ESP32-C3's instruction set: no atomic
//! instructions) with 400 KiB of RAM (the ESP32-C3's). It runs the Embassy executor with an
//! embassy-time driver on the board's CLINT timer, and embassy-net (DHCP, TCP) over the board's
//! virtio-net device through QEMU's user-mode network, where the host's 127.0.0.1 is 10.0.2.2.
//! It streams one chat completion with `steadyllm-embassy` and prints the same JSON lines as
//! `chat --json` on the UART, then a stack line, then the outcome, and ends QEMU with exit
//! status 0 only for a complete answer.
//!
//! Settings are `key=value` lines in a text file QEMU loads into memory at 0x8070_0000
//! (`-device loader,file=settings.txt,addr=0x80700000,force-raw=on`), so one build serves
//! every run: `url` (default `http://10.0.2.2:8080/v1`), `prompt`, and `timeout-ms` (first-byte
//! and idle timeouts). `scripts/qemu-chat` writes them.
#![no_std]
#![no_main]

mod board;
mod net;

use core::fmt::{self, Write};

use embassy_executor::{Executor, Spawner};
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, StackResources, dns::DnsSocket};
use embassy_time::{Duration, with_timeout};
use static_cell::{ConstStaticCell, StaticCell};
use steadyllm_core::call::{CallConfig, CallEvent, Timeouts, WaitReason};
use steadyllm_core::decode::StreamItem;
use steadyllm_core::http::Endpoint;
use steadyllm_core::json::JsonStr;
use steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, Event, SharedState};

use board::Uart;

/// One connection at a time, 4 KiB receive / 2 KiB send windows (as the ESP32-C3 example).
type Tcp = TcpClient<'static, 1, 4096, 2048>;
type AppClient = Client<'static, Tcp, DnsSocket<'static>>;

/// `size_of` the future an async fn returns, computed by the compiler for this target.
const fn future_size<A, B, Fut: core::future::Future>(_: &impl Fn(A, B) -> Fut) -> usize {
    core::mem::size_of::<Fut>()
}

/// A call like the one in `main_task` (with an empty callback), only for its future's size.
async fn call_for_size(
    client: &'static mut AppClient,
    bufs: &'static mut Buffers<'static>,
) -> Result<steadyllm_core::call::Summary, steadyllm_embassy::ChatError> {
    client
        .chat(&ChatRequest::new(MODEL, &[]), bufs, |_| {})
        .await
}

/// One call's future on this target, in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
static STEADYLLM_CALL_FUTURE_BYTES: u32 = future_size(&call_for_size) as u32;

/// The client object (it holds the SSE buffer), in bytes (read by scripts/size-report).
#[unsafe(no_mangle)]
#[used]
static STEADYLLM_CLIENT_BYTES: u32 = core::mem::size_of::<AppClient>() as u32;

const DEFAULT_URL: &str = "http://10.0.2.2:8080/v1";
const DEFAULT_PROMPT: &str = "Why is the sky blue?";
const MODEL: &str = "gpt-4o-mini";

// ---------------------------------------------------------------- JSON lines
/// Writes through to the UART with JSON string escaping (as serde_json escapes).
struct Escaped<'w>(&'w mut Uart);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc: Option<&str> = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0x08 => Some("\\b"),
                0x0C => Some("\\f"),
                0..=0x1F => None,
                _ => continue,
            };
            self.0.write_str(s.get(start..i).unwrap_or_default())?;
            match esc {
                Some(e) => self.0.write_str(e)?,
                None => write!(self.0, "\\u{:04x}", b)?,
            }
            start = i + 1;
        }
        self.0.write_str(s.get(start..).unwrap_or_default())
    }
}

/// A JSON string literal of `value`'s `Display` text.
fn quoted(out: &mut Uart, value: impl fmt::Display) {
    let _ = out.write_char('"');
    let _ = write!(Escaped(out), "{value}");
    let _ = out.write_char('"');
}

fn opt_str(out: &mut Uart, s: &Option<JsonStr<'_>>) {
    match s {
        Some(s) => quoted(out, s),
        None => {
            let _ = out.write_str("null");
        }
    }
}

/// One decoded item as its `conformance decode` contract line (what `chat --json` prints).
fn item_line(out: &mut Uart, item: &StreamItem<'_>) {
    let mut text = |kind: &str, choice: u32, field: &str, t: &JsonStr<'_>| {
        let _ = write!(
            out,
            "{{\"kind\":\"{kind}\",\"choice\":{choice},\"{field}\":"
        );
        quoted(out, t);
        let _ = out.write_str("}\n");
    };
    match item {
        StreamItem::Role { choice, role } => text("role", *choice, "role", role),
        StreamItem::Content { choice, text: t } => text("content", *choice, "text", t),
        StreamItem::Reasoning { choice, text: t } => text("reasoning", *choice, "text", t),
        StreamItem::Refusal { choice, text: t } => text("refusal", *choice, "text", t),
        StreamItem::Finish { choice, reason } => text("finish", *choice, "reason", reason),
        StreamItem::ToolCall(tc) => {
            let _ = write!(
                out,
                "{{\"kind\":\"tool_call\",\"choice\":{},\"index\":{},\"id\":",
                tc.choice, tc.index
            );
            opt_str(out, &tc.id);
            let _ = out.write_str(",\"name\":");
            opt_str(out, &tc.name);
            let _ = out.write_str(",\"arguments\":");
            quoted(out, tc.arguments);
            let _ = out.write_str("}\n");
        }
        StreamItem::Usage(u) => {
            let _ = writeln!(
                out,
                "{{\"kind\":\"usage\",\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}",
                u.prompt_tokens, u.completion_tokens, u.total_tokens
            );
        }
        StreamItem::Error(e) => error_line(out, e),
        StreamItem::Done => {
            let _ = out.write_str("{\"kind\":\"done\"}\n");
        }
    }
}

fn error_line(out: &mut Uart, e: &steadyllm_core::decode::ApiError<'_>) {
    let _ = out.write_str("{\"kind\":\"error\",\"message\":");
    quoted(out, e.message);
    let _ = out.write_str(",\"type\":");
    opt_str(out, &e.kind);
    let _ = out.write_str(",\"code\":");
    opt_str(out, &e.code);
    let _ = out.write_str("}\n");
}

// ---------------------------------------------------------------- tasks
#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, net::VirtioNet>) -> ! {
    runner.run().await
}

/// Prints the outcome line and ends the emulation (exit status 0 only for a complete answer).
fn finish(attempts: u32, error: Option<&dyn fmt::Display>) -> ! {
    let out = &mut Uart;
    let (peak, size) = board::stack_peak();
    let _ = writeln!(
        out,
        "{{\"kind\":\"stack\",\"peak_bytes\":{peak},\"stack_bytes\":{size}}}"
    );
    let _ = write!(out, "{{\"attempts\":{attempts},\"error\":");
    match error {
        Some(e) => quoted(out, e),
        None => {
            let _ = out.write_str("null");
        }
    }
    let _ = writeln!(out, ",\"kind\":\"outcome\",\"ok\":{}}}", error.is_none());
    board::exit(if error.is_none() { 0 } else { 1 })
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    let url = board::setting("url").unwrap_or(DEFAULT_URL);
    let prompt = board::setting("prompt").unwrap_or(DEFAULT_PROMPT);
    let timeout_ms: Option<u64> = board::setting("timeout-ms").and_then(|v| v.parse().ok());

    static RX: ConstStaticCell<[[u8; 1536]; 8]> = ConstStaticCell::new([[0; 1536]; 8]);
    static FRAME: ConstStaticCell<[u8; 1536]> = ConstStaticCell::new([0; 1536]);
    static TX: ConstStaticCell<[u8; 1536]> = ConstStaticCell::new([0; 1536]);
    let device = match net::VirtioNet::new(RX.take(), FRAME.take(), TX.take()) {
        Ok(d) => d,
        Err(net::NetInitError::NoDevice) => finish(
            0,
            Some(&"no virtio-net device: start QEMU with -device virtio-net-device"),
        ),
        Err(net::NetInitError::Driver(e)) => finish(0, Some(&e)),
    };
    let mac = device.mac();
    let seed = board::mtime()
        ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0x5e, 0xed]);

    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, runner) =
        embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);
    spawner.spawn(net_task(runner).unwrap());

    if with_timeout(Duration::from_secs(20), stack.wait_config_up())
        .await
        .is_err()
    {
        finish(0, Some(&"no DHCP lease within 20 s"));
    }
    if let Some(c) = stack.config_v4() {
        let _ = write!(Uart, "{{\"kind\":\"dhcp\",\"address\":\"{}\"", c.address);
        if let Some(g) = c.gateway {
            let _ = write!(Uart, ",\"gateway\":\"{g}\"");
        }
        let _ = Uart.write_str("}\n");
    }

    static TCP_STATE: StaticCell<TcpClientState<1, 4096, 2048>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let dns = DNS.init(DnsSocket::new(stack));

    static ENDPOINTS: StaticCell<[Endpoint<'static>; 1]> = StaticCell::new();
    let endpoint = match Endpoint::new(url, None) {
        Ok(e) => e,
        Err(e) => finish(0, Some(&e)),
    };
    let endpoints = ENDPOINTS.init([endpoint]);

    static MESSAGES: StaticCell<[Message<'static>; 1]> = StaticCell::new();
    let messages = MESSAGES.init([Message::user(prompt)]);
    let request = ChatRequest::new(MODEL, messages);
    // The request's timeout tier; `timeout-ms` shortens first byte and idle (as `chat --chaos`).
    let mut t = Timeouts::for_profile(request.profile());
    if let Some(ms) = timeout_ms {
        t.first_byte = steadyllm_core::time::Duration::from_millis(ms);
        t.idle = steadyllm_core::time::Duration::from_millis(ms);
    }
    let config = CallConfig {
        timeouts: Some(t),
        ..CallConfig::default()
    };
    static SHARED: StaticCell<SharedState> = StaticCell::new();
    let shared = SHARED.init(SharedState::new(endpoints.len(), &config));
    static CLIENT: StaticCell<AppClient> = StaticCell::new();
    let client = CLIENT.init(Client::new(tcp, dns, &endpoints[..], shared, config, seed));

    static BODY: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);
    static HEAD: ConstStaticCell<[u8; 512]> = ConstStaticCell::new([0; 512]);
    static RESPONSE: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
    let mut bufs = Buffers::new(BODY.take(), HEAD.take(), RESPONSE.take());

    let out = &mut Uart;
    // The attempt in progress: the outcome counts it on failure too (as `chat --json`).
    let mut started = 0u32;
    let result = client
        .chat(&request, &mut bufs, |event| match event {
            Event::Item(item) => item_line(out, &item),
            Event::Engine(CallEvent::AttemptStarted {
                number, endpoint, ..
            }) => {
                started = number;
                let _ = write!(out, "{{\"endpoint\":");
                quoted(out, if endpoint == 0 { url } else { "" });
                let _ = writeln!(out, ",\"kind\":\"attempt\",\"n\":{number}}}");
            }
            Event::Engine(CallEvent::AttemptFailed {
                number,
                endpoint,
                failure,
            }) => {
                let _ = write!(out, "{{\"endpoint\":");
                quoted(out, if endpoint == 0 { url } else { "" });
                let _ = write!(out, ",\"error\":");
                quoted(out, failure);
                let _ = writeln!(out, ",\"kind\":\"attempt_failed\",\"n\":{number}}}");
            }
            Event::Engine(CallEvent::DiscardDelivered { bytes }) => {
                let _ = writeln!(out, "{{\"bytes\":{bytes},\"kind\":\"discard\"}}");
            }
            Event::Engine(CallEvent::Waiting { delay, reason }) => {
                let _ = write!(
                    out,
                    "{{\"kind\":\"backoff\",\"ms\":{},\"reason\":",
                    delay.as_millis()
                );
                match reason {
                    WaitReason::Backoff(f) | WaitReason::RetryAfter(f) => quoted(out, f),
                    WaitReason::EndpointsUnavailable => quoted(out, "rate limited"),
                }
                let _ = out.write_str("}\n");
            }
            Event::ServerError { error, .. } => error_line(out, &error),
            Event::Redirected { status, location } => {
                let _ = write!(out, "{{\"kind\":\"redirect\",\"location\":");
                quoted(out, location);
                let _ = writeln!(out, ",\"status\":{status}}}");
            }
            _ => {}
        })
        .await;
    match result {
        Ok(summary) => finish(summary.attempts, None),
        Err(e) => finish(started, Some(&e)),
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    board::paint_stack();
    board::start_timer();
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| spawner.spawn(main_task(spawner).unwrap()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = write!(Uart, "{{\"kind\":\"panic\",\"message\":");
    quoted(&mut Uart, info.message());
    let _ = Uart.write_str("}\n");
    board::exit(3)
}
