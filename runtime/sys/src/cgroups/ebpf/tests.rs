//! Tests of the parent module.
use super::*;

fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_str(json).expect("test rules parse")
}

/// Static checks the kernel's verifier also makes: known opcodes, jumps inside the
/// program, no fall-through past the end, every instruction reachable.
fn check_structure(prog: &[Insn]) {
    assert!(!prog.is_empty());
    let mut reach = vec![false; prog.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        assert!(pc < prog.len(), "control flow leaves the program at {pc}: {prog:?}");
        if std::mem::replace(&mut reach[pc], true) {
            continue;
        }
        let i = prog[pc];
        match i.code {
            JMP_EXIT => {}
            JMP_JEQ_K | JMP_JNE_K => {
                todo.push(pc + 1);
                todo.push((pc as isize + 1 + i.off as isize) as usize);
            }
            LDX_MEM_W | ALU32_AND_K | ALU32_RSH_K | ALU32_MOV_X | ALU64_MOV_K => todo.push(pc + 1),
            c => panic!("unexpected opcode {c:#x} at {pc}"),
        }
    }
    let dead: Vec<_> = reach.iter().enumerate().filter(|(_, r)| !**r).map(|(i, _)| i).collect();
    assert!(dead.is_empty(), "unreachable instructions {dead:?}");
}

