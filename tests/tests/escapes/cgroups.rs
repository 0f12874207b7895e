//! Escapes through cgroups: a cgroupsPath climbing out or naming a root, an existing cgroup
//! that holds a process, kill --all against a forking process.

use super::*;

// ---------------------------------------------------------------------------
// 7. cgroupsPath climbing out, or naming a hierarchy root
// ---------------------------------------------------------------------------

/// What a sandboxed create + delete --force did: the lines of the script below.
struct Sandboxed {
    created: bool,
    found: Vec<PathBuf>,
    sentinel_alive: bool,
    transcript: String,
}

/// Runs `create` and `delete --force` of a bundle whose cgroupsPath may name cgroups the test
/// does not own, inside a private PID namespace: a runtime that signals every process of the
/// cgroup it was given (e.g. the root cgroup, where every process of this host lives) can then
/// only reach the sandbox's own processes, among them a sentinel `sleep` standing for the
/// host's. Directories it makes are looked for (by the unique `needle`) while it exists.
fn sandboxed_create_delete(rt: &Runtime, b: &Bundle, needle: &str) -> Sandboxed {
    // Not registered with rt.id: Runtime's drop must never `delete --force` it outside the sandbox.
    let id = unique("cgpath");
    let rtcmd = format!("{} --root {}", rt.bin().display(), rt.root().display());
    let script = format!(
        r#"sleep 30 & s=$!
echo sentinel=$s
{rtcmd} create --bundle {bundle} {id} 2>&1; echo create=$?
find /sys/fs /tmp -maxdepth 7 -type d -name '{needle}' 2>/dev/null | sed 's/^/found /'
{rtcmd} delete --force {id} 2>&1; echo delete=$?
if kill -0 $s 2>/dev/null; then echo sentinel=alive; else echo sentinel=dead; fi
kill $s"#,
        bundle = b.path_str()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &script])
        .env("WRUN_DATA_DIR", rt.data_dir());
    let o = run_cmd(&mut cmd, None);
    let t = stdout(&o) + &stderr(&o);
    // Whatever is left of the container dies with the sandbox; drop its state.
    let _ = fs::remove_dir_all(rt.root().join(&id));
    Sandboxed {
        created: t.lines().any(|l| l == "create=0"),
        found: t
            .lines()
            .filter_map(|l| l.strip_prefix("found "))
            .map(PathBuf::from)
            .collect(),
        sentinel_alive: t.lines().any(|l| l == "sentinel=alive"),
        transcript: t,
    }
}

/// Runs the sandboxed create/delete with `cgroupsPath` = `path` (`X` replaced by a unique
/// name) and asserts that every directory it made lies strictly inside one of `allowed`, that
/// none is left afterwards and that no process outside the container was killed.
fn check_cgroups_path(path: &str, relative: bool) {
    let rt = Runtime::new();
    let needle = unique("wrun-esc-cg");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let cgpath = path.replace('X', &needle);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(cgpath));
    let before: Vec<PathBuf> = hierarchy_roots().iter().filter(|r| r.is_dir()).cloned().collect();
    let r = sandboxed_create_delete(&rt, &b, &needle);
    // Clean up before asserting (only our uniquely named, now empty, directories).
    let mut left: Vec<PathBuf> = cgroups_named(&needle);
    rmdir_all(left.clone());
    // Outside any hierarchy, a runtime writing "cgroup files" leaves a plain directory.
    for extra in ["/sys/fs/cgroup", "/sys/fs", "/tmp"] {
        let p = Path::new(extra).join(&needle);
        if p.exists() {
            let _ = fs::remove_dir_all(&p);
            left.push(p);
        }
    }
    let allowed: Vec<PathBuf> = if relative { own_cgroup_dirs() } else { hierarchy_roots() };
    let outside: Vec<&PathBuf> = r
        .found
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(a) && *f != a))
        .collect();
    report(&format!(
        "cgroupsPath {cgpath:?}: create {}",
        if r.created { "accepted" } else { "refused" }
    ));
    assert!(
        r.sentinel_alive,
        "cgroupsPath {cgpath:?}: a process outside the container (in the cgroup it named) was killed\n{}",
        r.transcript
    );
    assert!(
        outside.is_empty(),
        "cgroupsPath {cgpath:?}: directories made outside {allowed:?}: {outside:?}\n{}",
        r.transcript
    );
    assert!(
        left.is_empty(),
        "cgroupsPath {cgpath:?}: directories left after delete --force: {left:?}\n{}",
        r.transcript
    );
    for root in before {
        assert!(root.is_dir(), "hierarchy {} is gone", root.display());
    }
}

#[test]
fn a_relative_cgroups_path_climbing_with_dotdot_stays_below_the_callers_cgroup() {
    check_cgroups_path("../../X", true);
}

