//! The `wrun` binary: parse the runc-compatible command line, call the library, print one
//! line per error and exit non-zero.

mod cli;

fn main() {
    // The process that holds a user's rootless session waits here for its whole life.
    wrun_sys::userns::pause_if_asked();
    wrun::workload::quiet_error_backtraces();
    std::process::exit(cli::main());
}
