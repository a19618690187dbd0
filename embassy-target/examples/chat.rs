//! `chat`: stream an answer token by token over the steadyllm Embassy adapter.
//!
//! ```text
//! cargo run --release -p steadyllm-embassy --example chat -- "Why is the sky blue?"
//! cargo run --release -p steadyllm-embassy --example chat -- --chaos "Why is the sky blue?"
//! cargo run --release -p steadyllm-embassy --example chat -- --base-url http://10.0.0.2:8080/v1 \
//!     --base-url http://10.0.0.3:8080/v1 --model gpt-4o-mini "Hi"
//! ```
//!
//! With no `--base-url` it starts the bundled mock server in-process on 127.0.0.1 and says so;
//! `--chaos` makes the mock stall, answer 429 and reset a stream before it answers, so the
//! recovery is visible. `--base-url` is repeatable (primary, then fallbacks). `--api chat` (the
//! default) speaks OpenAI's chat completions, `--api anthropic` Anthropic's Messages API
//! (`…/v1/messages`, its version header, `max_tokens` 1024 unless `--max-tokens` says),
//! `--api responses` OpenAI's Responses API (`…/v1/responses`): a streamed answer is created in
//! background mode, so a broken stream is resumed after the last event shown (a
//! `GET …/v1/responses/{id}?stream=true&starting_after=N`, nothing shown twice) instead of
//! posted again; `--no-background` turns that off (a drop then keeps the partial text, or
//! restarts with `--restart-on-partial`). The key comes from `--api-key`, `STEADYLLM_API_KEY`
//! or `OPENAI_API_KEY` (`ANTHROPIC_API_KEY` with `--api anthropic`). `--no-stream` asks for the whole answer as one JSON body and prints the
//! same items. `--json` prints the decoded items as JSON lines (the `conformance decode`
//! format), one `{"kind":"tool_call_done",...}` line per whole tool call (before the finish
//! reason), `attempt`/`backoff` lines, a `{"kind":"resume","after":N}` line when a resume
//! starts, and a final `{"kind":"outcome",...}` (with the number of `resumes`). The exit status is
//! 0 only for a complete answer.
//!
//! Request fields: `--reasoning-effort minimal|low|medium|high`, `--json-schema FILE` (structured
//! outputs, strict, named by `--schema-name`, default `answer`), `--parallel-tool-calls
//! true|false`, `--thinking-budget N` (Anthropic extended thinking; needs `--max-tokens` above
//! it), `--body-member KEY=JSON` (repeatable: a raw member of the body), and per endpoint
//! `--header 'Name: value'` and `--query name=value` (both repeatable), and
//! `--reasoning-model PREFIX` (repeatable: models that think before they answer get the
//! reasoning timeouts without an effort named), e.g. for Azure OpenAI:
//!
//! ```text
//! chat --base-url https://RES.openai.azure.com/openai/deployments/gpt-4o \
//!     --header "api-key: $AZURE_KEY" --query api-version=2024-10-21 "Hi"
//! ```

use std::io::Write;
use std::process::ExitCode;

use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::{CallConfig, CallEvent, Timeouts, WaitReason};
use steadyllm_embassy::steadyllm_core::decode::{Dialect, StreamItem};
use steadyllm_embassy::steadyllm_core::http::{Endpoint, HeadError, RequestHead};
use steadyllm_embassy::steadyllm_core::request::{
    ChatRequest, Message, RawJson, ReasoningEffort, ResponseFormat, Thinking,
};
use steadyllm_embassy::steadyllm_core::time::Duration;
use steadyllm_embassy::steadyllm_core::tools::{AssembledCall, CallBuffer, ToolCallAssembler};
use steadyllm_embassy::{
    Buffers, Client, Event, SharedState, TlsSettings, TlsVerify, TrustAnchors,
};
use steadyllm_tests::conformance::{error_line, item_line, tool_call_done_line};
use steadyllm_tests::mock::{MockServer, Script};

