//! `conformance MODE [--chunk N] [--dialect openai|anthropic|responses]`: reads stdin to its end, feeds
//! it to steadyllm-core in pieces of N bytes (whole without `--chunk`) and prints JSON lines.
//! `request` and `error-object` take one case per input line and answer each with one line.
//! See `steadyllm_tests::conformance` for the contract.

use std::io::{Read, Write};
use std::process::ExitCode;

use steadyllm_core::decode::Dialect;
use steadyllm_tests::conformance::{run_decode, run_error, run_error_object, run_request, run_sse};

const USAGE: &str = "usage: conformance sse|decode|error|request|error-object [--chunk N] \
                     [--dialect openai|anthropic|responses]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut mode = None;
    let mut chunk = None;
    let mut dialect = Dialect::OpenAi;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chunk" => match args.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if n > 0 => chunk = Some(n),
                _ => return fail("--chunk needs a positive integer"),
            },
            "--dialect" => match args.next().as_deref() {
                Some("openai") => dialect = Dialect::OpenAi,
                Some("anthropic") => dialect = Dialect::Anthropic,
                Some("responses") => dialect = Dialect::Responses,
                _ => return fail("--dialect is openai, anthropic or responses"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            m if mode.is_none() && !m.starts_with('-') => mode = Some(m.to_string()),
            other => return fail(&format!("unexpected argument {other:?}")),
        }
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(&format!("reading stdin: {e}"));
    }
    let out = match mode.as_deref().unwrap_or("decode") {
        "sse" => run_sse(&input, chunk),
        "decode" => run_decode(&input, chunk, dialect),
        "error" => run_error(&input),
        // One case per line, one answer per line.
        "request" | "error-object" => {
            let each = if mode.as_deref() == Some("request") {
                run_request
            } else {
                run_error_object
            };
            let text = String::from_utf8_lossy(&input);
            steadyllm_tests::conformance::Output {
                lines: text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(each)
                    .collect(),
                problems: Vec::new(),
            }
        }
        m => return fail(&format!("unknown mode {m:?}")),
    };
    let mut stdout = std::io::stdout().lock();
    for l in &out.lines {
        if writeln!(stdout, "{l}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    for p in &out.problems {
        eprintln!("conformance: {p}");
    }
    if out.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("conformance: {msg}\n{USAGE}");
    ExitCode::from(2)
}
