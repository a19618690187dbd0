//! `soak`: many calls through the Embassy adapter at once, against the mock server's
//! random-fault mode — the way a device with several tasks (or a page) uses one client.
//!
//! For each fault rate, a fresh mock server on 127.0.0.1 faults that share of requests at
//! random (a stall before the head, a reset or a clean end after the role event, 429 with
//! `Retry-After: 1`, 503 — each before any content, so each may be retried), and `--tasks`
//! adapter tasks (futures joined on one thread, as an Embassy executor runs its tasks), each
//! with its own `Client` and buffers, share one `SharedState` and make `--calls` calls in all.
//! Prints a table: calls that succeed, requests per call (counted by the server), the slowest
//! call against its deadline, and the heap the client's thread grew by (the adapter allocates
//! nothing; what shows is the host transport's). Measures, never asserts.
//!
//! `cargo run --release -p steadyllm-tests --bin soak [-- --calls 400 --tasks 8 --percent 10,25,60,100 --seed 1]`
//!
//! The timeouts are shortened so a run takes minutes, not hours: connect 1 s, first byte 1 s,
//! first token 2 s, idle 1 s, total 20 s; backoff from 100 ms up to 1 s. Everything else
//! (attempts, breakers, budget) is the default `CallConfig`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use steadyllm_core::call::{CallConfig, Timeouts};
use steadyllm_core::time::Duration;
use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, SharedState};
use steadyllm_tests::mock::{MockServer, RandomFaults, Script};

