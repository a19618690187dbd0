//! The HTTP/1.1 response: its head (status line and header fields) and its body's framing
//! (`Content-Length`, `Transfer-Encoding: chunked`, or until the connection closes).
//!
//! Sans-IO, like the rest of the core: [`ResponseHead::parse`] looks at the bytes read so far
//! and answers `Ok(None)` while the head is incomplete; [`BodyDecoder::decode`] takes the raw
//! body in pieces of any size and hands back the payload they hold, borrowed from the input.
//! The result never depends on where the pieces were split.
//!
//! ```
//! use steadyllm_core::response::{BodyDecoder, Framing, ResponseHead};
//!
//! let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
//! let head = ResponseHead::parse(raw).unwrap().unwrap();
//! assert_eq!((head.status, head.framing), (200, Framing::Chunked));
//! let mut body = BodyDecoder::new(head.framing);
//! let mut input = &raw[head.len..];
//! let mut payload = Vec::new();
//! while !input.is_empty() && !body.is_done() {
//!     payload.extend_from_slice(body.decode(&mut input).unwrap());
//! }
//! assert!(body.is_done());
//! assert_eq!(payload, b"hello");
//! ```
//!
//! What is accepted: lines end in CRLF or a bare LF; interim `1xx` heads are skipped; header
//! names are RFC 9110 tokens followed directly by `:`; values are trimmed of spaces and tabs
//! and must not hold control characters other than tab. Refused with a typed error: obsolete
//! line folding, conflicting or non-numeric `Content-Length`, any transfer coding other than a
//! single `chunked` (the client never asks for compression), malformed chunk framing, and
//! chunk-size, extension or trailer lines longer than [`MAX_CHUNK_LINE`].
//!
//! Panics: none, on any input. The head is bounded by the caller's buffer (a head that does not
//! fit is the caller's `Ok(None)` on a full buffer); the body decoder stores nothing, so its
//! memory is one small state value.

use core::fmt;

/// The longest chunk-size line (with extensions) or trailer line accepted, in bytes.
pub const MAX_CHUNK_LINE: usize = 4096;

/// How the body's end is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Framing {
    /// Exactly this many bytes (`Content-Length`; 0 for `204`/`304`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A response head that is not HTTP/1.1 this client can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResponseError {
    /// The status line is not `HTTP/1.x NNN [reason]`.
    StatusLine,
    /// A header line is not `name: value` with a token name and a value without control
    /// characters (obsolete line folding included).
    HeaderLine,
    /// `Content-Length` is not a decimal number, or two of them disagree.
    ContentLength,
    /// A `Transfer-Encoding` other than one `chunked`.
    TransferEncoding,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseError::StatusLine => "invalid HTTP status line",
            ResponseError::HeaderLine => "invalid HTTP header line",
            ResponseError::ContentLength => "invalid or conflicting Content-Length",
            ResponseError::TransferEncoding => "unsupported Transfer-Encoding",
        })
    }
}

impl core::error::Error for ResponseError {}

/// A parsed response head, borrowing the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'h> {
    /// The status code (100..=999; never 1xx, interim heads are skipped).
    pub status: u16,
    /// Bytes of the head, interim heads and the blank line included: the body starts here.
    pub len: usize,
    /// How the body's end is found.
    pub framing: Framing,
    /// The connection may carry another request after this body (HTTP/1.1, no
    /// `Connection: close`, a body with a known end).
    pub keep_alive: bool,
    /// The header lines (validated).
    fields: &'h [u8],
}

impl<'h> ResponseHead<'h> {
    /// Parses the head at the start of `buf`. `Ok(None)`: not complete yet, read more (when
    /// `buf` is already full, the head is too large for it).
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn parse(buf: &'h [u8]) -> Result<Option<Self>, ResponseError> {
        let mut start = 0;
        loop {
            let rest = buf.get(start..).unwrap_or_default();
            // Bytes that cannot begin a status line are not HTTP, however many follow.
            let n = rest.len().min(5);
            if rest.get(..n) != b"HTTP/".get(..n) {
                return Err(ResponseError::StatusLine);
            }
            let Some(end) = head_end(rest) else {
                return Ok(None);
            };
            let mut lines = rest.get(..end).unwrap_or_default();
            let status_line = split_line(&mut lines).unwrap_or_default();
            let (minor, status) = status_line_parts(status_line)?;
            start += end;
            if status < 200 {
                continue;
            }
            let mut length = None;
            let mut chunked = false;
            let mut close = minor == 0;
            let mut fields = Fields(lines);
            while let Some(field) = fields.next_field() {
                let (name, value) = field?;
                if name.eq_ignore_ascii_case(b"content-length") {
                    let n = decimal(value).ok_or(ResponseError::ContentLength)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(ResponseError::ContentLength);
                    }
                    length = Some(n);
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                        return Err(ResponseError::TransferEncoding);
                    }
                    chunked = true;
                } else if name.eq_ignore_ascii_case(b"connection") {
                    close |= value
                        .split(|&b| b == b',')
                        .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
                }
            }
            let framing = match (status, chunked, length) {
                (204 | 304, _, _) => Framing::Length(0),
                (_, true, _) => Framing::Chunked,
                (_, false, Some(n)) => Framing::Length(n),
                (_, false, None) => Framing::UntilClose,
            };
            // Both lengths given: the message is suspect, do not reuse the connection.
            close |= chunked && length.is_some();
            return Ok(Some(ResponseHead {
                status,
                len: start,
                framing,
                keep_alive: !close && framing != Framing::UntilClose,
                fields: lines,
            }));
        }
    }

    /// The header fields in order: name and value (trimmed).
    pub fn headers(&self) -> Headers<'h> {
        Headers(Fields(self.fields))
    }
}

