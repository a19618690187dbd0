//! `simulate`: steadyllm's resilience engine vs models of openai-python's retry policy and
//! LiteLLM's Router, on the same seeded fault schedules in virtual time — one device's
//! sequential calls, then overlapping calls (a batch of 400, 8 at a time; Poisson bursts of 8)
//! on one endpoint and on two; then slow but healthy work (reasoning models that think for
//! minutes, a four-minute answer, a whole answer after 90 s). Prints one table row per scenario
//! and ends with `ahead of both peers on N of M fault scenarios; behind on K slow-healthy
//! scenarios`.
//!
//! `cargo run --release -p steadyllm-tests --bin simulate [-- --seed N]`

use std::time::Instant;

use steadyllm_core::call::CallConfig;
use steadyllm_tests::sim::{
    RunResult, ahead_of, check_properties, compare, compare_dialects, mid_stream_scenarios,
    scenarios,
};

fn main() {
    let mut seed = 42u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seed" {
            seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed);
        }
    }
    let config = CallConfig::default();
    let started = Instant::now();
    let rows = compare(&config, seed);
    let elapsed = started.elapsed();
    let total_calls: usize = rows
        .iter()
        .map(|r| r.ours.calls.len() + r.theirs.calls.len() + r.litellm.calls.len())
        .sum();
    println!(
        "steadyllm (default CallConfig) vs openai-python (first endpoint) and LiteLLM Router \
         (every endpoint, as fallbacks); seed {seed}"
    );
    println!(
        "{:<24} {:>7} {:>7} {:>7}  {:>7} {:>7} {:>7}  {:>5} {:>5} {:>5}  ahead",
        "scenario", "ok us", "ok py", "ok llm", "p99 us", "p99 py", "p99 llm", "amp", "py", "llm"
    );
    let descriptions = scenarios();
    let (mut ahead, mut faulty, mut slow_behind) = (0, 0, 0);
    let pct = |r: &RunResult| format!("{:.1}%", 100.0 * r.success_rate());
    let secs = |r: &RunResult| format!("{:.1}s", r.percentile_ms(0.99) as f64 / 1000.0);
    for (r, s) in rows.iter().zip(&descriptions) {
        let a = r.ahead();
        if s.faulty() {
            faulty += 1;
            ahead += usize::from(a);
        }
        if s.slow && r.behind() {
            slow_behind += 1;
        }
        let mark = match (ahead_of(&r.ours, &r.theirs), ahead_of(&r.ours, &r.litellm)) {
            _ if s.slow && r.behind() => "BEHIND",
            _ if s.slow => "not behind",
            _ if !s.faulty() => "-",
            (true, true) => "yes",
            (true, false) => "no (llm)",
            (false, true) => "no (py)",
            (false, false) => "no",
        };
        println!(
            "{:<24} {:>7} {:>7} {:>7}  {:>7} {:>7} {:>7}  {:>5.2} {:>5.2} {:>5.2}  {mark}",
            r.scenario,
            pct(&r.ours),
            pct(&r.theirs),
            pct(&r.litellm),
            secs(&r.ours),
            secs(&r.theirs),
            secs(&r.litellm),
            r.ours.amplification(),
            r.theirs.amplification(),
            r.litellm.amplification(),
        );
    }
    println!();
    let mut described = std::collections::BTreeSet::new();
    for d in &descriptions {
        if d.concurrent() {
            if described.insert(d.description) {
                let kind = d.name.split_once('-').map_or(d.name, |(_, k)| k);
                let kind = kind.trim_end_matches("-1ep").trim_end_matches("-2ep");
                println!("  *-{kind:<21} {}", d.description);
            }
        } else {
            println!("  {:<23} {}", d.name, d.description);
        }
    }
    println!(
        "  batch8-*                400 calls queued at once, 8 in flight; bursts8-*: 400 calls in \
         bursts of 8, a Poisson process 4 s apart on average; -1ep / -2ep: endpoints"
    );
    let violations: usize = descriptions
        .iter()
        .zip(&rows)
        .map(|(s, r)| check_properties(s, &config, &r.ours).len())
        .sum();
    println!(
        "\nok = calls that succeed; p99 = 99th percentile of call time; amp = requests per call.\n\
         ahead = higher success rate (> 0.5 points), or the same success rate with p99 call time \
         and requests per call no worse and one better; on slow-healthy work, behind = a peer \
         ahead, or a call that did not succeed at its first attempt"
    );
    println!(
        "{total_calls} simulated calls in {:.0} ms; steadyllm property violations: {violations}",
        elapsed.as_secs_f64() * 1000.0
    );
    // Mid-stream faults in both dialects: chat completions (the partial answer, or a restart
    // that regenerates it) and the Responses API in background mode (resumed).
    println!(
        "\nmid-stream faults, steadyllm in both dialects (1,000 sequential calls each; regen = \
         chunks the server generated again)"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8}  {:>10} {:>6}  {:>5}",
        "scenario", "ok chat", "regen", "restart", "regen", "responses", "regen", "amp"
    );
    let dialect_rows = compare_dialects(&config, seed);
    let mut exact = 0;
    for r in &dialect_rows {
        if r.responses.success_rate() == 1.0 && r.responses.regenerated() == 0 {
            exact += 1;
        }
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>8}  {:>10} {:>6}  {:>5.2}",
            r.scenario,
            pct(&r.chat),
            r.chat.regenerated(),
            pct(&r.chat_restart),
            r.chat_restart.regenerated(),
            pct(&r.responses),
            r.responses.regenerated(),
            r.responses.amplification(),
        );
    }
    for d in mid_stream_scenarios() {
        println!("  {:<21} {}", d.name, d.description);
    }
    println!(
        "\nahead of both peers on {ahead} of {faulty} fault scenarios; behind on {slow_behind} \
         slow-healthy scenarios; resumed exactly (100 % of calls, 0 regenerated) on {exact} of {} \
         mid-stream scenarios",
        dialect_rows.len()
    );
}
