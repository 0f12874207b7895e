"""The measuring and reporting half of benches/report.sh (which makes the bundles and cleans up).

Every configuration of every workload runs once per round, the order rotating from round to
round, so drift on this noisy VM hits all of them alike. Each run is timed in this process
(time.perf_counter around the child's spawn and reap). No memory figures yet: wait4's
ru_maxrss would count the forked Python image (~20 MiB) before exec. Standard library only.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import time
from xml.sax.saxutils import escape

HIDE_V2 = "umount /sys/fs/cgroup/unified 2>/dev/null; exec "


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


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def version(tool):
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return tool


class Config:
    def __init__(self, key, label, steps, fatal=True):
        self.key, self.label, self.steps, self.fatal = key, label, steps, fatal
        self.times, self.error = [], None


def run_once(cfg, n, errpath):
    """Runs the config's steps for run number n; returns the seconds they took, or raises."""
    steps = cfg.steps(n)
    with open(errpath, "w+") as err:
        t0 = time.perf_counter()
        for argv, cwd in steps:
            p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
            if p.wait() != 0 != 0:
                err.seek(0)
                tail = " ".join(err.read().split())[-300:]
                raise RuntimeError(f"`{' '.join(argv)}` exited {p.returncode}: {tail}")
        return time.perf_counter() - t0


def build(args, mode, notes):
    w, wrun = args.work, args.wrun
    runc, crun = shutil.which("runc"), shutil.which("crun")
    hybrid = mode == "hybrid"

    def wrun_cmd(*rest):
        return [wrun, "--root", f"{w}/state-wrun", *rest]

    def hidden(cmd):
        return ["unshare", "-m", "sh", "-c", HIDE_V2 + " ".join(cmd)]

    def run_in(runtime_cmd, bundle, prefix, wrap=False):
        def steps(n):
            cmd = runtime_cmd("run", "--bundle", f"{w}/{bundle}", f"{prefix}-{n}")
            return [(hidden(cmd) if wrap else cmd, f"{w}/{bundle}")]
        return steps

    def runc_cmd(*rest):
        return [runc, "--root", f"{w}/state-runc", *rest]

    def crun_cmd(*rest):
        return [crun, "--root", f"{w}/state-crun", *rest]

    noop = [
        Config("host", "host /bin/true (no isolation)", lambda n: [(["/bin/true"], w)]),
        Config("wrun", "wrun native (busybox /bin/true)", run_in(wrun_cmd, "true", "noop")),
        Config("wrun-wasm", "wrun wasm (exit.wasm 0, cached module)",
               run_in(wrun_cmd, "exit-wasm", "noopw")),
    ]
    if runc:
        noop.append(Config("runc", f"runc ({version(runc)})", run_in(runc_cmd, "true", "noop"),
                           fatal=False))
    else:
        notes.append("runc is not installed: its rows are skipped.")
    if crun:
        if hybrid:
            noop.append(Config("wrun-hidden", "wrun native, v2 mount hidden (crun's wrapper)",
                               run_in(wrun_cmd, "true", "nooph", wrap=True)))
            noop.append(Config("crun", f"crun ({version(crun)}), v2 mount hidden",
                               run_in(crun_cmd, "true", "noop", wrap=True), fatal=False))
            notes.append("crun refuses this host's hybrid cgroups unless the cgroup2 mount is "
                         "hidden in a private mount namespace (`unshare -m`, umount "
                         "/sys/fs/cgroup/unified), so it runs through that wrapper, and wrun is "
                         "also measured through the same wrapper: the like-for-like crun ratio "
                         "is `wrun-hidden / crun`.")
        else:
            noop.append(Config("crun", f"crun ({version(crun)})",
                               run_in(crun_cmd, "true", "noop"), fatal=False))
    else:
        notes.append("crun is not installed: its rows are skipped.")
    cpu = [
        Config("host", "host nbody (no isolation)",
               lambda n: [([args.host_nbody, str(args.steps)], w)]),
        Config("wrun", "wrun native container nbody", run_in(wrun_cmd, "nbody-native", "cpu")),
        Config("wrun-wasm", "wrun wasm container nbody.wasm",
               run_in(wrun_cmd, "nbody-wasm", "cpuw")),
    ]

    def cycle(cmd, prefix):
        def steps(n):
            cid = f"{prefix}-{n}"
            return [(cmd("create", "--bundle", f"{w}/true", cid), w),
                    (cmd("start", cid), w),
                    (cmd("delete", "--force", cid), w)]
        return steps

    cyc = [Config("wrun", "wrun create + start + delete", cycle(wrun_cmd, "cyc"))]
    if runc:
        cyc.append(Config("runc", f"runc create + start + delete", cycle(runc_cmd, "cyc"),
                          fatal=False))
    notes.append("Not in this increment (issue #7 asks for them): containerd (wrun's shim vs "
                 "runc.v2: `benches/containerd-shim.sh`), wasmtime without a container, the "
                 "syscall-heavy loop, memory (peak RSS, the cgroup's peak) and density.")
    return [
        ("noop", "Start to exit of a no-op", noop),
        ("cpu", f"CPU-bound kernel (nbody, {args.steps} steps)", cpu),
        ("cycle", "create / start / delete cycle (busybox /bin/true, delete --force)", cyc),
    ]