const USAGE: &str = "usage: chat [--base-url URL]... [--api chat|anthropic|responses] [--api-key KEY] \
[--model M] [--max-tokens N] [--no-stream] [--no-background] \
[--connect-timeout-ms N] [--first-byte-timeout-ms N] [--idle-timeout-ms N] [--deadline-ms N] \
[--max-retries N] [--restart-on-partial] [--ca ROOTS.pem|ROOTS.der] [--insecure-skip-tls-verify] \
[--chaos] [--json] PROMPT";
const USAGE_FIELDS: &str = "request fields: [--reasoning-effort minimal|low|medium|high] \
[--json-schema FILE [--schema-name NAME]] [--parallel-tool-calls true|false] \
[--thinking-budget N] [--body-member KEY=JSON]... [--header 'Name: value']... \
[--query name=value]... [--reasoning-model PREFIX]...";

#[derive(Default)]
struct Args {
    base_urls: Vec<String>,
    api_key: Option<String>,
    model: Option<String>,
    max_tokens: Option<u32>,
    connect: Option<Duration>,
    first_byte: Option<Duration>,
    idle: Option<Duration>,
    deadline: Option<Duration>,
    max_retries: Option<u32>,
    reasoning_effort: Option<ReasoningEffort>,
    /// Model name prefixes marked as reasoning models (their timeouts).
    reasoning_models: Vec<String>,
    json_schema: Option<String>,
    schema_name: Option<String>,
    parallel_tool_calls: Option<bool>,
    thinking_budget: Option<u32>,
    body_members: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    ca: Option<String>,
    insecure: bool,
    restart_on_partial: bool,
    chaos: bool,
    json: bool,
    /// `--api`: the dialect of every endpoint.
    dialect: Dialect,
    /// `--no-stream`: one JSON body instead of a stream.
    no_stream: bool,
    /// `--no-background`: a Responses stream is not created in background mode (not resumable).
    no_background: bool,
    prompt: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, name: &str| -> Result<u64, String> {
        v.and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{name} needs a number"))
    };
    let mut prompt = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--base-url" => a.base_urls.push(it.next().ok_or("--base-url needs a URL")?),
            "--api-key" => a.api_key = Some(it.next().ok_or("--api-key needs a key")?),
            "--model" => a.model = Some(it.next().ok_or("--model needs a name")?),
            "--max-tokens" => a.max_tokens = Some(num(it.next(), &arg)? as u32),
            "--connect-timeout-ms" => {
                a.connect = Some(Duration::from_millis(num(it.next(), &arg)?))
            }
            "--first-byte-timeout-ms" => {
                a.first_byte = Some(Duration::from_millis(num(it.next(), &arg)?))
            }
            "--idle-timeout-ms" => a.idle = Some(Duration::from_millis(num(it.next(), &arg)?)),
            "--deadline-ms" => a.deadline = Some(Duration::from_millis(num(it.next(), &arg)?)),
            "--max-retries" => a.max_retries = Some(num(it.next(), &arg)? as u32),
            "--reasoning-model" => a.reasoning_models.push(
                it.next()
                    .ok_or("--reasoning-model needs a model name prefix")?,
            ),
            "--reasoning-effort" => {
                a.reasoning_effort = Some(match it.next().as_deref() {
                    Some("minimal") => ReasoningEffort::Minimal,
                    Some("low") => ReasoningEffort::Low,
                    Some("medium") => ReasoningEffort::Medium,
                    Some("high") => ReasoningEffort::High,
                    _ => return Err("--reasoning-effort needs minimal, low, medium or high".into()),
                })
            }
            "--json-schema" => {
                let file = it.next().ok_or("--json-schema needs a file")?;
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("--json-schema {file}: {e}"))?;
                a.json_schema = Some(text);
            }
            "--schema-name" => a.schema_name = Some(it.next().ok_or("--schema-name needs a name")?),
            "--parallel-tool-calls" => {
                a.parallel_tool_calls = Some(match it.next().as_deref() {
                    Some("true") => true,
                    Some("false") => false,
                    _ => return Err("--parallel-tool-calls needs true or false".into()),
                })
            }
            "--thinking-budget" => a.thinking_budget = Some(num(it.next(), &arg)? as u32),
            "--body-member" => {
                let m = it.next().ok_or("--body-member needs KEY=JSON")?;
                let (k, v) = m.split_once('=').ok_or("--body-member needs KEY=JSON")?;
                a.body_members.push((k.into(), v.into()));
            }
            "--header" => {
                let h = it.next().ok_or("--header needs 'Name: value'")?;
                let (n, v) = h.split_once(':').ok_or("--header needs 'Name: value'")?;
                a.headers.push((n.trim().into(), v.trim().into()));
            }
            "--query" => {
                let q = it.next().ok_or("--query needs name=value")?;
                let (k, v) = q.split_once('=').ok_or("--query needs name=value")?;
                a.query.push((k.into(), v.into()));
            }
            "--ca" => a.ca = Some(it.next().ok_or("--ca needs a file")?),
            "--insecure-skip-tls-verify" => a.insecure = true,
            "--restart-on-partial" => a.restart_on_partial = true,
            "--chaos" => a.chaos = true,
            "--json" => a.json = true,
            "--api" => {
                a.dialect = match it.next().as_deref() {
                    Some("chat") => Dialect::OpenAi,
                    Some("anthropic") => Dialect::Anthropic,
                    Some("responses") => Dialect::Responses,
                    _ => return Err(format!("--api needs chat, anthropic or responses\n{USAGE}")),
                }
            }
            "--no-stream" => a.no_stream = true,
            "--no-background" => a.no_background = true,
            "-h" | "--help" => return Err(format!("{USAGE}\n{USAGE_FIELDS}")),
            s if s.starts_with("--") => {
                return Err(format!("unknown option {s}\n{USAGE}\n{USAGE_FIELDS}"));
            }
            _ => prompt.push(arg),
        }
    }
    if a.api_key.is_none() {
        let vendor = match a.dialect {
            Dialect::OpenAi | Dialect::Responses => "OPENAI_API_KEY",
            Dialect::Anthropic => "ANTHROPIC_API_KEY",
        };
        a.api_key = std::env::var("STEADYLLM_API_KEY")
            .or_else(|_| std::env::var(vendor))
            .ok();
    }
    a.prompt = prompt.join(" ");
    if a.prompt.is_empty() {
        a.prompt = "Why is the sky blue?".into();
    }
    Ok(a)
}

