//! The resilience engine's properties, checked in virtual time over many seeds and every
//! scenario, sequential and overlapping: calls end by their deadline, no sleep passes the
//! Retry-After cap, nothing is delivered twice or out of order, a call with a healthy endpoint
//! available succeeds, partly available endpoints keep serving (25 % faulted: ≥ 99 % of calls
//! succeed; 60 %: ≥ 80 %), a full outage adds at most half a request per call, and calls made
//! after an outage ends succeed.

use steadyllm_core::call::CallConfig;
use steadyllm_tests::sim::{
    Behaviour, Scenario, check_properties, compare, run_litellm, run_openai_python, run_steadyllm,
    scenarios,
};

/// Sequential scenarios shortened to 300 calls; overlapping ones keep their 400.
fn small(s: &Scenario) -> Scenario {
    Scenario {
        calls: if s.concurrent() { s.calls } else { 300 },
        ..*s
    }
}

#[test]
fn properties_hold_for_every_scenario_and_seed() {
    let config = CallConfig::default();
    let mut runs = 0;
    for s in scenarios() {
        let s = small(&s);
        for seed in 0..20u64 {
            let r = run_steadyllm(&s, &config, seed);
            let v = check_properties(&s, &config, &r);
            assert!(
                v.is_empty(),
                "scenario {} seed {seed}: {:?}",
                s.name,
                &v[..v.len().min(5)]
            );
            runs += 1;
        }
    }
    eprintln!("simulate: {runs} runs checked");
}

#[test]
fn properties_hold_with_restart_and_decorrelated_jitter() {
    let config = CallConfig {
        restart_on_partial: true,
        jitter: steadyllm_core::call::Jitter::Decorrelated,
        ..CallConfig::default()
    };
    for s in scenarios() {
        let s = small(&s);
        for seed in 100..105u64 {
            let r = run_steadyllm(&s, &config, seed);
            let v = check_properties(&s, &config, &r);
            assert!(
                v.is_empty(),
                "scenario {} seed {seed}: {:?}",
                s.name,
                &v[..v.len().min(5)]
            );
        }
    }
}

#[test]
fn restart_mode_recovers_streams_that_stall_mid_answer() {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == "stall-mid-stream")
        .expect("scenario");
    let default = run_steadyllm(&s, &CallConfig::default(), 1);
    let restart = run_steadyllm(
        &s,
        &CallConfig {
            restart_on_partial: true,
            ..CallConfig::default()
        },
        1,
    );
    assert!(
        default.success_rate() < 0.99,
        "partial answers are failures by default"
    );
    assert!(restart.success_rate() > 0.99, "{}", restart.success_rate());
}

#[test]
fn the_checks_catch_a_policy_without_deadlines_or_budget() {
    // openai-python's policy breaks the properties ours keeps: the checks are not vacuous.
    let config = CallConfig::default();
    let by_name = |n: &str| {
        scenarios()
            .into_iter()
            .find(|s| s.name == n)
            .expect("scenario")
    };
    let stall = by_name("stall-before-headers");
    let v = check_properties(&stall, &config, &run_openai_python(&stall, 1));
    assert!(v.iter().any(|m| m.contains("no deadline")), "{v:?}");
    let outage = by_name("full-outage");
    let v = check_properties(&outage, &config, &run_openai_python(&outage, 1));
    assert!(
        v.iter().any(|m| m.contains("outage amplification")),
        "{v:?}"
    );
    let dead = by_name("primary-dead");
    let v = check_properties(&dead, &config, &run_openai_python(&dead, 1));
    assert!(
        v.iter().any(|m| m.contains("healthy endpoint existed")),
        "{v:?}"
    );
}

#[test]
fn a_seed_reproduces_its_run() {
    let s = small(&scenarios()[3]);
    let a = run_steadyllm(&s, &CallConfig::default(), 77);
    let b = run_steadyllm(&s, &CallConfig::default(), 77);
    let key = |r: &steadyllm_tests::sim::RunResult| {
        r.calls
            .iter()
            .map(|c| (c.end_ms, c.attempts, c.ok))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
}

#[test]
fn scenarios_do_what_they_say() {
    let mut rng = steadyllm_core::rng::Rng::new(1);
    let by_name = |n: &str| {
        scenarios()
            .into_iter()
            .find(|s| s.name == n)
            .expect("scenario")
    };
    assert_eq!(
        (by_name("primary-dead").behaviour)(0, 0, &mut rng),
        Behaviour::Refuse
    );
    assert_eq!(
        (by_name("primary-dead").behaviour)(1, 0, &mut rng),
        Behaviour::Ok
    );
    assert_eq!(
        (by_name("full-outage").behaviour)(1, 5, &mut rng),
        Behaviour::Status(503, None)
    );
}

/// Rows where steadyllm is not ahead of both peers (README, "The resilience engine"): the
/// 503 storm, where LiteLLM's 3 + 3 attempts on two endpoints tie its success rate with a
/// shorter p99; and outages that end mid-run, where a peer's call that meets a stall waits
/// 600 s and so outlasts the outage, while steadyllm's calls fail once the budget is spent.
const NOT_AHEAD: [&str; 4] = [
    "503-storm",
    "batch8-outage-ends-1ep",
    "batch8-outage-ends-2ep",
    "bursts8-outage-ends-2ep",
];

#[test]
fn ahead_of_both_peers_on_every_other_faulty_scenario() {
    let rows = compare(&CallConfig::default(), 42);
    let behind: Vec<_> = rows
        .iter()
        .filter(|r| r.scenario != "healthy" && !r.ahead())
        .map(|r| r.scenario)
        .filter(|s| !NOT_AHEAD.contains(s))
        .collect();
    assert!(behind.is_empty(), "not ahead of both peers on {behind:?}");
    // The goals' rows (25 % and 60 % faulted, a full outage) are ahead on every seed tried.
    for seed in [1, 2, 3] {
        for r in compare(&CallConfig::default(), seed) {
            if r.scenario.starts_with("batch8-") && !r.scenario.contains("ends") {
                assert!(r.ahead(), "seed {seed}: not ahead on {}", r.scenario);
            }
        }
    }
}

#[test]
fn overlapping_calls_share_one_state_and_stay_within_bounds() {
    // The overlapping rows, seed by seed: the checks above, plus the peers for contrast.
    let config = CallConfig::default();
    let over: Vec<_> = scenarios().into_iter().filter(|s| s.concurrent()).collect();
    assert_eq!(
        over.len(),
        16,
        "4 fault schedules × 2 arrival processes × 1 or 2 endpoints"
    );
    let outage = over
        .iter()
        .find(|s| s.name == "batch8-outage-1ep")
        .expect("scenario");
    let ours = run_steadyllm(outage, &config, 3);
    assert!(ours.amplification() <= 1.5, "{}", ours.amplification());
    assert!(run_openai_python(outage, 3).amplification() > 1.5);
    assert!(run_litellm(outage, 3).amplification() > 1.5);
    let sixty = over
        .iter()
        .find(|s| s.name == "batch8-60pct-1ep")
        .expect("scenario");
    assert!(run_steadyllm(sixty, &config, 3).success_rate() >= 0.8);
    assert!(run_openai_python(sixty, 3).success_rate() < 0.8);
}
