//! Benchmark streams, generated deterministically inside the project: the same answer text in
//! the wire shapes providers send ([`Shape`]). Every stream has a role chunk (or Anthropic's
//! opening events), content chunks of 1–6 "words" (~22 % with non-ASCII text, ~13 % with JSON
//! escapes), a finish chunk, a usage chunk and the end marker; two encodings: LF only, and CRLF
//! with `: keep-alive` comments.
//!
//! The shapes follow what the servers' code writes (checked against their sources, not
//! guessed):
//! - `gpt-4o-2024`: the benchmark's original shape, every chunk with `"usage":null`;
//! - `openai-2026`: OpenAI since August 2025 — `service_tier` after `model`, `usage`, and last
//!   `obfuscation`, 1–16 random base62 characters with a new length in every chunk;
//! - `azure`: Azure OpenAI — keys in alphabetical order (`choices` first), a first chunk with
//!   `prompt_filter_results` and empty `choices`, `content_filter_results` with its four
//!   categories in every content chunk, a usage chunk;
//! - `vllm`: vLLM's pydantic models dumped with `exclude_unset` — no `system_fingerprint`, a
//!   32-hex id, `"logprobs":null,"finish_reason":null,"token_ids":null` per choice,
//!   `prompt_token_ids` in the first chunk, `stop_reason` in the last, usage keys in the
//!   model's order (`prompt_tokens, total_tokens, completion_tokens`);
//! - `ollama`: Ollama's OpenAI-compatible endpoint (Go `encoding/json`) — `"role":"assistant"`
//!   in every delta, `created` taken per chunk (it ticks with the clock), `fp_ollama`, `<`, `>`
//!   and `&` escaped as `\u003c`, `\u003e`, `\u0026`;
//! - `anthropic`: Messages events with `event:` lines — `message_start`,
//!   `content_block_start`, `ping`, `content_block_delta`/`text_delta`, `content_block_stop`,
//!   `message_delta` with usage, `message_stop`.
//!
//! [`check_with_serde_json`] decodes a corpus with serde_json and compares it with what the
//! generator put in: the benchmark runs it on every corpus before timing anything.

/// SplitMix64: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn text(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }
}

const WORDS: &str = "the of and to in is you that it he was for on are as with his they I at be \
this have from or one had by word but not what all were we when your can said there use an each \
which she do how their if will up other about out many then them these so some her would make like \
him into time has look two more write go see number no way could people my than first water been \
call who oil its now find long down day did get come made may part Rust parser stream token \
latency throughput buffer allocation function return struct impl trait async await const \
serialize deserialize response request chunk event model embedded microcontroller";
const PUNCT: &[&str] = &[",", ".", ":", ";", "!", "?", " -", "'s", "(", ")"];
const SPECIAL: &[&str] = &[
    "\"quoted\"",
    "say \"hi\"",
    "\n",
    "\n\n",
    "\n- ",
    "```rust\n",
    "\n```",
    "\t",
    "\\",
    "C:\\path",
    "中文",
    "你好，世界",
    "字节流",
    "日本語",
    "Ünïcödé",
    "naïve",
    "café",
    "–",
    "—",
    "…",
    "😀",
    "🚀",
    "👍🏽",
    "🦀",
    "✅",
    "→",
    "∑",
    "€",
    "<T>",
    "a && b",
    "x -> y",
];

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";

fn token_text(rng: &mut Rng, words: &[&str]) -> String {
    let n = *rng.pick(&[1, 1, 1, 1, 2, 2, 3, 4, 5, 6]);
    let mut s = String::new();
    for _ in 0..n {
        let r = rng.unit();
        let p = if r < 0.15 {
            *rng.pick(SPECIAL)
        } else if r < 0.25 {
            *rng.pick(PUNCT)
        } else {
            *rng.pick(words)
        };
        if PUNCT.contains(&p) || p.starts_with('\n') || s.is_empty() {
            s.push_str(p);
        } else {
            s.push(' ');
            s.push_str(p);
        }
    }
    if rng.unit() < 0.7 && !s.starts_with('\n') {
        s.insert(0, ' ');
    }
    s
}

/// A provider's wire shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Gpt4o2024,
    OpenAi2026,
    Azure,
    Vllm,
    Ollama,
    Anthropic,
}

