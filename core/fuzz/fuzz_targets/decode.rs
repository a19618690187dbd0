//! Stream decoder: arbitrary text as event data, both dialects. Must never panic; every
//! decoded string must unescape into a buffer of its reported decoded length; and the prefix
//! memo must never change a result: the input is split at its first newline into two events,
//! and the second decoded after the first must give what it gives on a fresh decoder.
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

fn items(dec: &mut StreamDecoder, data: &str) -> (bool, Vec<String>) {
    let mut out = Vec::new();
    let ok = dec.decode(data, |i| out.push(check(&i))).is_ok();
    (ok, out)
}

fuzz_target!(|data: &str| {
    let (first, second) = data.split_once('\n').unwrap_or((data, data));
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let mut warm = StreamDecoder::new(dialect);
        let _ = items(&mut warm, first);
        let _ = items(&mut warm, first);
        if warm.is_done() {
            // After the end marker nothing more is decoded, by design.
            continue;
        }
        let a = items(&mut warm, second);
        let b = items(&mut StreamDecoder::new(dialect), second);
        assert_eq!(a, b, "memo changed the result");
        let _ = warm.finish();
    }
});
