//! steadyllm-embassy: the async Embassy adapter over reqwless.
//!
//! **Not implemented yet** (tracked by the Embassy-adapter issue). This crate currently only
//! re-exports [`steadyllm_core`] so that the workspace layout is in place; it contains no
//! client and claims none.
#![no_std]
#![warn(missing_docs)]

pub use steadyllm_core as core;
