"""The measuring half of benches/report.sh (which makes the bundles and the images, starts a
private containerd and cleans up); harness/markdown.py writes the report.

Every configuration of every timed or memory workload runs once per round, in an order shuffled
afresh each round (seeded, so runs are repeatable), so drift on this noisy VM hits all of them
alike. Not a rotation: rotating keeps each configuration behind the same one every round, and a
start right after a slow one (the 200 ms-paused rows) pays the lone-start cost of the cgroup
attach every time (seen: wasm start 2.35x native with rotation). Each run is timed in this
process (time.perf_counter around the children's spawn and reap); nbody and syscalls also print
their loop's own time (`compute_ms`), reported next to the end-to-end time. Memory comes from the
peak-rss helper (a child forked from Python would count the Python image) and from the
containers' memory cgroups. Density (N idle containers) and the perf profile are one shot per
configuration after the rounds. Standard library only.
"""

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import time

from harness import memory, profile
from harness.markdown import write_report
from harness.runtimes import Ctr, RunError, Runner, Runtime, become_subreaper, reap_orphans

COMPUTE = re.compile(r"^compute_ms ([0-9.]+)$", re.M)
FAILURES = (RunError, OSError, KeyError, ValueError)
RUNC_V2, WRUN_V1 = "io.containerd.runc.v2", "io.containerd.wrun.v1"
BUSYBOX_IMAGE, WASM_IMAGE = "wrun.test/busybox:1", "wrun.test/wasm:1"
# A start this long after the previous one pays again what back-to-back starts share: the RCU
# grace period that the first write to cgroup.procs waits for (see the profile).
PAUSE_S = 0.2


def cgroup_mode():
    fstype = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == "/sys/fs/cgroup":
                fstype = parts[parts.index("-") + 1]
    if fstype == "cgroup2":
        return "v2"
    return "hybrid" if os.path.isdir("/sys/fs/cgroup/unified") else "v1"


def version(tool):
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return tool


class Config:
    """One configuration of a workload: `run(n)` does run number n (density: `run()`, once)
    and returns its figures as a dict. A failing wrun configuration fails the harness."""

    def __init__(self, key, label, run, fatal=True):
        self.key, self.label, self.run, self.fatal = key, label, run, fatal
        self.results, self.error = [], None

    def values(self, metric):
        return [r[metric] for r in self.results if r.get(metric) is not None]


class Workload:
    """A table of the report: configurations measured in the same rounds. `kind` is "time"
    (ms; `compute` adds the app's own loop time) or "memory" (kB); `names` renames a ratio
    column's baseline (containerd's "runc" is the runc.v2 shim)."""

    def __init__(self, key, title, configs, kind="time", compute=False, names=None):
        self.key, self.title, self.configs = key, title, configs
        self.kind, self.compute, self.names = kind, compute, names or {}


