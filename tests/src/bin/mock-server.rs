//! Runs the fault-injecting mock server standalone.
//!
//! ```text
//! mock-server [--port N] [--host ADDR] [--script FILE.json] [--chaos] [--random P[:SEED]]
//!             [--answer TEXT] [--delay-ms N] [--tls CHAIN --roots-out FILE.pem]
//! ```
//! Prints `listening on http://ADDR` (or `https://localhost:PORT` with `--tls`) as its first
//! stdout line, then serves until killed.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use steadyllm_tests::mock::{Fault, MockServer, RandomFaults, Script, Step};
use steadyllm_tests::tls::{BadChain, ChainShape, TestPki, TlsProxy};

const USAGE: &str = "usage: mock-server [--port N] [--host ADDR] [--script FILE.json] [--chaos] \
[--random P[:SEED]] [--answer TEXT] [--delay-ms N] [--tls CHAIN --roots-out FILE.pem]

  --port N         port to listen on (default 0: any free port)
  --host ADDR      address to bind (default 127.0.0.1)
  --script FILE    JSON script: a list of steps or {\"steps\":[...],\"repeat\":bool,\"then\":step,\"answer\":text}
  --chaos          preset script: stall, 429 Retry-After 1, reset mid-stream, then ok
  --random P[:SEED] after the script, fault P % of requests at random (stall, reset, cut,
                   429, 503, each before any content), seeded
  --answer TEXT    the answer text to stream
  --delay-ms N     pause between events of normal answers (after the script)
  --tls CHAIN      serve https (TLS 1.3) for the host name localhost, presenting a throw-away
                   chain: p256, p384-root, rsa-root-ecdsa-leaf, all-rsa, bundle (the right root
                   third of three), or one a client must refuse: wrong-host, untrusted-root,
                   expired-leaf
  --roots-out FILE write the roots a client should trust (PEM) there
The script can also be set at run time with POST /__control/script.";

struct Args {
    host: IpAddr,
    port: u16,
    script: Option<String>,
    chaos: bool,
    random: Option<RandomFaults>,
    answer: Option<String>,
    delay_ms: Option<u64>,
    tls: Option<String>,
    roots_out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        script: None,
        chaos: false,
        random: None,
        answer: None,
        delay_ms: None,
        tls: None,
        roots_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value("--port")?;
                args.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--host" => {
                let v = value("--host")?;
                args.host = v.parse().map_err(|_| format!("bad host address {v:?}"))?;
            }
            "--script" => args.script = Some(value("--script")?),
            "--answer" => args.answer = Some(value("--answer")?),
            "--delay-ms" => {
                let v = value("--delay-ms")?;
                args.delay_ms = Some(v.parse().map_err(|_| format!("bad delay {v:?}"))?);
            }
            "--chaos" => args.chaos = true,
            "--random" => {
                let v = value("--random")?;
                let (p, seed) = v.split_once(':').unwrap_or((&v, "0"));
                let bad = || format!("bad --random {v:?}: PERCENT[:SEED]");
                let percent: u32 = p.parse().map_err(|_| bad())?;
                if percent > 100 {
                    return Err(bad());
                }
                let seed = seed.parse().map_err(|_| bad())?;
                args.random = Some(RandomFaults { percent, seed });
            }
            "--tls" => args.tls = Some(value("--tls")?),
            "--roots-out" => args.roots_out = Some(value("--roots-out")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.chaos && args.script.is_some() {
        return Err("--chaos and --script are exclusive".into());
    }
    if args.tls.is_some() != args.roots_out.is_some() {
        return Err("--tls and --roots-out go together".into());
    }
    Ok(args)
}

/// The chain `--tls NAME` names.
fn test_pki(name: &str) -> Result<TestPki, String> {
    let pki = if let Some(shape) = ChainShape::from_name(name) {
        TestPki::shape(shape, "localhost")
    } else if let Some(bad) = BadChain::from_name(name) {
        TestPki::bad(bad, "localhost")
    } else {
        return Err(format!("unknown --tls chain {name:?}"));
    };
    pki.map_err(|e| format!("--tls {name}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut script = if args.chaos {
        Script::chaos()
    } else if let Some(path) = &args.script {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("mock-server: cannot read {path}: {e}");
                return ExitCode::from(2);
            }
        };
        match Script::from_json(&text) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mock-server: {path}: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Script::default()
    };
    if let Some(ms) = args.delay_ms {
        let then = script.then.take().unwrap_or_else(|| Step::new(Fault::Ok));
        script.then = Some(then.delay_between_events(ms));
    }
    if args.answer.is_some() {
        script.answer = args.answer.clone();
    }
    if args.random.is_some() {
        script.random = args.random;
    }
    let plain_port = if args.tls.is_some() { 0 } else { args.port };
    let server = match MockServer::start(SocketAddr::new(args.host, plain_port)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "mock-server: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::from(1);
        }
    };
    let steps = script.steps.len();
    // `/__control/reset` comes back to the pacing and answer given here.
    server.set_defaults(script);
    let mut shown = format!("http://{}", server.addr());
    let mut base = server.base_url();
    let mut _proxy = None;
    if let (Some(name), Some(out)) = (&args.tls, &args.roots_out) {
        let pki = match test_pki(name) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mock-server: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = std::fs::write(out, &pki.roots_pem) {
            eprintln!("mock-server: cannot write {out}: {e}");
            return ExitCode::from(1);
        }
        let bind = SocketAddr::new(args.host, args.port);
        // The plain server moved to a free port; TLS takes the one asked for.
        let proxy = match TlsProxy::start(bind, server.addr(), &pki).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mock-server: cannot start TLS on {bind}: {e}");
                return ExitCode::from(1);
            }
        };
        shown = format!("https://localhost:{}", proxy.addr().port());
        base = format!("{shown}/v1");
        _proxy = Some(proxy);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {shown}");
    let _ = writeln!(
        out,
        "base url {base} ; {steps} scripted step(s){}",
        if args.chaos { " (chaos)" } else { "" }
    );
    let _ = out.flush();
    drop(out);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
