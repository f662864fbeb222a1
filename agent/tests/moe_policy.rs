//! MoE routing properties and the policy's step/sequence agreement and checkpoint round-trip.

use agent::{MambaMoePolicy, Moe, MoeConfig, PolicyConfig, Scan};
use tch::{Device, Kind, Tensor, nn};

static SEED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn moe(cfg: MoeConfig) -> (nn::VarStore, Moe) {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Moe::new(vs.root() / "moe", &cfg);
    (vs, m)
}

fn small(experts: i64, k: i64) -> MoeConfig {
    MoeConfig { d_model: 16, d_hidden: 32, n_experts: experts, top_k: k, ..Default::default() }
}

#[test]
fn gates_sum_to_one_over_exactly_k_distinct_experts() {
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    for (e, k) in [(8, 1), (8, 2), (4, 3)] {
        let (_vs, m) = moe(MoeConfig { shared_expert: true, ..small(e, k) });
        let x = Tensor::randn([50, 16], (Kind::Float, Device::Cpu));
        let out = m.forward(&x);
        assert_eq!(out.experts.size(), [50, k]);
        let sums = out.gates.sum_dim_intlist(-1, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-6);
        for t in 0..50 {
            let mut chosen: Vec<i64> = Vec::try_from(out.experts.get(t)).unwrap();
            chosen.sort();
            chosen.dedup();
            assert_eq!(chosen.len() as i64, k, "token {t}: experts {chosen:?}");
        }
        assert_eq!(out.y.size(), [50, 16]);
    }
}

/// Routing logits that send token j to expert j mod E with margin `c`; `skew` sends all to 0.
fn forced_logits(tokens: i64, experts: i64, c: f64, skew: bool) -> Tensor {
    let target = if skew {
        Tensor::zeros([tokens], (Kind::Int64, Device::Cpu))
    } else {
        Tensor::arange(tokens, (Kind::Int64, Device::Cpu)).remainder(experts)
    };
    target.one_hot(experts).to_kind(Kind::Float) * c
}

#[test]
fn balance_loss_equals_its_weight_at_uniform_routing_and_grows_with_imbalance() {
    // libtorch's RNG is global: tests that draw from it run one at a time, so seeded ones stay seeded.
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = MoeConfig { balance_loss_weight: 0.01, z_loss_weight: 0.0, ..small(8, 1) };
    let (_vs, m) = moe(cfg);
    let x = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
    let uniform = m.forward_with_logits(&x, &forced_logits(64, 8, 3.0, false));
    assert!((uniform.balance_loss.double_value(&[]) - 1.0).abs() < 1e-5);
    assert!((uniform.aux_loss.double_value(&[]) - 0.01).abs() < 1e-7, "aux = weight at uniform routing");
    assert!(uniform.metrics.load_cv < 1e-9 && uniform.metrics.dead_experts == 0);
    let mut last = 1.0;
    for c in [1.0, 3.0, 6.0] {
        let skewed = m.forward_with_logits(&x, &forced_logits(64, 8, c, true));
        let b = skewed.balance_loss.double_value(&[]);
        assert!(b > last, "balance loss {b} did not grow with imbalance (c = {c})");
        assert_eq!(skewed.metrics.dead_experts, 7);
        last = b;
    }
}

#[test]
fn bias_balancing_evens_out_a_skewed_router_without_gradients() {
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(1);
    let cfg = MoeConfig { bias_balancing: true, bias_update_rate: 0.01, ..small(4, 1) };
    let (_vs, mut m) = moe(cfg);
    let x = Tensor::randn([256, 16], (Kind::Float, Device::Cpu));
    // A router that prefers expert 0 for most tokens.
    let logits = m.router_logits(&x).detach() + forced_logits(256, 4, 1.5, true);
    let before = m.forward_with_logits(&x, &logits).metrics;
    for _ in 0..300 {
        let out = tch::no_grad(|| m.forward_with_logits(&x, &logits));
        m.update_bias(&out.metrics);
    }
    let after = m.forward_with_logits(&x, &logits).metrics;
    assert!(before.load_cv > 0.8, "router not skewed to begin with: cv {}", before.load_cv);
    assert!(after.load_cv < 0.25, "bias balancing left cv at {} (from {})", after.load_cv, before.load_cv);
    let bias = m.selection_bias();
    assert!(bias[0] < 0.0, "the overloaded expert's bias went down: {bias:?}");
}

