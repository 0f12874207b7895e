//! The runtime's own state and signals: state files' modes, real-time signals, a create
//! killed at any moment.

use super::*;

// ---------------------------------------------------------------------------
// 10. State files' modes
// ---------------------------------------------------------------------------

/// The container's state directory and everything in it, with their modes.
fn state_entries(rt: &Runtime, id: &str) -> Vec<(PathBuf, fs::Metadata)> {
    let dir = rt.root().join(id);
    let mut out = vec![(
        dir.clone(),
        fs::symlink_metadata(&dir).expect("no state dir <root>/<id>"),
    )];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), md));
        }
    }
    report(
        &out.iter()
            .map(|(p, m)| {
                format!(
                    "{} {:o}",
                    p.strip_prefix(rt.root()).unwrap().display(),
                    m.mode() & 0o7777
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    out
}

fn created_container(rt: &Runtime, name: &str) -> (Bundle, String) {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let id = rt.id(name);
    create_ok(rt, &id, &b);
    (b, id)
}

#[test]
fn state_files_are_readable_only_by_root() {
    let rt = Runtime::new();
    let (_b, id) = created_container(&rt, "modes");
    let entries = state_entries(&rt, &id);
    let (dir, dmd) = &entries[0];
    assert_eq!(
        dmd.mode() & 0o066,
        0,
        "the state dir {} is mode {:o}: other users can list or write it",
        dir.display(),
        dmd.mode() & 0o7777
    );
    let open: Vec<String> = entries
        .iter()
        .filter(|(_, m)| m.is_file() && m.mode() & 0o077 != 0)
        .map(|(p, m)| format!("{} {:o}", p.display(), m.mode() & 0o7777))
        .collect();
    assert!(open.is_empty(), "state files open to other users: {open:?}");
}

#[test]
fn the_exec_fifo_is_unreachable_by_other_users() {
    let rt = Runtime::new();
    let (_b, id) = created_container(&rt, "fifo");
    let entries = state_entries(&rt, &id);
    let traversable = entries[0].1.mode() & 0o011 != 0;
    let open: Vec<String> = entries
        .iter()
        .filter(|(_, m)| {
            let t = m.file_type();
            (t.is_fifo() || t.is_socket()) && m.mode() & 0o066 != 0 && traversable
        })
        .map(|(p, m)| format!("{} {:o}", p.display(), m.mode() & 0o7777))
        .collect();
    assert!(
        open.is_empty(),
        "fifos/sockets other users can open (state dir mode {:o}): {open:?}",
        entries[0].1.mode() & 0o7777
    );
}

// ---------------------------------------------------------------------------
// 11. Real-time signals
// ---------------------------------------------------------------------------

/// `kill ID <signal>` must run a `trap … 37` handler in the container.
fn check_rt_signal(signal: &str) {
    let rt = Runtime::new();
    let out = TempDir::new("rtsig");
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[])
        .sh("trap 'echo got >> /out/sig' 37; echo > /out/ready; while :; do sleep 0.05; done");
    let id = rt.id("rtsig");
    create_ok(&rt, &id, &b);
    let pid = rt.pid(&id);
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(5), || catches_signal(pid, 37)),
        "the container never installed its trap"
    );
    let o = rt.kill(&id, signal);
    let got = wait_for_file(&out.join("sig"), Duration::from_secs(3));
    assert!(
        got,
        "`kill {id} {signal}` did not reach the container's trap on signal 37\n{}",
        show(&o)
    );
}

#[test]
fn kill_with_signal_number_37_reaches_a_trap() {
    check_rt_signal("37");
}

#[test]
fn kill_rtmin_plus_3_by_name_reaches_a_trap_on_37() {
    check_rt_signal("RTMIN+3");
}

#[test]
fn kill_sigrtmin_plus_3_by_name_reaches_a_trap_on_37() {
    check_rt_signal("SIGRTMIN+3");
}

// ---------------------------------------------------------------------------
// 12. SIGKILL of create at a random moment, then delete --force
// ---------------------------------------------------------------------------

/// Rounds of killed creates.
const KILLED_CREATES: usize = 300;

#[test]
fn a_create_killed_at_any_moment_leaves_nothing_after_delete_force() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let mut leftovers: Vec<String> = Vec::new();
    let mut dirty_rounds = 0;
    let started = Instant::now();
    let mut rounds = 0;
    for _ in 0..KILLED_CREATES {
        if started.elapsed() > Duration::from_secs(40) {
            break;
        }
        rounds += 1;
        let id = rt.id("killed");
        let mut c = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
        sleep(Duration::from_micros(random_below(30_000)));
        kill_pid(c.pid(), libc::SIGKILL);
        let _ = c.exited();
        drop(c);
        let _ = rt.delete_force(&id);
        let mut left = Vec::new();
        if rt.root().join(&id).exists() {
            left.push("state dir".to_string());
        }
        let cgs = cgroups_named(&id);
        if !cgs.is_empty() {
            left.push(format!("{} cgroup dir(s) e.g. {}", cgs.len(), cgs[0].display()));
        }
        let mounts = host_mounts_under(b.path());
        if !mounts.is_empty() {
            left.push(format!("mounts {mounts:?}"));
        }
        let mut procs = processes_in(b.path());
        for d in &cgs {
            procs.extend(cgroup_mates(&d.join("cgroup.procs")));
        }
        procs.sort();
        procs.dedup();
        if !procs.is_empty() {
            left.push(format!("processes {procs:?}"));
        }
        if !left.is_empty() {
            dirty_rounds += 1;
            leftovers.push(format!("{id}: {}", left.join(", ")));
            // Clean up this round: our container's processes by PID, then its cgroups.
            for p in &procs {
                kill_pid(*p, libc::SIGKILL);
            }
            wait_until(Duration::from_secs(2), || processes_in(b.path()).is_empty());
            rmdir_all(cgs);
            detach_mounts_under(&b.rootfs());
        }
    }
    report(&format!(
        "{dirty_rounds} of {rounds} killed creates left something after delete --force"
    ));
    assert!(
        leftovers.is_empty(),
        "{dirty_rounds} of {rounds} killed creates left something after delete --force:\n{}",
        leftovers.join("\n")
    );
}
