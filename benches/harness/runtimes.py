"""Driving the configurations: one child process at a time, its stderr kept for the report when
it fails; the runtimes' command lines (crun through the hybrid-cgroup wrapper); containerd's
`ctr` against the private containerd that report.sh started.

report.py makes itself a child subreaper: a container started with `create` + `start` is
orphaned when its runtime exits, and this host's PID 1 reaps nothing, so the harness reaps
them itself (`reap_orphans`, only between runs, when no child of its own is running)."""

import ctypes
import json
import os
import shlex
import subprocess
import time

HIDE_V2 = "umount /sys/fs/cgroup/unified 2>/dev/null; exec "
PR_SET_CHILD_SUBREAPER = 36


class RunError(RuntimeError):
    pass


class Runner:
    """Runs one command at a time in the work dir; a failure raises with the stderr tail."""

    def __init__(self, work):
        self.work = work
        self.errpath = os.path.join(work, "stderr")
        self.outpath = os.path.join(work, "stdout")

    def __call__(self, argv, cwd=None, capture=False, check=True):
        """Runs argv to its end; returns its stdout when `capture` (else it goes nowhere)."""
        with open(self.errpath, "w+") as err, open(self.outpath, "w+") as out:
            p = subprocess.Popen(argv, cwd=cwd or self.work, stdin=subprocess.DEVNULL,
                                 stdout=out if capture else subprocess.DEVNULL, stderr=err)
            if p.wait() != 0 and check:
                err.seek(0)
                tail = " ".join(err.read().split())[-300:]
                raise RunError(f"`{' '.join(argv)}` exited {p.returncode}: {tail}")
            if capture:
                out.seek(0)
                return out.read()
        return ""


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans():
    """Reaps every child that has exited: between runs these are only orphaned containers."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Runtime:
    """An OCI runtime's command line with a --root of its own under the work dir."""

    def __init__(self, key, binary, root, hide_v2=False, user=None):
        self.key, self.binary, self.root, self.hide_v2 = key, binary, root, hide_v2
        self.user = user

    def cmd(self, *rest):
        argv = [self.binary, "--root", self.root, *rest]
        if self.user:
            # Rootless: as an unprivileged user (uid:gid), its groups dropped.
            uid, gid = self.user.split(":")
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]
        if self.hide_v2:
            # crun refuses this host's hybrid cgroups unless the cgroup2 mount is hidden.
            return ["unshare", "-m", "sh", "-c", HIDE_V2 + shlex.join(argv)]
        return argv

    def state(self, run, cid):
        return json.loads(run(self.cmd("state", cid), capture=True))

    def wait_stopped(self, run, cid, timeout=120):
        deadline = time.monotonic() + timeout
        while self.state(run, cid).get("status") != "stopped":
            if time.monotonic() > deadline:
                raise RunError(f"{self.key}: container {cid} still running after {timeout} s")
            time.sleep(0.01)

    def remove(self, run, cid):
        """Kills and deletes a container, whatever state it is in; never raises."""
        run(self.cmd("delete", "--force", cid), check=False)


class Ctr:
    """`ctr` against report.sh's private containerd, in a namespace of its own."""

    def __init__(self, address, namespace, fifo_dir):
        self.address, self.namespace, self.fifo_dir = address, namespace, fifo_dir

    def cmd(self, *rest):
        return ["ctr", "--address", self.address, "-n", self.namespace, *rest]

    def run_rm(self, runtime, image, cid, *args):
        return self.cmd("run", "--rm", "--fifo-dir", self.fifo_dir, "--runtime", runtime, image,
                        cid, *args)

    def run_detached(self, runtime, image, cid, *args):
        return self.cmd("run", "-d", "--fifo-dir", self.fifo_dir, "--runtime", runtime, image,
                        cid, *args)

    def task_pid(self, run, cid):
        for line in run(self.cmd("task", "ls"), capture=True).splitlines()[1:]:
            f = line.split()
            if len(f) >= 2 and f[0] == cid:
                return int(f[1])
        raise RunError(f"ctr task ls: no task {cid}")

    def remove(self, run, cid):
        """Kills and removes a task (`task rm -f` kills it and waits) and its container; never
        raises."""
        run(self.cmd("task", "rm", "-f", cid), check=False)
        run(self.cmd("containers", "rm", cid), check=False)
