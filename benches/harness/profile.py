"""A profile of the overheads the targets are about.

`perf stat` (software events: this VM's perf has no hardware counters): CPU time summed over
every process and thread of a run (task-clock), context switches, CPU migrations and page
faults, next to the wall time, for the host process and the container of the same program.

`strace -T`: how long a start's writes to cgroup.procs (joining the container's cgroups)
take when no other start came just before. The first such write takes the cgroup core's
threadgroup rwsem for writing, which waits for an RCU grace period unless another writer
took it moments before: back-to-back starts share one grace period, a lone start pays it.

Without a working perf or strace: a note instead."""

import os
import re
import shutil
import statistics
import time

from .runtimes import RunError

EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults")


def available(run):
    """None if `perf stat` works here, else why not."""
    if not shutil.which("perf"):
        return "perf is not installed (Debian: linux-perf)"
    try:
        run(["perf", "stat", "-x,", "-e", "task-clock", "-o", os.path.join(run.work, "perf.csv"),
             "--", "/bin/true"])
    except RunError as e:
        return f"`perf stat` does not work here: {e}"
    return None


def perf_stat(run, argv, cwd):
    """One run of argv under `perf stat`: {event: value} plus the wall time (ms)."""
    csv = os.path.join(run.work, "perf.csv")
    t0 = time.perf_counter()
    run(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-o", csv, "--", *argv], cwd=cwd)
    r = {"wall": (time.perf_counter() - t0) * 1000}
    with open(csv) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2] in EVENTS:
                try:
                    r[parts[2]] = float(parts[0])
                except ValueError:  # "<not counted>"
                    pass
    return r


def profile(run, cases, repeats):
    """cases: [(label, argv, cwd)], run alternately `repeats` times; the median of each."""
    got = {label: [] for label, _, _ in cases}
    for _ in range(repeats):
        for label, argv, cwd in cases:
            got[label].append(perf_stat(run, argv, cwd))
    rows = []
    for label, _, _ in cases:
        med = {k: statistics.median(r[k] for r in got[label] if k in r)
               for k in ("wall",) + EVENTS if any(k in r for r in got[label])}
        rows.append((label, med))
    return rows


def table(rows, md):
    md += ["| run | wall ms | CPU time ms (task-clock, all threads) | context switches | "
           "CPU migrations | page faults |", "|---|---|---|---|---|---|"]
    for label, m in rows:
        cell = lambda k, d=0: "–" if k not in m else f"{m[k]:.{d}f}"
        md.append(f"| {label} | {cell('wall', 2)} | {cell('task-clock', 2)} | "
                  f"{cell('context-switches')} | {cell('cpu-migrations')} | {cell('page-faults')} |")


def attach_available():
    return None if shutil.which("strace") else "strace is not installed"


ATTACH = re.compile(r"write\(\d+<[^>]*/cgroup\.procs>.*<([0-9.]+)>$")


def cgroup_attach(run, cases, pause_s, repeats):
    """cases: [(label, argv, cwd)]; each run `pause_s` after the previous one, under
    `strace -ff -T -y -e trace=write`: [(label, median ms of all the cgroup.procs writes of a
    start, median ms of the longest one, writes per start)]."""
    out = os.path.join(run.work, "strace")
    got = {label: [] for label, _, _ in cases}
    for _ in range(repeats):
        for label, argv, cwd in cases:
            shutil.rmtree(out, ignore_errors=True)
            os.mkdir(out)
            time.sleep(pause_s)
            # -ff: one file per process, so no call is split into "unfinished" and "resumed".
            run(["strace", "-ff", "-T", "-y", "-e", "trace=write", "-o", f"{out}/t", "--", *argv],
                cwd=cwd)
            durations = []
            for name in os.listdir(out):
                with open(os.path.join(out, name)) as f:
                    durations += [float(m.group(1)) * 1000 for m in map(ATTACH.search, f) if m]
            got[label].append((sum(durations), len(durations), max(durations, default=0)))
    return [(label, statistics.median(x[0] for x in v), statistics.median(x[2] for x in v),
             max(x[1] for x in v)) for label, v in got.items()]
