//! An incremental, bounded parser for `text/event-stream`, exactly as the WHATWG HTML standard
//! ("interpreting an event stream", §9.2.6) says.
//!
//! Bytes arrive in pieces of any size; [`SseParser::feed`] consumes them and returns each item
//! as soon as the line that completes it has been read. The result never depends on where
//! the pieces were split. All state lives in one `[u8; N]` owned by the parser: the last
//! event ID, the event type, the data buffer and an unfinished line share it, so `N` bounds
//! the largest event (and line) the parser accepts. Input beyond it is a typed
//! [`SseError`]; the event being built is dropped, the parser skips to the next event and stays
//! usable. Nothing panics.
//!
//! Spec points, all implemented:
//! - the stream is UTF-8; invalid bytes become U+FFFD (per maximal subpart, as the WHATWG
//!   UTF-8 decoder does); one leading BOM is stripped;
//! - lines end in CRLF, LF or a lone CR (a CR ending one piece and an LF starting the next are
//!   one line end; a CR at end of stream ends its line);
//! - lines starting with `:` are comments; the field name is everything before the first `:`,
//!   the value everything after it minus one leading space; a line without `:` is a field with
//!   an empty value;
//! - `event` sets the type, `data` appends the value and an LF, `id` sets the last event ID
//!   unless the value contains U+0000 (and the ID persists across events), `retry` with only
//!   ASCII digits reports a reconnection time, other fields are ignored;
//! - an empty line dispatches: nothing happens when the data buffer is empty, otherwise one
//!   trailing LF is removed, the type defaults to `message`, and data and type are reset;
//! - an unfinished block at end of stream is discarded ([`SseParser::finish`]).
//!
//! ```
//! use steadyllm_core::sse::{SseItem, SseParser};
//!
//! let mut parser = SseParser::<1024>::new();
//! let mut seen = 0;
//! for piece in [&b"data: hel"[..], b"lo\n\nda", b"ta: world\r\n\r\n"] {
//!     let mut input = piece;
//!     while let Some(item) = parser.feed(&mut input).unwrap() {
//!         if let SseItem::Event(ev) = item {
//!             assert_eq!(ev.event_type(), "message");
//!             seen += 1;
//!         }
//!     }
//! }
//! assert_eq!(seen, 2);
//! ```

use core::fmt;

/// Something the stream produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// A dispatched event.
    Event(Event<'a>),
    /// A valid `retry:` line: the server's reconnection time in milliseconds (saturating).
    Retry(u64),
}

/// One dispatched event. Borrows the parser until the next call to [`SseParser::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    kind: &'a str,
    /// The data, lines joined with LF, without the final LF.
    pub data: &'a str,
    /// The last event ID at dispatch time (`""` until a server sets one).
    pub last_event_id: &'a str,
}

impl<'a> Event<'a> {
    /// The event type: the last `event:` value of the block, or `"message"`.
    pub fn event_type(&self) -> &'a str {
        if self.kind.is_empty() {
            "message"
        } else {
            self.kind
        }
    }
}

/// The parser's capacity was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SseError {
    /// A line or event needs more than the parser's `N` bytes. The event being built was
    /// dropped; parsing continues with the next event.
    CapacityExceeded {
        /// The parser's capacity `N`.
        capacity: usize,
        /// Bytes the event needed at the point it overflowed (at least).
        required: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::CapacityExceeded { capacity, required } => write!(
                f,
                "server-sent event larger than the parser's {capacity} bytes (needed {required}); event dropped"
            ),
        }
    }
}

impl core::error::Error for SseError {}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const REPLACEMENT: [u8; 3] = [0xEF, 0xBF, 0xBD];

/// A field whose value is being stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

/// Where the parser is within the current line. Lines are processed as they arrive, so a
/// line needs storage only for what the standard keeps: the field name is matched in a
/// six-byte array, data values go straight into the data buffer, `event`/`id`/`retry` values
/// into the line region, and comments and unknown fields are never stored. The same code
/// runs whether a line arrives whole or in pieces, so the outcome — capacity errors
/// included — never depends on the split.
#[derive(Clone, Copy)]
enum LineState {
    /// Field name bytes so far (no colon yet). Known names have at most 5 bytes.
    Name { buf: [u8; 5], len: u8 },
    /// After the colon, before the optional single space.
    ValueStart(Field),
    /// Storing the value.
    Value(Field),
    /// A comment, an unknown field, or a field ignored while an overflowed event is dropped.
    Ignore,
    /// The value did not fit; the error was reported; skip to the end of the line.
    Overflowed,
}

const LINE_START: LineState = LineState::Name {
    buf: [0; 5],
    len: 0,
};

enum LineOutcome {
    Nothing,
    Dispatch,
    Retry(u64),
}

/// An incremental WHATWG event-stream parser holding at most `N` bytes.
///
/// Call order: [`SseParser::feed`] with each piece of the body until it returns `Ok(None)`
/// (the piece is used up), then [`SseParser::finish`] at the end of the body. An item borrows
/// the parser (and possibly the piece), so it must be dropped before the next `feed`.
///
/// Memory: the last event ID, the event type, the data of the event being built and the value
/// of an unfinished `event`/`id`/`retry` line live in one `[u8; N]`; `N` = 4096 is comfortable
/// for chat streams (a gpt-4o chunk is ~300 bytes), 64 KiB covers anything sane.
///
/// Capacity rule (the same however the input is split): the stored regions plus the value
/// being stored must fit in `N`, counting the LF that ends each data line and, for `event`/`id`,
/// the value after U+FFFD replacement. Comments and unknown fields need no room at all.
pub struct SseParser<const N: usize> {
    buf: [u8; N],
    id_len: usize,
    type_len: usize,
    data_len: usize,
    /// Bytes of an `event`/`id`/`retry` value stored after the data region.
    line_len: usize,
    line: LineState,
    /// Bytes of the BOM matched so far; 3 once the start of stream is behind us.
    bom: u8,
    /// The previous piece ended with CR: an LF at the start of the next piece is part of it.
    after_cr: bool,
    /// The current event overflowed: ignore `data`/`event` lines up to the next blank line.
    discard_event: bool,
    /// A line with bytes not known to be ASCII was taken since the last dispatch, which must
    /// then validate the data (`false`: every byte that went into it was ASCII, so it is
    /// valid UTF-8).
    data_unchecked: bool,
    /// The last call dispatched: reset data and type before the next.
    dispatched: bool,
}

