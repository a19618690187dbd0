//! `simulate`: steadyllm's resilience engine vs a model of openai-python's retry policy, on the
//! same seeded fault schedules in virtual time. Prints one table row per scenario and ends with
//! `ahead on N of M scenarios`.
//!
//! `cargo run --release -p steadyllm-tests --bin simulate [-- --seed N]`

use std::time::Instant;

use steadyllm_core::call::CallConfig;
use steadyllm_tests::sim::{check_properties, compare, scenarios};

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
        .map(|r| r.ours.calls.len() + r.theirs.calls.len())
        .sum();
    println!(
        "steadyllm (default CallConfig, 2 endpoints) vs openai-python model (1 endpoint); seed {seed}"
    );
    println!(
        "{:<21} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}  ahead",
        "scenario",
        "ok ours",
        "ok py",
        "p50 ours",
        "p50 py",
        "p99 ours",
        "p99 py",
        "amp us",
        "amp py"
    );
    let mut ahead = 0;
    let descriptions = scenarios();
    for r in &rows {
        let a = r.ahead();
        ahead += usize::from(a);
        let s = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
        println!(
            "{:<21} {:>8.1}% {:>8.1}% {:>10} {:>10} {:>10} {:>10} {:>7.2} {:>7.2}  {}",
            r.scenario,
            100.0 * r.ours.success_rate(),
            100.0 * r.theirs.success_rate(),
            s(r.ours.percentile_ms(0.5)),
            s(r.theirs.percentile_ms(0.5)),
            s(r.ours.percentile_ms(0.99)),
            s(r.theirs.percentile_ms(0.99)),
            r.ours.amplification(),
            r.theirs.amplification(),
            if a { "yes" } else { "no" }
        );
    }
    println!();
    for d in &descriptions {
        println!("  {:<21} {}", d.name, d.description);
    }
    let violations: usize = descriptions
        .iter()
        .zip(&rows)
        .map(|(s, r)| check_properties(s, &config, &r.ours).len())
        .sum();
    println!(
        "\nahead = higher success rate (> 0.5 points), or the same success rate with p99 call time and load amplification (attempts/call) no worse and one better"
    );
    println!(
        "{total_calls} simulated calls in {:.0} ms; steadyllm property violations: {violations}",
        elapsed.as_secs_f64() * 1000.0
    );
    println!("ahead on {ahead} of {} scenarios", rows.len());
}
