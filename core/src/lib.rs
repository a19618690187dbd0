//! # steadyllm-core
//!
//! The sans-IO heart of steadyllm, a chat-completions client for OpenAI-compatible APIs (and
//! Anthropic's Messages API) that never hangs and never loses streamed output.
//!
//! This crate contains no networking code, reads no clock and gathers no entropy. It is
//! `#![no_std]` and never allocates: every byte lands in a buffer the caller owns, every input
//! that depends on time carries a `now`, and every random choice comes from a caller-seeded
//! [`rng::Rng`]. "Need more bytes" is a state, not an error. Adapters (`steadyllm-embassy`,
//! `steadyllm-wasm`) move bytes and time between the network and this crate.
//!
//! Layers, each a module with one job:
//! - [`request`]: the chat request model and its JSON body (OpenAI or Anthropic dialect),
//!   written into a caller buffer.
//! - [`http`]: base URLs, the HTTP/1.1 request head, validated header values, the redacted
//!   [`http::ApiKey`].
//! - [`response`]: the HTTP/1.1 response head and the body's framing (`Content-Length`,
//!   `chunked`, until close), fed in pieces like the SSE parser.
//! - [`sse`]: an incremental, bounded, spec-exact WHATWG event-stream parser.
//! - [`decode`]: zero-copy decoding of streamed chunks, whole answers and error bodies into
//!   semantic items.
//! - [`tools`]: whole tool calls joined from their fragments, in caller storage.
//! - [`json`]: the JSON writer and single-pass reader the other layers share.
//! - [`time`], [`rng`]: the core's own `Instant`/`Duration` and a seeded PRNG.
//! - [`call`]: the resilience engine (timeouts, retries, failover, breakers, retry budget).
//! - [`attempt`]: one attempt's clock: the deadline of the adapter's next wait, and the bytes
//!   the attempt delivered.
//!
//! ## Panics
//! No public function panics on any input: malformed bytes, oversized lines, hostile headers
//! and invalid JSON produce typed errors. Buffers that are too small produce errors that say
//! how many bytes were needed.
#![no_std]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod attempt;
pub mod call;
pub mod decode;
pub mod http;
pub mod json;
pub mod request;
pub mod response;
pub mod rng;
pub mod sse;
pub mod time;
pub mod tools;
pub mod transport;

/// The first `needle` in `haystack`: the `memchr` crate's SIMD search on the targets that have
/// one (x86-64, AArch64).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

/// The first `needle` in `haystack`, by a byte loop on the other targets (microcontrollers,
/// wasm32). The crate's searches are short (a field name, a JSON string between escapes):
/// on thumbv6m the loop costs about what `memchr`'s word-at-a-time fallback did, at a tenth of
/// its size (the fallback, inlined into generic code that other crates instantiate, was linked
/// twice into firmware: 432 bytes). The browser build, which could use `memchr`'s simd128
/// search, is smaller without it and its decode benchmark did not get slower.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
