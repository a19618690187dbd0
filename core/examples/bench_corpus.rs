//! Writes a decode benchmark stream (the same generator and seed as `benches/decode.rs`) to
//! stdout, for benchmarks outside Rust (the browser package's `npm run bench`). The shape
//! defaults to `openai-2026`, OpenAI's chunks as sent today; the others are `gpt-4o-2024`,
//! `azure`, `vllm`, `ollama` and `anthropic`. The stream is checked against a serde_json decode
//! before it is written.
//!
//! `cargo run --release -p steadyllm-core --example bench_corpus [EVENTS] [SHAPE] > stream.sse`

use std::io::Write;

#[path = "../benches/support/corpus.rs"]
#[allow(dead_code)]
mod corpus;

fn main() {
    let mut args = std::env::args().skip(1);
    let events = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000usize)
        .max(10);
    let name = args.next().unwrap_or_else(|| "openai-2026".into());
    let Some(shape) = corpus::Shape::from_name(&name) else {
        eprintln!("unknown shape {name}");
        std::process::exit(2);
    };
    let c = corpus::generate(shape, events, 42);
    corpus::check_with_serde_json(&c);
    let mut out = std::io::stdout().lock();
    if out.write_all(&c.lf).and_then(|_| out.flush()).is_err() {
        std::process::exit(1);
    }
    eprintln!(
        "{}: {} events, {} bytes, {} content bytes",
        shape.name(),
        c.events,
        c.lf.len(),
        c.content_bytes
    );
}
