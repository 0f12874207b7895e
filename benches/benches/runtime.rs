//! In-process costs of a native container's setup that do not depend on the workload:
//! parsing and validating a config, planning the setup, a cgroup's life, and a clone into
//! fresh namespaces. Needs root (cgroups, namespaces), like the runtime itself.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use wrun::linux::{namespaces, process::ProcessPlan, rootfs};
use wrun::spec::Bundle;
use wrun_sys::cgroups;

/// A bundle whose rootfs is an empty directory: enough for everything but running it.
fn bundle() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wrun-bench-bundle-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), wrun::spec::default_config().to_string()).unwrap();
    dir
}

fn bench(c: &mut Criterion) {
    let dir = bundle();
    c.bench_function("spec: load + validate config.json", |b| {
        b.iter(|| Bundle::load(&dir).unwrap())
    });
    let bundle = Bundle::load(&dir).unwrap();
    let linux = bundle.spec.linux().clone().unwrap();
    c.bench_function("plan: namespaces + rootfs + process", |b| {
        b.iter(|| {
            let ns = namespaces::plan(&linux);
            let r = rootfs::plan(&bundle.spec, &bundle.dir, &bundle.rootfs).unwrap();
            let p = ProcessPlan::new(&bundle.spec, &bundle.rootfs, &ns).unwrap();
            (ns, r, p)
        })
    });
    let resources = linux.resources().clone().unwrap_or_default();
    let mut n = 0u64;
    c.bench_function("cgroup: plan + create + apply + remove", |b| {
        b.iter(|| {
            n += 1;
            let dirs = cgroups::plan(None, &format!("bench-{}-{n}", std::process::id())).unwrap();
            let cg = cgroups::Cgroup::new(&dirs);
            cg.create().unwrap();
            cg.apply(&resources, &[], false).unwrap();
            cgroups::remove(&dirs).unwrap();
        })
    });
    let flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    c.bench_function("clone with 5 namespace flags + _exit + reap", |b| {
        b.iter(|| {
            // SAFETY: the bench is single-threaded while it clones; the child only _exits.
            let pid = unsafe { wrun_sys::syscall::clone_fork(flags as libc::c_ulong) }.unwrap();
            if pid == 0 {
                // SAFETY: leave the child at once.
                unsafe { libc::_exit(0) }
            }
            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        })
    });
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

criterion_group!(benches, bench);
criterion_main!(benches);
