//! Endpoints and the HTTP/1.1 request head.
//!
//! [`BaseUrl`] parses `http[s]://host[:port][/prefix]`; [`Endpoint`] adds the API key and the
//! [`Dialect`]; [`RequestHead`] writes the head of a chat request into a caller buffer:
//!
//! ```text
//! POST /v1/chat/completions HTTP/1.1
//! Host: api.example.com:8443           (port only when not the scheme's default)
//! Authorization: Bearer sk-…           (Anthropic: x-api-key + anthropic-version)
//! Content-Type: application/json
//! Content-Length: 123
//! Accept: text/event-stream            (streaming requests)
//! Accept-Encoding: identity            (no gzipped streams from proxies)
//! User-Agent: steadyllm/0.1
//! x-steadyllm-retry-count: 0
//! ```
//!
//! Every header value is checked: CR, LF, NUL and other control characters are refused with
//! a typed error, so a hostile model name or key cannot inject headers. The API key is held
//! in [`ApiKey`], whose `Debug` output never shows it.

use core::fmt;

use crate::decode::Dialect;
use crate::json::{BufferTooSmall, Writer};

// Literals as macros, so the head writer can join them with their neighbours at compile time.
macro_rules! retry_count_header {
    () => {
        "x-steadyllm-retry-count"
    };
}
macro_rules! anthropic_version {
    () => {
        "2023-06-01"
    };
}

/// Name of the header that carries the attempt's retry count (0 for the first attempt).
pub const RETRY_COUNT_HEADER: &str = retry_count_header!();
/// `anthropic-version` sent with the Anthropic dialect.
pub const ANTHROPIC_VERSION: &str = anthropic_version!();
/// The default `User-Agent`.
pub const USER_AGENT: &str = concat!("steadyllm/", env!("CARGO_PKG_VERSION"));

/// A base URL that is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UrlError {
    /// Not `http://` or `https://`.
    UnsupportedScheme,
    /// No host between `//` and the path.
    MissingHost,
    /// The port is not a number in 1..=65535.
    InvalidPort,
    /// User info (`user:pass@`), a query or a fragment, which a base URL must not have.
    UnsupportedPart,
    /// Whitespace, control or other characters that cannot appear in a request line or
    /// `Host` header.
    InvalidCharacter,
}

impl UrlError {
    /// The message, without formatting machinery (for targets that avoid `core::fmt`).
    pub fn as_str(&self) -> &'static str {
        match self {
            UrlError::UnsupportedScheme => "base URL must start with http:// or https://",
            UrlError::MissingHost => "base URL has no host",
            UrlError::InvalidPort => "base URL port is not a number in 1..=65535",
            UrlError::UnsupportedPart => {
                "base URL must not contain user info, a query or a fragment"
            }
            UrlError::InvalidCharacter => "base URL contains a character not allowed there",
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for UrlError {}

/// A parsed `http[s]://host[:port][/prefix]`, borrowed from the caller's string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BaseUrl<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    explicit_port: bool,
    prefix: &'a str,
}

impl fmt::Debug for BaseUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.prefix)
    }
}

