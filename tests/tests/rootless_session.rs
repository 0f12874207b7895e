//! The rootless session (`wrun unshare`: the user namespace and mount namespace a user's
//! front-end commands share); each test runs as a throwaway user, as in rootless.rs.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use wrun_tests::*;

/// The pause process's pid from the session's pid file ("PID STARTTIME").
fn pause_pid(f: &Path) -> i32 {
    let text = fs::read_to_string(f).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn unshare(u: &RootlessUser, rt: &Runtime, args: &[&str]) -> Output {
    let mut a = vec!["unshare"];
    a.extend_from_slice(args);
    run_cmd(&mut u.command(rt.bin(), &a), None)
}

#[test]
fn unshare_runs_commands_as_root_in_one_lasting_session_with_the_users_range() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("`unshare` is wrun's (podman unshare's counterpart)");
        return;
    }
    if !newuidmap_installed() {
        skip("newuidmap/newgidmap are not installed (apt-get install uidmap)");
        return;
    }
    let o = unshare(
        &u,
        &rt,
        &["sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user"],
    );
    assert_ok(&o, "unshare");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", show(&o));
    assert_eq!(lines[0], "0", "{out}");
    assert!(lines[1].split_whitespace().eq(["0", &u.uid.to_string(), "1"]), "{out}");
    assert!(
        lines[2].split_whitespace().eq(["1", &u.sub_start.to_string(), "65536"]),
        "{out}"
    );
    let ns = lines[3].to_string();
    let pid_file = u.runtime_dir.join("wrun/pause.pid");
    let pause: i32 = pause_pid(&pid_file);
    assert!(pid_alive(pause as i64), "the pause process {pause} is not running");
    assert_eq!(fs::metadata(format!("/proc/{pause}")).unwrap().uid(), u.uid);

    // The next command joins the same namespaces: a mount made by one is seen by the next, and
    // not by the host.
    let m = u.runtime_dir.join("m");
    fs::create_dir(&m).unwrap();
    std::os::unix::fs::chown(&m, Some(u.uid), Some(u.gid)).unwrap();
    let o = unshare(
        &u,
        &rt,
        &["mount", "-t", "tmpfs", "wrun-session-test", m.to_str().unwrap()],
    );
    assert_ok(&o, "mount a tmpfs in the session");
    let o = unshare(
        &u,
        &rt,
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/user; grep -c wrun-session-test /proc/self/mountinfo",
        ],
    );
    assert_ok(&o, "unshare again");
    assert_eq!(stdout(&o), format!("{ns}\n1\n"), "{}", show(&o));
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains("wrun-session-test"),
        "the session's mount leaked to the host"
    );

    // Killing the pause process ends the session; the next command makes a new one.
    unsafe { libc::kill(pause, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pause as i64)));
    let o = unshare(&u, &rt, &["readlink", "/proc/self/ns/user"]);
    assert_ok(&o, "unshare after the session ended");
    assert_ne!(stdout(&o).trim(), ns, "a dead session was joined");
    let second: i32 = pause_pid(&pid_file);
    assert_ne!(second, pause);

    // A pid reused by another process of the user is not joined, even one that carries the
    // pause marker in its environment (as a container's process could): the file names the
    // pause process by pid and start time, and this one's start time differs.
    let sleeper = Spawned::spawn(
        &mut u.command(Path::new("/usr/bin/env"), &["_WRUN_PAUSE=1", "/bin/sleep", "30"]),
        None,
    );
    let sleep_pid = sleeper.pid();
    assert!(wait_until(Duration::from_secs(5), || fs::read(format!(
        "/proc/{sleep_pid}/environ"
    ))
    .is_ok_and(|e| e.windows(13).any(|w| w == b"_WRUN_PAUSE=1"))));
    unsafe { libc::kill(second, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(second as i64)));
    fs::write(&pid_file, format!("{sleep_pid} 1\n")).unwrap();
    let o = unshare(&u, &rt, &["id", "-u"]);
    assert_ok(&o, "unshare with a pid file whose pid was reused by a marked process");
    assert_eq!(stdout(&o), "0\n");
    let third = pause_pid(&pid_file);
    assert_ne!(third, sleep_pid as i32, "the reused pid was joined");
    drop(sleeper);
}

#[test]
fn without_a_subordinate_range_the_session_maps_the_users_own_id_and_says_so() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("`unshare` is wrun's");
        return;
    }
    u.drop_ranges();
    let o = unshare(&u, &rt, &["cat", "/proc/self/uid_map"]);
    assert_ok(&o, "unshare without ranges");
    assert!(
        stdout(&o).split_whitespace().eq(["0", &u.uid.to_string(), "1"]),
        "{}",
        show(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains("usermod --add-subuids"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
