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
//! Layers, each a module with one job, in the order a call meets them:
//! - [`call`]: the resilience engine, a state machine per call (retries, failover, breakers,
//!   retry budget), with the timeout table (`call/timeouts.rs`) and what an attempt's end can
//!   be (`call/outcome.rs`).
//! - [`attempt`]: one attempt's clock, fed by the adapter: the deadline of its next wait and
//!   its phase, and the bytes the attempt delivered.
//! - [`request`]: the chat request model, its validation, and its JSON body written into a
//!   caller buffer.
//! - [`http`]: base URLs, the HTTP/1.1 request head, validated header values, the redacted
//!   [`http::ApiKey`].
//! - [`response`]: the HTTP/1.1 response head and the body's framing (`Content-Length`,
//!   `chunked`, until close), fed in pieces like the SSE parser.
//! - [`hints`]: what response headers say about retrying (`retry-after`, HTTP dates, Go
//!   durations, rate-limit headers).
//! - [`sse`]: an incremental, bounded, spec-exact WHATWG event-stream parser.
//! - [`decode`]: zero-copy decoding of streamed chunks, whole answers and error bodies into
//!   semantic items; its fast path, templates, in `decode/template.rs`.
//! - [`dialect`]: each API shape's own code, one module per dialect: OpenAI-compatible chat
//!   completions (`dialect/openai.rs`), Anthropic Messages (`dialect/anthropic.rs`, behind
//!   the `anthropic` feature) and OpenAI's Responses API (`dialect::responses`, behind the
//!   `responses` feature; public for the request that resumes a stream): body writing and
//!   event decoding.
//! - [`tools`]: whole tool calls joined from their fragments, in caller storage.
//! - [`transport`]: an adapter's read, head and body errors mapped to the engine's failures.
//! - [`json`]: the JSON writer and single-pass reader the other layers share.
//! - [`time`], [`rng`]: the core's own `Instant`/`Duration` and a seeded PRNG.
//!
//! ## Flash
//! The functions adapters call from their `async fn`s are `#[inline(never)]`, each marked
//! `// Out of line: flash (crate docs).` Inlined, a function's code is copied into every async
//! state machine that calls it, and an adapter's futures exist once per socket type: the
//! firmware size probe (`scripts/size-report`) measured each of these as a saving. Code that
//! runs once per call or per attempt is kept small rather than fast; the per-byte and
//! per-event paths (SSE, the decoder's templates) are the exceptions, where speed is measured.
//!
//! ## Panics
//! No public function panics on any input: malformed bytes, oversized lines, hostile headers
//! and invalid JSON produce typed errors. Buffers that are too small produce errors that say
//! how many bytes were needed.
#![no_std]
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod attempt;
pub mod call;
pub mod decode;
pub mod dialect;
pub mod hints;
pub mod http;
pub mod json;
pub mod request;
pub mod response;
pub mod rng;
pub mod sse;
pub mod time;
pub mod tools;
pub mod transport;
mod unchecked;

/// `s[r]` for a range the caller's invariants keep inside `s` (an index into the parser's own
/// buffer, a position it has just checked). Library code never panics, so a range that is out
/// of bounds reads as empty; but in debug builds — where the unit and property tests and the
/// fuzzers run — it fails a `debug_assert!`, so a broken invariant is caught instead of being
/// silently read as nothing. The same code as `s.get(r).unwrap_or_default()` in release builds.
#[inline(always)]
pub(crate) fn span<T, R: core::slice::SliceIndex<[T], Output = [T]>>(s: &[T], r: R) -> &[T] {
    let v = s.get(r);
    debug_assert!(v.is_some(), "a span outside its buffer: a broken invariant");
    v.unwrap_or_default()
}

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