#[test]
fn compute_follows_k_not_the_number_of_experts() {
    // libtorch's RNG is global: tests that draw from it run one at a time, so seeded ones stay seeded.
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    let x = Tensor::randn([100, 16], (Kind::Float, Device::Cpu));
    for k in [1, 2] {
        for e in [4, 16, 64] {
            let (_vs, m) = moe(small(e, k));
            let out = m.forward(&x);
            assert_eq!(out.metrics.computed, (100 * k) as usize, "E = {e}, k = {k}");
        }
    }
}

#[test]
fn capacity_factor_drops_overflow_tokens() {
    // libtorch's RNG is global: tests that draw from it run one at a time, so seeded ones stay seeded.
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = MoeConfig { capacity_factor: Some(1.0), ..small(4, 1) };
    let (_vs, m) = moe(cfg);
    let x = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
    let out = m.forward_with_logits(&x, &forced_logits(64, 4, 5.0, true));
    // Capacity 64/4 = 16 for expert 0; the other 48 assignments are dropped (pass through as 0).
    assert_eq!(out.metrics.dropped, 48);
    assert_eq!(out.metrics.computed, 16);
    let zero_rows = out.y.abs().sum_dim_intlist(-1, false, Kind::Float).eq(0.0).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(zero_rows, 48);
}

fn policy_cfg() -> PolicyConfig {
    PolicyConfig {
        obs_dim: 12,
        goal_dim: 3,
        action_dim: 2,
        mamba: agent::MambaConfig { d_model: 32, n_layers: 2, d_state: 8, chunk_size: 4, ..Default::default() },
        moe: MoeConfig { d_hidden: 32, n_experts: 4, top_k: 2, shared_expert: true, ..Default::default() },
        ..Default::default()
    }
}

#[test]
fn policy_step_mode_matches_sequence_mode() {
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = policy_cfg();
    let policy = MambaMoePolicy::new(vs.root() / "policy", &cfg).unwrap();
    let (b, l) = (3, 11);
    let opts = (Kind::Float, Device::Cpu);
    let (obs, act, goal) =
        (Tensor::randn([b, l, 12], opts), Tensor::randn([b, l, 2], opts), Tensor::randn([b, l, 3], opts));
    let seq = tch::no_grad(|| policy.forward(&obs, &act, &goal, Scan::Chunked));
    let mut state = policy.zero_state(b, Device::Cpu);
    let bytes = state.bytes();
    for t in 0..l {
        let out = tch::no_grad(|| policy.step(&obs.select(1, t), &act.select(1, t), &goal.select(1, t), &mut state));
        for (name, a, s) in
            [("mean", &seq.mean, &out.mean), ("log_std", &seq.log_std, &out.log_std), ("value", &seq.value, &out.value)]
        {
            let d = (a.select(1, t) - s).abs().max().double_value(&[]);
            assert!(d < 1e-4, "t = {t}: {name} differs by {d}");
        }
        assert_eq!(state.bytes(), bytes, "state grew");
    }
    let (action, log_prob) = seq.sample();
    assert!(action.abs().max().double_value(&[]) <= 1.0);
    assert!(bool::try_from(log_prob.isfinite().all()).unwrap());
}

#[test]
fn invalid_configs_are_refused_with_the_key() {
    // libtorch's RNG is global: tests that draw from it run one at a time, so seeded ones stay seeded.
    let _seed = SEED.lock().unwrap_or_else(|e| e.into_inner());
    let bad = PolicyConfig { moe: MoeConfig { top_k: 9, n_experts: 4, ..Default::default() }, ..policy_cfg() };
    let vs = nn::VarStore::new(Device::Cpu);
    let err = MambaMoePolicy::new(vs.root(), &bad).unwrap_err();
    assert!(err.to_string().contains("top_k"), "{err}");
}
