//! Runs a command and writes its peak resident set size, for benches/report.py's memory rows.
//!
//! `wait4`'s `ru_maxrss` of a child also counts the image the child was forked from until it
//! execs: forked from the Python harness it would start at ~10 MB. Forked from this small
//! binary the floor is about a megabyte (the report shows `peak-rss /bin/true` next to the
//! figures). The figure is the largest single process of the tree the command waits for,
//! not a sum: for `wrun create` that is wrun itself (the container's init is not its child
//! to reap).
//!
//! usage: peak-rss OUT_FILE COMMAND [ARG...]   writes `<kB>` to OUT_FILE, exits as COMMAND did.

use std::ffi::CString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: peak-rss OUT_FILE COMMAND [ARG...]");
        return ExitCode::from(2);
    }
    let argv: Vec<CString> = match args[1..].iter().map(|a| CString::new(a.as_str())).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!("peak-rss: an argument holds a NUL byte");
            return ExitCode::from(2);
        }
    };
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: this process is single-threaded; the child only execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("peak-rss: fork: {}", std::io::Error::last_os_error());
        return ExitCode::from(1);
    }
    if pid == 0 {
        // SAFETY: argv and its NUL-terminated pointer array outlive the call.
        unsafe {
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127)
        }
    }
    let mut status = 0;
    // SAFETY: a zeroed rusage for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
        eprintln!("peak-rss: wait4: {}", std::io::Error::last_os_error());
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::write(&args[0], format!("{}\n", ru.ru_maxrss)) {
        eprintln!("peak-rss: {}: {e}", args[0]);
        return ExitCode::from(1);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    ExitCode::from(code as u8)
}
