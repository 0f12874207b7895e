//! The image store's in-process costs on the tests' busybox root filesystem (busybox and its
//! ~400 applet links): unpacking its layer tar safely, importing it as an image (hash, stage,
//! unpack, commit), and mounting an image's root filesystem as an overlay (the part of a
//! container start that images add). Targets (issue #16): unpack ≤ 30 ms, mount ≤ 2 ms.
//! Needs root (overlay mounts).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use wrun_image::archive::{self, ImportOptions};
use wrun_image::{Reference, Store};

fn bench(c: &mut Criterion) {
    let work = std::env::temp_dir().join(format!("wrun-bench-image-{}", std::process::id()));
    let tar = wrun_benches::busybox_tar(&work);
    let mut n = 0u64;
    c.bench_function("image: unpack the busybox layer (safe, in-root)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let d = work.join(format!("unpack-{n}"));
                std::fs::create_dir_all(&d).unwrap();
                d
            },
            |d| {
                wrun_image::unpack::unpack_layer(std::fs::File::open(&tar).unwrap(), &d).unwrap();
                d
            },
            BatchSize::PerIteration,
        )
    });
    for e in std::fs::read_dir(&work).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("unpack-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let store = Store::open(&work.join("data")).unwrap();
    let opts = ImportOptions {
        name: Some(Reference::parse("bench/busybox:1").unwrap()),
        ..Default::default()
    };
    archive::import(&store, &tar, &opts).unwrap();
    c.bench_function(
        "image: import the busybox rootfs tar (hash, stage, unpack, commit)",
        |b| {
            b.iter(|| {
                archive::import(&store, &tar, &opts).unwrap();
            })
        },
    );
    let img = store.resolve("bench/busybox:1").unwrap();
    c.bench_function("image: mount an image's rootfs as an overlay", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let dir = work.join(format!("mnt-{i}"));
                let t = Instant::now();
                store.mount(&img, &dir).unwrap();
                total += t.elapsed();
                store.unmount(&dir).unwrap();
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    let _ = std::fs::remove_dir_all(Path::new(&work));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