impl<const N: usize> Default for SseParser<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for SseParser<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseParser")
            .field("capacity", &N)
            .field("id_len", &self.id_len)
            .field("type_len", &self.type_len)
            .field("data_len", &self.data_len)
            .field("line_len", &self.line_len)
            .finish()
    }
}

impl<const N: usize> SseParser<N> {
    /// A parser at the start of a stream.
    pub const fn new() -> Self {
        SseParser {
            buf: [0; N],
            id_len: 0,
            type_len: 0,
            data_len: 0,
            line_len: 0,
            line: LINE_START,
            bom: 0,
            after_cr: false,
            discard_event: false,
            data_unchecked: false,
            dispatched: false,
        }
    }

    /// The capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// After an [`SseError`], until the blank line that ends the dropped event: its type, when
    /// an `event` line named it before the overflow. A caller can then tell an event it may
    /// go on without (a summary that repeats what came before) from one it cannot.
    pub fn dropped_event_type(&self) -> Option<&str> {
        if !self.discard_event || self.type_len == 0 {
            return None;
        }
        let start = self.id_len;
        core::str::from_utf8(crate::span(&self.buf, start..start + self.type_len)).ok()
    }

    /// The last event ID buffer (persists across events and across [`SseParser::finish`]).
    pub fn last_event_id(&self) -> &str {
        core::str::from_utf8(crate::span(&self.buf, ..self.id_len)).unwrap_or_default()
    }

    fn data_start(&self) -> usize {
        self.id_len + self.type_len
    }

    fn data_end(&self) -> usize {
        self.id_len + self.type_len + self.data_len
    }