/// Net heap bytes allocated by threads that opted in (the client's thread).
static CLIENT_HEAP: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            CLIENT_HEAP.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            CLIENT_HEAP.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: as allocated above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Args {
    calls: usize,
    tasks: usize,
    percents: Vec<u32>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        calls: 400,
        tasks: 8,
        percents: vec![10, 25, 60, 100],
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--calls" => a.calls = value()?.parse().map_err(|_| "bad --calls")?,
            "--tasks" => a.tasks = value()?.parse().map_err(|_| "bad --tasks")?,
            "--seed" => a.seed = value()?.parse().map_err(|_| "bad --seed")?,
            "--percent" => {
                a.percents = value()?
                    .split(',')
                    .map(|p| p.parse().ok().filter(|&p| p <= 100))
                    .collect::<Option<_>>()
                    .ok_or("bad --percent: e.g. 10,25,60,100")?;
            }
            "-h" | "--help" => {
                println!(
                    "soak [--calls N] [--tasks N] [--percent P,P,…] [--seed N]\n\
                     defaults: 400 calls, 8 tasks, 10,25,60,100 %, seed 1"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(1..=64).contains(&a.tasks) || a.calls == 0 {
        return Err("--tasks must be 1–64 and --calls at least 1".into());
    }
    Ok(a)
}

fn config() -> CallConfig {
    CallConfig {
        timeouts: Some(Timeouts {
            connect: Duration::from_secs(1),
            first_byte: Duration::from_secs(1),
            first_token: Duration::from_secs(2),
            idle: Duration::from_secs(1),
            total: Duration::from_secs(20),
            total_per_kib: Duration::from_millis(0),
        }),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(1),
        ..CallConfig::default()
    }
}

/// One row of the table.
struct Row {
    percent: u32,
    ok: usize,
    calls: usize,
    requests: usize,
    slowest: StdDuration,
    late: usize,
    heap: i64,
    wall: StdDuration,
    errors: Vec<(String, usize)>,
}

/// Runs `calls` calls through `tasks` adapter tasks sharing one state, against `url`.
fn soak(
    url: &str,
    calls: usize,
    tasks: usize,
    seed: u64,
) -> (Vec<(bool, StdDuration, String)>, i64) {
    let cfg = config();
    let stack = HostStack::new();
    let endpoints = [Endpoint::new(url, Some("sk-soak")).expect("endpoint")];
    let shared: SharedState = SharedState::new(endpoints.len(), &cfg);
    let next = Cell::new(0usize);
    let results = RefCell::new(Vec::with_capacity(calls));
    let messages = [Message::user("Why is the sky blue?")];
    let request = ChatRequest::new("gpt-4o-mini", &messages);
    let task = |t: usize| {
        let (stack, endpoints, shared, next, results, request) =
            (&stack, &endpoints, &shared, &next, &results, &request);
        async move {
            let mut client: Client<'_, _, _> = Client::new(
                stack,
                stack,
                endpoints,
                shared,
                cfg,
                seed.wrapping_mul(1000).wrapping_add(t as u64),
            );
            let (mut body, mut head, mut response) = ([0u8; 2048], [0u8; 512], [0u8; 4096]);
            let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
            loop {
                let i = next.get();
                if i >= calls {
                    break;
                }
                next.set(i + 1);
                let start = StdInstant::now();
                let r = client.chat(request, &mut bufs, |_| {}).await;
                let took = start.elapsed();
                let err = r.err().map(|e| e.to_string()).unwrap_or_default();
                results.borrow_mut().push((r.is_ok(), took, err));
            }
        }
    };
    COUNTED.with(|c| c.set(true));
    let before = CLIENT_HEAP.load(Ordering::Relaxed);
    let futures: Vec<_> = (0..tasks).map(|t| Box::pin(task(t))).collect();
    async_io::block_on(join_all(futures));
    let grew = CLIENT_HEAP.load(Ordering::Relaxed) - before;
    COUNTED.with(|c| c.set(false));
    (results.into_inner(), grew)
}

/// Polls every future until all are done (one thread, like an Embassy executor's tasks).
async fn join_all<F: std::future::Future<Output = ()> + Unpin>(mut futures: Vec<F>) {
    use std::pin::Pin;
    use std::task::Poll;
    let mut done = vec![false; futures.len()];
    std::future::poll_fn(|cx| {
        for (f, d) in futures.iter_mut().zip(done.iter_mut()) {
            if !*d && Pin::new(&mut *f).poll(cx).is_ready() {
                *d = true;
            }
        }
        if done.iter().all(|&d| d) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = config();
    let deadline = StdDuration::from_millis(cfg.timeouts.map_or(0, |t| t.total.as_millis()));
    println!(
        "soak: {} calls, {} Embassy-adapter tasks sharing one SharedState, one endpoint (mock \
         server, random faults before any content: stall, reset, cut, 429 Retry-After 1, 503); \
         seed {}",
        args.calls, args.tasks, args.seed
    );
    let mut rows = Vec::new();
    for &percent in &args.percents {
        let server = match MockServer::start_background(([127, 0, 0, 1], 0).into()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("soak: mock server: {e}");
                return ExitCode::from(1);
            }
        };
        server.set_defaults(Script {
            random: Some(RandomFaults {
                percent,
                seed: args.seed,
            }),
            ..Script::default()
        });
        let started = StdInstant::now();
        let (results, heap) = soak(&server.base_url(), args.calls, args.tasks, args.seed);
        let wall = started.elapsed();
        let requests = server.requests().len();
        drop(server);
        let mut errors: Vec<(String, usize)> = Vec::new();
        for (_, _, e) in results.iter().filter(|r| !r.0) {
            let kind = e.split(';').next().unwrap_or(e).to_string();
            match errors.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => errors.push((kind, 1)),
            }
        }
        errors.sort_by_key(|e| std::cmp::Reverse(e.1));
        let row = Row {
            percent,
            ok: results.iter().filter(|r| r.0).count(),
            calls: results.len(),
            requests,
            slowest: results.iter().map(|r| r.1).max().unwrap_or_default(),
            late: results
                .iter()
                .filter(|r| r.1 > deadline + StdDuration::from_millis(250))
                .count(),
            heap,
            wall,
            errors,
        };
        eprintln!(
            "  {:>3} % faulted: {}/{} ok in {:.0} s",
            row.percent,
            row.ok,
            row.calls,
            row.wall.as_secs_f64()
        );
        rows.push(row);
    }
    println!();
    println!(
        "| requests faulted | calls that succeed | requests per call | slowest call (deadline {} s) | client heap growth |",
        deadline.as_secs()
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} % | {} / {} ({:.1} %) | {:.2} | {:.1} s{} | {} B |",
            r.percent,
            r.ok,
            r.calls,
            100.0 * r.ok as f64 / r.calls.max(1) as f64,
            r.requests as f64 / r.calls.max(1) as f64,
            r.slowest.as_secs_f64(),
            if r.late > 0 {
                format!(" ({} past the deadline)", r.late)
            } else {
                String::new()
            },
            r.heap,
        );
    }
    println!();
    for r in &rows {
        if !r.errors.is_empty() {
            let e: Vec<String> = r.errors.iter().map(|(k, n)| format!("{n}× {k}")).collect();
            println!("  {} %: failures: {}", r.percent, e.join(", "));
        }
        println!("  {} %: {:.0} s wall time", r.percent, r.wall.as_secs_f64());
    }
    ExitCode::SUCCESS
}
