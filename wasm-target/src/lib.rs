//! steadyllm-wasm: the browser adapter (wasm-bindgen + fetch) behind the npm package
//! `steadyllm`.
//!
//! **Not implemented yet** (tracked by the browser-adapter issue). This crate currently only
//! re-exports [`steadyllm_core`] so that the workspace layout is in place; it contains no
//! client and claims none.
#![no_std]
#![warn(missing_docs)]

pub use steadyllm_core as core;