#[test]
fn an_absolute_cgroups_path_climbing_with_dotdot_stays_in_the_hierarchy() {
    check_cgroups_path("/../../X", false);
}

#[test]
fn a_cgroups_path_climbing_out_of_the_cgroup_filesystem_creates_nothing_on_the_host() {
    check_cgroups_path("../../../../../../../../../tmp/X", true);
}

#[test]
fn a_cgroups_path_naming_the_hierarchy_root_is_refused_or_kills_nothing_there() {
    check_cgroups_path("/", false);
}

// ---------------------------------------------------------------------------
// 8. An existing cgroup that holds a process
// ---------------------------------------------------------------------------

/// A new directory in the v1 pids hierarchy (its name and path), made by the test; None, with
/// a skip line, on a host without one.
fn new_v1_pids_cgroup(prefix: &str) -> Option<(String, PathBuf)> {
    if is_cgroup_v2() {
        skip("written for the v1 pids hierarchy of a v1 or hybrid host");
        return None;
    }
    if !require_controller("pids") {
        return None;
    }
    let name = unique(prefix);
    let dir = Path::new("/sys/fs/cgroup/pids").join(&name);
    fs::create_dir(&dir).unwrap();
    Some((name, dir))
}

#[test]
fn an_existing_busy_cgroup_survives_create_and_delete_with_its_process() {
    let Some((name, dir)) = new_v1_pids_cgroup("wrun-esc-busy") else {
        return;
    };
    let rt = Runtime::new();
    let mut sleeper = Spawned::spawn(Command::new("sleep").arg("60"), None);
    let pid = sleeper.pid();
    fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let id = rt.id("busycg");
    let created = create(&rt, &id, &b);
    let deleted = rt.delete_force(&id);
    let alive = pid_alive(pid) && !sleeper.exited();
    let exists = dir.is_dir();
    // Clean up: our sleep, then every directory of that name the runtime may have made.
    kill_pid(pid, libc::SIGKILL);
    let _ = sleeper.try_wait_timeout(timeout());
    let ours = cgroups_named(&name);
    rmdir_all(ours);
    assert!(
        alive,
        "the process already in cgroup {} was killed\ncreate: {}\ndelete: {}",
        dir.display(),
        show(&created),
        show(&deleted)
    );
    assert!(exists, "the pre-existing cgroup {} was removed", dir.display());
}

#[test]
fn an_existing_empty_cgroup_is_joined_and_left_in_place_by_delete() {
    let Some((name, dir)) = new_v1_pids_cgroup("wrun-esc-empty") else {
        return;
    };
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sh", "-c", "cat /proc/self/cgroup"]);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let id = rt.id("emptycg");
    let o = run(&rt, &id, &b);
    let exists = dir.is_dir();
    let others: Vec<PathBuf> = cgroups_named(&name).into_iter().filter(|d| d != &dir).collect();
    rmdir_all(cgroups_named(&name));
    assert_ok(&o, "run in an existing empty cgroup");
    assert!(
        stdout(&o).contains(&format!("pids:/{name}")),
        "the container is not in the existing cgroup: {}",
        show(&o)
    );
    assert!(exists, "delete removed the cgroup {} it did not create", dir.display());
    assert!(others.is_empty(), "delete left the cgroups it made: {others:?}");
}

// ---------------------------------------------------------------------------
// 9. kill --all against a forking process
// ---------------------------------------------------------------------------

#[test]
fn kill_all_leaves_no_process_of_a_forking_container() {
    // No PID namespace: the init's death does not take the others along, only kill --all can.
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.remove_namespace("pid");
    // Forks ~300 a second for as long as it lives; the pids limit bounds it (busybox sh exits
    // when a fork fails, so the init stays alive only while under the limit).
    b.with_config(|c| c["linux"]["resources"] = json!({"pids": {"limit": 2000}}));
    b.sh("exec 2>/dev/null; while :; do sleep 100 & usleep 3000; done");
    let id = rt.id("forker");
    create_ok(&rt, &id, &b);
    let procs = cgroup_procs_of(rt.pid(&id));
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(10), || cgroup_mates(&procs).len() >= 40),
        "the container never forked: {:?}",
        cgroup_mates(&procs)
    );
    let o = rt.exec(&["kill", "--all", &id, "KILL"]);
    let gone = wait_until(Duration::from_secs(5), || cgroup_mates(&procs).is_empty());
    let left = cgroup_mates(&procs);
    // Clean up whatever escaped: processes of this container's cgroup, killed by their PIDs.
    for _ in 0..50 {
        let l = cgroup_mates(&procs);
        if l.is_empty() {
            break;
        }
        for p in l {
            kill_pid(p, libc::SIGKILL);
        }
        sleep(Duration::from_millis(20));
    }
    assert!(
        gone,
        "kill --all left {} process(es): {left:?}\n{}",
        left.len(),
        show(&o)
    );
}
