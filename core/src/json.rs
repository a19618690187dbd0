//! JSON as the other layers share it. Public here are what they hand out: [`JsonStr`], a
//! string of a document borrowed as its raw bytes between the quotes (unescaped only when the
//! caller asks and the string has escapes), and the errors. Internally: a writer that escapes
//! exactly as RFC 8259 requires and keeps counting when the buffer is too small (so a failed
//! write reports the size needed), and a single-pass, validating, zero-copy reader that skips
//! unwanted values while still validating them, nested at most [`MAX_DEPTH`] levels so hostile
//! input cannot exhaust anything.
//!
//! No function here panics on any input.

use core::fmt;

/// Deepest nesting the reader accepts.
pub const MAX_DEPTH: usize = 128;

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// The output buffer was too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// Bytes the whole output needs.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output buffer too small: {} bytes needed", self.required)
    }
}

impl core::error::Error for BufferTooSmall {}

/// Appends bytes to a caller buffer; past its end it only counts.
///
/// With an empty buffer it is a pure length counter, which is how callers size a buffer
/// before writing (`Writer::new(&mut [])`).
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// A writer that fills `buf` from its start.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Bytes written (or that would have been written) so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `true` when every byte so far fit in the buffer.
    pub(crate) fn fits(&self) -> bool {
        self.len <= self.buf.len()
    }

    /// The number of bytes written, or the size that was needed.
    pub(crate) fn finish(self) -> Result<usize, BufferTooSmall> {
        if self.fits() {
            Ok(self.len)
        } else {
            Err(BufferTooSmall { required: self.len })
        }
    }

    /// Appends raw bytes.
    #[inline]
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Appends one raw byte.
    // Out of line: the request and head writers call it some forty times, and inlined it
    // costs flash at each.
    #[inline(never)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.raw(&[b]);
    }

    /// Appends `s` as a JSON string literal, quotes included: `"` and `\` are escaped, control
    /// characters U+0000..U+001F become `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`; everything
    /// else, non-ASCII included, is copied as UTF-8.
    pub(crate) fn string(&mut self, s: &str) {
        self.byte(b'"');
        self.string_body(s);
        self.byte(b'"');
    }

    /// Appends the escaped contents of `s` without the surrounding quotes.
    pub(crate) fn string_body(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b >= 0x20 && b != b'"' && b != b'\\' {
                continue;
            }
            self.raw(crate::span(bytes, start..i));
            // One write per escape: `\"`, `\\`, the five short forms, else `\u00XX`.
            let short = match b {
                b'"' | b'\\' => b,
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0c => b'f',
                _ => 0,
            };
            if short != 0 {
                self.raw(&[b'\\', short]);
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.raw(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
            start = i + 1;
        }
        self.raw(crate::span(bytes, start..));
    }

    /// Appends an unsigned integer.
    pub(crate) fn u64(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.raw(crate::span(&tmp, i..));
    }

    /// Appends a signed integer.
    pub(crate) fn i64(&mut self, v: i64) {
        if v < 0 {
            self.byte(b'-');
        }
        self.u64(v.unsigned_abs());
    }

    /// Appends a float rounded to six decimal places (half away from zero), trailing zeros
    /// dropped (`0.7`, `1`, `0.123457`). That is all sampling parameters need. The value is
    /// scaled exactly in integers, which avoids core's float formatting (about 12 KiB of flash
    /// on a microcontroller) and soft-float arithmetic. Returns `false` (writing nothing) for
    /// NaN, infinities and magnitudes of 10¹² or more.
    pub(crate) fn f32(&mut self, v: f32) -> bool {
        if !f32_writable(v) {
            return false;
        }
        let bits = v.to_bits();
        let magnitude = bits & 0x7fff_ffff;
        // |v| = mantissa · 2^exp, exactly.
        let field = magnitude >> 23;
        let (mantissa, exp) = if field == 0 {
            (u64::from(magnitude), -149)
        } else {
            (
                u64::from(magnitude & 0x7f_ffff | 0x80_0000),
                field as i32 - 150,
            )
        };
        // |v| · 10⁶ < 10¹⁸ < 2⁶⁰; below 1, mantissa · 10⁶ < 2⁴⁴.
        let x = mantissa * 1_000_000;
        let scaled = match exp {
            0.. => x << exp,
            -63..0 => {
                let k = exp.unsigned_abs();
                (x + (1 << (k - 1))) >> k
            }
            _ => 0,
        };
        let (int, frac) = (scaled / 1_000_000, (scaled % 1_000_000) as u32);
        if bits >> 31 != 0 && scaled != 0 {
            self.byte(b'-');
        }
        self.u64(int);
        if frac != 0 {
            // The fraction without its trailing zeros, after a 1 that keeps its leading zeros
            // (`0.05` → `105`), then the 1 becomes the decimal point.
            let (mut frac, mut one) = (frac, 1_000_000);
            while frac % 10 == 0 {
                frac /= 10;
                one /= 10;
            }
            let point = self.len;
            self.u64(u64::from(one + frac));
            if let Some(b) = self.buf.get_mut(point) {
                *b = b'.';
            }
        }
        true
    }
}