impl<'a> BaseUrl<'a> {
    /// Parses a base URL such as `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    /// IPv6 hosts are written in brackets (`http://[::1]:8080`). A trailing `/` is ignored.
    pub fn parse(url: &'a str) -> Result<Self, UrlError> {
        let (tls, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            (false, r)
        } else {
            return Err(UrlError::UnsupportedScheme);
        };
        // Byte positions rather than str patterns below (smaller on a microcontroller); after
        // this check every byte is visible ASCII, so every position is a char boundary.
        let b = rest.as_bytes();
        if b.iter().any(|&c| c == b'?' || c == b'#' || c == b'@') {
            return Err(UrlError::UnsupportedPart);
        }
        if b.iter().any(|&c| c <= b' ' || c >= 0x7f) {
            return Err(UrlError::InvalidCharacter);
        }
        let part = |r: core::ops::Range<usize>| rest.get(r).unwrap_or_default();
        let slash = b.iter().position(|&c| c == b'/').unwrap_or(b.len());
        let mut end = b.len();
        while end > slash && b.get(end - 1) == Some(&b'/') {
            end -= 1;
        }
        let prefix = part(slash..end);
        let authority = b.get(..slash).unwrap_or_default();
        let (host, port) = if authority.first() == Some(&b'[') {
            let close = authority
                .iter()
                .position(|&c| c == b']')
                .ok_or(UrlError::InvalidCharacter)?;
            let inner = authority.get(1..close).unwrap_or_default();
            if !inner
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            {
                return Err(UrlError::InvalidCharacter);
            }
            let port = match authority.get(close + 1) {
                None => None,
                Some(b':') => Some(part(close + 2..slash)),
                Some(_) => return Err(UrlError::InvalidPort),
            };
            (part(0..close + 1), port)
        } else {
            match authority.iter().rposition(|&c| c == b':') {
                Some(i) => (part(0..i), Some(part(i + 1..slash))),
                None => (part(0..slash), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(UrlError::MissingHost);
        }
        if !host.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(UrlError::InvalidCharacter);
        }
        let default_port = if tls { 443 } else { 80 };
        let (port, explicit_port) = match port {
            None => (default_port, false),
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(UrlError::InvalidPort);
                }
                let n: u32 = p.bytes().fold(0, |a, d| a * 10 + u32::from(d - b'0'));
                let n = u16::try_from(n).map_err(|_| UrlError::InvalidPort)?;
                if n == 0 {
                    return Err(UrlError::InvalidPort);
                }
                (n, n != default_port)
            }
        };
        Ok(BaseUrl {
            tls,
            host,
            port,
            explicit_port,
            prefix,
        })
    }

    /// `true` for `https://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host as written (IPv6 in brackets).
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The host without IPv6 brackets, for DNS or socket addresses.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }

    /// The port (the scheme's default when none was written).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path prefix without a trailing `/` (`""` or e.g. `/v1`).
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// Writes the `Host` header value: the host, plus `:port` when it is not the default.
    pub fn write_host(&self, w: &mut Writer<'_>) {
        w.raw(self.host.as_bytes());
        if self.explicit_port {
            w.byte(b':');
            w.u64(u64::from(self.port));
        }
    }

    /// Writes the request path for `dialect`: `{prefix}/chat/completions` for OpenAI;
    /// `{prefix}/v1/messages` for Anthropic (`{prefix}/messages` when the prefix already ends
    /// in `/v1`).
    pub fn write_path(&self, dialect: Dialect, w: &mut Writer<'_>) {
        w.raw(self.prefix.as_bytes());
        match dialect {
            Dialect::OpenAi => w.raw(b"/chat/completions"),
            Dialect::Anthropic if self.prefix.ends_with("/v1") => w.raw(b"/messages"),
            Dialect::Anthropic => w.raw(b"/v1/messages"),
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// A header name or value that cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HeaderError {
    /// A value holds CR, LF, NUL or another control character (header injection).
    InvalidValue,
    /// A name is empty or holds characters outside the RFC 9110 token set.
    InvalidName,
}

impl HeaderError {
    /// The message, without formatting machinery.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderError::InvalidValue => "header value contains CR, LF or a control character",
            HeaderError::InvalidName => "header name is not a valid token",
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for HeaderError {}

/// Checks an RFC 9110 field value: visible ASCII, space, tab and non-ASCII bytes; no CR, LF,
/// NUL or other controls.
pub fn check_header_value(v: &str) -> Result<(), HeaderError> {
    if v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
        Ok(())
    } else {
        Err(HeaderError::InvalidValue)
    }
}

/// Checks an RFC 9110 token (header name).
pub fn check_header_name(n: &str) -> Result<(), HeaderError> {
    let ok = !n.is_empty() && n.bytes().all(crate::response::is_token);
    if ok {
        Ok(())
    } else {
        Err(HeaderError::InvalidName)
    }
}

/// An API key. Its `Debug` output is `ApiKey(***)`: the key never reaches logs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApiKey<'a>(&'a str);

impl<'a> ApiKey<'a> {
    /// Wraps a key, refusing one that could not be sent as a header value.
    pub fn new(key: &'a str) -> Result<Self, HeaderError> {
        check_header_value(key)?;
        Ok(ApiKey(key))
    }

    /// The key itself, for writing into a request.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for ApiKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ApiKey<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "ApiKey(***)")
    }
}