/// A small interpreter for the opcodes `device_program` emits. Registers are `None` until
/// written, and reading one panics, as the verifier would reject such a program.
fn run(prog: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> bool {
    const CTX: u64 = 0xc0ffee;
    let ctx = [(access << 16) | typ, major, minor];
    let mut r: [Option<u64>; 11] = [None; 11];
    r[1] = Some(CTX);
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = prog[pc];
        pc += 1;
        let (d, s) = (i.dst() as usize, i.src() as usize);
        let get = |r: &[Option<u64>; 11], n: usize| r[n].unwrap_or_else(|| panic!("read of unset r{n}"));
        match i.code {
            LDX_MEM_W => {
                assert_eq!(get(&r, s), CTX, "load from a non-context register");
                assert!(i.off >= 0 && i.off % 4 == 0 && (i.off as usize) < 12, "bad ctx offset");
                r[d] = Some(ctx[i.off as usize / 4] as u64);
            }
            ALU32_AND_K => r[d] = Some((get(&r, d) as u32 & i.imm as u32) as u64),
            ALU32_RSH_K => r[d] = Some(((get(&r, d) as u32) >> i.imm) as u64),
            ALU32_MOV_X => r[d] = Some(get(&r, s) as u32 as u64),
            ALU64_MOV_K => r[d] = Some(i.imm as i64 as u64),
            JMP_JEQ_K | JMP_JNE_K => {
                let eq = get(&r, d) == i.imm as i64 as u64;
                if eq == (i.code == JMP_JEQ_K) {
                    pc = (pc as isize + i.off as isize) as usize;
                }
            }
            JMP_EXIT => {
                let v = get(&r, 0);
                assert!(v <= 1, "return value {v}");
                return v == 1;
            }
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
    panic!("program did not terminate");
}

const C: u32 = DEV_CHAR as u32;
const B: u32 = DEV_BLOCK as u32;
const R: u32 = ACC_READ;
const W: u32 = ACC_WRITE;
const M: u32 = ACC_MKNOD;
const RW: u32 = ACC_READ | ACC_WRITE;

fn compile(json: &str) -> Vec<Insn> {
    let prog = device_program(&rules(json)).expect("rules compile");
    check_structure(&prog);
    prog
}

/// The default devices of `runc spec` / docker: deny all, then the usual allow list.
const DEFAULTS: &str = r#"[
    {"allow": false, "access": "rwm"},
    {"allow": true, "type": "c", "access": "m"},
    {"allow": true, "type": "b", "access": "m"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": true, "type": "c", "major": 136, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
]"#;

#[test]
fn insn_layout() {
    assert_eq!(std::mem::size_of::<Insn>(), 8);
    let i = Insn::new(LDX_MEM_W, R2, R1, 4, -7);
    assert_eq!((i.dst(), i.src()), (2, 1));
    // SAFETY: Insn is 8 bytes of plain integers without padding.
    let bytes: [u8; 8] = unsafe { std::mem::transmute(i) };
    #[cfg(target_endian = "little")]
    assert_eq!(bytes, [0x61, 0x12, 4, 0, 0xf9, 0xff, 0xff, 0xff]);
    let _ = bytes;
}

#[test]
fn runc_spec_default_denies_everything() {
    let prog = compile(r#"[{"allow": false, "access": "rwm"}]"#);
    for (t, maj, min) in [(C, 1, 3), (C, 136, 0), (B, 8, 0)] {
        for acc in [R, W, M, RW, R | W | M] {
            assert!(!run(&prog, t, maj, min, acc), "{t} {maj}:{min} {acc}");
        }
    }
    // The deny-all rule ends the program: nothing after it, no default tail.
    assert_eq!(prog.len(), 8);
}

#[test]
fn no_rules_deny_everything() {
    let prog = compile("[]");
    assert!(!run(&prog, C, 1, 3, R));
    assert!(!run(&prog, B, 8, 0, M));
}

#[test]
fn default_allow_list() {
    let prog = compile(DEFAULTS);
    // Listed devices, all accesses.
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        for acc in [R, W, M, RW, R | W | M] {
            assert!(run(&prog, C, maj, min, acc), "c {maj}:{min} {acc}");
        }
        // The same numbers as a block device are not allowed (except mknod, below).
        assert!(!run(&prog, B, maj, min, R), "b {maj}:{min}");
    }
    // /dev/pts/*: any minor of 136.
    for min in [0, 1, 77, 1_048_575] {
        assert!(run(&prog, C, 136, min, RW), "c 136:{min}");
    }
    assert!(!run(&prog, C, 137, 0, RW));
    // Anything else can be created (m) but not opened.
    for (t, maj, min) in [(C, 4, 1), (C, 1, 1), (B, 8, 0), (B, 253, 0)] {
        assert!(run(&prog, t, maj, min, M), "{t} {maj}:{min} mknod");
        assert!(!run(&prog, t, maj, min, R), "{t} {maj}:{min} read");
        assert!(!run(&prog, t, maj, min, W), "{t} {maj}:{min} write");
        assert!(!run(&prog, t, maj, min, RW), "{t} {maj}:{min} rw");
    }
}

#[test]
fn wildcard_allow_all() {
    // deny all, then allow a *:* rwm: everything allowed, program ends at the wildcard.
    let prog = compile(r#"[{"allow": false, "access": "rwm"}, {"allow": true, "type": "a", "access": "rwm"}]"#);
    assert_eq!(prog.len(), 8);
    for (t, maj, min) in [(C, 1, 3), (C, 4, 1), (B, 8, 0)] {
        assert!(run(&prog, t, maj, min, R | W | M));
    }
    // Missing type and major/minor -1 are wildcards too.
    let prog = compile(r#"[{"allow": true, "major": -1, "minor": -1, "access": "rwm"}]"#);
    assert_eq!(prog.len(), 8);
    assert!(run(&prog, B, 8, 1, RW));
}

#[test]
fn deny_list_mode() {
    // Allow everything but /dev/null, and only reading of block devices of major 8.
    let prog = compile(
        r#"[{"allow": true, "type": "a", "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "access": "wm"}]"#,
    );
    assert!(!run(&prog, C, 1, 3, R));
    assert!(!run(&prog, C, 1, 3, M));
    assert!(run(&prog, C, 1, 5, RW));
    assert!(run(&prog, B, 1, 3, RW));
    assert!(run(&prog, B, 8, 0, R));
    assert!(!run(&prog, B, 8, 0, W));
    assert!(!run(&prog, B, 8, 16, RW));
    assert!(!run(&prog, B, 8, 0, M));
    assert!(run(&prog, B, 9, 0, RW));
}

#[test]
fn access_subset() {
    let prog = compile(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}]"#,
    );
    assert!(run(&prog, C, 1, 3, R));
    assert!(!run(&prog, C, 1, 3, W));
    assert!(!run(&prog, C, 1, 3, RW));
    assert!(!run(&prog, C, 1, 3, M));
    assert!(!run(&prog, C, 1, 5, R));
    // Order of letters and repeats do not matter.
    let prog = compile(r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "wrrw"}]"#);
    assert!(run(&prog, C, 1, 3, RW));
    assert!(!run(&prog, C, 1, 3, M));
}

#[test]
fn last_matching_rule_wins() {
    // A later deny of w overrides the allow for w, and for any request that includes w.
    let prog = compile(
        r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
    );
    assert!(run(&prog, C, 1, 3, R));
    assert!(run(&prog, C, 1, 3, M));
    assert!(!run(&prog, C, 1, 3, W));
    assert!(!run(&prog, C, 1, 3, RW));
    // The other order: the later allow wins.
    let prog = compile(
        r#"[{"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]"#,
    );
    assert!(run(&prog, C, 1, 3, RW));
    // A later deny-all wins over everything before it.
    let prog = compile(r#"[{"allow": true, "type": "a", "access": "rwm"}, {"allow": false, "access": "rwm"}]"#);
    assert!(!run(&prog, C, 1, 3, R));
}

#[test]
fn access_decided_per_bit() {
    // r and w allowed by separate rules: an O_RDWR open is allowed (as with cgroup v1).
    let prog = compile(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
            {"allow": true, "type": "c", "major": 1, "access": "w"}]"#,
    );
    assert!(run(&prog, C, 1, 3, RW));
    assert!(!run(&prog, C, 1, 5, RW));
    assert!(run(&prog, C, 1, 5, W));
    assert!(!run(&prog, C, 1, 3, M));
    // A deny of w between allows of r and of rw: the last rule naming w (the allow) decides.
    let prog = compile(
        r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
    );
    assert!(run(&prog, C, 1, 3, RW));
}

#[test]
fn empty_access_matches_nothing() {
    let prog = compile(
        r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": ""},
            {"allow": false, "type": "c", "major": 1, "minor": 3}]"#,
    );
    assert!(run(&prog, C, 1, 3, RW));
}

