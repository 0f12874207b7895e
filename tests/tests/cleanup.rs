//! After a container is gone nothing of it may remain: no state dir, no
//! mount, no process, no cgroup.

use std::time::Duration;
use wrun_tests::*;

/// Asserts no cgroup directory (within 3 levels below where the runtime
/// places containers, in every hierarchy) has `id` in its name.
#[track_caller]
fn assert_no_cgroup_left(id: &str) {
    let dirs = placement_dirs();
    assert!(!dirs.is_empty(), "cannot find this process's cgroups");
    let mut left = Vec::new();
    for d in &dirs {
        left.extend(find_dirs_named(d, id, 3));
    }
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// Asserts the container's cgroup exists somewhere below the placement
/// directories while it runs (so the "nothing left" checks mean something).
fn cgroup_exists(id: &str) -> bool {
    placement_dirs().iter().any(|d| !find_dirs_named(d, id, 3).is_empty())
}

#[test]
fn run_leaves_no_state_dir_mount_or_cgroup() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let rt = Runtime::new();
    let id = rt.id("clean-run");
    assert_ok(&rt.run(&id, &b), "run");
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}

#[test]
fn failing_run_leaves_nothing_behind() {
    let mut b = Bundle::busybox();
    b.sh("exit 7");
    let rt = Runtime::new();
    let id = rt.id("clean-fail");
    let o = rt.run(&id, &b);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}

#[test]
fn delete_after_kill_leaves_no_state_dir_mount_or_cgroup() {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = rt.id("clean-kill");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    assert!(
        cgroup_exists(&id),
        "no cgroup named after {id} below {:?} while running",
        placement_dirs()
    );
    assert_ok(&rt.kill(&id, "KILL"), "kill");
    rt.wait_status(&id, "stopped");
    assert_ok(&rt.delete(&id), "delete");
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}

#[test]
fn delete_force_of_a_running_container_with_children_leaves_nothing() {
    let mut b = Bundle::busybox();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let rt = Runtime::new();
    let id = rt.id("clean-force");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let init = rt.pid(&id);
    let mut kids = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        kids = children_of(init);
        kids.len() == 2
    }));
    assert_ok(&rt.delete_force(&id), "delete --force");
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(init)
            && kids.iter().all(|&k| !pid_alive(k))),
        "processes survived delete --force"
    );
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}

#[test]
fn delete_of_a_created_container_leaves_nothing() {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = rt.id("clean-created");
    rt.create_ok(&id, &b);
    assert_ok(&rt.delete(&id), "delete");
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}

#[test]
fn failed_create_leaves_no_cgroup() {
    let mut b = Bundle::busybox();
    b.args(&["/nonexistent-binary"]);
    let rt = Runtime::new();
    let id = rt.id("clean-badcreate");
    assert_fails(&rt.create(&id, &b), "create of a missing binary");
    assert_clean(rt.root(), &id, b.path());
    assert_no_cgroup_left(&id);
}