/// `true` when [`Writer::f32`] writes `v`: finite and below 10¹² in magnitude. Compares bits,
/// so no soft-float code is linked on a microcontroller.
pub(crate) fn f32_writable(v: f32) -> bool {
    // Positive floats order like their bit patterns; NaN and infinities lie above 10¹².
    v.to_bits() & 0x7fff_ffff < const { 1e12f32.to_bits() }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.raw(s.as_bytes());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// Why a document is not the JSON that was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// The document ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue the value here.
    UnexpectedByte,
    /// A string holds a raw control character (U+0000..U+001F).
    ControlCharacterInString,
    /// A backslash escape that JSON does not define, or a bad `\u` sequence.
    InvalidEscape,
    /// A number that does not follow the JSON grammar.
    InvalidNumber,
    /// A number where a non-negative integer was required, or one that overflows `u64`.
    NotAnInteger,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes other than whitespace after the document.
    TrailingCharacters,
    /// A value of another type than the one required (e.g. a number where an object must be).
    WrongType,
}

/// A JSON syntax or shape error and the byte offset where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Error {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte offset into the document.
    pub offset: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::UnexpectedEnd => "unexpected end of JSON",
            ErrorKind::UnexpectedByte => "unexpected character in JSON",
            ErrorKind::ControlCharacterInString => "control character in JSON string",
            ErrorKind::InvalidEscape => "invalid escape in JSON string",
            ErrorKind::InvalidNumber => "invalid JSON number",
            ErrorKind::NotAnInteger => "expected a non-negative integer",
            ErrorKind::TooDeep => "JSON nested too deeply",
            ErrorKind::TrailingCharacters => "trailing characters after JSON",
            ErrorKind::WrongType => "JSON value of unexpected type",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl core::error::Error for Error {}

/// A JSON string as it appears in the document, without its quotes.
///
/// Borrowed from the document. [`JsonStr::as_str`] gives the text directly when the string
/// has no escapes (the common case); otherwise [`JsonStr::unescape_into`] decodes it into a
/// caller buffer and `Display` writes the decoded text piece by piece. The reader has already
/// validated every escape, so decoding cannot fail except for lack of room. Lone UTF-16
/// surrogates (`\ud800` without its pair) decode to U+FFFD.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// A string with no escapes: its raw form is its text. Used for number tokens and tests.
    pub const fn plain(text: &'a str) -> Self {
        JsonStr {
            raw: text,
            escaped: false,
        }
    }

    /// The bytes between the quotes, escapes undecoded.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The text of an object key, for matching against known names: the raw form when it has
    /// no escapes (always, in practice), else decoded into `buf` (`""` when longer than 32
    /// bytes — no known key is).
    #[inline]
    pub fn key<'b>(&'b self, buf: &'b mut [u8; 32]) -> &'b str {
        if !self.escaped {
            return self.raw;
        }
        self.unescape_into(buf).unwrap_or_default()
    }

    /// `true` when the raw form holds at least one backslash escape.
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The text, when it needs no decoding.
    pub fn as_str(&self) -> Option<&'a str> {
        if self.escaped { None } else { Some(self.raw) }
    }

    /// `true` when the decoded text is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Length in bytes of the decoded UTF-8 text.
    pub fn decoded_len(&self) -> usize {
        if !self.escaped {
            return self.raw.len();
        }
        let mut n = 0;
        let mut it = self.pieces();
        while let Some(p) = it.next_piece() {
            n += p.len();
        }
        n
    }

    /// Decodes into `out` and returns the text, or the size `out` needed.
    pub fn unescape_into<'o>(&self, out: &'o mut [u8]) -> Result<&'o str, BufferTooSmall> {
        let mut w = Writer::new(out);
        let mut it = self.pieces();
        while let Some(p) = it.next_piece() {
            w.raw(p.as_bytes());
        }
        let n = w.finish()?;
        // Only whole UTF-8 pieces were written, so the prefix is valid UTF-8.
        core::str::from_utf8(out.get(..n).unwrap_or_default())
            .map_err(|_| BufferTooSmall { required: n })
    }

    /// Compares the decoded text with `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        if !self.escaped {
            return self.raw == s;
        }
        let mut rest = s;
        let mut it = self.pieces();
        while let Some(p) = it.next_piece() {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }

    /// The decoded text as a sequence of string pieces (runs of plain text and single decoded
    /// characters), for writing without a buffer: call [`Pieces::next_piece`] until `None`.
    pub fn pieces(&self) -> Pieces<'a> {
        Pieces {
            rest: self.raw,
            buf: [0; 4],
            plain: !self.escaped,
        }
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.escaped {
            return f.write_str(self.raw);
        }
        let mut it = self.pieces();
        while let Some(p) = it.next_piece() {
            f.write_str(p)?;
        }
        Ok(())
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.raw)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.raw)
    }
}

