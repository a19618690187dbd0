//! One attempt: write the request, read the response head, read the body through the core's
//! framing decoder (and, for a stream, its SSE parser and decoder) — each read under the
//! deadline the engine gave.
//!
//! Everything after connecting works on one [`Conn`] type (plain or TLS) and reads through one
//! function, so it is compiled once per client, whatever the transport.

use core::marker::PhantomData;

use embassy_time::{Duration, Instant, with_deadline};
use embedded_io::ErrorKind;
use embedded_io_async::{Read, Write};
use steadyllm_core::attempt::{AttemptTimer, Phase};
use steadyllm_core::decode::{StreamDecoder, StreamEnd, StreamItem};
use steadyllm_core::hints::RetryHints;
use steadyllm_core::response::{BodyDecoder, Framing, ResponseHead};
use steadyllm_core::sse::{SseItem, SseParser};
use steadyllm_core::transport::{self, BodyKind};

/// The core's clock as an embassy-time instant's milliseconds.
pub(crate) fn now() -> steadyllm_core::time::Instant {
    steadyllm_core::time::Instant::from_millis(Instant::now().as_millis())
}

/// The deadline of a wait that begins now, from the attempt's timer (a read of the body
/// begins: the idle timeout counts from here), and the kind of timeout it is; `drain_by`, when
/// earlier, instead (after the end marker). Out of the async state machines, where it would
/// cost flash.
#[inline(never)]
fn next_wait(timer: &mut AttemptTimer, drain_by: Option<Instant>) -> (Instant, TimeoutKind) {
    timer.on_read(now());
    let (at, phase) = timer.deadline();
    let at = Instant::from_millis(at.as_millis());
    let kind = match phase {
        Phase::FirstByte => TimeoutKind::FirstByte,
        Phase::FirstToken => TimeoutKind::FirstToken,
        Phase::Idle => TimeoutKind::Idle,
        Phase::Total => TimeoutKind::Total,
    };
    match drain_by {
        Some(d) if d < at => (d, TimeoutKind::Idle),
        _ => (at, kind),
    }
}

/// How an attempt went wrong, as far as the transport and the stream can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AttemptFailure {
    /// A deadline passed.
    Timeout(TimeoutKind),
    /// The network failed (reset, closed early, TLS error…).
    Network(embedded_io::ErrorKind),
    /// The body's framing (chunked encoding) was broken.
    Protocol,
    /// The host name does not resolve.
    NameNotResolved,
    /// The answer is not an API response (head too large, not HTTP, …).
    Response(steadyllm_core::call::ResponseFault),
    /// An event did not fit the SSE parser's capacity.
    EventTooLarge,
    /// An event's JSON was malformed.
    Malformed,
    /// The body ended without the end marker.
    Truncated,
    /// An `https://` endpoint, but no TLS is configured (or built in).
    TlsNotConfigured,
    /// The server's certificate was refused, for this reason.
    Certificate(steadyllm_core::call::CertificateFault),
    /// The TLS handshake failed for another reason (the server refused it, or speaks TLS this
    /// client does not).
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
            AttemptFailure::Protocol => f.write_str("invalid HTTP body framing"),
            AttemptFailure::NameNotResolved => f.write_str("the host name does not resolve"),
            AttemptFailure::Response(r) => write!(f, "{r}"),
            AttemptFailure::EventTooLarge => {
                f.write_str("server-sent event larger than the parser")
            }
            AttemptFailure::Malformed => f.write_str("malformed event"),
            AttemptFailure::Truncated => f.write_str("stream ended without its end marker"),
            AttemptFailure::TlsNotConfigured => {
                f.write_str("https:// needs the `tls` feature and a TLS setting")
            }
            AttemptFailure::Certificate(c) => write!(f, "{c}"),
            AttemptFailure::TlsHandshake => f.write_str("TLS handshake failed"),
        }
    }
}

/// How long a finished stream may take to reach the end of its body before its connection is
/// dropped instead of kept for the next call.
const DRAIN: Duration = Duration::from_millis(200);