impl Shape {
    pub const ALL: [Shape; 6] = [
        Shape::Gpt4o2024,
        Shape::OpenAi2026,
        Shape::Azure,
        Shape::Vllm,
        Shape::Ollama,
        Shape::Anthropic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Gpt4o2024 => "gpt-4o-2024",
            Shape::OpenAi2026 => "openai-2026",
            Shape::Azure => "azure",
            Shape::Vllm => "vllm",
            Shape::Ollama => "ollama",
            Shape::Anthropic => "anthropic",
        }
    }

    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_anthropic(self) -> bool {
        self == Shape::Anthropic
    }
}

/// The generated stream and what a correct decoder must find in it.
pub struct Corpus {
    pub shape: Shape,
    pub lf: Vec<u8>,
    pub crlf: Vec<u8>,
    /// Server-sent events (blocks with data) in the stream.
    pub events: usize,
    /// The answer: every content delta, concatenated.
    pub content: String,
    pub content_bytes: usize,
    pub non_ascii_events: usize,
    pub escaped_events: usize,
    /// Usage the stream reports: prompt, completion, total.
    pub usage: (u64, u64, u64),
}

/// JSON string literal as serde_json (and pydantic, and OpenAI's servers) write it.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("json")
}

/// JSON string literal as Go's `encoding/json` writes it: also `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u` escapes.
fn go_json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An SSE block: `data:` (and `event:` for Anthropic) lines and the blank line.
struct Block {
    event: Option<&'static str>,
    data: String,
}

/// `events` server-sent events in `shape`, from `seed`. The answer text depends only on
/// `events` and `seed`, so the shapes carry nearly the same text (each shape has its own
/// number of non-content events).
pub fn generate(shape: Shape, events: usize, seed: u64) -> Corpus {
    let mut rng = Rng::new(seed);
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    // Ids first, then the text: the legacy shape keeps the bytes it always had.
    let id29 = rng.text(ALNUM, 29);
    let fp = rng.text(HEX, 10);
    let created = 1_725_000_000 + rng.next() % 10_000_000;
    let overhead = match shape {
        Shape::Gpt4o2024 | Shape::OpenAi2026 | Shape::Vllm | Shape::Ollama => 4,
        Shape::Azure => 5,
        Shape::Anthropic => 6,
    };
    let n_content = events - overhead;
    let texts: Vec<String> = (0..n_content)
        .map(|_| token_text(&mut rng, &words))
        .collect();
    let prompt_tokens = 1234;
    let usage = (
        prompt_tokens,
        n_content as u64,
        prompt_tokens + n_content as u64,
    );
    // Per-chunk randomness of the shape (obfuscation, ids) from its own stream.
    let mut srng = Rng::new(seed ^ 0x5348_4150_4553);
    let blocks = match shape {
        Shape::Gpt4o2024 => gpt4o_2024(&texts, &id29, &fp, created, usage),
        Shape::OpenAi2026 => openai_2026(&texts, &id29, &fp, created, usage, &mut srng),
        Shape::Azure => azure(&texts, &id29, &fp, created, usage),
        Shape::Vllm => vllm(&texts, created, usage, &mut srng),
        Shape::Ollama => ollama(&texts, created, usage, &mut srng),
        Shape::Anthropic => anthropic(&texts, usage, &mut srng),
    };
    assert_eq!(blocks.len(), events, "{shape:?} event count");
    let mut lf = Vec::new();
    let mut crlf = Vec::new();
    let mut rng2 = Rng::new(seed + 1);
    for b in &blocks {
        let event_line = |nl: &str| {
            b.event
                .map(|e| format!("event: {e}{nl}"))
                .unwrap_or_default()
        };
        lf.extend_from_slice(format!("{}data: {}\n\n", event_line("\n"), b.data).as_bytes());
        let r = rng2.unit();
        if r < 0.04 {
            crlf.extend_from_slice(b": keep-alive\r\n\r\n");
        } else if r < 0.05 {
            crlf.extend_from_slice(b": keep-alive\r\n");
        }
        crlf.extend_from_slice(
            format!("{}data: {}\r\n\r\n", event_line("\r\n"), b.data).as_bytes(),
        );
    }
    let content: String = texts.concat();
    Corpus {
        shape,
        events,
        content_bytes: content.len(),
        content,
        non_ascii_events: blocks.iter().filter(|b| !b.data.is_ascii()).count(),
        escaped_events: blocks.iter().filter(|b| b.data.contains('\\')).count(),
        usage,
        lf,
        crlf,
    }
}

fn data(data: String) -> Block {
    Block { event: None, data }
}

const GPT4O_USAGE_DETAILS: &str = r#""prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}"#;