/// Iterator over the decoded pieces of a [`JsonStr`]; see [`JsonStr::pieces`].
pub struct Pieces<'a> {
    rest: &'a str,
    buf: [u8; 4],
    /// The text is `rest` as it is ([`JsonStr::plain`]): one piece, backslashes included.
    plain: bool,
}

impl<'a> Pieces<'a> {
    /// The next piece; borrows the iterator because decoded characters live in it.
    pub fn next_piece(&mut self) -> Option<&str> {
        let bytes = self.rest.as_bytes();
        if bytes.is_empty() {
            return None;
        }
        if self.plain {
            return Some(core::mem::take(&mut self.rest));
        }
        if bytes.first() != Some(&b'\\') {
            let n = crate::find_byte(b'\\', bytes).unwrap_or(bytes.len());
            let (head, tail) = self.rest.split_at_checked(n)?;
            self.rest = tail;
            return Some(head);
        }
        let (c, used) = decode_escape(bytes);
        self.rest = self.rest.get(used..).unwrap_or_default();
        Some(c.encode_utf8(&mut self.buf))
    }
}

/// Decodes the escape at the start of `bytes` (which begins with `\`). The reader validated
/// it already; anything unexpected still yields U+FFFD rather than a panic.
fn decode_escape(bytes: &[u8]) -> (char, usize) {
    let c = match bytes.get(1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let Some(hi) = hex4(bytes.get(2..6)) else {
                return ('\u{fffd}', bytes.len().min(2));
            };
            if (0xD800..0xDC00).contains(&hi) {
                // A high surrogate: combine with a following `\uDC00..\uDFFF`.
                if bytes.get(6..8) == Some(b"\\u")
                    && let Some(lo) = hex4(bytes.get(8..12))
                    && (0xDC00..0xE000).contains(&lo)
                {
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return (char::from_u32(cp).unwrap_or('\u{fffd}'), 12);
                }
                return ('\u{fffd}', 6);
            }
            return (char::from_u32(hi).unwrap_or('\u{fffd}'), 6);
        }
        _ => '\u{fffd}',
    };
    (c, 2)
}

fn hex4(b: Option<&[u8]>) -> Option<u32> {
    let b = b?;
    let mut v = 0u32;
    for &d in b {
        v = (v << 4) | (d as char).to_digit(16)?;
    }
    Some(v)
}

/// A single-pass, validating, zero-copy JSON reader over one document.
///
/// Typical use walks an object with [`Reader::object`] / [`Object::next_key`], reads the
/// values it wants and calls [`Reader::skip_value`] for the rest, then [`Reader::end`].
/// The reader is `Copy`: a copy is a cheap bookmark for looking ahead.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    src: &'a str,
    pos: usize,
}

/// Iteration state of one object; see [`Reader::object`].
#[derive(Clone, Copy)]
pub(crate) struct Object {
    first: bool,
    /// Resumed after a comma: `}` is not allowed before the next key.
    after_comma: bool,
}

/// Iteration state of one array; see [`Reader::array`].
#[derive(Clone, Copy)]
pub(crate) struct Array {
    first: bool,
}