/// The connection of one attempt: plain TCP, or TLS over it. One value lives in the attempt's
/// future at a time, and without a heap there is nothing to box the TLS state into.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn<'b, C: Read + Write> {
    /// Plain TCP.
    Plain(C, PhantomData<&'b mut [u8]>),
    /// TLS over TCP, with the caller's record buffers.
    #[cfg(feature = "tls")]
    Tls(crate::tls::Tls<'b, C>),
}

impl<C: Read + Write> Conn<'_, C> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        match self {
            Conn::Plain(c, _) => c.read(buf).await.map_err(|e| embedded_io::Error::kind(&e)),
            #[cfg(feature = "tls")]
            Conn::Tls(c) => c.read(buf).await.map_err(|e| embedded_io::Error::kind(&e)),
        }
    }

    async fn write_all(&mut self, head: &[u8], body: &[u8]) -> Result<(), ErrorKind> {
        match self {
            Conn::Plain(c, _) => write_all(c, head, body).await,
            #[cfg(feature = "tls")]
            Conn::Tls(c) => write_all(c, head, body).await,
        }
    }
}

async fn write_all<W: Write>(w: &mut W, head: &[u8], body: &[u8]) -> Result<(), ErrorKind> {
    let kind = |e: W::Error| embedded_io::Error::kind(&e);
    // One write site for both parts: each `.await` is more code in the caller's future. A
    // write that takes nothing is an error here, where `Write::write_all` would panic.
    for mut part in [head, body] {
        while !part.is_empty() {
            match w.write(part).await.map_err(kind)? {
                0 => return Err(ErrorKind::WriteZero),
                n => part = part.get(n..).unwrap_or_default(),
            }
        }
    }
    w.flush().await.map_err(kind)
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

/// Runs `fut` until `deadline` (one the engine chose: the plan's `connect_by`, never past the
/// call's total deadline); on timeout says which kind.
pub(crate) async fn within<F: core::future::Future>(
    deadline: Instant,
    kind: TimeoutKind,
    fut: F,
) -> Result<F::Output, AttemptFailure> {
    with_deadline(deadline, fut)
        .await
        .map_err(|_| AttemptFailure::Timeout(kind))
}

/// Writes the head and body (by the first-byte deadline).
pub(crate) async fn send<C: Read + Write>(
    conn: &mut Conn<'_, C>,
    head: &[u8],
    body: &[u8],
    timer: &mut AttemptTimer,
) -> Result<(), AttemptFailure> {
    let (at, kind) = next_wait(timer, None);
    with_deadline(at, conn.write_all(head, body))
        .await
        .map_err(|_| AttemptFailure::Timeout(kind))?
        .map_err(AttemptFailure::Network)
}

/// The one place an attempt reads: into `buf`, by `at`. `Ok(0)` when the peer closed.
async fn read_by<C: Read + Write>(
    conn: &mut Conn<'_, C>,
    buf: &mut [u8],
    (at, kind): (Instant, TimeoutKind),
) -> Result<usize, AttemptFailure> {
    with_deadline(at, conn.read(buf))
        .await
        .map_err(|_| AttemptFailure::Timeout(kind))?
        .map_err(AttemptFailure::Network)
}

/// What the response head said.
pub(crate) struct Head {
    /// HTTP status.
    pub status: u16,
    /// What to do with the body, or why the answer is not an API response
    /// ([`transport::judge_head`]); on `Err` the head is left at the start of the buffer.
    pub kind: Result<BodyKind, steadyllm_core::call::Failure>,
    /// A redirect's `Location`: its place in the buffer.
    pub location: Option<(usize, usize)>,
    /// How the body ends.
    pub framing: Framing,
    /// The server allows another request on this connection.
    pub keep_alive: bool,
    /// Body bytes read with the head, now at the start of the buffer.
    pub buffered: usize,
}

/// Reads the response head into `buf`, passes its headers to `hints`, judges it (`streaming`:
/// a stream was asked for), and moves the body bytes read with it to the start of `buf`.
pub(crate) async fn read_head<C: Read + Write>(
    conn: &mut Conn<'_, C>,
    buf: &mut [u8],
    timer: &mut AttemptTimer,
    hints: &mut RetryHints,
    streaming: bool,
) -> Result<Head, AttemptFailure> {
    let mut filled = 0;
    loop {
        let free = buf.get_mut(filled..).unwrap_or_default();
        if free.is_empty() {
            return Err(AttemptFailure::Response(
                steadyllm_core::call::ResponseFault::HeadTooLarge {
                    limit: u16::try_from(buf.len()).unwrap_or(u16::MAX),
                },
            ));
        }
        let n = read_by(conn, free, next_wait(timer, None)).await?;
        if n == 0 {
            return Err(AttemptFailure::Network(ErrorKind::ConnectionAborted));
        }
        filled += n;
        let head = match ResponseHead::parse(buf.get(..filled).unwrap_or_default()) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(_) => {
                return Err(AttemptFailure::Response(
                    steadyllm_core::call::ResponseFault::NotHttp,
                ));
            }
        };
        let verdict = transport::read_head(&head, buf, hints, streaming);
        let len = head.len.min(filled);
        let head = Head {
            status: head.status,
            kind: verdict.kind,
            location: verdict.location,
            framing: head.framing,
            keep_alive: head.keep_alive,
            buffered: filled - len,
        };
        if head.kind.is_err() {
            // Nothing of the body is read; the head stays for the caller (a redirect's
            // Location).
            return Ok(head);
        }
        buf.copy_within(len..filled, 0);
        return Ok(head);
    }
}