fn openai_usage((p, c, t): (u64, u64, u64)) -> String {
    format!(
        r#"{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},{GPT4O_USAGE_DETAILS}}}"#
    )
}

fn gpt4o_2024(
    texts: &[String],
    id: &str,
    fp: &str,
    created: u64,
    usage: (u64, u64, u64),
) -> Vec<Block> {
    let head = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{created},"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_{fp}","choices":"#
    );
    let chunk = |delta: &str, finish: &str| {
        data(format!(
            r#"{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        ))
    };
    let mut out = vec![chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    )];
    for t in texts {
        out.push(chunk(&format!(r#"{{"content":{}}}"#, json_str(t)), "null"));
    }
    out.push(chunk("{}", "\"stop\""));
    out.push(data(format!(
        r#"{head}[],"usage":{}}}"#,
        openai_usage(usage)
    )));
    out.push(data("[DONE]".into()));
    out
}

fn openai_2026(
    texts: &[String],
    id: &str,
    fp: &str,
    created: u64,
    usage: (u64, u64, u64),
    rng: &mut Rng,
) -> Vec<Block> {
    let head = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{created},"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_{fp}","choices":"#
    );
    let mut obfuscation = || {
        let len = 1 + (rng.next() % 16) as usize;
        rng.text(BASE62, len)
    };
    let mut chunk = |delta: &str, finish: &str| {
        data(format!(
            r#"{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null,"obfuscation":"{}"}}"#,
            obfuscation()
        ))
    };
    let mut out = vec![chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    )];
    for t in texts {
        out.push(chunk(&format!(r#"{{"content":{}}}"#, json_str(t)), "null"));
    }
    out.push(chunk("{}", "\"stop\""));
    let o = obfuscation();
    out.push(data(format!(
        r#"{head}[],"usage":{},"obfuscation":"{o}"}}"#,
        openai_usage(usage)
    )));
    out.push(data("[DONE]".into()));
    out
}

fn azure(
    texts: &[String],
    id: &str,
    fp: &str,
    created: u64,
    (p, c, t): (u64, u64, u64),
) -> Vec<Block> {
    const SAFE: &str = r#"{"filtered":false,"severity":"safe"}"#;
    let filters =
        format!(r#"{{"hate":{SAFE},"self_harm":{SAFE},"sexual":{SAFE},"violence":{SAFE}}}"#);
    let tail = format!(
        r#""created":{created},"id":"chatcmpl-{id}","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_{fp}""#
    );
    let chunk = |filters: &str, delta: &str, finish: &str| {
        data(format!(
            r#"{{"choices":[{{"content_filter_results":{filters},"delta":{delta},"finish_reason":{finish},"index":0,"logprobs":null}}],{tail}}}"#
        ))
    };
    let mut out = vec![data(format!(
        r#"{{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{{"content_filter_results":{{"hate":{SAFE},"jailbreak":{{"detected":false,"filtered":false}},"self_harm":{SAFE},"sexual":{SAFE},"violence":{SAFE}}},"prompt_index":0}}]}}"#
    ))];
    out.push(chunk(
        "{}",
        r#"{"content":"","refusal":null,"role":"assistant"}"#,
        "null",
    ));
    for text in texts {
        out.push(chunk(
            &filters,
            &format!(r#"{{"content":{}}}"#, json_str(text)),
            "null",
        ));
    }
    out.push(chunk("{}", "{}", "\"stop\""));
    out.push(data(format!(
        r#"{{"choices":[],{tail},"usage":{{"completion_tokens":{c},"completion_tokens_details":{{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0}},"prompt_tokens":{p},"prompt_tokens_details":{{"audio_tokens":0,"cached_tokens":0}},"total_tokens":{t}}}}}"#
    )));
    out.push(data("[DONE]".into()));
    out
}

fn vllm(texts: &[String], created: u64, (p, c, t): (u64, u64, u64), rng: &mut Rng) -> Vec<Block> {
    let id = rng.text(HEX, 32);
    let head = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{created},"model":"meta-llama/Llama-3.1-8B-Instruct","choices":"#
    );
    let mut out = vec![data(format!(
        r#"{head}[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}],"prompt_token_ids":null}}"#
    ))];
    for text in texts {
        out.push(data(format!(
            r#"{head}[{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null,"token_ids":null}}]}}"#,
            json_str(text)
        )));
    }
    out.push(data(format!(
        r#"{head}[{{"index":0,"delta":{{"content":""}},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null}}]}}"#
    )));
    out.push(data(format!(
        r#"{head}[],"usage":{{"prompt_tokens":{p},"total_tokens":{t},"completion_tokens":{c}}}}}"#
    )));
    out.push(data("[DONE]".into()));
    out
}

fn ollama(texts: &[String], created: u64, (p, c, t): (u64, u64, u64), rng: &mut Rng) -> Vec<Block> {
    let id = 1 + rng.next() % 999;
    // `created` is the clock when each chunk was written: ~40 tokens a second.
    let mut clock = created * 1000;
    let mut chunk = |content: &str, finish: &str| {
        clock += 15 + rng.next() % 20;
        data(format!(
            r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{},"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{{"index":0,"delta":{{"role":"assistant","content":{content}}},"finish_reason":{finish}}}]}}"#,
            clock / 1000
        ))
    };
    let mut out = vec![chunk("\"\"", "null")];
    for text in texts {
        out.push(chunk(&go_json_str(text), "null"));
    }
    out.push(chunk("\"\"", "\"stop\""));
    let now = clock / 1000;
    out.push(data(format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{now},"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t}}}}}"#
    )));
    out.push(data("[DONE]".into()));
    out
}

fn anthropic(texts: &[String], (p, c, _): (u64, u64, u64), rng: &mut Rng) -> Vec<Block> {
    let id = rng.text(ALNUM, 24);
    let ev = |event: &'static str, data: String| Block {
        event: Some(event),
        data,
    };
    let mut out = vec![
        ev(
            "message_start",
            format!(
                r#"{{"type":"message_start","message":{{"id":"msg_01{id}","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{p},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"output_tokens":1,"service_tier":"standard"}}}}}}"#
            ),
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                .into(),
        ),
        ev("ping", r#"{"type": "ping"}"#.into()),
    ];
    for text in texts {
        out.push(ev(
            "content_block_delta",
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                json_str(text)
            ),
        ));
    }
    out.push(ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.into(),
    ));
    out.push(ev(
        "message_delta",
        format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"input_tokens":{p},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{c}}}}}"#
        ),
    ));
    out.push(ev("message_stop", r#"{"type":"message_stop"}"#.into()));
    out
}

/// Decodes `c.lf` with a plain SSE split and serde_json and checks it against what the
/// generator put in: the event count, the answer text, the usage, the end marker, and for
/// Anthropic the `event:` line matching each event's `type`.
pub fn check_with_serde_json(c: &Corpus) {
    use serde_json::Value;
    let text = std::str::from_utf8(&c.lf).expect("utf-8");
    let mut events = 0;
    let mut content = String::new();
    let mut usage = None;
    let mut done = false;
    for block in text.split_terminator("\n\n") {
        let mut kind = None;
        let mut payload = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v);
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(payload.is_none(), "one data line per event");
                payload = Some(v);
            }
        }
        let payload = payload.expect("data line");
        events += 1;
        assert!(!done, "nothing after the end marker");
        if payload == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(payload).expect("valid JSON");
        let num = |v: &Value, k: &str| v[k].as_u64().expect("token count");
        if c.shape.is_anthropic() {
            assert_eq!(v["type"].as_str(), kind, "event line names the type");
            match kind {
                Some("content_block_delta") => {
                    content.push_str(v["delta"]["text"].as_str().expect("text"))
                }
                Some("message_delta") => {
                    let u = &v["usage"];
                    let (p, o) = (num(u, "input_tokens"), num(u, "output_tokens"));
                    usage = Some((p, o, p + o));
                }
                Some("message_stop") => done = true,
                _ => {}
            }
            continue;
        }
        assert_eq!(kind, None);
        for ch in v["choices"].as_array().expect("choices") {
            if let Some(t) = ch["delta"]["content"].as_str() {
                content.push_str(t);
            }
        }
        if v["usage"].is_object() {
            let u = &v["usage"];
            usage = Some((
                num(u, "prompt_tokens"),
                num(u, "completion_tokens"),
                num(u, "total_tokens"),
            ));
        }
        if c.shape == Shape::OpenAi2026 {
            let o = v["obfuscation"]
                .as_str()
                .expect("obfuscation on every chunk");
            assert!((1..=16).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(
                payload.ends_with(&format!(r#""obfuscation":"{o}"}}"#)),
                "last"
            );
        }
    }
    assert!(done, "end marker");
    assert_eq!(events, c.events, "event count");
    assert_eq!(content, c.content, "answer text");
    assert_eq!(usage, Some(c.usage), "usage");
}
