//! OCI hooks: each runs with the container's state JSON on stdin, its `args` (args[0] is
//! argv[0]), only its `env`, and its `timeout`. Where and when each kind runs is decided by
//! the lifecycle code; this file only runs them and says which one failed and why.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::state::OciState;
use crate::{Error, Result};

/// The hook kinds in lifecycle order, with their spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, h: &Hooks) -> Vec<Hook> {
        let v = match self {
            Kind::Prestart => h.prestart(),
            Kind::CreateRuntime => h.create_runtime(),
            Kind::CreateContainer => h.create_container(),
            Kind::StartContainer => h.start_container(),
            Kind::Poststart => h.poststart(),
            Kind::Poststop => h.poststop(),
        };
        v.clone().unwrap_or_default()
    }
}

const ALL: [Kind; 6] = [
    Kind::Prestart,
    Kind::CreateRuntime,
    Kind::CreateContainer,
    Kind::StartContainer,
    Kind::Poststart,
    Kind::Poststop,
];

/// Refuse hooks that cannot run: relative paths, non-positive timeouts.
pub fn validate(h: &Hooks) -> Result<()> {
    for kind in ALL {
        for (i, hook) in kind.of(h).iter().enumerate() {
            let field = format!("hooks.{}[{i}]", kind.name());
            if !hook.path().is_absolute() {
                return Err(Error::Invalid(format!(
                    "{field}.path {}: must be an absolute path",
                    hook.path().display()
                )));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::Invalid(format!(
                    "{field}.timeout: must be a positive number of seconds"
                )));
            }
        }
    }
    Ok(())
}

/// Run every hook of `kind` in order; the first failure stops the rest.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &OciState<'_>) -> Result<()> {
    run_with_env(kind, hooks, state, None)
}

/// `run`, where a hook without an `env` of its own gets `default_env` (runc gives a
/// startContainer hook the container process's environment, and tools expect it).
pub fn run_with_env(
    kind: Kind,
    hooks: Option<&Hooks>,
    state: &OciState<'_>,
    default_env: Option<&[String]>,
) -> Result<()> {
    let Some(h) = hooks else { return Ok(()) };
    let list = kind.of(h);
    if list.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).unwrap_or_default();
    for (i, hook) in list.iter().enumerate() {
        run_one(hook, &json, default_env)
            .map_err(|why| Error::Invalid(format!("hooks.{}[{i}] {}: {why}", kind.name(), hook.path().display())))?;
    }
    Ok(())
}

/// Run the hooks of a kind whose failures the spec makes warnings (poststart, poststop).
/// Each failure is a warning and the remaining hooks still run.
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &OciState<'_>) {
    let Some(h) = hooks else { return };
    let json = serde_json::to_vec(state).unwrap_or_default();
    for (i, hook) in kind.of(h).iter().enumerate() {
        if let Err(why) = run_one(hook, &json, None) {
            let e = format!("hooks.{}[{i}] {}: {why}", kind.name(), hook.path().display());
            tracing::warn!("{e}");
            eprintln!("wrun: warning: {e}");
        }
    }
}

fn run_one(hook: &Hook, state: &[u8], default_env: Option<&[String]>) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().or(default_env).unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state);
    }
    let deadline = hook.timeout().map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(s) => break s,
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", hook.timeout().unwrap_or(0)));
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let first = err.lines().next().unwrap_or("").trim();
    Err(if first.is_empty() {
        format!("failed: {status}")
    } else {
        format!("failed: {status}: {first}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(json: &str) -> Hooks {
        serde_json::from_str(json).unwrap()
    }

    fn state() -> OciState<'static> {
        static EMPTY: std::sync::OnceLock<std::collections::BTreeMap<String, String>> = std::sync::OnceLock::new();
        OciState {
            oci_version: "1.3.0",
            id: "c1",
            pid: 42,
            status: "creating",
            bundle: std::path::Path::new("/b"),
            rootfs: std::path::Path::new("/b/rootfs"),
            created: "",
            owner: "",
            annotations: EMPTY.get_or_init(Default::default),
        }
    }

    #[test]
    fn relative_paths_and_bad_timeouts_are_refused() {
        assert!(validate(&hooks(r#"{"prestart":[{"path":"bin/true"}]}"#)).is_err());
        assert!(validate(&hooks(r#"{"poststop":[{"path":"/bin/true","timeout":0}]}"#)).is_err());
        assert!(validate(&hooks(r#"{"createRuntime":[{"path":"/bin/true","timeout":5}]}"#)).is_ok());
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_its_args_and_only_its_env() {
        let out = std::env::temp_dir().join(format!("wrun-hook-test-{}", std::process::id()));
        let script = format!("read s; echo \"$0 $1 $FOO ${{HOME:-nohome}} $s\" > {}", out.display());
        let h = hooks(&format!(
            r#"{{"createRuntime":[{{"path":"/bin/sh","args":["hookname","-c",{script:?},"x"],"env":["FOO=bar"]}}]}}"#
        ));
        run(Kind::CreateRuntime, Some(&h), &state()).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert!(got.starts_with("x  bar nohome {"), "{got}");
        assert!(got.contains(r#""id":"c1""#) && got.contains(r#""pid":42"#), "{got}");
    }

    #[test]
    fn a_failing_hook_is_named_with_its_stderr() {
        let h = hooks(
            r#"{"createContainer":[{"path":"/bin/true"},{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 3"]}]}"#,
        );
        let e = run(Kind::CreateContainer, Some(&h), &state()).unwrap_err().to_string();
        assert!(
            e.contains("hooks.createContainer[1] /bin/sh") && e.contains("boom"),
            "{e}"
        );
    }

    #[test]
    fn after_a_failing_poststart_hook_the_next_one_still_runs() {
        let out = std::env::temp_dir().join(format!("wrun-hook-warn-{}", std::process::id()));
        let script = format!("echo ran > {}", out.display());
        let h = hooks(&format!(
            r#"{{"poststart":[{{"path":"/bin/false"}},{{"path":"/bin/sh","args":["sh","-c",{script:?}]}}]}}"#
        ));
        run_warn(Kind::Poststart, Some(&h), &state());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "ran\n");
        std::fs::remove_file(&out).unwrap();
    }

    #[test]
    fn a_hook_over_its_timeout_is_killed() {
        let h = hooks(r#"{"poststop":[{"path":"/bin/sleep","args":["sleep","10"],"timeout":1}]}"#);
        let t = Instant::now();
        let e = run(Kind::Poststop, Some(&h), &state()).unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
