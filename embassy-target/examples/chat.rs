//! `chat`: stream an answer token by token over the steadyllm Embassy adapter.
//!
//! ```text
//! cargo run --release -p steadyllm-embassy --example chat -- "Why is the sky blue?"
//! cargo run --release -p steadyllm-embassy --example chat -- --chaos "Why is the sky blue?"
//! cargo run --release -p steadyllm-embassy --example chat -- --base-url https://api.openai.com/v1 --model gpt-4o-mini "Hi"
//! ```
//!
//! With no `--base-url` it starts the bundled mock server in-process on 127.0.0.1 and says so.
//! The key comes from `--api-key`, `STEADYLLM_API_KEY` or `OPENAI_API_KEY`. `--json` prints the
//! decoded items as JSON lines (the `conformance decode` format) and a final
//! `{"kind":"outcome",...}` line. The exit status is 0 only for a complete answer.

use std::io::Write;
use std::process::ExitCode;

use embassy_time::Duration;
use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::decode::StreamItem;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, Event, Timeouts};
use steadyllm_tests::conformance::{error_line, item_line};
use steadyllm_tests::mock::{MockServer, Script};

const USAGE: &str = "usage: chat [--base-url URL]... [--api-key KEY] [--model M] [--max-tokens N] \
[--connect-timeout-ms N] [--first-byte-timeout-ms N] [--idle-timeout-ms N] [--deadline-ms N] \
[--max-retries N] [--chaos] [--json] PROMPT";

struct Args {
    base_urls: Vec<String>,
    api_key: Option<String>,
    model: String,
    max_tokens: Option<u32>,
    timeouts: Timeouts,
    max_retries: Option<u32>,
    chaos: bool,
    json: bool,
    prompt: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        base_urls: Vec::new(),
        api_key: std::env::var("STEADYLLM_API_KEY")
            .or_else(|_| std::env::var("OPENAI_API_KEY"))
            .ok(),
        model: "gpt-4o-mini".into(),
        max_tokens: None,
        timeouts: Timeouts::default(),
        max_retries: None,
        chaos: false,
        json: false,
        prompt: String::new(),
    };
    let mut it = std::env::args().skip(1);
    let ms = |v: Option<String>, name: &str| -> Result<Duration, String> {
        v.and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{name} needs a number of milliseconds"))
    };
    let mut prompt = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--base-url" => a.base_urls.push(it.next().ok_or("--base-url needs a URL")?),
            "--api-key" => a.api_key = Some(it.next().ok_or("--api-key needs a key")?),
            "--model" => a.model = it.next().ok_or("--model needs a name")?,
            "--max-tokens" => {
                a.max_tokens = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--max-tokens needs a number")?,
                )
            }
            "--connect-timeout-ms" => a.timeouts.connect = ms(it.next(), &arg)?,
            "--first-byte-timeout-ms" => a.timeouts.first_byte = ms(it.next(), &arg)?,
            "--idle-timeout-ms" => a.timeouts.idle = ms(it.next(), &arg)?,
            "--deadline-ms" => a.timeouts.total = ms(it.next(), &arg)?,
            "--max-retries" => {
                a.max_retries = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--max-retries needs a number")?,
                )
            }
            "--chaos" => a.chaos = true,
            "--json" => a.json = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => prompt.push(arg),
        }
    }
    a.prompt = prompt.join(" ");
    if a.prompt.is_empty() {
        a.prompt = "Why is the sky blue?".into();
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // No endpoint: the bundled mock server, in-process, on loopback.
    let mock = if args.base_urls.is_empty() {
        let server = match MockServer::start_background(([127, 0, 0, 1], 0).into()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("chat: cannot start the mock server: {e}");
                return ExitCode::FAILURE;
            }
        };
        if args.chaos {
            server.set_script(Script::chaos());
        }
        eprintln!(
            "chat: no --base-url given: using the bundled mock server at {}{}",
            server.base_url(),
            if args.chaos {
                " with --chaos faults"
            } else {
                ""
            }
        );
        Some(server)
    } else {
        None
    };
    let urls: Vec<String> = match &mock {
        Some(m) => vec![m.base_url()],
        None => args.base_urls.clone(),
    };
    let key = if mock.is_some() {
        None
    } else {
        args.api_key.as_deref()
    };
    let endpoint = match Endpoint::new(&urls[0], key) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("chat: {}: {e}", urls[0]);
            return ExitCode::from(2);
        }
    };
    let _ = args.max_retries;
    let stack = HostStack::new();
    let mut client: Client<'_, _, _> =
        Client::new(&stack, &stack, endpoint).with_timeouts(args.timeouts);
    let messages = [Message::user(&args.prompt)];
    let mut request = ChatRequest::new(&args.model, &messages);
    request.max_tokens = args.max_tokens;
    let mut body = vec![0u8; 64 * 1024];
    let (mut head, mut response) = ([0u8; 1024], [0u8; 8192]);
    let mut bufs = Buffers {
        body: &mut body,
        head: &mut head,
        response: &mut response,
    };
    let json = args.json;
    if json {
        println!(
            "{{\"kind\":\"attempt\",\"n\":1,\"endpoint\":{}}}",
            serde_json::json!(urls[0])
        );
    }
    let mut out = std::io::stdout();
    let result = async_io::block_on(client.chat(&request, &mut bufs, |event| match event {
        Event::Item(item) => {
            if json {
                let _ = writeln!(out, "{}", item_line(&item));
            } else if let StreamItem::Content { text, .. } = item {
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
        }
        Event::ServerError { status, error } => {
            if json {
                let _ = writeln!(out, "{}", error_line(&error));
            } else {
                eprintln!("\nchat: server answered {status}: {error}");
            }
        }
    }));
    let ok = result.is_ok();
    if json {
        let (attempts, error) = match &result {
            Ok(o) => (o.attempts, serde_json::Value::Null),
            Err(e) => (1, serde_json::json!(e.to_string())),
        };
        println!(
            "{}",
            serde_json::json!({"kind": "outcome", "ok": ok, "attempts": attempts, "error": error})
        );
    } else {
        println!();
        if let Err(e) = &result {
            eprintln!("chat: failed: {e}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
