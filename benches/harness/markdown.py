"""report.md: the machine line, a table and a chart per workload, the density table, the
targets of issue #7 met or missed (by how much), where the time goes, and the notes."""

import datetime
import os
import statistics

from . import profile, svg

MIB = 1024.0


def med(cfg, metric):
    v = cfg.values(metric)
    return statistics.median(v) if v else None


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def _find(workloads, wk, key):
    for wl in workloads:
        if wl.key == wk:
            for c in wl.configs:
                if c.key == key and not c.error:
                    return c
    return None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _time_table(wl, md, charts):
    base = [k for k in ("host", "runc", "crun") if any(c.key == k for c in wl.configs)]
    head = ["configuration", "median ms", "min ms", "max ms"] + \
        [f"vs {wl.names.get(k, k)}" for k in base]
    if wl.compute:
        head += ["loop ms (app's clock)", "loop vs host"]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = []
    for c in wl.configs:
        if c.error:
            md.append(f"| {c.label} | failed |" + " |" * (len(head) - 2))
            continue
        ms = c.values("ms")
        cells = [c.label, fmt(med(c, "ms")), fmt(min(ms)), fmt(max(ms))]
        for k in base:
            b = next((x for x in wl.configs if x.key == k and not x.error), None)
            cells.append(fmt(_ratio(med(c, "ms"), b and med(b, "ms")), 3))
        if wl.compute:
            h = next((x for x in wl.configs if x.key == "host" and not x.error), None)
            cells += [fmt(med(c, "compute_ms")),
                      fmt(_ratio(med(c, "compute_ms"), h and med(h, "compute_ms")), 3)]
        md.append("| " + " | ".join(cells) + " |")
        rows.append((c.label, med(c, "ms")))
    charts.append((wl.key, f"{wl.title}: median ms", rows, "ms"))


def _memory_table(wl, md, charts):
    md += ["| configuration | peak RSS of the runtime MiB | cgroup peak MiB | runtime + cgroup MiB "
           "| min–max MiB | vs runc | vs crun |", "|---|---|---|---|---|---|---|"]
    runc = _find([wl], wl.key, "runc")
    crun = _find([wl], wl.key, "crun")
    rows = []
    for c in wl.configs:
        if c.error:
            md.append(f"| {c.label} | failed | | | | | |")
            continue
        s = [v / MIB for v in c.values("sum_kb")]
        cg = med(c, "cgroup_kb")
        total = med(c, "sum_kb") / MIB
        md.append(f"| {c.label} | {fmt(med(c, 'rss_kb') / MIB)} | "
                  f"{fmt(cg / MIB if cg is not None else None)} | {fmt(total)} | "
                  f"{min(s):.2f}–{max(s):.2f} | "
                  f"{fmt(_ratio(med(c, 'sum_kb'), runc and med(runc, 'sum_kb')), 3)} | "
                  f"{fmt(_ratio(med(c, 'sum_kb'), crun and med(crun, 'sum_kb')), 3)} |")
        rows.append((c.label, total))
    charts.append((wl.key, f"{wl.title}: runtime + cgroup peak, median MiB", rows, "MiB"))


def _density_table(dens, n, md, charts):
    md += [f"## Density: {n} idle containers at once", "", "![density](density.svg)", "",
           "| configuration | containers | cgroup usage / ctr MiB | container processes PSS / ctr "
           "MiB | host processes PSS / ctr MiB | **memory / container MiB** | shim RSS MiB |",
           "|---|---|---|---|---|---|---|"]
    rows = []
    for c in dens:
        if c.error:
            md.append(f"| {c.label} | failed | | | | | |")
            continue
        r = c.results[0]
        k = r["n"] or 1
        per = (r["charged_kb"] + r["host_pss_kb"]) / k / MIB
        shim = fmt(r["shim_rss_kb"] / r["shims"] / MIB) if r.get("shims") else "–"
        md.append(f"| {c.label} | {r['n']} | {r['cgroup_kb'] / k / MIB:.2f} | "
                  f"{r['pss_kb'] / k / MIB:.2f} | {r['host_pss_kb'] / k / MIB:.2f} | "
                  f"**{per:.2f}** | {shim} |")
        rows.append((c.label, per))
    md.append("")
    charts.append(("density", f"{n} idle containers: memory per container, MiB", rows, "MiB"))


