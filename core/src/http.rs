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
//! api-key: …                           (the endpoint's extra headers, then the head's)
//! ```
//!
//! An endpoint may add headers and query parameters to every request (Azure OpenAI:
//! `?api-version=2024-10-21` and an `api-key` header):
//!
//! ```
//! use steadyllm_core::http::{Endpoint, RequestHead};
//!
//! let headers = [("api-key", "azure-key")];
//! let query = [("api-version", "2024-10-21")];
//! let ep = Endpoint::new("https://res.openai.azure.com/openai/deployments/gpt-4o", None)
//!     .unwrap()
//!     .with_headers(&headers)
//!     .with_query(&query);
//! let mut buf = [0u8; 512];
//! let n = RequestHead::new(&ep, 2, true).write(&mut buf).unwrap();
//! let head = core::str::from_utf8(&buf[..n]).unwrap();
//! assert!(head.starts_with(
//!     "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n"
//! ));
//! assert!(head.contains("\r\napi-key: azure-key\r\n"));
//! assert!(!format!("{ep:?}").contains("azure-key")); // values never in Debug output
//! ```
//!
//! Every header value is checked: CR, LF, NUL and other control characters are refused with
//! a typed error, so a hostile model name or key cannot inject headers. Extra headers must be
//! RFC 9110 tokens and must not be one the writer sets itself ([`HeaderError::Reserved`]).
//! Query parameters are percent-encoded (everything but `A-Z a-z 0-9 - . _ ~`). The API key is
//! held in [`ApiKey`], whose `Debug` output never shows it, and the `Debug` output of an
//! endpoint or a head shows extra headers' and query parameters' names, never their values.

use core::fmt;

