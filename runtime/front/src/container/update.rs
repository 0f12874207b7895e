//! `container update`: docker's resource flags (and `--restart`) on an existing container.
//! A running one gets the new limits at once (the runtime's `update`, into its cgroup); the
//! container's config keeps them too, so that its next start, a restart policy's or
//! `container start`, has them as well.

use std::fs;

use serde_json::Value;

use super::{io, Containers, Error, Record, RestartPolicy, Result};
use crate::dockerflags::{self, ResourceFlags};

/// Merge `new` into `old`: objects key by key, anything else replaced; nulls in `new` (the
/// sections no flag set) change nothing.
fn merge(old: &mut Value, new: &Value) {
    match (old, new) {
        (_, Value::Null) => {}
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in n {
                merge(o.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (o, n) => *o = n.clone(),
    }
}

/// Apply `flags` (and `restart`) to container `name`; its record after.
pub fn update(cs: &Containers, name: &str, flags: &ResourceFlags, restart: Option<&str>) -> Result<Record> {
    let rec = cs.find(name)?;
    let res = dockerflags::to_resources(flags).map_err(|e| Error::Invalid(e.to_string()))?;
    let policy = restart.map(RestartPolicy::parse).transpose()?;
    if policy.is_some_and(|p| p != RestartPolicy::No) && rec.auto_remove {
        return Err(Error::Invalid(format!(
            "--restart: container {} removes itself when it ends (--rm); a restart policy cannot apply",
            rec.name
        )));
    }
    let new = serde_json::to_value(&res).map_err(|e| Error::Invalid(format!("encode the resources: {e}")))?;
    let set = new.as_object().is_some_and(|o| o.values().any(|v| !v.is_null()));
    if set && matches!(cs.runtime_status(&rec.id), Some("running" | "paused")) {
        wrun::container::update(cs.runtime_root(), &rec.id, &res)?;
    }
    if set {
        let p = cs.dir_of(&rec.id).join("config.json");
        let mut config: Value = fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::Invalid(format!("{}: unreadable", p.display())))?;
        merge(&mut config["linux"]["resources"], &new);
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(format!("encode the config: {e}")))?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &p))
            .map_err(io(format!("write {}", p.display())))?;
    }
    cs.update(&rec.id, |r| {
        if let Some(p) = policy {
            r.restart = p;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_a_flag_set_changes() {
        let mut old = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(
            &mut old,
            &json!({"memory": {"limit": 9, "swap": null}, "cpu": {"shares": 512}, "pids": null}),
        );
        assert_eq!(
            old,
            json!({"memory": {"limit": 9, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 512}})
        );
    }
}