def _targets(workloads, dens, md):
    def f(wk, key, metric="ms"):
        c = _find(workloads, wk, key)
        return c and med(c, metric)

    def target(name, value, limit, strict=False, unit=""):
        if value is None:
            return f"| {name} | – | not measured in this run |"
        met = value < limit if strict else value <= limit
        how = (f"met (margin {(1 - value / limit) * 100:.1f}%)" if met
               else f"**missed** by {(value / limit - 1) * 100:.1f}%")
        return f"| {name} | {value:.3f}{unit} | {how} |"

    pair = ("wrun-hidden", "crun") if _find(workloads, "noop", "wrun-hidden") else ("wrun", "crun")
    shim = next((c for c in dens if c.key == "ctr-wrun" and not c.error), None)
    shim_rss = shim and shim.results[0]["shim_rss_kb"] / shim.results[0]["shims"] / MIB
    md += ["## Targets (medians, this run)", "",
           "| target | value | result |", "|---|---|---|",
           target(f"native start: {pair[0]} / crun ≤ 1.2",
                  _ratio(f("noop", pair[0]), f("noop", pair[1])), 1.2),
           target("native start: wrun / runc < 1", _ratio(f("noop", "wrun"), f("noop", "runc")),
                  1.0, True),
           target("wasm start (cached module) / wrun native start ≤ 1.5",
                  _ratio(f("noop", "wrun-wasm"), f("noop", "wrun")), 1.5),
           target("CPU kernel: native container / host ≤ 1.02, end to end (with the start)",
                  _ratio(f("cpu", "wrun"), f("cpu", "host")), 1.02),
           target("CPU kernel: native container / host ≤ 1.02, the loop alone (app's clock)",
                  _ratio(f("cpu", "wrun", "compute_ms"), f("cpu", "host", "compute_ms")), 1.02),
           target("CPU kernel: wasm container / native container ≤ 1.5, end to end",
                  _ratio(f("cpu", "wrun-wasm"), f("cpu", "wrun")), 1.5),
           target("shim: wrun / runc.v2 per `ctr run --rm` ≤ 1",
                  _ratio(f("containerd", "wrun"), f("containerd", "runc")), 1.0),
           target("shim: idle wrun shim RSS ≤ 5 MiB", shim_rss, 5.0, unit=" MiB"), ""]
    rl, rc_rl, cr_rl = f("noop", "wrun-rootless"), f("noop", "runc-rootless"), f("noop", "crun-rootless")
    if rl is not None:
        parts = [f"wrun rootless {rl:.2f} ms, {_ratio(rl, f('noop', 'wrun')):.3f}x wrun as root"]
        for name, v in (("runc", rc_rl), ("crun", cr_rl)):
            if v is not None:
                parts.append(f"{_ratio(rl, v):.3f}x {name} rootless ({v:.2f} ms)")
        md += ["Rootless start (the no-op, medians): " + "; ".join(parts) + ".", ""]


def _where(workloads, args, md):
    """Decompositions from this run's medians: what each overhead is made of."""
    def f(wk, key, metric="ms"):
        c = _find(workloads, wk, key)
        return c and med(c, metric)

    lines = []
    h, c, hi, ci = f("cpu", "host"), f("cpu", "wrun"), f("cpu", "host", "compute_ms"), \
        f("cpu", "wrun", "compute_ms")
    t, wn, wp = f("noop", "host"), f("noop", "wrun"), f("noop", "wrun-pause")
    if None not in (h, c, hi, ci, t, wn):
        d, out = c - h, (c - ci) - (h - hi)
        pause = "" if wp is None else (
            f" A wrun start {int(args.pause_ms)} ms after the previous one costs {wp - t:.2f} ms "
            f"(no-op rows: {wp:.2f} − {t:.2f}), as each container start does here after a "
            f"{h:.0f} ms run: the first write to cgroup.procs waits for an RCU grace "
            f"period that back-to-back starts share (see the Profile).")
        lines.append(
            f"- **CPU kernel, native container vs host**: {d:+.2f} ms end to end "
            f"({d / h * 100:+.2f}% of {h:.1f} ms). The loop itself, timed by the app, differs by "
            f"{ci - hi:+.2f} ms ({(ci / hi - 1) * 100:+.2f}%); the time outside the loop (start, "
            f"exit, teardown) by {out:+.2f} ms, against {wn - t:.2f} ms for back-to-back no-op "
            f"starts (wrun − host no-op rows).{pause}")
    ww, wn, wb = f("noop", "wrun-wasm"), f("noop", "wrun"), f("noop", "bare")
    if None not in (ww, wn, wb):
        lines.append(
            f"- **wasm start**: wrun wasm {ww:.2f} ms vs wrun native {wn:.2f} ms ({ww - wn:+.2f} ms)."
            f" wasmtime alone in a plain process (prepare from the same cache, instantiate, run "
            f"exit.wasm) takes {wb:.2f} ms, so the container around the guest costs "
            f"{ww - wb:.2f} ms, against {wn - (f('noop', 'host') or 0):.2f} ms around /bin/true.")
    n = args.iterations * 3
    per = []
    for key, name in (("host", "host"), ("wrun", "native container"),
                      ("wrun-wasm", "wasm container"), ("bare", "wasmtime, no container")):
        v = f("syscalls", key, "compute_ms")
        if v is not None:
            per.append(f"{name} {v * 1000 / n:.2f} µs")
    if per:
        lines.append("- **syscall loop**, per call (write, stat or fstat; the app's clock): "
                     + ", ".join(per) + ". A WASI call is a host call through wasmtime-wasi "
                     "(argument checks, the fd table, path resolution under the preopen with "
                     "cap-std: an `openat2`/`statx` sequence per path) on top of the same system call.")
    cw, cr, wn = f("containerd", "wrun"), f("containerd", "runc"), f("noop", "wrun")
    if None not in (cw, cr, wn):
        lines.append(
            f"- **containerd**: `ctr run --rm` through wrun's shim {cw:.1f} ms vs runc.v2 "
            f"{cr:.1f} ms ({cw - cr:+.1f} ms); the same container through `wrun run` alone takes "
            f"{wn:.1f} ms, so {cw - wn:.1f} ms of a `ctr run` is ctr, containerd (image "
            f"snapshot, task API, events) and the shim.")
    if lines:
        md += ["## Where the time goes (this run's medians)", ""] + lines + [""]


