//! A gpt-4o-shaped `chat.completion.chunk` stream for benchmarks, generated deterministically
//! inside the project (the same shape as the team's reference generator): a role chunk,
//! content chunks of 1–6 "words" (~22 % with non-ASCII text, ~13 % with JSON escapes), a
//! finish chunk, a usage chunk and `[DONE]`; every chunk carries `"usage":null` except the
//! usage chunk. Two encodings: LF only, and CRLF with `: keep-alive` comments.

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
];

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

/// The generated stream and what a correct decoder must find in it.
pub struct Corpus {
    pub lf: Vec<u8>,
    pub crlf: Vec<u8>,
    pub events: usize,
    pub content_bytes: usize,
    pub non_ascii_events: usize,
    pub escaped_events: usize,
}

pub fn generate(events: usize, seed: u64) -> Corpus {
    let mut rng = Rng::new(seed);
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let alnum = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let id: String = (0..29).map(|_| *rng.pick(alnum) as char).collect();
    let fp: String = (0..10)
        .map(|_| *rng.pick(b"0123456789abcdef") as char)
        .collect();
    let created = 1_725_000_000 + rng.next() % 10_000_000;
    let head = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{created},"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_{fp}","choices":"#
    );
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        )
    };
    let n_content = events - 4;
    let mut payloads = vec![chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    )];
    let mut content_bytes = 0;
    for _ in 0..n_content {
        let t = token_text(&mut rng, &words);
        content_bytes += t.len();
        let delta = format!(
            r#"{{"content":{}}}"#,
            serde_json::to_string(&t).expect("json")
        );
        payloads.push(chunk(&delta, "null"));
    }
    payloads.push(chunk("{}", "\"stop\""));
    payloads.push(format!(
        r#"{head}[],"usage":{{"prompt_tokens":1234,"completion_tokens":{n_content},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#,
        1234 + n_content
    ));
    payloads.push("[DONE]".to_string());
    let mut lf = Vec::new();
    let mut crlf = Vec::new();
    let mut rng2 = Rng::new(seed + 1);
    for p in &payloads {
        lf.extend_from_slice(format!("data: {p}\n\n").as_bytes());
        let r = rng2.unit();
        if r < 0.04 {
            crlf.extend_from_slice(b": keep-alive\r\n\r\n");
        } else if r < 0.05 {
            crlf.extend_from_slice(b": keep-alive\r\n");
        }
        crlf.extend_from_slice(format!("data: {p}\r\n\r\n").as_bytes());
    }
    Corpus {
        events,
        content_bytes,
        non_ascii_events: payloads.iter().filter(|p| !p.is_ascii()).count(),
        escaped_events: payloads.iter().filter(|p| p.contains('\\')).count(),
        lf,
        crlf,
    }
}
