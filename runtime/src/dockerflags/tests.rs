//! Tests of the parent module.
use super::*;

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

fn res(f: ResourceFlags) -> LinuxResources {
    to_resources_with_cpus(&f, 4).unwrap_or_else(|e| panic!("{e}"))
}

fn err(f: ResourceFlags) -> String {
    match to_resources_with_cpus(&f, 4) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn sizes() {
    for (input, want) in [
        ("0", 0),
        ("512", 512),
        ("512b", 512),
        ("512B", 512),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("512k", 512 * 1024),
        ("64m", 64 * MIB),
        ("64MB", 64 * MIB),
        ("64 m", 64 * MIB),
        ("1g", GIB),
        ("1.5g", GIB + GIB / 2),
        ("1.5G", 1_610_612_736),
        (".5m", MIB / 2),
        ("1.m", MIB),
        ("0.1k", 102),
        ("2t", 2 << 40),
        ("3p", 3 << 50),
        ("7.99999999999999999999999b", 7),
    ] {
        assert_eq!(parse_size(input), Ok(want), "{input}");
    }
    for (input, reason) in [
        ("12x", "invalid size: unknown unit \"x\""),
        ("1kk", "invalid size: unknown unit \"kk\""),
        ("1gib2", "invalid size: unknown unit \"gib2\""),
        ("1bb", "invalid size: unknown unit \"bb\""),
        ("1é", "invalid size: unknown unit \"é\""),
        ("1mé", "invalid size: unknown unit \"mé\""),
        ("", "invalid size"),
        ("m", "invalid size"),
        (".", "invalid size"),
        ("1.2.3m", "invalid size"),
        (" 1m", "invalid size"),
        ("1  m", "invalid size: unknown unit \" m\""),
        ("-1", "invalid size: negative"),
        ("-5m", "invalid size: negative"),
        ("8192p", "invalid size: too large"),
        ("99999999999999999999999999999999999999999", "invalid size: too large"),
    ] {
        let e = parse_size(input).unwrap_err();
        assert_eq!(
            e,
            FlagError::Size {
                value: input.into(),
                reason: reason.into()
            },
            "{input}"
        );
    }
    assert_eq!(parse_size("8191p").unwrap(), 8191 << 50);
    assert_eq!(
        parse_size("12x").unwrap_err().to_string(),
        r#"invalid size: unknown unit "x""#
    );
}

#[test]
fn no_flags_no_resources() {
    let r = res(ResourceFlags::default());
    assert_eq!(r, LinuxResources::default());
    // Zero values are "not set", as in docker.
    let r = res(ResourceFlags {
        cpus: s("0"),
        cpu_shares: Some(0),
        cpu_period: Some(0),
        cpu_quota: Some(0),
        cpu_rt_period: Some(0),
        cpu_rt_runtime: Some(0),
        cpuset_cpus: s(""),
        memory: s("0"),
        memory_reservation: s("0"),
        memory_swap: s("0"),
        memory_swappiness: Some(-1),
        blkio_weight: Some(0),
        ..Default::default()
    });
    assert_eq!(r, LinuxResources::default());
}

#[test]
fn cpus() {
    let cpu = res(ResourceFlags {
        cpus: s("1.5"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!((cpu.period(), cpu.quota()), (Some(100_000), Some(150_000)));
    let cpu = res(ResourceFlags {
        cpus: s("0.01"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.quota(), Some(1_000));
    let cpu = res(ResourceFlags {
        cpus: s("4"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.quota(), Some(400_000));
    let cpu = res(ResourceFlags {
        cpus: s(".25"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.quota(), Some(25_000));
    let cpu = res(ResourceFlags {
        cpus: s("2.000000000000"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.quota(), Some(200_000));

    let range = "range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available";
    for v in ["4.5", "-1", "0.001", "100000000"] {
        assert_eq!(
            err(ResourceFlags {
                cpus: s(v),
                ..Default::default()
            }),
            format!("--cpus {v:?}: {range}")
        );
    }
    assert_eq!(
        err(ResourceFlags {
            cpus: s("1.0000000001"),
            ..Default::default()
        }),
        r#"--cpus "1.0000000001": value is too precise (at most 9 decimals)"#
    );
    for v in ["abc", "", "1.5.2", "1,5", "0x2", "."] {
        assert_eq!(
            err(ResourceFlags {
                cpus: s(v),
                ..Default::default()
            }),
            format!("--cpus {v:?}: invalid number of CPUs")
        );
    }
    assert_eq!(
        err(ResourceFlags {
            cpus: s("99999999999999999999"),
            ..Default::default()
        }),
        r#"--cpus "99999999999999999999": too many CPUs"#
    );
    assert_eq!(
        err(ResourceFlags {
            cpus: s("1.5"),
            cpu_period: Some(50_000),
            ..Default::default()
        }),
        r#"--cpus "1.5": conflicts with --cpu-period 50000: set one or the other"#
    );
    assert_eq!(
        err(ResourceFlags {
            cpus: s("1.5"),
            cpu_quota: Some(50_000),
            ..Default::default()
        }),
        r#"--cpus "1.5": conflicts with --cpu-quota 50000: set one or the other"#
    );
    // With the real host CPU count: one CPU is always available, a million is not.
    assert!(to_resources(&ResourceFlags {
        cpus: s("1"),
        ..Default::default()
    })
    .is_ok());
    let e = to_resources(&ResourceFlags {
        cpus: s("1000000"),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("CPUs available"), "{e}");
}

#[test]
fn cpu_period_and_quota() {
    let cpu = res(ResourceFlags {
        cpu_period: Some(50_000),
        cpu_quota: Some(25_000),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!((cpu.period(), cpu.quota()), (Some(50_000), Some(25_000)));
    let cpu = res(ResourceFlags {
        cpu_quota: Some(-1),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!((cpu.period(), cpu.quota()), (None, Some(-1)));
    for p in [999, 1_000_001] {
        assert_eq!(
            err(ResourceFlags {
                cpu_period: Some(p),
                ..Default::default()
            }),
            format!("--cpu-period \"{p}\": must be between 1000 and 1000000 µs (1ms to 1s)")
        );
    }
    for q in [999, 1, -2] {
        assert_eq!(
            err(ResourceFlags {
                cpu_quota: Some(q),
                ..Default::default()
            }),
            format!("--cpu-quota \"{q}\": must be at least 1000 µs (1ms), or -1 for unlimited")
        );
    }
}

#[test]
fn cpu_shares() {
    let shares = |n| {
        res(ResourceFlags {
            cpu_shares: Some(n),
            ..Default::default()
        })
        .cpu()
        .clone()
        .unwrap()
        .shares()
    };
    assert_eq!(shares(512), Some(512));
    assert_eq!(shares(1), Some(2));
    assert_eq!(shares(1_000_000), Some(262_144));
}

#[test]
fn cpusets() {
    let cpu = res(ResourceFlags {
        cpuset_cpus: s("0-3,5"),
        cpuset_mems: s("0"),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.cpus().as_deref(), Some("0-3,5"));
    assert_eq!(cpu.mems().as_deref(), Some("0"));
    for v in ["a", "1-", "-1", "3-1", "1,,2", "1 ,2", "0-3,"] {
        assert_eq!(
            err(ResourceFlags {
                cpuset_cpus: s(v),
                ..Default::default()
            }),
            format!("--cpuset-cpus {v:?}: invalid list (want numbers and ranges, e.g. 0-3,5)")
        );
    }
    assert!(err(ResourceFlags {
        cpuset_mems: s("x"),
        ..Default::default()
    })
    .starts_with("--cpuset-mems \"x\""));
}

#[test]
fn cpu_realtime() {
    let cpu = res(ResourceFlags {
        cpu_rt_period: Some(1_000_000),
        cpu_rt_runtime: Some(950_000),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(
        (cpu.realtime_period(), cpu.realtime_runtime()),
        (Some(1_000_000), Some(950_000))
    );
    let cpu = res(ResourceFlags {
        cpu_rt_runtime: Some(-1),
        ..Default::default()
    })
    .cpu()
    .clone()
    .unwrap();
    assert_eq!(cpu.realtime_runtime(), Some(-1));
    assert_eq!(
        err(ResourceFlags {
            cpu_rt_period: Some(1000),
            cpu_rt_runtime: Some(2000),
            ..Default::default()
        }),
        r#"--cpu-rt-runtime "2000": cannot be higher than --cpu-rt-period 1000"#
    );
    assert_eq!(
        err(ResourceFlags {
            cpu_rt_runtime: Some(-5),
            ..Default::default()
        }),
        r#"--cpu-rt-runtime "-5": must be positive, or -1 for unlimited"#
    );
}

#[test]
fn memory_limit() {
    let mem = res(ResourceFlags {
        memory: s("512m"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.limit(), Some(512 * MIB));
    // Docker's default swap: memory+swap = twice the memory.
    assert_eq!(mem.swap(), Some(1024 * MIB));
    let mem = res(ResourceFlags {
        memory: s("1.5g"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.limit(), Some(1_610_612_736));
    let mem = res(ResourceFlags {
        memory: s("6m"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.limit(), Some(6 * MIB));
    assert_eq!(
        err(ResourceFlags {
            memory: s("12x"),
            ..Default::default()
        }),
        r#"--memory "12x": invalid size: unknown unit "x""#
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("-1g"),
            ..Default::default()
        }),
        r#"--memory "-1g": invalid size: negative"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("abc"),
            ..Default::default()
        }),
        r#"--memory "abc": invalid size"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("4m"),
            ..Default::default()
        }),
        r#"--memory "4m": minimum memory limit allowed is 6MB"#
    );
}

#[test]
fn memory_swap() {
    let mem = res(ResourceFlags {
        memory: s("64m"),
        memory_swap: s("1g"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!((mem.limit(), mem.swap()), (Some(64 * MIB), Some(GIB)));
    // Equal: no swap at all.
    let mem = res(ResourceFlags {
        memory: s("64m"),
        memory_swap: s("64m"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.swap(), Some(64 * MIB));
    let mem = res(ResourceFlags {
        memory: s("64m"),
        memory_swap: s("-1"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.swap(), Some(-1));
    // -1 alone is allowed (docker too): unlimited swap, no memory limit.
    let mem = res(ResourceFlags {
        memory_swap: s("-1"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!((mem.limit(), mem.swap()), (None, Some(-1)));
    assert_eq!(
        err(ResourceFlags {
            memory: s("1g"),
            memory_swap: s("512m"),
            ..Default::default()
        }),
        r#"--memory-swap "512m": must be at least --memory 1g (it is memory plus swap)"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory_swap: s("1g"),
            ..Default::default()
        }),
        r#"--memory-swap "1g": requires --memory to be set"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("1g"),
            memory_swap: s("-2"),
            ..Default::default()
        }),
        r#"--memory-swap "-2": invalid size: negative"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("1g"),
            memory_swap: s("2q"),
            ..Default::default()
        }),
        r#"--memory-swap "2q": invalid size: unknown unit "q""#
    );
}

#[test]
fn memory_reservation() {
    let mem = res(ResourceFlags {
        memory: s("1g"),
        memory_reservation: s("512m"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.reservation(), Some(512 * MIB));
    let mem = res(ResourceFlags {
        memory: s("1g"),
        memory_reservation: s("1g"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(mem.reservation(), Some(GIB));
    // Alone: a soft limit without a hard one, no swap default.
    let mem = res(ResourceFlags {
        memory_reservation: s("200m"),
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!(
        (mem.limit(), mem.reservation(), mem.swap()),
        (None, Some(200 * MIB), None)
    );
    assert_eq!(
        err(ResourceFlags {
            memory: s("512m"),
            memory_reservation: s("1g"),
            ..Default::default()
        }),
        r#"--memory-reservation "1g": must not be more than --memory 512m (536870912 bytes)"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory_reservation: s("1m"),
            ..Default::default()
        }),
        r#"--memory-reservation "1m": minimum memory reservation allowed is 6MB"#
    );
    assert_eq!(
        err(ResourceFlags {
            memory_reservation: s("1z"),
            ..Default::default()
        }),
        r#"--memory-reservation "1z": invalid size: unknown unit "z""#
    );
}

#[test]
fn memory_swappiness_and_oom() {
    for v in [0, 60, 100] {
        let mem = res(ResourceFlags {
            memory_swappiness: Some(v),
            ..Default::default()
        })
        .memory()
        .unwrap();
        assert_eq!(mem.swappiness(), Some(v as u64));
    }
    for v in [101, -2] {
        assert_eq!(
            err(ResourceFlags {
                memory_swappiness: Some(v),
                ..Default::default()
            }),
            format!("--memory-swappiness \"{v}\": must be between 0 and 100 (or -1 for the default)")
        );
    }
    let mem = res(ResourceFlags {
        oom_kill_disable: true,
        ..Default::default()
    })
    .memory()
    .unwrap();
    assert_eq!((mem.disable_oom_killer(), mem.limit()), (Some(true), None));
}

#[test]
fn pids_limit() {
    let pids = |n| {
        res(ResourceFlags {
            pids_limit: Some(n),
            ..Default::default()
        })
        .pids()
        .unwrap()
        .limit()
    };
    assert_eq!(pids(100), 100);
    assert_eq!(pids(0), -1);
    assert_eq!(pids(-1), -1);
    assert_eq!(pids(-7), -1);
    assert!(res(ResourceFlags::default()).pids().is_none());
}

#[test]
fn blkio_weight() {
    for w in [10, 500, 1000] {
        let bio = res(ResourceFlags {
            blkio_weight: Some(w),
            ..Default::default()
        })
        .block_io()
        .clone()
        .unwrap();
        assert_eq!(bio.weight(), Some(w));
    }
    for w in [9, 1001] {
        assert_eq!(
            err(ResourceFlags {
                blkio_weight: Some(w),
                ..Default::default()
            }),
            format!("--blkio-weight \"{w}\": must be between 10 and 1000")
        );
    }
}

/// A block device node and its numbers, if this machine has one.
fn block_device() -> Option<(String, i64, i64)> {
    let dir = std::fs::read_dir("/dev").ok()?;
    let mut devs: Vec<_> = dir
        .flatten()
        .filter_map(|e| {
            let m = std::fs::metadata(e.path()).ok()?;
            m.file_type().is_block_device().then(|| {
                let p = e.path().to_string_lossy().into_owned();
                (
                    p,
                    nix::sys::stat::major(m.rdev()) as i64,
                    nix::sys::stat::minor(m.rdev()) as i64,
                )
            })
        })
        .collect();
    devs.sort();
    devs.into_iter().next()
}

#[test]
fn device_throttles() {
    let Some((dev, major, minor)) = block_device() else {
        println!("SKIPPED the block device assertions: no block device node in /dev");
        return;
    };
    let bio = res(ResourceFlags {
        device_read_bps: vec![format!("{dev}:1mb")],
        device_write_bps: vec![format!("{dev}:512k"), format!("{dev}:1024")],
        device_read_iops: vec![format!("{dev}:1000")],
        device_write_iops: vec![format!("{dev}:0")],
        ..Default::default()
    })
    .block_io()
    .clone()
    .unwrap();
    let one = |list: &Option<Vec<LinuxThrottleDevice>>| {
        list.as_ref()
            .unwrap()
            .iter()
            .map(|d| (d.major(), d.minor(), d.rate()))
            .collect::<Vec<_>>()
    };
    assert_eq!(one(bio.throttle_read_bps_device()), [(major, minor, 1 << 20)]);
    assert_eq!(
        one(bio.throttle_write_bps_device()),
        [(major, minor, 512 << 10), (major, minor, 1024)]
    );
    assert_eq!(one(bio.throttle_read_iops_device()), [(major, minor, 1000)]);
    assert_eq!(one(bio.throttle_write_iops_device()), [(major, minor, 0)]);
    assert_eq!(bio.weight(), None);

    let v = format!("{dev}:1x");
    assert_eq!(
        err(ResourceFlags {
            device_read_bps: vec![v.clone()],
            ..Default::default()
        }),
        format!("--device-read-bps {v:?}: invalid rate: invalid size: unknown unit \"x\"")
    );
    let v = format!("{dev}:1k");
    assert_eq!(
        err(ResourceFlags {
            device_write_iops: vec![v.clone()],
            ..Default::default()
        }),
        format!("--device-write-iops {v:?}: invalid rate: must be a non-negative integer")
    );
    let v = format!("{dev}:-5");
    assert_eq!(
        err(ResourceFlags {
            device_read_iops: vec![v.clone()],
            ..Default::default()
        }),
        format!("--device-read-iops {v:?}: invalid rate: must be a non-negative integer")
    );
}

#[test]
fn device_throttle_errors() {
    assert_eq!(
        err(ResourceFlags {
            device_read_bps: vec!["/dev/null:1mb".into()],
            ..Default::default()
        }),
        r#"--device-read-bps "/dev/null:1mb": /dev/null is not a block device"#
    );
    assert_eq!(
        err(ResourceFlags {
            device_write_bps: vec!["/dev/wrun-no-such-disk:1mb".into()],
            ..Default::default()
        }),
        concat!(
            r#"--device-write-bps "/dev/wrun-no-such-disk:1mb": "#,
            "stat /dev/wrun-no-such-disk: No such file or directory (os error 2)"
        )
    );
    assert_eq!(
        err(ResourceFlags {
            device_read_iops: vec!["/dev/sda".into()],
            ..Default::default()
        }),
        r#"--device-read-iops "/dev/sda": bad format (want DEVICE-PATH:RATE, e.g. /dev/sda:1mb)"#
    );
    assert_eq!(
        err(ResourceFlags {
            device_write_iops: vec!["/tmp/disk:100".into()],
            ..Default::default()
        }),
        r#"--device-write-iops "/tmp/disk:100": bad device path "/tmp/disk": must be under /dev/"#
    );
    assert_eq!(
        err(ResourceFlags {
            device_read_bps: vec!["/dev/null:-1mb".into()],
            ..Default::default()
        }),
        r#"--device-read-bps "/dev/null:-1mb": invalid rate: invalid size: negative"#
    );
}

#[test]
fn everything_together() {
    let r = res(ResourceFlags {
        cpus: s("2"),
        cpu_shares: Some(1024),
        cpuset_cpus: s("0-1"),
        memory: s("1g"),
        memory_swap: s("2g"),
        memory_reservation: s("768m"),
        memory_swappiness: Some(10),
        oom_kill_disable: true,
        pids_limit: Some(64),
        blkio_weight: Some(300),
        ..Default::default()
    });
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "cpu": {"shares": 1024, "quota": 200000, "period": 100000, "cpus": "0-1"},
            "memory": {"limit": 1073741824, "reservation": 805306368, "swap": 2147483648u64,
                       "swappiness": 10, "disableOOMKiller": true},
            "pids": {"limit": 64},
            "blockIO": {"weight": 300}
        })
    );
}
