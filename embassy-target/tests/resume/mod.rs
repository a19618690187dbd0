//! The resume cases of issue #14, shared by `resume_e2e` (std sockets) and `netns_e2e`
//! (embassy-net on a TAP): a Responses call in background mode against the mock server, broken
//! as each case says; the checks count the recorded POSTs and GETs and compare the text with
//! the mock's answer (all of it, exactly once).

use embedded_nal_async::{Dns, TcpConnect};
use steadyllm_embassy::steadyllm_core::call::{
    CallConfig, CallError, CallEvent, Failure, Jitter, StreamFault, Summary, Timeouts,
};
use steadyllm_embassy::steadyllm_core::decode::{Dialect, StreamItem};
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::steadyllm_core::time::Duration;
use steadyllm_embassy::{Buffers, ChatError, Client, Event, SharedState};
use steadyllm_tests::mock::{Fault, RecordedRequest};

/// What a case must end in.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The whole answer, once, after `posts` POSTs and one GET per resume, each resume after
    /// the event listed.
    Answer { posts: usize, resumes: Vec<u32> },
    /// The whole answer after a restart (`DiscardDelivered`): `posts` POSTs, no GET.
    Restarted { posts: usize },
    /// The call fails with this last failure after one POST and no GET, with part of the
    /// answer (a prefix) delivered.
    Fails(Failure),
}

/// One case: the mock's script, the request's options, the expected end.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub script: Vec<Fault>,
    /// `ChatRequest::background` (default true).
    pub background: bool,
    /// `CallConfig::restart_on_partial`.
    pub restart: bool,
    /// `ChatRequest::max_tokens`.
    pub max_tokens: Option<u32>,
    pub expect: Expect,
}

fn case(name: &'static str, script: Vec<Fault>, expect: Expect) -> Case {
    Case {
        name,
        script,
        background: true,
        restart: false,
        max_tokens: None,
        expect,
    }
}

/// The mock's Responses stream: event 0 `response.created`, 1 `in_progress`, 2 the message
/// item, 3 its content part, 4… one text delta each. `reset_after` n: events 0..n-1 arrive.
pub fn cases() -> Vec<Case> {
    let answer = |posts: usize, resumes: &[u32]| Expect::Answer {
        posts,
        resumes: resumes.to_vec(),
    };
    vec![
        case(
            "reset mid-answer",
            vec![Fault::ResetAfter { events: 6 }, Fault::Ok],
            answer(1, &[5]),
        ),
        case(
            "a clean end before response.completed",
            vec![Fault::TruncateAfter { events: 6 }, Fault::Ok],
            answer(1, &[5]),
        ),
        case(
            "stall caught by the idle timeout",
            vec![
                Fault::StallAfter {
                    events: 6,
                    ms: None,
                },
                Fault::Ok,
            ],
            answer(1, &[5]),
        ),
        case(
            "two drops in one answer",
            vec![
                Fault::ResetAfter { events: 6 },
                Fault::ResetAfter { events: 3 },
                Fault::Ok,
            ],
            answer(1, &[5, 8]),
        ),
        case(
            "a resume refused once with a 503",
            vec![
                Fault::ResetAfter { events: 6 },
                Fault::status(503),
                Fault::Ok,
            ],
            answer(1, &[5, 5]),
        ),
        case(
            "a drop after response.created, before any text",
            vec![Fault::ResetAfter { events: 1 }, Fault::Ok],
            answer(1, &[0]),
        ),
        case(
            "a drop before any event posts again",
            vec![Fault::ResetAfter { events: 0 }, Fault::Ok],
            answer(2, &[]),
        ),
        case(
            "response.failed ends the call",
            vec![Fault::ResponseFailed { events: 6 }, Fault::Ok],
            Expect::Fails(Failure::AnswerFailed),
        ),
        Case {
            max_tokens: Some(3),
            ..case(
                "response.incomplete ends the call",
                vec![Fault::Ok, Fault::Ok],
                Expect::Fails(Failure::AnswerIncomplete),
            )
        },
        Case {
            background: false,
            ..case(
                "without background mode a drop keeps the partial text",
                vec![Fault::ResetAfter { events: 6 }, Fault::Ok],
                Expect::Fails(Failure::Stream(StreamFault::Network)),
            )
        },
        Case {
            background: false,
            restart: true,
            ..case(
                "without background mode a restart discards and posts again",
                vec![Fault::ResetAfter { events: 6 }, Fault::Ok],
                Expect::Restarted { posts: 2 },
            )
        },
    ]
}

/// Small timeouts: the stall case waits one idle timeout.
pub fn config(restart: bool) -> CallConfig {
    CallConfig {
        timeouts: Some(Timeouts {
            connect: Duration::from_millis(2000),
            first_byte: Duration::from_millis(800),
            first_token: Duration::from_millis(2000),
            idle: Duration::from_millis(500),
            total: Duration::from_secs(15),
            total_per_kib: Duration::from_millis(0),
        }),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(200),
        jitter: Jitter::Full,
        restart_on_partial: restart,
        ..CallConfig::default()
    }
}

