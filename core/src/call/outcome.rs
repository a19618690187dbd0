//! How an attempt ended, as the adapter reports it to [`Call::finish_attempt`](super::Call::finish_attempt)(super::Call::finish_attempt).

use core::fmt;

use crate::hints::RetryHints;

/// Which deadline of an attempt passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// TCP/TLS connect.
    Connect,
    /// Response head.
    FirstByte,
    /// First content.
    FirstToken,
    /// Gap in the body.
    Idle,
}

/// How a stream broke after its head arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamFault {
    /// Reset or closed by the network.
    Network,
    /// Ended cleanly but without the end marker.
    Truncated,
    /// A malformed or oversized event.
    Malformed,
    /// The server sent an error event.
    ServerError,
}

/// Why a server's certificate was refused. None of these goes away by asking the same server
/// again, so the engine fails over and never retries them on the same endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CertificateFault {
    /// The chain does not lead to any of the trusted roots.
    UnknownIssuer,
    /// The certificate is not valid for the host name that was asked for.
    NameMismatch,
    /// A certificate of the chain has expired.
    Expired,
    /// A certificate of the chain is not valid yet (or the device's clock is wrong).
    NotYetValid,
    /// A signature in the chain, or the server's handshake signature, does not verify.
    BadSignature,
    /// A key type, curve, key size or signature algorithm this client does not implement.
    UnsupportedAlgorithm,
    /// A certificate used for what it may not do (a leaf as a CA, no server-auth usage), an
    /// unknown critical extension, or a chain longer than the client follows.
    BadUsage,
    /// A certificate that is not well-formed DER.
    Malformed,
}

impl fmt::Display for CertificateFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateFault::UnknownIssuer => {
                "certificate not trusted: its chain does not lead to a trusted root"
            }
            CertificateFault::NameMismatch => "certificate is not valid for this host name",
            CertificateFault::Expired => "certificate expired",
            CertificateFault::NotYetValid => {
                "certificate not valid yet (or the device's clock is wrong)"
            }
            CertificateFault::BadSignature => "certificate signature does not verify",
            CertificateFault::UnsupportedAlgorithm => {
                "certificate uses a key or signature algorithm this client does not support"
            }
            CertificateFault::BadUsage => "certificate not usable for a TLS server",
            CertificateFault::Malformed => "certificate is malformed",
        })
    }
}

