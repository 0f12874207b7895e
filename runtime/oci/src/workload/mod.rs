//! The one seam between "set up a container" and "run something in it": a native program is
//! exec'd, a WebAssembly module or component runs in wasmtime inside the same sandbox. A
//! closed set of two, so an enum and a `match`, not a trait object. `plan` decides in the
//! parent (and prepares a wasm guest there, so a bad module fails `create`); the init turns
//! the plan into a `Workload` and runs it once the start gate opens.

pub mod detect;
pub mod interp;
#[cfg(feature = "wasm")]
pub mod wasm;
/// Without the `wasm` cargo feature: the same names, and a wasm workload refused.
#[cfg(not(feature = "wasm"))]
#[path = "nowasm.rs"]
pub mod wasm;

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimitType, Spec};

use crate::linux::process::{self, ProcessPlan};
use crate::{Error, Result};

/// What the spec says that shapes a wasm guest's engine and store.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `linux.resources.memory.limit`, bytes.
    pub memory_limit: Option<u64>,
    /// The soft RLIMIT_AS of `process.rlimits`, bytes.
    pub rlimit_as: Option<u64>,
    /// Guest directories preopened at the same path, read-write or not.
    pub preopens: Vec<(PathBuf, bool)>,
    /// The compiled-module cache, decided by `create` on the host side (inside a user
    /// namespace the init's uid is 0 whoever made it); `None`: `wasm_cache_dir()`.
    pub cache_dir: Option<PathBuf>,
}

/// The environment variable that moves wrun's data dir (tests use a temp dir).
pub const DATA_DIR_ENV: &str = "WRUN_DATA_DIR";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/wrun";

/// The compiled-module cache: `$WRUN_DATA_DIR/wasm-cache`, default `/var/lib/wrun/wasm-cache`
/// for root and, as podman keeps a user's storage, `$XDG_DATA_HOME/wrun/wasm-cache` (else
/// `~/.local/share/wrun/wasm-cache`) for anyone else.
pub fn wasm_cache_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(wrun_sys::userns::user_data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
        .join("wasm-cache")
}

/// Keep error values cheap: wasmtime's errors are anyhow errors, which capture a native stack
/// trace at creation when `RUST_BACKTRACE` is set, and a guest ending through `proc_exit` ends
/// with such an error (seen: 6-8 ms per wasm start in a statically linked wrun with
/// `RUST_BACKTRACE=1` in the caller's environment). `RUST_LIB_BACKTRACE=0` turns that off for
/// error values only; panics still print a backtrace as `RUST_BACKTRACE` asks. An explicit
/// `RUST_LIB_BACKTRACE` is left alone. Call it while the process has one thread.
pub fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// What the parent decided, carried into the init.
#[derive(Debug)]
pub enum Plan {
    /// Find args[0] in the container (after pivot_root, as the container user) and exec it.
    Native,
    /// A wasm module or component found in the rootfs (held open), to be prepared by the init.
    Wasm(Box<WasmPlan>),
}

/// A guest to prepare: its file and the engine settings.
#[derive(Debug)]
pub struct WasmPlan {
    found: detect::Found,
    settings: wasm::Settings,
}

/// A plan made ready to run: the wasm guest compiled or loaded from the cache.
#[derive(Debug)]
pub enum Prepared {
    Native,
    Wasm(Box<wasm::Guest>),
}

/// What the init does at the point where the sandbox is complete.
#[derive(Debug)]
pub enum Workload<'a> {
    /// execve(2) the program.
    Native { program: CString },
    /// Run the guest in this process.
    Wasm {
        guest: &'a wasm::Guest,
        traps: wasm::TrapSignals,
    },
}

/// Decide native or wasm (see `detect`): no side effect. A wasm guest is prepared later, by
/// the init (`Plan::prepare`).
pub fn plan(spec: &Spec, rootfs: &Path, p: &ProcessPlan) -> Result<Plan> {
    let arg0 = p.args.first().and_then(|a| a.to_str().ok()).unwrap_or_default();
    let annotations = spec.annotations().clone().unwrap_or_default();
    let asked = detect::annotations_ask_for_wasm(&annotations, arg0).map_err(Error::Invalid)?;
    let found = detect::find_in_rootfs(rootfs, arg0, &p.cwd, &p.path_env);
    let found = match found {
        Some(f) if asked || detect::has_wasm_magic(&f.host()) => f,
        None if asked => {
            return Err(Error::Invalid(format!(
                "process.args[0] {arg0:?}: no such wasm module in the container (looked in PATH {})",
                p.path_env
            )))
        }
        _ => return Ok(Plan::Native),
    };
    if !cfg!(feature = "wasm") {
        return Err(Error::Invalid(format!(
            "process.args[0] {arg0:?}: a wasm module, and this wrun was built without wasm (cargo feature `wasm`)"
        )));
    }
    Ok(Plan::Wasm(Box::new(WasmPlan {
        found,
        settings: settings(spec),
    })))
}