    /// Consumes bytes from the front of `input` until an item is complete (returned, with
    /// `input` advanced past it) or `input` is empty (`Ok(None)`).
    ///
    /// An `Err` means an event outgrew the capacity; it was dropped, `input` is advanced past
    /// the bytes consumed, and the next call continues.
    ///
    /// An event whose block lies whole in `input` and has one `data` line is returned without
    /// copying: its `data` then borrows `input`. That is why the item's lifetime is bounded by
    /// both the parser and the input.
    // Out of line: flash (crate docs).
    #[inline(never)]
    pub fn feed<'p, 'i: 'p>(
        &'p mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<SseItem<'p>>, SseError> {
        if self.dispatched {
            self.dispatched = false;
            self.type_len = 0;
            self.data_len = 0;
        }
        loop {
            let Some(&first) = input.first() else {
                return Ok(None);
            };
            if self.bom < 3 {
                if first == BOM[usize::from(self.bom)] {
                    self.bom += 1;
                    *input = crate::span(input, 1..);
                } else {
                    // Not a BOM: the bytes matched so far are ordinary text of the first line.
                    let matched = usize::from(self.bom);
                    self.bom = 3;
                    self.data_unchecked = true;
                    self.line_bytes(&BOM[..matched])?;
                }
                continue;
            }
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    *input = crate::span(input, 1..);
                    continue;
                }
            }
            let (end, non_ascii) = find_line_end(input);
            let Some(end) = end else {
                // An unfinished line: take what it has so far.
                let rest = *input;
                *input = &[];
                self.data_unchecked |= non_ascii < rest.len();
                self.line_bytes(rest)?;
                return Ok(None);
            };
            let (line, rest) = input.split_at_checked(end).unwrap_or((input, &[]));
            if let Some((data, skip)) = self.whole_event(line, rest, non_ascii) {
                *input = crate::span(rest, skip..);
                self.dispatched = true;
                // Valid UTF-8: `whole_event` checked it, ASCII up to where `find_line_end` saw
                // the first non-ASCII byte, `is_utf8` from there.
                let data = crate::unchecked::utf8(data);
                return Ok(Some(self.event(data)));
            }
            if rest.first() == Some(&b'\r') {
                self.after_cr = true;
            }
            *input = crate::span(rest, 1..);
            // Only Anthropic and the Responses API send `event:` lines: builds without those
            // dialects (firmware, the browser's default entry) keep the general path, and its
            // size.
            #[cfg(any(feature = "anthropic", feature = "responses"))]
            if self.whole_event_line(line) {
                continue;
            }
            self.data_unchecked |= non_ascii < line.len();
            let stored = self.line_bytes(line);
            let outcome = self.line_end();
            stored?;
            match outcome? {
                LineOutcome::Nothing => {}
                LineOutcome::Retry(ms) => return Ok(Some(SseItem::Retry(ms))),
                LineOutcome::Dispatch => {
                    self.dispatched = true;
                    let ds = self.data_start();
                    let data = crate::span(&self.buf, ds..ds + self.data_len);
                    // Valid UTF-8: just before returning `Dispatch`, `dispatch` validated the data
                    // region (or rewrote it with U+FFFD, which yields valid UTF-8) unless every
                    // line taken since the last dispatch was known to be ASCII
                    // (`data_unchecked`, from `find_line_end`), and nothing wrote to the buffer
                    // since.
                    let data = crate::unchecked::utf8(data);
                    return Ok(Some(self.event(data)));
                }
            }
        }
    }

    /// An event with `data` and the current type and last event ID.
    fn event<'s>(&'s self, data: &'s str) -> SseItem<'s> {
        let id = crate::span(&self.buf, ..self.id_len);
        let kind = self
            .buf
            .get(self.id_len..self.data_start())
            .unwrap_or_default();
        // Both regions hold valid UTF-8 by construction: `set_region` decodes what it stores
        // with U+FFFD, `whole_event_line` stores only a value `is_utf8` accepted, and every
        // other change to them only shortens them to 0. (Validating here cost Anthropic's
        // events, which all carry a type, about a tenth of their decode time.)
        let (kind, last_event_id) = (crate::unchecked::utf8(kind), crate::unchecked::utf8(id));
        SseItem::Event(Event {
            kind,
            data,
            last_event_id,
        })
    }

    /// The fast path: at the start of a line, with no event under way, `data:…` followed by
    /// a blank line, all in this piece, valid UTF-8 and within the capacity rule. The line's
    /// bytes before `non_ascii` are ASCII (validation starts there). Returns the data and how
    /// many bytes of `rest` end the block.
    #[inline]
    fn whole_event<'i>(
        &self,
        line: &'i [u8],
        rest: &[u8],
        non_ascii: usize,
    ) -> Option<(&'i [u8], usize)> {
        if !matches!(self.line, LineState::Name { len: 0, .. })
            || self.data_len != 0
            || self.discard_event
        {
            return None;
        }
        let value = line.strip_prefix(b"data:")?;
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let skip = if rest.starts_with(b"\n\n") {
            2
        } else if rest.starts_with(b"\r\n\r\n") {
            4
        } else {
            return None;
        };
        (!value.is_empty()
            && self.data_start() + value.len() < N
            && is_utf8(
                value
                    .get(non_ascii.saturating_sub(line.len() - value.len())..)
                    .unwrap_or_default(),
            ))
        .then_some((value, skip))
    }

    /// The fast path for a whole `event:` line (Anthropic sends one before every `data:`
    /// line) at the start of a line, before any data of the event: the type region takes the
    /// value directly. Only when the value is valid UTF-8 and fits by the capacity rule, so the
    /// outcome is exactly that of the general path. Returns `false` (nothing done) otherwise.
    #[cfg(any(feature = "anthropic", feature = "responses"))]
    #[inline]
    fn whole_event_line(&mut self, line: &[u8]) -> bool {
        if !matches!(self.line, LineState::Name { len: 0, .. })
            || self.data_len != 0
            || self.discard_event
        {
            return false;
        }
        let Some(value) = line.strip_prefix(b"event:") else {
            return false;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        // The general path stores the value after the current type, then moves it in place.
        if self.id_len + self.type_len + value.len() > N || !is_utf8(value) {
            return false;
        }
        match self.buf.get_mut(self.id_len..self.id_len + value.len()) {
            Some(dst) => {
                dst.copy_from_slice(value);
                self.type_len = value.len();
                true
            }
            None => false,
        }
    }

    /// Ends the stream: an unfinished line or event is discarded, as the standard requires.
    /// Returns `true` when something was discarded. The last event ID is kept (as an
    /// `EventSource` keeps it across reconnections); the parser is ready for a new stream.
    pub fn finish(&mut self) -> bool {
        let discarded = !matches!(self.line, LineState::Name { len: 0, .. })
            || (!self.dispatched && self.data_len > 0)
            || (self.bom > 0 && self.bom < 3);
        self.dispatched = false;
        self.type_len = 0;
        self.data_len = 0;
        self.line_len = 0;
        self.line = LINE_START;
        self.bom = 0;
        self.after_cr = false;
        self.discard_event = false;
        self.data_unchecked = false;
        discarded
    }

    /// Forgets everything, the last event ID included.
    pub fn reset(&mut self) {
        self.finish();
        self.id_len = 0;
    }

    /// Drops the event being built after an overflow; `data`/`event` lines are ignored up to
    /// the next blank line, and its type stays known until then
    /// ([`SseParser::dropped_event_type`]).
    fn overflow(&mut self, required: usize) -> SseError {
        self.data_len = 0;
        self.line_len = 0;
        self.discard_event = true;
        self.line = LineState::Overflowed;
        SseError::CapacityExceeded {
            capacity: N,
            required,
        }
    }

    /// Takes more bytes of the current line (no line terminator among them).
    fn line_bytes(&mut self, mut bytes: &[u8]) -> Result<(), SseError> {
        while !bytes.is_empty() {
            match self.line {
                LineState::Name { mut buf, len } => {
                    let colon = crate::find_byte(b':', bytes);
                    let name = bytes
                        .get(..colon.unwrap_or(bytes.len()))
                        .unwrap_or_default();
                    let len = usize::from(len);
                    let Some(dst) = buf.get_mut(len..len + name.len()) else {
                        // Longer than any field we keep (this includes no comment: a comment
                        // has an empty name).
                        self.line = LineState::Ignore;
                        return Ok(());
                    };
                    dst.copy_from_slice(name);
                    let len = len + name.len();
                    match colon {
                        None => {
                            self.line = LineState::Name {
                                buf,
                                len: len as u8,
                            };
                            return Ok(());
                        }
                        Some(c) => {
                            self.line = match self.field(crate::span(&buf, ..len)) {
                                Some(f) => LineState::ValueStart(f),
                                None => LineState::Ignore,
                            };
                            bytes = crate::span(bytes, c + 1..);
                        }
                    }
                }
                LineState::ValueStart(f) => {
                    if bytes.first() == Some(&b' ') {
                        bytes = crate::span(bytes, 1..);
                    }
                    self.line = LineState::Value(f);
                }
                LineState::Value(f) => {
                    return self.store_value(f, bytes);
                }
                LineState::Ignore | LineState::Overflowed => return Ok(()),
            }
        }
        Ok(())
    }

    /// Which stored field a name is, if any (data and event are ignored while an overflowed
    /// event is being dropped).
    fn field(&self, name: &[u8]) -> Option<Field> {
        match name {
            b"data" if !self.discard_event => Some(Field::Data),
            b"event" if !self.discard_event => Some(Field::Event),
            b"id" => Some(Field::Id),
            b"retry" => Some(Field::Retry),
            _ => None,
        }
    }

    fn store_value(&mut self, f: Field, bytes: &[u8]) -> Result<(), SseError> {
        let (at, reserve) = match f {
            // Room for the LF that ends the line is part of the rule.
            Field::Data => (self.data_end(), 1),
            _ => (self.data_end() + self.line_len, 0),
        };
        let end = at + bytes.len();
        match self.buf.get_mut(at..end) {
            Some(dst) if end + reserve <= N => dst.copy_from_slice(bytes),
            _ => {
                if f == Field::Event {
                    // The type being set is unknown.
                    self.type_len = 0;
                }
                return Err(self.overflow(end + reserve));
            }
        }
        match f {
            Field::Data => self.data_len += bytes.len(),
            _ => self.line_len += bytes.len(),
        }
        Ok(())
    }

    /// Processes the end of the current line.
    fn line_end(&mut self) -> Result<LineOutcome, SseError> {
        let state = self.line;
        self.line = LINE_START;
        let field = match state {
            LineState::Name { len: 0, .. } => return self.dispatch(),
            // A line without a colon: the whole line is the name, the value is empty.
            LineState::Name { buf, len } => {
                match self.field(crate::span(&buf, ..usize::from(len))) {
                    Some(f) => f,
                    None => return Ok(LineOutcome::Nothing),
                }
            }
            LineState::ValueStart(f) | LineState::Value(f) => f,
            LineState::Ignore | LineState::Overflowed => return Ok(LineOutcome::Nothing),
        };
        let value_start = self.data_end();
        let vlen = core::mem::take(&mut self.line_len);
        let value = self
            .buf
            .get(value_start..value_start + vlen)
            .unwrap_or_default();
        match field {
            Field::Data => {
                // `store_value` kept room for this LF.
                let at = self.data_end();
                if at >= N {
                    return Err(self.overflow(at + 1));
                }
                if let Some(lf) = self.buf.get_mut(at) {
                    *lf = b'\n';
                }
                self.data_len += 1;
            }
            Field::Retry => {
                if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
                    let ms = value.iter().fold(0u64, |acc, d| {
                        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
                    return Ok(LineOutcome::Retry(ms));
                }
            }
            Field::Id => {
                if crate::find_byte(0, value).is_none() {
                    self.id_len = self.set_region(0, self.id_len, vlen)?;
                }
            }
            Field::Event => match self.set_region(self.id_len, self.type_len, vlen) {
                Ok(len) => self.type_len = len,
                Err(e) => {
                    // The type being set is unknown.
                    self.type_len = 0;
                    return Err(e);
                }
            },
        }
        Ok(LineOutcome::Nothing)
    }

    /// Replaces the region `[start, start + old)` (the ID or the type) with the `vlen`-byte
    /// value stored right after the data region, decoded with U+FFFD, shifting the regions
    /// in between. Needs no room beyond the result. Returns the new length.
    fn set_region(&mut self, start: usize, old: usize, vlen: usize) -> Result<usize, SseError> {
        let tail_end = self.data_end();
        let raw = crate::span(&self.buf, tail_end..tail_end + vlen);
        let new_len = lossy_len(raw);
        // (An invalid sequence can decode to a U+FFFD of its own length: a length that did
        // not change does not mean valid bytes.)
        let decode = new_len != vlen || !is_utf8(raw);
        let total = tail_end - old + new_len;
        if total > N {
            return Err(self.overflow(total));
        }
        // [old][tail][value] -> [old][value][tail] -> [value][tail]
        if let Some(s) = self.buf.get_mut(start + old..tail_end + vlen) {
            s.rotate_right(vlen);
        }
        self.buf.copy_within(start + old..tail_end + vlen, start);
        if decode {
            // Make room, park the raw bytes at the end of the new slot, decode forward.
            let tail_from = start + vlen;
            let tail_to = tail_end - old + vlen;
            self.buf.copy_within(tail_from..tail_to, start + new_len);
            let src = start + new_len - vlen;
            self.buf.copy_within(start..start + vlen, src);
            lossy_within(&mut self.buf, src, start + new_len, start);
        }
        Ok(new_len)
    }

    fn dispatch(&mut self) -> Result<LineOutcome, SseError> {
        let unchecked = core::mem::take(&mut self.data_unchecked);
        if self.discard_event {
            self.discard_event = false;
            self.type_len = 0;
            self.data_len = 0;
            return Ok(LineOutcome::Nothing);
        }
        if self.data_len == 0 {
            self.type_len = 0;
            return Ok(LineOutcome::Nothing);
        }
        // The buffer always ends with the LF appended after the last data line.
        self.data_len -= 1;
        let ds = self.data_start();
        let len = self.data_len;
        let data = crate::span(&self.buf, ds..ds + len);
        debug_assert!(unchecked || data.is_ascii());
        if unchecked && !is_utf8(data) {
            // Rare: decode with U+FFFD in place. Decoding the joined lines equals decoding
            // each line, because LF never belongs to a multi-byte sequence.
            let need = ds + lossy_len(data);
            if need > N {
                self.type_len = 0;
                self.data_len = 0;
                return Err(SseError::CapacityExceeded {
                    capacity: N,
                    required: need,
                });
            }
            // Move the raw bytes to the top, then decode forward into place: the output can
            // never overtake the input (see `lossy_within`).
            self.buf.copy_within(ds..ds + len, N - len);
            self.data_len = lossy_within(&mut self.buf, N - len, N, ds);
        }
        Ok(LineOutcome::Dispatch)
    }
}

// Two ways to find line ends and check UTF-8, the same contract. The crate's unit tests run
// the portable one on every target, so the parser's property tests cover it; the integration
// tests and fuzzers cover the SIMD one on their host.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(test)))]
use simd::{find_line_end, is_utf8};
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(test))))]
use swar::{find_line_end, is_utf8};

