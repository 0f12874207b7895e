//! The pod + container cycle through containerd's CRI, wrun's shim vs runc.v2, side by side
//! (issue #9's speed target), and the shim's memory for a two-container pod. Run by
//! `benches/cri-pod.sh` (`make bench-cri`), which builds everything and passes the paths.
//!
//! One cycle is what a kubelet does for a one-shot pod: RunPodSandbox, CreateContainer +
//! StartContainer (busybox `true`), ContainerStatus until exited, StopPodSandbox,
//! RemovePodSandbox. The two handlers alternate round by round on one containerd.
//!
//! usage: cri-cycle --work DIR --shim-dir DIR --busybox ROOTFS --guests DIR [--rounds N]

#[allow(dead_code)]
#[path = "../tests/cri/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use node::{container_config, info_pid, pids_where, pod_config, write_images, Node, BUSYBOX, RUNC, WASM_POD, WRUN};

struct Args {
    work: PathBuf,
    shim_dir: PathBuf,
    busybox: PathBuf,
    guests: PathBuf,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let (mut work, mut shim_dir, mut busybox, mut guests, mut rounds) = (None, None, None, None, 20);
    while let Some(k) = a.next() {
        let mut v = || a.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--work" => work = Some(PathBuf::from(v()?)),
            "--shim-dir" => shim_dir = Some(PathBuf::from(v()?)),
            "--busybox" => busybox = Some(PathBuf::from(v()?)),
            "--guests" => guests = Some(PathBuf::from(v()?)),
            "--rounds" => rounds = v()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    let need = |o: Option<PathBuf>, n: &str| o.ok_or(format!("{n} is required"));
    Ok(Args {
        work: need(work, "--work")?,
        shim_dir: need(shim_dir, "--shim-dir")?,
        busybox: need(busybox, "--busybox")?,
        guests: need(guests, "--guests")?,
        rounds,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One pod + container cycle; returns its wall time.
fn cycle(node: &Node, handler: &str, n: usize, logs: &Path) -> Result<Duration, String> {
    let cri = &node.cri;
    let name = format!("cycle-{handler}-{n}");
    let cfg = pod_config(&name, logs, &format!("/wrun-cri-bench/{name}"));
    let t = Instant::now();
    let pod = cri.run_pod(&cfg, handler)?;
    let c = cri.create_container(&pod, container_config("c", BUSYBOX, &["true"]), &cfg)?;
    cri.start_container(&c)?;
    let s = cri.wait_exited(&c, Duration::from_secs(30))?;
    cri.stop_pod(&pod)?;
    cri.remove_pod(&pod)?;
    let took = t.elapsed();
    if s.exit_code != 0 {
        return Err(format!("{handler}: the container exited {}", s.exit_code));
    }
    Ok(took)
}

/// (RSS, PSS) in KiB of a process, from /proc.
fn memory(pid: i64) -> (u64, u64) {
    let field = |file: &str, key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("status", "VmRSS:"), field("smaps_rollup", "Pss:"))
}

/// The children of `pid` (any of its threads'), from each process's PPid.
fn children(pid: i64) -> Vec<i64> {
    pids_where(|c| {
        let status = std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
        status
            .lines()
            .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&pid.to_string()))
    })
}

/// Starts a pod with two long-running containers and returns the memory of its shim.
fn two_container_pod(node: &Node, handler: &str, second: (&str, &[&str]), logs: &Path) -> Result<String, String> {
    let cri = &node.cri;
    let cfg = pod_config(
        &format!("mem-{handler}"),
        logs,
        &format!("/wrun-cri-bench/mem-{handler}"),
    );
    let pod = cri.run_pod(&cfg, handler)?;
    let a = cri.create_container(&pod, container_config("a", BUSYBOX, &["sleep", "300"]), &cfg)?;
    cri.start_container(&a)?;
    let b = cri.create_container(&pod, container_config("b", second.0, second.1), &cfg)?;
    cri.start_container(&b)?;
    std::thread::sleep(Duration::from_millis(500));
    let running = [&a, &b]
        .iter()
        .all(|c| cri.container_status(c).ok().and_then(|(_, i)| info_pid(&i)).is_some());
    let shims = node.shims_of("containerd-shim");
    let line = match (running, shims.as_slice()) {
        (true, [pid]) => {
            let (rss, pss) = memory(*pid);
            let mb = |k: u64| k as f64 / 1024.0;
            let mut line = format!("{handler}: 1 shim, RSS {:.1} MB, PSS {:.1} MB", mb(rss), mb(pss));
            // wrun's shim watches each container for OOM kills with a `wrun events` child:
            // count those too, or the comparison would flatter it.
            let watchers: Vec<i64> = children(*pid)
                .into_iter()
                .filter(|c| {
                    let cmd = std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default();
                    String::from_utf8_lossy(&cmd).contains("\0events\0")
                })
                .collect();
            if !watchers.is_empty() {
                let pss: u64 = watchers.iter().map(|w| memory(*w).1).sum();
                line += &format!(
                    "; + {} `wrun events` OOM watchers, PSS {:.1} MB",
                    watchers.len(),
                    mb(pss)
                );
            }
            line
        }
        (true, many) => format!("{handler}: {} shim processes {many:?}", many.len()),
        (false, _) => format!("{handler}: a container was not running"),
    };
    cri.stop_pod(&pod)?;
    cri.remove_pod(&pod)?;
    Ok(line)
}

fn run(a: &Args) -> Result<(), String> {
    let images = a.work.join("images");
    std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
    let guests: Vec<PathBuf> = ["tcp-fetch", "exit", "hello"]
        .iter()
        .map(|g| {
            let p1 = a.guests.join(format!("wasm32-wasip1/release/{g}.wasm"));
            if p1.exists() {
                p1
            } else {
                a.guests.join(format!("wasm32-wasip2/release/{g}.wasm"))
            }
        })
        .collect();
    let tars = write_images(&images, &a.busybox, &guests)?;
    let dir = a.work.join("node");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let node = Node::start(&dir, &a.shim_dir, &tars)?;
    let logs = a.work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let result = measure(a, &node, &logs);
    // Whatever happened: no pod left behind, then the node stops (on drop) and the cgroup
    // parents go.
    for p in node.cri.list_pods().unwrap_or_default() {
        let _ = node.cri.stop_pod(&p.id);
        let _ = node.cri.remove_pod(&p.id);
    }
    drop(node);
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let parent = hierarchy.path().join("wrun-cri-bench");
        for sub in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(sub.path());
        }
        let _ = std::fs::remove_dir(parent);
    }
    result
}

