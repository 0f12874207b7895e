//! Grows its linear memory 1 MiB at a time, touching every page, until `memory.grow` is
//! refused (or the host traps the growth). Prints how far it got.

use std::io::Write;

const PAGE: usize = 65536;
const STEP_PAGES: usize = 16;

fn main() {
    let mut mib = 0usize;
    loop {
        let old = core::arch::wasm32::memory_grow(0, STEP_PAGES);
        if old == usize::MAX {
            println!("membomb: memory.grow refused after {mib} MiB");
            std::process::exit(1);
        }
        for off in (0..STEP_PAGES * PAGE).step_by(4096) {
            // SAFETY: the page was just added to linear memory 0 and nothing else uses it.
            unsafe { std::ptr::write_volatile((old * PAGE + off) as *mut u8, 1) };
        }
        mib += 1;
        if mib % 16 == 0 {
            println!("membomb: {mib} MiB");
            let _ = std::io::stdout().flush();
        }
    }
}
