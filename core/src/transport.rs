//! What one attempt's transport saw, turned into the engine's [`Failure`]: the one mapping
//! every adapter uses (the Embassy client and the browser module), so the two cannot judge
//! the same response differently.
//!
//! An adapter asks [`judge_head`] about the response head before it reads the body, and
//! [`body_failure`] about the body's end; what it passes is what its transport can see.

use crate::call::{Coding, ContentKind, Failure, Phase, ResponseFault, StreamFault};
use crate::decode::ApiError;
use crate::hints::RetryHints;
use crate::response::ResponseHead;

/// What a response head says, read once by [`read_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HeadVerdict {
    /// What to do with the body, or why the answer is not an API response.
    pub kind: Result<BodyKind, Failure>,
    /// Where a redirect's `Location` value lies in the buffer the head was parsed from
    /// (offset, length).
    pub location: Option<(usize, usize)>,
}

/// Reads a parsed head's fields: every header goes to `hints`, and `Content-Type`,
/// `Content-Encoding` and the status go to [`judge_head`]. `buf` is the buffer `head` was
/// parsed from.
// Out of line: flash (crate docs).
#[inline(never)]
pub fn read_head(
    head: &ResponseHead<'_>,
    buf: &[u8],
    hints: &mut RetryHints,
    streaming: bool,
) -> HeadVerdict {
    let (mut content_type, mut coding, mut location) = (None, None, None);
    for (name, value) in head.headers() {
        hints.observe(name, value);
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value);
        } else if name.eq_ignore_ascii_case("content-encoding") {
            coding = Some(value);
        } else if name.eq_ignore_ascii_case("location") {
            let offset = (value.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
            if offset
                .checked_add(value.len())
                .is_some_and(|end| end <= buf.len())
            {
                location = Some((offset, value.len()));
            }
        }
    }
    HeadVerdict {
        kind: judge_head(head.status, content_type, coding, streaming),
        location,
    }
}

/// What to do with a response's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BodyKind {
    /// A non-2xx answer: read its error body (JSON when it is one); the status is the failure.
    ErrorBody(u16),
    /// Server-sent events, decoded as they arrive.
    EventStream,
    /// One JSON document: a whole answer (also when a stream was asked for and a gateway
    /// answered with the complete completion instead).
    WholeJson,
}

/// Judges a response head: its status, `Content-Type` and `Content-Encoding` (`None` when
/// absent, or when the transport already decoded the body, as a browser's `fetch` does).
///
/// - 3xx: [`ResponseFault::Redirected`] (a POST is not followed);
/// - a 2xx in a content coding other than `identity`: [`ResponseFault::ContentCoding`];
/// - a 2xx whose type is neither `text/event-stream` nor JSON (any type naming `json`):
///   [`ResponseFault::NotAnApiResponse`] — a captive portal's
///   `200 text/html`; no type at all is taken as what was asked for;
/// - any other status: its error body is read.
// Out of line: flash (crate docs).
#[inline(never)]
pub fn judge_head(
    status: u16,
    content_type: Option<&[u8]>,
    content_encoding: Option<&[u8]>,
    streaming: bool,
) -> Result<BodyKind, Failure> {
    if (300..400).contains(&status) {
        return Err(Failure::Response(ResponseFault::Redirected { status }));
    }
    if !(200..300).contains(&status) {
        return Ok(BodyKind::ErrorBody(status));
    }
    if let Some(coding) = content_encoding.map(trim)
        && !coding.is_empty()
        && !coding.eq_ignore_ascii_case(b"identity")
    {
        // Named for the message only: by length and first letter.
        let c = match (coding.len(), coding.first().map(u8::to_ascii_lowercase)) {
            (4 | 6, Some(b'g' | b'x')) => Coding::Gzip,
            (7, Some(b'd')) => Coding::Deflate,
            (2, Some(b'b')) => Coding::Brotli,
            (4, Some(b'z')) => Coding::Zstd,
            _ => Coding::Other,
        };
        return Err(Failure::Response(ResponseFault::ContentCoding(c)));
    }
    let Some(ct) = content_type else {
        return Ok(if streaming {
            BodyKind::EventStream
        } else {
            BodyKind::WholeJson
        });
    };
    // The media type, without parameters (`; charset=utf-8`), case-insensitive.
    let media = trim(ct.split(|&b| b == b';').next().unwrap_or_default());
    if media.eq_ignore_ascii_case(b"text/event-stream") {
        return Ok(BodyKind::EventStream);
    }
    // `application/json`, `application/problem+json`, …
    let json = contains(media, b"json");
    if json {
        return Ok(BodyKind::WholeJson);
    }
    let kind = if contains(media, b"html") {
        ContentKind::Html
    } else if contains(media, b"text/plain") {
        ContentKind::PlainText
    } else if contains(media, b"xml") {
        ContentKind::Xml
    } else {
        ContentKind::Other
    };
    Err(Failure::Response(ResponseFault::NotAnApiResponse(kind)))
}

