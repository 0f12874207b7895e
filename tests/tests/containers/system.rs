//! `wrun system events|df|prune` and `container prune` over one data root: the event log a
//! container's life writes (create, start, die with its code, oom, destroy, rename), followed
//! live; what df counts; and what prune removes and keeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::detached::{detach, status, wait_until};
use super::*;

impl Front {
    fn system(&self, args: &[&str]) -> Output {
        let mut full = vec!["system", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    /// The events of the log so far, as JSON.
    fn events(&self) -> Vec<Value> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() + 1.0;
        let o = self.system(&[
            "events",
            "--since",
            "0",
            "--until",
            &format!("{now}"),
            "--format",
            "json",
        ]);
        assert_ok(&o, "system events --since 0 --until now");
        stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn actions_of(ev: &[Value], name: &str) -> Vec<String> {
    ev.iter()
        .filter(|e| e["attributes"]["name"] == name)
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn events_tell_a_containers_life_and_are_followed_live() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:ev", &[]);
    // Followed live: a reader started first sees the start of a container run after it.
    let until = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 10;
    let mut cmd = f.rt.command(&[
        "system",
        "--data-root",
        f.data_root(),
        "events",
        "--format",
        "json",
        "--filter",
        "event=start",
        "--until",
        &until.to_string(),
    ]);
    let follower = Spawned::spawn(&mut cmd, None);
    // Once it has the log open (and so reads only what comes after).
    let log = f.data.join("events.jsonl");
    let fds = format!("/proc/{}/fd", follower.pid());
    assert!(
        wrun_tests::wait_until(Duration::from_secs(10), || fs::read_dir(&fds)
            .map(|d| d.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|p| p == log)))
            .unwrap_or(false)),
        "the follower never opened {}",
        log.display()
    );
    let o = f.container(&[
        "run",
        "--name",
        "once",
        "--network",
        "none",
        "bb:ev",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let live = follower.wait_timeout(Duration::from_secs(30));
    let live: Vec<Value> = stdout(&live)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["action"], "start");
    assert_eq!(live[0]["attributes"]["name"], "once");
    // The log: create, start, die with the exit code; rename; destroy.
    assert_ok(&f.container(&["rename", "once", "twice"]), "rename");
    assert_ok(&f.container(&["rm", "twice"]), "rm");
    let ev = f.events();
    let id = ev.iter().find(|e| e["attributes"]["name"] == "once").unwrap()["id"].clone();
    let mine: Vec<&Value> = ev.iter().filter(|e| e["id"] == id).collect();
    let acts: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(acts, ["create", "start", "die", "rename", "destroy"], "{ev:?}");
    assert_eq!(mine[2]["attributes"]["exitCode"], "3");
    assert_eq!(mine[3]["attributes"]["oldName"], "once");
    assert_eq!(mine[0]["attributes"]["image"], "bb:ev");
    // oom: a detached container past its memory limit (no swap) is OOM-killed.
    detach(
        &f,
        &[
            "--name",
            "oomy",
            "--network",
            "none",
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            "bb:ev",
            "sh",
            "-c",
            "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
    );
    wait_until("oomy to end", Duration::from_secs(20), || {
        status(&f, "oomy") == "exited"
    });
    let ev = f.events();
    let acts = actions_of(&ev, "oomy");
    assert!(acts.contains(&"oom".to_string()), "{acts:?}");
    assert_eq!(acts.last().map(String::as_str), Some("die"), "{acts:?}");
    // Bad flags: one line each.
    for (args, want) in [
        (&["events", "--since", "someday"][..], "--since"),
        (&["events", "--filter", "x"][..], "--filter"),
    ] {
        let o = f.system(args);
        assert_fails(&o, want);
        assert!(stderr(&o).contains(want), "{}", show(&o));
    }
    assert_ok(&f.container(&["rm", "oomy"]), "rm oomy");
}

#[test]
fn df_counts_and_prune_removes_what_is_unused_only() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:df", &[]);
    let n = unique("pn");
    assert_ok(
        &f.network(&["create", "--subnet", "10.95.250.0/24", &n]),
        "network create",
    );
    // An exited container with 1 MB of writes, a running one with a named volume, an unused
    // named volume.
    assert_ok(
        &f.container(&[
            "run",
            "--name",
            "done",
            "--network",
            "none",
            "bb:df",
            "sh",
            "-c",
            "head -c 1000000 /dev/zero > /blob",
        ]),
        "run done",
    );
    detach(
        &f,
        &[
            "--name",
            "up",
            "--network",
            "none",
            "-v",
            "keep:/data",
            "bb:df",
            "sleep",
            "60",
        ],
    );
    assert_ok(
        &f.container(&["run", "--rm", "--network", "none", "-v", "spare:/d", "bb:df", "true"]),
        "run spare",
    );
    let o = f.system(&["df"]);
    assert_ok(&o, "system df");
    let df = stdout(&o);
    let row = |t: &str| -> Vec<String> {
        let l = df
            .lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("{t} in {df}"));
        l[t.len()..].split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("Containers")[..2], ["2", "1"], "{df}");
    assert_eq!(
        row("Containers")[3],
        "1MB",
        "the exited one's 1 MB is reclaimable: {df}"
    );
    assert_eq!(row("Local Volumes")[..2], ["2", "1"], "{df}");
    assert_eq!(row("Images")[..2], ["1", "1"], "{df}");
    // container prune: the exited one only.
    let o = f.container(&["prune", "-f"]);
    assert_ok(&o, "container prune");
    assert!(stdout(&o).contains("Deleted Containers:"), "{}", show(&o));
    let ls = stdout(&f.container(&["ls", "-a"]));
    assert!(!ls.contains("done") && ls.contains("up"), "{ls}");
    // system prune --volumes: the unused network and volume; the image and the volume in use stay.
    let o = f.system(&["prune", "-a", "--volumes", "-f"]);
    assert_ok(&o, "system prune");
    let out = stdout(&o);
    assert!(
        out.contains(&n) && out.contains("spare") && !out.contains("keep"),
        "{out}"
    );
    assert!(!out.contains("Deleted Images:"), "the image in use stays: {out}");
    assert!(stdout(&f.network(&["ls"])).lines().all(|l| !l.contains(&n)));
    // Once nothing uses them, everything goes.
    assert_ok(&f.container(&["rm", "-f", "up"]), "rm -f up");
    let o = f.system(&["prune", "-a", "--volumes", "-f"]);
    let out = stdout(&o);
    assert!(out.contains("keep") && out.contains("Deleted Images:"), "{}", show(&o));
    assert_eq!(stdout(&f.image(&["ls", "-q"])).trim(), "");
    f.assert_nothing_left();
}

/// `system reset --force` as root: every container (running ones killed), image and network
/// of the data root gone, and the data root with them; a directory that is not a data root
/// (a mistyped --data-root) is refused and left as it was.
#[test]
fn system_reset_removes_the_data_root_and_refuses_a_directory_that_is_not_one() {
    let Some(f) = Front::new() else { return };
    let layer = f.busybox_layer(&[]);
    f.import_config("wrun.test/reset:1", layer, serde_json::json!({"Cmd": ["sleep", "100"]}));
    let o = f.container(&["run", "-d", "--network", "none", "--name", "r1", "wrun.test/reset:1"]);
    assert_ok(&o, "run -d");
    // migrate is for a rootless session: root's containers keep running.
    let o = f.system(&["migrate"]);
    assert_ok(&o, "system migrate as root");
    assert!(stderr(&o).contains("nothing to do"), "{}", show(&o));
    assert_eq!(status(&f, "r1"), "running");
    let o = f.system(&["reset"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("--force"), "{}", show(&o));
    assert_ok(&f.system(&["reset", "--force"]), "system reset --force");
    assert!(!f.data.path().exists(), "the data root is left");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(f.data_root()), "a mount under the data root is left");
    // Not a data root (one entry a data root has, beside others it never has, as /var/lib
    // with podman's containers/): refused in one line, nothing removed.
    let other = TempDir::new("not-a-data-root");
    fs::create_dir(other.join("containers")).unwrap();
    fs::write(other.join("precious"), "keep").unwrap();
    let o = f.rt.exec(&[
        "system",
        "--data-root",
        other.path().to_str().unwrap(),
        "reset",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("does not look like a wrun data root"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read_to_string(other.join("precious")).unwrap(), "keep");
}