const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Reader<'a> {
    /// A reader at the start of `src`.
    pub(crate) fn new(src: &'a str) -> Self {
        Reader { src, pos: 0 }
    }

    /// A reader positioned at byte `pos` of `src` (for resuming a document whose beginning
    /// is known to be valid).
    pub(crate) fn at(src: &'a str, pos: usize) -> Self {
        Reader {
            src,
            pos: pos.min(src.len()),
        }
    }

    /// Current byte offset.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error {
            kind,
            offset: self.pos,
        }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    pub(crate) fn peek(&mut self) -> Result<u8, Error> {
        let b = self.bytes();
        // Compact JSON has no whitespace: one comparison decides (whitespace is <= b' ').
        if let Some(&c) = b.get(self.pos)
            && c > b' '
        {
            return Ok(c);
        }
        self.peek_slow()
    }

    #[cold]
    fn peek_slow(&mut self) -> Result<u8, Error> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            if !is_ws(c) {
                return Ok(c);
            }
            self.pos += 1;
        }
        Err(self.err(ErrorKind::UnexpectedEnd))
    }

    #[inline]
    fn expect(&mut self, want: u8) -> Result<(), Error> {
        if self.peek()? == want {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(ErrorKind::UnexpectedByte))
        }
    }

    /// Consumes `{` and returns the state for [`Object::next_key`].
    pub(crate) fn object(&mut self) -> Result<Object, Error> {
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                Ok(Object {
                    first: true,
                    after_comma: false,
                })
            }
            _ => Err(self.err(ErrorKind::WrongType)),
        }
    }

    /// Consumes `[` and returns the state for [`Array::next`].
    pub(crate) fn array(&mut self) -> Result<Array, Error> {
        match self.peek()? {
            b'[' => {
                self.pos += 1;
                Ok(Array { first: true })
            }
            _ => Err(self.err(ErrorKind::WrongType)),
        }
    }

    /// Consumes `null` if it comes next and says whether it did.
    pub(crate) fn null(&mut self) -> Result<bool, Error> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads a string.
    pub(crate) fn string(&mut self) -> Result<JsonStr<'a>, Error> {
        if self.peek()? != b'"' {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.pos += 1;
        self.string_after_quote()
    }

    /// Reads a string or `null`.
    pub(crate) fn string_or_null(&mut self) -> Result<Option<JsonStr<'a>>, Error> {
        if self.null()? {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// Reads a non-negative integer (no fraction, no exponent) that fits in `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        let start = self.pos;
        if !self.peek()?.is_ascii_digit() {
            return Err(self.err(ErrorKind::WrongType));
        }
        let tok = self.number()?;
        tok.bytes()
            .try_fold(0u64, |v, d| {
                let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
                v.checked_mul(10)?.checked_add(u64::from(d))
            })
            .ok_or(Error {
                kind: ErrorKind::NotAnInteger,
                offset: start,
            })
    }

    /// Reads a non-negative integer or `null`.
    pub(crate) fn u64_or_null(&mut self) -> Result<Option<u64>, Error> {
        if self.null()? {
            Ok(None)
        } else {
            self.u64().map(Some)
        }
    }

    /// Reads a string, or a number as its literal text (for fields such as error `code` that
    /// servers send either way). `null` gives `None`; other types are skipped and give `None`.
    pub(crate) fn string_or_number(&mut self) -> Result<Option<JsonStr<'a>>, Error> {
        match self.peek()? {
            b'"' => self.string().map(Some),
            b'-' | b'0'..=b'9' => self.number().map(|t| Some(JsonStr::plain(t))),
            _ => self.skip_value().map(|_| None),
        }
    }

    /// Checks that only whitespace remains.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        match self.peek() {
            Err(_) => Ok(()),
            Ok(_) => Err(self.err(ErrorKind::TrailingCharacters)),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Error> {
        let b = self.bytes();
        let end = self.pos + lit.len();
        match b.get(self.pos..end) {
            Some(s) if s == lit => {
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(self.err(ErrorKind::UnexpectedByte)),
            None => Err(self.err(ErrorKind::UnexpectedEnd)),
        }
    }

    /// Scans a number token and returns its text.
    fn number(&mut self) -> Result<&'a str, Error> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = self.pos;
        let bad = |i| Error {
            kind: ErrorKind::InvalidNumber,
            offset: i,
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return Err(bad(i)),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(bad(i));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(bad(i));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        self.src.get(start..i).ok_or(bad(start))
    }

    /// Scans a string whose opening quote was consumed.
    #[inline(always)]
    fn string_after_quote(&mut self) -> Result<JsonStr<'a>, Error> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = find_string_special(b, i);
            match b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    let raw = self.src.get(start..i).unwrap_or_default();
                    return Ok(JsonStr { raw, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    i = validate_escape(b, i)?;
                }
                Some(_) => {
                    return Err(Error {
                        kind: ErrorKind::ControlCharacterInString,
                        offset: i,
                    });
                }
                None => {
                    return Err(Error {
                        kind: ErrorKind::UnexpectedEnd,
                        offset: i,
                    });
                }
            }
        }
    }

    /// Skips one value of any type, validating it, and returns its raw text (Anthropic's
    /// `tool_use` input, an object passed on as the arguments).
    #[cfg(feature = "anthropic")]
    pub(crate) fn raw_value(&mut self) -> Result<&'a str, Error> {
        self.peek()?;
        let start = self.pos;
        self.skip_value()?;
        Ok(self.src.get(start..self.pos).unwrap_or_default())
    }

    /// Skips one value of any type, validating it. Nesting is limited to [`MAX_DEPTH`].
    #[inline]
    pub(crate) fn skip_value(&mut self) -> Result<(), Error> {
        // Scalars, the common case, without the container machinery.
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.string_after_quote().map(|_| ())
            }
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => self.skip_nested(),
        }
    }

    fn skip_nested(&mut self) -> Result<(), Error> {
        // Bit `d` of `kinds` is 1 when nesting level `d` is an object.
        let mut kinds: u128 = 0;
        let mut depth: usize = 0;
        loop {
            // A value starts here.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    let object = open == b'{';
                    if self.peek()? == if object { b'}' } else { b']' } {
                        self.pos += 1;
                    } else {
                        if depth >= MAX_DEPTH {
                            return Err(self.err(ErrorKind::TooDeep));
                        }
                        if object {
                            kinds |= 1 << depth;
                        } else {
                            kinds &= !(1 << depth);
                        }
                        depth += 1;
                        if object {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.pos += 1;
                    self.string_after_quote()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                _ => return Err(self.err(ErrorKind::UnexpectedByte)),
            }
            // A value ended: close containers until one continues.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let in_object = kinds & (1 << (depth - 1)) != 0;
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        if in_object {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        break;
                    }
                    b'}' if in_object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    b']' if !in_object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    _ => return Err(self.err(ErrorKind::UnexpectedByte)),
                }
            }
        }
    }
}

