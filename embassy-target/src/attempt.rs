//! One attempt: write the request, read the response head, stream the body through the
//! core's SSE parser and decoder — each step under the deadline the engine gave.

use embassy_time::{Instant, with_deadline};
use embedded_io_async::{BufRead, Read, Write};
use reqwless::request::Method;
use reqwless::response::Response;
use steadyllm_core::decode::{ApiError, StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::sse::{SseItem, SseParser};

/// Deadlines of one attempt, as embassy-time instants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttemptDeadlines {
    /// The response head must have arrived by then.
    pub first_byte: Instant,
    /// The first content item must have arrived by then (`None`: no such limit).
    pub first_token: Option<Instant>,
    /// Longest silence between two reads of the body.
    pub idle: embassy_time::Duration,
    /// The call's total deadline.
    pub total: Instant,
}

/// How an attempt went wrong, as far as the transport and the stream can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AttemptFailure {
    /// A deadline passed.
    Timeout(TimeoutKind),
    /// The network failed (reset, closed early, TLS error…).
    Network(embedded_io::ErrorKind),
    /// The server's response was not HTTP we understand, or its head did not fit the buffer.
    Protocol,
    /// An event did not fit the SSE parser's capacity.
    EventTooLarge,
    /// An event's JSON was malformed.
    Malformed,
    /// The body ended without the end marker.
    Truncated,
    /// An `https://` endpoint, but no TLS is configured (or built in).
    TlsNotConfigured,
    /// The TLS handshake failed (unknown CA, wrong name, unsupported server).
    TlsHandshake,
}

/// Which deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TimeoutKind {
    /// TCP/TLS connect.
    Connect,
    /// Waiting for the response head.
    FirstByte,
    /// Waiting for the first content.
    FirstToken,
    /// Silence between two pieces of the body.
    Idle,
    /// The call's total deadline.
    Total,
}

impl core::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::FirstByte => "first byte",
            TimeoutKind::FirstToken => "first token",
            TimeoutKind::Idle => "idle",
            TimeoutKind::Total => "total deadline",
        })
    }
}

impl core::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttemptFailure::Timeout(k) => write!(f, "{k} timeout"),
            AttemptFailure::Network(k) => write!(f, "network error ({k:?})"),
            AttemptFailure::Protocol => f.write_str("invalid HTTP response"),
            AttemptFailure::EventTooLarge => {
                f.write_str("server-sent event larger than the parser")
            }
            AttemptFailure::Malformed => f.write_str("malformed event"),
            AttemptFailure::Truncated => f.write_str("stream ended without its end marker"),
            AttemptFailure::TlsNotConfigured => {
                f.write_str("https:// needs the `tls` feature and a TLS setting")
            }
            AttemptFailure::TlsHandshake => f.write_str("TLS handshake failed"),
        }
    }
}

fn reqwless_failure(e: reqwless::Error) -> AttemptFailure {
    match e {
        reqwless::Error::Network(k) => AttemptFailure::Network(k),
        reqwless::Error::ConnectionAborted => {
            AttemptFailure::Network(embedded_io::ErrorKind::ConnectionAborted)
        }
        _ => AttemptFailure::Protocol,
    }
}

/// Returns `Pending` once (waking itself), so whoever polls this task sees what was produced.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            core::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            core::task::Poll::Pending
        }
    })
    .await
}

/// Runs `fut` until `deadline`; on timeout says which kind.
pub(crate) async fn within<F: core::future::Future>(
    deadline: Instant,
    kind: TimeoutKind,
    total: Instant,
    fut: F,
) -> Result<F::Output, AttemptFailure> {
    let (at, kind) = if total < deadline {
        (total, TimeoutKind::Total)
    } else {
        (deadline, kind)
    };
    with_deadline(at, fut)
        .await
        .map_err(|_| AttemptFailure::Timeout(kind))
}

/// Writes the head and body.
pub(crate) async fn send<C: Write>(
    conn: &mut C,
    head: &[u8],
    body: &[u8],
    deadlines: &AttemptDeadlines,
) -> Result<(), AttemptFailure> {
    let write = async {
        conn.write_all(head).await?;
        conn.write_all(body).await?;
        conn.flush().await
    };
    within(
        deadlines.first_byte,
        TimeoutKind::FirstByte,
        deadlines.total,
        write,
    )
    .await?
    .map_err(|e| AttemptFailure::Network(embedded_io::Error::kind(&e)))
}