/// The engine and store settings the spec implies.
fn settings(spec: &Spec) -> Settings {
    let memory_limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
        .map(|l| l as u64);
    let rlimit_as = spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().as_ref())
        .and_then(|rl| rl.iter().find(|r| r.typ() == PosixRlimitType::RlimitAs))
        .map(|r| r.soft());
    Settings {
        memory_limit,
        rlimit_as,
        preopens: preopens(spec),
        cache_dir: Some(wasm_cache_dir()),
    }
}

/// The container's `/` as `/`, read-only when `root.readonly`. Under a read-only root every
/// mount not mounted read-only is preopened read-write at its own path (WASI resolves a path
/// through the longest matching preopen), so a writable tmpfs stays writable. Read-only
/// mounts under a writable root stay read-only through the kernel.
fn preopens(spec: &Spec) -> Vec<(PathBuf, bool)> {
    let readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    let mut v = vec![(PathBuf::from("/"), !readonly)];
    if readonly {
        for m in spec.mounts().as_deref().unwrap_or_default() {
            let ro = m
                .options()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o == "ro" || o == "rro");
            if !ro && m.destination() != Path::new("/") && !v.iter().any(|(d, _)| d == m.destination()) {
                v.push((m.destination().clone(), true));
            }
        }
    }
    v
}

impl Plan {
    /// In the init, as soon as it is in the container's cgroup (so the engine, the module and
    /// the compiled code are charged to the container, not to whoever ran `create`) and before
    /// pivot_root (the module is read through the fd the parent opened, the compiled-module
    /// cache is on the host): read, compile or load from the cache, link, check. A bad module
    /// still fails `create`, which waits for the init to be ready.
    pub fn prepare(&self) -> Result<Prepared> {
        Ok(match self {
            Plan::Native => Prepared::Native,
            Plan::Wasm(w) => Prepared::Wasm(Box::new(wasm::prepare(&w.found.inside, &w.found.host(), &w.settings)?)),
        })
    }
}

impl Prepared {
    /// In the init, as the container user, before signals are reset: find the native
    /// program; for wasm, save the trap handlers the reset would remove.
    pub fn resolve(&self, p: &ProcessPlan) -> Result<Workload<'_>> {
        Ok(match self {
            Prepared::Native => Workload::Native {
                program: process::find_program(p)?,
            },
            Prepared::Wasm(guest) => Workload::Wasm {
                guest,
                traps: wasm::TrapSignals::save(),
            },
        })
    }
}

impl Workload<'_> {
    /// Run the workload in the calling (init) process; returns only on error.
    pub fn run(&self, p: &ProcessPlan) -> Result<Infallible> {
        match self {
            Workload::Native { program } => native_exec(program, p),
            Workload::Wasm { guest, traps } => guest.run(p, traps),
        }
    }
}

fn native_exec(program: &CString, p: &ProcessPlan) -> Result<Infallible> {
    let e = nix::unistd::execve(program, &p.args, &p.env).unwrap_err();
    let path = Path::new(std::ffi::OsStr::from_bytes(program.as_bytes()));
    // ENOENT for a program that exists means its interpreter is what is missing.
    let why = match e {
        nix::errno::Errno::ENOENT => interp::missing_interpreter(path).unwrap_or_else(|| e.to_string()),
        _ => e.to_string(),
    };
    // After `Ready` nobody reads the setup socket: say it on stderr, as runc does.
    eprintln!("wrun: exec {}: {why}", path.display());
    // SAFETY: exit like a shell does when it cannot run a program.
    unsafe { libc::_exit(127) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_read_only_root_preopens_writable_mounts_read_write() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
               "mounts":[{"destination":"/tmp","type":"tmpfs","source":"tmpfs"},
                         {"destination":"/data","type":"bind","source":"/x","options":["rbind","ro"]}]}"#,
        );
        assert_eq!(
            preopens(&s),
            vec![(PathBuf::from("/"), false), (PathBuf::from("/tmp"), true)]
        );
        let s =
            spec(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[{"destination":"/tmp","type":"tmpfs"}]}"#);
        assert_eq!(preopens(&s), vec![(PathBuf::from("/"), true)]);
    }

    #[test]
    fn limits_come_from_resources_and_rlimits() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
                 "rlimits":[{"type":"RLIMIT_AS","soft":1073741824,"hard":1073741824}]},
               "linux":{"resources":{"memory":{"limit":67108864}}}}"#,
        );
        let st = settings(&s);
        assert_eq!(st.memory_limit, Some(64 << 20));
        assert_eq!(st.rlimit_as, Some(1 << 30));
    }
}
