//! Instructions per streamed event on `thumbv6m-none-eabi` (the RP2040's instruction set), run
//! under QEMU (emulation, not hardware): steadyllm-core's `SseParser` + `StreamDecoder` against
//! a serde-json-core decoder on the same OpenAI-2026-shaped stream (see build.rs), fed in
//! 1460-byte pieces (one TCP segment each).
//!
//! Counting: QEMU runs with `-icount shift=0`, so its virtual clock advances exactly 1 ns per
//! executed instruction, and SysTick (on the processor clock) counts that clock. A loop of a
//! known number of instructions calibrates instructions per SysTick tick; the cost of the
//! measuring itself (an empty decoder over the same pieces) is subtracted.
//!
//! Output (semihosting): one line per decoder and the summary line
//! `thumbv6m instructions/event: steadyllm=X serde-json-core=Y`; the exit status is 0 only when
//! both decoders found every event and exactly the expected text.
#![no_std]
#![no_main]

use core::cell::Cell;
use core::hint::black_box;

use cortex_m::peripheral::{SYST, syst::SystClkSource};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use serde::Deserialize;
use steadyllm_core::decode::{Dialect, StreamDecoder, StreamItem};
use steadyllm_core::sse::{SseItem, SseParser};

mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
}

static CORPUS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/corpus.sse"));
const PIECE: usize = 1460;
/// The largest event either decoder accepts (as the firmware examples).
const EVENT_CAP: usize = 4096;

/// What a decoder found: every count must match the corpus.
#[derive(Default, Debug, PartialEq)]
struct Tally {
    events: usize,
    content_bytes: usize,
    content_fnv: u32,
    roles: usize,
    finishes: usize,
    completion_tokens: u64,
    done: bool,
    errors: usize,
}

impl Tally {
    fn new() -> Self {
        Tally {
            content_fnv: 0x811C_9DC5,
            ..Tally::default()
        }
    }

    fn text(&mut self, s: &str) {
        self.content_bytes += s.len();
        self.content_fnv = s.bytes().fold(self.content_fnv, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    }

    fn is_complete(&self) -> bool {
        self.events == corpus::EVENTS
            && self.content_bytes == corpus::CONTENT_BYTES
            && self.content_fnv == corpus::CONTENT_FNV
            && self.roles == 1
            && self.finishes == 1
            && self.completion_tokens == corpus::COMPLETION_TOKENS
            && self.done
            && self.errors == 0
    }
}

// ---------------------------------------------------------------- steadyllm
struct Steadyllm {
    parser: SseParser<EVENT_CAP>,
    decoder: StreamDecoder,
}

impl Steadyllm {
    fn feed(&mut self, piece: &[u8], tally: &mut Tally) {
        let mut input = piece;
        loop {
            match self.parser.feed(&mut input) {
                Ok(Some(SseItem::Event(ev))) => {
                    tally.events += 1;
                    let decoded = self.decoder.decode(ev.data, |item| match item {
                        StreamItem::Content { text, .. } => {
                            let mut pieces = text.pieces();
                            while let Some(p) = pieces.next_piece() {
                                tally.text(p);
                            }
                        }
                        StreamItem::Role { .. } => tally.roles += 1,
                        StreamItem::Finish { .. } => tally.finishes += 1,
                        StreamItem::Usage(u) => tally.completion_tokens = u.completion_tokens,
                        StreamItem::Done => tally.done = true,
                        _ => {}
                    });
                    if decoded.is_err() {
                        tally.errors += 1;
                    }
                }
                Ok(Some(SseItem::Retry(_))) => {}
                Ok(None) => return,
                Err(_) => tally.errors += 1,
            }
        }
    }
}

// ---------------------------------------------------------------- serde-json-core
// The chunk as a serde-json-core client declares it; unknown fields (`obfuscation`,
// `service_tier`, `logprobs`…) are skipped by the deserializer.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: heapless::Vec<Choice<'a>, 4>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[allow(dead_code)]
    index: u32,
    #[serde(borrow)]
    delta: Delta<'a>,
    #[serde(borrow)]
    finish_reason: Option<&'a str>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    role: Option<&'a str>,
    #[allow(dead_code)]
    content: Option<Text>,
    #[serde(borrow)]
    #[allow(dead_code)]
    refusal: Option<&'a str>,
}

#[derive(Deserialize)]
struct Usage {
    #[allow(dead_code)]
    prompt_tokens: u64,
    completion_tokens: u64,
    #[allow(dead_code)]
    total_tokens: u64,
}

/// The text of `delta.content`. serde-json-core hands an escaped string over unescaped in a
/// scratch buffer that does not outlive the call, so the text is consumed as it is visited.
struct Text;

/// Where [`Text`] puts what it visits (the bench is single-threaded).
struct TextSink(Cell<Option<*mut Tally>>);
// SAFETY: one thread, no interrupts use it.
unsafe impl Sync for TextSink {}
static TEXT_SINK: TextSink = TextSink(Cell::new(None));

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                if let Some(t) = TEXT_SINK.0.get() {
                    // SAFETY: set by `SerdeJsonCore::feed` to its live `&mut Tally` for the
                    // duration of the parse.
                    unsafe { (*t).text(s) };
                }
                Ok(Text)
            }
        }
        d.deserialize_str(V)
    }
}

/// Lines split by hand (as a serde-json-core firmware does: `data:` lines, one per event),
/// each chunk parsed with serde-json-core.
struct SerdeJsonCore {
    line: [u8; EVENT_CAP],
    len: usize,
    unescape: [u8; EVENT_CAP],
}