/// What the body reader reports to its caller.
pub(crate) trait StreamSink {
    /// A decoded item (the sink passes it to its timer too).
    fn on_item(&mut self, item: StreamItem<'_>);
    /// The attempt's timer, which counts what was delivered and picks each read's deadline.
    fn timer(&mut self) -> &mut AttemptTimer;
}

/// Decodes one event (or a whole JSON answer) into `sink`. The one place the decoder is
/// called, so its callback exists once.
pub(crate) fn decode_into<S: StreamSink>(
    decoder: &mut StreamDecoder,
    data: &str,
    sink: &mut S,
) -> Result<(), steadyllm_core::decode::DecodeError> {
    decoder.decode(data, |item| sink.on_item(item))
}

/// Feeds `input` through the parser and decoder into `sink`: `Ok(Some(end))` at the end
/// marker (the parser and decoder are then reset), `Ok(None)` when the input is used up. An
/// event too large for the parser is dropped when the stream can go on without it
/// ([`StreamDecoder::dropped`]: the Responses API's summaries of a long answer). Out of the
/// async state machine (no await inside): flash.
#[inline(never)]
fn feed_events<S: StreamSink, const N: usize>(
    sse: &mut SseParser<N>,
    decoder: &mut StreamDecoder,
    sink: &mut S,
    mut input: &[u8],
) -> Result<Option<StreamEnd>, AttemptFailure> {
    loop {
        match sse.feed(&mut input) {
            Ok(Some(SseItem::Event(ev))) => {
                if decode_into(decoder, ev.data, sink).is_err() {
                    return Err(AttemptFailure::Malformed);
                }
            }
            Ok(Some(SseItem::Retry(_))) => continue,
            Ok(None) => return Ok(None),
            Err(_) => {
                if !decoder.dropped(sse.dropped_event_type(), |item| sink.on_item(item)) {
                    return Err(AttemptFailure::EventTooLarge);
                }
            }
        }
        if decoder.is_done() {
            sse.finish();
            return Ok(Some(decoder.finish()));
        }
    }
}

/// The parts a streamed body goes through.
pub(crate) struct Stream<'s, S, const N: usize> {
    pub sse: &'s mut SseParser<N>,
    pub decoder: &'s mut StreamDecoder,
    pub sink: &'s mut S,
}

/// How reading a body went.
pub(crate) struct BodyRead {
    /// Payload bytes collected at the start of the buffer (when collecting).
    pub kept: usize,
    /// `Ok`: the whole body was collected, or the stream reached its end marker.
    pub end: Result<(), AttemptFailure>,
    /// The connection is at the end of the body and the server allows another request on it.
    pub reusable: bool,
    /// How the decoder saw the stream end: Responses' `Failed`/`Incomplete` are the server's
    /// final verdict.
    #[cfg(feature = "responses")]
    pub stream_end: StreamEnd,
    /// Responses: the `sequence_number` of the last event delivered (a resume starts after it).
    #[cfg(feature = "responses")]
    pub last_event: Option<u64>,
}

