//! The resilience engine's properties, checked in virtual time over many seeds and every
//! scenario, sequential and overlapping: calls end by their deadline, no sleep passes the
//! Retry-After cap, nothing is delivered twice or out of order, a call with a healthy endpoint
//! available succeeds, partly available endpoints keep serving (25 % faulted: ≥ 99 % of calls
//! succeed; 60 %: ≥ 80 %), a full outage adds at most half a request per call, calls made
//! after an outage ends succeed, and slow but healthy work (reasoning, long and whole answers)
//! succeeds at its first attempt.

use steadyllm_core::call::{CallConfig, RequestProfile, Timeouts};
use steadyllm_core::time::Duration;
use steadyllm_tests::sim::{
    Behaviour, Scenario, behind, check_properties, compare, compare_dialects, mid_stream_scenarios,
    run_litellm, run_openai_python, run_steadyllm, scenarios,
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
fn resumed_answers_are_whole_and_never_regenerated() {
    for seed in 0..5 {
        for (s, r) in mid_stream_scenarios()
            .iter()
            .zip(compare_dialects(&CallConfig::default(), seed))
        {
            let s = &small(s);
            // The contrast: chat completions fail broken answers, or regenerate them.
            assert!(r.chat.success_rate() < 0.99, "{} {seed}", r.scenario);
            assert!(r.chat_restart.regenerated() > 0, "{} {seed}", r.scenario);
            // Resumed: nothing generated twice, nothing delivered twice or out of order
            // (the properties), and at least as many answers as a restart gets.
            assert_eq!(r.responses.regenerated(), 0, "{} {seed}", r.scenario);
            let v = check_properties(s, &CallConfig::default(), &r.responses);
            assert!(v.is_empty(), "{} {seed}: {v:?}", r.scenario);
            assert!(
                r.responses.success_rate() >= r.chat_restart.success_rate(),
                "{} {seed}",
                r.scenario
            );
            // What fails is a call whose faults outlast its deadline (three stalls in a row
            // take a small request's two minutes), never a resume given up early.
            for c in r.responses.calls.iter().filter(|c| !c.ok) {
                let e = c.error.as_deref().unwrap_or_default();
                assert!(
                    e.starts_with("deadline exceeded"),
                    "{} {seed}: {e}",
                    r.scenario
                );
                assert!(c.attempts >= 3, "{} {seed}: {e}", r.scenario);
            }
            if r.scenario == "reset-mid-answer" {
                assert_eq!(r.responses.success_rate(), 1.0, "{seed}");
            }
        }
    }
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

#[test]
fn ahead_of_both_peers_on_every_faulty_scenario() {
    let rows = compare(&CallConfig::default(), 42);
    let descriptions = scenarios();
    let behind: Vec<_> = rows
        .iter()
        .zip(&descriptions)
        .filter(|(r, s)| s.faulty() && !r.ahead())
        .map(|(r, _)| r.scenario)
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
fn slow_healthy_work_gets_through_with_the_defaults_and_not_without_them() {
    let slow: Vec<Scenario> = scenarios().into_iter().filter(|s| s.slow).collect();
    assert_eq!(slow.len(), 5);
    let config = CallConfig::default();
    for s in &slow {
        for seed in 0..20u64 {
            let ours = run_steadyllm(s, &config, seed);
            let v = check_properties(s, &config, &ours);
            assert!(
                v.is_empty(),
                "{} seed {seed}: {:?}",
                s.name,
                &v[..v.len().min(3)]
            );
            let py = run_openai_python(s, seed);
            let llm = run_litellm(s, seed);
            assert!(
                !behind(&ours, &py) && !behind(&ours, &llm),
                "{} seed {seed}: behind a peer",
                s.name
            );
        }
    }
    // The same work with the old fixed table (the small-prompt tier for every request, a total
    // deadline that does not grow): every one of these scenarios fails, so they test something.
    let fixed = CallConfig {
        timeouts: Some(Timeouts {
            total_per_kib: Duration::from_millis(0),
            ..Timeouts::for_profile(RequestProfile::default())
        }),
        ..CallConfig::default()
    };
    for s in &slow {
        let r = run_steadyllm(s, &fixed, 42);
        assert!(
            r.calls.iter().any(|c| !c.ok || c.attempts > 1),
            "{}: passes even with the old timeouts",
            s.name
        );
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