def _profile(prof, attach, args, md, notes):
    if isinstance(prof, str) and isinstance(attach, str):
        notes += [f"No profile: {prof}.", f"No cgroup attach timing: {attach}."]
        return
    md += ["## Profile", ""]
    if isinstance(prof, str):
        notes.append(f"No perf profile: {prof}.")
    else:
        md += [f"`perf stat`, software events, medians of {min(args.rounds, 5)} runs each "
               "(alternating). CPU time is summed over every process and thread of the run (the "
               "runtime, the container, wasmtime's threads); wall time includes perf's own start.",
               ""]
        profile.table(prof, md)
        md.append("")
    if isinstance(attach, str):
        notes.append(f"No cgroup attach timing: {attach}.")
    else:
        md += [f"Joining the cgroups: `strace -ff -T` of the writes of the init's pid to the "
               f"cgroup.procs of every hierarchy, in a start {int(args.pause_ms)} ms after the "
               f"previous one, medians of {min(args.rounds, 5)}:", "",
               "| start | all writes ms | the longest write ms | writes |", "|---|---|---|---|"]
        md += [f"| {label} | {total:.2f} | {longest:.2f} | {n} |"
               for label, total, longest, n in attach] + [""]


def write_report(args, mode, workloads, dens, prof, attach, notes, elapsed, floor_kb):
    """Writes report.md and the charts into args.out; prints the report; returns True if a
    configuration that must work (a wrun one) failed."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = "debug build: figures not meaningful" if "/debug/" in args.wrun else "release build"
    md = ["# wrun comparison report", "",
          f"Machine: {_cpu_model()}, {os.cpu_count()} CPUs, kernel {os.uname().release}, "
          f"cgroups {mode}; {now}.  ",
          f"wrun: `{args.wrun}` ({kind}); {args.rounds} rounds (configurations alternating, "
          f"order shuffled each round, one warm-up run each), {elapsed:.0f} s in all. Times are "
          f"wall clock from spawn to reap, measured in Python. One noisy VM: read ratios, not "
          f"absolute figures.", ""]
    charts, failed = [], False
    for wl in workloads:
        md += [f"## {wl.title}", "", f"![{wl.title}]({wl.key}.svg)", ""]
        if wl.kind == "time":
            _time_table(wl, md, charts)
        else:
            _memory_table(wl, md, charts)
        md.append("")
        for c in wl.configs:
            if c.error:
                notes.append(f"{wl.title}: {c.label} failed: {c.error}")
                failed |= c.fatal
    notes.append(f"Memory: peak RSS is `wait4`'s ru_maxrss through the peak-rss helper (the "
                 f"largest single process: for a container, the biggest of the runtime's create,"
                 f" start and delete processes); its floor, `peak-rss /bin/true`, is "
                 f"{floor_kb / MIB:.2f} MiB. The cgroup peak is the container's memory cgroup "
                 f"(v1 memory.max_usage_in_bytes, v2 memory.peak) read before the delete: what the"
                 f" container's processes charged, page cache included. A wasm guest is prepared "
                 f"(wasmtime's engine, the module, the compiled code) by the init once it is in "
                 f"the container's cgroup, so that memory is in the cgroup peak; file pages (the "
                 f"runtime binary, the compiled-module cache) stay charged to whoever read them "
                 f"first.")
    _density_table(dens, args.density, md, charts)
    for c in dens:
        if c.error:
            notes.append(f"Density: {c.label} failed: {c.error}")
            failed |= c.fatal
    notes.append("Density: memory per container = (for each container the larger of its cgroup's "
                 "usage and its processes' PSS, + the PSS of the host processes serving them: "
                 "shims and what they started outside the containers) / N, one shot after the "
                 "rounds. The larger of the two, because an init shares pages charged elsewhere "
                 "(the runtime binary's text, the copy-on-write heap of `create` from before the "
                 "clone): its cgroup alone would under-count it. Both columns are shown: for a "
                 "wasm container they now differ by those shared pages only, the guest itself is "
                 "in the cgroup.")
    _targets(workloads, dens, md)
    _where(workloads, args, md)
    _profile(prof, attach, args, md, notes)
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    for key, title, rows, unit in charts:
        svg.bars(os.path.join(args.out, f"{key}.svg"), title, rows, unit)
    text = "\n".join(md)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"report: {os.path.join(args.out, 'report.md')}", flush=True)
    return failed


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"
