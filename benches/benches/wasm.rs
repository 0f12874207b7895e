//! In-process costs of the wasm workload, with wrun's own engine configuration
//! (`wrun::workload::wasm::engine_config`), on the `sleep` guest run as `sleep 0` (a 65 KB
//! WASI command that returns at once and prints nothing, so the bench's output stays readable):
//! - compiling the module from its `.wasm` bytes (a cold start, cache miss), against
//!   deserializing the compiled code wrun keeps in its cache, and the whole `prepare` from a
//!   warm cache (read + verify + deserialize + link WASI + `InstancePre`);
//! - instantiating from the `InstancePre` and running to the guest's exit (`run_guest`: a
//!   tokio runtime, the WASI context, the store, the instance, `_start`), with wasmtime's
//!   default on-demand allocator and with the pooling allocator;
//! - building the WASI context alone.

use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use wasmtime::{Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};
use wrun::linux::process::ProcessPlan;
use wrun::workload::wasm::{engine_config, prepare, prepare_with, Settings};

/// A pool sized for one instance at a time, as a container runs one guest: the default pool
/// (1000 slots of 4 GiB reservations) would only measure a bigger mmap.
fn pooling_engine(s: &Settings) -> Engine {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(4)
        .total_memories(4)
        .total_tables(4)
        .total_component_instances(4);
    let mut c = engine_config(s);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).expect("a pooling engine")
}

fn bench(c: &mut Criterion) {
    let data = std::env::temp_dir().join(format!("wrun-bench-cache-{}", std::process::id()));
    std::env::set_var("WRUN_DATA_DIR", &data);
    let guest_file = wrun_benches::wasm_app("sleep");
    let bytes = std::fs::read(&guest_file).expect("read sleep.wasm");
    let settings = Settings::default();
    let engine = Engine::new(&engine_config(&settings)).expect("wrun's engine");
    let inside = Path::new("/sleep.wasm");

    let mut g = c.benchmark_group("wasm module");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("compile from .wasm bytes (cold, cache miss)", |b| {
        b.iter(|| engine.precompile_module(&bytes).unwrap())
    });
    g.finish();
    let code = engine.precompile_module(&bytes).unwrap();
    c.bench_function("wasm module: deserialize compiled code (cache hit)", |b| {
        // SAFETY: `code` is this engine's own output, as a verified cache entry is.
        b.iter(|| unsafe { Module::deserialize(&engine, &code) }.unwrap())
    });
    // First prepare compiles and fills the cache; the bench then measures the warm path.
    let guest = prepare(inside, &guest_file, &settings).expect("prepare sleep.wasm");
    c.bench_function(
        "wasm module: prepare from the cache (read, verify, deserialize, link)",
        |b| b.iter(|| prepare(inside, &guest_file, &settings).unwrap()),
    );

    let p = ProcessPlan {
        args: vec![CString::new("sleep").unwrap(), CString::new("0").unwrap()],
        cwd: "/".into(),
        ..Default::default()
    };
    c.bench_function("wasm instance: instantiate + run to exit, on-demand allocator", |b| {
        b.iter(|| assert_eq!(guest.run_guest(&p).unwrap(), 0))
    });
    let pooled = prepare_with(inside, &guest_file, &settings, pooling_engine(&settings)).expect("prepare, pooling");
    c.bench_function("wasm instance: instantiate + run to exit, pooling allocator", |b| {
        b.iter(|| assert_eq!(pooled.run_guest(&p).unwrap(), 0))
    });
    let with_root = prepare(
        inside,
        &guest_file,
        &Settings {
            preopens: vec![("/".into(), true)],
            ..Settings::default()
        },
    )
    .expect("prepare with a preopen");
    c.bench_function("wasm instance: WASI context build (args, env, / preopened)", |b| {
        b.iter(|| with_root.wasi_p1(&p).unwrap())
    });
    let _ = std::fs::remove_dir_all(&data);
}

criterion_group!(benches, bench);
criterion_main!(benches);
