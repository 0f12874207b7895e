//! Makes each directory named on its command line and prints one line per attempt: `PATH:
//! ok` or `PATH: the error`. Exits 0. The seccomp notification tests watch a host agent
//! answer the guest's mkdirat, made by the wasm runtime on its behalf.
//!
//! usage: mkdir PATH...

fn main() {
    for p in std::env::args().skip(1) {
        match std::fs::create_dir(&p) {
            Ok(()) => println!("{p}: ok"),
            Err(e) => println!("{p}: {e}"),
        }
    }
}