impl Object {
    /// The next key (with its `:` consumed), or `None` after the closing `}`.
    #[inline]
    pub(crate) fn next_key<'a>(
        &mut self,
        r: &mut Reader<'a>,
    ) -> Result<Option<JsonStr<'a>>, Error> {
        let mut c = r.peek()?;
        if c == b'}' && !self.after_comma {
            r.pos += 1;
            return Ok(None);
        }
        self.after_comma = false;
        if self.first {
            self.first = false;
        } else if c == b',' {
            r.pos += 1;
            c = r.peek()?;
        } else {
            return Err(r.err(ErrorKind::UnexpectedByte));
        }
        if c != b'"' {
            return Err(r.err(ErrorKind::UnexpectedByte));
        }
        r.pos += 1;
        let k = r.string_after_quote()?;
        r.expect(b':')?;
        Ok(Some(k))
    }
}

impl Array {
    /// Moves to the next element; `false` after the closing `]`.
    #[inline]
    pub(crate) fn next(&mut self, r: &mut Reader<'_>) -> Result<bool, Error> {
        let c = r.peek()?;
        if c == b']' {
            r.pos += 1;
            return Ok(false);
        }
        if self.first {
            self.first = false;
        } else if c == b',' {
            r.pos += 1;
        } else {
            return Err(r.err(ErrorKind::UnexpectedByte));
        }
        Ok(true)
    }
}

/// Validates the escape at `b[i]` (a backslash) and returns the index after it.
fn validate_escape(b: &[u8], i: usize) -> Result<usize, Error> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => match b.get(i + 2..i + 6) {
            Some(h) if h.iter().all(u8::is_ascii_hexdigit) => Ok(i + 6),
            Some(_) => Err(Error {
                kind: ErrorKind::InvalidEscape,
                offset: i,
            }),
            None => Err(Error {
                kind: ErrorKind::UnexpectedEnd,
                offset: i,
            }),
        },
        Some(_) => Err(Error {
            kind: ErrorKind::InvalidEscape,
            offset: i,
        }),
        None => Err(Error {
            kind: ErrorKind::UnexpectedEnd,
            offset: i,
        }),
    }
}

