//! wasmtime without a container, for benches/report.py: prepares a guest exactly as wrun's
//! `create` does (`wrun::workload::wasm::prepare`: the same engine settings and the same
//! compiled-module cache, `$WRUN_DATA_DIR/wasm-cache`) and runs it as wrun's init does
//! (`run_guest`), in this plain process: no namespaces, no cgroup, no rootfs, no clone.
//!
//! usage: wasm-bare [--dir DIR]... MODULE [ARG...]
//! Each DIR is preopened read-write at its own path (in a container wrun preopens its `/`).
//! MODULE is args[0] of the guest, as in a container; the exit code is the guest's.

use std::ffi::CString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use wrun::linux::process::ProcessPlan;
use wrun::workload::wasm::{prepare, Settings};

fn main() -> ExitCode {
    // As wrun does: no native stack trace in every error value (a guest's proc_exit is one).
    wrun::workload::quiet_error_backtraces();
    let mut args = std::env::args().skip(1).peekable();
    let mut preopens = Vec::new();
    while args.peek().map(String::as_str) == Some("--dir") {
        args.next();
        match args.next() {
            Some(d) => preopens.push((PathBuf::from(d), true)),
            None => return usage(),
        }
    }
    let guest_args: Vec<String> = args.collect();
    let Some(module) = guest_args.first().map(PathBuf::from) else {
        return usage();
    };
    let settings = Settings {
        preopens,
        ..Settings::default()
    };
    let guest = match prepare(&module, &module, &settings) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("wasm-bare: {e}");
            return ExitCode::from(127);
        }
    };
    let plan = ProcessPlan {
        args: guest_args
            .iter()
            .map(|a| CString::new(a.as_str()).unwrap_or_default())
            .collect(),
        cwd: "/".into(),
        ..Default::default()
    };
    let code = match guest.run_guest(&plan) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasm-bare: {}: {e:#}", module.display());
            127
        }
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code as u8)
}

fn usage() -> ExitCode {
    eprintln!("usage: wasm-bare [--dir DIR]... MODULE [ARG...]");
    ExitCode::from(2)
}
