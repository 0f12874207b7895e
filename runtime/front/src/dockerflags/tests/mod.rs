//! Tests of the parent module: sizes and CPU flags in `cpu.rs`, memory, pids and block IO in
//! `memory_io.rs`; the helpers here.
use super::*;

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

fn res(f: ResourceFlags) -> LinuxResources {
    to_resources_with_cpus(&f, 4).unwrap_or_else(|e| panic!("{e}"))
}

fn err(f: ResourceFlags) -> String {
    match to_resources_with_cpus(&f, 4) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

mod cpu;
mod memory_io;
