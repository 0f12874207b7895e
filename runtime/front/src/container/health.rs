//! Health checks: docker's HEALTHCHECK and `--health-*`, podman's `--health-on-failure`. The
//! check of a detached container is timed by its monitor and run by a `step health` process, as
//! `container exec` runs a command: in the container's namespaces, cgroup, capabilities and
//! seccomp filter, so a wasm container's check is a native program in the same sandbox (one of
//! the image's, or one bound in with `-v`). A foreground container has no monitor and so no
//! checks; `ps` shows its health as none.
//!
//! The status is docker's: `starting` until the first check passes (failures within the start
//! period do not count), `healthy`, and `unhealthy` after `retries` failures in a row; a pass
//! makes it healthy again. The last five results (start, end, exit code, first 4 KiB of
//! output) are kept in the record for `inspect`. On turning unhealthy, `--health-on-failure`
//! kills, restarts or stops the container (podman's actions), or does nothing (the default).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Containers, Error, Result};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const KEEP: usize = 5;
/// The shortest interval and timeout a check gets: each check starts processes on the host
/// (`container exec`), so an image must not be able to say "every nanosecond" and keep the
/// host busy starting them.
const MIN_PERIOD: Duration = Duration::from_millis(100);
const OUTPUT_MAX: usize = 4096;

/// What to do when a container turns unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    None,
    Kill,
    Restart,
    Stop,
}

/// A container's health check, resolved from the image and the flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The argv run in the container.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub retries: u32,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// The health a record shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthState {
    /// starting, healthy or unhealthy.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// The `--health-*` flags as given.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<u32>,
    pub none: bool,
    pub on_failure: Option<String>,
}

/// Go's duration syntax, as docker's flags take it: `1m30s`, `500ms`, `2h`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

fn flag_duration(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| {
            parse_duration(s)
                .ok_or_else(|| Error::Invalid(format!("{flag} {s:?}: not a duration like 30s, 1m30s or 500ms")))
        })
        .transpose()
}

/// The image's duration field (nanoseconds; 0 or absent: unset).
fn image_duration(v: &Value) -> Option<Duration> {
    v.as_u64().filter(|n| *n > 0).map(Duration::from_nanos)
}

/// Check the flags alone (before anything is made).
pub fn check_flags(f: &HealthFlags) -> Result<()> {
    let any = f.cmd.is_some()
        || f.interval.is_some()
        || f.timeout.is_some()
        || f.start_period.is_some()
        || f.retries.is_some();
    if f.none && any {
        return Err(Error::Invalid(
            "--no-healthcheck conflicts with --health-* options".into(),
        ));
    }
    for (flag, v) in [
        ("--health-interval", &f.interval),
        ("--health-timeout", &f.timeout),
        ("--health-start-period", &f.start_period),
    ] {
        if let Some(d) = flag_duration(flag, v)? {
            if flag != "--health-start-period" && d != Duration::ZERO && d < Duration::from_millis(1) {
                return Err(Error::Invalid(format!("{flag}: at least 1ms")));
            }
        }
    }
    on_failure(f)?;
    Ok(())
}

fn on_failure(f: &HealthFlags) -> Result<OnFailure> {
    Ok(match f.on_failure.as_deref() {
        None | Some("none") => OnFailure::None,
        Some("kill") => OnFailure::Kill,
        Some("restart") => OnFailure::Restart,
        Some("stop") => OnFailure::Stop,
        Some(x) => {
            return Err(Error::Invalid(format!(
                "--health-on-failure {x:?}: none, kill, restart or stop"
            )))
        }
    })
}