/// `needle` occurs in `hay`, ASCII case-insensitively.
#[inline(never)]
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len().max(1))
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// How a 2xx body ended, as the transport saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BodyEnd {
    /// The stream's end marker (`[DONE]`, `message_stop`) arrived, or the whole JSON answer
    /// was read.
    Complete,
    /// The body ended cleanly before that.
    EndedEarly,
    /// The connection broke (reset, closed mid-chunk).
    Network,
    /// A deadline passed while reading.
    Timeout(Phase),
}

/// The failure of an attempt whose 2xx body ended as `end`, given whether a malformed (or
/// oversized) event arrived and whether the server sent an error in the stream. `None`: the
/// answer is complete.
///
/// Precedence: a deadline, then the network, then a malformed event, then an error event —
/// which fails the stream even when the end marker follows it — then the end marker.
#[inline]
#[must_use]
pub fn body_failure(end: BodyEnd, malformed: bool, server_error: bool) -> Option<Failure> {
    match end {
        BodyEnd::Timeout(p) => Some(Failure::Timeout(p)),
        BodyEnd::Network => Some(Failure::Stream(StreamFault::Network)),
        _ if malformed => Some(Failure::Stream(StreamFault::Malformed)),
        _ if server_error => Some(Failure::Stream(StreamFault::ServerError)),
        BodyEnd::Complete => None,
        BodyEnd::EndedEarly => Some(Failure::Stream(StreamFault::Truncated)),
    }
}

/// Pieces of the error codes and types that say the account's quota, credit or spend limit is
/// used up — OpenAI's `insufficient_quota`, `organization_usage_limit_exceeded`,
/// `organization_spend_limit_exceeded`, `project_spend_limit_exceeded`,
/// `credit_balance_exhausted` — a 429 that retrying cannot fix until someone pays or raises a
/// limit. (A plain rate limit is `rate_limit_exceeded`.)
const SPENT: [&[u8]; 4] = [b"quota", b"usage_limit", b"spend_limit", b"credit_balance"];