fn measure(a: &Args, node: &Node, logs: &Path) -> Result<(), String> {
    // One warm-up cycle each (first use of the images' snapshots, the CNI plugin's files).
    for h in [WRUN, RUNC] {
        cycle(node, h, 0, logs).map_err(|e| format!("{e}\n{}", node.log_tail()))?;
    }
    let (mut w, mut r) = (Vec::new(), Vec::new());
    for n in 1..=a.rounds {
        let order = if n % 2 == 0 { [WRUN, RUNC] } else { [RUNC, WRUN] };
        for h in order {
            let d = cycle(node, h, n, logs).map_err(|e| format!("{e}\n{}", node.log_tail()))?;
            if h == WRUN { &mut w } else { &mut r }.push(d.as_secs_f64() * 1000.0);
        }
    }
    let (wm, rm) = (median(&mut w), median(&mut r));
    println!(
        "pod + container cycle (RunPodSandbox .. RemovePodSandbox), {} rounds, alternating:",
        a.rounds
    );
    println!(
        "  wrun shim   median {wm:7.1} ms  min {:7.1}  max {:7.1}",
        w[0],
        w[w.len() - 1]
    );
    println!(
        "  runc.v2     median {rm:7.1} ms  min {:7.1}  max {:7.1}",
        r[0],
        r[r.len() - 1]
    );
    println!("  wrun / runc.v2 = {:.2} (target <= 1.0)", wm / rm);
    println!("shim memory, a pod with two running containers:");
    let wasm: &[&str] = &["/tcp-fetch.wasm", "9", "300"];
    println!("  {}", two_container_pod(node, WRUN, (WASM_POD, wasm), logs)?);
    let sleep: &[&str] = &["sleep", "300"];
    println!(
        "  {} (native + native)",
        two_container_pod(node, WRUN, (BUSYBOX, sleep), logs)?
    );
    println!(
        "  {} (native + native)",
        two_container_pod(node, RUNC, (BUSYBOX, sleep), logs)?
    );
    Ok(())
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cri-cycle: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("cri-cycle: {e}");
        std::process::exit(1);
    }
}
