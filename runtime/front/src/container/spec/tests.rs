use super::*;

fn opts() -> RunOptions {
    RunOptions::default()
}

#[test]
fn argv_follows_dockers_entrypoint_and_cmd_rules() {
    let cfg = json!({"Entrypoint": ["/bin/app", "--serve"], "Cmd": ["--port", "80"]});
    assert_eq!(
        argv(&cfg, &opts(), None).unwrap(),
        ["/bin/app", "--serve", "--port", "80"]
    );
    let o = RunOptions {
        command: vec!["--port".into(), "81".into()],
        ..opts()
    };
    assert_eq!(
        argv(&cfg, &o, None).unwrap(),
        ["/bin/app", "--serve", "--port", "81"],
        "COMMAND replaces Cmd"
    );
    let o = RunOptions {
        entrypoint: Some("sh".into()),
        ..opts()
    };
    assert_eq!(
        argv(&cfg, &o, None).unwrap(),
        ["sh"],
        "--entrypoint drops the image's Cmd"
    );
    let o = RunOptions {
        entrypoint: Some(String::new()),
        command: vec!["true".into()],
        ..opts()
    };
    assert_eq!(argv(&cfg, &o, None).unwrap(), ["true"], "--entrypoint '' clears it");
    assert_eq!(
        argv(&json!({}), &opts(), Some("/module.wasm")).unwrap(),
        ["/module.wasm"]
    );
    let e = argv(&json!({}), &opts(), None).unwrap_err().to_string();
    assert!(e.contains("no command"), "{e}");
}

