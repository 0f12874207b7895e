//! Memory, pids and block IO flags, and all flags together.
use super::*;

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
