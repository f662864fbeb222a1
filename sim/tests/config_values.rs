//! Every numeric setting of the environment, one at a time, set to values a user may mistype
//! (zero, negatives, tiny, huge): each config is either refused by a message that names the
//! setting, or accepted and then runs an episode's first 20 steps without a panic.

use sim::{Actor, Env, EnvConfig, PolicyKind, Task};

fn numeric_keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                numeric_keys(x, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numeric_keys(x, &format!("{path}.{i}"), out);
            }
        }
        serde_json::Value::Number(_) => out.push(path.to_string()),
        _ => {}
    }
}

#[test]
fn any_value_is_refused_by_name_or_runs_an_episode() {
    let (mut refused, mut ran) = (0, 0);
    for task in [Task::PushToGoal, Task::KnockOff] {
        let base = serde_json::to_value(EnvConfig::for_task(task)).unwrap();
        let mut keys = vec![];
        numeric_keys(&base, "", &mut keys);
        assert!(keys.len() > 20, "{keys:?}");
        for key in &keys {
            for v in [-1.0, 0.0, 1e-6, 0.5, 1.0, 3.0, 1e6, 1e30] {
                let mut json = base.clone();
                let pointer = format!("/{}", key.replace('.', "/"));
                *json.pointer_mut(&pointer).unwrap() = serde_json::json!(v);
                let top = key.split('.').next().unwrap();
                let cfg: EnvConfig = match serde_json::from_value(json) {
                    Ok(c) => c,
                    Err(_) => {
                        refused += 1; // not a number of the field's type (e.g. -1 or 0.5 for a count)
                        continue;
                    }
                };
                let env = match cfg.validate().and_then(|_| Env::new(cfg.clone())) {
                    Ok(env) => env,
                    Err(e) => {
                        let e = e.to_string();
                        assert!(e.contains(top), "{key}={v}: refused without naming it: {e}");
                        refused += 1;
                        continue;
                    }
                };
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let mut env = env;
                    let (_, mut info) = env.reset(7);
                    let mut actor = Actor::new(PolicyKind::Mixed, task, 7);
                    for _ in 0..20 {
                        let r = env.step(actor.act(&info)).unwrap();
                        if r.terminated || r.truncated {
                            break;
                        }
                        info = r.info;
                    }
                }));
                assert!(run.is_ok(), "{key}={v}: accepted, then an episode panicked");
                ran += 1;
            }
        }
    }
    assert!(refused > 50 && ran > 50, "refused {refused}, ran {ran}");
}
