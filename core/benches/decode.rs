//! Decode throughput on the wire shapes providers send (see `support/corpus.rs`): for each
//! shape a 10,000-event stream fed in 1460-byte pieces (one TCP segment) through
//! steadyllm-core (SSE + decode to content text) and, in the same run, through
//! sse-stream + serde_json and eventsource-stream + serde_json (the async-openai path). For
//! Anthropic the serde peers decode Anthropic's typed events.
//!
//! `cargo bench -p steadyllm-core` prints, per shape,
//! `shape=NAME ns/event: steadyllm=X sse-stream+serde_json=Y` (with the details after it), and
//! ends with `ns/event: steadyllm=X sse-stream+serde_json=Y eventsource-stream+serde_json=Z`
//! for the shape slowest for steadyllm (medians over samples, LF encoding).
//!
//! Every corpus is first checked against a serde_json decode of the same content, and every
//! decoder must produce exactly the corpus's answer text before it is timed.
//! `STEADYLLM_BENCH_SHAPES=azure,vllm` limits the run to some shapes;
//! `STEADYLLM_BENCH_ONLY=<decoder name>` profiles one decoder alone on them.

#[path = "support/corpus.rs"]
mod corpus;

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use corpus::{Corpus, Shape};
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
    service_tier: Option<String>,
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

