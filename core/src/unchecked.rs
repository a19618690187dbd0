//! The crate's only `unsafe` code (the crate root denies it everywhere else), in two
//! crate-internal helpers the SSE parser's hot path uses. Each says why it is sound; each
//! call site says why its precondition holds.
#![allow(unsafe_code)]

/// `bytes` as a `str`, without validating it again.
///
/// Precondition (checked by a `debug_assert!` in debug builds, where the unit and property
/// tests and the fuzzers run): `bytes` is valid UTF-8. The SSE parser validates every byte it
/// stores or hands out once, as it scans a line; validating again on the way out cost about a
/// tenth of a decoded event's time.
#[inline(always)]
pub(crate) fn utf8(bytes: &[u8]) -> &str {
    debug_assert!(core::str::from_utf8(bytes).is_ok());
    // SAFETY: the precondition above; every caller states why it holds.
    unsafe { core::str::from_utf8_unchecked(bytes) }
}

/// `bytes` split into an unaligned head, the aligned middle read as pairs of machine words,
/// and an unaligned tail (`<[u8]>::align_to`). Always sound: every bit pattern is a valid
/// `[usize; 2]`, and only the aligned middle is reinterpreted. A Cortex-M0 faults on unaligned
/// word loads, so the line-end scan reads words only here.
// Used where the line-end scan is a word loop (not where it is SIMD `memchr`).
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(test))))]
#[inline(always)]
pub(crate) fn word_pairs(bytes: &[u8]) -> (&[u8], &[[usize; 2]], &[u8]) {
    // SAFETY: see above.
    unsafe { bytes.align_to::<[usize; 2]>() }
}
