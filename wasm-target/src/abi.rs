//! The module's exports: a C ABI of numbers and addresses in the module's memory, for its one
//! caller, the wrapper (`js/src/index.js`, whose `Engine` and `Chat` classes are these
//! functions and nothing more). Without a bindings generator the module carries no glue of
//! its own and the wrapper none beyond those two classes.
//!
//! - [`Engine`]s and [`Chat`]s live on the module's heap: the `*_create`/`*_new` functions
//!   return their addresses (0: refused), the `*_free` functions end them.
//! - Bytes go in through a chat's input buffer: [`chat_input`] makes it `len` bytes long and
//!   returns where it is; the wrapper writes there, then calls [`chat_head`] or [`chat_feed`]
//!   with the same `len`.
//! - Batches come out in place: [`chat_words`] and [`chat_size`] (see [`crate::batch`]).
//!
//! The contract, which every function here assumes: addresses passed in are ones these
//! functions returned and that were not freed, and a chat and an engine passed together are
//! two different objects. `0` for an object is ignored.
// The wrapper's code (index.js) and these functions change together.

use alloc::boxed::Box;

use crate::{Chat, Engine, input};

/// The object at `p`, if any.
///
/// # Safety
/// `p` is null or an address this module returned for a `T` and did not free, with no other
/// reference to it alive.
unsafe fn object<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller's contract (see the module docs).
    unsafe { p.as_mut() }
}

/// A new engine from the client's settings (`n0`…`n11`: [`input::cfg`]), `endpoints` (1–4),
/// the dialect mask (bit `i`: endpoint `i` is Anthropic; bit `4 + i`: OpenAI's Responses API)
/// and the seed; 0 when a value is out of range.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn engine_create(
    n0: u32,
    n1: u32,
    n2: u32,
    n3: u32,
    n4: u32,
    n5: u32,
    n6: u32,
    n7: u32,
    n8: u32,
    n9: u32,
    n10: u32,
    n11: u32,
    endpoints: u32,
    dialects: u32,
    seed_lo: u32,
    seed_hi: u32,
) -> *mut Engine {
    let numbers: [u32; input::cfg::LEN] = [n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11];
    Engine::create(&numbers, endpoints, dialects, seed_lo, seed_hi)
        .map_or(core::ptr::null_mut(), |e| Box::into_raw(Box::new(e)))
}

/// Ends an engine.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn engine_free(engine: *mut Engine) {
    if !engine.is_null() {
        // SAFETY: an engine this module made with `Box::into_raw`, freed once.
        drop(unsafe { Box::from_raw(engine) });
    }
}

/// [`Engine::health`].
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn engine_health(engine: *mut Engine, now: f64) -> u32 {
    // SAFETY: see the module docs.
    unsafe { object(engine) }.map_or(0, |e| e.health(now))
}

/// A new call ([`Chat::new`]); 0 without an engine.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_new(
    engine: *mut Engine,
    now: f64,
    prompt_bytes: u32,
    max_tokens: u32,
    kind: u32,
) -> *mut Chat {
    // SAFETY: see the module docs.
    let Some(e) = (unsafe { object(engine) }) else {
        return core::ptr::null_mut();
    };
    let chat = Chat::new(e, now, prompt_bytes, max_tokens, kind);
    Box::into_raw(Box::new(chat))
}

/// Ends a call.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_free(chat: *mut Chat) {
    if !chat.is_null() {
        // SAFETY: a chat this module made with `Box::into_raw`, freed once.
        drop(unsafe { Box::from_raw(chat) });
    }
}

/// [`Chat::next`].
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_next(chat: *mut Chat, engine: *mut Engine, now: f64) {
    // SAFETY: see the module docs (two different objects).
    if let (Some(c), Some(e)) = unsafe { (object(chat), object(engine)) } {
        c.next(e, now);
    }
}

/// Makes the chat's input buffer `len` bytes long and returns where it is (valid until the
/// next call into the module); 0 without a chat.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_input(chat: *mut Chat, len: usize) -> *mut u8 {
    // SAFETY: see the module docs.
    let Some(c) = (unsafe { object(chat) }) else {
        return core::ptr::null_mut();
    };
    c.input.resize(len, 0);
    c.input.as_mut_ptr()
}

