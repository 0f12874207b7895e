//! The `wrun` binary: parse the runc-compatible command line, call the library, print one
//! line per error and exit non-zero.

mod cli;

fn main() {
    wrun::workload::quiet_error_backtraces();
    std::process::exit(cli::main());
}
