//! steadyllm-embassy: the async Embassy adapter.
//!
//! It moves bytes and time between the network and `steadyllm-core`: connections come from any
//! `embedded-nal-async` stack (embassy-net on devices, [`host::HostStack`] on a PC), responses
//! are read with reqwless, and every byte of the body goes through the core's SSE parser and
//! decoder as soon as it arrives. Deadlines are enforced with embassy-time. No heap: the caller
//! owns every buffer.
//!
//! **Work in progress**: one attempt per call (no retries or failover yet) and plain HTTP only.
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod attempt;
mod connect;
#[cfg(feature = "std")]
pub mod host;

pub use attempt::{AttemptFailure, TimeoutKind};
pub use steadyllm_core;

use embassy_time::{Duration, Instant};
use embedded_io_async::Write;
use embedded_nal_async::{Dns, TcpConnect};
use reqwless::client::HttpConnection;
use steadyllm_core::decode::{ApiError, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::http::{Endpoint, RequestHead};
use steadyllm_core::request::ChatRequest;
use steadyllm_core::sse::SseParser;

use attempt::{AttemptDeadlines, StreamSink};

/// Timeouts of one call.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From the request being sent to the response head.
    pub first_byte: Duration,
    /// From the request being sent to the first content.
    pub first_token: Duration,
    /// Longest silence while the body streams (keep-alive comments count as life).
    pub idle: Duration,
    /// The whole call.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(300),
        }
    }
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChatError {
    /// The request could not be written into the caller's buffer (too small, bad values).
    Request(steadyllm_core::request::RequestError),
    /// The request head could not be written.
    Head(steadyllm_core::http::HeadError),
    /// The attempt failed on the way.
    Attempt(AttemptFailure),
    /// The server answered with a non-2xx status.
    Status(u16),
}

impl core::fmt::Display for ChatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChatError::Request(e) => write!(f, "{e}"),
            ChatError::Head(e) => write!(f, "{e}"),
            ChatError::Attempt(e) => write!(f, "{e}"),
            ChatError::Status(s) => write!(f, "server answered HTTP {s}"),
        }
    }
}

impl core::error::Error for ChatError {}

/// What the caller sees while a call runs.
#[derive(Clone, Copy, Debug)]
pub enum Event<'e> {
    /// A decoded item of the answer (content, reasoning, tool-call fragment, finish, usage…).
    Item(StreamItem<'e>),
    /// The server's error object for a non-2xx answer (when its body was JSON).
    ServerError {
        /// HTTP status.
        status: u16,
        /// The parsed error.
        error: ApiError<'e>,
    },
}

/// The caller's buffers for one call.
pub struct Buffers<'b> {
    /// The JSON body is written here.
    pub body: &'b mut [u8],
    /// The request head is written here (512 bytes is plenty).
    pub head: &'b mut [u8],
    /// The response head and body are read through here (2 KiB or more).
    pub response: &'b mut [u8],
}

/// How a successful call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outcome {
    /// Attempts made.
    pub attempts: u32,
    /// Content bytes delivered.
    pub delivered_bytes: usize,
}

/// A chat client over an `embedded-nal-async` stack.
///
/// `N` is the SSE parser capacity: the largest event the client accepts (4096 is plenty for
/// chat streams).
pub struct Client<'a, T: TcpConnect, D: Dns, const N: usize = 4096> {
    tcp: &'a T,
    dns: &'a D,
    endpoint: Endpoint<'a>,
    timeouts: Timeouts,
    sse: SseParser<N>,
    decoder: StreamDecoder,
}

struct Sink<'f, F> {
    on_event: &'f mut F,
    delivered: usize,
}

impl<F: FnMut(Event<'_>)> StreamSink for Sink<'_, F> {
    fn on_bytes(&mut self, _n: usize) {}

    fn on_item(&mut self, item: StreamItem<'_>) -> bool {
        if let StreamItem::Content { text, .. } = item {
            self.delivered += text.decoded_len();
        }
        (self.on_event)(Event::Item(item));
        true
    }
}

impl<'a, T: TcpConnect, D: Dns, const N: usize> Client<'a, T, D, N> {
    /// A client for `endpoint`.
    pub fn new(tcp: &'a T, dns: &'a D, endpoint: Endpoint<'a>) -> Self {
        Client {
            tcp,
            dns,
            endpoint,
            timeouts: Timeouts::default(),
            sse: SseParser::new(),
            decoder: StreamDecoder::new(endpoint.dialect),
        }
    }

    /// The same client with other timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sends `request` and passes each decoded item to `on_event` as soon as its event is
    /// complete.
    pub async fn chat<F: FnMut(Event<'_>)>(
        &mut self,
        request: &ChatRequest<'_>,
        bufs: &mut Buffers<'_>,
        mut on_event: F,
    ) -> Result<Outcome, ChatError> {
        let start = Instant::now();
        let t = self.timeouts;
        let ep = self.endpoint;
        let mut req = *request;
        if let Some(m) = ep.model {
            req.model = m;
        }
        let body_len = req
            .write_body(ep.dialect, bufs.body)
            .map_err(ChatError::Request)?;
        let head_len = RequestHead::new(&ep, body_len, req.stream)
            .write(bufs.head)
            .map_err(ChatError::Head)?;
        let total = start + t.total;
        let socket =
            connect::connect_tcp(self.tcp, self.dns, &ep.base_url, start + t.connect, total)
                .await
                .map_err(ChatError::Attempt)?;
        let mut conn = HttpConnection::Plain(socket);
        let sent = Instant::now();
        let deadlines = AttemptDeadlines {
            first_byte: sent + t.first_byte,
            first_token: Some(sent + t.first_token),
            idle: t.idle,
            total,
        };
        attempt::send(
            &mut conn,
            bufs.head.get(..head_len).unwrap_or_default(),
            bufs.body.get(..body_len).unwrap_or_default(),
            &deadlines,
        )
        .await
        .map_err(ChatError::Attempt)?;
        let _ = conn.flush().await;
        let response = attempt::read_head(&mut conn, bufs.response, &deadlines)
            .await
            .map_err(ChatError::Attempt)?;
        let status = response.status.0;
        let mut body = response.body().reader();
        if !(200..300).contains(&status) {
            let mut err_buf = [0u8; 512];
            if let Some(error) = attempt::read_error_body(&mut body, &mut err_buf, &deadlines).await
            {
                on_event(Event::ServerError { status, error });
            }
            return Err(ChatError::Status(status));
        }
        self.sse.finish();
        self.decoder.finish();
        let mut sink = Sink {
            on_event: &mut on_event,
            delivered: 0,
        };
        let end = attempt::stream_body(
            &mut body,
            &mut self.sse,
            &mut self.decoder,
            &deadlines,
            &mut sink,
        )
        .await
        .map_err(ChatError::Attempt)?;
        debug_assert_eq!(end, StreamEnd::Complete);
        Ok(Outcome {
            attempts: 1,
            delivered_bytes: sink.delivered,
        })
    }
}