/// The request fields given as JSON text, checked.
struct Fields<'a> {
    schema: Option<RawJson<'a>>,
    extra_body: Vec<(&'a str, RawJson<'a>)>,
}

fn request_fields(args: &Args) -> Result<Fields<'_>, String> {
    let schema = args
        .json_schema
        .as_deref()
        .map(|s| RawJson::new(s.trim()).map_err(|e| format!("--json-schema: not JSON: {e}")))
        .transpose()?;
    let mut extra_body = Vec::new();
    for (k, v) in &args.body_members {
        let v = RawJson::new(v).map_err(|e| format!("--body-member {k}: not JSON: {e}"))?;
        extra_body.push((k.as_str(), v));
    }
    Ok(Fields { schema, extra_body })
}

/// Every certificate of a PEM bundle (or DER certificates back to back), as DER back to back.
fn read_roots(path: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--ca {path}: {e}"))?;
    let mut der = vec![0u8; bytes.len()];
    let n = steadyllm_embassy::tls::decode_pem_bundle(&bytes, &mut der)
        .map_err(|e| format!("--ca {path}: {e}"))?;
    der.truncate(n);
    Ok(der)
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
                " with --chaos faults (stall, 429, reset)"
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
    // Headers and query parameters go to every endpoint (checked when a head is written).
    let headers: Vec<(&str, &str)> = args
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let query: Vec<(&str, &str)> = args
        .query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut endpoints = Vec::new();
    for u in &urls {
        match Endpoint::new(u, key) {
            Ok(e) => endpoints.push(
                e.with_dialect(args.dialect)
                    .with_headers(&headers)
                    .with_query(&query),
            ),
            Err(e) => {
                eprintln!("chat: {u}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let default_model = match args.dialect {
        Dialect::OpenAi | Dialect::Responses => "gpt-4o-mini",
        Dialect::Anthropic => "claude-sonnet-4-5",
    };
    let model = args.model.clone().unwrap_or_else(|| default_model.into());
    let messages = [Message::user(&args.prompt)];
    let mut request = ChatRequest::new(&model, &messages);
    request.max_tokens = args.max_tokens;
    request.stream = !args.no_stream;
    request.background = !args.no_background;
    let fields = match request_fields(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::from(2);
        }
    };
    request.reasoning_effort = args.reasoning_effort;
    request.parallel_tool_calls = args.parallel_tool_calls;
    request.thinking = args
        .thinking_budget
        .map(|budget_tokens| Thinking::Enabled { budget_tokens });
    request.response_format = fields.schema.map(|schema| ResponseFormat::JsonSchema {
        name: args.schema_name.as_deref().unwrap_or("answer"),
        schema,
        strict: true,
    });
    request.extra_body = &fields.extra_body;
    // A bad field, header or query parameter is refused before anything is sent (the client
    // would refuse it at the first attempt).
    for ep in &endpoints {
        let head = RequestHead::new(ep, 0, true).write(&mut []);
        let head = match head {
            Err(HeadError::BufferTooSmall(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok(_) => Ok(()),
        };
        if let Err(e) = request
            .body_len(ep.dialect)
            .map_err(|e| e.to_string())
            .and(head)
        {
            eprintln!("chat: {e}");
            return ExitCode::from(2);
        }
    }
    // The timeout tier for this request, overridden from the command line. Under --chaos the
    // first-byte and idle timeouts are short so the recovery shows within seconds.
    let reasoning_models: Vec<&str> = args.reasoning_models.iter().map(String::as_str).collect();
    let mut profile = request.profile();
    profile.reasoning = request.is_reasoning_with(&reasoning_models, &endpoints);
    let mut t = Timeouts::for_profile(profile);
    if args.chaos {
        t.first_byte = Duration::from_secs(3);
        t.idle = Duration::from_secs(3);
    }
    t.connect = args.connect.unwrap_or(t.connect);
    t.first_byte = args.first_byte.unwrap_or(t.first_byte);
    t.idle = args.idle.unwrap_or(t.idle);
    t.total = args.deadline.unwrap_or(t.total);
    let mut config = CallConfig {
        timeouts: Some(t),
        ..CallConfig::default()
    };
    if let Some(n) = args.max_retries {
        config.max_attempts = n.saturating_add(1);
    }
    // After partial output, start the answer again (the caller is told to discard what it
    // showed) instead of failing with the partial text.
    config.restart_on_partial = args.restart_on_partial;
    let shared: SharedState = SharedState::new(endpoints.len(), &config);
    let stack = HostStack::new();
    // The OS's CSPRNG: the TLS handshakes' randomness, and (separately) the jitter seed.
    let mut rng = rand_core::OsRng;
    let seed = rand_core::RngCore::next_u64(&mut rng);
    let roots = match args.ca.as_deref().map(read_roots).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client: Client<'_, _, _> =
        Client::new(&stack, &stack, &endpoints, &shared, config, seed)
            .with_reasoning_models(&reasoning_models);
    let verify = if let Some(der) = &roots {
        TlsVerify::Roots(TrustAnchors::from_der_bundle(der))
    } else if args.insecure {
        eprintln!("chat: --insecure-skip-tls-verify: the server is NOT verified");
        TlsVerify::InsecureNoVerification
    } else {
        // Let's Encrypt, Google Trust Services, DigiCert, Microsoft, Amazon, SSL.com, Sectigo.
        TlsVerify::Roots(steadyllm_embassy::tls::BUILTIN_ROOTS)
    };
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    };
    client = client.with_tls(TlsSettings::new(verify, &mut rng).with_clock(clock));
    let mut body = vec![0u8; 64 * 1024];
    let (mut head, mut response) = ([0u8; 1024], [0u8; 8192]);
    let (mut tls_read, mut tls_write) = (vec![0u8; 16_640], vec![0u8; 8192]);
    let mut bufs =
        Buffers::new(&mut body, &mut head, &mut response).with_tls(&mut tls_read, &mut tls_write);
    let json = args.json;
    let mut out = std::io::stdout();
    let mut mid_line = false;
    let mut started = 0u32;
    let mut resumes = 0u32;
    // Whole tool calls, joined by the core from their fragments.
    let mut tools = ToolCallAssembler::with_storage(CallBuffer::<_, 64>::new(vec![0u8; 64 * 1024]));
    let print_call = |out: &mut std::io::Stdout, mid_line: &mut bool, c: AssembledCall<'_>| {
        if json {
            let _ = writeln!(out, "{}", tool_call_done_line(&c));
        } else {
            if *mid_line {
                let _ = writeln!(out);
                *mid_line = false;
            }
            let _ = writeln!(out, "[tool call {} {}] {}", c.id, c.name, c.arguments);
        }
    };
    let result = async_io::block_on(client.chat(&request, &mut bufs, |event| {
        match event {
            Event::Engine(CallEvent::AttemptStarted { number, .. }) => started = number,
            Event::Engine(CallEvent::Resuming { .. }) => resumes += 1,
            _ => {}
        }
        match event {
        Event::Item(item) => {
            if let Err(e) = tools.handle_item(&item) {
                eprintln!("chat: {e}");
            }
            // Whole calls before the finish reason that ends them.
            while let Some(c) = tools.poll_finished() {
                print_call(&mut out, &mut mid_line, c);
            }
            if json {
                let _ = writeln!(out, "{}", item_line(&item));
            } else if let StreamItem::Content { text, .. } = item {
                let _ = write!(out, "{text}");
                let _ = out.flush();
                mid_line = true;
            }
        }
        Event::Engine(ev) if json => match ev {
            CallEvent::AttemptStarted {
                number,
                endpoint,
                timeouts: t,
            } => {
                let url = urls.get(endpoint).map(String::as_str).unwrap_or("");
                let line = serde_json::json!({"kind": "attempt", "n": number, "endpoint": url,
                    "first_byte_ms": t.first_byte.as_millis(),
                    "first_token_ms": t.first_token.as_millis()});
                let _ = writeln!(out, "{line}");
            }
            CallEvent::Resuming { after } => {
                let line = serde_json::json!({"kind": "resume", "after": after});
                let _ = writeln!(out, "{line}");
            }
            CallEvent::DiscardDelivered { bytes } => {
                tools.clear();
                let line = serde_json::json!({"kind": "discard", "bytes": bytes});
                let _ = writeln!(out, "{line}");
            }
            CallEvent::AttemptFailed {
                number,
                endpoint,
                failure,
            } => {
                let url = urls.get(endpoint).map(String::as_str).unwrap_or("");
                let line = serde_json::json!({"kind": "attempt_failed", "n": number,
                    "endpoint": url, "error": failure.to_string()});
                let _ = writeln!(out, "{line}");
            }
            CallEvent::Waiting { delay, reason } => {
                let r = match reason {
                    WaitReason::Backoff(f) | WaitReason::RetryAfter(f) => f.to_string(),
                    WaitReason::EndpointsUnavailable => "rate limited".into(),
                };
                let line =
                    serde_json::json!({"kind": "backoff", "ms": delay.as_millis(), "reason": r});
                let _ = writeln!(out, "{line}");
            }
            _ => {}
        },
        Event::Engine(ev) if !matches!(ev, CallEvent::AttemptStarted { number: 1, .. }) => {
            if let CallEvent::DiscardDelivered { .. } = ev {
                tools.clear();
            }
            if mid_line {
                eprintln!();
                mid_line = false;
            }
            eprintln!("[steadyllm] {ev}");
        }
        Event::ServerError { status, error } => {
            if json {
                let _ = writeln!(out, "{}", error_line(&error));
            } else {
                eprintln!("[steadyllm] server answered {status}: {error}");
            }
        }
        Event::Redirected { status, location } => {
            if json {
                let line = serde_json::json!({"kind": "redirect", "status": status,
                    "location": location});
                let _ = writeln!(out, "{line}");
            } else {
                eprintln!("[steadyllm] redirected ({status}) to {location}: not followed");
            }
        }
        _ => {}
    }
    }));
    let ok = result.is_ok();
    if ok {
        // A whole answer may end without a finish reason: its calls are complete now.
        tools.finish_all();
        while let Some(c) = tools.poll_finished() {
            print_call(&mut out, &mut mid_line, c);
        }
    }
    if json {
        let (attempts, error) = match &result {
            Ok(o) => (o.attempts, serde_json::Value::Null),
            Err(e) => (started, serde_json::json!(e.to_string())),
        };
        let line = serde_json::json!({"kind": "outcome", "ok": ok, "attempts": attempts,
            "resumes": resumes, "error": error});
        let _ = writeln!(out, "{line}");
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