/// Index of the first `"`, `\` or control byte at or after `i`, or `b.len()`.
///
/// Eight bytes at a time (SWAR): a lane is special when it equals `"` or `\` or is below
/// 0x20. The classic "has zero byte" test can only report false positives in lanes *above* a
/// true one, so the lowest flagged lane is exact. The last partial word is padded with spaces.
#[inline]
fn find_string_special(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn special(v: u64) -> u64 {
        let q = v ^ (LO * u64::from(b'"'));
        let s = v ^ (LO * u64::from(b'\\'));
        ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s) | (v.wrapping_sub(LO * 0x20) & !v))
            & HI
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = special(u64::from_le_bytes(w));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    fn enc(s: &str) -> String {
        let mut buf = std::vec![0u8; s.len() * 6 + 2];
        let mut w = Writer::new(&mut buf);
        w.string(s);
        let n = w.finish().expect("fits");
        String::from_utf8(buf[..n].to_vec()).expect("utf8")
    }

    #[test]
    fn writer_escapes_exactly() {
        assert_eq!(enc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(enc("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(enc("héllo 🦀 /"), "\"héllo 🦀 /\"");
    }

    #[test]
    fn writer_reports_required_size_and_counts_past_end() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        w.string("hello");
        assert_eq!(w.finish(), Err(BufferTooSmall { required: 7 }));
        let mut empty = [0u8; 0];
        let mut w = Writer::new(&mut empty);
        w.u64(u64::MAX);
        w.i64(i64::MIN);
        assert_eq!(w.len(), 20 + 20);
    }

    #[test]
    fn writer_numbers() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.u64(0);
        w.byte(b' ');
        w.i64(-42);
        w.byte(b' ');
        assert!(w.f32(0.7));
        w.byte(b' ');
        assert!(w.f32(-1.0));
        w.byte(b' ');
        assert!(w.f32(0.000_000_4));
        w.byte(b' ');
        assert!(w.f32(1.234_567_8));
        assert!(!w.f32(f32::NAN));
        assert!(!w.f32(f32::INFINITY));
        assert!(!w.f32(1e12));
        let n = w.finish().expect("fits");
        assert_eq!(&buf[..n], b"0 -42 0.7 -1 0 1.234568");
    }

    fn f32_text(v: f32) -> Option<String> {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        let ok = w.f32(v);
        let n = w.finish().expect("fits");
        ok.then(|| String::from_utf8(buf[..n].to_vec()).expect("ascii"))
    }

    /// The reference: f64 arithmetic, exact while |v| · 10⁶ < 2⁵².
    fn f32_reference(v: f32) -> String {
        let scaled = (f64::from(v.abs()) * 1e6 + 0.5) as u64;
        let sign = if v < 0.0 && scaled != 0 { "-" } else { "" };
        let frac = std::format!("{:06}", scaled % 1_000_000);
        let frac = frac.trim_end_matches('0');
        let dot = if frac.is_empty() { "" } else { "." };
        std::format!("{sign}{}{dot}{frac}", scaled / 1_000_000)
    }

    #[test]
    fn f32_edges() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (f32::from_bits(1), "0"),
            (-f32::from_bits(1), "0"),
            (-0.000_000_4, "0"),
            (0.000_000_6, "0.000001"),
            (f32::MIN_POSITIVE, "0"),
            (0.5, "0.5"),
            (2.0, "2"),
            (123_456.78, "123456.78125"),
            (999_999_900_000.0, "999999930368"),
            (-999_999_900_000.0, "-999999930368"),
        ] {
            assert_eq!(f32_text(v).as_deref(), Some(want), "{v:e}");
        }
        for v in [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e12,
            -1e12,
            f32::MAX,
        ] {
            assert_eq!(f32_text(v), None, "{v}");
        }
    }

    proptest::proptest! {
        #[test]
        fn f32_matches_the_exact_reference(bits in proptest::num::u32::ANY) {
            let v = f32::from_bits(bits);
            if v.is_finite() && v.abs() < 4.5e9 {
                proptest::prop_assert_eq!(f32_text(v), Some(f32_reference(v)));
            }
        }
    }

    fn decode(raw: &str) -> String {
        let mut r = Reader::new(raw);
        let s = r.string().expect("valid");
        let mut out = std::vec![0u8; s.decoded_len()];
        let t = s.unescape_into(&mut out).expect("fits").to_owned();
        assert_eq!(std::format!("{s}"), t);
        assert!(s.eq_str(&t));
        t
    }

    #[test]
    fn reader_unescapes() {
        assert_eq!(decode(r#""plain""#), "plain");
        assert_eq!(decode(r#""a\nb\"c\\d\/e""#), "a\nb\"c\\d/e");
        assert_eq!(decode(r#""\u00e9\u4e2d""#), "é中");
        assert_eq!(decode(r#""\ud83e\udd80!""#), "🦀!");
        assert_eq!(decode(r#""\ud83e x""#), "\u{fffd} x");
        assert_eq!(decode(r#""\udd80""#), "\u{fffd}");
    }

    #[test]
    fn reader_rejects_bad_strings() {
        for bad in [
            r#""abc"#,
            r#""a\x""#,
            r#""\u12g4""#,
            "\"a\u{1}b\"",
            r#""\u12"#,
        ] {
            assert!(Reader::new(bad).string().is_err(), "{bad}");
        }
    }

    #[test]
    fn skip_matches_serde_json_validity() {
        let cases = [
            r#"{"a":[1,2,{"b":null}],"c":"d"}"#,
            r#"[]"#,
            r#"{}"#,
            r#"[1,]"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"[1 2]"#,
            r#"-0.5e+3"#,
            r#"01"#,
            r#"1."#,
            r#"[true,false,null]"#,
            r#"[tru]"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            r#"[[[]]]"#,
            r#"[[[]]"#,
            r#"{"a":[}"#,
            r#""\u0041""#,
        ];
        for c in cases {
            let ours = {
                let mut r = Reader::new(c);
                r.skip_value().and_then(|_| r.end()).is_ok()
            };
            let theirs = serde_json::from_str::<serde_json::Value>(c).is_ok();
            assert_eq!(ours, theirs, "{c}");
        }
    }

    #[test]
    fn skip_limits_depth() {
        let deep: String = "[".repeat(200) + &"]".repeat(200);
        let e = Reader::new(&deep).skip_value().unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooDeep);
        let ok: String = "[".repeat(100) + &"]".repeat(100);
        assert!(Reader::new(&ok).skip_value().is_ok());
    }

    #[test]
    fn integers() {
        assert_eq!(Reader::new("123").u64(), Ok(123));
        assert_eq!(Reader::new("18446744073709551615").u64(), Ok(u64::MAX));
        assert!(Reader::new("18446744073709551616").u64().is_err());
        assert!(Reader::new("1.5").u64().is_err());
        assert!(Reader::new("-1").u64().is_err());
        let mut r = Reader::new("42");
        assert_eq!(
            r.string_or_number().expect("ok").map(|s| s.raw()),
            Some("42")
        );
    }

    proptest::proptest! {
        #[test]
        fn writer_round_trips_through_serde_json(s in "\\PC*|[\\x00-\\x1f\"\\\\]*|.*") {
            let e = enc(&s);
            let back: String = serde_json::from_str(&e).expect("serde_json accepts our output");
            proptest::prop_assert_eq!(&back, &s);
            // and our reader decodes it to the same text
            proptest::prop_assert_eq!(decode(&e), s);
        }

        #[test]
        fn reader_decodes_serde_json_output(s in proptest::collection::vec(proptest::char::any(), 0..40)) {
            let s: String = s.into_iter().collect();
            let e = serde_json::to_string(&s).expect("serialize");
            proptest::prop_assert_eq!(decode(&e), s);
        }

        #[test]
        fn skip_value_never_panics(bytes in proptest::collection::vec(proptest::sample::select(std::vec![b'{', b'}', b'[', b']', b'"', b',', b':', b'1', b'n', b' ', b'\\', b'a']), 0..64)) {
            let s = String::from_utf8(bytes).expect("ascii");
            let mut r = Reader::new(&s);
            let ours = r.skip_value().and_then(|_| r.end()).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{}", s);
        }
    }

    #[test]
    fn pieces_iterate() {
        let mut r = Reader::new(r#""a\nb""#);
        let s = r.string().expect("ok");
        let mut it = s.pieces();
        let mut v: Vec<String> = Vec::new();
        while let Some(p) = it.next_piece() {
            v.push(p.into());
        }
        assert_eq!(v, ["a", "\n", "b"]);
    }
}
