//! Stream decoder: arbitrary text as event data, both dialects. Must never panic, and every
//! decoded string must unescape into a buffer of its reported decoded length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};

fuzz_target!(|data: &str| {
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let mut dec = StreamDecoder::new(dialect);
        let _ = dec.decode(data, |item| {
            let text = match item {
                StreamItem::Content { text, .. }
                | StreamItem::Reasoning { text, .. }
                | StreamItem::Refusal { text, .. } => text,
                StreamItem::ToolCall(t) => t.arguments,
                StreamItem::Error(e) => e.message,
                _ => return,
            };
            let len = text.decoded_len();
            let mut buf = vec![0u8; len];
            let s = text.unescape_into(&mut buf).expect("decoded_len is enough");
            assert_eq!(s.len(), len);
            assert_eq!(s, text.to_string());
        });
        let _ = dec.finish();
    }
});
