//! Templates: the decoder's fast path (see [`StreamDecoder`](super::StreamDecoder)'s docs).

use core::cell::Cell;

use super::{StreamItem, ToolCallDelta};
use crate::json::{JsonStr, Reader};

/// Most values a template lets vary.
const HOLES: usize = 10;

/// What a value of a template stands for: [`FREE`], or the item it yields.
type HoleKind = u8;
/// A member the parse skips: any valid JSON value may stand there.
const FREE: HoleKind = 0;
/// `Content` text (never empty).
const CONTENT: HoleKind = 1;
/// `Reasoning` text (never empty).
const REASONING: HoleKind = 2;
/// `Refusal` text (never empty).
const REFUSAL: HoleKind = 3;
/// A `Role` (may be empty).
const ROLE: HoleKind = 4;
/// The `arguments` of a tool-call fragment without id and name (may be empty).
const TOOL_ARGUMENTS: HoleKind = 5;

/// One value of a template: where it lies in the learned event, and what it yields.
#[derive(Clone, Copy)]
struct Hole {
    start: u16,
    end: u16,
    kind: HoleKind,
    choice: u32,
    /// The tool-call index ([`TOOL_ARGUMENTS`]).
    index: u32,
    /// For a free value: the next item's hole (or the number of holes), set when learned.
    next_item: u8,
}

const NO_HOLE: Hole = Hole {
    start: 0,
    end: 0,
    kind: FREE,
    choice: 0,
    index: 0,
    next_item: 0,
};

/// What one full parse saw, in document order: the values of skipped root members, and the
/// items it emitted while they all are items a template can replay (text, roles, tool-call
/// arguments, each a string of the event). Cells, because the parse and its callback both
/// write here.
pub(crate) struct Seen<'d> {
    data: &'d str,
    holes: [Cell<Hole>; HOLES],
    len: Cell<usize>,
    items: Cell<usize>,
    replayable: Cell<bool>,
}

impl<'d> Seen<'d> {
    pub(crate) fn new(data: &'d str) -> Self {
        Seen {
            data,
            holes: [const { Cell::new(NO_HOLE) }; HOLES],
            len: Cell::new(0),
            items: Cell::new(0),
            replayable: Cell::new(true),
        }
    }

    fn push(&self, hole: Hole) -> bool {
        let n = self.len.get();
        let last_end = n
            .checked_sub(1)
            .and_then(|i| self.holes.get(i))
            .map_or(0, |h| h.get().end);
        match self.holes.get(n) {
            Some(slot) if last_end <= hole.start => {
                slot.set(hole);
                self.len.set(n + 1);
                true
            }
            _ => false,
        }
    }

    /// A skipped root member's value at `[start, end)`; left out (so kept literal) when only
    /// room for items remains.
    pub(crate) fn free(&self, start: usize, end: usize) {
        if let (true, Ok(start), Ok(end)) = (
            self.len.get() + 2 < HOLES,
            u16::try_from(start),
            u16::try_from(end),
        ) {
            self.push(Hole {
                start,
                end,
                ..NO_HOLE
            });
        }
    }

    pub(crate) fn note(&self, item: &StreamItem<'_>) {
        let (kind, choice, index, text) = match *item {
            StreamItem::Content { choice, text } => (CONTENT, choice, 0, text),
            StreamItem::Reasoning { choice, text } => (REASONING, choice, 0, text),
            StreamItem::Refusal { choice, text } => (REFUSAL, choice, 0, text),
            StreamItem::Role { choice, role } => (ROLE, choice, 0, role),
            StreamItem::ToolCall(t) if t.id.is_none() && t.name.is_none() => {
                (TOOL_ARGUMENTS, t.choice, t.index, t.arguments)
            }
            _ => (FREE, 0, 0, JsonStr::default()),
        };
        // The string's place in the event, quotes included.
        let start = (text.raw().as_ptr() as usize)
            .wrapping_sub(self.data.as_ptr() as usize)
            .wrapping_sub(1);
        let end = start.wrapping_add(text.raw().len() + 2);
        let b = self.data.as_bytes();
        let ok = kind != FREE
            && b.get(start) == Some(&b'"')
            && end.checked_sub(1).and_then(|e| b.get(e)) == Some(&b'"')
            && match (u16::try_from(start), u16::try_from(end)) {
                (Ok(start), Ok(end)) => self.push(Hole {
                    start,
                    end,
                    kind,
                    choice,
                    index,
                    next_item: 0,
                }),
                _ => false,
            };
        self.items.set(self.items.get() + 1);
        if !ok {
            self.replayable.set(false);
        }
    }
}

/// Bytes of an event the decoder can learn as a template.
pub const TEMPLATE_CAPACITY: usize = 512;