/// The chat's input buffer's first `len` bytes, taken out of it (put back with
/// [`Chat::input`] after use).
fn take_input(c: &mut Chat, len: usize) -> alloc::vec::Vec<u8> {
    let mut input = core::mem::take(&mut c.input);
    input.truncate(len);
    input
}

/// [`Chat::head`] with the headers in the input buffer (`len` bytes).
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_head(chat: *mut Chat, status: u32, len: usize) {
    // SAFETY: see the module docs.
    if let Some(c) = unsafe { object(chat) } {
        let input = take_input(c, len);
        c.head(u16::try_from(status).unwrap_or(0), &input);
        c.input = input;
    }
}

/// [`Chat::feed`] with the bytes in the input buffer (`len` bytes).
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_feed(chat: *mut Chat, len: usize) -> u32 {
    // SAFETY: see the module docs.
    let Some(c) = (unsafe { object(chat) }) else {
        return 0;
    };
    let input = take_input(c, len);
    let flags = c.feed(&input);
    c.input = input;
    flags
}

/// [`Chat::sent`]; infinity without a chat.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_sent(chat: *mut Chat, now: f64) -> f64 {
    // SAFETY: see the module docs.
    unsafe { object(chat) }.map_or(f64::INFINITY, |c| c.sent(now))
}

/// [`Chat::wait`]; infinity without a chat.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_wait(chat: *mut Chat, now: f64) -> f64 {
    // SAFETY: see the module docs.
    unsafe { object(chat) }.map_or(f64::INFINITY, |c| c.wait(now))
}

/// [`Chat::end`].
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_end(chat: *mut Chat, engine: *mut Engine, now: f64, how: u32) {
    // SAFETY: see the module docs (two different objects).
    if let (Some(c), Some(e)) = unsafe { (object(chat), object(engine)) } {
        c.end(e, now, how);
    }
}

/// [`Chat::words`]; 0 without a chat.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_words(chat: *mut Chat) -> *const u32 {
    // SAFETY: see the module docs.
    unsafe { object(chat) }.map_or(core::ptr::null(), |c| c.words())
}

/// [`Chat::size`]; 0 without a chat.
///
/// # Safety
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chat_size(chat: *mut Chat) -> u32 {
    // SAFETY: see the module docs.
    unsafe { object(chat) }.map_or(0, |c| c.size())
}

#[cfg(test)]
mod tests {
    //! The exports as the wrapper uses them, natively.
    use super::*;
    use crate::flag;

    #[test]
    fn a_call_through_the_exports() {
        let u = input::UNSET;
        let e = engine_create(3, u, u, u, u, u, u, u, u, u, u, u, 1, 0, 1, 2);
        assert!(!e.is_null());
        // SAFETY: addresses these functions returned, each freed once below.
        unsafe {
            assert_eq!(engine_health(e, 0.0), 1);
            let c = chat_new(e, 0.0, 10, 0, 0);
            chat_next(c, e, 0.0);
            assert!(chat_size(c) > 0, "a step record");
            let put = |bytes: &[u8]| {
                let p = chat_input(c, bytes.len());
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
                bytes.len()
            };
            // The default first-byte timeout (30 s) from the send; idle (30 s) from a read after
            // content.
            assert_eq!(chat_sent(c, 500.0), 30_500.0);
            chat_head(c, 200, put(b"content-type: text/event-stream\n"));
            let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
            let f = chat_feed(c, put(body));
            assert_eq!(f & (flag::RECORDS | flag::OVER), flag::RECORDS | flag::OVER);
            let n = chat_size(c) as usize;
            let w = core::slice::from_raw_parts(chat_words(c), n + 2);
            // After the records: where the text is (an address in wasm32's memory), its length.
            assert_eq!((w[0], w[n + 1]), (crate::batch::kind::CONTENT, 2));
            assert_eq!((*c).body.sink.out.text, "Hi");
            assert_eq!(chat_wait(c, 1_000.0), 31_000.0);
            chat_end(c, e, 1.0, crate::end::BODY);
            chat_free(c);
            engine_free(e);
            // Null objects are ignored.
            chat_free(core::ptr::null_mut());
            assert_eq!(chat_feed(core::ptr::null_mut(), 0), 0);
            assert_eq!(chat_wait(core::ptr::null_mut(), 0.0), f64::INFINITY);
        }
        let refused = engine_create(0, u, u, u, u, u, u, u, u, u, u, u, 1, 0, 0, 0);
        assert!(refused.is_null(), "maxAttempts 0 is refused");
    }
}
