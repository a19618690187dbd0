//! SSE parser: arbitrary bytes, split into pieces of a fuzzer-chosen size, through a small
//! parser (so capacity errors happen). Checks the split-independence property too: feeding
//! the same bytes whole (through a second parser) must give the same items, errors and the
//! dropped events' types included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadyllm_core::sse::{SseItem, SseParser};

#[derive(Debug, PartialEq)]
enum Out {
    Event(String, String, String),
    Retry(u64),
    /// An event dropped, with its type when an `event` line named it before.
    Overflow(Option<String>),
}

fn run(data: &[u8], piece: usize) -> Vec<Out> {
    let mut p = SseParser::<64>::new();
    let mut out = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        let mut rest = chunk;
        loop {
            match p.feed(&mut rest) {
                Ok(Some(SseItem::Event(e))) => out.push(Out::Event(
                    e.event_type().into(),
                    e.data.into(),
                    e.last_event_id.into(),
                )),
                Ok(Some(SseItem::Retry(ms))) => out.push(Out::Retry(ms)),
                Ok(None) => break,
                Err(_) => out.push(Out::Overflow(p.dropped_event_type().map(String::from))),
            }
        }
    }
    p.finish();
    out
}

fuzz_target!(|input: (u8, &[u8])| {
    let (piece, data) = input;
    let split = run(data, usize::from(piece % 32) + 1);
    let whole = run(data, data.len().max(1));
    assert_eq!(split, whole);
});
