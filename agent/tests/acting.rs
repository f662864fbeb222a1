//! The policy as an agent: stepping an episode gives what training's whole-sequence pass gives,
//! and its checkpoint comes back whole or is refused by name.

use agent::acting::{PolicyActor, PolicyRecord, frame_features, load_policy, save_policy};
use agent::mamba::{MambaConfig, Scan};
use agent::moe::MoeConfig;
use agent::{Backbone, MambaMoePolicy, PolicyConfig, Routing};
use tch::{Device, Kind, Tensor, nn};

fn config(routing: Routing) -> PolicyConfig {
    PolicyConfig {
        obs_dim: 5 * 3,
        goal_dim: 5 * 3,
        mamba: MambaConfig { d_model: 16, n_layers: 2, ..Default::default() },
        moe: MoeConfig { d_model: 16, d_hidden: 16, n_experts: 4, top_k: 2, ..Default::default() },
        routing,
        ..PolicyConfig::default()
    }
}

#[test]
fn frame_features_keep_the_grid_and_append_its_mean() {
    let latents = Tensor::arange(2 * 4 * 3, (Kind::Float, Device::Cpu)).reshape([2, 4, 3]);
    let f = frame_features(&latents);
    assert_eq!(f.size(), [2, 4 * 3 + 3]);
    assert!(f.narrow(1, 0, 12).equal(&latents.reshape([2, 12])));
    assert!(f.narrow(1, 12, 3).allclose(&latents.mean_dim(1, false, Kind::Float), 1e-6, 1e-6, false));
}

#[test]
fn stepping_an_episode_gives_the_whole_sequence_pass_for_both_routings_and_backbones() {
    for (routing, backbone) in
        [(Routing::Goal, Backbone::Mamba), (Routing::Token, Backbone::Mamba), (Routing::Goal, Backbone::Attention)]
    {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut policy = MambaMoePolicy::new(vs.root(), &PolicyConfig { backbone, ..config(routing) }).unwrap();
        let (b, l) = (3, 12);
        let obs = Tensor::randn([b, l, 15], (Kind::Float, Device::Cpu));
        let goal = Tensor::randn([b, 15], (Kind::Float, Device::Cpu));
        policy.set_route_center(&Tensor::randn([7, 15], (Kind::Float, Device::Cpu)));
        let taken = Tensor::rand([b, l, 2], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let prev = Tensor::cat(&[Tensor::zeros([b, 1, 2], (Kind::Float, Device::Cpu)), taken.narrow(1, 0, l - 1)], 1);
        let whole =
            tch::no_grad(|| policy.forward(&obs, &prev, &goal.unsqueeze(1).expand([b, l, 15], false), Scan::Chunked));
        let mut actor = PolicyActor::new(&policy, &goal);
        let mut state_bytes = vec![];
        for t in 0..l {
            let out = actor.step(&obs.select(1, t));
            let diff = (out.mean - whole.mean.select(1, t)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{routing:?} {backbone:?} step {t}: {diff}");
            assert!(
                out.experts.equal(&whole.experts.select(1, t)),
                "{routing:?} {backbone:?} step {t}: routed elsewhere"
            );
            actor.taken(&taken.select(1, t));
            state_bytes.push(actor.state_bytes());
        }
        // Mamba carries the episode in a constant state; attention's cache grows by a step each step.
        match backbone {
            Backbone::Mamba => assert!(state_bytes.iter().all(|&b| b == state_bytes[0])),
            Backbone::Attention => assert!(state_bytes.windows(2).all(|w| w[1] - w[0] == state_bytes[0])),
        }
        if routing == Routing::Goal {
            // One expert choice per goal, held for the whole episode.
            let first = whole.experts.select(1, 0).unsqueeze(1);
            assert!(whole.experts.eq_tensor(&first).all().int64_value(&[]) == 1);
        }
    }
}

#[test]
fn a_saved_policy_loads_whole_and_a_damaged_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.safetensors");
    let vs = nn::VarStore::new(Device::Cpu);
    let mut policy = MambaMoePolicy::new(vs.root(), &config(Routing::Goal)).unwrap();
    policy.set_route_center(&Tensor::ones([2, 15], (Kind::Float, Device::Cpu)));
    let record = PolicyRecord {
        config: config(Routing::Goal),
        world_model: "wm.safetensors".into(),
        world_model_sha256: "ab".into(),
        trainer_state: serde_json::json!({"phase": 1}),
    };
    save_policy(&path, &vs, vec![], &record).unwrap();
    let loaded = load_policy(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.record, record);
    let theirs = loaded.vs.variables();
    for (name, t) in vs.variables() {
        assert!(t.equal(&theirs[&name]), "{name} differs after the round trip");
    }
    assert!(
        theirs["route.center"].equal(&Tensor::ones([15], (Kind::Float, Device::Cpu))),
        "the router's centre is kept"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 7] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let e = load_policy(&path, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("policy.safetensors") && e.contains("SHA-256"), "{e}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_policy(&path, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("policy.safetensors") && e.contains("truncated"), "{e}");
    let e = load_policy(&dir.path().join("none.safetensors"), Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("none.safetensors") && e.contains("no such file"), "{e}");
}
