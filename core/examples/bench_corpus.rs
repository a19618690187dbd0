//! Writes the decode benchmark's stream (the same generator and seed as `benches/decode.rs`)
//! to stdout, for benchmarks outside Rust (the browser package's `npm run bench`).
//!
//! `cargo run --release -p steadyllm-core --example bench_corpus [EVENTS] > stream.sse`

use std::io::Write;

#[path = "../benches/support/corpus.rs"]
#[allow(dead_code)]
mod corpus;

fn main() {
    let events = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000usize)
        .max(5);
    let c = corpus::generate(events, 42);
    let mut out = std::io::stdout().lock();
    if out.write_all(&c.lf).and_then(|_| out.flush()).is_err() {
        std::process::exit(1);
    }
    eprintln!(
        "{} events, {} bytes, {} content bytes",
        c.events,
        c.lf.len(),
        c.content_bytes
    );
}
