//! One attempt's clock: which deadline bounds the adapter's next wait, and what the attempt
//! delivered.
//!
//! The engine plans an attempt ([`AttemptPlan`]); the adapter does the IO and tells an
//! [`AttemptTimer`] what happened — the request went out, the response head came, a read of
//! the body begins, an item was decoded — each with the `now` it read from its clock. Before
//! each wait it asks [`AttemptTimer::deadline`] until when it may wait and which deadline that
//! is; when the wait times out, the deadline's [`Phase`] names the timeout. The rules, in this
//! one place for every adapter:
//!
//! - until the response head, the first-byte deadline (request sent + first-byte timeout);
//! - then, in a stream, until the first content — text, a refusal or a tool call; reasoning
//!   is not content — only the first-token deadline (request sent + first-token timeout): a
//!   reasoning model may think for minutes and send nothing meanwhile;
//! - from then on (and in a body collected whole: a JSON answer, an error body, which only
//!   has to keep coming) the idle timeout, counted from the start of each read;
//! - all of them capped by the call's total deadline, which grows with the bytes delivered
//!   ([`AttemptPlan::deadline_after`]).
//!
//! The bytes delivered are the answer's decoded text (content, reasoning, refusals) and tool
//! call arguments (at least 1 per fragment); they decide whether a failed attempt left partial
//! output ([`crate::call::Outcome::delivered_bytes`]).

use crate::call::{self, AttemptPlan};
use crate::decode::StreamItem;
use crate::time::Instant;

/// Which deadline bounds a wait ([`AttemptTimer::deadline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// Request sent → response head.
    FirstByte,
    /// Request sent → first content (a stream only).
    FirstToken,
    /// The start of a read of the body → its bytes.
    Idle,
    /// The call's total deadline (as grown by what was delivered), earlier than the others.
    Total,
}

/// The deadlines of one attempt and what it delivered, fed by the adapter (see the module
/// docs).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AttemptTimer {
    plan: AttemptPlan,
    /// When the request went out.
    sent: Instant,
    /// When the current read of the body began.
    read_from: Instant,
    /// The response head came.
    head: bool,
    /// The body is a stream (not collected whole).
    stream: bool,
    /// Content came (reasoning does not count).
    content: bool,
    /// Bytes of answer delivered.
    delivered: u64,
}

impl AttemptTimer {
    /// The timer of the attempt `plan`, its request sent at `sent`.
    pub fn new(plan: &AttemptPlan, sent: Instant) -> Self {
        AttemptTimer {
            plan: *plan,
            sent,
            read_from: sent,
            head: false,
            stream: false,
            content: false,
            delivered: 0,
        }
    }

    /// The response head came; `stream`: its body is a stream, decoded as it arrives (a body
    /// collected whole — a JSON answer, an error body — is bounded by the idle timeout from
    /// the start).
    pub fn on_head(&mut self, stream: bool) {
        self.head = true;
        self.stream = stream;
    }

    /// A read of the body begins at `now` (after what the last one brought was handled): the
    /// idle timeout counts from here.
    pub fn on_read(&mut self, now: Instant) {
        self.read_from = now;
    }

    /// A decoded item: counts the bytes it delivers and notes the first content.
    #[inline(never)]
    pub fn on_item(&mut self, item: &StreamItem<'_>) {
        let n = match item {
            StreamItem::Content { text, .. } | StreamItem::Refusal { text, .. } => {
                self.content = true;
                text.decoded_len()
            }
            StreamItem::Reasoning { text, .. } => text.decoded_len(),
            StreamItem::ToolCall(t) => {
                self.content = true;
                t.arguments.decoded_len().max(1)
            }
            _ => 0,
        };
        self.delivered = self.delivered.saturating_add(n as u64);
    }

    /// Until when the adapter's next wait may last, and which deadline that is.
    #[inline(never)]
    pub fn deadline(&self) -> (Instant, Phase) {
        let p = &self.plan;
        let (at, phase) = if !self.head {
            (self.sent + p.first_byte, Phase::FirstByte)
        } else if self.stream && !self.content {
            (self.sent + p.first_token, Phase::FirstToken)
        } else {
            (self.read_from + p.idle, Phase::Idle)
        };
        let total = p.deadline_after(self.delivered);
        if total < at {
            (total, Phase::Total)
        } else {
            (at, phase)
        }
    }

    /// What the attempt is waiting for — the phase a timeout fails it in, also when the total
    /// deadline cut the wait short: the head, the first content (a stream), or the next bytes.
    pub fn waiting(&self) -> call::Phase {
        if !self.head {
            call::Phase::FirstByte
        } else if self.stream && !self.content {
            call::Phase::FirstToken
        } else {
            call::Phase::Idle
        }
    }

    /// The attempt's plan.
    pub fn plan(&self) -> &AttemptPlan {
        &self.plan
    }

