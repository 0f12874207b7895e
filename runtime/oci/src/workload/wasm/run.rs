//! Running a prepared guest in the container's init, after every setup step, where a native
//! program would be exec'd: WASI from `process` (args, env, cwd, stdio), the container's `/`
//! preopened as `/`, the store's memory limit, and the exit code of the guest as the
//! process's. The init leaves through `_exit`: WASI's tokio worker thread would otherwise
//! keep it alive.

use std::io::Write;

use wasmtime::{ResourceLimiter, Store, Trap, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{Code, Guest, TRAP_EXIT_CODE};
use crate::linux::process::ProcessPlan;

/// Store data of a core module: WASI preview 1.
pub struct P1Host {
    pub wasi: WasiP1Ctx,
    limits: MemoryLimit,
}

/// Store data of a component: WASI preview 2.
pub struct P2Host {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimit,
}

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// A linear memory grew past the store's limit.
#[derive(Debug, thiserror::Error)]
#[error("out of memory: linear memory would grow to {:.1} MiB, over the store's limit of {:.1} MiB{}", mib(*desired), mib(*limit), from_cgroup(*memory_limit))]
struct OutOfMemory {
    desired: usize,
    limit: usize,
    memory_limit: Option<u64>,
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn from_cgroup(m: Option<u64>) -> String {
    m.map(|m| {
        format!(
            " (linux.resources.memory.limit {} MiB less the host's headroom)",
            m >> 20
        )
    })
    .unwrap_or_default()
}

/// Traps (rather than refuses) a growth past the limit, so the guest ends with a message
/// instead of a bare allocation failure, and the kernel's OOM killer is never reached.
struct MemoryLimit {
    limit: Option<usize>,
    memory_limit: Option<u64>,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired > limit => Err(OutOfMemory {
                desired,
                limit,
                memory_limit: self.memory_limit,
            }
            .into()),
            _ => Ok(true),
        }
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

const TRAP_SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// wasmtime's trap handlers (SIGSEGV, SIGBUS, SIGILL, SIGFPE), installed once per process when
/// the parent built the engine. The init resets every signal before the start gate, so they
/// are saved first and put back just before the guest runs.
pub struct TrapSignals(Vec<(libc::c_int, libc::sigaction)>);

impl std::fmt::Debug for TrapSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrapSignals")
    }
}

impl TrapSignals {
    pub fn save() -> TrapSignals {
        TrapSignals(
            TRAP_SIGNALS
                .iter()
                .map(|&sig| {
                    // SAFETY: reading the current action into a zeroed struct.
                    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                    unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
                    (sig, old)
                })
                .collect(),
        )
    }

    fn restore(&self) {
        for (sig, act) in &self.0 {
            // SAFETY: re-installing an action read from this very process.
            unsafe { libc::sigaction(*sig, act, std::ptr::null_mut()) };
        }
    }
}

extern "C" fn stop(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// A guest is PID 1 of its namespace and cannot install handlers itself; without one the
/// kernel drops SIGTERM/SIGINT/SIGHUP sent to PID 1, so `kill ID TERM` would do nothing.
fn stop_on_termination_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installing a handler that only calls _exit.
        unsafe { libc::signal(sig, stop as *const () as libc::sighandler_t) };
    }
}