class Setup:
    """What every workload is built from: the runtimes present, the bundles report.sh made in
    the work dir, the guests, the helpers."""

    def __init__(self, args, run, mode, notes):
        self.args, self.run, self.notes = args, run, notes
        self.w, self.apps = args.work, args.apps
        self.hybrid = mode == "hybrid"
        self.bare = os.path.join(args.bin_dir, "wasm-bare")
        self.peak = os.path.join(args.bin_dir, "peak-rss")
        self.runc, self.crun = shutil.which("runc"), shutil.which("crun")
        self.wrun = Runtime("wrun", args.wrun, f"{self.w}/state-wrun")
        self.rc = self.runc and Runtime("runc", self.runc, f"{self.w}/state-runc")
        self.cr = self.crun and Runtime("crun", self.crun, f"{self.w}/state-crun",
                                        hide_v2=self.hybrid)
        self.ctr = args.ctr_address and Ctr(args.ctr_address, args.ctr_namespace,
                                            f"{self.w}/fifo")
        if not self.runc:
            notes.append("runc is not installed: its rows are skipped.")
        if not self.crun:
            notes.append("crun is not installed: its rows are skipped.")
        elif self.hybrid:
            notes.append("crun refuses this host's hybrid cgroups unless the cgroup2 mount is "
                         "hidden in a private mount namespace (`unshare -m`, umount "
                         "/sys/fs/cgroup/unified), so it runs through that wrapper, and wrun is "
                         "also measured through the same wrapper: the like-for-like crun start "
                         "ratio is `wrun-hidden / crun`.")
        if not self.ctr:
            notes.append(f"containerd rows skipped: {args.ctr_skip or 'no containerd'}.")

    def wasm(self, name):
        return f"{self.apps}/wasm32-wasip1/release/{name}.wasm"

    def native(self, name):
        return f"{self.apps}/native/{name}"

    def timed(self, steps, compute=False):
        """A run function: the wall time of the (argv, cwd) pairs `steps(n)`, plus the app's own
        `compute_ms` when `compute`."""
        def go(n):
            out = ""
            t0 = time.perf_counter()
            for argv, cwd in steps(n):
                out += self.run(argv, cwd=cwd, capture=compute)
            r = {"ms": (time.perf_counter() - t0) * 1000}
            if compute:
                m = COMPUTE.search(out)
                if not m:
                    raise RunError(f"no compute_ms line in the output: {out[-200:]!r}")
                r["compute_ms"] = float(m.group(1))
            return r
        return go

    def host(self, argv, compute=False):
        return self.timed(lambda n: [(argv, self.w)], compute)

    def run_in(self, rt, bundle, prefix, compute=False):
        b = f"{self.w}/{bundle}"
        return self.timed(lambda n: [(rt.cmd("run", "--bundle", b, f"{prefix}-{n}"), b)], compute)

    @staticmethod
    def paused(go):
        """`go`, started PAUSE_S (not timed) after whatever ran before."""
        def run(n):
            time.sleep(PAUSE_S)
            return go(n)
        return run

    def noop(self):
        ms = int(PAUSE_S * 1000)
        c = [Config("host", "host /bin/true (no isolation)", self.host(["/bin/true"])),
             Config("wrun", "wrun native (busybox /bin/true)", self.run_in(self.wrun, "true", "noop")),
             Config("wrun-pause", f"wrun native, {ms} ms after the previous start",
                    self.paused(self.run_in(self.wrun, "true", "noopp"))),
             Config("wrun-wasm", "wrun wasm (exit.wasm 0, cached module)",
                    self.run_in(self.wrun, "exit-wasm", "noopw")),
             Config("bare", "wasmtime library, no container (exit.wasm 0, same cache)",
                    self.host([self.bare, self.wasm("exit"), "0"]))]
        if self.rc:
            c.append(Config("runc", f"runc ({version(self.runc)})",
                            self.run_in(self.rc, "true", "noop"), fatal=False))
            c.append(Config("runc-pause", f"runc, {ms} ms after the previous start",
                            self.paused(self.run_in(self.rc, "true", "noopp")), fatal=False))
        if self.cr:
            if self.hybrid:
                hidden = Runtime("wrun", self.args.wrun, self.wrun.root, hide_v2=True)
                c.append(Config("wrun-hidden", "wrun native, v2 mount hidden (crun's wrapper)",
                                self.run_in(hidden, "true", "nooph")))
            c.append(Config("crun", f"crun ({version(self.crun)})" +
                            (", v2 mount hidden" if self.hybrid else ""),
                            self.run_in(self.cr, "true", "noop"), fatal=False))
        c += self.rootless()
        return Workload("noop", "Start to exit of a no-op", c)

    def rootless(self):
        """The same no-op as an unprivileged user (report.sh's --rootless-user), each runtime
        with the bundle `spec --rootless` would write: a user namespace, no cgroup limits."""
        u = self.args.rootless_user
        if not u:
            self.notes.append("rootless rows skipped: no unprivileged user to run them as.")
            return []
        c = [Config("wrun-rootless", "wrun native, rootless (user namespace, as nobody)",
                    self.run_in(Runtime("wrun", self.args.wrun, f"{self.w}/state-wrun-rootless",
                                        user=u), "true-rootless", "noopr"))]
        if self.rc:
            c.append(Config("runc-rootless", f"runc ({version(self.runc)}), rootless",
                            self.run_in(Runtime("runc", self.runc, f"{self.w}/state-runc-rootless",
                                                user=u), "true-rootless", "noopr"), fatal=False))
        if self.cr and not self.hybrid:
            c.append(Config("crun-rootless", f"crun ({version(self.crun)}), rootless",
                            self.run_in(Runtime("crun", self.crun, f"{self.w}/state-crun-rootless",
                                                user=u), "true-rootless", "noopr"), fatal=False))
        elif self.cr:
            self.notes.append("crun rootless row skipped: crun refuses this host's hybrid cgroups, "
                              "and the wrapper that hides the cgroup2 mount needs root.")
        return c

    def cpu(self):
        s = str(self.args.steps)
        return Workload("cpu", f"CPU-bound kernel (nbody, {s} steps)", compute=True, configs=[
            Config("host", "host nbody (no isolation)", self.host([self.native("nbody"), s], True)),
            Config("wrun", "wrun native container nbody",
                   self.run_in(self.wrun, "nbody-native", "cpu", True)),
            Config("wrun-wasm", "wrun wasm container nbody.wasm",
                   self.run_in(self.wrun, "nbody-wasm", "cpuw", True)),
            Config("bare", "wasmtime library, no container, nbody.wasm",
                   self.host([self.bare, self.wasm("nbody"), s], True))])

    def syscalls(self):
        it, w = str(self.args.iterations), self.w
        return Workload("syscalls", f"Syscall-heavy loop (syscalls: {it} x a 64-byte write + "
                        "stat + fstat)", compute=True, configs=[
            Config("host", "host syscalls (no isolation)",
                   self.host([self.native("syscalls"), f"{w}/sys-host/syscalls.dat", it], True)),
            Config("wrun", "wrun native container syscalls",
                   self.run_in(self.wrun, "sys-native", "sys", True)),
            Config("wrun-wasm", "wrun wasm container syscalls.wasm",
                   self.run_in(self.wrun, "sys-wasm", "sysw", True)),
            Config("bare", "wasmtime library, no container, syscalls.wasm",
                   self.host([self.bare, "--dir", f"{w}/sys-bare", self.wasm("syscalls"),
                              f"{w}/sys-bare/syscalls.dat", it], True))])

    def cycle(self):
        def steps(rt, prefix):
            b = f"{self.w}/true"
            return lambda n: [(rt.cmd("create", "--bundle", b, f"{prefix}-{n}"), b),
                              (rt.cmd("start", f"{prefix}-{n}"), self.w),
                              (rt.cmd("delete", "--force", f"{prefix}-{n}"), self.w)]
        c = [Config("wrun", "wrun create + start + delete", self.timed(steps(self.wrun, "cyc")))]
        if self.rc:
            c.append(Config("runc", "runc create + start + delete",
                            self.timed(steps(self.rc, "cyc")), fatal=False))
        return Workload("cycle", "create / start / delete cycle (busybox /bin/true, "
                        "delete --force)", c)

    def containerd(self):
        def ctr_run(runtime, image, prefix, *cargs):
            return self.timed(lambda n: [(self.ctr.run_rm(runtime, image, f"{prefix}-{n}", *cargs),
                                          self.w)])
        return Workload("containerd", "Through containerd: `ctr run --rm` to exit",
                        names={"runc": "runc.v2"}, configs=[
            Config("runc", f"runc.v2 shim, busybox true ({version('containerd')})",
                   ctr_run(RUNC_V2, BUSYBOX_IMAGE, "ctr-runc", "true"), fatal=False),
            Config("wrun", "wrun shim (containerd-shim-wrun-v1), busybox true",
                   ctr_run(WRUN_V1, BUSYBOX_IMAGE, "ctr-wrun", "true")),
            Config("wrun-wasm", "wrun shim, exit.wasm 0",
                   ctr_run(WRUN_V1, WASM_IMAGE, "ctr-wasm", "/exit.wasm", "0"))])

    def memory(self):
        def in_container(rt, bundle, prefix):
            b = f"{self.w}/{bundle}"
            return lambda n: memory.container_memory(self.run, rt, self.peak, b, f"{prefix}-{n}")

        def process(argv):
            def go(n):
                kb = memory.peak_rss_kb(self.run, self.peak, argv)
                return {"rss_kb": kb, "sum_kb": kb}
            return go

        s = str(self.args.mem_steps)
        c = [Config("host", "host nbody (the process)", process([self.native("nbody"), s])),
             Config("bare", "wasmtime library, no container, nbody.wasm (the process)",
                    process([self.bare, self.wasm("nbody"), s])),
             Config("wrun", "wrun native container nbody",
                    in_container(self.wrun, "mem-native", "mem")),
             Config("wrun-wasm", "wrun wasm container nbody.wasm",
                    in_container(self.wrun, "mem-wasm", "memw"))]
        if self.rc:
            c.append(Config("runc", "runc container nbody", in_container(self.rc, "mem-native", "mem"),
                            fatal=False))
        if self.cr:
            c.append(Config("crun", "crun container nbody", in_container(self.cr, "mem-native", "mem"),
                            fatal=False))
        return Workload("memory", f"Memory: nbody ({s} steps) start to exit", c, kind="memory")

    def density(self):
        n = self.args.density

        def cli(rt, binary, bundle, prefix):
            return lambda: memory.density_cli(self.run, rt, binary, f"{self.w}/{bundle}", n, prefix)

        def ctr(runtime, shim, image, prefix, *cargs):
            return lambda: memory.density_containerd(self.run, self.ctr, runtime, shim, image,
                                                     cargs, n, prefix)

        c = [Config("wrun", "wrun native, busybox sleep", cli(self.wrun, self.args.wrun,
                                                              "idle-native", "idle")),
             Config("wrun-wasm", "wrun wasm, sleep.wasm", cli(self.wrun, self.args.wrun,
                                                              "idle-wasm", "idlew"))]
        if self.rc:
            c.append(Config("runc", "runc, busybox sleep",
                            cli(self.rc, self.runc, "idle-native", "idle"), fatal=False))
        if self.cr:
            c.append(Config("crun", "crun, busybox sleep" +
                            (" (v2 mount hidden)" if self.hybrid else ""),
                            cli(self.cr, self.crun, "idle-native", "idle"), fatal=False))
        if self.ctr:
            wrun_shim = "containerd-shim-wrun-v1"
            c += [Config("ctr-runc", "containerd runc.v2 shim, busybox sleep",
                         ctr(RUNC_V2, "containerd-shim-runc-v2", BUSYBOX_IMAGE, "idle-runc",
                             "sleep", "3600"), fatal=False),
                  Config("ctr-wrun", "containerd wrun shim, busybox sleep",
                         ctr(WRUN_V1, wrun_shim, BUSYBOX_IMAGE, "idle-wrun", "sleep", "3600")),
                  Config("ctr-wrun-wasm", "containerd wrun shim, sleep.wasm",
                         ctr(WRUN_V1, wrun_shim, WASM_IMAGE, "idle-wasm", "/sleep.wasm", "3600"))]
        return c

    def attach_cases(self):
        """(label, argv, cwd) of the starts whose cgroup attach strace times."""
        b = f"{self.w}/true"
        c = [("wrun native /bin/true", self.wrun.cmd("run", "--bundle", b, "attach"), b)]
        if self.rc:
            c.append(("runc /bin/true", self.rc.cmd("run", "--bundle", b, "attach"), b))
        return c

    def profile_cases(self):
        """(label, argv, cwd) of the runs `perf stat` profiles: the start and the CPU kernel,
        host against container."""
        def in_wrun(bundle):
            b = f"{self.w}/{bundle}"
            return self.wrun.cmd("run", "--bundle", b, "prof"), b
        s = str(self.args.steps)
        return [("host /bin/true", ["/bin/true"], self.w),
                ("wrun native /bin/true", *in_wrun("true")),
                ("wrun wasm exit.wasm", *in_wrun("exit-wasm")),
                (f"host nbody {s}", [self.native("nbody"), s], self.w),
                (f"wrun native nbody {s}", *in_wrun("nbody-native")),
                (f"wrun wasm nbody.wasm {s}", *in_wrun("nbody-wasm"))]


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--wrun", "--work", "--out", "--apps", "--bin-dir"):
        ap.add_argument(opt, required=True)
    for opt in ("--rounds", "--steps", "--iterations", "--mem-steps", "--density"):
        ap.add_argument(opt, type=int, required=True)
    for opt in ("--ctr-address", "--ctr-namespace", "--ctr-skip", "--rootless-user"):
        ap.add_argument(opt)
    args = ap.parse_args()
    args.pause_ms = PAUSE_S * 1000
    become_subreaper()
    mode, notes, run = cgroup_mode(), [], Runner(args.work)
    s = Setup(args, run, mode, notes)
    workloads = [s.noop(), s.cpu(), s.syscalls(), s.cycle()]
    if s.ctr:
        workloads.append(s.containerd())
    workloads.append(s.memory())
    dens = s.density()

    def attempt(cfg, *n):
        if cfg.error:
            return
        try:
            cfg.results.append(cfg.run(*n))
        except FAILURES as e:
            cfg.error = str(e)
        finally:
            reap_orphans()

    started = time.perf_counter()
    for wl in workloads:  # one unrecorded warm-up run each (fills the module cache)
        for cfg in wl.configs:
            attempt(cfg, 0)
            cfg.results.clear()
    shuffle = random.Random(20261201)
    for r in range(1, args.rounds + 1):
        for wl in workloads:
            order = list(wl.configs)
            shuffle.shuffle(order)
            for cfg in order:
                attempt(cfg, r)
    for cfg in dens:
        attempt(cfg)
    prof = profile.available(run)
    if prof is None:
        try:
            prof = profile.profile(run, s.profile_cases(), min(args.rounds, 5))
        except FAILURES as e:
            prof = f"`perf stat` failed: {e}"
    attach = profile.attach_available()
    if attach is None:
        try:
            attach = profile.cgroup_attach(run, s.attach_cases(), PAUSE_S, min(args.rounds, 5))
        except FAILURES as e:
            attach = f"strace failed: {e}"
    elapsed = time.perf_counter() - started
    floor = memory.peak_rss_kb(run, s.peak, ["/bin/true"])
    failed = write_report(args, mode, workloads, dens, prof, attach, notes, elapsed, floor)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