/// The error body (`error`, parsed, and its raw `body`) says the quota or a spend limit is
/// exhausted (OpenAI's codes and types; with the `anthropic` feature also Anthropic's
/// `enforced_spend_limit_reached`, which it nests in `error.details`): the engine fails over
/// and does not retry the endpoint.
#[inline(never)]
pub fn quota_exhausted(error: Option<&ApiError<'_>>, body: &[u8]) -> bool {
    let spent = |s: crate::json::JsonStr<'_>| {
        let raw = s.raw().as_bytes();
        SPENT.iter().any(|c| contains(raw, c))
    };
    if let Some(e) = error
        && (e.code.is_some_and(spent) || e.kind.is_some_and(spent))
    {
        return true;
    }
    #[cfg(feature = "anthropic")]
    if contains(body, b"\"enforced_spend_limit_reached\"") {
        return true;
    }
    let _ = body;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(
        status: u16,
        ct: Option<&str>,
        ce: Option<&str>,
        stream: bool,
    ) -> Result<BodyKind, Failure> {
        judge_head(status, ct.map(str::as_bytes), ce.map(str::as_bytes), stream)
    }

    #[test]
    fn heads_that_are_api_answers() {
        assert_eq!(
            judge(200, Some("text/event-stream"), None, true),
            Ok(BodyKind::EventStream)
        );
        assert_eq!(
            judge(
                200,
                Some("Text/Event-Stream; charset=utf-8"),
                Some("identity"),
                true
            ),
            Ok(BodyKind::EventStream)
        );
        assert_eq!(
            judge(200, Some("application/json"), None, false),
            Ok(BodyKind::WholeJson)
        );
        // A gateway that ignores `stream: true` answers with the whole completion.
        assert_eq!(
            judge(200, Some("application/json"), None, true),
            Ok(BodyKind::WholeJson)
        );
        assert_eq!(
            judge(200, Some("application/problem+json"), None, true),
            Ok(BodyKind::WholeJson)
        );
        assert_eq!(judge(200, None, None, true), Ok(BodyKind::EventStream));
        assert_eq!(judge(200, None, None, false), Ok(BodyKind::WholeJson));
        assert_eq!(
            judge(429, Some("text/html"), Some("gzip"), true),
            Ok(BodyKind::ErrorBody(429))
        );
        assert_eq!(judge(503, None, None, true), Ok(BodyKind::ErrorBody(503)));
    }

    #[test]
    fn heads_that_are_not() {
        let r = |f| Err(Failure::Response(f));
        assert_eq!(
            judge(200, Some("text/html; charset=UTF-8"), None, true),
            r(ResponseFault::NotAnApiResponse(ContentKind::Html))
        );
        assert_eq!(
            judge(200, Some("text/plain"), None, false),
            r(ResponseFault::NotAnApiResponse(ContentKind::PlainText))
        );
        assert_eq!(
            judge(200, Some("image/png"), None, true),
            r(ResponseFault::NotAnApiResponse(ContentKind::Other))
        );
        assert_eq!(
            judge(200, Some("text/event-stream"), Some(" GZIP "), true),
            r(ResponseFault::ContentCoding(Coding::Gzip))
        );
        assert_eq!(
            judge(200, Some("application/json"), Some("br"), false),
            r(ResponseFault::ContentCoding(Coding::Brotli))
        );
        for s in [301, 302, 303, 307, 308] {
            assert_eq!(
                judge(s, None, None, true),
                r(ResponseFault::Redirected { status: s })
            );
        }
    }

    #[test]
    fn spent_quotas_and_spend_limits_are_recognised() {
        let spent = |body: &str| {
            let e = ApiError::parse(body).ok();
            quota_exhausted(e.as_ref(), body.as_bytes())
        };
        assert!(spent(
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#
        ));
        assert!(spent(
            r#"{"error":{"message":"Spend limit","type":"insufficient_quota","code":"project_spend_limit_exceeded"}}"#
        ));
        assert!(spent(
            r#"{"error":{"message":"x","type":"requests","code":"credit_balance_exhausted"}}"#
        ));
        assert!(spent(
            r#"{"error":{"message":"x","type":"requests","code":"organization_spend_limit_exceeded"}}"#
        ));
        #[cfg(feature = "anthropic")]
        assert!(spent(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Monthly spend cap reached","details":{"error_code":"enforced_spend_limit_reached"}}}"#
        ));
        assert!(!spent(
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#
        ));
        assert!(!spent(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Too many requests"}}"#
        ));
        assert!(!spent("not json"));
    }

    /// The case the two adapters once judged differently: an error event followed by the end
    /// marker is a failed stream.
    #[test]
    fn an_error_event_fails_the_stream_even_before_the_end_marker() {
        assert_eq!(
            body_failure(BodyEnd::Complete, false, true),
            Some(Failure::Stream(StreamFault::ServerError))
        );
        assert_eq!(
            body_failure(BodyEnd::EndedEarly, false, true),
            Some(Failure::Stream(StreamFault::ServerError))
        );
        assert_eq!(body_failure(BodyEnd::Complete, false, false), None);
        assert_eq!(
            body_failure(BodyEnd::EndedEarly, false, false),
            Some(Failure::Stream(StreamFault::Truncated))
        );
        assert_eq!(
            body_failure(BodyEnd::Network, true, true),
            Some(Failure::Stream(StreamFault::Network))
        );
        assert_eq!(
            body_failure(BodyEnd::Timeout(Phase::Idle), true, true),
            Some(Failure::Timeout(Phase::Idle))
        );
        assert_eq!(
            body_failure(BodyEnd::Complete, true, true),
            Some(Failure::Stream(StreamFault::Malformed))
        );
    }
}
