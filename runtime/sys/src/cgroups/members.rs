//! The processes of a container's cgroup: joining, listing, signalling (through
//! `cgroup.kill` or freeze → kill → thaw, so a forking process cannot escape), and removing
//! the directories.

use super::*;

/// Move `pid` into every directory.
pub fn join(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        let f = d.join("cgroup.procs");
        std::fs::write(&f, pid.to_string()).ctx(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// `d` and the cgroups below it (sub-cgroups an `exec --cgroup` runs in, or the container
/// made), children before their parent, as they must be removed.
fn tree(d: &std::path::Path) -> Vec<PathBuf> {
    fn walk(d: &std::path::Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth < 32 {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&e.path(), depth + 1, out);
                    }
                }
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    walk(d, 0, &mut out);
    out
}

/// The pids in the container's cgroup and the cgroups below it, in every hierarchy.
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    // Every hierarchy, not only the first: a process caught half way through joining (a
    // create killed during `join`) is in some directories and not in others.
    let mut all: Vec<i32> = dirs
        .iter()
        .flat_map(|d| tree(d))
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The directories of `dirs` that do not exist yet (the ones a create will make and own), or
/// an error when one that exists holds processes: a container never shares a cgroup with
/// processes that are not its own, which its limits, `kill --all` and delete would hit.
pub fn unused_or_new(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut new = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            new.push(d.clone());
            continue;
        }
        // Its own processes: a parent cgroup whose children hold processes is not refused.
        let own = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        if let Some(pid) = own.lines().find(|l| !l.trim().is_empty()) {
            return Err(Error::Invalid(format!(
                "linux.cgroupsPath: cgroup {} already holds processes (pid {pid}); a container needs a cgroup of its own",
                d.display()
            )));
        }
    }
    Ok(new)
}

/// Send `sig` to every process in the cgroup, including children forked while we signal:
/// SIGKILL through v2's `cgroup.kill` (the kernel kills the whole cgroup at once, forks in
/// flight included; on a hybrid host also each process of the v1 directories); otherwise
/// with the cgroup frozen, so a process cannot fork a child we
/// would not see, then thawed (a paused container stays paused, but for SIGKILL).
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> Result<()> {
    let cg = Cgroup::new(dirs);
    if sig == libc::SIGKILL {
        if let Some(d) = cg.v2_dir().filter(|d| d.join("cgroup.kill").exists()) {
            // On a hybrid host the v2 directory is one of several, and a process may be in
            // the v1 ones only (a create killed half way through joining): those are
            // signalled below too.
            if std::fs::write(d.join("cgroup.kill"), "1").is_ok() && dirs.len() == 1 {
                return Ok(());
            }
        }
    }
    let was_frozen = is_frozen(dirs);
    let froze = !was_frozen && cg.freeze(true).is_ok();
    let r = signal_each(dirs, sig);
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cg.freeze(false);
    }
    r
}

/// kill(2) of each pid in the cgroup now.
fn signal_each(dirs: &[PathBuf], sig: i32) -> Result<()> {
    for pid in pids(dirs) {
        // SAFETY: plain kill(2); ESRCH for a process that just exited is fine.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = nix::errno::Errno::last();
            if e != nix::errno::Errno::ESRCH {
                return Err(Error::sys(format!("signal {sig} to pid {pid}"), e));
            }
        }
    }
    Ok(())
}

/// Whether the v1 freezer or v2 cgroup.freeze says the cgroup is frozen.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// Remove the directories, killing what is left and retrying while the kernel still says
/// busy (a process that was just killed leaves its cgroup a moment later).
pub fn remove(dirs: &[PathBuf]) -> Result<()> {
    if !pids(dirs).is_empty() {
        signal_all(dirs, libc::SIGKILL)?;
    }
    for d in dirs.iter().flat_map(|d| tree(d)) {
        let d = &d;
        let mut delay = Duration::from_millis(1);
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && delay < Duration::from_secs(2) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => return Err(Error::io(format!("remove cgroup {}", d.display()), e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A create killed half way through `join` leaves its init in the v1 directories but not
    /// (yet) in the v2 one of a hybrid host: `cgroup.kill` there reaches nothing, and the
    /// process must still be killed.
    #[test]
    fn sigkill_reaches_a_process_that_is_in_only_some_hierarchies() {
        let (v2root, v1root) = (Path::new("/sys/fs/cgroup/unified"), Path::new("/sys/fs/cgroup/pids"));
        let root = nix::unistd::geteuid().is_root();
        if !root || !v2root.join("cgroup.procs").exists() || !v1root.join("cgroup.procs").exists() {
            // Past libtest's capture, so .ci/run counts it as skipped.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"wrun-tests: skipped sigkill_reaches_a_process_that_is_in_only_some_hierarchies: \
                  needs root and a hybrid host (a v2 hierarchy beside a v1 pids one)\n",
            );
            return;
        }
        let name = format!("wrun-unit-partial-{}", std::process::id());
        let dirs = vec![v2root.join(&name), v1root.join(&name)];
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(dirs[1].join("cgroup.procs"), child.id().to_string()).unwrap();
        let r = signal_all(&dirs, libc::SIGKILL);
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !gone {
            let _ = child.kill();
        }
        let _ = child.wait();
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        r.unwrap();
        assert!(gone, "a process in the v1 directory only survived signal_all(SIGKILL)");
    }
}