/// A learned event: its bytes, and the values in it that another event may vary.
#[derive(Clone)]
pub(crate) struct Template {
    bytes: [u8; TEMPLATE_CAPACITY],
    pub(super) len: usize,
    holes: [Hole; HOLES],
    /// Holes in use; 0: nothing learned.
    pub(super) holes_len: usize,
    /// Bit `i`: free value `i` differed from the template's at the last replay that looked at
    /// it on its own (an `obfuscation` string, a ticking clock). The stretch from it to the
    /// next item is then not compared whole, which would fail and be compared again value by
    /// value, until the value is seen equal again.
    pub(super) varies: u16,
}

impl Template {
    pub(super) const EMPTY: Template = Template {
        bytes: [0; TEMPLATE_CAPACITY],
        len: 0,
        holes: [NO_HOLE; HOLES],
        holes_len: 0,
        varies: 0,
    };

    /// Learns `data` when its full parse emitted something and all of it can be replayed;
    /// otherwise keeps what it had.
    /// Forgets the learned event (the next one gets the full parse and is learned).
    pub(crate) fn forget(&mut self) {
        self.holes_len = 0;
    }

    pub(crate) fn learn(&mut self, data: &str, seen: &Seen<'_>) {
        if let (Some(dst), true, true) = (
            self.bytes.get_mut(..data.len()),
            seen.replayable.get(),
            seen.items.get() > 0,
        ) {
            dst.copy_from_slice(data.as_bytes());
            self.len = data.len();
            self.holes_len = seen.len.get();
            self.varies = 0;
            let mut next = self.holes_len as u8;
            for (i, (h, s)) in self.holes.iter_mut().zip(&seen.holes).enumerate().rev() {
                *h = s.get();
                h.next_item = next;
                if h.kind != FREE {
                    next = i as u8;
                }
            }
        }
    }

    /// Decodes `data` without a full parse when it is the learned event with other values in
    /// its holes: the same bytes around them, each a valid JSON value (a string for an item,
    /// not empty for text). The full parse would then take exactly the same path and emit the
    /// same items with the new strings, which are emitted here. Returns `false`, having emitted
    /// nothing, when `data` does not fit.
    pub(crate) fn replay<'a>(
        &mut self,
        data: &'a str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> bool {
        if self.holes_len == 0 {
            return false;
        }
        let b = data.as_bytes();
        let mut found: [JsonStr<'a>; HOLES] = [JsonStr::default(); HOLES];
        let (mut tp, mut dp) = (0, 0);
        let mut i = 0;
        while i < self.holes_len {
            let (Some(&h), Some(slot)) = (self.holes.get(i), found.get_mut(i)) else {
                return false;
            };
            i += 1;
            if h.kind == FREE && self.varies & (1 << (i - 1)) == 0 {
                // The stretch up to the next item in one comparison: where it equals the
                // template, so do the free values in it (the usual case).
                let j = usize::from(h.next_item);
                let stop = match self.holes.get(j) {
                    Some(h) if j < self.holes_len => usize::from(h.start),
                    _ => self.len,
                };
                if let (Some(stretch), Some(rest)) = (self.bytes.get(tp..stop), b.get(dp..))
                    && rest.starts_with(stretch)
                {
                    (tp, dp, i) = (stop, dp + stretch.len(), j);
                    continue;
                }
            }
            // One value at a time: the bytes before it, then the value.
            let (hs, he) = (usize::from(h.start), usize::from(h.end));
            let Some(lit) = self.bytes.get(tp..hs) else {
                return false;
            };
            if !b.get(dp..).is_some_and(|rest| rest.starts_with(lit)) {
                return false;
            }
            tp = he;
            dp += lit.len();
            let mut r = Reader::at(data, dp);
            if h.kind == FREE {
                if r.skip_value().is_err() {
                    return false;
                }
                // A new value is compared on its own next time (`varies`); one of the same
                // length (a ticking clock) is kept, so that the next event compares equal
                // again. Any valid value may stand there: still exact.
                if let (Some(new), Some(dst)) = (b.get(dp..r.offset()), self.bytes.get_mut(hs..he))
                {
                    let bit = 1 << (i - 1);
                    if new == dst {
                        self.varies &= !bit;
                    } else {
                        self.varies |= bit;
                        if new.len() == dst.len() {
                            dst.copy_from_slice(new);
                        }
                    }
                }
            } else {
                match r.string() {
                    Ok(s) if !s.is_empty() || h.kind >= ROLE => *slot = s,
                    _ => return false,
                }
            }
            dp = r.offset();
        }
        if b.get(dp..) != self.bytes.get(tp..self.len) {
            return false;
        }
        for (h, &s) in self.holes.iter().zip(&found).take(self.holes_len) {
            let choice = h.choice;
            emit(match h.kind {
                FREE => continue,
                CONTENT => StreamItem::Content { choice, text: s },
                REASONING => StreamItem::Reasoning { choice, text: s },
                REFUSAL => StreamItem::Refusal { choice, text: s },
                ROLE => StreamItem::Role { choice, role: s },
                _ => StreamItem::ToolCall(ToolCallDelta {
                    choice,
                    index: h.index,
                    id: None,
                    name: None,
                    arguments: s,
                }),
            });
        }
        true
    }
}