/// A content coding the client does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Coding {
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate`.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// Anything else but `identity`.
    Other,
}

/// What kind of body a `Content-Type` announced that no API sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ContentKind {
    /// `text/html`: a captive portal's login page, a proxy's or a CDN's error page.
    Html,
    /// `text/plain`.
    PlainText,
    /// `application/xml` or `text/xml`.
    Xml,
    /// Any other type.
    Other,
}

/// A response that is not what an API answers with. None of these goes away by asking the
/// same endpoint again: the engine fails over at once and does not retry it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResponseFault {
    /// The response head is larger than the response buffer (`limit` bytes).
    HeadTooLarge {
        /// The buffer's size (65 535 for any larger buffer).
        limit: u16,
    },
    /// The bytes that came back are not an HTTP/1.x response.
    NotHttp,
    /// A redirect (3xx). A POST is not followed: the base URL is wrong, or a portal or proxy
    /// answered. The adapter reports the `Location`.
    Redirected {
        /// The status.
        status: u16,
    },
    /// A success whose `Content-Type` is neither `text/event-stream` nor JSON.
    NotAnApiResponse(ContentKind),
    /// A body in a content coding the client does not decode (it asks for `identity`).
    ContentCoding(Coding),
}

impl fmt::Display for ResponseFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseFault::HeadTooLarge { limit } => {
                write!(
                    f,
                    "response head larger than the {limit}-byte response buffer"
                )
            }
            ResponseFault::NotHttp => f.write_str("the server's answer is not HTTP"),
            ResponseFault::Redirected { status } => {
                write!(f, "redirected (HTTP {status}); a POST is not followed")
            }
            ResponseFault::NotAnApiResponse(kind) => f.write_str(match kind {
                ContentKind::Html => {
                    "not an API response: an HTML page (a captive portal or a proxy's page?)"
                }
                ContentKind::PlainText => "not an API response: plain text",
                ContentKind::Xml => "not an API response: XML",
                ContentKind::Other => "not an API response: an unexpected Content-Type",
            }),
            ResponseFault::ContentCoding(c) => {
                write!(
                    f,
                    "body in a content coding the client cannot read ({}); it asks for identity",
                    match c {
                        Coding::Gzip => "gzip",
                        Coding::Deflate => "deflate",
                        Coding::Brotli => "br",
                        Coding::Zstd => "zstd",
                        Coding::Other => "unknown",
                    }
                )
            }
        }
    }
}

/// What went wrong in one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Failure {
    /// The connection could not be made (refused, reset, unreachable).
    Connect,
    /// The server's certificate was refused: fails over, never retried on the same endpoint.
    Certificate(CertificateFault),
    /// The TLS handshake failed for another reason than the certificate (the server refused
    /// the handshake or spoke TLS this client does not): fails over, not retried on the same
    /// endpoint.
    Tls,
    /// The endpoint's host name does not resolve: fails over, not retried on the same
    /// endpoint.
    NameNotResolved,
    /// The answer is not an API response: fails over, not retried on the same endpoint.
    Response(ResponseFault),
    /// A deadline passed.
    Timeout(Phase),
    /// A non-2xx status.
    Status(u16),
    /// The stream broke.
    Stream(StreamFault),
    /// The server ended the answer as failed (the Responses API's `response.failed`): final,
    /// neither resumed nor retried.
    AnswerFailed,
    /// The server ended the answer incomplete (the Responses API's `response.incomplete`: a
    /// token limit or a content filter): final, neither resumed nor retried.
    AnswerIncomplete,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("connection failed"),
            Failure::Certificate(c) => write!(f, "{c}"),
            Failure::Tls => f.write_str("TLS handshake failed"),
            Failure::NameNotResolved => f.write_str("the host name does not resolve"),
            Failure::Response(r) => write!(f, "{r}"),
            Failure::Timeout(Phase::Connect) => f.write_str("connect timed out"),
            Failure::Timeout(Phase::FirstByte) => f.write_str("no response head in time"),
            Failure::Timeout(Phase::FirstToken) => f.write_str("no first token in time"),
            Failure::Timeout(Phase::Idle) => f.write_str("stream stalled"),
            Failure::Status(s) => write!(f, "HTTP {s}"),
            Failure::Stream(StreamFault::Network) => f.write_str("stream reset"),
            Failure::Stream(StreamFault::Truncated) => f.write_str("stream truncated"),
            Failure::Stream(StreamFault::Malformed) => f.write_str("malformed stream"),
            Failure::Stream(StreamFault::ServerError) => f.write_str("server error in stream"),
            Failure::AnswerFailed => f.write_str("the server ended the answer as failed"),
            Failure::AnswerIncomplete => f.write_str("the server ended the answer incomplete"),
        }
    }
}

/// The result of one attempt, reported with [`Call::finish_attempt`](super::Call::finish_attempt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outcome {
    /// `None` when the answer completed.
    pub failure: Option<Failure>,
    /// Content bytes this attempt delivered to the caller.
    pub delivered_bytes: u64,
    /// What the response said about retrying (also on success: rate-limit headers).
    pub hints: RetryHints,
    /// The answer can be resumed after this event: a stream of OpenAI's Responses API in
    /// background mode whose response id and last delivered `sequence_number` (this value)
    /// the adapter knows. The engine then plans a resume ([`AttemptPlan::resume_after`](super::AttemptPlan::resume_after))
    /// instead of posting again. `None` for every other answer.
    pub resume_after: Option<u32>,
}

impl Outcome {
    /// A completed answer.
    pub fn completed(delivered_bytes: u64, hints: RetryHints) -> Self {
        Outcome {
            failure: None,
            delivered_bytes,
            hints,
            resume_after: None,
        }
    }

    /// A failed attempt.
    pub fn failed(failure: Failure, delivered_bytes: u64, hints: RetryHints) -> Self {
        Outcome {
            failure: Some(failure),
            delivered_bytes,
            hints,
            resume_after: None,
        }
    }

    /// The same outcome, resumable after event `n` (see [`Outcome::resume_after`]).
    pub fn resumable_after(mut self, n: Option<u32>) -> Self {
        self.resume_after = n;
        self
    }
}