#[test]
fn invalid_rules_are_named() {
    let err = device_program(&rules(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "u", "major": 1, "minor": 3, "access": "rwm"}]"#,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"device rule 1 (allow u 1:3 rwm): unknown device type "u" (want a, b or c)"#
    );
    let err = device_program(&rules(r#"[{"allow": true, "type": "p", "access": "r"}]"#)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("device rule 0 (allow p *:* r): unknown device type"),
        "{err}"
    );
    let err = device_program(&rules(
        r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}]"#,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"device rule 0 (allow c 1:3 rwx): unknown access 'x' (want a subset of "rwm")"#
    );
    // A bad rule is reported even when a later rule matches everything.
    let err = device_program(&rules(
        r#"[{"allow": true, "type": "c", "major": -2, "access": "r"}, {"allow": false, "access": "rwm"}]"#,
    ))
    .unwrap_err();
    assert_eq!(err.to_string(), "device rule 0 (allow c -2:* r): major -2 out of range");
    let err = device_program(&rules(
        r#"[{"allow": true, "type": "b", "major": 8, "minor": 4294967296, "access": "r"}]"#,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("minor 4294967296 out of range"), "{err}");
}

#[test]
fn log_summary_picks_the_error_line() {
    let log = "0: (95) exit\nR0 !read_ok\nprocessed 1 insns (limit 1000000) max_states_per_insn 0\n";
    assert_eq!(log_summary(log), ": R0 !read_ok");
    assert_eq!(log_summary(""), "");
    let e = EbpfError::Load {
        errno: Errno::EACCES,
        log: log.into(),
    };
    assert_eq!(
        e.to_string(),
        "bpf: load device program: Permission denied: R0 !read_ok"
    );
}

// ---- Tests against the kernel (root only) ----

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Where a cgroup2 hierarchy is mounted: /sys/fs/cgroup/unified (hybrid) or the first
/// cgroup2 mount.
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let all: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
        })
        .collect();
    all.iter()
        .find(|p| p.as_path() == Path::new("/sys/fs/cgroup/unified"))
        .or(all.first())
        .cloned()
}

/// A cgroup made for a test, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let root = cgroup2_mount().expect("a cgroup2 hierarchy is mounted (checked by the caller)");
        let dir = root.join(format!("wrun-ebpf-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            match std::fs::remove_dir(&self.0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => {
                    eprintln!("rmdir {}: {e}", self.0.display());
                    return;
                }
                Ok(()) => return,
            }
        }
    }
}

fn kernel_test_prerequisites() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: needs root to load BPF programs and make cgroups");
        return false;
    }
    if cgroup2_mount().is_none() {
        eprintln!("SKIPPED: no cgroup2 hierarchy mounted");
        return false;
    }
    true
}

