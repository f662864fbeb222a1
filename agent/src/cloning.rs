//! Imitation: the loss that makes the policy act as its teacher does, and how its experts split
//! by task (per-task load and the mutual information between task and expert).

use tch::{Kind, Tensor};

use crate::policy::PolicyOutput;

/// Weight of the spread's likelihood term: it only shapes `log_std` (the mean is detached there).
const SPREAD_WEIGHT: f64 = 0.01;
/// Weight of the value head's regression onto the discounted return.
const VALUE_WEIGHT: f64 = 0.1;

/// One batch's cloning loss and its parts (plain numbers for the metrics).
pub struct CloningLoss {
    pub total: Tensor,
    /// Mean over real steps of the squared distance between the policy's action and the teacher's.
    pub action_mse: f64,
    pub spread_nll: f64,
    pub value_mse: f64,
}

/// `out` from [`crate::MambaMoePolicy::forward`] over `[b, l]`; `teacher [b, l, a]` in `[-1, 1]`;
/// `returns [b, l]` (the value head's target); `mask [b, l]` is 1 on real steps, 0 on padding.
pub fn cloning_loss(out: &PolicyOutput, teacher: &Tensor, returns: &Tensor, mask: &Tensor) -> CloningLoss {
    let n = mask.sum(Kind::Float).clamp_min(1.0);
    let masked_mean = |x: &Tensor| (x * mask).sum(Kind::Float) / &n;
    let action = masked_mean(&(out.mode() - teacher).square().sum_dim_intlist(-1, false, Kind::Float));
    // The teacher's action before the squash (clamped: ±1 has none), scored under the spread.
    let pre = teacher.clamp(-0.995, 0.995).atanh();
    let z = (pre - out.mean.detach()) / out.log_std.exp();
    let nll = masked_mean(&(z.square() * 0.5 + &out.log_std).sum_dim_intlist(-1, false, Kind::Float));
    let value = masked_mean(&(&out.value - returns).square());
    let total = &action + &nll * SPREAD_WEIGHT + &value * VALUE_WEIGHT + &out.aux_loss;
    CloningLoss {
        action_mse: action.double_value(&[]),
        spread_nll: nll.double_value(&[]),
        value_mse: value.double_value(&[]),
        total,
    }
}

/// Discounted returns-to-go of `rewards`, scaled by `1 − γ` so a value reads in reward units.
pub fn returns_to_go(rewards: &[f32], gamma: f32) -> Vec<f32> {
    let mut out = vec![0.0; rewards.len()];
    let mut acc = 0.0;
    for (i, r) in rewards.iter().enumerate().rev() {
        acc = r + gamma * acc;
        out[i] = acc * (1.0 - gamma);
    }
    out
}

/// Counts of top-1 experts per task: `experts [b, l, k]` (best first), `task [b]` (0-based),
/// `mask [b, l]`; `counts[task][expert]` accumulates.
pub fn count_experts(counts: &mut [Vec<f64>], experts: &Tensor, task: &[usize], mask: &Tensor) {
    let top: Vec<i64> = Vec::try_from(experts.select(-1, 0).reshape([-1]).to_kind(Kind::Int64)).unwrap_or_default();
    let real: Vec<f32> = Vec::try_from(mask.reshape([-1]).to_kind(Kind::Float)).unwrap_or_default();
    let l = experts.size()[1] as usize;
    for (i, (&e, &m)) in top.iter().zip(&real).enumerate() {
        if m > 0.0
            && let Some(row) = counts.get_mut(task[i / l])
            && let Some(c) = row.get_mut(e as usize)
        {
            *c += 1.0;
        }
    }
}

/// Mutual information (bits) between task and expert in a table of joint counts.
pub fn mutual_information(counts: &[Vec<f64>]) -> f64 {
    let total: f64 = counts.iter().flatten().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let experts = counts.iter().map(|r| r.len()).max().unwrap_or(0);
    let p_task: Vec<f64> = counts.iter().map(|r| r.iter().sum::<f64>() / total).collect();
    let p_expert: Vec<f64> =
        (0..experts).map(|e| counts.iter().map(|r| r.get(e).copied().unwrap_or(0.0)).sum::<f64>() / total).collect();
    let mut mi = 0.0;
    for (t, row) in counts.iter().enumerate() {
        for (e, &c) in row.iter().enumerate() {
            let p = c / total;
            if p > 0.0 {
                mi += p * (p / (p_task[t] * p_expert[e])).log2();
            }
        }
    }
    mi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutual_information_is_one_bit_when_each_task_has_its_expert_and_zero_when_shared() {
        assert!((mutual_information(&[vec![10.0, 0.0], vec![0.0, 10.0]]) - 1.0).abs() < 1e-12);
        assert!(mutual_information(&[vec![5.0, 5.0], vec![5.0, 5.0]]).abs() < 1e-12);
        let partial = mutual_information(&[vec![8.0, 2.0], vec![2.0, 8.0]]);
        assert!(partial > 0.2 && partial < 0.3, "{partial}");
    }

    #[test]
    fn returns_to_go_discount_and_scale() {
        let r = returns_to_go(&[1.0, 1.0, 1.0], 0.5);
        // 1 + 0.5 + 0.25, 1 + 0.5, 1, each × 0.5.
        assert_eq!(r, vec![0.875, 0.75, 0.5]);
    }
}