/// Where and how to send a request: base URL, key, dialect and an optional model override.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    /// The parsed base URL.
    pub base_url: BaseUrl<'a>,
    /// The key (`None` for servers that need none, such as a local mock).
    pub api_key: Option<ApiKey<'a>>,
    /// The API shape.
    pub dialect: Dialect,
    /// Model name to use on this endpoint instead of the request's (fallbacks often serve a
    /// different model).
    pub model: Option<&'a str>,
}

impl<'a> Endpoint<'a> {
    /// An OpenAI-compatible endpoint.
    pub fn new(base_url: &'a str, api_key: Option<&'a str>) -> Result<Self, EndpointError> {
        Ok(Endpoint {
            base_url: BaseUrl::parse(base_url).map_err(EndpointError::Url)?,
            api_key: api_key
                .map(ApiKey::new)
                .transpose()
                .map_err(EndpointError::Header)?,
            dialect: Dialect::OpenAi,
            model: None,
        })
    }

    /// The same endpoint speaking another dialect.
    pub fn with_dialect(self, dialect: Dialect) -> Self {
        Endpoint { dialect, ..self }
    }

    /// The same endpoint with a model override.
    pub fn with_model(self, model: &'a str) -> Self {
        Endpoint {
            model: Some(model),
            ..self
        }
    }
}

/// An endpoint that cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EndpointError {
    /// The base URL is unusable.
    Url(UrlError),
    /// The key cannot be sent as a header value.
    Header(HeaderError),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Url(e) => write!(f, "{e}"),
            EndpointError::Header(e) => write!(f, "API key: {e}"),
        }
    }
}

impl core::error::Error for EndpointError {}

/// Why a request head could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HeadError {
    /// The buffer is too small; nothing useful was written.
    BufferTooSmall(BufferTooSmall),
    /// An extra header has an invalid name or value.
    Header(HeaderError),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::BufferTooSmall(e) => write!(f, "request head: {e}"),
            HeadError::Header(e) => write!(f, "request head: {e}"),
        }
    }
}

impl core::error::Error for HeadError {}

/// The HTTP/1.1 head of one attempt of a chat request.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// Where to send it.
    pub endpoint: &'a Endpoint<'a>,
    /// Length of the JSON body.
    pub content_length: usize,
    /// Ask for `text/event-stream`.
    pub stream: bool,
    /// 0 for the first attempt, then 1, 2, …
    pub retry_count: u32,
    /// `User-Agent` value.
    pub user_agent: &'a str,
    /// More headers (validated when written).
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// Send `Connection: close` instead of keeping the connection alive.
    pub close: bool,
}

impl<'a> RequestHead<'a> {
    /// A head with the default user agent, no extra headers, keep-alive.
    pub fn new(endpoint: &'a Endpoint<'a>, content_length: usize, stream: bool) -> Self {
        RequestHead {
            endpoint,
            content_length,
            stream,
            retry_count: 0,
            user_agent: USER_AGENT,
            extra_headers: &[],
            close: false,
        }
    }

