//! Health checks run by a detached container's monitor: starting → healthy, unhealthy after
//! `retries` failures and healthy again, the image's HEALTHCHECK, `--health-on-failure`, and a
//! wasm container checked by a native program in its sandbox.

use std::time::Duration;

use super::detached::{detach, status, wait_until};
use super::*;

fn health(f: &Front, name: &str) -> Value {
    inspect(f, name)["health_state"].clone()
}

fn ps_line(f: &Front, name: &str) -> String {
    let ls = stdout(&f.container(&["ls"]));
    ls.lines().find(|l| l.ends_with(name)).unwrap_or_default().to_string()
}

#[test]
fn health_turns_healthy_then_unhealthy_after_retries_and_back() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:h", &[]);
    detach(
        &f,
        &[
            "--name",
            "hc",
            "--network",
            "none",
            "--health-cmd",
            "cat /ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "bb:h",
            "sh",
            "-c",
            "echo fine > /ok; exec sleep 60",
        ],
    );
    wait_until("healthy", Duration::from_secs(15), || {
        health(&f, "hc")["status"] == "healthy"
    });
    assert!(ps_line(&f, "hc").contains("(healthy)"), "{}", ps_line(&f, "hc"));
    let h = health(&f, "hc");
    let last = h["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["exit_code"], 0);
    assert_eq!(last["output"], "fine\n", "the check's output is kept: {h}");
    // The check starts failing: unhealthy only after two failures in a row.
    assert_ok(&f.container(&["exec", "hc", "rm", "/ok"]), "exec rm /ok");
    wait_until("unhealthy", Duration::from_secs(15), || {
        health(&f, "hc")["status"] == "unhealthy"
    });
    let h = health(&f, "hc");
    assert!(h["failing_streak"].as_u64().unwrap() >= 2, "{h}");
    let log = h["log"].as_array().unwrap();
    assert!(log.len() <= 5, "five results kept: {h}");
    assert_ne!(log.last().unwrap()["exit_code"], 0);
    assert!(ps_line(&f, "hc").contains("(unhealthy)"), "{}", ps_line(&f, "hc"));
    assert_eq!(status(&f, "hc"), "running", "--health-on-failure none: it goes on");
    // And back.
    assert_ok(&f.container(&["exec", "hc", "touch", "/ok"]), "exec touch /ok");
    wait_until("healthy again", Duration::from_secs(15), || {
        health(&f, "hc")["status"] == "healthy"
    });
    assert_eq!(health(&f, "hc")["failing_streak"], 0);
    assert_ok(&f.container(&["rm", "-f", "hc"]), "rm -f hc");
    // A check that floods its output: the record keeps its first 4 KiB only.
    detach(
        &f,
        &[
            "--name",
            "loud",
            "--network",
            "none",
            "--health-cmd",
            "head -c 1000000 /dev/zero | tr '\\000' x",
            "--health-interval",
            "200ms",
            "bb:h",
            "sleep",
            "60",
        ],
    );
    wait_until("loud healthy", Duration::from_secs(15), || {
        health(&f, "loud")["status"] == "healthy"
    });
    let out = health(&f, "loud")["log"][0]["output"].as_str().unwrap().to_string();
    assert_eq!(out.len(), 4096, "the output kept is capped");
    assert_ok(&f.container(&["rm", "-f", "loud"]), "rm -f loud");
    f.assert_nothing_left();
    // --no-healthcheck with a --health-* flag, a bad duration, a bad action: one line, nothing made.
    f.refused(
        &["--no-healthcheck", "--health-cmd", "true", "bb:h", "true"],
        "--no-healthcheck",
    );
    f.refused(&["--health-interval", "soon", "bb:h", "true"], "--health-interval");
    f.refused(
        &["--health-on-failure", "explode", "bb:h", "true"],
        "--health-on-failure",
    );
    f.refused(&["--rm", "--health-on-failure", "restart", "bb:h", "true"], "--rm");
}

#[test]
fn the_images_healthcheck_runs_and_on_failure_restarts_or_kills() {
    let Some(f) = Front::new() else { return };
    // HEALTHCHECK --interval=200ms --retries=1 CMD ["/bin/test", "-f", "/ok"]: never passes.
    let layer = f.busybox_layer(&[]);
    f.import_config(
        "bb:hc-image",
        layer,
        serde_json::json!({
            "Cmd": ["sh", "-c", "echo run; exec sleep 60"],
            "Healthcheck": {"Test": ["CMD", "/bin/test", "-f", "/ok"], "Interval": 200_000_000u64, "Retries": 1},
        }),
    );
    detach(
        &f,
        &[
            "--name",
            "hr",
            "--network",
            "none",
            "--health-on-failure",
            "restart",
            "bb:hc-image",
        ],
    );
    wait_until("a restart by the health check", Duration::from_secs(20), || {
        inspect(&f, "hr")["restart_count"].as_u64().unwrap_or(0) >= 1
    });
    // Its log has a line per run (the check keeps killing it: no exec into it is reliable).
    wait_until("a second run in the log", Duration::from_secs(10), || {
        let o = f.container(&["logs", "hr"]);
        stdout(&o).lines().filter(|l| *l == "run").count() >= 2
    });
    assert_eq!(
        inspect(&f, "hr")["restart"]["name"],
        "no",
        "restarted by the check, not a policy"
    );
    // kill: SIGKILL at the first unhealthy; no policy brings it back.
    detach(
        &f,
        &[
            "--name",
            "hk",
            "--network",
            "none",
            "--health-on-failure",
            "kill",
            "bb:hc-image",
        ],
    );
    wait_until("killed by the health check", Duration::from_secs(20), || {
        status(&f, "hk") == "exited"
    });
    assert_eq!(inspect(&f, "hk")["exit_code"], 137);
    // --no-healthcheck: the image's check does not run.
    detach(
        &f,
        &["--name", "hn", "--network", "none", "--no-healthcheck", "bb:hc-image"],
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(health(&f, "hn").is_null(), "{}", health(&f, "hn"));
    assert_ok(&f.container(&["rm", "-f", "hr", "hk", "hn"]), "rm -f");
    f.assert_nothing_left();
}

#[test]
fn a_wasm_container_is_checked_by_a_native_program_in_its_sandbox() {
    let Some(f) = Front::new() else { return };
    let module = fs::read(wasm_app("sleep")).expect("make wasm-apps builds sleep.wasm");
    let art = f.work.join("sleep.tar");
    fs::write(&art, wasm_artifact(&module, "wrun.test/sleep-wasm:1")).unwrap();
    assert_ok(&f.image(&["import", art.to_str().unwrap()]), "import the wasm artifact");
    // The image has no shell: the host's static busybox is bound in as /bin/sh. (The tests'
    // artifacts name their module /hello.wasm, whatever it is.)
    detach(
        &f,
        &[
            "--name",
            "hw",
            "--network",
            "none",
            "-v",
            "/usr/bin/busybox:/bin/sh:ro",
            "--health-cmd",
            "test -e /hello.wasm && echo sandboxed",
            "--health-interval",
            "200ms",
            "wrun.test/sleep-wasm:1",
            "/hello.wasm",
            "60",
        ],
    );
    wait_until("the wasm container healthy", Duration::from_secs(15), || {
        health(&f, "hw")["status"] == "healthy"
    });
    let h = health(&f, "hw");
    assert_eq!(
        h["log"].as_array().unwrap().last().unwrap()["output"],
        "sandboxed\n",
        "{h}"
    );
    assert_ok(&f.container(&["rm", "-f", "hw"]), "rm -f hw");
    f.assert_nothing_left();
}
