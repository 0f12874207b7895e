//! The cgroup v2 devices controller: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE that
//! the kernel runs on every open/mknod of a device node by a process of the cgroup.
//!
//! [`device_program`] compiles the OCI `linux.resources.devices` rules into such a program and
//! [`attach`] loads it and puts it on the container's cgroup, replacing the filter a previous
//! call attached (so `update` swaps the filter instead of stacking a new one on top).
//!
//! Semantics (as runc): the last rule that matches a device decides, nothing matches = deny.
//! The program walks the rules from the last to the first and returns at the first decision.
//! Access is decided per bit, as the v1 devices controller does: a request for "rw" is allowed
//! only if both r and w are allowed by the last rule naming them, so `allow c 1:3 rwm` followed
//! by `deny c 1:3 w` denies an O_RDWR open (a whole-request match would let it through), and
//! `allow c 1:3 r` + `allow c 1:3 w` allows it.
//!
//! The program, with r1 = `struct bpf_cgroup_dev_ctx *`:
//! ```text
//!   r2 = ctx->access_type & 0xffff      device type (1 block, 2 char)
//!   r3 = ctx->access_type >> 16         requested access bits not decided yet
//!   r4 = ctx->major ; r5 = ctx->minor
//!   for each rule, last first:
//!     if r2 != type  goto next          (omitted for type a)
//!     if r4 != major goto next          (omitted for a wildcard)
//!     if r5 != minor goto next          (omitted for a wildcard)
//!     allow: r3 &= ~access; if r3 == 0 return 1
//!     deny:  if r3 & access != 0 return 0
//!   return 0
//! ```
//! A rule with all of "rwm" returns without a test, and a rule that also matches every device
//! ends the program (the verifier rejects unreachable instructions).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble on little-endian) and source register.
    pub regs: u8,
    /// Jump offset (in instructions, from the next one) or memory offset.
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0x0f);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0x0f);
        Insn { code, regs, off, imm }
    }

    /// The destination register.
    pub fn dst(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs & 0x0f;
        #[cfg(target_endian = "big")]
        return self.regs >> 4;
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs >> 4;
        #[cfg(target_endian = "big")]
        return self.regs & 0x0f;
    }
}

// Opcodes (class | operation | source), from linux/bpf_common.h and linux/bpf.h.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// struct bpf_cgroup_dev_ctx and its values (linux/bpf.h).
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Errors of building and attaching the device filter; each message is one line naming the
/// step and the cause.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// A rule that cannot be compiled (unknown type or access letter, bad major/minor).
    #[error("device rule {index} ({rule}): {reason}")]
    InvalidRule { index: usize, rule: String, reason: String },
    /// The cgroup directory could not be opened.
    #[error("bpf: open cgroup {}: {source}", path.display())]
    OpenCgroup { path: PathBuf, source: std::io::Error },
    /// BPF_PROG_LOAD failed; `log` is the verifier's whole log (may be empty), the message
    /// shows its last meaningful line.
    #[error("bpf: load device program: {}{}", errno.desc(), log_summary(log))]
    Load { errno: Errno, log: String },
    /// Another bpf(2) step failed (query, attach, open or detach of an old program).
    #[error("bpf: {step} on cgroup {}: {}", path.display(), errno.desc())]
    Syscall { step: String, path: PathBuf, errno: Errno },
}

/// ": <line>" with the line of the verifier log that says what is wrong (the last one before the
/// "processed N insns" statistics), or "" for an empty log.
/// Into the kernel layer's error, keeping the errno of a refused bpf(2) step.
impl From<EbpfError> for crate::Error {
    fn from(e: EbpfError) -> Self {
        match e {
            EbpfError::InvalidRule { .. } => crate::Error::Invalid(e.to_string()),
            EbpfError::OpenCgroup { path, source } => {
                crate::Error::io(format!("bpf: open cgroup {}", path.display()), source)
            }
            EbpfError::Load { errno, log } => {
                crate::Error::sys(format!("bpf: load device program{}", log_summary(&log)), errno)
            }
            EbpfError::Syscall { step, path, errno } => {
                crate::Error::sys(format!("bpf: {step} on cgroup {}", path.display()), errno)
            }
        }
    }
}