/// Reads the response head into `buf`.
pub(crate) async fn read_head<'c, 'b, C: Read + Write>(
    conn: &'c mut C,
    buf: &'b mut [u8],
    deadlines: &AttemptDeadlines,
) -> Result<Response<'c, 'b, C>, AttemptFailure> {
    within(
        deadlines.first_byte,
        TimeoutKind::FirstByte,
        deadlines.total,
        Response::read(conn, Method::POST, buf),
    )
    .await?
    .map_err(reqwless_failure)
}

/// What the body streamer reports to its caller.
pub(crate) trait StreamSink {
    /// Bytes arrived (life, even if they complete nothing).
    fn on_bytes(&mut self, n: usize);
    /// A decoded item; `false` stops the stream (the caller cancelled).
    fn on_item(&mut self, item: StreamItem<'_>) -> bool;
}

/// Streams an SSE body through the parser and decoder until the end marker, the end of the
/// body or a failure. Each read is bounded by the idle, first-token and total deadlines.
pub(crate) async fn stream_body<R: Read + BufRead, const N: usize>(
    body: &mut R,
    sse: &mut SseParser<N>,
    decoder: &mut StreamDecoder,
    deadlines: &AttemptDeadlines,
    sink: &mut impl StreamSink,
) -> Result<StreamEnd, AttemptFailure> {
    let mut got_content = false;
    loop {
        let idle_at = Instant::now() + deadlines.idle;
        let (at, kind) = match deadlines.first_token {
            Some(ft) if !got_content && ft < idle_at => (ft, TimeoutKind::FirstToken),
            _ => (idle_at, TimeoutKind::Idle),
        };
        let chunk = within(at, kind, deadlines.total, body.fill_buf()).await?;
        let chunk = chunk.map_err(|e| AttemptFailure::Network(embedded_io::Error::kind(&e)))?;
        let n = chunk.len();
        if n == 0 {
            sse.finish();
            return match decoder.finish() {
                StreamEnd::Complete => Ok(StreamEnd::Complete),
                StreamEnd::Truncated => Err(AttemptFailure::Truncated),
            };
        }
        sink.on_bytes(n);
        let mut rest = chunk;
        let mut stop = false;
        let mut failure = None;
        loop {
            match sse.feed(&mut rest) {
                Ok(Some(SseItem::Event(ev))) => {
                    let r = decoder.decode(ev.data, |item| {
                        if matches!(
                            item,
                            StreamItem::Content { .. }
                                | StreamItem::Reasoning { .. }
                                | StreamItem::Refusal { .. }
                                | StreamItem::ToolCall(_)
                        ) {
                            got_content = true;
                        }
                        if !stop && !sink.on_item(item) {
                            stop = true;
                        }
                    });
                    if r.is_err() {
                        failure = Some(AttemptFailure::Malformed);
                        break;
                    }
                    if decoder.is_done() || stop {
                        break;
                    }
                }
                Ok(Some(SseItem::Retry(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    failure = Some(AttemptFailure::EventTooLarge);
                    break;
                }
            }
        }
        let consumed = n - rest.len();
        body.consume(consumed);
        // Let the task's other work — a pulling `ChatStream` — take what this read produced.
        yield_now().await;
        if let Some(f) = failure {
            return Err(f);
        }
        if decoder.is_done() {
            sse.finish();
            decoder.finish();
            return Ok(StreamEnd::Complete);
        }
        if stop {
            return Ok(StreamEnd::Truncated);
        }
    }
}

/// Reads a (small) error body into `buf` and parses it; the status alone when it is not JSON.
pub(crate) async fn read_error_body<'b, R: Read>(
    body: &mut R,
    buf: &'b mut [u8],
    deadlines: &AttemptDeadlines,
) -> Option<ApiError<'b>> {
    let mut len = 0;
    while len < buf.len() {
        let idle_at = Instant::now() + deadlines.idle;
        match within(
            idle_at,
            TimeoutKind::Idle,
            deadlines.total,
            body.read(&mut buf[len..]),
        )
        .await
        {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => len += n,
        }
    }
    let text = core::str::from_utf8(buf.get(..len)?).ok()?;
    ApiError::parse(text).ok()
}