/// Where `memchr` searches with SIMD (x86-64, AArch64).
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(test)))]
mod simd {
    /// Where the line at the front of `bytes` ends (its first LF or CR, or `None`: the line is
    /// all of `bytes`), and an index before which every byte of the line is ASCII. The parser
    /// relies on it: a line no longer than the index is ASCII, so valid UTF-8, and otherwise
    /// its validation may start there. On x86-64 one SSE2 pass finds both, exactly (see
    /// [`crate::unchecked::sse2_line_end`]).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn find_line_end(bytes: &[u8]) -> (Option<usize>, usize) {
        crate::unchecked::sse2_line_end(bytes)
    }

    /// On AArch64 `memchr2` finds the end, and the index is 0 (every line is validated).
    #[cfg(target_arch = "aarch64")]
    pub(super) fn find_line_end(bytes: &[u8]) -> (Option<usize>, usize) {
        (memchr::memchr2(b'\n', b'\r', bytes), 0)
    }

    /// `true` when `bytes` is valid UTF-8. Chat streams are mostly ASCII, so the bytes are
    /// first checked 16 at a time for the high bit, as two 64-bit words; the full validator
    /// runs only from the first 16 bytes that hold a non-ASCII byte.
    pub(super) fn is_utf8(bytes: &[u8]) -> bool {
        let mut ascii_prefix = 0;
        for c in bytes.chunks_exact(16) {
            // Two words at a time: any byte with its high bit set ends the ASCII prefix.
            let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
            lo.copy_from_slice(c.get(..8).unwrap_or(&[0; 8]));
            hi.copy_from_slice(c.get(8..).unwrap_or(&[0; 8]));
            if (u64::from_le_bytes(lo) | u64::from_le_bytes(hi)) & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            ascii_prefix += 16;
        }
        let rest = crate::span(bytes, ascii_prefix..);
        rest.is_ascii() || core::str::from_utf8(rest).is_ok()
    }
}

