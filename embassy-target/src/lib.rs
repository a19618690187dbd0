//! steadyllm-embassy: the async Embassy adapter.
//!
//! It moves bytes and time between the network and `steadyllm-core`: connections come from any
//! `embedded-nal-async` stack (embassy-net on devices, `host::HostStack` on a PC, feature `std`), responses
//! are read with the core's HTTP/1.1 response parser and body decoder
//! ([`steadyllm_core::response`]), and every byte of the body goes through the core's SSE
//! parser and decoder as soon as it arrives. Deadlines are enforced with embassy-time. No heap:
//! the caller owns every buffer.
//!
//! The core's resilience engine ([`steadyllm_core::call`]) decides every attempt: which
//! endpoint, which deadlines, whether and when to retry or fail over. [`SharedState`] holds the
//! breakers, rate-limit pauses and retry budget; several [`Client`]s (one per task) can share it,
//! so concurrent calls see the same endpoint health.
//!
//! With the `responses` feature (default), an endpoint of OpenAI's Responses API
//! (`Dialect::Responses`) streams in background mode, and a broken stream is resumed exactly:
//! the client keeps the response id and the last event it delivered, the callback gets
//! `Event::Engine(CallEvent::Resuming { after })`, and the next attempt asks for the events after
//! it (`GET …/v1/responses/{id}?stream=true&starting_after=N`) — nothing is delivered twice.
//!
//! ```no_run
//! # async fn demo() {
//! use steadyllm_embassy::{Buffers, Client, Event, SharedState};
//! use steadyllm_embassy::host::HostStack;
//! use steadyllm_embassy::steadyllm_core::call::CallConfig;
//! use steadyllm_embassy::steadyllm_core::http::Endpoint;
//! use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
//!
//! let stack = HostStack::new();
//! let endpoints = [
//!     Endpoint::new("http://127.0.0.1:8080/v1", Some("sk-primary")).unwrap(),
//!     Endpoint::new("http://127.0.0.1:8081/v1", Some("sk-fallback")).unwrap(),
//! ];
//! let config = CallConfig::default();
//! let shared: SharedState = SharedState::new(endpoints.len(), &config);
//! let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, config, 42);
//! let messages = [Message::user("Why is the sky blue?")];
//! let request = ChatRequest::new("gpt-4o-mini", &messages);
//! let (mut body, mut head, mut response) = ([0u8; 4096], [0u8; 512], [0u8; 4096]);
//! let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
//! let outcome = client
//!     .chat(&request, &mut bufs, |event| match event {
//!         Event::Item(item) => { /* content, reasoning, tool calls, usage … */ }
//!         Event::Engine(decision) => { /* "server busy — retrying in 2 s" */ }
//!         Event::ServerError { .. } => {}
//!         _ => {} // `Event` may grow: a redirect's location, …
//!     })
//!     .await;
//! # }
//! ```
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!(
    "features `log` and `defmt` are mutually exclusive: pick the logger your firmware uses"
);

/// Logs an engine decision through `log` or `defmt`, or nowhere.
macro_rules! log_event {
    ($e:expr) => {{
        #[cfg(feature = "log")]
        log::info!("steadyllm: {}", $e);
        #[cfg(feature = "defmt")]
        defmt::info!("steadyllm: {}", $e);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        let _ = &$e;
    }};
}

mod attempt;
mod client;
mod connect;
#[cfg(feature = "std")]
pub mod host;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;

pub use attempt::{AttemptFailure, TimeoutKind};
pub use client::{Buffers, ChatError, Client, Collected, Event, SharedState};
pub use steadyllm_core;
pub use stream::{ChatStream, Delta, DeltaQueue};
#[cfg(feature = "tls")]
pub use tls::{TlsSettings, TlsVerify, TrustAnchors};

/// The README's Rust examples (core and adapter), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
