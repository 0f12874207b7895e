//! Where the runtime puts a container's cgroup and how a test reads a limit back, on a
//! v1/hybrid host or on a pure cgroup v2 one (tests/v2/run.sh boots such a kernel).
//!
//! Tests state a limit in v1 terms, a file and the value v1 shows; [`assert_limit`] reads
//! that file on v1 and the file and value runc's conversion gives on v2. A test that needs a
//! controller this kernel lacks asks [`require_controller`], which prints why it is skipped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How this host's cgroups are mounted, decided as the runtime decides it: from the mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// v1 hierarchies carry the controllers (with or without a cgroup2 mount beside them).
    V1,
    /// Only cgroup2, mounted at this path.
    V2(PathBuf),
}

pub fn cgroup_layout() -> &'static CgroupLayout {
    static LAYOUT: OnceLock<CgroupLayout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let mut v2 = None;
        for m in wrun_sys::mountinfo::read_own().unwrap_or_default() {
            match m.fstype.as_str() {
                "cgroup" => return CgroupLayout::V1,
                "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(m.mountpoint)),
                _ => {}
            }
        }
        v2.map_or(CgroupLayout::V1, CgroupLayout::V2)
    })
}

pub fn is_cgroup_v2() -> bool {
    matches!(cgroup_layout(), CgroupLayout::V2(_))
}

/// This process's cgroup path in the hierarchy whose /proc/self/cgroup line has `controllers`
/// ("" for cgroup2).
fn own_path(controller: Option<&str>) -> Option<String> {
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            None => c.is_empty(),
            Some(want) => c.split(',').any(|x| x == want),
        };
        hit.then(|| p.to_string())
    })
}

/// Where the runtime places a relative cgroup path: below the caller's own cgroup in v1
/// hierarchies; on pure v2 below its parent, as runc does, since the caller's own cgroup
/// holds the caller and a cgroup with processes cannot delegate controllers.
fn placement(controller: &str) -> PathBuf {
    match cgroup_layout() {
        CgroupLayout::V1 => {
            let own = own_path(Some(controller)).unwrap_or_else(|| panic!("no v1 {controller} hierarchy on this host"));
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(own.trim_start_matches('/'))
        }
        CgroupLayout::V2(mount) => {
            let own = own_path(None).expect("no cgroup2 line in /proc/self/cgroup");
            let parent = Path::new(&own).parent().unwrap_or(Path::new("/")).to_path_buf();
            mount.join(parent.strip_prefix("/").unwrap_or(&parent))
        }
    }
}

/// The container's cgroup directory holding `controller`'s files (`wrun/<id>` placed as the
/// runtime places relative paths; on v2 the same directory for every controller).
pub fn container_cgroup(controller: &str, id: &str) -> PathBuf {
    placement(controller).join("wrun").join(id)
}

/// The directories below which the runtime makes containers' cgroups: one per v1 hierarchy
/// (plus the hybrid unified one), or the single placement directory on pure v2.
pub fn placement_dirs() -> Vec<PathBuf> {
    match cgroup_layout() {
        CgroupLayout::V1 => own_cgroup_dirs(),
        CgroupLayout::V2(_) => vec![placement("")],
    }
}

/// Where a process inside the container reads `file` of `controller`, given the default
/// `/sys/fs/cgroup` mount: one directory per hierarchy on v1, the container's own directory
/// on v2.
pub fn container_cgroup_file(controller: &str, file: &str) -> String {
    if is_cgroup_v2() {
        format!("/sys/fs/cgroup/{file}")
    } else {
        format!("/sys/fs/cgroup/{controller}/{file}")
    }
}

/// What v1 shows for an unlimited memory limit (PAGE_COUNTER_MAX pages).
const V1_UNLIMITED_MEMORY: &str = "9223372036854771712";

