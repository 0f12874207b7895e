//! Sizes and the CPU flags.
use super::*;

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
