"""Memory figures: a command's peak RSS (through the peak-rss helper, so the Python image is
not counted), a container's memory cgroup (peak and current usage, v1 or v2), the PSS and RSS
of processes, and the two one-shot density measurements (N idle containers through a runtime's
CLI, or through containerd with one shim each), which always remove what they started."""

import os
import time

from .runtimes import RunError, reap_orphans

SETTLE_S = 1.0  # after the last idle container starts, before reading its memory


def _cgroup_mounts():
    """{controller: (mountpoint, root)} of v1 hierarchies, and "" for a cgroup2 one."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            fstype, options = parts[sep + 1], parts[sep + 3]
            if fstype == "cgroup2":
                mounts.setdefault("", (parts[4], parts[3]))
            elif fstype == "cgroup":
                for c in options.split(","):
                    mounts.setdefault(c, (parts[4], parts[3]))
    return mounts


MOUNTS = _cgroup_mounts()


def memory_dir(pid):
    """The directory of pid's memory cgroup: the v1 memory hierarchy if there is one, else v2."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    want = "memory" if "memory" in MOUNTS else ""
    for hid, controllers, path in lines:
        if (want == "memory" and "memory" in controllers.split(",")) or (want == "" and hid == "0"):
            mountpoint, root = MOUNTS[want]
            rel = path[len(root.rstrip("/")):] if path.startswith(root) and root != "/" else path
            return mountpoint + rel
    raise RunError(f"pid {pid} has no memory cgroup")


def _read_kb(d, *names):
    for n in names:
        try:
            with open(os.path.join(d, n)) as f:
                return int(f.read().split()[0]) // 1024
        except (OSError, ValueError, IndexError):
            continue
    return None


def cgroup_peak_kb(d):
    """The cgroup's peak usage (v1 max_usage_in_bytes, v2 memory.peak since Linux 5.19)."""
    return _read_kb(d, "memory.max_usage_in_bytes", "memory.peak")


def cgroup_usage_kb(d):
    return _read_kb(d, "memory.usage_in_bytes", "memory.current")


def cgroup_pids(d):
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_kb(pid, field):
    """VmRSS (from status) or Pss (from smaps_rollup) of pid in kB; 0 if it is gone."""
    path = f"/proc/{pid}/status" if field == "VmRSS" else f"/proc/{pid}/smaps_rollup"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _processes():
    """{pid: (ppid, exe, cmdline argv)} of every process we can read."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            exe = os.readlink(f"/proc/{pid}/exe")
        except (OSError, ValueError, IndexError):
            continue
        procs[pid] = (ppid, exe, [a.decode(errors="replace") for a in argv])
    return procs


def peak_rss_kb(run, helper, argv, cwd=None):
    """Runs argv under the peak-rss helper; its largest process's peak RSS in kB."""
    out = os.path.join(run.work, "peak-rss")
    run([helper, out, *argv], cwd=cwd)
    with open(out) as f:
        return int(f.read())


def container_memory(run, rt, helper, bundle, cid):
    """create, start, wait for the exit, delete: the runtime's peak RSS (its largest process
    of the three commands) and the container cgroup's peak, read before the delete."""
    rss = [peak_rss_kb(run, helper, rt.cmd("create", "--bundle", bundle, cid), cwd=bundle)]
    try:
        cg = memory_dir(rt.state(run, cid)["pid"])
        rss.append(peak_rss_kb(run, helper, rt.cmd("start", cid)))
        rt.wait_stopped(run, cid)
        peak = cgroup_peak_kb(cg)
        rss.append(peak_rss_kb(run, helper, rt.cmd("delete", cid)))
    except BaseException:
        rt.remove(run, cid)
        raise
    finally:
        reap_orphans()
    if peak is None:
        raise RunError(f"no peak usage file in {cg}")
    return {"rss_kb": max(rss), "cgroup_kb": peak, "sum_kb": max(rss) + peak}


def _account(pids, host_pids):
    """Memory of idle containers (their init pids) and of the host processes that serve them
    (shims and their helpers): cgroup usage, processes' PSS and RSS, all in kB."""
    cgs = {memory_dir(p) for p in pids}
    members = {d: cgroup_pids(d) for d in cgs}
    in_containers = {p for ps in members.values() for p in ps}
    hosts = [p for p in host_pids if p not in in_containers]
    usage = {d: cgroup_usage_kb(d) or 0 for d in cgs}
    pss = {d: sum(proc_kb(p, "Pss") for p in ps) for d, ps in members.items()}
    return {
        "n": len(pids),
        "cgroups": len(cgs),
        "cgroup_kb": sum(usage.values()),
        "pss_kb": sum(pss.values()),
        "charged_kb": sum(max(usage[d], pss[d]) for d in cgs),
        "rss_kb": sum(proc_kb(p, "VmRSS") for p in in_containers),
        "host_pss_kb": sum(proc_kb(p, "Pss") for p in hosts),
        "host_rss_kb": sum(proc_kb(p, "VmRSS") for p in hosts),
        "hosts": len(hosts),
    }


def _descendants(procs, roots):
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def density_cli(run, rt, binary, bundle, n, prefix):
    """N idle containers through a runtime's create + start. Host processes: any process of
    the runtime's own binary still alive (wrun, runc and crun leave none)."""
    ids = []
    try:
        for i in range(n):
            cid = f"{prefix}-{i}"
            run(rt.cmd("create", "--bundle", bundle, cid), cwd=bundle)
            ids.append(cid)
            run(rt.cmd("start", cid))
        time.sleep(SETTLE_S)
        pids = [rt.state(run, c)["pid"] for c in ids]
        exe = os.path.realpath(binary)
        hosts = [p for p, (_, e, _) in _processes().items() if e == exe]
        return _account(pids, hosts)
    finally:
        for c in ids:
            rt.remove(run, c)
        reap_orphans()


def density_containerd(run, ctr, runtime, shim, image, args, n, prefix):
    """N idle containers through `ctr run -d`, one shim each: the shims (found by their binary
    name and this namespace) and everything they started outside the containers count."""
    ids = []
    try:
        for i in range(n):
            cid = f"{prefix}-{i}"
            ids.append(cid)
            run(ctr.run_detached(runtime, image, cid, *args))
        time.sleep(SETTLE_S)
        pids = [ctr.task_pid(run, c) for c in ids]
        procs = _processes()
        shims = [p for p, (_, exe, argv) in procs.items()
                 if os.path.basename(exe) == shim and ctr.namespace in argv]
        r = _account(pids, _descendants(procs, shims))
        r["shims"] = len(shims)
        r["shim_rss_kb"] = sum(proc_kb(p, "VmRSS") for p in shims)
        r["shim_pss_kb"] = sum(proc_kb(p, "Pss") for p in shims)
        return r
    finally:
        for c in ids:
            ctr.remove(run, c)