    /// Writes the head (ending with the blank line) into `out` and returns its length. On
    /// error nothing useful is in `out`; `BufferTooSmall` says how many bytes are needed.
    // Kept out of line: inlined into an adapter's async state machine it costs flash.
    #[inline(never)]
    pub fn write(&self, out: &mut [u8]) -> Result<usize, HeadError> {
        check_header_value(self.user_agent).map_err(HeadError::Header)?;
        for (n, v) in self.extra_headers {
            check_header_name(n).map_err(HeadError::Header)?;
            check_header_value(v).map_err(HeadError::Header)?;
        }
        let ep = self.endpoint;
        let anthropic = ep.dialect == Dialect::Anthropic;
        let mut w = Writer::new(out);
        // Constant runs are written by one call each: every call is code.
        w.raw(b"POST ");
        ep.base_url.write_path(ep.dialect, &mut w);
        w.raw(b" HTTP/1.1\r\nHost: ");
        ep.base_url.write_host(&mut w);
        w.raw(b"\r\n");
        if let Some(key) = ep.api_key {
            w.raw(if anthropic {
                b"x-api-key: "
            } else {
                b"Authorization: Bearer "
            });
            w.raw(key.expose().as_bytes());
            w.raw(b"\r\n");
        }
        if anthropic {
            w.raw(concat!("anthropic-version: ", anthropic_version!(), "\r\n").as_bytes());
        }
        w.raw(b"Content-Type: application/json\r\nContent-Length: ");
        w.u64(self.content_length as u64);
        w.raw(if self.stream {
            b"\r\nAccept: text/event-stream\r\n"
        } else {
            b"\r\nAccept: application/json\r\n"
        });
        // No compressed bodies: a proxy that would gzip the stream is told not to.
        w.raw(b"Accept-Encoding: identity\r\nUser-Agent: ");
        w.raw(self.user_agent.as_bytes());
        w.raw(concat!("\r\n", retry_count_header!(), ": ").as_bytes());
        w.u64(u64::from(self.retry_count));
        w.raw(b"\r\n");
        for (n, v) in self.extra_headers {
            w.raw(n.as_bytes());
            w.raw(b": ");
            w.raw(v.as_bytes());
            w.raw(b"\r\n");
        }
        if self.close {
            w.raw(b"Connection: close\r\n");
        }
        w.raw(b"\r\n");
        w.finish().map_err(HeadError::BufferTooSmall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("https://api.openai.com/v1/").expect("ok");
        assert!(u.is_tls());
        assert_eq!(
            (u.host(), u.port(), u.prefix()),
            ("api.openai.com", 443, "/v1")
        );
        let u = BaseUrl::parse("http://127.0.0.1:8080").expect("ok");
        assert_eq!((u.host(), u.port(), u.prefix()), ("127.0.0.1", 8080, ""));
        let u = BaseUrl::parse("http://h:80//v1//").expect("ok");
        assert_eq!((u.host(), u.port(), u.prefix()), ("h", 80, "//v1"));
        assert!(!u.explicit_port);
        let u = BaseUrl::parse("HTTP://[::1]:9000/api/v1").expect("ok");
        assert_eq!(
            (u.host(), u.host_unbracketed(), u.port()),
            ("[::1]", "::1", 9000)
        );
        for (bad, e) in [
            ("ftp://x", UrlError::UnsupportedScheme),
            ("https://", UrlError::MissingHost),
            ("http://h:0", UrlError::InvalidPort),
            ("http://h:65536", UrlError::InvalidPort),
            ("http://h:", UrlError::InvalidPort),
            ("http://u:p@h", UrlError::UnsupportedPart),
            ("http://h/v1?x=1", UrlError::UnsupportedPart),
            ("http://h o/", UrlError::InvalidCharacter),
            ("http://h/\r\nX: y", UrlError::InvalidCharacter),
            ("http://[::1/x", UrlError::InvalidCharacter),
            ("http://[::g]", UrlError::InvalidCharacter),
            ("http://[::1]x", UrlError::InvalidPort),
            ("http://[]:80", UrlError::MissingHost),
            ("http://:80", UrlError::MissingHost),
            ("http://h:1:2", UrlError::InvalidCharacter),
            ("http://h:123456", UrlError::InvalidPort),
        ] {
            assert_eq!(BaseUrl::parse(bad), Err(e), "{bad}");
        }
    }

    fn head(
        ep: &Endpoint<'_>,
        retry: u32,
        extra: &[(&str, &str)],
    ) -> Result<std::string::String, HeadError> {
        let mut buf = [0u8; 512];
        let mut h = RequestHead::new(ep, 42, true);
        h.retry_count = retry;
        h.extra_headers = extra;
        let n = h.write(&mut buf)?;
        Ok(std::string::String::from_utf8(buf[..n].to_vec()).expect("ascii"))
    }

    #[test]
    fn openai_head() {
        let ep = Endpoint::new("http://localhost:8080/v1", Some("sk-secret")).expect("ok");
        let h = head(&ep, 2, &[("OpenAI-Organization", "org-1")]).expect("fits");
        assert_eq!(
            h,
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:8080\r\nAuthorization: Bearer sk-secret\r\n\
                 Content-Type: application/json\r\nContent-Length: 42\r\nAccept: text/event-stream\r\n\
                 Accept-Encoding: identity\r\nUser-Agent: {USER_AGENT}\r\nx-steadyllm-retry-count: 2\r\nOpenAI-Organization: org-1\r\n\r\n"
            )
        );
        // default port: no port in Host
        let ep = Endpoint::new("https://api.openai.com:443/v1", None).expect("ok");
        assert!(
            head(&ep, 0, &[])
                .expect("fits")
                .contains("\r\nHost: api.openai.com\r\n")
        );
    }

