//! A syscall-heavy loop, the same code natively and for wasm32-wasip1, so the benches compare
//! what a host call costs in each form: ITERATIONS times, append a 64-byte record to FILE,
//! stat FILE by its path and fstat the open file. That is three system calls per iteration
//! natively (write, statx/newfstatat, fstat) and three WASI calls under wasmtime (fd_write,
//! path_filestat_get, fd_filestat_get), each of which makes the same system calls on the host.
//!
//! usage: syscalls FILE [ITERATIONS]   (default 100000); FILE is truncated first, removed at
//! the end. Prints the calls made, then `compute_ms` for the loop alone (no process start).

use std::io::Write;
use std::time::Instant;

fn fail(what: &str, path: &str, e: std::io::Error) -> ! {
    eprintln!("syscalls: {what} {path}: {e}");
    std::process::exit(1)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/syscalls.dat".into());
    let iterations: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| fail("create", &path, e));
    let record = [b'x'; 64];
    let mut seen = 0;
    let t0 = Instant::now();
    for _ in 0..iterations {
        f.write_all(&record).unwrap_or_else(|e| fail("write", &path, e));
        let by_path = std::fs::metadata(&path).unwrap_or_else(|e| fail("stat", &path, e));
        let by_fd = f.metadata().unwrap_or_else(|e| fail("fstat", &path, e));
        seen = by_path.len().min(by_fd.len());
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let _ = std::fs::remove_file(&path);
    if seen != iterations * record.len() as u64 {
        eprintln!("syscalls: {path} has {seen} bytes after {iterations} writes of {}", record.len());
        std::process::exit(1);
    }
    println!("{} calls: write, stat, fstat x {iterations}", 3 * iterations);
    println!("compute_ms {ms:.3}");
}
