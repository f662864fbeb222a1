//! The agent evaluation's report: per agent, success with its Wilson interval and the rest,
//! typed first (`report.json`), then as Markdown (`report.md`).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{AgentEvalOptions, AgentKind, EpisodeResult};

/// The Wilson score interval (95%) of `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (z, n_f) = (1.959_964, n as f64);
    let p = k as f64 / n_f;
    let denom = 1.0 + z * z / n_f;
    let centre = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt() / denom;
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// The share of episodes with a first-replan record for which `test` holds.
fn share(results: &[&EpisodeResult], test: impl Fn(&super::FirstReplan) -> bool) -> Option<f64> {
    let firsts: Vec<_> = results.iter().filter_map(|r| r.first_replan).collect();
    (!firsts.is_empty()).then(|| firsts.iter().filter(|f| test(f)).count() as f64 / firsts.len() as f64)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentSummary {
    pub agent: String,
    pub episodes: u64,
    /// ManiSkill's `success_once`: the goal was met at some step.
    pub success_once: f64,
    pub success_once_interval: [f64; 2],
    /// ManiSkill's `success_at_end`: the goal was met at the last step.
    pub success_at_end: f64,
    pub mean_final_distance: f64,
    pub mean_length: f64,
    /// A decision's wall-clock time: a planner's replan, a policy's step (its frame encoded).
    pub replan_ms_median: Option<f64>,
    pub replan_ms_p90: Option<f64>,
    pub evaluations_per_replan: Option<f64>,
    /// Goal-frame pairs, planners: the share whose expert plan (the actions that reached the goal
    /// frame) the energy scores below doing nothing: how often the energy points the right way.
    pub expert_below_zero: Option<f64>,
    /// ... and below the plan the planner chose: how often the search missed a better plan.
    pub expert_below_chosen: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub task: String,
    pub protocol: String,
    pub world_model: String,
    pub planner: serde_json::Value,
    pub adapter: String,
    pub agents: Vec<AgentSummary>,
}

impl Report {
    pub fn new(opts: &AgentEvalOptions, results: &[EpisodeResult], adapter: &str) -> Report {
        let agents = AgentKind::ALL
            .iter()
            .filter_map(|kind| {
                let mine: Vec<&EpisodeResult> = results.iter().filter(|r| r.agent == kind.name()).collect();
                if mine.is_empty() {
                    return None;
                }
                let n = mine.len() as u64;
                let once = mine.iter().filter(|r| r.success_once).count() as u64;
                let at_end = mine.iter().filter(|r| r.success_at_end).count() as f64;
                let mut replans: Vec<f64> = mine.iter().flat_map(|r| r.replan_ms.iter().copied()).collect();
                replans.sort_by(f64::total_cmp);
                let planned = !replans.is_empty();
                Some(AgentSummary {
                    agent: kind.name().to_string(),
                    episodes: n,
                    success_once: once as f64 / n as f64,
                    success_once_interval: wilson(once, n),
                    success_at_end: at_end / n as f64,
                    mean_final_distance: mine.iter().map(|r| r.final_distance as f64).sum::<f64>() / n as f64,
                    mean_length: mine.iter().map(|r| r.length as f64).sum::<f64>() / n as f64,
                    replan_ms_median: planned.then(|| quantile(&replans, 0.5)),
                    replan_ms_p90: planned.then(|| quantile(&replans, 0.9)),
                    evaluations_per_replan: (planned && kind.plans())
                        .then(|| mine.iter().map(|r| r.evaluations_per_replan).sum::<f64>() / n as f64),
                    expert_below_zero: share(&mine, |f| f.expert < f.zero),
                    expert_below_chosen: share(&mine, |f| f.expert < f.chosen),
                })
            })
            .collect();
        Report {
            task: opts.task.name().to_string(),
            protocol: opts.protocol.name().to_string(),
            world_model: opts.world_model.display().to_string(),
            planner: serde_json::to_value(&opts.planner).unwrap_or_default(),
            adapter: adapter.to_string(),
            agents,
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Agent evaluation: {}, {} protocol\n\nWorld model `{}`; planner `{}`; frames drawn on {}.\n\n",
            self.task, self.protocol, self.world_model, self.planner, self.adapter
        );
        s += "| agent | episodes | success (once) | 95% interval | success at end | final distance (m) | length | decision median / p90 (ms) | imagined per replan |\n";
        s += "|---|---|---|---|---|---|---|---|---|\n";
        for a in &self.agents {
            let replan = match (a.replan_ms_median, a.replan_ms_p90) {
                (Some(m), Some(p)) => format!("{m:.0} / {p:.0}"),
                _ => "—".into(),
            };
            let evals = a.evaluations_per_replan.map_or("—".into(), |e| format!("{e:.0}"));
            s += &format!(
                "| {} | {} | {:.2} | {:.2}–{:.2} | {:.2} | {:.3} | {:.1} | {} | {} |\n",
                a.agent,
                a.episodes,
                a.success_once,
                a.success_once_interval[0],
                a.success_once_interval[1],
                a.success_at_end,
                a.mean_final_distance,
                a.mean_length,
                replan,
                evals
            );
        }
        for a in self.agents.iter().filter(|a| a.expert_below_zero.is_some()) {
            s += &format!(
                "\n{}: at the first replan the energy scored the expert's own next actions (which reached the goal \
                 frame) below doing nothing in {:.0}% of pairs, and below the planner's choice in {:.0}%.\n",
                a.agent,
                100.0 * a.expert_below_zero.unwrap_or(f64::NAN),
                100.0 * a.expert_below_chosen.unwrap_or(f64::NAN)
            );
        }
        let median = |name: &str| self.agents.iter().find(|a| a.agent == name).and_then(|a| a.replan_ms_median);
        if let (Some(policy), Some(planner)) = (median("policy"), median("planner")) {
            s += &format!(
                "\nA decision is a planner's replan (once per model step) or a policy's step (every control step, \
                 the frame's encoding included): the policy decides in {policy:.1} ms, the planner in {planner:.0} ms, \
                 {:.0}× longer.\n",
                planner / policy
            );
        }
        let controls: Vec<&str> = self
            .agents
            .iter()
            .map(|a| a.agent.as_str())
            .filter(|a| matches!(*a, "planner-random-init" | "planner-copy-last" | "random" | "zero"))
            .collect();
        if !controls.is_empty() {
            s += &format!(
                "\nSuccess that the controls ({}) also reach is not the world model's.\n",
                controls.join(", ")
            );
        }
        s
    }

    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::write(out.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(out.join("report.md"), self.markdown())?;
        Ok(())
    }
}