/// The container's check from the image's Healthcheck and the flags (None: no check).
pub fn resolve(image_config: &Value, f: &HealthFlags) -> Result<Option<HealthConfig>> {
    check_flags(f)?;
    if f.none {
        return Ok(None);
    }
    let img = &image_config["Healthcheck"];
    let test: Vec<String> = match &f.cmd {
        Some(c) if c.is_empty() => return Err(Error::Invalid("--health-cmd: empty".into())),
        Some(c) => vec!["/bin/sh".into(), "-c".into(), c.clone()],
        None => {
            let t: Vec<String> = img["Test"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            match t.first().map(String::as_str) {
                None | Some("NONE") => return Ok(None),
                Some("CMD") if t.len() > 1 => t[1..].to_vec(),
                Some("CMD-SHELL") if t.len() == 2 => vec!["/bin/sh".into(), "-c".into(), t[1].clone()],
                Some(_) => {
                    return Err(Error::Invalid(format!(
                        "the image's HEALTHCHECK {t:?}: not [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]"
                    )))
                }
            }
        }
    };
    let pick = |flag: Option<Duration>, image: &Value, default: Duration| {
        flag.filter(|d| !d.is_zero())
            .or_else(|| image_duration(image))
            .unwrap_or(default)
    };
    let interval = pick(
        flag_duration("--health-interval", &f.interval)?,
        &img["Interval"],
        DEFAULT_INTERVAL,
    );
    let timeout = pick(
        flag_duration("--health-timeout", &f.timeout)?,
        &img["Timeout"],
        DEFAULT_TIMEOUT,
    );
    let start = pick(
        flag_duration("--health-start-period", &f.start_period)?,
        &img["StartPeriod"],
        Duration::ZERO,
    );
    let retries = f
        .retries
        .filter(|r| *r > 0)
        .or_else(|| {
            img["Retries"]
                .as_u64()
                .filter(|r| *r > 0)
                .map(|r| r.min(u32::MAX as u64) as u32)
        })
        .unwrap_or(DEFAULT_RETRIES);
    Ok(Some(HealthConfig {
        test,
        interval_ms: interval.max(MIN_PERIOD).as_millis() as u64,
        timeout_ms: timeout.max(MIN_PERIOD).as_millis() as u64,
        start_period_ms: start.as_millis() as u64,
        retries,
        on_failure: on_failure(f)?,
    }))
}

/// Run the check once in container `id` (through `container exec`), within the timeout.
fn probe(data_root: &Path, id: &str, cfg: &HealthConfig) -> Probe {
    let start = wrun_sys::timefmt::now();
    let t0 = Instant::now();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let finish = |code: i32, output: String| Probe {
        start: start.clone(),
        end: wrun_sys::timefmt::now(),
        exit_code: code,
        output,
    };
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return finish(-1, format!("health check: pipe: {e}")),
    };
    let w2 = match w.try_clone() {
        Ok(w2) => w2,
        Err(e) => return finish(-1, format!("health check: {e}")),
    };
    let child = Command::new("/proc/self/exe")
        .arg("container")
        .arg("--data-root")
        .arg(data_root)
        .arg("exec")
        .arg(id)
        .args(&cfg.test)
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return finish(-1, format!("health check: run exec: {e}")),
    };
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut out = Vec::new();
        let _ = (&mut f).take(OUTPUT_MAX as u64).read_to_end(&mut out);
        // The rest is drained, not kept: a chatty check must not block on a full pipe.
        let _ = std::io::copy(&mut f, &mut std::io::sink());
        out
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if t0.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let out = reader.join().unwrap_or_default();
    let out = String::from_utf8_lossy(&out).into_owned();
    match status {
        Some(s) => finish(s.code().unwrap_or(-1), out),
        None => finish(-1, format!("Health check exceeded timeout ({} ms)", cfg.timeout_ms)),
    }
}

/// One check of running container `id`, whose run started `since` ago (the monitor times
/// them, an interval apart): the result is recorded, and turning unhealthy is acted on.
/// Returns true when the container is to run again whatever its restart policy says
/// (`--health-on-failure restart`).
pub fn check(data_root: &Path, cs: &Containers, id: &str, cfg: &HealthConfig, since: Duration) -> bool {
    if cs.runtime_status(id) != Some("running") {
        return false;
    }
    let p = probe(data_root, id, cfg);
    // The run may have ended while the check ran: its result is not the container's.
    if cs.runtime_status(id) != Some("running") {
        return false;
    }
    let start_period = Duration::from_millis(cfg.start_period_ms);
    let mut turned_unhealthy = false;
    let mut changed = None;
    let rec = cs.update(id, |r| {
        let h = r.health_state.get_or_insert_with(Default::default);
        let before = h.status.clone();
        if p.exit_code == 0 {
            h.failing_streak = 0;
            h.status = "healthy".into();
        } else if !(h.status == "starting" && since < start_period) {
            h.failing_streak += 1;
            if h.failing_streak >= cfg.retries && h.status != "unhealthy" {
                h.status = "unhealthy".into();
                turned_unhealthy = true;
            }
        }
        h.log.push(p.clone());
        let n = h.log.len();
        if n > KEEP {
            h.log.drain(..n - KEEP);
        }
        if h.status != before {
            changed = Some(h.status.clone());
        }
        if turned_unhealthy && cfg.on_failure == OnFailure::Stop {
            r.stop_requested = true;
        }
    });
    if let (Some(status), Ok(rec)) = (changed, &rec) {
        super::events::emit(data_root, rec, &format!("health_status: {status}"), &[]);
    }
    turned_unhealthy && act(cs, id, cfg.on_failure)
}