/// Everywhere else (microcontrollers, wasm32, where the browser build is smaller without
/// `memchr`): one pass over the line, two machine words at a time, finds its end and its first
/// non-ASCII byte.
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(test))))]
mod swar {
    /// Where the line at the front of `bytes` ends (its first LF or CR, or `None`: the line is
    /// all of `bytes`), and where its first non-ASCII byte is if one comes before the end
    /// (`usize::MAX` if none does).
    ///
    /// Two machine words at a time: words with no byte below 0x0E (LF and CR are 0x0A and
    /// 0x0D) and none above 0x7F are skipped in a few instructions, the bytes of the others are
    /// looked at one by one. On a microcontroller this is the parser's main cost (every byte
    /// of a stream passes here); words are read only where they are aligned, as a Cortex-M0
    /// requires.
    // Out of line: inlined into `feed`, the loop runs out of registers on thumbv6m.
    #[inline(never)]
    pub(super) fn find_line_end(bytes: &[u8]) -> (Option<usize>, usize) {
        const PAIR: usize = core::mem::size_of::<[usize; 2]>();
        const ONES: usize = usize::MAX / 0xFF;
        let (head, pairs, _) = crate::unchecked::word_pairs(bytes);
        let mut non_ascii = usize::MAX;
        let mut i: usize = 0;
        loop {
            if let Some(k) = i.checked_sub(head.len())
                && k % PAIR == 0
            {
                // `w - 0x0E..` borrows into a byte's high bit when some byte is below 0x0E,
                // and `| w` adds the bytes above 0x7F: no high bit, nothing to look at.
                let rest = crate::span(pairs, k / PAIR..);
                let clean = rest
                    .iter()
                    .position(|&[a, b]| {
                        (a.wrapping_sub(ONES * 0x0E) | a | b.wrapping_sub(ONES * 0x0E) | b)
                            & (ONES * 0x80)
                            != 0
                    })
                    .unwrap_or(rest.len());
                i += PAIR * clean;
            }
            let Some(&b) = bytes.get(i) else {
                return (None, non_ascii);
            };
            if b == b'\n' || b == b'\r' {
                return (Some(i), non_ascii);
            }
            if !b.is_ascii() {
                non_ascii = non_ascii.min(i);
            }
            i += 1;
        }
    }

    /// `true` when `bytes` is valid UTF-8. The parser validates only lines that hold a
    /// non-ASCII byte, from that byte on, and `from_utf8` has its own word-at-a-time ASCII
    /// path: nothing is gained by looking for an ASCII prefix first.
    pub(super) fn is_utf8(bytes: &[u8]) -> bool {
        core::str::from_utf8(bytes).is_ok()
    }
}