/// The header fields of a [`ResponseHead`].
#[derive(Clone, Debug)]
pub struct Headers<'h>(Fields<'h>);

impl<'h> Iterator for Headers<'h> {
    type Item = (&'h str, &'h [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // The head was validated: names are ASCII tokens, no line fails.
            if let Ok((name, value)) = self.0.next_field()?
                && let Ok(name) = core::str::from_utf8(name)
            {
                return Some((name, value));
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Fields<'h>(&'h [u8]);

/// A header field's name and value.
type Field<'h> = (&'h [u8], &'h [u8]);

impl<'h> Fields<'h> {
    fn next_field(&mut self) -> Option<Result<Field<'h>, ResponseError>> {
        let line = split_line(&mut self.0)?;
        if line.is_empty() {
            return None;
        }
        Some(field(line))
    }
}

/// Splits `name: value`.
fn field(line: &[u8]) -> Result<Field<'_>, ResponseError> {
    let colon = crate::find_byte(b':', line).ok_or(ResponseError::HeaderLine)?;
    let (name, value) = line.split_at(colon);
    let value = trim(value.get(1..).unwrap_or_default());
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) || !value.iter().all(|&b| is_text(b)) {
        return Err(ResponseError::HeaderLine);
    }
    Ok((name, value))
}

/// Where the head ends (after its blank line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut rest = buf;
    let mut first = true;
    loop {
        let line = split_line(&mut rest)?;
        if line.is_empty() && !first {
            return Some(buf.len() - rest.len());
        }
        first = false;
    }
}

/// Splits off the next line, without its LF and a CR before it. `None`: no complete line.
fn split_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let lf = crate::find_byte(b'\n', rest)?;
    let (line, tail) = rest.split_at(lf);
    *rest = tail.get(1..).unwrap_or_default();
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// `HTTP/1.x NNN [reason]`: the minor version and the status.
fn status_line_parts(line: &[u8]) -> Result<(u8, u16), ResponseError> {
    let rest = line
        .strip_prefix(b"HTTP/1.")
        .ok_or(ResponseError::StatusLine)?;
    let [minor, b' ', a, b, c, reason @ ..] = rest else {
        return Err(ResponseError::StatusLine);
    };
    let digits = [*minor, *a, *b, *c];
    let reason_ok = match reason {
        [] => true,
        [b' ', text @ ..] => text.iter().all(|&b| is_text(b)),
        _ => false,
    };
    if !digits.iter().all(u8::is_ascii_digit) || *a == b'0' || !reason_ok {
        return Err(ResponseError::StatusLine);
    }
    let status = [*a, *b, *c]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Ok((minor - b'0', status))
}

/// An RFC 9110 token character (also the request head's check of header names).
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A field-value or reason-phrase byte: tab, space, visible ASCII, non-ASCII.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A non-empty run of ASCII digits that fits a `u64` (also the engine's header numbers).
pub(crate) fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        let d = d.wrapping_sub(b'0');
        // A bound instead of a checked multiply: no 64-bit multiply on a 32-bit MCU.
        if d > 9 || n > u64::MAX / 10 {
            return None;
        }
        (n * 10).checked_add(u64::from(d))
    })
}