use crate::dialect::Dialect;
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
    /// `Host` header; a backslash; a path segment starting with a dot (`.` and `..` would be
    /// resolved away by a browser's URL parser, so the two adapters would send different
    /// paths).
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
        // Byte positions throughout: after this check the rest is printable ASCII, and
        // `str`'s char-pattern searches cost flash a microcontroller does not need to spend.
        let mut invalid = false;
        let mut prev = 0;
        for b in rest.bytes() {
            if b == b'?' || b == b'#' || b == b'@' {
                return Err(UrlError::UnsupportedPart);
            }
            // (A path segment starting with a dot: `.` and `..` are the ones that matter.)
            invalid |= !(0x21..0x7f).contains(&b) || b == b'\\' || (prev == b'/' && b == b'.');
            prev = b;
        }
        if invalid {
            return Err(UrlError::InvalidCharacter);
        }
        let (authority, prefix) = split_at_byte(rest, rest.bytes().position(|b| b == b'/'));
        let slashes = prefix.bytes().rev().take_while(|&b| b == b'/').count();
        let prefix = prefix.get(..prefix.len() - slashes).unwrap_or_default();
        let (host, port) = if authority.starts_with('[') {
            let end = authority
                .bytes()
                .position(|b| b == b']')
                .ok_or(UrlError::InvalidCharacter)?;
            let (host, after) = split_at_byte(authority, Some(end + 1));
            if !host
                .bytes()
                .skip(1)
                .take(end - 1)
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UrlError::InvalidCharacter);
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or(UrlError::InvalidPort)?),
                ),
            }
        } else {
            match authority.bytes().rposition(|b| b == b':') {
                Some(i) => {
                    let (h, p) = split_at_byte(authority, Some(i));
                    (h, Some(p.get(1..).unwrap_or_default()))
                }
                None => (authority, None),
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
    pub(crate) fn write_host(&self, w: &mut Writer<'_>) {
        w.raw(self.host.as_bytes());
        if self.explicit_port {
            w.byte(b':');
            w.u64(u64::from(self.port));
        }
    }

    /// Writes the request path for `dialect`: `{prefix}/chat/completions` for OpenAI;
    /// `{prefix}/v1/messages` for Anthropic (`{prefix}/messages` when the prefix already ends
    /// in `/v1`), `{prefix}/v1/responses` for Responses (likewise).
    pub(crate) fn write_path(&self, dialect: Dialect, w: &mut Writer<'_>) {
        w.raw(self.prefix.as_bytes());
        match dialect {
            #[cfg(feature = "responses")]
            Dialect::OpenAi => w.raw(b"/chat/completions"),
            // Without the feature a Responses body is refused before any head is written: one
            // arm with OpenAI's keeps firmware's code as it was.
            #[cfg(not(feature = "responses"))]
            Dialect::OpenAi | Dialect::Responses => w.raw(b"/chat/completions"),
            Dialect::Anthropic if self.prefix.ends_with("/v1") => w.raw(b"/messages"),
            Dialect::Anthropic => w.raw(b"/v1/messages"),
            #[cfg(feature = "responses")]
            Dialect::Responses if self.prefix.ends_with("/v1") => w.raw(b"/responses"),
            #[cfg(feature = "responses")]
            Dialect::Responses => w.raw(b"/v1/responses"),
        }
    }
}

/// `s` split before byte `at` (all of `s` and `""` for `None`).
fn split_at_byte(s: &str, at: Option<usize>) -> (&str, &str) {
    match at.and_then(|i| s.split_at_checked(i)) {
        Some(parts) => parts,
        None => (s, ""),
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
    /// An extra header the writer sets itself (`Host`, `Content-Type`, `Content-Length`,
    /// `Accept`, `Accept-Encoding`, `User-Agent`, `Connection`, the retry count; with a key,
    /// `Authorization` (OpenAI) or `x-api-key` (Anthropic); `anthropic-version`) or one that
    /// would change the message's framing (`Transfer-Encoding`, `TE`, `Expect`, `Upgrade`).
    Reserved,
}

impl HeaderError {
    /// The message, without formatting machinery.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderError::InvalidValue => "header value contains CR, LF or a control character",
            HeaderError::InvalidName => "header name is not a valid token",
            HeaderError::Reserved => "extra header is one the client sets itself",
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
    /// Wraps a key, refusing one that could not be sent as a header value, or that holds a
    /// tab (allowed in header values, but never part of a key: a pasting mistake, which a
    /// browser's fetch would also trim at either end).
    pub fn new(key: &'a str) -> Result<Self, HeaderError> {
        // check_header_value without its tab (one pass: `[u8]::contains` costs flash).
        if key.bytes().all(|b| b >= 0x20 && b != 0x7f) {
            Ok(ApiKey(key))
        } else {
            Err(HeaderError::InvalidValue)
        }
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

/// Where and how to send a request: base URL, key, dialect, an optional model override, and
/// headers and query parameters added to every request.
#[derive(Clone, Copy)]
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
    /// Headers added to every request (name, value), checked when a head is written: names
    /// are RFC 9110 tokens and not [`HeaderError::Reserved`], values hold no CR, LF or other
    /// controls. Values may be secrets (Azure's `api-key`): `Debug` shows the names only.
    pub headers: &'a [(&'a str, &'a str)],
    /// Query parameters added to every request's path (name, value), percent-encoded
    /// (Azure's `api-version`). `Debug` shows the names only.
    pub query: &'a [(&'a str, &'a str)],
}

impl fmt::Debug for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("dialect", &self.dialect)
            .field("model", &self.model)
            .field("headers", &Names(self.headers))
            .field("query", &Names(self.query))
            .finish()
    }
}

/// Name-value pairs shown as their names, the values redacted.
struct Names<'a>(&'a [(&'a str, &'a str)]);

impl fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| (n, "***")))
            .finish()
    }
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
            headers: &[],
            query: &[],
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

    /// The same endpoint with headers added to every request (see [`Endpoint::headers`]).
    pub fn with_headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Endpoint { headers, ..self }
    }

    /// The same endpoint with query parameters added to every request (see
    /// [`Endpoint::query`]).
    pub fn with_query(self, query: &'a [(&'a str, &'a str)]) -> Self {
        Endpoint { query, ..self }
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
#[derive(Clone, Copy)]
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
    /// More headers, after the endpoint's (checked as [`Endpoint::headers`] are; `Debug`
    /// shows the names only).
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// Send `Connection: close` instead of keeping the connection alive.
    pub close: bool,
}

impl fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("endpoint", self.endpoint)
            .field("content_length", &self.content_length)
            .field("stream", &self.stream)
            .field("retry_count", &self.retry_count)
            .field("user_agent", &self.user_agent)
            .field("extra_headers", &Names(self.extra_headers))
            .field("close", &self.close)
            .finish()
    }
}

/// Header names the head writer sets itself, or that would change the message's framing:
/// lowercase, each followed by a space.
const RESERVED: &[u8] = b"host content-type content-length transfer-encoding te expect upgrade \
connection accept accept-encoding user-agent x-steadyllm-retry-count ";

/// The names of the key's header and `anthropic-version`, sliced per endpoint in
/// [`RequestHead::write`].
pub(crate) const OWN: &[u8] = b"authorization anthropic-version x-api-key ";

