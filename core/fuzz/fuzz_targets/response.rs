//! HTTP/1.1 responses: arbitrary bytes as a response head, and as a chunked body fed in pieces
//! of a fuzzer-chosen size. Must parse or fail with a typed error, never panic; the body's
//! payload (and any error) must not depend on the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadyllm_core::response::{BodyDecoder, Framing, ResponseHead};

fn chunked(data: &[u8], piece: usize) -> (Vec<u8>, Option<bool>) {
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut out = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        let mut rest = chunk;
        while !rest.is_empty() && !d.is_done() {
            let before = rest.len();
            match d.decode(&mut rest) {
                Ok(p) => {
                    assert!(p.len() <= before - rest.len());
                    out.extend_from_slice(p);
                }
                Err(_) => return (out, None),
            }
        }
    }
    (out, Some(d.is_done()))
}

fuzz_target!(|input: (u8, &[u8])| {
    let (piece, data) = input;
    if let Ok(Some(head)) = ResponseHead::parse(data) {
        assert!(head.len <= data.len());
        assert!(head.status >= 200);
        for (name, _) in head.headers() {
            assert!(!name.is_empty());
        }
    }
    let whole = chunked(data, data.len());
    let split = chunked(data, usize::from(piece));
    assert_eq!(whole, split);
});
