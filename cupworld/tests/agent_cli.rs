//! `eval-agent` end to end on a tiny world model: what it writes, resuming, and refusals.

mod common;
use common::{fails, ok};

const NO_COUNTERFACTUALS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/world_model/no-counterfactuals.json");

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn eval_agent_scores_the_planner_and_its_controls_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("wm");
    let run_s = run.to_str().unwrap();
    #[rustfmt::skip]
    ok(&["train-wm", "--live", "--config", NO_COUNTERFACTUALS, "--out", run_s, "--preset", "tiny", "--steps", "3",
        "--replay-episodes", "4"]);
    let out = dir.path().join("agent");
    let out_s = out.to_str().unwrap();
    #[rustfmt::skip]
    let args = ["eval-agent", "--world-model", run_s, "--task", "push-to-goal", "--protocol", "goal-frame",
        "--episodes", "2", "--control-episodes", "1", "--threads", "1", "--out", out_s];
    let stdout = ok(&args);
    assert!(stdout.contains("report:"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let agents = report["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["agent"].as_str().unwrap()).collect();
    assert_eq!(names, ["planner", "planner-random-init", "planner-copy-last", "random", "zero", "expert"]);
    for a in agents {
        let name = a["agent"].as_str().unwrap();
        let n = a["episodes"].as_u64().unwrap();
        let expected = if name.starts_with("planner-") { 1 } else { 2 };
        assert_eq!(n, expected, "{name}");
        let (rate, lo, hi) = (
            a["success_once"].as_f64().unwrap(),
            a["success_once_interval"][0].as_f64().unwrap(),
            a["success_once_interval"][1].as_f64().unwrap(),
        );
        assert!(lo <= rate && rate <= hi && hi - lo > 0.3, "{name}: {rate} not in [{lo}, {hi}], or too narrow for {n}");
        assert!(a["success_at_end"].as_f64().unwrap() <= rate, "{name}: at end more often than once");
        assert_eq!(a["replan_ms_median"].is_number(), name.starts_with("planner"), "{name}: {a}");
        let length = a["mean_length"].as_f64().unwrap();
        assert!(length > 0.0 && length <= 50.0, "{name}: goal-frame episodes last at most 50 steps, not {length}");
    }
    // At each pair's first replan the planners score the expert's own plan and doing nothing.
    for line in std::fs::read_to_string(out.join("episodes.jsonl")).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let first = &r["first_replan"];
        assert_eq!(first.is_object(), r["agent"].as_str().unwrap().starts_with("planner"), "{r}");
        if first.is_object() {
            for key in ["chosen", "expert", "zero"] {
                assert!(first[key].as_f64().unwrap().is_finite(), "{r}");
            }
            assert!(r["start_step"].as_u64().unwrap() % 4 == 0, "pairs start on model steps: {r}");
        }
        // The trace holds every step acted; the expert's own actions are its labels.
        let trace = r["trace"].as_array().unwrap();
        assert_eq!(trace.len() as u64, r["length"].as_u64().unwrap(), "{r}");
        if r["agent"] == "expert" {
            assert!(trace.iter().all(|s| s["action"] == s["expert"]), "{r}");
        }
    }
    assert!(agents[0]["expert_below_zero"].is_number() && agents[3]["expert_below_zero"].is_null());
    // The expert reaches the goal frames: it is the episode the goal was drawn from.
    assert_eq!(agents[5]["success_once"].as_f64(), Some(1.0), "{}", agents[5]);
    // The first episodes' start and goal images, for a person to look at.
    assert!(out.join("pictures/episode-000-start-goal.png").exists());
    let lines = || std::fs::read_to_string(out.join("episodes.jsonl")).unwrap().lines().count();
    assert_eq!(lines(), 2 + 1 + 1 + 2 + 2 + 2);

    // Rerun: everything is done, nothing is redone; a cut-off last line is redone.
    ok(&args);
    assert_eq!(lines(), 10);
    let text = std::fs::read_to_string(out.join("episodes.jsonl")).unwrap();
    let cut = &text[..text.trim_end().rfind('\n').unwrap() + 20];
    std::fs::write(out.join("episodes.jsonl"), cut).unwrap();
    ok(&args);
    let text = std::fs::read_to_string(out.join("episodes.jsonl")).unwrap();
    assert_eq!(text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count(), 10);

    // Other options into the same folder are refused, naming the difference.
    let mut other = args.to_vec();
    other.extend(["--horizon", "3"]);
    let e = fails(&other);
    assert!(e.contains("planner.horizon") && e.contains("choose another --out"), "{e}");
    // A world model that is not there, and a task that does not exist.
    let e = fails(&["eval-agent", "--world-model", "/nonexistent/wm", "--task", "push-to-goal", "--out", out_s]);
    assert!(e.contains("/nonexistent/wm"), "{e}");
    let e = fails(&["eval-agent", "--world-model", run_s, "--task", "juggle", "--out", out_s]);
    assert!(e.contains("juggle"), "{e}");

    // The probe cost: refused without a probe or with one of another model's size; with a probe
    // that fits, the planner plans on where it reads the cup.
    let probe_out = dir.path().join("probe-agent");
    #[rustfmt::skip]
    let probe_args = |probe: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = ["eval-agent", "--world-model", run_s, "--task", "knock-off", "--protocol", "task",
            "--episodes", "1", "--controls", "false", "--threads", "1", "--cost", "probe", "--out",
            probe_out.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
        if let Some(p) = probe {
            v.extend(["--probe".to_string(), p.to_string()]);
        }
        v
    };
    let e = fails(&refs(&probe_args(None)));
    assert!(e.contains("--probe"), "{e}");
    let write_probe = |name: &str, features: i64| {
        let path = dir.path().join(name);
        let weight = tch::Tensor::ones([features, 2], (tch::Kind::Float, tch::Device::Cpu)) * 0.01;
        let bias = tch::Tensor::from_slice(&[0.0f32, 0.0]);
        tch::Tensor::write_safetensors(&[("weight", &weight), ("bias", &bias)], &path).unwrap();
        path.to_str().unwrap().to_string()
    };
    let wrong = write_probe("wrong.safetensors", 7);
    let e = fails(&refs(&probe_args(Some(&wrong))));
    assert!(e.contains("wrong.safetensors") && e.contains("[7, 2]"), "{e}");
    let fits = write_probe("probe.safetensors", 16 * 16); // tiny: 4×4 patches × 16 dims
    ok(&refs(&probe_args(Some(&fits))));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(probe_out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["planner"]["energy"]["cost"], "probe", "{report}");
    assert_eq!(report["agents"][0]["episodes"], 1, "{report}");
}

/// `train-agent` (cloning on a `gen` dataset, then a DAgger round) and `eval-agent --agent
/// policy` as a user runs them: what they write, and the refusals.
#[test]
fn train_agent_then_eval_agent_scores_the_policy_beside_its_cloning_self_and_the_controls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    #[rustfmt::skip]
    ok(&["gen", "--task", "push-to-goal", "--episodes", "3", "--seed", "5", "--max-steps", "14", "--slots", "8",
        "--out", data_s]);
    let wm = dir.path().join("wm");
    let wm_s = wm.to_str().unwrap();
    #[rustfmt::skip]
    ok(&["train-wm", "--data", data_s, "--config", NO_COUNTERFACTUALS, "--out", wm_s, "--preset", "tiny", "--steps", "2"]);
    let small = dir.path().join("small.json");
    std::fs::write(&small, r#"{"mamba": {"d_model": 16, "n_layers": 1}, "moe": {"d_hidden": 16}}"#).unwrap();
    let run = dir.path().join("agent");
    let run_s = run.to_str().unwrap();
    #[rustfmt::skip]
    let train = ["train-agent", "--world-model", wm_s, "--data", data_s, "--task", "push-to-goal", "--out", run_s,
        "--config", small.to_str().unwrap(), "--cloning-steps", "4", "--dagger-rounds", "1", "--dagger-episodes", "1",
        "--dagger-steps", "2", "--checkpoint-every", "2", "--batch", "2", "--threads", "1"];
    let stdout = ok(&train);
    assert!(stdout.contains("DAgger round 0") && stdout.contains("policy:"), "{stdout}");
    for f in
        ["config.json", "metrics.jsonl", "cloning.safetensors", "policy.safetensors", "rounds/round-00.safetensors"]
    {
        assert!(run.join(f).exists(), "{f}");
    }
    // A finished run reruns as a no-op; other options are refused, naming the key.
    let lines = || std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count();
    let before = lines();
    ok(&train);
    assert_eq!(lines(), before);
    let mut other = train.to_vec();
    other.extend(["--lr", "0.5"]);
    let e = fails(&other);
    assert!(e.contains("lr") && e.contains("choose another --out"), "{e}");
    // A config overlay naming a key the policy does not have.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"moe": {"experts": 3}}"#).unwrap();
    let mut other = train.to_vec();
    let at = other.iter().position(|a| *a == "--config").unwrap() + 1;
    other[at] = bad.to_str().unwrap();
    let e = fails(&other);
    assert!(e.contains("moe.experts") && e.contains("bad.json"), "{e}");

    let out = dir.path().join("eval");
    let out_s = out.to_str().unwrap();
    #[rustfmt::skip]
    let eval = ["eval-agent", "--agent", "policy", "--policy-run", run_s, "--task", "push-to-goal", "--protocol", "task",
        "--episodes", "2", "--control-episodes", "1", "--threads", "1", "--out", out_s];
    ok(&eval);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let agents = report["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["agent"].as_str().unwrap()).collect();
    assert_eq!(names, ["policy", "policy-cloning", "planner", "random", "zero", "expert"]);
    for a in agents {
        let name = a["agent"].as_str().unwrap();
        let planner = name.starts_with("planner");
        assert_eq!(a["episodes"].as_u64().unwrap(), if planner { 1 } else { 2 }, "{name}");
        // Every decision is timed: the policy's steps (150 a task episode it does not finish) and the planner's replans.
        assert_eq!(a["replan_ms_median"].is_number(), planner || name.starts_with("policy"), "{name}: {a}");
        assert_eq!(a["evaluations_per_replan"].is_number(), planner, "{name}: {a}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("the policy decides in") && md.contains("× longer"), "{md}");

    // The same policy drives the paw in the viewer: every control step waits for its decision.
    let view_out = dir.path().join("view");
    #[rustfmt::skip]
    let view = common::view_under_xvfb(&["--policy", "agent", "--agent", run_s, "--task", "push-to-goal",
        "--quality", "low", "--frames", "40", "--out", view_out.to_str().unwrap()]);
    common::succeeded(view, "cupworld view --policy agent");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(view_out.join("view-summary.json")).unwrap()).unwrap();
    let (steps, decisions) = (summary["sim_steps"].as_u64().unwrap(), summary["agent_decisions"].as_u64().unwrap());
    assert!(steps >= 5 && (steps..=steps + 1).contains(&decisions), "{summary}");
    let load: u64 = summary["agent_expert_load"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(load, decisions, "{summary}");
    assert!(summary["agent_decision_ms_median"].as_f64().unwrap() > 0.0, "{summary}");
    let e = fails(&["view", "--policy", "agent", "--frames", "1"]);
    assert!(e.contains("--policy agent needs --agent"), "{e}");
    let e = fails(&["view", "--policy", "expert", "--agent", run_s, "--frames", "1"]);
    assert!(e.contains("--agent drives the paw only with --policy agent"), "{e}");
    // The policy reads its own world model: another one is refused, naming both.
    let other_wm = dir.path().join("wm2");
    #[rustfmt::skip]
    ok(&["train-wm", "--data", data_s, "--config", NO_COUNTERFACTUALS, "--out", other_wm.to_str().unwrap(),
        "--preset", "tiny", "--steps", "2", "--seed", "9"]);
    let eval2 = dir.path().join("eval2");
    let mut other = eval.to_vec();
    other.extend(["--world-model", other_wm.to_str().unwrap()]);
    let at = other.iter().position(|a| *a == "--out").unwrap() + 1;
    other[at] = eval2.to_str().unwrap();
    let e = fails(&other);
    assert!(e.contains("was trained on the world model") && e.contains("wm2"), "{e}");
    // A damaged policy checkpoint is named.
    let policy = run.join("policy.safetensors");
    let mut bytes = std::fs::read(&policy).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&policy, bytes).unwrap();
    let e = fails(&eval);
    assert!(e.contains("policy.safetensors") && e.contains("SHA-256"), "{e}");
}

/// `bench plan` and `bench policy` at the tiny preset: their JSON holds every row they promise.
#[test]
fn bench_plan_and_policy_report_each_solver_and_each_depth() {
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&["bench", "plan", "--preset", "tiny", "--repeats", "1", "--json"])).unwrap();
    let solvers: Vec<&str> =
        plan["solvers"].as_array().unwrap().iter().map(|s| s["solver"].as_str().unwrap()).collect();
    assert_eq!(solvers, ["cem", "mppi", "gd"], "{plan}");
    for s in plan["solvers"].as_array().unwrap() {
        assert!(s["replan_ms_median"].as_f64().unwrap() > 0.0 && s["imagined_per_replan"].as_u64().unwrap() > 0, "{s}");
    }
    for backbone in ["mamba", "attention"] {
        #[rustfmt::skip]
        let policy: serde_json::Value = serde_json::from_str(&ok(&["bench", "policy", "--preset", "tiny",
            "--backbone", backbone, "--depth", "100", "--repeats", "2", "--json"])).unwrap();
        let rows = policy["rows"].as_array().unwrap();
        let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [1, 10, 100], "{policy}");
        for r in rows {
            let (alone, encoded) =
                (r["policy_ms_median"].as_f64().unwrap(), r["with_encoder_ms_median"].as_f64().unwrap());
            assert!(alone > 0.0 && encoded > 0.0, "{r}");
        }
        // Mamba's state is the same size at every depth; attention's cache grows with the episode.
        let bytes: Vec<u64> = rows.iter().map(|r| r["state_bytes"].as_u64().unwrap()).collect();
        match backbone {
            "mamba" => assert!(bytes[0] > 0 && bytes.iter().all(|&b| b == bytes[0]), "{policy}"),
            _ => assert!(bytes.windows(2).all(|w| w[1] > w[0]), "{policy}"),
        }
    }
    let e = fails(&["bench", "policy", "--backbone", "transformer"]);
    assert!(e.contains("--backbone \"transformer\""), "{e}");
}