/// Length of `bytes` decoded as UTF-8 with U+FFFD for each maximal invalid subpart.
fn lossy_len(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    let mut n = 0;
    loop {
        match core::str::from_utf8(rest) {
            Ok(_) => return n + rest.len(),
            Err(e) => {
                let bad = e
                    .error_len()
                    .map_or(rest.len() - e.valid_up_to(), usize::from);
                n += e.valid_up_to() + REPLACEMENT.len();
                rest = crate::span(rest, e.valid_up_to() + bad..);
            }
        }
    }
}

/// Decodes `buf[src..src_end]` into `buf[dst..]` with U+FFFD, front to back, and returns the
/// decoded length. Requires `dst <= src` and `dst + lossy_len(..) <= src_end`: the decoded
/// prefix then never grows past the bytes already read (each step adds at most as much
/// expansion as the total), so the overlapping copy is safe.
fn lossy_within(buf: &mut [u8], mut src: usize, src_end: usize, dst: usize) -> usize {
    let mut w = dst;
    while src < src_end {
        let (valid, bad) = match core::str::from_utf8(crate::span(buf, src..src_end)) {
            Ok(_) => (src_end - src, None),
            Err(e) => (
                e.valid_up_to(),
                Some(
                    e.error_len()
                        .map_or(src_end - src - e.valid_up_to(), usize::from),
                ),
            ),
        };
        buf.copy_within(src..src + valid, w);
        w += valid;
        src += valid;
        let Some(bad) = bad else { break };
        src += bad;
        if let Some(d) = buf.get_mut(w..w + REPLACEMENT.len()) {
            d.copy_from_slice(&REPLACEMENT);
        }
        w += REPLACEMENT.len();
    }
    w - dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Out {
        Event {
            ty: String,
            data: String,
            id: String,
        },
        Retry(u64),
        Overflow,
    }

    fn run<const N: usize>(p: &mut SseParser<N>, pieces: &[&[u8]]) -> Vec<Out> {
        let mut out = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            loop {
                match p.feed(&mut input) {
                    Ok(Some(SseItem::Event(e))) => out.push(Out::Event {
                        ty: e.event_type().into(),
                        data: e.data.into(),
                        id: e.last_event_id.into(),
                    }),
                    Ok(Some(SseItem::Retry(ms))) => out.push(Out::Retry(ms)),
                    Ok(None) => break,
                    Err(_) => out.push(Out::Overflow),
                }
            }
        }
        p.finish();
        out
    }

    fn whole(input: &[u8]) -> Vec<Out> {
        let mut p = Box::new(SseParser::<4096>::new());
        run(&mut p, &[input])
    }

    /// A direct transcription of the standard over the whole stream, for comparison.
    fn reference(input: &[u8]) -> Vec<Out> {
        let text = String::from_utf8_lossy(input);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut lines = Vec::new();
        let mut cur = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    lines.push(std::mem::take(&mut cur));
                }
                '\n' => lines.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        let (mut data, mut ty, mut id) = (String::new(), String::new(), String::new());
        let mut out = Vec::new();
        for line in lines {
            if line.is_empty() {
                if data.is_empty() {
                    ty.clear();
                    continue;
                }
                if data.ends_with('\n') {
                    data.pop();
                }
                let t = if ty.is_empty() {
                    "message".to_string()
                } else {
                    ty.clone()
                };
                out.push(Out::Event {
                    ty: t,
                    data: std::mem::take(&mut data),
                    id: id.clone(),
                });
                ty.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.find(':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line.as_str(), ""),
            };
            match name {
                "event" => ty = value.to_string(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => id = value.to_string(),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    out.push(Out::Retry(value.parse().unwrap_or(u64::MAX)))
                }
                _ => {}
            }
        }
        out
    }

    fn ev(ty: &str, data: &str, id: &str) -> Out {
        Out::Event {
            ty: ty.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn spec_examples() {
        // From the HTML standard's examples.
        assert_eq!(
            whole(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [ev("message", "YHOO\n+2\n10", "")]
        );
        assert_eq!(
            whole(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
            [ev("message", "first event", "1"), ev("message", "second event", ""), ev("message", " third event", "")]
        );
        assert_eq!(
            whole(b"data\n\ndata\ndata\n\ndata:"),
            [ev("message", "", ""), ev("message", "\n", "")]
        );
        assert_eq!(
            whole(b"data:test\n\ndata: test\n\n"),
            [ev("message", "test", ""), ev("message", "test", "")]
        );
    }

    #[test]
    fn an_invalid_sequence_as_long_as_its_replacement_is_still_replaced() {
        // F3 9E A3: a truncated four-byte sequence, one maximal subpart: one U+FFFD, also three
        // bytes. (Found by the fuzzer: the type and ID regions kept the raw bytes.)
        for input in [
            &b"event: \xF3\x9E\xA3\ndata: x\n\n"[..],
            &b"id: \xF3\x9E\xA3\ndata: x\n\n"[..],
        ] {
            let mut p = SseParser::<64>::new();
            let mut rest = input;
            match p.feed(&mut rest) {
                Ok(Some(SseItem::Event(e))) => {
                    let got = if input.starts_with(b"id") {
                        e.last_event_id
                    } else {
                        e.event_type()
                    };
                    assert_eq!(got, "\u{FFFD}");
                }
                other => std::panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn fields() {
        assert_eq!(
            whole(b"event: add\ndata: 1\n\ndata: 2\n\n"),
            [ev("add", "1", ""), ev("message", "2", "")]
        );
        assert_eq!(
            whole(b"id: a\ndata: 1\n\nid: b\0c\ndata: 2\n\nid\ndata: 3\n\n"),
            [
                ev("message", "1", "a"),
                ev("message", "2", "a"),
                ev("message", "3", "")
            ]
        );
        assert_eq!(
            whole(b"retry: 1500\nretry: 15x\nretry:\nretry: 007\nfoo: bar\ndata: x\n\n"),
            [Out::Retry(1500), Out::Retry(7), ev("message", "x", "")]
        );
        assert_eq!(
            whole(b"retry: 99999999999999999999999\n"),
            [Out::Retry(u64::MAX)]
        );
        // an event type without data dispatches nothing and is reset
        assert_eq!(whole(b"event: x\n\ndata: y\n\n"), [ev("message", "y", "")]);
    }

    #[test]
    fn line_endings_bom_and_utf8() {
        assert_eq!(
            whole(b"data: a\r\rdata: b\r\n\r\ndata: c\n\n"),
            [
                ev("message", "a", ""),
                ev("message", "b", ""),
                ev("message", "c", "")
            ]
        );
        assert_eq!(
            whole(b"\xEF\xBB\xBFdata: bom\n\n"),
            [ev("message", "bom", "")]
        );
        // only one BOM is stripped
        assert_eq!(
            whole(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n"),
            [ev("message", "y", "")]
        );
        assert_eq!(
            whole(b"data: \xFFa\xE2\x82\n\n"),
            [ev("message", "\u{fffd}a\u{fffd}", "")]
        );
        assert_eq!(
            whole(b"event: \xC3\ndata: x\n\n"),
            [ev("\u{fffd}", "x", "")]
        );
        // a trailing CR ends the line at end of stream: the event still needs its blank line
        assert_eq!(whole(b"data: x\n\r"), [ev("message", "x", "")]);
        // unterminated final block is discarded
        assert_eq!(whole(b"data: x\n"), []);
        assert_eq!(whole(b"data: x"), []);
    }

    #[test]
    fn cr_at_piece_end_waits_for_lf() {
        let mut p = SseParser::<256>::new();
        let out = run(&mut p, &[b"data: a\r", b"\n\r", b"\ndata: b\r", b"\r"]);
        assert_eq!(out, [ev("message", "a", ""), ev("message", "b", "")]);
    }

    #[test]
    fn a_dropped_event_keeps_its_type_until_its_blank_line() {
        // The type named before the overflow, whole or byte by byte; none when the `event`
        // line itself overflowed, came after the overflow, or was never sent.
        let long = "x".repeat(100);
        for (input, want) in [
            (format!("event: big\ndata: {long}\n\n"), Some("big")),
            (
                format!("id: 7\nevent: big\ndata: {long}\nid: 8\n\n"),
                Some("big"),
            ),
            (format!("event: a\nevent: {long}\ndata: x\n\n"), None),
            (format!("data: {long}\nevent: late\n\n"), None),
            (format!("data: {long}\n\n"), None),
        ] {
            for piece in [input.len(), 1] {
                let mut p = SseParser::<48>::new();
                let mut seen = Vec::new();
                for chunk in input.as_bytes().chunks(piece) {
                    let mut rest = chunk;
                    loop {
                        match p.feed(&mut rest) {
                            Ok(Some(_)) => std::panic!("{input:?}: an item"),
                            Ok(None) => break,
                            Err(_) => seen.push(p.dropped_event_type().map(String::from)),
                        }
                    }
                }
                assert_eq!(seen, [want.map(String::from)], "{input:?}");
                // Gone with the blank line; the next event is whole, its type its own.
                assert_eq!(p.dropped_event_type(), None);
                let out = run(&mut p, &[b"data: ok\n\n"]);
                assert_eq!(out, [ev("message", "ok", p.last_event_id())]);
            }
        }
    }

    #[test]
    fn overflow_is_an_error_and_the_parser_recovers() {
        let mut p = SseParser::<32>::new();
        let long = [b'x'; 100];
        let mut input: Vec<u8> = b"id: 7\ndata: ".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\ndata: tail\n\ndata: ok\n\n");
        let out = run(&mut p, &[&input]);
        assert_eq!(out, [Out::Overflow, ev("message", "ok", "7")]);
        // the same, byte by byte: the unfinished line overflows the buffer
        let mut p = SseParser::<32>::new();
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let out = run(&mut p, &pieces);
        assert_eq!(out, [Out::Overflow, ev("message", "ok", "7")]);
        // an oversized id is refused the same way, the old id stays
        let mut p = SseParser::<32>::new();
        let mut input: Vec<u8> = b"id: 1\ndata: a\n\nid: ".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\ndata: b\n\ndata: c\n\n");
        assert_eq!(
            run(&mut p, &[&input]),
            [
                ev("message", "a", "1"),
                Out::Overflow,
                ev("message", "c", "1")
            ]
        );
        // U+FFFD expansion that no longer fits
        let mut p = SseParser::<16>::new();
        assert_eq!(
            run(&mut p, &[b"data: \xFF\xFF\xFF\xFF\xFF\xFF\n\ndata: k\n\n"]),
            [Out::Overflow, ev("message", "k", "")]
        );
    }

    #[test]
    fn ignorable_lines_need_no_room_however_split() {
        // Found by the fuzzer: a long unknown-field line overflowed only when split.
        let mut input = b"-\n*".to_vec();
        input.extend_from_slice(&[0u8; 66]);
        input.extend_from_slice(
            b"\n\0\n: a comment longer than the whole parser capacity......\ndata: x\n\n",
        );
        let expected = [ev("message", "x", "")];
        for piece in [1, 2, 5, input.len()] {
            let mut p = SseParser::<16>::new();
            let pieces: Vec<&[u8]> = input.chunks(piece).collect();
            assert_eq!(run(&mut p, &pieces), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn event_and_id_set_between_data_lines() {
        assert_eq!(
            whole(b"id: 1\ndata: a\nevent: \xFF\xFEx\nid: \xC3\xA9\xC3\ndata: b\n\n"),
            [ev("\u{fffd}\u{fffd}x", "a\nb", "é\u{fffd}")]
        );
    }

    #[test]
    fn capacity_is_exact() {
        // "data" of 15 bytes + LF needs exactly 16 bytes.
        let mut p = SseParser::<16>::new();
        assert_eq!(
            run(&mut p, &[b"data: 0123456789abcde\n\n"]),
            [ev("message", "0123456789abcde", "")]
        );
        let mut p = SseParser::<16>::new();
        assert_eq!(
            run(&mut p, &[b"data: 0123456789abcdef\n\n"]),
            [Out::Overflow]
        );
    }

    #[test]
    fn finish_reports_discarded_input_and_keeps_id() {
        let mut p = SseParser::<64>::new();
        let mut input: &[u8] = b"id: 3\ndata: partial\n";
        assert_eq!(p.feed(&mut input), Ok(None));
        assert!(p.finish());
        assert_eq!(p.last_event_id(), "3");
        assert!(!p.finish());
        p.reset();
        assert_eq!(p.last_event_id(), "");
    }

    #[test]
    fn whole_event_lines_keep_the_capacity_rule() {
        // Whole (fast path) and byte by byte (general path) agree at every length around N.
        for len in 0..24 {
            for ty in ["", "t", "type-x"] {
                let value = "v".repeat(len);
                let input = format!(
                    "id: ab\nevent: {ty}\nevent: {value}\ndata: d\n\nevent: {value}\r\ndata: e\r\n\r\n"
                );
                let input = input.as_bytes();
                let whole = run(&mut SseParser::<16>::new(), &[input]);
                let pieces: Vec<&[u8]> = input.chunks(1).collect();
                assert_eq!(
                    whole,
                    run(&mut SseParser::<16>::new(), &pieces),
                    "{len} {ty}"
                );
            }
        }
    }

    const FRAGMENTS: &[&[u8]] = &[
        b"data",
        b"data:",
        b"data: ",
        b"event:",
        b"event: x",
        b"id:",
        b"id: 9",
        b"retry:",
        b"retry: 12",
        b":",
        b": keep-alive",
        b"\n",
        b"\n",
        b"\r",
        b"\r\n",
        b" ",
        b"x",
        b"\xC3\xA9",
        b"\xF0\x9F\xA6\x80",
        b"\xEF\xBB\xBF",
        b"\xEF\xBB",
        b"\xBF",
        b"\xFF",
        b"\xE2\x82",
        b"\0",
        b"[DONE]",
        b"{\"a\":1}",
    ];

    fn split_at_all(input: &[u8], expected: &[Out]) {
        for cut in 0..=input.len() {
            let mut p = SseParser::<4096>::new();
            let got = run(&mut p, &[&input[..cut], &input[cut..]]);
            assert_eq!(got, expected, "split at {cut} of {input:?}");
        }
        let mut p = SseParser::<4096>::new();
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&mut p, &pieces), expected, "byte by byte: {input:?}");
    }

    /// The portable line search (and on x86-64 the SSE2 one) against a byte-by-byte one.
    fn check_line_search(bytes: &[u8]) {
        let end = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
        let line = &bytes[..end.unwrap_or(bytes.len())];
        let first = line.iter().position(|b| !b.is_ascii());
        let expected = (end, first.unwrap_or(usize::MAX));
        assert_eq!(swar::find_line_end(bytes), expected, "{bytes:?}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            crate::unchecked::sse2_line_end(bytes),
            expected,
            "SSE2: {bytes:?}"
        );
    }

    #[test]
    fn the_portable_line_search_finds_ends_and_non_ascii_bytes_at_every_alignment() {
        let mut buf = [b'x'; 96];
        for len in 0..64 {
            for offset in 0..16 {
                for special in [b'\n', b'\r', 0xC3, 0x80, 0xFF, 0x0D - 1, 0x0E, 0x7F, 0] {
                    for at in 0..len {
                        buf.fill(b'x');
                        buf[offset + at] = special;
                        check_line_search(&buf[offset..offset + len]);
                        // and with an LF at the very end
                        if at + 1 < len {
                            buf[offset + len - 1] = b'\n';
                            check_line_search(&buf[offset..offset + len]);
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn the_portable_line_search_agrees_with_a_byte_search(
            bytes in proptest::collection::vec(
                proptest::sample::select(&[b'a', b' ', b'\n', b'\r', b'\t', 0, 0x0E, 0x7F, 0x80, 0xC3, 0xA9, 0xFF][..]),
                0..80,
            ),
            offset in 0usize..16,
        ) {
            let mut padded = std::vec![b'-'; offset];
            padded.extend_from_slice(&bytes);
            check_line_search(&padded[offset..]);
        }

        #[test]
        fn any_split_gives_the_same_events_as_the_reference(
            frags in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40),
            chunk in 1usize..17,
        ) {
            let input: Vec<u8> = frags.concat();
            let expected = reference(&input);
            proptest::prop_assert_eq!(&whole(&input), &expected, "{:?}", input);
            split_at_all(&input, &expected);
            let mut p = SseParser::<4096>::new();
            let pieces: Vec<&[u8]> = input.chunks(chunk).collect();
            proptest::prop_assert_eq!(run(&mut p, &pieces), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), chunk in 1usize..50) {
            let mut p = SseParser::<24>::new();
            let pieces: Vec<&[u8]> = bytes.chunks(chunk).collect();
            let _ = run(&mut p, &pieces);
        }
    }
}
