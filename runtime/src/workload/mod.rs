//! The one seam between "set up a container" and "run something in it". Today every
//! workload is a native executable; the wasm variant (wasmtime in the same sandbox) is
//! issue #5 and is added here as a second arm of the same `match`, not as a trait object.

use std::convert::Infallible;
use std::ffi::CString;

use crate::linux::process::ProcessPlan;
use crate::Result;

/// What the init does at the point where the sandbox is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// execve(2) the program.
    Native { program: CString },
}

impl Workload {
    /// Run the workload in the calling (init) process; returns only on error.
    pub fn run(&self, p: &ProcessPlan) -> Result<Infallible> {
        match self {
            Workload::Native { program } => native_exec(program, p),
        }
    }
}

fn native_exec(program: &CString, p: &ProcessPlan) -> Result<Infallible> {
    let e = nix::unistd::execve(program, &p.args, &p.env).unwrap_err();
    // After `Ready` nobody reads the setup socket: say it on stderr, as runc does.
    eprintln!("wrun: exec {}: {e}", program.to_string_lossy());
    // SAFETY: exit like a shell does when it cannot run a program.
    unsafe { libc::_exit(127) }
}
