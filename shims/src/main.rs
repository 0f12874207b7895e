//! `containerd-shim-wrun-v1`: containerd's runtime `io.containerd.wrun.v1`. One shim serves
//! one container (or every container of a pod) by driving the `wrun` binary, for native and
//! wasm workloads alike: wrun decides which from the bundle.

mod error;
mod events;
mod metrics;
mod oom;
mod process;
mod reaper;
mod rootfs;
mod service;
mod shim;
mod stdio;
mod tasks;
mod wrun;

/// The runtime type containerd knows this shim by.
const RUNTIME_ID: &str = "io.containerd.wrun.v1";

fn main() {
    // The serving process's stderr is /dev/null: a panic would vanish without a trace. The
    // crate's logger writes to the bundle's log fifo, which containerd copies to its own log.
    std::panic::set_hook(Box::new(|p| {
        containerd_shim::error!("panic: {p}");
        eprintln!("containerd-shim-wrun-v1: panic: {p}");
    }));
    if std::env::args().any(|a| a == "-v" || a == "--version" || a == "-version") {
        println!("containerd-shim-wrun-v1 {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    // Subscribe to the crate's pid monitor before anything can spawn a child.
    reaper::Reaper::get();
    containerd_shim::run::<shim::WrunShim>(RUNTIME_ID, None);
}