#[test]
fn environment_is_the_images_then_env_files_then_flags() {
    let dir = std::env::temp_dir().join(format!("wrun-front-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("env");
    std::fs::write(&f, "# comment\n\nB=from-file\nC=file\n").unwrap();
    std::env::set_var("WRUN_FRONT_TEST_HOST", "host-value");
    let o = RunOptions {
        env: vec![
            "C=flag".into(),
            "WRUN_FRONT_TEST_HOST".into(),
            "WRUN_FRONT_TEST_UNSET".into(),
        ],
        env_file: vec![f],
        tty: true,
        ..opts()
    };
    std::env::set_var("WRUN_FRONT_TEST_SECRET", "host-secret");
    let env = environment(
        &[
            "PATH=/bin".into(),
            "A=image".into(),
            "B=image".into(),
            "WRUN_FRONT_TEST_SECRET".into(),
        ],
        &o,
        "h1",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        env,
        [
            "PATH=/bin",
            "HOSTNAME=h1",
            "A=image",
            "B=from-file",
            "C=flag",
            "WRUN_FRONT_TEST_HOST=host-value",
            "TERM=xterm"
        ],
        "a bare KEY in the image's Env does not take the host's value"
    );
    let e = environment(
        &[],
        &RunOptions {
            env: vec!["=x".into()],
            ..opts()
        },
        "h",
    )
    .unwrap_err();
    assert!(e.to_string().contains("-e \"=x\""), "{e}");
}

#[test]
fn capabilities_are_dockers_default_with_adds_and_drops() {
    let c = capabilities(&opts()).unwrap();
    assert_eq!(c.len(), 14);
    let o = RunOptions {
        cap_add: vec!["net_admin".into(), "CAP_SYS_PTRACE".into()],
        cap_drop: vec!["chown".into()],
        ..opts()
    };
    let c = capabilities(&o).unwrap();
    assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && c.contains(&"CAP_SYS_PTRACE".to_string()));
    assert!(!c.contains(&"CAP_CHOWN".to_string()));
    let o = RunOptions {
        cap_drop: vec!["ALL".into()],
        cap_add: vec!["KILL".into()],
        ..opts()
    };
    assert_eq!(capabilities(&o).unwrap(), ["CAP_KILL"]);
    let e = capabilities(&RunOptions {
        cap_add: vec!["NET_WIZARD".into()],
        ..opts()
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "--cap-add \"NET_WIZARD\": no such capability");
}

#[test]
fn volumes_mounts_and_tmpfs_parse_and_bad_ones_name_the_flag() {
    assert_eq!(
        parse_volume("/srv:/data:ro").unwrap(),
        UserMount::Bind {
            src: Source::Host("/srv".into()),
            dst: "/data".into(),
            ro: true
        }
    );
    assert_eq!(
        parse_volume("cache:/c").unwrap(),
        UserMount::Bind {
            src: Source::Named("cache".into()),
            dst: "/c".into(),
            ro: false
        }
    );
    assert!(matches!(
        parse_volume("/anon").unwrap(),
        UserMount::Bind {
            src: Source::Anonymous,
            ..
        }
    ));
    for bad in ["/srv:data", "/srv:/", "/srv:/a/../b", "a:b:c:d", "/s:/d:bogus", "-x:/d"] {
        let e = parse_volume(bad).unwrap_err().to_string();
        assert!(e.starts_with("-v "), "{bad}: {e}");
    }
    assert_eq!(
        parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap(),
        UserMount::Tmpfs {
            dst: "/t".into(),
            options: vec![
                "noexec".into(),
                "nosuid".into(),
                "nodev".into(),
                "size=1048576".into(),
                "mode=1777".into()
            ]
        }
    );
    assert_eq!(
        parse_mount("type=bind,src=/srv,dst=/d,readonly").unwrap(),
        UserMount::Bind {
            src: Source::Host("/srv".into()),
            dst: "/d".into(),
            ro: true
        }
    );
    for bad in [
        "type=bind,target=/d",
        "type=nfs,target=/d",
        "target=/d,colour=red",
        "type=tmpfs",
    ] {
        let e = parse_mount(bad).unwrap_err().to_string();
        assert!(e.starts_with("--mount "), "{bad}: {e}");
    }
    let e = user_mounts(
        &json!({}),
        &RunOptions {
            volumes: vec!["/no/such/dir/for/wrun:/d".into()],
            ..opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/no/such/dir/for/wrun") && e.contains("no such file"), "{e}");
    let m = user_mounts(
        &json!({"Volumes": {"/data": {}, "/t": {}}}),
        &RunOptions {
            tmpfs: vec!["/t".into()],
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        m.len(),
        2,
        "the image's /data becomes an anonymous volume; /t is the flag's: {m:?}"
    );
}

#[test]
fn flags_that_cannot_work_are_refused_before_anything_is_made() {
    let refused = |o: RunOptions, want: &str| {
        let e = check_flags(&o).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    };
    refused(
        RunOptions {
            name: Some("-bad".into()),
            ..opts()
        },
        "--name",
    );
    refused(
        RunOptions {
            network: Some("host".into()),
            publish: vec!["80".into()],
            ..opts()
        },
        "--publish",
    );
    refused(
        RunOptions {
            publish: vec!["80/icmp".into()],
            ..opts()
        },
        "--publish",
    );
    refused(
        RunOptions {
            dns: vec!["dns.example".into()],
            ..opts()
        },
        "--dns",
    );
    refused(
        RunOptions {
            add_host: vec!["db".into()],
            ..opts()
        },
        "--add-host",
    );
    refused(
        RunOptions {
            security_opt: vec!["seccomp=/p.json".into()],
            ..opts()
        },
        "seccomp",
    );
    refused(
        RunOptions {
            storage_opt: vec!["size=1G".into()],
            ..opts()
        },
        "cannot enforce a size",
    );
    refused(
        RunOptions {
            ulimits: vec!["nofile=10:5".into()],
            ..opts()
        },
        "soft limit is above",
    );
    refused(
        RunOptions {
            ulimits: vec!["files=10".into()],
            ..opts()
        },
        "unknown limit",
    );
    refused(
        RunOptions {
            oom_score_adj: Some(2000),
            ..opts()
        },
        "--oom-score-adj",
    );
    refused(
        RunOptions {
            stop_signal: Some("SIGNOPE".into()),
            ..opts()
        },
        "--stop-signal",
    );
    refused(
        RunOptions {
            pid: Some("container:x".into()),
            ..opts()
        },
        "--pid",
    );
    let r = ResourceFlags {
        memory: Some("1k".into()),
        ..Default::default()
    };
    refused(RunOptions { resources: r, ..opts() }, "-m");
    let w = check_flags(&RunOptions {
        kernel_memory: Some("50m".into()),
        ..opts()
    })
    .unwrap();
    assert!(w[0].contains("--kernel-memory"), "{w:?}");
    assert_eq!(
        ulimit("nofile=1024:2048").unwrap(),
        json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048})
    );
}

#[test]
fn resolv_conf_drops_loopback_nameservers_off_the_host_network() {
    let text = resolv_conf(false, &RunOptions::default());
    assert!(!text.lines().any(|l| l.starts_with("nameserver 127.")), "{text}");
    let o = RunOptions {
        dns: vec!["192.0.2.53".into()],
        dns_search: vec!["example.test".into()],
        dns_option: vec!["ndots:2".into()],
        ..RunOptions::default()
    };
    let text = resolv_conf(false, &o);
    let ns: Vec<&str> = text.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(ns, ["nameserver 192.0.2.53"], "{text}");
    assert!(
        text.contains("search example.test\n") && text.contains("options ndots:2\n"),
        "{text}"
    );
}

#[test]
fn add_host_takes_names_and_addresses_or_the_gateway() {
    assert_eq!(
        add_host("db:192.0.2.9").unwrap(),
        ("db".into(), Some("192.0.2.9".parse().unwrap()))
    );
    assert_eq!(add_host("db=192.0.2.9").unwrap().1, Some("192.0.2.9".parse().unwrap()));
    assert_eq!(
        add_host("v6:[2001:db8::1]").unwrap().1,
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(add_host("gw:host-gateway").unwrap(), ("gw".into(), None));
    for bad in ["db", ":1.2.3.4", "d b:1.2.3.4", "db:999.1.1.1", "db:"] {
        assert!(add_host(bad).is_err(), "{bad}");
    }
    let h = hosts_file(
        "abc",
        Some("10.90.0.5".parse().unwrap()),
        &[("db".into(), "192.0.2.9".into())],
    );
    assert!(h.contains("10.90.0.5\tabc\n") && h.ends_with("192.0.2.9\tdb\n"), "{h}");
}
