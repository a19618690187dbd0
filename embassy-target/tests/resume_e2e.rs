//! Exact resume over OpenAI's Responses API, end to end over std sockets: the real client
//! against the mock server on 127.0.0.1, each case of `resume/mod.rs` (a reset, a stall, two
//! drops, a refused resume, a drop after `response.created`, a drop before any event,
//! `response.failed`, `response.incomplete`, background mode off): one POST per call (two when
//! nothing identifying arrived), the whole answer exactly once.

mod resume;

use steadyllm_embassy::host::HostStack;
use steadyllm_tests::mock::{Fault, MockServer};

#[test]
fn every_resume_case_over_std_sockets() {
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock server");
    let url = server.base_url();
    let answer = server.answer();
    let stack = HostStack::new();
    let mut passed = 0;
    for case in resume::cases() {
        server.reset();
        server.set_script(case.script.clone());
        let run = async_io::block_on(Box::pin(resume::call(&stack, &stack, &url, &case)));
        resume::check(&case, &run, &server.requests(), &answer);
        passed += 1;
    }
    eprintln!("resume e2e: {passed} cases passed over std sockets");
}

#[test]
fn a_long_answer_whose_summaries_outgrow_the_event_buffer() {
    // A 9 KB answer: `response.output_text.done`, `.content_part.done`, `.output_item.done`
    // and `response.completed` each repeat it whole, past the client's 4 KiB event buffer.
    // They are dropped (the deltas carried it all) and the call completes: in one POST, and
    // resumed once after a reset.
    let server = MockServer::start_background(([127, 0, 0, 1], 0).into()).expect("mock server");
    let long: String = (0..1500).map(|i| format!("w{i:04} ")).collect();
    let stack = HostStack::new();
    let whole = resume::Case {
        name: "a long answer",
        script: vec![Fault::Ok],
        expect: resume::Expect::Answer {
            posts: 1,
            resumes: vec![],
        },
        ..resume::cases().remove(0)
    };
    let reset = resume::Case {
        name: "a long answer, reset mid-answer",
        ..resume::cases().remove(0)
    };
    for case in [whole, reset] {
        server.reset();
        server.set_answer(long.clone());
        server.set_script(case.script.clone());
        let run = async_io::block_on(Box::pin(resume::call(
            &stack,
            &stack,
            &server.base_url(),
            &case,
        )));
        resume::check(&case, &run, &server.requests(), &long);
    }
}
