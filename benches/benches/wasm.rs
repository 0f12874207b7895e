//! In-process costs of the wasm workload: preparing a guest from the compiled-module cache
//! (deserialize + link + InstancePre) and instantiating + running it to its exit, which is
//! what the container's init does after setup.

use std::ffi::CString;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use wrun::linux::process::ProcessPlan;
use wrun::workload::wasm::{prepare, Settings};

fn bench(c: &mut Criterion) {
    let data = std::env::temp_dir().join(format!("wrun-bench-cache-{}", std::process::id()));
    std::env::set_var("WRUN_DATA_DIR", &data);
    let exit = wrun_benches::wasm_app("exit");
    let settings = Settings::default();
    // First prepare compiles and fills the cache; the benches then measure the warm path.
    let guest = prepare(Path::new("/exit.wasm"), &exit, &settings).expect("prepare exit.wasm");
    let p = ProcessPlan {
        args: vec![CString::new("exit").unwrap(), CString::new("0").unwrap()],
        cwd: "/".into(),
        ..Default::default()
    };
    c.bench_function("wasm: prepare from the module cache", |b| {
        b.iter(|| prepare(Path::new("/exit.wasm"), &exit, &settings).unwrap())
    });
    c.bench_function("wasm: instantiate + run to exit (InstancePre)", |b| {
        b.iter(|| assert_eq!(guest.run_guest(&p).unwrap(), 0))
    });
    let _ = std::fs::remove_dir_all(&data);
}

criterion_group!(benches, bench);
criterion_main!(benches);