/// `name` is one of the space-terminated names in `list`, ASCII case-insensitively.
fn listed(list: &[u8], name: &[u8]) -> bool {
    let mut rest = list;
    while let Some(end) = rest.iter().position(|&b| b == b' ') {
        let (n, tail) = rest.split_at(end);
        if n.eq_ignore_ascii_case(name) {
            return true;
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    false
}

/// Writes `name: value` lines, checking each: a token name the writer does not set itself
/// (`own`: the endpoint's names beyond [`RESERVED`]) and a value without controls.
#[inline(never)]
pub(crate) fn write_headers(
    w: &mut Writer<'_>,
    headers: &[(&str, &str)],
    own: &[u8],
) -> Result<(), HeaderError> {
    for (n, v) in headers {
        check_header_name(n)?;
        check_header_value(v)?;
        if listed(RESERVED, n.as_bytes()) || listed(own, n.as_bytes()) {
            return Err(HeaderError::Reserved);
        }
        w.raw(n.as_bytes());
        w.raw(b": ");
        w.raw(v.as_bytes());
        w.raw(b"\r\n");
    }
    Ok(())
}

/// Writes `s` percent-encoded: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub(crate) fn percent_encode(w: &mut Writer<'_>, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            w.byte(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            w.byte(b'%');
            w.byte(HEX[usize::from(b >> 4)]);
            w.byte(HEX[usize::from(b & 0xf)]);
        }
    }
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
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn write(&self, out: &mut [u8]) -> Result<usize, HeadError> {
        check_header_value(self.user_agent).map_err(HeadError::Header)?;
        let ep = self.endpoint;
        let anthropic = ep.dialect == Dialect::Anthropic;
        let mut w = Writer::new(out);
        // Constant runs are written by one call each: every call is code.
        w.raw(b"POST ");
        ep.base_url.write_path(ep.dialect, &mut w);
        for (i, (k, v)) in ep.query.iter().enumerate() {
            w.byte(if i == 0 { b'?' } else { b'&' });
            percent_encode(&mut w, k);
            w.byte(b'=');
            percent_encode(&mut w, v);
        }
        // Each line's CR LF goes out with the next line's name: fewer writes, less flash.
        w.raw(b" HTTP/1.1\r\nHost: ");
        ep.base_url.write_host(&mut w);
        if let Some(key) = ep.api_key {
            w.raw(if anthropic {
                b"\r\nx-api-key: "
            } else {
                b"\r\nAuthorization: Bearer "
            });
            w.raw(key.expose().as_bytes());
        }
        if anthropic {
            w.raw(b"\r\nanthropic-version: 2023-06-01");
        }
        w.raw(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        w.u64(self.content_length as u64);
        w.raw(if self.stream {
            b"\r\nAccept: text/event-stream"
        } else {
            b"\r\nAccept: application/json"
        });
        // No compressed bodies: a proxy that would gzip the stream is told not to.
        w.raw(b"\r\nAccept-Encoding: identity\r\nUser-Agent: ");
        w.raw(self.user_agent.as_bytes());
        w.raw(b"\r\nx-steadyllm-retry-count: ");
        w.u64(u64::from(self.retry_count));
        w.raw(b"\r\n");
        // The names the writer sets for this endpoint beyond the fixed ones: the key's header
        // and `anthropic-version`.
        let own = match (anthropic, ep.api_key.is_some()) {
            (false, false) => 0..0,
            (false, true) => 0..14,
            (true, false) => 14..32,
            (true, true) => 14..42,
        };
        let own = OWN.get(own).unwrap_or_default();
        write_headers(&mut w, ep.headers, own).map_err(HeadError::Header)?;
        write_headers(&mut w, self.extra_headers, own).map_err(HeadError::Header)?;
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
            ("http://h/a\\b", UrlError::InvalidCharacter),
            ("http://h/a/../v1", UrlError::InvalidCharacter),
            ("http://h/./v1", UrlError::InvalidCharacter),
            ("http://h/v1/..", UrlError::InvalidCharacter),
            ("http://h/v1/.", UrlError::InvalidCharacter),
            ("http://h/.well-known", UrlError::InvalidCharacter),
        ] {
            assert_eq!(BaseUrl::parse(bad), Err(e), "{bad}");
        }
    }

    /// The parser as first written, with `str`'s char-pattern searches: the oracle for the
    /// byte-level one.
    fn reference_parse(url: &str) -> Result<(bool, &str, u16, bool, &str), UrlError> {
        let (tls, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            (false, r)
        } else {
            return Err(UrlError::UnsupportedScheme);
        };
        if rest.bytes().any(|b| b == b'?' || b == b'#' || b == b'@') {
            return Err(UrlError::UnsupportedPart);
        }
        if rest.bytes().any(|b| !(0x21..0x7f).contains(&b)) || rest.contains('\\') {
            return Err(UrlError::InvalidCharacter);
        }
        if rest.contains("/.") {
            return Err(UrlError::InvalidCharacter);
        }
        let (authority, prefix) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let prefix = prefix.trim_end_matches('/');
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or(UrlError::InvalidCharacter)?;
            let host = authority.get(..end + 2).ok_or(UrlError::InvalidCharacter)?;
            let after = v6.get(end + 1..).unwrap_or_default();
            if !v6[..end]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UrlError::InvalidCharacter);
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or(UrlError::InvalidPort)?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
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
        let (port, explicit) = match port {
            None => (default_port, false),
            Some(p) => {
                let n: u16 = p.parse().map_err(|_| UrlError::InvalidPort)?;
                if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || n == 0 {
                    return Err(UrlError::InvalidPort);
                }
                (n, n != default_port)
            }
        };
        Ok((tls, host, port, explicit, prefix))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        #[test]
        fn base_urls_parse_as_the_reference_does(
            scheme in "(https?|HTTPS?|ftp)://",
            rest in "[a-z0-9.:/\\[\\]_ ?#@é\\\\-]{0,24}",
        ) {
            let url = std::format!("{scheme}{rest}");
            let got = BaseUrl::parse(&url)
                .map(|u| (u.is_tls(), u.host(), u.port(), u.explicit_port, u.prefix()));
            proptest::prop_assert_eq!(got, reference_parse(&url), "{}", url);
        }

        #[test]
        fn query_parameters_are_percent_encoded_reversibly(k in "\\PC{0,12}", v in ".{0,12}") {
            let query = [(k.as_str(), v.as_str())];
            let ep = Endpoint::new("http://h", None).expect("ok").with_query(&query);
            let mut buf = [0u8; 1024];
            let n = RequestHead::new(&ep, 1, true).write(&mut buf).expect("fits");
            let line = &buf[..n].split(|&b| b == b'\r').next().expect("a line");
            let target = line
                .strip_prefix(b"POST /chat/completions?")
                .and_then(|t| t.strip_suffix(b" HTTP/1.1"))
                .expect("the request line");
            proptest::prop_assert!(target
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~%=".contains(&b)));
            let decode = |s: &[u8]| {
                let mut out = std::vec::Vec::new();
                let mut i = 0;
                while i < s.len() {
                    if s[i] == b'%' {
                        let hex = core::str::from_utf8(&s[i + 1..i + 3]).expect("ascii");
                        out.push(u8::from_str_radix(hex, 16).expect("hex"));
                        i += 3;
                    } else {
                        out.push(s[i]);
                        i += 1;
                    }
                }
                std::string::String::from_utf8(out).expect("utf-8")
            };
            let eq = target.iter().position(|&b| b == b'=').expect("=");
            proptest::prop_assert_eq!(decode(&target[..eq]), k);
            proptest::prop_assert_eq!(decode(&target[eq + 1..]), v);
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
        // A tab is valid in a header value, never in a key (the browser wrapper agrees).
        for key in ["sk-\tabc", "sk-abc\t", "\tsk-abc"] {
            assert_eq!(ApiKey::new(key).map(|_| ()), Err(HeaderError::InvalidValue));
        }
        assert!(ApiKey::new("sk abc").is_ok());
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
    fn endpoint_headers_and_query_parameters() {
        let headers = [("api-key", "azure-secret"), ("X-Trace", "t 1")];
        let query = [("api-version", "2024-10-21"), ("a b", "c&d=é/~")];
        let ep = Endpoint::new(
            "https://res.openai.azure.com/openai/deployments/gpt-4o",
            None,
        )
        .expect("ok")
        .with_headers(&headers)
        .with_query(&query);
        let h = head(&ep, 0, &[("x-extra", "1")]).expect("fits");
        assert!(
            h.starts_with(
                "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&a%20b=c%26d%3D%C3%A9%2F~ HTTP/1.1\r\n"
            ),
            "{h}"
        );
        assert!(
            h.ends_with(&format!(
                "{RETRY_COUNT_HEADER}: 0\r\napi-key: azure-secret\r\nX-Trace: t 1\r\nx-extra: 1\r\n\r\n"
            )),
            "{h}"
        );
        assert!(!h.contains("Authorization"));
        // Empty names and values are sent as they are.
        let odd = [("", "")];
        let ep = Endpoint::new("http://h", None)
            .expect("ok")
            .with_query(&odd);
        assert!(
            head(&ep, 0, &[])
                .expect("fits")
                .starts_with("POST /chat/completions?= HTTP/1.1\r\n")
        );
    }

    #[test]
    fn headers_the_writer_sets_are_refused() {
        let openai = Endpoint::new("http://h/v1", Some("k")).expect("ok");
        let anthropic = openai.with_dialect(Dialect::Anthropic);
        let keyless = Endpoint::new("http://h/v1", None).expect("ok");
        let reserved = [
            "Host",
            "content-type",
            "Content-Length",
            "transfer-encoding",
            "TE",
            "expect",
            "Upgrade",
            "connection",
            "Accept",
            "accept-encoding",
            "User-Agent",
            "X-Steadyllm-Retry-Count",
        ];
        for ep in [&openai, &anthropic, &keyless] {
            for name in reserved {
                for (endpoint_header, extra) in [(true, false), (false, true)] {
                    let list = [(name, "v")];
                    let ep = if endpoint_header {
                        ep.with_headers(&list)
                    } else {
                        *ep
                    };
                    let extra: &[(&str, &str)] = if extra { &list } else { &[] };
                    assert_eq!(
                        head(&ep, 0, extra),
                        Err(HeadError::Header(HeaderError::Reserved)),
                        "{name} on {ep:?}"
                    );
                }
            }
        }
        // The key's header and anthropic-version, where the writer sets them.
        for (ep, name, refused) in [
            (&openai, "authorization", true),
            (&openai, "x-api-key", false),
            (&openai, "anthropic-version", false),
            (&anthropic, "X-Api-Key", true),
            (&anthropic, "Anthropic-Version", true),
            (&anthropic, "authorization", false),
            (&keyless, "Authorization", false),
            (&keyless, "x-api-key", false),
        ] {
            let list = [(name, "v")];
            let r = head(&ep.with_headers(&list), 0, &[]);
            if refused {
                assert_eq!(
                    r,
                    Err(HeadError::Header(HeaderError::Reserved)),
                    "{name} on {ep:?}"
                );
            } else {
                assert!(r.expect("allowed").contains(&format!("\r\n{name}: v\r\n")));
            }
        }
        // Names that only contain a reserved one are fine.
        let list = [("x-host", "v"), ("accept-language", "en"), ("hosts", "v")];
        assert!(head(&keyless.with_headers(&list), 0, &[]).is_ok());
        // Endpoint headers are checked as the head's own are.
        for (bad, e) in [
            (("X-A", "1\r\n2"), HeaderError::InvalidValue),
            (("X A", "1"), HeaderError::InvalidName),
        ] {
            let list = [bad];
            assert_eq!(
                head(&keyless.with_headers(&list), 0, &[]),
                Err(HeadError::Header(e))
            );
        }
        assert_eq!(
            HeaderError::Reserved.as_str(),
            "extra header is one the client sets itself"
        );
    }

    #[test]
    fn anthropic_head_uses_the_version_constant() {
        let ep = Endpoint::new("https://api.anthropic.com", None)
            .expect("ok")
            .with_dialect(Dialect::Anthropic);
        let h = head(&ep, 0, &[]).expect("fits");
        assert!(
            h.contains(&format!("\r\nanthropic-version: {ANTHROPIC_VERSION}\r\n")),
            "{h}"
        );
    }

    #[test]
    fn key_never_in_debug() {
        let headers = [("api-key", "hdr-very-secret")];
        let query = [("key", "query-very-secret")];
        let ep = Endpoint::new("https://h/v1", Some("sk-very-secret"))
            .expect("ok")
            .with_headers(&headers)
            .with_query(&query);
        let mut h = RequestHead::new(&ep, 1, true);
        h.extra_headers = &[("x-token", "extra-very-secret")];
        for s in [
            format!("{ep:?}"),
            format!("{h:?}"),
            format!("{:?}", ep.api_key),
        ] {
            assert!(!s.contains("very-secret"), "{s}");
            assert!(s.contains("***"));
        }
        // The names are shown.
        let s = format!("{h:?}");
        for name in ["api-key", "\"key\"", "x-token"] {
            assert!(s.contains(name), "{s}");
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
