//! Generates the bench corpus: a deterministic chat-completions stream shaped like OpenAI's in
//! 2026, and what a correct decoder must find in it.
//!
//! Every chunk carries `id, object, created, model, service_tier, system_fingerprint, choices,
//! usage, obfuscation` in OpenAI's order; `obfuscation` is a random string of 1–16 characters,
//! different in every chunk, as the API sends by default. A role chunk, content chunks of 1–6
//! words (some non-ASCII, some with JSON escapes), a finish chunk, a usage chunk (empty
//! `choices`) and `[DONE]`. Written to `$OUT_DIR/corpus.sse`; the expected event count,
//! content bytes and content checksum go to `$OUT_DIR/corpus.rs`.
use std::fmt::Write as _;
use std::{env, fs, path::PathBuf};

/// Events in the corpus (the chunks and `[DONE]`).
const EVENTS: usize = 1000;
const SEED: u64 = 0x5eed_2026;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn token(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

const WORDS: &[&str] = &[
    "the",
    "light",
    "of",
    "sky",
    "is",
    "blue",
    "because",
    "air",
    "molecules",
    "scatter",
    "shorter",
    "wavelengths",
    "more",
    "than",
    "longer",
    "ones",
    "and",
    "this",
    "Rayleigh",
    "scattering",
    "makes",
    "sunlight",
    "appear",
    "from",
    "every",
    "direction",
    "at",
    "noon",
    "while",
    "sunsets",
    "look",
    "red",
    "orange",
    "since",
    "path",
    "through",
    "atmosphere",
    "longer",
    "a",
    "to",
    "in",
    "it",
    "that",
    "for",
    "with",
    "as",
    "on",
    "by",
    "we",
    "can",
    "stream",
    "token",
    "buffer",
    "parser",
    "embedded",
    "device",
    "network",
    "retry",
];
const SPECIAL: &[&str] = &[
    "\n",
    "\n\n",
    "\n- ",
    "\"quoted\"",
    "say \"hi\"",
    "C:\\path",
    "\t",
    "café",
    "naïve",
    "Ünïcödé",
    "日本語",
    "你好，世界",
    "—",
    "…",
    "→",
    "😀",
    "🚀",
    "🦀",
    "✅",
    "€",
];
const PUNCT: &[&str] = &[",", ".", ":", ";", "!", "?"];
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// JSON string literal, escaped as OpenAI's servers do (UTF-8 kept as is).
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn text(rng: &mut Rng) -> String {
    let words = [1, 1, 1, 1, 2, 2, 3, 4, 5, 6][rng.below(10)];
    let mut s = String::new();
    for _ in 0..words {
        let r = rng.below(100);
        let w = if r < 12 {
            rng.pick(SPECIAL)
        } else if r < 20 {
            rng.pick(PUNCT)
        } else {
            rng.pick(WORDS)
        };
        if !s.is_empty() && !PUNCT.contains(&w) && !w.starts_with('\n') {
            s.push(' ');
        }
        s.push_str(w);
    }
    if rng.below(10) < 7 && !s.starts_with('\n') {
        s.insert(0, ' ');
    }
    s
}

fn fnv1a(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

fn main() {
    let mut rng = Rng(SEED);
    let id = rng.token(29, ALNUM);
    let fp = rng.token(10, b"0123456789abcdef");
    let created = 1_767_225_600 + rng.below(10_000_000);
    let head = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{created},"model":"gpt-4o-2024-11-20","service_tier":"default","system_fingerprint":"fp_{fp}","choices":"#
    );
    let mut stream = String::new();
    let mut event = |rng: &mut Rng, choices: &str, usage: &str| {
        let n = 1 + rng.below(16);
        let obfuscation = rng.token(n, ALNUM);
        let _ = write!(
            stream,
            "data: {head}{choices},\"usage\":{usage},\"obfuscation\":\"{obfuscation}\"}}\n\n"
        );
    };
    let choice = |delta: &str, finish: &str| {
        format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]"#)
    };
    let content_events = EVENTS - 4;
    let (mut bytes, mut hash) = (0usize, 0x811C_9DC5u32);
    event(
        &mut rng,
        &choice(
            r#"{"role":"assistant","content":"","refusal":null,"annotations":[]}"#,
            "null",
        ),
        "null",
    );
    for _ in 0..content_events {
        let t = text(&mut rng);
        bytes += t.len();
        hash = fnv1a(hash, t.as_bytes());
        event(
            &mut rng,
            &choice(&format!(r#"{{"content":{}}}"#, json(&t)), "null"),
            "null",
        );
    }
    event(&mut rng, &choice("{}", "\"stop\""), "null");
    event(
        &mut rng,
        "[]",
        &format!(
            r#"{{"prompt_tokens":23,"completion_tokens":{content_events},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
            23 + content_events
        ),
    );
    stream.push_str("data: [DONE]\n\n");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("corpus.sse"), &stream).expect("write corpus.sse");
    fs::write(
        out.join("corpus.rs"),
        format!(
            "/// Events in the corpus.\npub const EVENTS: usize = {EVENTS};\n\
             /// Bytes of the answer's text.\npub const CONTENT_BYTES: usize = {bytes};\n\
             /// FNV-1a of the answer's text.\npub const CONTENT_FNV: u32 = {hash:#x};\n\
             /// Completion tokens in the usage chunk.\npub const COMPLETION_TOKENS: u64 = {content_events};\n"
        ),
    )
    .expect("write corpus.rs");
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
