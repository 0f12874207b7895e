//! `process.terminal`, the container side: the init opens a pty in the container's devpts,
//! hands the master to the `--console-socket` listener (SCM_RIGHTS, as runc does), and makes
//! the slave its controlling terminal and stdio. The host side of `run`'s terminal is
//! `container/ptyproxy.rs`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use crate::error::Context;
use crate::{Error, Result};

nix::ioctl_read!(tiocgptn, b'T', 0x30, libc::c_uint);

/// Make the pty, send its master over `socket`, and put the slave on fds 0-2. The container's
/// init also gets the pty on /dev/console (`bind_console`); an exec'd process does not.
pub fn setup(socket: RawFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "open /dev/ptmx".into())?;
    // SAFETY: `open` returned a new fd that we own.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: TIOCSPTLCK with 0 unlocks the slave; the argument is a valid int pointer.
    let unlock: libc::c_int = 0;
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(Error::io("unlock pty", std::io::Error::last_os_error()));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number to `n`.
    unsafe { tiocgptn(master.as_raw_fd(), &mut n) }.ctx(|| "get pty number".into())?;
    let slave_path = format!("/dev/pts/{n}");
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {slave_path}"))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: valid fd and winsize pointer.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    if bind_console {
        // /dev/console is the pty too, as on runc: made and resolved in the (pivoted) root
        // without magic links, and mounted on by fd, so an image's /dev/console link cannot
        // point the bind anywhere else.
        let root = wrun_sys::inroot::Root::open(Path::new("/"))?;
        let console = root.make(Path::new("/dev/console"), true)?;
        let target = if Path::new("/proc/self/fd").is_dir() {
            console.proc_path()
        } else {
            Path::new("/dev/console").to_path_buf()
        };
        nix::mount::mount(
            Some(slave_path.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| "bind the pty on /dev/console".into())?;
    }

    wrun_sys::fdpass::send_fd(socket, master.as_raw_fd(), slave_path.as_bytes())
        .map_err(|e| Error::from(e).within("send the pty master to the console socket"))?;
    drop(master);
    // SAFETY: closing the console socket; it is not needed after the handover.
    unsafe { libc::close(socket) };

    for fd in 0..3 {
        nix::unistd::dup2(slave, fd).ctx(|| format!("dup pty onto fd {fd}"))?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    // SAFETY: TIOCSCTTY on our new session's stdin.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::io(
            "make the pty the controlling terminal",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