def svg(path, title, rows):
    """A horizontal bar chart of (label, median ms) rows, written by hand."""
    width, left, bar_w, row_h, top = 760, 330, 330, 26, 40
    height = top + row_h * len(rows) + 16
    peak = max((v for _, v in rows), default=1) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, bar_w * value / peak)
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="#4a7ab5"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{value:.2f} ms</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--wrun", "--work", "--out", "--host-nbody"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    args = ap.parse_args()
    mode = cgroup_mode()
    notes = []
    workloads = build(args, mode, notes)
    errpath = os.path.join(args.work, "stderr")

    def attempt(cfg, n, record):
        if cfg.error:
            return
        try:
            t = run_once(cfg, n, errpath)
        except (RuntimeError, OSError) as e:
            cfg.error = str(e)
            return
        if record:
            cfg.times.append(t)

    started = time.perf_counter()
    for _, _, cfgs in workloads:  # one unrecorded warm-up run each (fills the module cache)
        for cfg in cfgs:
            attempt(cfg, 0, False)
    for r in range(1, args.rounds + 1):
        for _, _, cfgs in workloads:
            k = r % len(cfgs)
            for cfg in cfgs[k:] + cfgs[:k]:
                attempt(cfg, r, True)
    elapsed = time.perf_counter() - started

    med = {(wk, c.key): statistics.median(c.times) * 1000
           for wk, _, cfgs in workloads for c in cfgs if c.times and not c.error}

    def ratio(wk, a, b):
        if (wk, a) in med and (wk, b) in med and med[(wk, b)] > 0:
            return med[(wk, a)] / med[(wk, b)]
        return None

    fmt = lambda x: "–" if x is None else f"{x:.2f}"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    build_kind = "debug build: figures not meaningful" if "/debug/" in args.wrun else "release build"
    md = ["# wrun comparison report", "",
          f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, kernel {os.uname().release}, "
          f"cgroups {mode}; {now}.  ",
          f"wrun: `{args.wrun}` ({build_kind}); {args.rounds} rounds (configurations "
          f"alternating, order rotating each round, one warm-up run each), "
          f"{elapsed:.0f} s in all. Times are wall clock from spawn to reap, measured in "
          f"Python. One noisy VM: read ratios, not "
          f"absolute figures.", ""]
    failed_fatal = False
    for wk, title, cfgs in workloads:
        md += [f"## {title}", "", f"![{title}]({wk}.svg)", "",
               "| configuration | median ms | min ms | max ms | vs host | vs runc | vs crun |",
               "|---|---|---|---|---|---|---|"]
        rows = []
        for c in cfgs:
            if c.error:
                md.append(f"| {c.label} | failed | | | | | |")
                notes.append(f"{title}: {c.label} failed: {c.error}")
                failed_fatal |= c.fatal
                continue
            ms = [t * 1000 for t in c.times]
            md.append(f"| {c.label} | {med[(wk, c.key)]:.2f} | {min(ms):.2f} | {max(ms):.2f} "
                      f"| {fmt(ratio(wk, c.key, 'host'))} | {fmt(ratio(wk, c.key, 'runc'))} "
                      f"| {fmt(ratio(wk, c.key, 'crun'))} |")
            rows.append((c.label, med[(wk, c.key)]))
        svg(os.path.join(args.out, f"{wk}.svg"), f"{title}: median ms", rows)
        md.append("")

    def target(name, value, limit, strict=False):
        if value is None:
            return f"| {name} | – | not measured here |"
        met = value < limit if strict else value <= limit
        how = (f"met (margin {(1 - value / limit) * 100:.0f}%)" if met
               else f"**missed** by {(value / limit - 1) * 100:.1f}%")
        return f"| {name} | {value:.3f} | {how} |"

    crun_pair = ("wrun-hidden", "crun") if ("noop", "wrun-hidden") in med else ("wrun", "crun")
    md += ["## Targets of issue #7 (medians, this run)", "",
           "| target | ratio | result |", "|---|---|---|",
           target(f"native start: {crun_pair[0]} / crun ≤ 1.2", ratio("noop", *crun_pair), 1.2),
           target("native start: wrun / runc < 1", ratio("noop", "wrun", "runc"), 1.0, True),
           target("wasm start (cached module) / wrun native start ≤ 1.5",
                  ratio("noop", "wrun-wasm", "wrun"), 1.5),
           target("CPU kernel: native container / host ≤ 1.02", ratio("cpu", "wrun", "host"), 1.02),
           target("CPU kernel: wasm container / native container ≤ 1.5",
                  ratio("cpu", "wrun-wasm", "wrun"), 1.5),
           "| shim: wrun ≤ runc.v2 per `ctr run --rm`; idle shim RSS ≤ 5 MB | – | not in this "
           "increment: `make bench-shim` |", ""]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(md)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"report: {os.path.join(args.out, 'report.md')}", file=sys.stderr)
    return 1 if failed_fatal else 0


if __name__ == "__main__":
    sys.exit(main())
