//! Stream decoder: arbitrary text as event data, every dialect. Must never panic; every
//! decoded string must unescape into a buffer of its reported decoded length; and the fast
//! paths must never change a result: the input is split at its newlines into up to four
//! events, and a decoder with templates on must give, event by event, exactly what a decoder
//! with templates off (every event parsed in full) gives — items, errors and end state. The
//! first event is also repeated, so that a template learned from it meets variants of itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};

fn check(item: &StreamItem<'_>) -> String {
    let text = match item {
        StreamItem::Content { text, .. }
        | StreamItem::Reasoning { text, .. }
        | StreamItem::Refusal { text, .. } => *text,
        StreamItem::ToolCall(t) => t.arguments,
        StreamItem::Error(e) => e.message,
        _ => return format!("{item:?}"),
    };
    let len = text.decoded_len();
    let mut buf = vec![0u8; len];
    let s = text.unescape_into(&mut buf).expect("decoded_len is enough");
    assert_eq!(s.len(), len);
    assert_eq!(s, text.to_string());
    format!("{item:?}")
}

fn items(dec: &mut StreamDecoder, data: &str) -> (Result<(), String>, Vec<String>) {
    let mut out = Vec::new();
    let r = dec
        .decode(data, |i| out.push(check(&i)))
        .map_err(|e| e.to_string());
    (r, out)
}

fuzz_target!(|data: &str| {
    let mut events: Vec<&str> = data.splitn(4, '\n').collect();
    if let Some(&first) = events.first() {
        events.insert(1, first);
    }
    for dialect in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Responses] {
        let mut fast = StreamDecoder::new(dialect);
        let mut full = StreamDecoder::new(dialect).with_memo(false);
        for e in &events {
            assert_eq!(items(&mut fast, e), items(&mut full, e), "templates changed {e:?}");
            assert_eq!(fast.is_done(), full.is_done());
        }
        assert_eq!(fast.finish(), full.finish());
    }
});
