//! `--change` instructions (docker import's) applied to an image config.

use serde_json::{json, Value};

use crate::{Error, Result};

/// One `--change` instruction applied to an image config's `config` object.
pub fn apply_change(cfg: &mut Value, change: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid(format!("--change {change:?}: {why}"));
    let (instr, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| bad("no argument"))?;
    let rest = rest.trim();
    let cmd_form = |rest: &str| -> Result<Value> {
        if rest.starts_with('[') {
            let v: Vec<String> = serde_json::from_str(rest).map_err(|_| bad("not a JSON array of strings"))?;
            Ok(json!(v))
        } else {
            Ok(json!(["/bin/sh", "-c", rest]))
        }
    };
    if !cfg.is_object() {
        *cfg = json!({});
    }
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => cfg["Cmd"] = cmd_form(rest)?,
        "ENTRYPOINT" => cfg["Entrypoint"] = cmd_form(rest)?,
        "WORKDIR" => cfg["WorkingDir"] = json!(rest),
        "USER" => cfg["User"] = json!(rest),
        "STOPSIGNAL" => cfg["StopSignal"] = json!(rest),
        "ENV" => {
            let (k, v) = rest
                .split_once('=')
                .or_else(|| rest.split_once(char::is_whitespace))
                .ok_or_else(|| bad("ENV needs NAME=value"))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(bad("ENV needs a name"));
            }
            let env = cfg["Env"].as_array().cloned().unwrap_or_default();
            let mut env: Vec<Value> = env
                .into_iter()
                .filter(|e| e.as_str().and_then(|s| s.split_once('=')).map(|(n, _)| n) != Some(k))
                .collect();
            env.push(json!(format!("{k}={}", v.trim().trim_matches('"'))));
            cfg["Env"] = json!(env);
        }
        "LABEL" => {
            let (k, v) = rest.split_once('=').ok_or_else(|| bad("LABEL needs key=value"))?;
            if !cfg["Labels"].is_object() {
                cfg["Labels"] = json!({});
            }
            cfg["Labels"][k.trim().trim_matches('"')] = json!(v.trim().trim_matches('"'));
        }
        "EXPOSE" => {
            if !cfg["ExposedPorts"].is_object() {
                cfg["ExposedPorts"] = json!({});
            }
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                cfg["ExposedPorts"][p] = json!({});
            }
        }
        "VOLUME" => {
            if !cfg["Volumes"].is_object() {
                cfg["Volumes"] = json!({});
            }
            let paths: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|_| bad("not a JSON array of strings"))?
            } else {
                rest.split_whitespace().map(str::to_string).collect()
            };
            for p in paths {
                cfg["Volumes"][p] = json!({});
            }
        }
        other => {
            return Err(bad(&format!(
                "{other} is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_docker_config_fields() {
        let mut c = json!({});
        for ch in [
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /bin/app --flag",
            "ENV A=1",
            "ENV A=2",
            "ENV B value",
            "WORKDIR /srv",
            "USER 1000:1000",
            "LABEL org.example=\"yes\"",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/app --flag"]));
        assert_eq!(c["Env"], json!(["A=2", "B=value"]));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Labels"]["org.example"], "yes");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        for bad in ["RUN true", "CMD", "ENV", "CMD [1]"] {
            let e = apply_change(&mut c, bad).unwrap_err().to_string();
            assert!(e.starts_with("--change"), "{bad}: {e}");
        }
    }
}
