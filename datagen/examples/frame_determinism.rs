//! Probe: does a scene's frame depend on what else the renderer drew before or beside it?
//! Renders the scenes of a few episodes (a) one per update in slot 0, (b) again in the same
//! renderer, (c) in batches of varying composition and slot, (d) in a fresh renderer, and counts
//! frames that differ from (a).
use render::{RenderConfig, Renderer};
use sim::{
    Env, EnvConfig, Task,
    policy::{Actor, PolicyKind},
};
use types::{Frame, FrameTag, SceneSnapshot};

fn scenes(task: Task, episodes: u64, seed: u64) -> Vec<SceneSnapshot> {
    let mut env = Env::new(EnvConfig { linger_steps: 6, ..EnvConfig::for_task(task) }).unwrap();
    let mut out = vec![];
    for e in 0..episodes {
        let s = seed * 1000 + e;
        let (_, mut info) = env.reset(s);
        let mut actor = Actor::new(PolicyKind::Mixed, task, s);
        loop {
            out.push(env.scene());
            let r = env.step(actor.act(&info)).unwrap();
            if r.terminated || r.truncated {
                break;
            }
            info = r.info;
        }
    }
    out
}

fn render_each(
    r: &mut Renderer,
    scenes: &[SceneSnapshot],
    order: &[usize],
    batch: &dyn Fn(usize) -> usize,
) -> Vec<Frame> {
    let mut out: Vec<Option<Frame>> = vec![None; scenes.len()];
    let mut i = 0;
    let mut k = 0;
    while i < order.len() {
        let n = batch(k).min(order.len() - i);
        let jobs: Vec<(FrameTag, &SceneSnapshot)> =
            order[i..i + n].iter().map(|&j| (FrameTag { episode: 0, step: j as u32 }, &scenes[j])).collect();
        for (f, &j) in r.render(&jobs).unwrap().into_iter().zip(&order[i..i + n]) {
            out[j] = Some(f);
        }
        i += n;
        k += 1;
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn report(name: &str, a: &[Frame], b: &[Frame]) {
    let mut frames = 0;
    let mut maxd = 0;
    let mut pixels = 0;
    for (x, y) in a.iter().zip(b) {
        let d: Vec<u8> = x.rgb.iter().zip(&y.rgb).map(|(p, q)| p.abs_diff(*q)).collect();
        if d.iter().any(|&v| v > 0) {
            frames += 1;
            pixels += d.iter().filter(|&&v| v > 0).count();
            maxd = maxd.max(*d.iter().max().unwrap());
        }
    }
    println!("{name}: {frames} of {} frames differ ({pixels} channel values, max {maxd})", a.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let episodes: u64 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(6);
    let mut all = scenes(Task::PushToGoal, episodes, 1);
    all.extend(scenes(Task::KnockOff, episodes, 2));
    println!("{} scenes", all.len());
    let seq: Vec<usize> = (0..all.len()).collect();
    let cfg = RenderConfig { slots: 32, ..Default::default() };
    let mut r = Renderer::new(cfg.clone()).unwrap();
    let a = render_each(&mut r, &all, &seq, &|_| 1);
    let b = render_each(&mut r, &all, &seq, &|_| 1);
    report("same renderer, again, one per update", &a, &b);
    let c = render_each(&mut r, &all, &seq, &|k| 1 + (k * 7) % 32);
    report("same renderer, batches of varying size", &a, &c);
    let mut rev = seq.clone();
    rev.reverse();
    let d = render_each(&mut r, &all, &rev, &|k| 1 + (k * 5) % 32);
    report("same renderer, reversed order, varying batches", &a, &d);
    drop(r);
    let mut r2 = Renderer::new(cfg).unwrap();
    let e = render_each(&mut r2, &all, &seq, &|_| 1);
    report("fresh renderer, one per update", &a, &e);
    if let Some(dir) = args.get(2) {
        std::fs::create_dir_all(dir).unwrap();
        let bytes: Vec<u8> = a.iter().flat_map(|f| f.rgb.iter().copied()).collect();
        std::fs::write(format!("{dir}/frames-{}.bin", std::process::id()), bytes).unwrap();
    }
}