fn log_summary(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("processed ") && !l.starts_with("verification time"))
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// Compile the OCI device rules into a BPF_PROG_TYPE_CGROUP_DEVICE program: the last matching
/// rule decides (per access bit), no match = deny. Returns 1 = allow, 0 = deny.
///
/// `type` missing = "a"; `major`/`minor` missing or -1 = any; `access` is a subset of "rwm"
/// (missing or empty: the rule matches no access, as for the v1 controller, and is skipped).
pub fn device_program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, EbpfError> {
    let mut prog = vec![
        Insn::new(LDX_MEM_W, R2, R1, CTX_ACCESS_TYPE, 0),
        Insn::new(ALU32_AND_K, R2, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, R3, R1, CTX_ACCESS_TYPE, 0),
        Insn::new(ALU32_RSH_K, R3, 0, 0, 16),
        Insn::new(LDX_MEM_W, R4, R1, CTX_MAJOR, 0),
        Insn::new(LDX_MEM_W, R5, R1, CTX_MINOR, 0),
    ];
    // Validate every rule first, so an error names the bad rule even if a later rule would make
    // it unreachable.
    let compiled = rules
        .iter()
        .enumerate()
        .map(|(i, r)| Rule::from_oci(r).map_err(|reason| invalid(i, r, reason)))
        .collect::<Result<Vec<_>, _>>()?;
    for rule in compiled.iter().rev() {
        if rule.access == 0 {
            continue;
        }
        let mut block = Vec::new();
        // Conditional jumps to the next rule: their offsets are patched once the block is done.
        let mut jumps = Vec::new();
        if let Some(t) = rule.typ {
            jumps.push(block.len());
            block.push(Insn::new(JMP_JNE_K, R2, 0, 0, t));
        }
        if let Some(m) = rule.major {
            jumps.push(block.len());
            block.push(Insn::new(JMP_JNE_K, R4, 0, 0, m));
        }
        if let Some(m) = rule.minor {
            jumps.push(block.len());
            block.push(Insn::new(JMP_JNE_K, R5, 0, 0, m));
        }
        let verdict = i32::from(rule.allow);
        if rule.access != ACC_ALL {
            if rule.allow {
                // r3 &= ~access; if r3 != 0 skip the return
                block.push(Insn::new(ALU32_AND_K, R3, 0, 0, !rule.access as i32));
                block.push(Insn::new(JMP_JNE_K, R3, 0, 2, 0));
            } else {
                // r1 = r3 & access; if r1 == 0 skip the return
                block.push(Insn::new(ALU32_MOV_X, R1, R3, 0, 0));
                block.push(Insn::new(ALU32_AND_K, R1, 0, 0, rule.access as i32));
                block.push(Insn::new(JMP_JEQ_K, R1, 0, 2, 0));
            }
        }
        block.push(Insn::new(ALU64_MOV_K, R0, 0, 0, verdict));
        block.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
        for j in jumps.iter().copied() {
            block[j].off = (block.len() - j - 1) as i16;
        }
        prog.extend_from_slice(&block);
        if jumps.is_empty() && rule.access == ACC_ALL {
            // Every device and access is decided here: what follows would be unreachable.
            return Ok(prog);
        }
    }
    prog.push(Insn::new(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    Ok(prog)
}

/// A validated rule: `None` = wildcard.
struct Rule {
    allow: bool,
    typ: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: u32,
}

impl Rule {
    fn from_oci(r: &LinuxDeviceCgroup) -> Result<Rule, String> {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C => Some(DEV_CHAR),
            other => return Err(format!("unknown device type {:?} (want a, b or c)", other.as_str())),
        };
        let mut access = 0;
        for c in r.access().as_deref().unwrap_or("").chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return Err(format!("unknown access {c:?} (want a subset of \"rwm\")")),
            };
        }
        Ok(Rule {
            allow: r.allow(),
            typ,
            major: dev_number("major", r.major())?,
            minor: dev_number("minor", r.minor())?,
            access,
        })
    }
}

/// A major or minor: missing or -1 = wildcard; otherwise it must fit the instruction's
/// immediate (the kernel's are at most 12 and 20 bits).
fn dev_number(what: &str, n: Option<i64>) -> Result<Option<i32>, String> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| format!("{what} {n} out of range")),
    }
}

fn invalid(index: usize, r: &LinuxDeviceCgroup, reason: String) -> EbpfError {
    let num = |n: Option<i64>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let rule = format!(
        "{} {} {}:{} {}",
        if r.allow() { "allow" } else { "deny" },
        r.typ().unwrap_or(LinuxDeviceType::A).as_str(),
        num(r.major()),
        num(r.minor()),
        r.access().as_deref().unwrap_or("")
    );
    EbpfError::InvalidRule { index, rule, reason }
}

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const LICENSE: &CStr = c"Apache";
const PROG_NAME: &[u8] = b"wrun_devices";
/// Size of the verifier log buffer used to explain a failed load.
const LOG_SIZE: usize = 1 << 20;

/// `union bpf_attr` members for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` members for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` members for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` members for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Clone, Copy)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The part of `union bpf_attr` we use; `zero` sets the size and makes all of it zero first, as
/// the kernel requires for the bytes a command does not use.
#[repr(C)]
union BpfAttr {
    load: ProgLoadAttr,
    attach: ProgAttachAttr,
    query: ProgQueryAttr,
    get_id: GetIdAttr,
    zero: [u64; 16],
}

impl BpfAttr {
    fn zeroed() -> BpfAttr {
        BpfAttr { zero: [0; 16] }
    }
}