/// The v2 file, the field in it (cpu.max holds quota and period), and the value that a v1
/// `file` holding `value` becomes on v2 (runc's conversions).
fn v2_equivalent(file: &str, value: &str) -> (&'static str, Option<usize>, String) {
    let same = value.to_string();
    match file {
        "memory.limit_in_bytes" if value == V1_UNLIMITED_MEMORY => ("memory.max", None, "max".into()),
        "memory.limit_in_bytes" => ("memory.max", None, same),
        "memory.soft_limit_in_bytes" => ("memory.low", None, same),
        "pids.max" => ("pids.max", None, same),
        "cpu.cfs_quota_us" if value == "-1" => ("cpu.max", Some(0), "max".into()),
        "cpu.cfs_quota_us" => ("cpu.max", Some(0), same),
        "cpu.cfs_period_us" => ("cpu.max", Some(1), same),
        "cpu.shares" => {
            let shares: u64 = value.parse().expect("cpu.shares is a number");
            ("cpu.weight", None, (1 + (shares - 2) * 9999 / 262_142).to_string())
        }
        "cpuset.cpus" => ("cpuset.cpus", None, same),
        "cpuset.mems" => ("cpuset.mems", None, same),
        _ => panic!("no v2 equivalent of {file} is known: add it to v2_equivalent"),
    }
}

fn read_trimmed(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Asserts container `id`'s cgroup holds the limit that v1 shows as `v1_value` in `v1_file`
/// (on v2: the file and value that limit maps to).
#[track_caller]
pub fn assert_limit(id: &str, v1_file: &str, v1_value: &str) {
    let controller = v1_file.split('.').next().unwrap_or_default();
    let dir = container_cgroup(controller, id);
    if !is_cgroup_v2() {
        assert_eq!(
            read_trimmed(&dir.join(v1_file)),
            v1_value,
            "{}",
            dir.join(v1_file).display()
        );
        return;
    }
    let (file, field, want) = v2_equivalent(v1_file, v1_value);
    let text = read_trimmed(&dir.join(file));
    let got = match field {
        Some(i) => text.split_whitespace().nth(i).unwrap_or_default().to_string(),
        None => text.clone(),
    };
    assert_eq!(
        got,
        want,
        "{} is {text:?}; v1's {v1_file} = {v1_value} is {want} there",
        dir.join(file).display()
    );
}

/// The controllers a container can be given on this host.
fn available_controllers() -> Vec<String> {
    match cgroup_layout() {
        CgroupLayout::V1 => fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .flat_map(|c| c.split(','))
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        CgroupLayout::V2(mount) => fs::read_to_string(mount.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
    }
}

/// Whether this host offers `controller`. If not, prints that the calling test is skipped and
/// why (straight to stderr, past the test harness's capture, so it shows in every run), and
/// the test should return at once.
pub fn require_controller(controller: &str) -> bool {
    let have = available_controllers();
    if have.iter().any(|c| c == controller) {
        return true;
    }
    skip(&format!(
        "needs the {controller} cgroup controller, which this kernel does not offer (it has: {})",
        have.join(" ")
    ));
    false
}

/// Prints `wrun-tests: skipped <test>: <reason>` on stderr; .ci/run counts these lines as
/// skipped tests, not passed ones.
pub fn skip(reason: &str) {
    let name = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "wrun-tests: skipped {name}: {reason}");
}

/// The cgroup directories (one per hierarchy) this test process is in.
pub fn own_cgroup_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let cg = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let unified = if Path::new("/sys/fs/cgroup/unified").is_dir() {
        PathBuf::from("/sys/fs/cgroup/unified")
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let rel = path.trim_start_matches('/');
        let base = if ctrl.is_empty() {
            unified.clone()
        } else {
            let name = ctrl.strip_prefix("name=").unwrap_or(ctrl);
            let first = Path::new("/sys/fs/cgroup").join(name);
            if first.is_dir() {
                first
            } else {
                match ctrl
                    .split(',')
                    .map(|c| Path::new("/sys/fs/cgroup").join(c))
                    .find(|p| p.is_dir())
                {
                    Some(p) => p,
                    None => continue,
                }
            }
        };
        let d = base.join(rel);
        if d.is_dir() {
            dirs.push(d);
        }
    }
    dirs
}

/// Directories below `dir` (to `depth` levels) whose name contains `needle`.
pub fn find_dirs_named(dir: &Path, needle: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if depth == 0 {
        return found;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            found.extend(find_dirs_named(&p, needle, depth - 1));
        }
    }
    found
}
