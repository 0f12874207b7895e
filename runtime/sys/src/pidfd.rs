//! Process handles that name one process for good (pidfd_open(2)): signals and liveness checks
//! through them cannot hit a process that reused the pid.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// A pidfd on `pid`, or None when there is no such process (or the kernel lacks pidfd_open).
pub fn open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with no flags; we own the returned fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `pfd` has exited (its pidfd polls readable).
pub fn has_exited(pfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pfd.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// pidfd_send_signal(2) of signal number `sig` (real-time signals included).
pub fn send_signal(pfd: &OwnedFd, sig: i32) -> nix::Result<()> {
    // SAFETY: a valid pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

/// Fields of /proc/PID/stat after the command name: (state, starttime).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    // starttime is field 22 overall; `rest` starts at field 3.
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_sees_its_process_exit_and_signals_reach_it() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pfd = open(child.id() as i32).expect("pidfd_open");
        assert!(!has_exited(&pfd));
        send_signal(&pfd, libc::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        assert!(has_exited(&pfd));
        // Reaped: the pid may be reused, the pidfd still names the dead process.
        assert_eq!(send_signal(&pfd, 0), Err(nix::errno::Errno::ESRCH));
    }
}