/// bpf(2): returns the non-negative result (an fd for LOAD and GET_FD_BY_ID) or the errno.
///
/// # Safety
/// Every address inside `attr` (instructions, license, log buffer, id array) must be valid
/// for the kernel to read or write as the command specifies for the duration of the call.
unsafe fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> Result<libc::c_long, Errno> {
    loop {
        // SAFETY: `attr` is a valid, fully initialised bpf_attr of the size passed; the caller
        // guarantees the addresses it contains.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut BpfAttr,
                std::mem::size_of::<BpfAttr>() as libc::c_long,
            )
        };
        if r >= 0 {
            return Ok(r);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Load the program with the kernel (BPF_PROG_LOAD) and return its fd. On failure the load is
/// repeated with a verifier log, which goes into the error.
fn load(prog: &[Insn]) -> Result<OwnedFd, EbpfError> {
    let try_load = |log: Option<&mut Vec<u8>>| -> Result<OwnedFd, Errno> {
        let mut name = [0u8; 16];
        name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = BpfAttr::zeroed();
        attr.load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: BPF_CGROUP_DEVICE,
        };
        let mut tries = 0;
        loop {
            // SAFETY: the instructions, the license string and the log buffer (if any) outlive
            // the call; insn_cnt and log_size are their lengths.
            match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
                // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
                // The verifier may ask to retry (as libbpf does, a few times).
                Err(Errno::EAGAIN) if tries < 5 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    };
    let errno = match try_load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut buf = vec![0u8; LOG_SIZE];
    let log = match try_load(Some(&mut buf)) {
        // Loads with a log but not without: report the first failure with no log.
        Ok(_) => String::new(),
        Err(_) => {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        }
    };
    Err(EbpfError::Load { errno, log })
}

/// The ids of the device programs attached directly to the cgroup, and the cgroup's attach
/// flags for the device hook.
fn query(dir: &File, path: &Path) -> Result<(Vec<u32>, u32), EbpfError> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut attr = BpfAttr::zeroed();
        attr.query = ProgQueryAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _pad: 0,
        };
        // SAFETY: prog_ids points to `ids`, which has room for prog_cnt ids.
        let r = unsafe { bpf(BPF_PROG_QUERY, &mut attr) };
        // SAFETY: the query member is the one we wrote and the kernel filled in.
        let (cnt, flags) = unsafe { (attr.query.prog_cnt as usize, attr.query.attach_flags) };
        match r {
            Ok(_) => {
                ids.truncate(cnt);
                return Ok((ids, flags));
            }
            // More programs than room: the kernel put the total in prog_cnt.
            Err(Errno::ENOSPC) if cnt > ids.len() => ids.resize(cnt, 0),
            Err(errno) => return Err(syscall_err("query attached device programs", path, errno)),
        }
    }
}

fn syscall_err(step: impl Into<String>, path: &Path, errno: Errno) -> EbpfError {
    EbpfError::Syscall {
        step: step.into(),
        path: path.to_path_buf(),
        errno,
    }
}

/// BPF_PROG_ATTACH or BPF_PROG_DETACH of `prog` at the cgroup's device hook.
fn attach_cmd(cmd: libc::c_long, dir: &File, prog: &OwnedFd, flags: u32) -> Result<(), Errno> {
    let mut attr = BpfAttr::zeroed();
    attr.attach = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: the attach member holds only fds and numbers, no addresses.
    unsafe { bpf(cmd, &mut attr) }.map(|_| ())
}

/// Load `prog` and attach it to the cgroup directory `cgroup_dir` (cgroup v2) as its device
/// filter, replacing the device programs attached to that cgroup before.
///
/// The new program is attached (with BPF_F_ALLOW_MULTI) before the old ones are detached: in
/// between, an access must pass all of them, so the cgroup never gets more than either filter
/// allows. If the cgroup's existing programs were attached in single-program mode, ours is
/// attached with the same flags, which replaces the old one in one step.
pub fn attach(prog: &[Insn], cgroup_dir: &Path) -> Result<(), EbpfError> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(cgroup_dir)
        .map_err(|source| EbpfError::OpenCgroup {
            path: cgroup_dir.to_path_buf(),
            source,
        })?;
    let fd = load(prog)?;
    let (old, old_flags) = query(&dir, cgroup_dir)?;
    let multi = old.is_empty() || old_flags & BPF_F_ALLOW_MULTI != 0;
    let flags = if multi { BPF_F_ALLOW_MULTI } else { old_flags };
    attach_cmd(BPF_PROG_ATTACH, &dir, &fd, flags).map_err(|e| syscall_err("attach device program", cgroup_dir, e))?;
    if !multi {
        return Ok(());
    }
    for id in old {
        let mut attr = BpfAttr::zeroed();
        attr.get_id = GetIdAttr {
            id,
            next_id: 0,
            open_flags: 0,
        };
        // SAFETY: the get_id member holds only numbers.
        let old_fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
            // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new fd that nothing else owns.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            // Gone since the query (detached and freed by someone else).
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(syscall_err(format!("open old device program {id}"), cgroup_dir, e)),
        };
        match attach_cmd(BPF_PROG_DETACH, &dir, &old_fd, 0) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(syscall_err(format!("detach old device program {id}"), cgroup_dir, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