    /// Bytes of answer delivered so far (reasoning included).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Content (text, a refusal or a tool call; not reasoning) has arrived.
    pub fn got_content(&self) -> bool {
        self.content
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ToolCallDelta;
    use crate::json::JsonStr;
    use crate::time::Duration;

    /// Sent at 1 s: head by 3 s, first token by 11 s, idle 4 s, total at 60 s growing 1 s per
    /// KiB up to 62.5 s.
    fn plan() -> AttemptPlan {
        AttemptPlan {
            number: 1,
            retry_count: 0,
            endpoint: 0,
            connect_by: Instant::from_millis(2_000),
            first_byte: Duration::from_secs(2),
            first_token: Duration::from_secs(10),
            idle: Duration::from_secs(4),
            deadline: Instant::from_millis(60_000),
            total_per_kib: Duration::from_secs(1),
            latest: Instant::from_millis(62_500),
            resume_after: None,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn text(s: &str) -> JsonStr<'_> {
        JsonStr::plain(s)
    }

    #[test]
    fn each_phase_in_turn() {
        let mut t = AttemptTimer::new(&plan(), at(1_000));
        assert_eq!(t.deadline(), (at(3_000), Phase::FirstByte));
        assert_eq!(t.waiting(), call::Phase::FirstByte);
        // Reads before the head do not move the first-byte deadline.
        t.on_read(at(2_500));
        assert_eq!(t.deadline(), (at(3_000), Phase::FirstByte));
        t.on_head(true);
        t.on_read(at(2_600));
        assert_eq!(t.deadline(), (at(11_000), Phase::FirstToken));
        assert_eq!(t.waiting(), call::Phase::FirstToken);
        t.on_item(&StreamItem::Role {
            choice: 0,
            role: text("assistant"),
        });
        assert_eq!(
            t.deadline(),
            (at(11_000), Phase::FirstToken),
            "a role is not content"
        );
        t.on_item(&StreamItem::Content {
            choice: 0,
            text: text("Hi"),
        });
        assert!(t.got_content());
        assert_eq!(
            t.deadline(),
            (at(6_600), Phase::Idle),
            "idle from the read's start"
        );
        assert_eq!(t.waiting(), call::Phase::Idle);
        t.on_read(at(9_000));
        assert_eq!(t.deadline(), (at(13_000), Phase::Idle));
        assert_eq!(t.delivered(), 2);
    }

    #[test]
    fn reasoning_is_delivered_but_not_the_first_content() {
        let mut t = AttemptTimer::new(&plan(), at(1_000));
        t.on_head(true);
        t.on_read(at(1_500));
        t.on_item(&StreamItem::Reasoning {
            choice: 0,
            text: text("Let me think"),
        });
        t.on_read(at(8_000));
        assert!(!t.got_content());
        assert_eq!(t.delivered(), 12);
        assert_eq!(t.deadline(), (at(11_000), Phase::FirstToken));
        // A refusal is content; so is a tool call, even with empty arguments (1 byte).
        let mut r = t;
        r.on_item(&StreamItem::Refusal {
            choice: 0,
            text: text("No."),
        });
        assert_eq!((r.got_content(), r.delivered()), (true, 15));
        assert_eq!(r.deadline(), (at(12_000), Phase::Idle));
        t.on_item(&StreamItem::ToolCall(ToolCallDelta {
            choice: 0,
            index: 0,
            id: Some(text("call_1")),
            name: Some(text("f")),
            arguments: text(""),
        }));
        assert_eq!((t.got_content(), t.delivered()), (true, 13));
    }

    #[test]
    fn a_body_collected_whole_is_bounded_by_idle_from_the_start() {
        let mut t = AttemptTimer::new(&plan(), at(1_000));
        t.on_head(false);
        t.on_read(at(1_200));
        assert_eq!(t.deadline(), (at(5_200), Phase::Idle));
        assert_eq!(t.waiting(), call::Phase::Idle);
    }

    #[test]
    fn the_total_deadline_caps_every_phase_and_grows_with_what_was_delivered() {
        // Sent at 59 s: head by 61 s, but the total deadline is at 60 s.
        let mut t = AttemptTimer::new(&plan(), at(59_000));
        assert_eq!(t.deadline(), (at(60_000), Phase::Total));
        assert_eq!(
            t.waiting(),
            call::Phase::FirstByte,
            "a cut wait keeps its phase"
        );
        t.on_head(true);
        assert_eq!(t.deadline(), (at(60_000), Phase::Total));
        assert_eq!(t.waiting(), call::Phase::FirstToken);
        // 1 KiB of reasoning: the deadline moves 1 s later, still before the first token's.
        let kib = "x".repeat(1024);
        t.on_item(&StreamItem::Reasoning {
            choice: 0,
            text: text(&kib),
        });
        assert_eq!(t.deadline(), (at(61_000), Phase::Total));
        t.on_item(&StreamItem::Content {
            choice: 0,
            text: text(&kib),
        });
        t.on_read(at(60_500));
        assert_eq!(t.deadline(), (at(62_000), Phase::Total));
        // Never past `latest`: 62.5 s however much more arrives.
        for _ in 0..10 {
            t.on_item(&StreamItem::Content {
                choice: 0,
                text: text(&kib),
            });
        }
        assert_eq!(t.deadline(), (at(62_500), Phase::Total));
        // A deadline equal to the total is named by its phase.
        t.on_read(at(58_500));
        assert_eq!(t.deadline(), (at(62_500), Phase::Idle));
        t.on_read(at(58_499));
        assert_eq!(t.deadline(), (at(62_499), Phase::Idle));
    }
}
