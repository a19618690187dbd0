//! Error bodies of non-2xx responses: arbitrary text must parse or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadyllm_core::decode::ApiError;

fuzz_target!(|data: &str| {
    if let Ok(e) = ApiError::parse(data) {
        let _ = e.is_insufficient_quota();
        let _ = e.to_string();
    }
});