impl Guest {
    /// Run the guest and end the process with its exit code. Never returns.
    pub fn run(&self, p: &ProcessPlan, traps: &TrapSignals) -> ! {
        traps.restore();
        stop_on_termination_signals();
        let code = match self.run_guest(p) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("wrun: {}: {e:#}", self.path.display());
                127
            }
        };
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: leave at once; tokio's worker must not keep the init alive.
        unsafe { libc::_exit(code) }
    }

    /// Instantiate and run the guest in this process and return its exit code (what `run` does
    /// before ending the process; the benches call it directly).
    pub fn run_guest(&self, p: &ProcessPlan) -> wasmtime::Result<i32> {
        // WASI's host calls block on a tokio runtime; one worker, made here in the container
        // (it counts against pids.limit), entered so WASI uses it instead of starting its
        // own with one worker per CPU.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("wasi-io")
            .enable_io()
            .enable_time()
            .build()?;
        let _enter = rt.enter();
        let limits = MemoryLimit {
            limit: self.store_limit,
            memory_limit: self.memory_limit,
        };
        let result = match &self.code {
            Code::Module(pre) => {
                let wasi = self.wasi(p)?.build_p1();
                let mut store = Store::new(&self.engine, P1Host { wasi, limits });
                store.limiter(|h| &mut h.limits);
                let instance = pre.instantiate(&mut store)?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call(&mut store, ()).map(|()| 0)
            }
            Code::Component(pre) => {
                let mut b = self.wasi(p)?;
                // The network namespace confines sockets as it confines a native process.
                b.inherit_network()
                    .allow_tcp(true)
                    .allow_udp(true)
                    .allow_ip_name_lookup(true);
                let host = P2Host {
                    ctx: b.build(),
                    table: ResourceTable::new(),
                    limits,
                };
                let mut store = Store::new(&self.engine, host);
                store.limiter(|h| &mut h.limits);
                let command = pre.instantiate(&mut store)?;
                command
                    .wasi_cli_run()
                    .call_run(&mut store)
                    .map(|r| if r.is_ok() { 0 } else { 1 })
            }
        };
        Ok(match result {
            Ok(code) => code,
            Err(e) => self.outcome(e),
        })
    }

    /// The WASI preview 1 context `run_guest` gives a core module, built alone (the benches
    /// time it; `run_guest` builds its own).
    pub fn wasi_p1(&self, p: &ProcessPlan) -> wasmtime::Result<WasiP1Ctx> {
        Ok(self.wasi(p)?.build_p1())
    }

    /// WASI args, env, cwd and stdio from `process`; the preopens from the plan.
    fn wasi(&self, p: &ProcessPlan) -> wasmtime::Result<WasiCtxBuilder> {
        let mut b = WasiCtxBuilder::new();
        b.inherit_stdio().allow_blocking_current_thread(true);
        for a in &p.args {
            b.arg(a.to_string_lossy());
        }
        for e in &p.env {
            if let Some((k, v)) = e.to_str().ok().and_then(|e| e.split_once('=')) {
                b.env(k, v);
            }
        }
        for (dir, perms) in &self.preopens {
            // A file bind-mounted over a path is no directory to preopen.
            if dir.is_dir() {
                let guest = dir.to_string_lossy();
                b.preopened_dir(dir, guest, *perms)
                    .map_err(|e| e.context(format!("preopen {}", dir.display())))?;
            }
        }
        // Preview 2 has an initial cwd; preview 1 has none (wasi-libc starts at `/`), so the
        // cwd is also offered the way shells do, as PWD, unless `process.env` sets it.
        b.initial_cwd(p.cwd.to_string_lossy());
        if !p.env.iter().any(|e| e.as_bytes().starts_with(b"PWD=")) {
            b.env("PWD", p.cwd.to_string_lossy());
        }
        Ok(b)
    }

    /// The exit code for a guest that did not return normally: its `proc_exit` code, else a
    /// trap, reported with the wasm backtrace.
    fn outcome(&self, e: wasmtime::Error) -> i32 {
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            return exit.0;
        }
        let what = if let Some(oom) = e.downcast_ref::<OutOfMemory>() {
            oom.to_string()
        } else if let Some(trap) = e.downcast_ref::<Trap>() {
            format!("wasm trap: {trap}")
        } else {
            format!("{:#}", e.root_cause())
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "wrun: {}: {what}", self.path.display());
        if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
            let _ = write!(err, "{bt}");
            let _ = writeln!(err);
        }
        TRAP_EXIT_CODE
    }
}