/// How a call went, as its callback saw it.
#[derive(Debug)]
pub struct Run {
    pub result: Result<Summary, ChatError>,
    pub text: String,
    pub events: Vec<CallEvent>,
    /// `StreamItem::Created` ids, in order.
    pub ids: Vec<String>,
}

/// One Responses call to `url` (one endpoint) as `case` says.
pub async fn call<T: TcpConnect, D: Dns>(tcp: &T, dns: &D, url: &str, case: &Case) -> Run {
    let endpoints = [Endpoint::new(url, Some("sk-test"))
        .expect("endpoint")
        .with_dialect(Dialect::Responses)];
    let cfg = config(case.restart);
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(tcp, dns, &endpoints, &shared, cfg, 5);
    let messages = [Message::user("Why is the sky blue?")];
    let mut request = ChatRequest::new("gpt-4o-mini", &messages);
    request.background = case.background;
    request.max_tokens = case.max_tokens;
    let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let (mut text, mut events, mut ids) = (String::new(), Vec::new(), Vec::new());
    let result = client
        .chat(&request, &mut bufs, |e| match e {
            Event::Item(StreamItem::Content { text: t, .. }) => text.push_str(&t.to_string()),
            Event::Item(StreamItem::Created { id }) => ids.push(id.to_string()),
            Event::Engine(e) => {
                if let CallEvent::DiscardDelivered { .. } = e {
                    text.clear();
                }
                events.push(e);
            }
            _ => {}
        })
        .await;
    Run {
        result,
        text,
        events,
        ids,
    }
}

/// The failure a failed call names last.
fn last_failure(e: &ChatError) -> Option<Failure> {
    match e {
        ChatError::Call(
            CallError::PartialOutput { last, .. }
            | CallError::NotRetryable { last }
            | CallError::RetriesExhausted { last, .. }
            | CallError::BudgetExhausted { last },
        ) => Some(*last),
        ChatError::Call(CallError::DeadlineExceeded { last, .. }) => *last,
        _ => None,
    }
}

/// Checks `run` and the requests the mock recorded against the case.
pub fn check(case: &Case, run: &Run, requests: &[RecordedRequest], answer: &str) {
    let name = case.name;
    let posts: Vec<_> = requests.iter().filter(|q| q.method == "POST").collect();
    let gets: Vec<_> = requests.iter().filter(|q| q.method == "GET").collect();
    assert_eq!(
        posts.len() + gets.len(),
        requests.len(),
        "{name}: {requests:?}"
    );
    for q in &posts {
        assert_eq!(q.path, "/v1/responses", "{name}");
        let body = q.body_json().expect("json body");
        assert_eq!(body["stream"], true, "{name}");
        let bg = if case.background {
            serde_json::Value::Bool(true)
        } else {
            serde_json::Value::Null
        };
        assert_eq!(body["background"], bg, "{name}");
        assert_eq!(body["store"], bg, "{name}");
    }
    let resumes: Vec<u32> = run
        .events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Resuming { after } => Some(*after),
            _ => None,
        })
        .collect();
    match &case.expect {
        Expect::Answer {
            posts: n,
            resumes: want,
        } => {
            let summary = run
                .result
                .unwrap_or_else(|e| panic!("{name}: {e} ({run:?})"));
            assert_eq!(run.text, answer, "{name}: the whole answer, once");
            assert_eq!(posts.len(), *n, "{name}: POSTs");
            assert_eq!(&resumes, want, "{name}: resumes");
            assert_eq!(gets.len(), want.len(), "{name}: one GET per resume");
            assert_eq!(summary.delivered_bytes, answer.len() as u64, "{name}");
            // The id comes once: a resume does not pass it on again.
            assert_eq!(run.ids.len(), 1, "{name}: one id, not replayed");
            let id = run.ids.last().expect("an id");
            for (q, after) in gets.iter().zip(want) {
                assert_eq!(
                    q.path,
                    format!("/v1/responses/{id}?stream=true&starting_after={after}"),
                    "{name}"
                );
                assert_eq!(q.header("authorization"), Some("Bearer sk-test"), "{name}");
                assert!(q.body.is_empty(), "{name}: a resume has no body");
            }
        }
        Expect::Restarted { posts: n } => {
            assert!(run.result.is_ok(), "{name}: {run:?}");
            assert_eq!(run.text, answer, "{name}: the answer after the restart");
            assert_eq!((posts.len(), gets.len()), (*n, 0), "{name}");
            assert!(resumes.is_empty(), "{name}");
            assert!(
                run.events
                    .iter()
                    .any(|e| matches!(e, CallEvent::DiscardDelivered { .. })),
                "{name}"
            );
        }
        Expect::Fails(f) => {
            let e = run.result.expect_err(name);
            assert_eq!(last_failure(&e), Some(*f), "{name}: {e:?}");
            assert_eq!(
                (posts.len(), gets.len()),
                (1, 0),
                "{name}: one POST, no resume"
            );
            assert!(resumes.is_empty(), "{name}");
            assert!(
                !run.text.is_empty() && answer.starts_with(&run.text),
                "{name}: {:?}",
                run.text
            );
        }
    }
}