impl SerdeJsonCore {
    fn feed(&mut self, piece: &[u8], tally: &mut Tally) {
        let mut rest = piece;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            rest = &tail[1..];
            if self.len == 0 {
                Self::line(head, &mut self.unescape, tally);
            } else if self.len + head.len() <= self.line.len() {
                self.line[self.len..self.len + head.len()].copy_from_slice(head);
                let len = self.len + head.len();
                Self::line(&self.line[..len], &mut self.unescape, tally);
            } else {
                tally.errors += 1;
            }
            self.len = 0;
        }
        if self.len + rest.len() <= self.line.len() {
            self.line[self.len..self.len + rest.len()].copy_from_slice(rest);
            self.len += rest.len();
        } else {
            tally.errors += 1;
            self.len = 0;
        }
    }

    fn line(line: &[u8], unescape: &mut [u8], tally: &mut Tally) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        tally.events += 1;
        if data == b"[DONE]" {
            tally.done = true;
            return;
        }
        TEXT_SINK.0.set(Some(tally as *mut Tally));
        let parsed = serde_json_core::from_slice_escaped::<Chunk<'_>>(data, unescape);
        TEXT_SINK.0.set(None);
        match parsed {
            Ok((chunk, _)) => {
                for choice in &chunk.choices {
                    if choice.delta.role.is_some() {
                        tally.roles += 1;
                    }
                    if choice.finish_reason.is_some() {
                        tally.finishes += 1;
                    }
                }
                if let Some(u) = chunk.usage {
                    tally.completion_tokens = u.completion_tokens;
                }
            }
            Err(_) => tally.errors += 1,
        }
    }
}

// ---------------------------------------------------------------- counting
/// SysTick ticks spent in `f` over every piece of the corpus (24-bit down-counter, read
/// around each piece; a piece takes far less than one wrap).
fn ticks(mut f: impl FnMut(&[u8])) -> u64 {
    let mut total = 0u64;
    for piece in CORPUS.chunks(PIECE) {
        let start = SYST::get_current();
        f(black_box(piece));
        let end = SYST::get_current();
        total += u64::from(start.wrapping_sub(end) & 0x00FF_FFFF);
    }
    total
}

/// Executes `2 * n` instructions (`subs` + `bne` per turn) plus a few.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: a register-only loop.
    unsafe {
        core::arch::asm!(
            "1:",
            "subs {0}, #1",
            "bne 1b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(0x00FF_FFFF);
    core.SYST.clear_current();
    core.SYST.enable_counter();

    // Calibration: instructions per tick from a loop of known length.
    const TURNS: u32 = 2_000_000;
    let start = SYST::get_current();
    spin(TURNS);
    let cal_ticks = u64::from(start.wrapping_sub(SYST::get_current()) & 0x00FF_FFFF);
    let per_tick = (2 * u64::from(TURNS) + cal_ticks / 2) / cal_ticks.max(1);

    let overhead = ticks(|p| {
        black_box(p);
    });

    let mut st = Steadyllm {
        parser: SseParser::new(),
        decoder: StreamDecoder::new(Dialect::OpenAi),
    };
    let mut ours = Tally::new();
    let ours_ticks = ticks(|p| st.feed(p, &mut ours));

    // Where steadyllm's cost sits: the SSE parser alone, and the decoder without its prefix
    // memo (the memo's comparison is a byte loop on thumbv6m).
    let mut sse_only: SseParser<EVENT_CAP> = SseParser::new();
    let mut sse_events = 0usize;
    let sse_ticks = ticks(|p| {
        let mut input = p;
        while let Ok(Some(_)) = sse_only.feed(&mut input) {
            sse_events += 1;
        }
    });
    let mut no_memo = Steadyllm {
        parser: SseParser::new(),
        decoder: StreamDecoder::new(Dialect::OpenAi).with_memo(false),
    };
    let mut no_memo_tally = Tally::new();
    let no_memo_ticks = ticks(|p| no_memo.feed(p, &mut no_memo_tally));

    let mut sj = SerdeJsonCore {
        line: [0; EVENT_CAP],
        len: 0,
        unescape: [0; EVENT_CAP],
    };
    let mut theirs = Tally::new();
    let theirs_ticks = ticks(|p| sj.feed(p, &mut theirs));

    let per_event = |t: u64| (t.saturating_sub(overhead) * per_tick) / corpus::EVENTS as u64;
    let (a, b) = (per_event(ours_ticks), per_event(theirs_ticks));
    hprintln!(
        "corpus: {} bytes, {} events, {} text bytes, {}-byte pieces; {} instructions per SysTick tick (calibrated)",
        CORPUS.len(),
        corpus::EVENTS,
        corpus::CONTENT_BYTES,
        PIECE,
        per_tick
    );
    hprintln!(
        "steadyllm (SseParser + StreamDecoder): {} instructions/event, complete: {}",
        a,
        ours.is_complete()
    );
    hprintln!(
        "  of which SseParser alone: {} instructions/event ({} events); with the decoder's prefix memo off: {} instructions/event, complete: {}",
        per_event(sse_ticks),
        sse_events,
        per_event(no_memo_ticks),
        no_memo_tally.is_complete()
    );
    hprintln!(
        "serde-json-core (line split + from_slice_escaped): {} instructions/event, complete: {}",
        b,
        theirs.is_complete()
    );
    hprintln!(
        "thumbv6m instructions/event: steadyllm={} serde-json-core={}",
        a,
        b
    );
    let ok = ours.is_complete()
        && theirs.is_complete()
        && no_memo_tally.is_complete()
        && sse_events == corpus::EVENTS;
    if !ok {
        hprintln!("steadyllm: {:?}", ours);
        hprintln!("serde-json-core: {:?}", theirs);
    }
    exit(ok)
}

/// Ends QEMU through semihosting with exit status 0 (`ok`) or 1.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}