/// Fork a child that joins `cgroup` and opens each (path, flags); returns for each whether
/// the open succeeded. The child makes only async-signal-safe calls (the test harness is
/// multi-threaded).
fn opens_in_cgroup(cgroup: &Path, opens: &[(&str, libc::c_int)]) -> Vec<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    assert!(opens.len() <= 6);
    let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
    let paths: Vec<(CString, libc::c_int)> = opens
        .iter()
        .map(|(p, f)| (CString::new(*p).unwrap(), *f | libc::O_CLOEXEC))
        .collect();
    // SAFETY: the child only calls open/write/close/_exit (async-signal-safe) on data
    // prepared before the fork, then exits without returning.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above; all pointers are to CStrings that live in this process image.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(100);
            }
            libc::close(fd);
            let mut code = 0;
            for (i, (p, f)) in paths.iter().enumerate() {
                let fd = libc::open(p.as_ptr(), *f);
                if fd >= 0 {
                    code |= 1 << i;
                    libc::close(fd);
                }
            }
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked; status is a valid int.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "child did not exit normally: {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 100, "child could not join {}", cgroup.display());
    (0..opens.len()).map(|i| code & (1 << i) != 0).collect()
}

#[test]
fn kernel_device_filter() {
    if !kernel_test_prerequisites() {
        return;
    }
    let cg = TestCgroup::new("filter");
    let opens = [
        ("/dev/null", libc::O_RDONLY),
        ("/dev/zero", libc::O_RDONLY),
        ("/dev/zero", libc::O_WRONLY),
        ("/dev/full", libc::O_RDONLY),
    ];
    // Before any filter every open works (the v1 devices cgroup of this process allows them).
    assert_eq!(
        opens_in_cgroup(&cg.0, &opens),
        [true, true, true, true],
        "without a filter"
    );

    // A permissive filter first, so the real one must replace it.
    let allow_all = device_program(&rules(r#"[{"allow": true, "access": "rwm"}]"#)).unwrap();
    attach(&allow_all, &cg.0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        opens_in_cgroup(&cg.0, &opens),
        [true, true, true, true],
        "allow-all filter"
    );

    let prog = device_program(&rules(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]"#,
    ))
    .unwrap();
    attach(&prog, &cg.0).unwrap_or_else(|e| panic!("{e}"));
    let dir = File::open(&cg.0).unwrap();
    let (ids, flags) = query(&dir, &cg.0).unwrap();
    assert_eq!(ids.len(), 1, "the old filter was detached: {ids:?}");
    assert_eq!(flags, BPF_F_ALLOW_MULTI);
    // null denied, zero readable but not writable, full (no rule) denied.
    assert_eq!(
        opens_in_cgroup(&cg.0, &opens),
        [false, true, false, false],
        "real filter"
    );

    // Updating again replaces, and the new rules apply.
    attach(&allow_all, &cg.0).unwrap_or_else(|e| panic!("{e}"));
    let (ids2, _) = query(&dir, &cg.0).unwrap();
    assert_eq!(ids2.len(), 1);
    assert_ne!(ids2, ids);
    assert_eq!(opens_in_cgroup(&cg.0, &opens), [true, true, true, true], "after update");

    // The usual default rules pass the verifier and behave as in the interpreter.
    attach(&device_program(&rules(DEFAULTS)).unwrap(), &cg.0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        opens_in_cgroup(&cg.0, &opens),
        [true, true, true, true],
        "default rules"
    );
    match block_device() {
        Some(dev) => {
            let blk = [(dev.as_str(), libc::O_RDONLY), ("/dev/null", libc::O_RDWR)];
            assert_eq!(opens_in_cgroup(&cg.0, &blk), [false, true], "default rules, {dev}");
        }
        None => eprintln!("no block device node found in /dev: block device check skipped"),
    }
    let (ids, _) = query(&dir, &cg.0).unwrap();
    assert_eq!(ids.len(), 1);
}

/// A block device node in /dev, if any.
fn block_device() -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0", "/dev/xvda"]
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()))
        .map(String::from)
}

#[test]
fn kernel_load_error_carries_verifier_log() {
    if !kernel_test_prerequisites() {
        return;
    }
    let cg = TestCgroup::new("badprog");
    // r0 is never set.
    let bad = [Insn::new(JMP_EXIT, 0, 0, 0, 0)];
    let err = attach(&bad, &cg.0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("bpf: load device program: Permission denied: R0 !read_ok"),
        "{msg}"
    );
    match err {
        EbpfError::Load { errno, log } => {
            assert_eq!(errno, Errno::EACCES);
            assert!(log.contains("R0 !read_ok"), "{log}");
        }
        e => panic!("{e}"),
    }
    let err = attach(&[], Path::new("/nonexistent-cgroup")).unwrap_err();
    assert!(
        err.to_string().starts_with("bpf: open cgroup /nonexistent-cgroup: "),
        "{err}"
    );
}