    #[test]
    fn anthropic_head() {
        let ep = Endpoint::new("https://api.anthropic.com", Some("k"))
            .expect("ok")
            .with_dialect(Dialect::Anthropic);
        let h = head(&ep, 0, &[]).expect("fits");
        assert!(h.starts_with("POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n"), "{h}");
        assert!(!h.contains("Authorization"));
        let ep = Endpoint::new("https://gw.example/anthropic/v1", None)
            .expect("ok")
            .with_dialect(Dialect::Anthropic);
        assert!(
            head(&ep, 0, &[])
                .expect("fits")
                .starts_with("POST /anthropic/v1/messages ")
        );
    }

    #[test]
    fn header_injection_is_refused() {
        assert_eq!(
            ApiKey::new("sk\r\nX-Evil: 1").map(|_| ()),
            Err(HeaderError::InvalidValue)
        );
        assert!(Endpoint::new("http://h", Some("a\nb")).is_err());
        assert!(Endpoint::new("http://h", Some("a\0b")).is_err());
        let ep = Endpoint::new("http://h", None).expect("ok");
        assert_eq!(
            head(&ep, 0, &[("X-A", "1\r\n2")]),
            Err(HeadError::Header(HeaderError::InvalidValue))
        );
        assert_eq!(
            head(&ep, 0, &[("X A", "1")]),
            Err(HeadError::Header(HeaderError::InvalidName))
        );
        assert_eq!(
            head(&ep, 0, &[("", "1")]),
            Err(HeadError::Header(HeaderError::InvalidName))
        );
        assert!(check_header_value("tab\tand ünïcode ok").is_ok());
        assert!(check_header_value("del\x7f").is_err());
    }

    #[test]
    fn key_never_in_debug() {
        let ep = Endpoint::new("https://h/v1", Some("sk-very-secret")).expect("ok");
        let h = RequestHead::new(&ep, 1, true);
        for s in [
            format!("{ep:?}"),
            format!("{h:?}"),
            format!("{:?}", ep.api_key),
        ] {
            assert!(!s.contains("very-secret"), "{s}");
            assert!(s.contains("***"));
        }
    }

    #[test]
    fn small_buffer_reports_required_size() {
        let ep = Endpoint::new("http://h", None).expect("ok");
        let h = RequestHead::new(&ep, 1, false);
        let mut big = [0u8; 512];
        let n = h.write(&mut big).expect("fits");
        let mut small = [0u8; 10];
        assert_eq!(
            h.write(&mut small),
            Err(HeadError::BufferTooSmall(BufferTooSmall { required: n }))
        );
    }
}