/// `--health-on-failure`: kill (SIGKILL; the restart policy decides), restart (SIGKILL, then
/// the monitor runs it again: true), stop (the stop signal, then SIGKILL after the stop
/// timeout).
fn act(cs: &Containers, id: &str, what: OnFailure) -> bool {
    let root = cs.runtime_root();
    match what {
        OnFailure::None => {}
        OnFailure::Kill => {
            let _ = wrun::container::kill(root, id, libc::SIGKILL, true);
        }
        OnFailure::Restart => {
            let _ = wrun::container::kill(root, id, libc::SIGKILL, true);
            return true;
        }
        OnFailure::Stop => {
            let rec = cs.load(id).ok();
            let sig = rec
                .as_ref()
                .and_then(|r| r.stop_signal.as_deref())
                .and_then(|s| wrun_sys::signal::parse(s).ok())
                .unwrap_or(libc::SIGTERM);
            let wait = Duration::from_secs(rec.and_then(|r| r.stop_timeout).unwrap_or(10).into());
            let _ = wrun::container::kill(root, id, sig, true);
            let t = Instant::now();
            while t.elapsed() < wait && cs.runtime_status(id).is_some_and(|s| s != "stopped") {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = wrun::container::kill(root, id, libc::SIGKILL, true);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "30", "s", "1x", "-1s", "1s2", "1e400s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_check_comes_from_the_image_and_the_flags_as_dockers_does() {
        let img =
            json!({"Healthcheck": {"Test": ["CMD", "/bin/probe", "x"], "Interval": 2_000_000_000u64, "Retries": 5}});
        let c = resolve(&img, &HealthFlags::default()).unwrap().unwrap();
        assert_eq!(c.test, ["/bin/probe", "x"]);
        assert_eq!(
            (c.interval_ms, c.timeout_ms, c.start_period_ms, c.retries),
            (2000, 30_000, 0, 5)
        );
        let f = HealthFlags {
            cmd: Some("test -f /ok".into()),
            interval: Some("1s".into()),
            retries: Some(2),
            on_failure: Some("restart".into()),
            ..Default::default()
        };
        let c = resolve(&img, &f).unwrap().unwrap();
        assert_eq!(c.test, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!((c.interval_ms, c.retries, c.on_failure), (1000, 2, OnFailure::Restart));
        // A hostile image's one-nanosecond interval is held to 100 ms.
        let fast = json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1, "Timeout": 1}});
        let c = resolve(&fast, &HealthFlags::default()).unwrap().unwrap();
        assert_eq!((c.interval_ms, c.timeout_ms), (100, 100));
        let shell = json!({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}});
        assert_eq!(
            resolve(&shell, &HealthFlags::default()).unwrap().unwrap().test[2],
            "curl -f localhost"
        );
        assert!(
            resolve(&json!({"Healthcheck": {"Test": ["NONE"]}}), &HealthFlags::default())
                .unwrap()
                .is_none()
        );
        assert!(resolve(&json!({}), &HealthFlags::default()).unwrap().is_none());
        let none = HealthFlags {
            none: true,
            ..Default::default()
        };
        assert!(resolve(&img, &none).unwrap().is_none());
        for (f, want) in [
            (
                HealthFlags {
                    none: true,
                    cmd: Some("x".into()),
                    ..Default::default()
                },
                "--no-healthcheck",
            ),
            (
                HealthFlags {
                    interval: Some("fast".into()),
                    ..Default::default()
                },
                "--health-interval",
            ),
            (
                HealthFlags {
                    on_failure: Some("explode".into()),
                    ..Default::default()
                },
                "--health-on-failure",
            ),
        ] {
            let e = resolve(&img, &f).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = resolve(&json!({"Healthcheck": {"Test": ["WAT"]}}), &HealthFlags::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("HEALTHCHECK"), "{e}");
    }
}