/// A body whose framing is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BodyError {
    /// A chunk-size line is not hexadecimal digits (then optional extensions), or the size
    /// does not fit a `u64`.
    ChunkSize,
    /// A chunk's data is not followed by a line end.
    ChunkEnd,
    /// A chunk-size, extension or trailer line is longer than [`MAX_CHUNK_LINE`].
    LineTooLong,
    /// The connection closed before the end of the body.
    Truncated,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::ChunkSize => "invalid chunk size",
            BodyError::ChunkEnd => "chunk data not followed by a line end",
            BodyError::LineTooLong => "chunk or trailer line too long",
            BodyError::Truncated => "connection closed before the end of the body",
        })
    }
}

impl core::error::Error for BodyError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `remaining` more payload bytes (`Content-Length`, or inside a chunk).
    Data {
        remaining: u64,
        chunked: bool,
    },
    UntilClose,
    /// Reading a chunk-size line: the size so far, whether a digit was seen, and bytes of
    /// extensions (`None` while still in the digits).
    Size {
        size: u64,
        digits: bool,
        ext: Option<u16>,
    },
    /// After a CR in a size line: an LF must follow.
    SizeLf {
        size: u64,
    },
    /// After a chunk's data: CR LF (or LF).
    DataEnd {
        cr: bool,
    },
    /// Trailer lines after the last chunk; `len` bytes of the current one.
    Trailer {
        len: u16,
    },
    Done,
}

/// Decodes a body's framing; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Data {
                remaining: n,
                chunked: false,
            },
            Framing::Chunked => SIZE,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { state }
    }

    /// The whole body has been decoded (the rest of the input, if any, is not part of it).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing and payload from the front of `input` and returns the payload found,
    /// which is always the last bytes consumed (so a caller may locate it in its buffer).
    /// Returns an empty slice when `input` held only framing (it is then empty) or the body
    /// is done (then `input` is left as it is). Call again while `input` is not empty and the
    /// body is not done.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn decode<'i>(&mut self, input: &mut &'i [u8]) -> Result<&'i [u8], BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(&[]),
                State::UntilClose => return Ok(core::mem::take(input)),
                State::Data { remaining, chunked } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (data, rest) = input.split_at(n);
                    *input = rest;
                    let remaining = remaining - n as u64;
                    self.state = match (remaining, chunked) {
                        (0, true) => State::DataEnd { cr: false },
                        (0, false) => State::Done,
                        _ => State::Data { remaining, chunked },
                    };
                    return Ok(data);
                }
                _ => {}
            }
            let [b, rest @ ..] = *input else {
                return Ok(&[]);
            };
            *input = rest;
            self.state = framing_byte(self.state, *b)?;
        }
    }

    /// The connection closed: `Ok` when the body is complete (a close-delimited body always
    /// is), [`BodyError::Truncated`] otherwise.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done | State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }
}

const SIZE: State = State::Size {
    size: 0,
    digits: false,
    ext: None,
};

/// One byte of chunk framing.
fn framing_byte(state: State, b: u8) -> Result<State, BodyError> {
    Ok(match state {
        State::Size { size, digits, ext } => match (b, ext) {
            (b'\n', _) if digits => after_size(size),
            (b'\r', _) if digits => State::SizeLf { size },
            (_, None) if b.is_ascii_hexdigit() => {
                if size >> 60 != 0 {
                    return Err(BodyError::ChunkSize);
                }
                let d = match b {
                    b'0'..=b'9' => b - b'0',
                    _ => (b | 0x20) - b'a' + 10,
                };
                State::Size {
                    size: size << 4 | u64::from(d),
                    digits: true,
                    ext: None,
                }
            }
            (b';' | b' ' | b'\t', None) if digits => State::Size {
                size,
                digits,
                ext: Some(1),
            },
            (_, Some(n)) if is_text(b) => {
                if usize::from(n) >= MAX_CHUNK_LINE {
                    return Err(BodyError::LineTooLong);
                }
                State::Size {
                    size,
                    digits,
                    ext: Some(n + 1),
                }
            }
            _ => return Err(BodyError::ChunkSize),
        },
        State::SizeLf { size } if b == b'\n' => after_size(size),
        State::SizeLf { .. } => return Err(BodyError::ChunkSize),
        State::DataEnd { cr } => match b {
            b'\n' => SIZE,
            b'\r' if !cr => State::DataEnd { cr: true },
            _ => return Err(BodyError::ChunkEnd),
        },
        State::Trailer { len } => match b {
            b'\n' if len == 0 => State::Done,
            b'\n' => State::Trailer { len: 0 },
            b'\r' => State::Trailer { len },
            _ if usize::from(len) >= MAX_CHUNK_LINE => return Err(BodyError::LineTooLong),
            _ => State::Trailer { len: len + 1 },
        },
        other => other,
    })
}

