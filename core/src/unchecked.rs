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

/// Where the line at the front of `bytes` ends (its first LF or CR, or `None`), and where its
/// first non-ASCII byte is if one comes before the end (`usize::MAX` if none does): the
/// contract of the SSE parser's line search, in one SSE2 pass over 16 bytes at a time (two
/// comparisons and two byte masks per 16 bytes), which replaces a `memchr2` for the end and a
/// second pass for the non-ASCII bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn sse2_line_end(bytes: &[u8]) -> (Option<usize>, usize) {
    // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 processor has it.
    unsafe { sse2::line_end(bytes) }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    #[target_feature(enable = "sse2")]
    pub(super) fn line_end(bytes: &[u8]) -> (Option<usize>, usize) {
        let (lf, cr) = (_mm_set1_epi8(b'\n' as i8), _mm_set1_epi8(b'\r' as i8));
        let mut at = 0;
        // 32 bytes a step while nothing is found: one mask says whether any byte is a line end
        // or non-ASCII (its high bit, or an equal-to-LF/CR lane's all-ones).
        while let Some(c) = bytes.get(at..at + 32) {
            // SAFETY: `c` is 32 readable bytes; `loadu` has no alignment requirement.
            let (a, b) = unsafe {
                (
                    _mm_loadu_si128(c.as_ptr().cast()),
                    _mm_loadu_si128(c.as_ptr().add(16).cast()),
                )
            };
            let flags = _mm_or_si128(
                _mm_or_si128(_mm_or_si128(a, b), _mm_cmpeq_epi8(a, lf)),
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(b, lf)),
                    _mm_cmpeq_epi8(b, cr),
                ),
            );
            if _mm_movemask_epi8(flags) != 0 {
                break;
            }
            at += 32;
        }
        let mut non_ascii = usize::MAX;
        while let Some(c) = bytes.get(at..at + 16) {
            // SAFETY: as above, 16 bytes.
            let v = unsafe { _mm_loadu_si128(c.as_ptr().cast()) };
            let ends = _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr));
            let ends = _mm_movemask_epi8(ends) as u32;
            let high = _mm_movemask_epi8(v) as u32;
            // Only non-ASCII bytes before the end count; bytes after it are the next line's.
            let before_end = match ends {
                0 => high,
                e => high & ((1 << e.trailing_zeros()) - 1),
            };
            if before_end != 0 && non_ascii == usize::MAX {
                non_ascii = at + before_end.trailing_zeros() as usize;
            }
            if ends != 0 {
                return (Some(at + ends.trailing_zeros() as usize), non_ascii);
            }
            at += 16;
        }
        for &b in bytes.get(at..).unwrap_or_default() {
            if b == b'\n' || b == b'\r' {
                return (Some(at), non_ascii);
            }
            if !b.is_ascii() && non_ascii == usize::MAX {
                non_ascii = at;
            }
            at += 1;
        }
        (None, non_ascii)
    }
}
