//! The API shapes steadyllm speaks, each in a module of its own: what its request body looks
//! like and how its streamed events and whole answers decode. The rest of the core is shared:
//! the request model ([`crate::request`]), HTTP, SSE, the decoder's items and templates
//! ([`crate::decode`]), and the engine.
//!
//! - `openai`: OpenAI-compatible `/chat/completions`, always built.
//! - `anthropic`: Anthropic's `/v1/messages`, built with the `anthropic` feature (firmware
//!   that does not need it leaves it out; the dialect is then refused with a typed error).
//! - [`responses`]: OpenAI's Responses API, `/v1/responses`, built with the `responses`
//!   feature: public, as its resume request ([`responses::write_resume_head`]) is the
//!   adapters' to send.

pub(crate) mod openai;

#[cfg(feature = "anthropic")]
pub(crate) mod anthropic;

#[cfg(feature = "responses")]
pub mod responses;

/// Which API shape a stream or error body has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dialect {
    /// OpenAI-compatible `/chat/completions` (OpenAI, Azure, vLLM, Ollama, OpenRouter, Groq,
    /// Gemini's compatibility endpoint, LiteLLM, …).
    #[default]
    OpenAi,
    /// Anthropic's `/v1/messages`.
    Anthropic,
    /// OpenAI's Responses API, `/v1/responses` (feature `responses`; see [`responses`]).
    Responses,
}
