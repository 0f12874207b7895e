//! The image store's costs for the comparison report (benches/report.sh), as medians of
//! ROUNDS runs each on the busybox root filesystem: unpacking its layer tar safely, importing
//! it as an image (hash, stage, unpack, commit; fsyncs included), and mounting an image's root
//! filesystem as an overlay (the part of a container start that images add), with GNU tar's
//! extraction of the same tar alternating as the reference. Prints one JSON
//! object of milliseconds. Needs root (overlay mounts). usage: image-costs [ROUNDS]

use std::time::Instant;

use wrun_image::archive::{self, ImportOptions};
use wrun_image::{Reference, Store};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30)
        .max(1);
    let work = std::env::temp_dir().join(format!("wrun-image-costs-{}", std::process::id()));
    let tar = wrun_benches::busybox_tar(&work);
    let (mut unpack, mut import, mut mount, mut tar_x) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Alternating with GNU tar extracting the same file: the reference that says how fast
    // this machine's filesystem is in the same minute.
    for i in 0..rounds {
        let d = work.join(format!("unpack-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let t = Instant::now();
        wrun_image::unpack::unpack_layer(std::fs::File::open(&tar).unwrap(), &d).unwrap();
        unpack.push(ms(t));
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::create_dir_all(&d).unwrap();
        let t = Instant::now();
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&d)
            .arg("-xf")
            .arg(&tar)
            .status()
            .unwrap();
        tar_x.push(ms(t));
        assert!(st.success());
        std::fs::remove_dir_all(&d).unwrap();
    }
    let opts = ImportOptions {
        name: Some(Reference::parse("bench/busybox:1").unwrap()),
        ..Default::default()
    };
    for i in 0..rounds {
        // Each import into an empty store: the layer is unpacked every time.
        let store = Store::open(&work.join(format!("data-{i}"))).unwrap();
        let t = Instant::now();
        archive::import(&store, &tar, &opts).unwrap();
        import.push(ms(t));
    }
    let store = Store::open(&work.join("data-0")).unwrap();
    let img = store.resolve("bench/busybox:1").unwrap();
    for i in 0..rounds {
        let dir = work.join(format!("mnt-{i}"));
        let t = Instant::now();
        store.mount(&img, &dir).unwrap();
        mount.push(ms(t));
        store.unmount(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::remove_dir_all(&work).unwrap();
    println!(
        "{{\"rounds\": {rounds}, \"unpack_ms\": {:.2}, \"tar_ms\": {:.2}, \"import_ms\": {:.2}, \"mount_ms\": {:.3}}}",
        median(unpack),
        median(tar_x),
        median(import),
        median(mount)
    );
}