/// Reads the body that follows `head` (its first `head.buffered` bytes already at the start of
/// `buf`). `collect`: keep the payload at the start of `buf` (a whole JSON answer or an error
/// body; a body larger than `buf` ends in [`AttemptFailure::EventTooLarge`]). Otherwise stream
/// it through the SSE parser and decoder to the sink, until the end marker. Each read is
/// bounded by the deadline the sink's timer gives (the core's rule: first token, idle, total);
/// after each read the task yields, so a pulling `ChatStream` takes what the read produced.
pub(crate) async fn read_body<C: Read + Write, S: StreamSink, const N: usize>(
    conn: &mut Conn<'_, C>,
    buf: &mut [u8],
    head: &Head,
    collect: bool,
    stream: Stream<'_, S, N>,
) -> BodyRead {
    let Stream { sse, decoder, sink } = stream;
    let mut body = BodyDecoder::new(head.framing);
    let (mut kept, mut pos, mut filled) = (0, 0, head.buffered);
    // After the end marker: read on (until then) to the end of the body, to reuse the
    // connection.
    let mut drain_by: Option<Instant> = None;
    // How the decoder saw the stream end (Responses' `failed`/`incomplete` are final).
    #[cfg(feature = "responses")]
    let mut stream_end = StreamEnd::Complete;
    let mut end = loop {
        let mut failure = None;
        while pos < filled && !body.is_done() && failure.is_none() {
            let mut input = buf.get(pos..filled).unwrap_or_default();
            let before = input.len();
            let data = match body.decode(&mut input) {
                Ok(d) => d.len(),
                Err(_) => {
                    failure = Some(AttemptFailure::Protocol);
                    break;
                }
            };
            // The payload is the last bytes consumed.
            let consumed = before - input.len();
            let at = pos + consumed - data;
            pos += consumed;
            if collect {
                buf.copy_within(at..pos, kept);
                kept += data;
                continue;
            }
            if drain_by.is_some() {
                continue;
            }
            match feed_events(sse, decoder, sink, buf.get(at..pos).unwrap_or_default()) {
                Ok(None) => {}
                Ok(Some(_end)) => {
                    #[cfg(feature = "responses")]
                    {
                        stream_end = _end;
                    }
                    drain_by = Some(Instant::now() + DRAIN);
                }
                Err(f) => failure = Some(f),
            }
        }
        if !collect {
            // Let the task's other work — a pulling `ChatStream` — take what this read
            // produced.
            yield_now().await;
        }
        if let Some(f) = failure {
            break Err(f);
        }
        if body.is_done() {
            break Ok(());
        }
        (pos, filled) = (kept, kept);
        let free = buf.get_mut(kept..).unwrap_or_default();
        if free.is_empty() {
            break Err(AttemptFailure::EventTooLarge);
        }
        match read_by(conn, free, next_wait(sink.timer(), drain_by)).await {
            Ok(0) => {
                if body.finish().is_err() {
                    break Err(AttemptFailure::Network(ErrorKind::ConnectionAborted));
                }
                break Ok(());
            }
            Ok(n) => filled += n,
            Err(f) => break Err(f),
        }
    };
    let reusable = end.is_ok() && body.is_done() && head.keep_alive;
    // The last event delivered, before `finish` forgets it (a resume starts after it).
    #[cfg(feature = "responses")]
    let last_event = decoder.sequence_number();
    if drain_by.is_some() {
        // The stream is complete, however its body ended.
        end = Ok(());
    } else if !collect && end.is_ok() {
        // The body ended before the end marker.
        sse.finish();
        let _end = decoder.finish();
        #[cfg(feature = "responses")]
        {
            stream_end = _end;
        }
        end = match _end {
            // Responses' `failed`/`incomplete` also end the stream by themselves; their items
            // (an error, a finish reason) say how, and `stream_end` that they are final.
            StreamEnd::Complete | StreamEnd::Failed | StreamEnd::Incomplete => Ok(()),
            StreamEnd::Truncated => Err(AttemptFailure::Truncated),
        };
    }
    BodyRead {
        kept,
        end,
        reusable,
        #[cfg(feature = "responses")]
        stream_end,
        #[cfg(feature = "responses")]
        last_event,
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use embedded_io::ErrorKind;

    use super::write_all;

    /// Takes at most 3 bytes a write, and nothing once `room` bytes were taken.
    struct Trickle {
        got: Vec<u8>,
        room: usize,
    }

    impl embedded_io_async::ErrorType for Trickle {
        type Error = ErrorKind;
    }

    impl embedded_io_async::Write for Trickle {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(3).min(self.room - self.got.len());
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn head_and_body_are_written_whole_and_a_write_that_takes_nothing_fails() {
        let mut w = Trickle {
            got: Vec::new(),
            room: 100,
        };
        let r = embassy_futures::block_on(write_all(&mut w, b"POST /", b"{\"a\":1}"));
        assert_eq!((r, w.got.as_slice()), (Ok(()), &b"POST /{\"a\":1}"[..]));
        let mut w = Trickle {
            got: Vec::new(),
            room: 8,
        };
        let r = embassy_futures::block_on(write_all(&mut w, b"POST /", b"{\"a\":1}"));
        assert_eq!(
            (r, w.got.as_slice()),
            (Err(ErrorKind::WriteZero), &b"POST /{\""[..])
        );
    }
}
