//! A run or evaluation directory's `config.json`: written by the first run, and every rerun must
//! ask for the same thing (so it resumes) or is refused, naming the first key that differs.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Claims `out` for `mine`: writes `out/config.json` if there is none, else compares. `ignore`
/// lists top-level keys that are not part of the work (where it lives, progress bars); `what`
/// names the work in the refusal ("run", "evaluation").
pub fn claim_dir<T: Serialize + DeserializeOwned>(out: &Path, mine: &T, ignore: &[&str], what: &str) -> Result<()> {
    let path = out.join("config.json");
    let strip = |v: serde_json::Value| {
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            for k in ignore {
                o.remove(*k);
            }
        }
        v
    };
    let ours = serde_json::to_value(mine)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            // Read back through the options type, so keys added since (with their defaults) compare equal.
            let theirs: T =
                serde_json::from_str(&text).with_context(|| format!("{}: not such a config", path.display()))?;
            let theirs = strip(serde_json::to_value(&theirs)?);
            if let Some((key, was, now)) = dataset::manifest::first_difference("", &theirs, &strip(ours)) {
                bail!(
                    "{} holds another {what} ({key}: {was} there, {now} now); resume it with its own options or \
                     choose another --out",
                    out.display()
                );
            }
        }
        Err(_) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(&path, serde_json::to_string_pretty(&ours)?)?;
        }
    }
    Ok(())
}