/// Anthropic's typed stream events, as a serde-based client declares them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
enum AnthropicEvent {
    MessageStart {
        message: AnthropicMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: serde_json::Value,
    },
    ContentBlockDelta {
        index: u32,
        delta: AnthropicDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: AnthropicStop,
        usage: AnthropicUsage,
    },
    MessageStop,
    Ping,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct AnthropicMessage {
    id: String,
    role: String,
    model: String,
    stop_reason: Option<String>,
    usage: AnthropicUsage,
}
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code, clippy::enum_variant_names)] // the names are the wire's
enum AnthropicDelta {
    TextDelta { text: String },
    ThinkingDelta { thinking: String },
    InputJsonDelta { partial_json: String },
    SignatureDelta { signature: String },
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct AnthropicStop {
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: u64,
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

fn anthropic_content_of(data: &str, out: &mut Vec<u8>) {
    let ev: AnthropicEvent = serde_json::from_str(data).expect("valid event");
    if let AnthropicEvent::ContentBlockDelta {
        delta: AnthropicDelta::TextDelta { text },
        ..
    } = ev
    {
        out.extend_from_slice(text.as_bytes());
    }
}

/// One decoder run over a whole stream: the stream, the dialect, the output; returns events.
type Decoder = fn(&[u8], Dialect, &mut Vec<u8>) -> usize;

/// steadyllm: SSE parser + zero-copy decoder, content unescaped into one output buffer.
fn steadyllm(input: &[u8], dialect: Dialect, out: &mut Vec<u8>) -> usize {
    steadyllm_with(input, dialect, out, true)
}

/// The same with the fast paths off: every chunk parsed in full.
fn steadyllm_full_parse(input: &[u8], dialect: Dialect, out: &mut Vec<u8>) -> usize {
    steadyllm_with(input, dialect, out, false)
}

fn steadyllm_with(input: &[u8], dialect: Dialect, out: &mut Vec<u8>, fast: bool) -> usize {
    let mut parser = SseParser::<4096>::new();
    let mut dec = StreamDecoder::new(dialect).with_memo(fast);
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

fn sse_only(input: &[u8], _: Dialect, out: &mut Vec<u8>) -> usize {
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

fn serde_decode(dialect: Dialect) -> fn(&str, &mut Vec<u8>) {
    match dialect {
        Dialect::OpenAi => content_of,
        Dialect::Anthropic => anthropic_content_of,
        Dialect::Responses => unreachable!("the benches decode OpenAI and Anthropic streams"),
    }
}

fn sse_stream(input: &[u8], dialect: Dialect, out: &mut Vec<u8>) -> usize {
    let decode = serde_decode(dialect);
    let mut events = 0;
    drain(sse_stream::SseByteStream::new(pieces(input)), |ev| {
        let ev = ev.expect("valid sse");
        if let Some(d) = ev.data {
            events += 1;
            decode(&d, out);
        }
    });
    events
}

fn eventsource_stream(input: &[u8], dialect: Dialect, out: &mut Vec<u8>) -> usize {
    use eventsource_stream::Eventsource;
    let decode = serde_decode(dialect);
    let mut events = 0;
    drain(pieces(input).eventsource(), |ev| {
        let ev = ev.expect("valid sse");
        events += 1;
        decode(&ev.data, out);
    });
    events
}

fn dialect(shape: Shape) -> Dialect {
    if shape.is_anthropic() {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// Runs `f` once over `input` and checks the event count and (when it decodes) the answer.
fn check(input: &[u8], c: &Corpus, f: Decoder, check_content: bool) {
    let mut out = Vec::with_capacity(c.content_bytes + 1024);
    let n = f(input, dialect(c.shape), &mut out);
    assert_eq!(n, c.events, "event count");
    if check_content {
        assert!(out == c.content.as_bytes(), "decoded answer text");
    }
}

/// Median ns/event of each job, sampled round-robin (A, B, C, A, B, C, …) so that drift in
/// the machine's load hits every decoder alike.
fn medians(c: &Corpus, jobs: &[(&[u8], Decoder)]) -> Vec<f64> {
    let d = dialect(c.shape);
    let mut out = Vec::with_capacity(c.content_bytes + 1024);
    let mut samples = vec![Vec::with_capacity(SAMPLES); jobs.len()];
    for _ in 0..SAMPLES {
        for ((input, f), s) in jobs.iter().zip(samples.iter_mut()) {
            out.clear();
            let t = Instant::now();
            black_box(f(black_box(input), d, &mut out));
            s.push(t.elapsed().as_nanos() as f64 / c.events as f64);
        }
    }
    samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[SAMPLES / 2]
        })
        .collect()
}

/// (name, decoder, whether it decodes content — the SSE-only row does not)
const DECODERS: [(&str, Decoder, bool); 5] = [
    ("steadyllm", steadyllm, true),
    ("sse-stream+serde_json", sse_stream, true),
    ("eventsource-stream+serde_json", eventsource_stream, true),
    (
        "steadyllm, fast paths off (full parse)",
        steadyllm_full_parse,
        true,
    ),
    ("steadyllm SSE only (no JSON)", sse_only, false),
];

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run tiny corpora then (every check
    // still runs: this is the corpora's test).
    let quick = !std::env::args().any(|a| a == "--bench");
    let events = if quick { 200 } else { 10_000 };
    let shapes: Vec<Shape> = match std::env::var("STEADYLLM_BENCH_SHAPES") {
        Ok(list) => list
            .split(',')
            .map(|n| Shape::from_name(n.trim()).unwrap_or_else(|| panic!("unknown shape {n}")))
            .collect(),
        Err(_) => Shape::ALL.to_vec(),
    };
    let corpora: Vec<Corpus> = shapes
        .iter()
        .map(|&s| {
            let c = corpus::generate(s, events, 42);
            corpus::check_with_serde_json(&c);
            c
        })
        .collect();
    for c in &corpora {
        for (_, f, decodes) in DECODERS {
            check(&c.lf, c, f, decodes);
        }
        check(&c.crlf, c, steadyllm, true);
    }
    if let Ok(only) = std::env::var("STEADYLLM_BENCH_ONLY") {
        for c in &corpora {
            for (name, f, _) in DECODERS.iter().filter(|(n, _, _)| *n == only) {
                for _ in 0..20 {
                    medians(c, &[(&c.lf, *f)]);
                }
                println!(
                    "shape={} {name}: {:.1} ns/event",
                    c.shape.name(),
                    medians(c, &[(&c.lf, *f)])[0]
                );
            }
        }
        return;
    }
    println!(
        "{events} events per shape, {PIECE}-byte pieces, median of {SAMPLES} round-robin samples, LF unless noted"
    );
    // Per shape: [steadyllm, sse-stream, eventsource, full parse, sse only].
    let mut results: Vec<(Shape, [f64; 5])> = Vec::new();
    for c in &corpora {
        let mut jobs: Vec<(&[u8], Decoder)> =
            DECODERS.iter().map(|(_, f, _)| (&c.lf[..], *f)).collect();
        jobs.push((&c.crlf, steadyllm));
        let m = medians(c, &jobs);
        let (ours, sse_stream, eventsource, full, sse, crlf) = (m[0], m[1], m[2], m[3], m[4], m[5]);
        println!(
            "shape={} ns/event: steadyllm={ours:.0} sse-stream+serde_json={sse_stream:.0}",
            c.shape.name()
        );
        println!(
            "    {:.1}x sse-stream+serde_json; eventsource-stream+serde_json={eventsource:.0} ({:.1}x); \
             full parse={full:.0}; SSE alone={sse:.0}; CRLF+keep-alive steadyllm={crlf:.0}; \
             {} bytes, {:.1} % non-ASCII, {:.1} % escaped",
            sse_stream / ours,
            eventsource / ours,
            c.lf.len(),
            100.0 * c.non_ascii_events as f64 / c.events as f64,
            100.0 * c.escaped_events as f64 / c.events as f64,
        );
        results.push((c.shape, [ours, sse_stream, eventsource, full, sse]));
    }
    if let Some((shape, [ours, sse_stream, eventsource, ..])) = results
        .iter()
        .max_by(|a, b| a.1[0].total_cmp(&b.1[0]))
        .copied()
    {
        let worst_ratio = results
            .iter()
            .map(|(_, r)| r[1] / r[0])
            .fold(f64::INFINITY, f64::min);
        println!(
            "\nslowest shape for steadyllm: {}; lowest ratio over sse-stream+serde_json: {worst_ratio:.1}x",
            shape.name()
        );
        println!(
            "ns/event: steadyllm={ours:.0} sse-stream+serde_json={sse_stream:.0} eventsource-stream+serde_json={eventsource:.0}"
        );
    }
}
