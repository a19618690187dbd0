//! The `conformance` CLI, end to end: the real binary, stdin in, JSON lines out.

use std::io::Write;
use std::process::{Command, Stdio};

struct Run {
    lines: Vec<String>,
    stderr: String,
    ok: bool,
}

fn run(args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn conformance");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    for l in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON");
    }
    Run {
        lines: stdout.lines().map(str::to_string).collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// Every chunk size gives the same output as feeding the input whole.
fn run_all_chunks(args: &[&str], input: &[u8]) -> Vec<String> {
    let whole = run(args, input);
    assert!(whole.ok, "{}", whole.stderr);
    for n in [1, 2, 3, 7, 64, 1460] {
        let n = n.to_string();
        let mut a = args.to_vec();
        a.extend(["--chunk", &n]);
        assert_eq!(run(&a, input).lines, whole.lines, "--chunk {n}");
    }
    whole.lines
}

#[test]
fn sse_mode() {
    let lines = run_all_chunks(
        &["sse"],
        b"\xEF\xBB\xBF: comment\nretry: 3000\nevent: add\nid: 7\ndata: a\r\ndata:  b\r\n\r\ndata: c\rid\x00: x\r\rretry: 1x\n\ndata: unterminated",
    );
    assert_eq!(
        lines,
        [
            r#"{"retry":3000}"#,
            r#"{"type":"add","data":"a\n b","id":"7"}"#,
            r#"{"type":"message","data":"c","id":"7"}"#,
        ]
    );
    let lines = run(&["sse"], b"data: \xFF\xFE\n\nid: \xC3\ndata: x\n\n").lines;
    assert_eq!(
        lines,
        [
            r#"{"type":"message","data":"\ufffd\ufffd","id":""}"#.replace("\\ufffd", "\u{fffd}"),
            "{\"type\":\"message\",\"data\":\"x\",\"id\":\"\u{fffd}\"}".to_string()
        ]
    );
}

#[test]
fn sse_mode_handles_64_kib_lines_and_events() {
    let big = "x".repeat(64 * 1024);
    let input = format!("id: {big}\ndata: {big}\ndata: {big}\n\n");
    let lines = run(&["sse", "--chunk", "1000"], input.as_bytes());
    assert!(lines.ok, "{}", lines.stderr);
    let v: serde_json::Value = serde_json::from_str(&lines.lines[0]).expect("json");
    assert_eq!(v["data"].as_str().map(str::len), Some(2 * 64 * 1024 + 1));
    assert_eq!(v["id"].as_str().map(str::len), Some(64 * 1024));
}

#[test]
fn decode_openai() {
    let lines = run_all_chunks(&["decode"], include_bytes!("../fixtures/openai_stream.sse"));
    assert_eq!(
        lines,
        [
            r#"{"kind":"role","choice":0,"role":"assistant"}"#,
            r#"{"kind":"content","choice":0,"text":"Hello, \"wörld\" 🦀\n"}"#,
            r#"{"kind":"reasoning","choice":0,"text":"thinking…"}"#,
            r#"{"kind":"tool_call","choice":0,"index":0,"id":"call_9","name":"lookup","arguments":""}"#,
            r#"{"kind":"tool_call","choice":0,"index":0,"id":null,"name":null,"arguments":"{\"q\":\"x\"}"}"#,
            r#"{"kind":"finish","choice":0,"reason":"tool_calls"}"#,
            r#"{"kind":"usage","prompt_tokens":9,"completion_tokens":12,"total_tokens":21}"#,
            r#"{"kind":"done"}"#,
        ]
    );
}

#[test]
fn decode_anthropic() {
    let lines = run_all_chunks(
        &["decode", "--dialect", "anthropic"],
        include_bytes!("../fixtures/anthropic_stream.sse"),
    );
    assert_eq!(
        lines,
        [
            r#"{"kind":"role","choice":0,"role":"assistant"}"#,
            r#"{"kind":"content","choice":0,"text":"Hi"}"#,
            r#"{"kind":"tool_call","choice":0,"index":1,"id":"toolu_01","name":"lookup","arguments":""}"#,
            r#"{"kind":"tool_call","choice":0,"index":1,"id":null,"name":null,"arguments":"{\"q\": 1}"}"#,
            r#"{"kind":"finish","choice":0,"reason":"tool_use"}"#,
            r#"{"kind":"usage","prompt_tokens":10,"completion_tokens":7,"total_tokens":17}"#,
            r#"{"kind":"done"}"#,
        ]
    );
}

#[test]
fn decode_responses() {
    let lines = run_all_chunks(
        &["decode", "--dialect", "responses"],
        include_bytes!("../fixtures/responses_stream.sse"),
    );
    assert_eq!(
        lines,
        [
            r#"{"kind":"created","id":"resp_01"}"#,
            r#"{"kind":"reasoning","choice":0,"text":"Plan."}"#,
            r#"{"kind":"role","choice":0,"role":"assistant"}"#,
            r#"{"kind":"content","choice":0,"text":"Hi é"}"#,
            r#"{"kind":"tool_call","choice":0,"index":2,"id":"call_01","name":"lookup","arguments":""}"#,
            r#"{"kind":"tool_call","choice":0,"index":2,"id":null,"name":null,"arguments":"{\"q\": 1}"}"#,
            r#"{"kind":"finish","choice":0,"reason":"completed"}"#,
            r#"{"kind":"usage","prompt_tokens":10,"completion_tokens":7,"total_tokens":17}"#,
            r#"{"kind":"done"}"#,
        ]
    );
    // `response.failed` and `response.incomplete` end the stream with their own lines.
    let failed = run_all_chunks(
        &["decode", "--dialect", "responses"],
        b"event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_02\",\"object\":\"response\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed\"},\"output\":[],\"usage\":null}}\n\n",
    );
    assert_eq!(
        failed,
        [
            r#"{"kind":"created","id":"resp_02"}"#,
            r#"{"kind":"error","message":"The model failed","type":null,"code":"server_error"}"#,
            r#"{"kind":"failed"}"#,
        ]
    );
    let incomplete = run_all_chunks(
        &["decode", "--dialect", "responses"],
        b"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hel\"}\n\nevent: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"sequence_number\":5,\"response\":{\"id\":\"resp_03\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":{\"input_tokens\":5,\"output_tokens\":16,\"total_tokens\":21}}}\n\n",
    );
    assert_eq!(
        incomplete,
        [
            r#"{"kind":"content","choice":0,"text":"Hel"}"#,
            r#"{"kind":"created","id":"resp_03"}"#,
            r#"{"kind":"finish","choice":0,"reason":"max_output_tokens"}"#,
            r#"{"kind":"usage","prompt_tokens":5,"completion_tokens":16,"total_tokens":21}"#,
            r#"{"kind":"incomplete"}"#,
        ]
    );
}

#[test]
fn decode_truncated_and_errors() {
    let lines = run_all_chunks(
        &["decode"],
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":503}}\n\n",
    );
    assert_eq!(
        lines,
        [
            r#"{"kind":"content","choice":0,"text":"par"}"#,
            r#"{"kind":"error","message":"overloaded","type":"server_error","code":"503"}"#,
            r#"{"kind":"truncated"}"#,
        ]
    );
    // A malformed event is reported on stderr with a failing status; the rest still decodes.
    let r = run(&["decode"], b"data: {not json\n\ndata: [DONE]\n\n");
    assert!(!r.ok);
    assert!(r.stderr.contains("malformed event"), "{}", r.stderr);
    assert_eq!(r.lines, [r#"{"kind":"done"}"#]);
}

#[test]
fn error_mode() {
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            r#"{"kind":"error","message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}"#,
        ),
        (
            br#"{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}"#,
            r#"{"kind":"error","message":"bad","type":"BadRequestError","code":"400"}"#,
        ),
        (
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            r#"{"kind":"error","message":"Overloaded","type":"overloaded_error","code":null}"#,
        ),
        (b"<html>502 Bad Gateway</html>\n", r#"{"kind":"error","message":"<html>502 Bad Gateway</html>","type":null,"code":null}"#),
    ];
    for (body, want) in cases {
        let r = run(&["error"], body);
        assert!(r.ok);
        assert_eq!(r.lines, [want]);
    }
}

#[test]
fn bad_arguments_fail_with_usage() {
    let r = run(&["bogus"], b"");
    assert!(!r.ok);
    assert!(r.stderr.contains("usage"));
    let r = run(&["sse", "--chunk", "0"], b"");
    assert!(!r.ok);
    let r = run(&["decode", "--dialect", "bogus"], b"");
    assert!(!r.ok);
    assert!(r.stderr.contains("responses"), "{}", r.stderr);
}

fn json_lines(r: &Run) -> Vec<serde_json::Value> {
    r.lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

#[test]
fn request_mode_prints_the_head_and_body_the_core_sends() {
    let input = concat!(
        r#"{"options":{"model":"gpt-4o","endpoints":[{"baseUrl":"https://h/v1","apiKey":"sk-secret-1","query":{"api-version":"2024-10-21","a b":"~*"},"headers":{"X-Trace":"t"}}]},"#,
        r#""request":{"messages":[{"role":"user","content":"hi"}],"temperature":0.5,"reasoningEffort":"xhigh"}}"#,
        "\n\n",
        r#"{"options":{"model":"claude","endpoints":[{"baseUrl":"https://h","apiKey":"sk-secret-1","dialect":"anthropic"}]},"#,
        r#""request":{"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"reasoningEffort":"xhigh"}}"#,
        "\n",
    );
    let r = run(&["request"], input.as_bytes());
    assert!(r.ok, "{}", r.stderr);
    assert!(
        !r.lines.iter().any(|l| l.contains("sk-secret-1")),
        "the key is never printed"
    );
    let v = json_lines(&r);
    assert_eq!(v.len(), 2, "one answer per case, blank lines skipped");
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["method"], "POST");
    assert_eq!(
        v[0]["path"],
        "/v1/chat/completions?api-version=2024-10-21&a%20b=~%2A"
    );
    let headers = v[0]["headers"].as_array().expect("pairs");
    assert!(headers.contains(&serde_json::json!(["authorization", "Bearer <api-key>"])));
    assert!(headers.contains(&serde_json::json!(["x-trace", "t"])));
    assert_eq!(v[0]["body"]["temperature"], 0.5);
    // A reasoning effort the core has no variant for goes as an extra member, to OpenAI only.
    assert_eq!(v[0]["body"]["reasoning_effort"], "xhigh");
    assert_eq!(v[1]["path"], "/v1/messages");
    assert_eq!(v[1]["body"]["system"][0]["text"], "s");
    assert_eq!(v[1]["body"].get("reasoning_effort"), None);
    let headers = v[1]["headers"].as_array().expect("pairs");
    assert!(headers.contains(&serde_json::json!(["x-api-key", "<api-key>"])));
}

#[test]
fn request_mode_names_the_refusals() {
    let case = |ep: &str, req: &str| {
        format!(
            r#"{{"options":{{"model":"m","endpoints":[{{"baseUrl":"https://h/v1"{ep}}}]}},"request":{{"messages":[{{"role":"user","content":"hi"}}]{req}}}}}"#
        )
    };
    let cases = [
        (case(r#","apiKey":"a\tb""#, ""), "api_key", false),
        (case(r#","headers":{"host":"x"}"#, ""), "header", false),
        (case("", r#","temperature":1e12"#), "sampling", false),
        (case("", r#","maxTokens":0"#), "max_tokens", false),
        (case("", r#","maxTokens":4294967296"#), "max_tokens", true),
        (case("", r#","tools":[{"name":"a.b"}]"#), "tool_name", false),
        (case("", r#","extraBody":{"model":1}"#), "extra_body", false),
        (case("", r#","seed":1.5"#), "seed", true),
        (
            case(
                r#","dialect":"anthropic""#,
                r#","responseFormat":{"type":"json_object"}"#,
            ),
            "json_object",
            false,
        ),
        ("not json".to_string(), "description_not_json", false),
    ];
    let input: String = cases.iter().map(|(c, _, _)| format!("{c}\n")).collect();
    let r = run(&["request"], input.as_bytes());
    assert!(r.ok, "{}", r.stderr);
    for (v, (c, class, unrepresentable)) in json_lines(&r).iter().zip(&cases) {
        assert_eq!(v["ok"], false, "{c}");
        assert_eq!(v["error"], *class, "{c}");
        assert_eq!(v.get("unrepresentable").is_some(), *unrepresentable, "{c}");
    }
}

#[test]
fn error_object_mode_reads_what_api_error_parse_reads() {
    let bodies = [
        r#"{"error":{"message":"m","type":"t","code":429,"param":null}}"#,
        r#"{"error":{"message":{"x":1},"code":"insufficient_quota"}}"#,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        r#"{"error":"plain"}"#,
        "<html>502</html>",
        r#"{"ok":true}"#,
    ];
    let input: String = bodies
        .iter()
        .map(|b| format!("{}\n", serde_json::Value::from(*b)))
        .collect();
    let r = run(&["error-object"], input.as_bytes());
    assert!(r.ok, "{}", r.stderr);
    let want = [
        serde_json::json!({"message": "m", "type": "t", "code": "429"}),
        serde_json::json!({"message": "", "code": "insufficient_quota"}),
        serde_json::json!({"message": "Overloaded", "type": "overloaded_error"}),
        serde_json::json!({"message": "plain"}),
        serde_json::Value::Null,
        serde_json::Value::Null,
    ];
    assert_eq!(json_lines(&r), want);
}