fn after_size(size: u64) -> State {
    if size == 0 {
        State::Trailer { len: 0 }
    } else {
        State::Data {
            remaining: size,
            chunked: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn head(raw: &[u8]) -> Result<Option<ResponseHead<'_>>, ResponseError> {
        ResponseHead::parse(raw)
    }

    #[test]
    fn status_headers_and_framing() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  2 \r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"busy\"}";
        let h = head(raw).expect("valid").expect("complete");
        assert_eq!(h.status, 429);
        assert_eq!(h.framing, Framing::Length(17));
        assert!(h.keep_alive);
        assert_eq!(&raw[h.len..], b"{\"error\":\"busy\"}");
        let fields: Vec<_> = h.headers().collect();
        assert_eq!(
            fields,
            [
                ("Retry-After", &b"2"[..]),
                ("Content-Type", b"application/json"),
                ("Content-Length", b"17")
            ]
        );

        let h = head(b"HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (h.framing, h.keep_alive, h.len),
            (Framing::Chunked, true, 44)
        );

        let h = head(b"HTTP/1.1 200 OK\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert_eq!(h.headers().count(), 0);

        let h = head(b"HTTP/1.1 204\r\nConnection: keep-alive, Close\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (204, Framing::Length(0), false)
        );

        let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert!(!h.keep_alive, "HTTP/1.0 closes");

        // Both framings: chunked wins, the connection is not reused.
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));

        // The same length twice is fine.
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.framing, Framing::Length(3));
    }

    #[test]
    fn interim_heads_are_skipped() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let h = head(raw).expect("valid").expect("complete");
        assert_eq!((h.status, &raw[h.len..]), (200, &b"hi"[..]));
        assert_eq!(
            h.headers().collect::<Vec<_>>(),
            [("Content-Length", &b"2"[..])]
        );
        // Only the interim head so far: read more.
        assert_eq!(head(&raw[..26]), Ok(None));
    }

    #[test]
    fn every_prefix_is_incomplete_until_the_blank_line() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(head(&raw[..n]), Ok(None), "prefix {n}");
        }
        let h = head(raw).expect("valid").expect("complete");
        assert_eq!(h.len, raw.len());
    }

    #[test]
    fn hostile_heads_are_typed_errors() {
        use ResponseError::*;
        for (raw, e) in [
            (&b"\r\n\r\n"[..], StatusLine),
            (b"HTTP/2 200 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1 099 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1  200 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1 200 O\x01K\r\n\r\n", StatusLine),
            (b"http/1.1 200 OK\r\n\r\n", StatusLine),
            (b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\n: v\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\nA: x\x00y\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\nA: x\ry\r\n\r\n", HeaderLine),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", ContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", ContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", ContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ContentLength),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TransferEncoding),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncoding),
        ] {
            assert_eq!(head(raw), Err(e), "{}", std::string::String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn huge_lines_need_a_buffer_that_holds_them() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        raw.extend(core::iter::repeat_n(b'a', 100_000));
        assert_eq!(head(&raw), Ok(None));
        raw.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let h = head(&raw).expect("valid").expect("complete");
        assert_eq!(h.headers().next().map(|(_, v)| v.len()), Some(100_000));
    }

    /// Decodes `raw` fed in pieces of `step` bytes; the payload or the first error.
    fn decode(framing: Framing, raw: &[u8], step: usize, eof: bool) -> Result<Vec<u8>, BodyError> {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        for piece in raw.chunks(step.max(1)) {
            let mut input = piece;
            while !input.is_empty() && !d.is_done() {
                let before = input.len();
                let data = d.decode(&mut input)?;
                // the payload is the tail of what was consumed
                let consumed = &piece[piece.len() - before..piece.len() - input.len()];
                assert!(consumed.ends_with(data));
                out.extend_from_slice(data);
            }
        }
        if eof {
            d.finish()?;
        }
        if !d.is_done() {
            return Err(BodyError::Truncated);
        }
        Ok(out)
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n7;name=\"va l\"\r\npedia i\r\nB \r\nn \r\nchunks.\r\n00\r\nExpires: never\r\nX: y\r\n\r\n";

    #[test]
    fn chunked_bodies_at_every_split() {
        for step in 1..=CHUNKED.len() {
            assert_eq!(
                decode(Framing::Chunked, CHUNKED, step, false).as_deref(),
                Ok(&b"Wikipedia in \r\nchunks."[..]),
                "step {step}"
            );
        }
        // Every split into two pieces.
        for cut in 0..=CHUNKED.len() {
            let mut d = BodyDecoder::new(Framing::Chunked);
            let mut out = Vec::new();
            for piece in [&CHUNKED[..cut], &CHUNKED[cut..]] {
                let mut input = piece;
                while !input.is_empty() && !d.is_done() {
                    out.extend_from_slice(d.decode(&mut input).expect("valid"));
                }
            }
            assert!(d.is_done(), "cut {cut}");
            assert_eq!(out, b"Wikipedia in \r\nchunks.", "cut {cut}");
        }
        // Bare LFs, upper-case hex, bytes after the body left alone.
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut input = &b"A\nabcdefghij\n0\n\nHTTP/1.1"[..];
        let mut out = Vec::new();
        while !d.is_done() {
            out.extend_from_slice(d.decode(&mut input).expect("valid"));
        }
        assert_eq!((&out[..], input), (&b"abcdefghij"[..], &b"HTTP/1.1"[..]));
        assert_eq!(d.decode(&mut input), Ok(&b""[..]));
        assert_eq!(input, b"HTTP/1.1");
    }

    #[test]
    fn truncated_bodies() {
        for cut in 0..CHUNKED.len() {
            assert_eq!(
                decode(Framing::Chunked, &CHUNKED[..cut], 7, true),
                Err(BodyError::Truncated),
                "cut {cut}"
            );
        }
        assert_eq!(
            decode(Framing::Length(5), b"abcd", 2, true),
            Err(BodyError::Truncated)
        );
        assert_eq!(
            decode(Framing::Length(5), b"abcdefg", 3, true).as_deref(),
            Ok(&b"abcde"[..])
        );
        assert_eq!(
            decode(Framing::Length(0), b"", 1, true).as_deref(),
            Ok(&b""[..])
        );
        assert_eq!(
            decode(Framing::UntilClose, b"abc", 2, true).as_deref(),
            Ok(&b"abc"[..])
        );
        assert_eq!(
            decode(Framing::UntilClose, b"abc", 2, false),
            Err(BodyError::Truncated)
        );
    }

    #[test]
    fn hostile_chunk_framing_is_a_typed_error() {
        use BodyError::*;
        let long_ext = [&b"1;"[..], &[b'x'; MAX_CHUNK_LINE], b"\r\na\r\n0\r\n\r\n"].concat();
        let long_trailer = [&b"0\r\nX: "[..], &[b'y'; MAX_CHUNK_LINE], b"\r\n\r\n"].concat();
        for (raw, e) in [
            (&b"\r\n"[..], ChunkSize),
            (b"g\r\n", ChunkSize),
            (b"-1\r\n", ChunkSize),
            (b";ext\r\n", ChunkSize),
            (b"1 x\x01\r\n", ChunkSize),
            (b"1\rx", ChunkSize),
            (b"10000000000000000\r\n", ChunkSize),
            (b"1\r\nab\r\n", ChunkEnd),
            (b"1\r\na\r\r\n", ChunkEnd),
            (&long_ext, LineTooLong),
            (&long_trailer, LineTooLong),
        ] {
            for step in [1, 3, raw.len()] {
                assert_eq!(decode(Framing::Chunked, raw, step, true), Err(e), "{raw:?}");
            }
        }
        // The largest size that fits is fine (and needs more input).
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut input = &b"ffffffffffffffff\r\nab"[..];
        assert_eq!(d.decode(&mut input), Ok(&b"ab"[..]));
        assert!(!d.is_done());
        // An extension just under the limit is fine.
        let ext = [
            &b"1;"[..],
            &[b'x'; MAX_CHUNK_LINE - 2],
            b"\r\na\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(
            decode(Framing::Chunked, &ext, 5, false).as_deref(),
            Ok(&b"a"[..])
        );
    }

    fn encode_chunked(payload: &[u8], sizes: &[usize], ext: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = payload;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes
                .get(i % sizes.len().max(1))
                .copied()
                .unwrap_or(1)
                .clamp(1, rest.len());
            i += 1;
            out.extend_from_slice(std::format!("{n:x}").as_bytes());
            if ext {
                out.extend_from_slice(b" ; a=b");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        #[test]
        fn chunked_round_trips_at_any_split(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            sizes in proptest::collection::vec(1usize..300, 1..8),
            ext in proptest::bool::ANY,
            step in 1usize..64,
        ) {
            let raw = encode_chunked(&payload, &sizes, ext);
            proptest::prop_assert_eq!(decode(Framing::Chunked, &raw, step, true), Ok(payload));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            step in 1usize..40,
        ) {
            if let Ok(Some(h)) = ResponseHead::parse(&raw) {
                proptest::prop_assert!(h.len <= raw.len());
                proptest::prop_assert!(h.status >= 200);
                let _ = h.headers().count();
            }
            let _ = decode(Framing::Chunked, &raw, step, true);
        }
    }
}
