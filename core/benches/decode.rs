//! Decode throughput: a 10,000-event gpt-4o stream fed in 1460-byte pieces (one TCP segment)
//! through steadyllm-core (SSE + decode to content text) and, in the same run, through
//! sse-stream + serde_json and eventsource-stream + serde_json (the async-openai path).
//!
//! `cargo bench -p steadyllm-core` — prints ns/event per decoder and corpus variant, the
//! ratios, and ends with `ns/event: steadyllm=X sse-stream+serde_json=Y eventsource-stream+serde_json=Z`
//! (medians over samples, LF variant).

#[path = "support/corpus.rs"]
mod corpus;

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};
use steadyllm_core::sse::{SseItem, SseParser};

const PIECE: usize = 1460;
const SAMPLES: usize = 21;

/// The typed chunk a serde_json-based client (async-openai) deserializes into.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Chunk {
    id: String,
    object: String,
    created: u64,
    model: String,
    system_fingerprint: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct Choice {
    index: u32,
    delta: Delta,
    logprobs: Option<serde_json::Value>,
    finish_reason: Option<String>,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct Delta {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<serde_json::Value>>,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

fn content_of(data: &str, out: &mut Vec<u8>) {
    if data == "[DONE]" {
        return;
    }
    let c: Chunk = serde_json::from_str(data).expect("valid chunk");
    for ch in c.choices {
        if let Some(t) = ch.delta.content {
            out.extend_from_slice(t.as_bytes());
        }
    }
}

/// steadyllm: SSE parser + zero-copy decoder, content unescaped into one output buffer.
fn steadyllm(input: &[u8], out: &mut Vec<u8>) -> usize {
    steadyllm_with(input, out, true)
}

/// The same with the prefix memo off: every chunk parsed in full.
fn steadyllm_full_parse(input: &[u8], out: &mut Vec<u8>) -> usize {
    steadyllm_with(input, out, false)
}

fn steadyllm_with(input: &[u8], out: &mut Vec<u8>, memo: bool) -> usize {
    let mut parser = SseParser::<4096>::new();
    let mut dec = StreamDecoder::new(Dialect::OpenAi).with_memo(memo);
    let mut events = 0;
    for piece in input.chunks(PIECE) {
        let mut rest = piece;
        while let Some(item) = parser.feed(&mut rest).expect("fits") {
            if let SseItem::Event(ev) = item {
                events += 1;
                dec.decode(ev.data, |item| {
                    if let StreamItem::Content { text, .. } = item {
                        match text.as_str() {
                            Some(s) => out.extend_from_slice(s.as_bytes()),
                            None => {
                                let mut p = text.pieces();
                                while let Some(s) = p.next_piece() {
                                    out.extend_from_slice(s.as_bytes());
                                }
                            }
                        }
                    }
                })
                .expect("valid");
            }
        }
    }
    assert!(dec.finish().is_complete());
    events
}

fn sse_only(input: &[u8], out: &mut Vec<u8>) -> usize {
    let mut parser = SseParser::<4096>::new();
    let mut events = 0;
    for piece in input.chunks(PIECE) {
        let mut rest = piece;
        while let Some(item) = parser.feed(&mut rest).expect("fits") {
            if let SseItem::Event(ev) = item {
                events += 1;
                black_box(ev.data);
            }
        }
    }
    let _ = out;
    events
}

fn drain<S: Stream>(s: S, mut f: impl FnMut(S::Item)) {
    let mut s = pin!(s);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match s.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(item)) => f(item),
            Poll::Ready(None) => return,
            Poll::Pending => unreachable!("in-memory stream is always ready"),
        }
    }
}

fn pieces(input: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let v: Vec<Result<Bytes, std::io::Error>> = input
        .chunks(PIECE)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(v)
}

fn sse_stream(input: &[u8], out: &mut Vec<u8>) -> usize {
    let mut events = 0;
    drain(sse_stream::SseByteStream::new(pieces(input)), |ev| {
        let ev = ev.expect("valid sse");
        if let Some(d) = ev.data {
            events += 1;
            content_of(&d, out);
        }
    });
    events
}

fn eventsource_stream(input: &[u8], out: &mut Vec<u8>) -> usize {
    use eventsource_stream::Eventsource;
    let mut events = 0;
    drain(pieces(input).eventsource(), |ev| {
        let ev = ev.expect("valid sse");
        events += 1;
        content_of(&ev.data, out);
    });
    events
}

type Decoder = fn(&[u8], &mut Vec<u8>) -> usize;

fn median_ns_per_event(
    input: &[u8],
    expect: &corpus::Corpus,
    f: Decoder,
    check_content: bool,
) -> f64 {
    let mut out = Vec::with_capacity(expect.content_bytes + 1024);
    // Warm up and check correctness before timing.
    let n = f(input, &mut out);
    assert_eq!(n, expect.events, "event count");
    if check_content {
        assert_eq!(out.len(), expect.content_bytes, "decoded content bytes");
    }
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            out.clear();
            let t = Instant::now();
            black_box(f(black_box(input), &mut out));
            t.elapsed().as_nanos() as f64 / expect.events as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run a tiny corpus then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let events = if quick { 200 } else { 10_000 };
    let c = corpus::generate(events, 42);
    println!(
        "corpus: {} events, LF {} bytes, CRLF {} bytes, {:.1} % non-ASCII, {:.1} % escaped, {} content bytes; {PIECE}-byte pieces, median of {SAMPLES}",
        c.events,
        c.lf.len(),
        c.crlf.len(),
        100.0 * c.non_ascii_events as f64 / c.events as f64,
        100.0 * c.escaped_events as f64 / c.events as f64,
        c.content_bytes
    );
    // (name, decoder, whether it decodes content — the SSE-only row does not)
    let decoders: [(&str, Decoder, bool); 5] = [
        ("steadyllm SSE only (no JSON)", sse_only, false),
        (
            "steadyllm, memo off (full parse)",
            steadyllm_full_parse,
            true,
        ),
        ("steadyllm", steadyllm, true),
        ("sse-stream+serde_json", sse_stream, true),
        ("eventsource-stream+serde_json", eventsource_stream, true),
    ];
    // STEADYLLM_BENCH_ONLY=<name> profiles one decoder alone.
    if let Ok(only) = std::env::var("STEADYLLM_BENCH_ONLY") {
        for (name, f, check) in decoders.iter().filter(|(n, _, _)| *n == only) {
            for _ in 0..20 {
                median_ns_per_event(&c.lf, &c, *f, *check);
            }
            println!(
                "{name}: {:.1} ns/event",
                median_ns_per_event(&c.lf, &c, *f, *check)
            );
        }
        return;
    }
    let mut lf = [0.0; 5];
    for (variant, input) in [("LF", &c.lf), ("CRLF+keep-alive", &c.crlf)] {
        println!("\n{variant}:");
        for (i, (name, f, check)) in decoders.iter().enumerate() {
            let ns = median_ns_per_event(input, &c, *f, *check);
            if variant == "LF" {
                lf[i] = ns;
            }
            println!("  {name:<32} {ns:>8.1} ns/event");
        }
    }
    let [_, _, ours, sse_stream, eventsource] = lf;
    println!(
        "\nsteadyllm is {:.1}x faster than sse-stream+serde_json and {:.1}x faster than eventsource-stream+serde_json (LF)",
        sse_stream / ours,
        eventsource / ours
    );
    println!(
        "ns/event: steadyllm={ours:.0} sse-stream+serde_json={sse_stream:.0} eventsource-stream+serde_json={eventsource:.0}"
    );
}
