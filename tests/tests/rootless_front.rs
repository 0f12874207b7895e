//! The front end without root, as podman's: a throwaway user pulls from the local registry
//! into its own store (`~/.local/share/wrun`), runs native and wasm containers from it inside
//! its rootless session, publishes a port through pasta on 127.0.0.1, and `system reset`
//! leaves nothing; hostile layers (ids the session does not map, device nodes, unreadable
//! trees, setuid files) get what they would under podman.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use wrun_tests::*;

/// A user, its registry and the images the tests pull.
struct Setup {
    u: RootlessUser,
    rt: Runtime,
    reg: Registry,
    work: TempDir,
}

impl Setup {
    /// None (with the skip line) where the rootless front end cannot be tried.
    fn new() -> Option<Setup> {
        let rt = Runtime::new();
        if rt.kind() != RuntimeKind::Wrun {
            skip("the front end is wrun's");
            return None;
        }
        if !newuidmap_installed() {
            skip("newuidmap/newgidmap are not installed (apt-get install uidmap)");
            return None;
        }
        let reg = Registry::start(None)?;
        let u = rootless_user()?;
        Some(Setup {
            u,
            rt,
            reg,
            work: TempDir::new("rootless-front"),
        })
    }

    /// Push an image of `layers` with image config `config` as `repo:tag`; its full name.
    fn push(&self, repo_tag: &str, layers: &[Vec<u8>], config: serde_json::Value) -> String {
        let f = self.work.join(format!("{}.tar", repo_tag.replace([':', '/'], "_")));
        fs::write(
            &f,
            image_archive(layers, serde_json::json!({ "config": config }), repo_tag),
        )
        .unwrap();
        self.reg.skopeo_push(&f, repo_tag, None);
        format!("{}/{repo_tag}", self.reg.addr)
    }

    /// `wrun ARGS` as the user.
    fn wrun(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.u.command(self.rt.bin(), args), None)
    }

    fn data_root(&self) -> PathBuf {
        self.u.home.join(".local/share/wrun")
    }

    /// `system reset --force`, then nothing of the user's is left: no data root, no process
    /// (the session's pause process and every pasta ended), no container state.
    #[track_caller]
    fn reset_leaves_nothing(&self) {
        let o = self.wrun(&["system", "reset", "--force"]);
        assert_ok(&o, "system reset --force");
        assert!(!self.data_root().exists(), "{} is left", self.data_root().display());
        let t = Instant::now();
        while !self.u.processes().is_empty() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<String> = self
            .u
            .processes()
            .iter()
            .map(|p| fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
            .collect();
        assert!(left.is_empty(), "processes of the user left: {left:?}");
    }
}

/// The tests' busybox rootfs as a layer (root-owned, as tar writes it as root).
fn busybox_layer() -> Vec<u8> {
    let b = Bundle::busybox();
    let o = run_cmd(
        std::process::Command::new("tar").args(["-C", b.rootfs().to_str().unwrap(), "-cf", "-", "."]),
        None,
    );
    assert_ok(&o, "tar the busybox rootfs");
    o.stdout
}

fn entry(name: &str, kind: EntryKind, mode: u32, uid: u32) -> TarEntry {
    let mut e = TarEntry::new(name, kind);
    e.mode = mode;
    e.uid = uid;
    e.gid = uid;
    e
}

#[test]
fn a_user_pulls_and_runs_native_and_wasm_images_in_its_own_store() {
    let Some(s) = Setup::new() else { return };
    let mut extra = Tarball::new();
    extra.entry(entry("home", EntryKind::Dir, 0o755, 0));
    extra.entry(entry("home/app", EntryKind::File(b"app\n".to_vec()), 0o644, 1000));
    extra.entry(entry("etc/gone", EntryKind::File(b"x".to_vec()), 0o644, 0));
    let mut top = Tarball::new();
    top.entry(entry("etc/.wh.gone", EntryKind::File(Vec::new()), 0o644, 0));
    let img = s.push(
        "rootless/bb:1",
        &[busybox_layer(), extra.finish(), top.finish()],
        serde_json::json!({"Cmd": ["sh", "-c", "id -u; stat -c %u /home/app; ls /etc/gone 2>&1 || true"]}),
    );
    let o = s.wrun(&["image", "pull", "-q", &img]);
    assert_ok(&o, "image pull as the user");
    // The user's store, not root's: mode 0700 (a setuid file of an image must not be reachable
    // by other users), the owner shifted into the user's range on the host.
    let root = s.data_root();
    let md = fs::metadata(&root).expect("the user's data root ~/.local/share/wrun");
    assert_eq!((md.uid(), md.mode() & 0o777), (s.u.uid, 0o700));
    let app = fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("home/app"))
        .find(|p| p.exists())
        .expect("the layer holding home/app");
    assert_eq!(
        fs::metadata(&app).unwrap().uid(),
        s.u.sub_start + 999,
        "container uid 1000 on the host"
    );

    let o = s.wrun(&["container", "run", "--rm", "--network", "none", &img]);
    assert_ok(&o, "container run --network none");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{}", show(&o));
    assert_eq!(lines.get(1), Some(&"1000"), "{}", show(&o));
    assert!(
        lines.get(2).is_some_and(|l| l.contains("No such file")),
        "the whiteout: {}",
        show(&o)
    );
    // Where the kernel refuses the overlay, fuse-overlayfs mounts the same layers: the whiteout
    // and the owners read the same.
    match fs::metadata("/dev/fuse") {
        Ok(m) if m.mode() & 0o006 == 0o006 && Path::new("/usr/bin/fuse-overlayfs").exists() => {
            let o = run_cmd(
                s.u.command(s.rt.bin(), &["container", "run", "--rm", "--network", "none", &img])
                    .env("WRUN_MOUNT_PROGRAM", "fuse-overlayfs"),
                None,
            );
            assert_ok(&o, "container run on fuse-overlayfs");
            assert_eq!(stdout(&o), out, "the same view through fuse-overlayfs");
        }
        _ => skip("fuse-overlayfs part: /dev/fuse is not usable by users or fuse-overlayfs is missing"),
    }
    // The host's processes are not root's: the container's uid 0 is the user.
    let o = s.wrun(&[
        "container",
        "run",
        "--rm",
        "--network",
        "host",
        &img,
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_ok(&o, "container run --network host");
    assert!(
        stdout(&o)
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .eq(["0", &s.u.uid.to_string(), "1"]),
        "{}",
        show(&o)
    );

    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let art = s.work.join("wasm.tar");
    fs::write(&art, wasm_artifact(&module, "rootless/hello-wasm:1")).unwrap();
    s.reg.skopeo_push(&art, "rootless/hello-wasm:1", None);
    let wasm = format!("{}/rootless/hello-wasm:1", s.reg.addr);
    let o = s.wrun(&["container", "run", "--rm", "--network", "none", &wasm]);
    assert_ok(&o, "a wasm image as the user");
    assert!(stdout(&o).lines().any(|l| l == "hello from wasm"), "{}", show(&o));
    // The compiled module is cached in the user's store, not root's.
    assert!(root.join("wasm-cache").is_dir(), "no wasm cache in {}", root.display());
    s.reset_leaves_nothing();
}

/// Whether pasta can run for an unprivileged user here: it is installed and /dev/net/tun is
/// usable by everyone (udev makes it 0666; hosts without udev may leave it 0600).
fn pasta_unusable() -> Option<String> {
    if !["/usr/bin/pasta", "/usr/local/bin/pasta"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        return Some("pasta is not installed (apt-get install passt)".into());
    }
    match fs::metadata("/dev/net/tun") {
        Ok(m) if m.mode() & 0o006 == 0o006 => None,
        Ok(m) => Some(format!(
            "/dev/net/tun is mode {:o}: users cannot open it (udev makes it 0666)",
            m.mode() & 0o777
        )),
        Err(e) => Some(format!("/dev/net/tun: {e}")),
    }
}

#[test]
fn a_published_port_answers_on_127_0_0_1_through_pasta_and_host_loopback_stays_closed() {
    if let Some(why) = pasta_unusable() {
        skip(&why);
        return;
    }
    let Some(s) = Setup::new() else { return };
    let img = s.push("rootless/bb:2", &[busybox_layer()], serde_json::json!({"Cmd": ["sh"]}));
    // A service of the host on its loopback: the container must not reach it.
    let secret = TcpListener::bind("127.0.0.1:0").unwrap();
    let secret_port = secret.local_addr().unwrap().port();
    secret.set_nonblocking(true).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        "nc -w 2 127.0.0.1 {secret_port} </dev/null && echo reached-host-loopback; \
         gw=$(ip route | awk '/default/ {{print $3}}'); echo gateway=$gw; \
         nc -w 2 $gw {secret_port} </dev/null && echo reached-host-loopback-via-gateway; \
         while true; do echo served-by-rootless | nc -l -p 8080; done"
    );
    let publish = format!("127.0.0.1:{port}:8080");
    let o = s.wrun(&[
        "container",
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        &img,
        "sh",
        "-c",
        &script,
    ]);
    assert_ok(&o, "container run -d -p");
    // exec from a later command: the session's pid namespaces can be entered, not left.
    let o = s.wrun(&["container", "exec", "web", "id", "-u"]);
    assert_eq!(stdout(&o), "0\n", "{}", show(&o));
    let o = s.wrun(&["container", "port", "web"]);
    assert_eq!(
        stdout(&o).trim(),
        format!("8080/tcp -> 127.0.0.1:{port}"),
        "{}",
        show(&o)
    );
    let mut got = String::new();
    let t = Instant::now();
    while !got.contains("served-by-rootless") && t.elapsed() < Duration::from_secs(10) {
        got.clear();
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = c.write_all(b"");
            let _ = c.read_to_string(&mut got);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(got.contains("served-by-rootless"), "127.0.0.1:{port} answered {got:?}");
    assert!(
        secret.accept().is_err(),
        "the container reached the host's loopback service"
    );
    let logs = stdout(&s.wrun(&["container", "logs", "web"]));
    assert!(
        logs.contains("gateway=") && !logs.contains("reached-host-loopback"),
        "{logs}"
    );
    // Taken down with the run: once stop returns the port is closed and pasta gone; start
    // brings both back.
    assert_ok(&s.wrun(&["container", "stop", "-t", "1", "web"]), "stop");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open after stop"
    );
    assert_ok(&s.wrun(&["container", "start", "web"]), "start");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "port {port} closed after start"
    );
    assert_ok(&s.wrun(&["container", "rm", "-f", "web"]), "rm -f");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open after rm -f"
    );
    s.reset_leaves_nothing();
}

#[test]
fn hostile_layers_in_a_rootless_store() {
    let Some(s) = Setup::new() else { return };
    // Owned by an id past the user's 65536: the session cannot map it. The pull fails in one
    // line naming /etc/subuid, and nothing of the image is kept.
    let mut far = Tarball::new();
    far.entry(entry("far", EntryKind::File(b"f".to_vec()), 0o644, 200_000));
    let img = s.push(
        "rootless/far:1",
        &[busybox_layer(), far.finish()],
        serde_json::json!({"Cmd": ["true"]}),
    );
    let o = s.wrun(&["image", "pull", "-q", &img]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("200000") && e.contains("/etc/subuid"), "{e}");
    let o = s.wrun(&["image", "ls", "-q"]);
    assert_eq!(stdout(&o).trim(), "", "{}", show(&o));
    let kept: Vec<PathBuf> = ["layers/sha256", "tmp"]
        .iter()
        .flat_map(|d| fs::read_dir(s.data_root().join(d)).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.starts_with(s.data_root().join("tmp")) || p.join("far").exists())
        .collect();
    assert!(kept.is_empty(), "left of the refused layer: {kept:?}");

    // Device nodes are skipped (the user namespace cannot make them); a tree the image made
    // unreadable (mode 000) and a setuid file pull and run.
    let mut bad = Tarball::new();
    bad.entry(entry("dev", EntryKind::Dir, 0o755, 0));
    bad.entry(entry("dev/sda", EntryKind::Block(8, 0), 0o666, 0));
    bad.entry(entry("dev/mem", EntryKind::Char(1, 1), 0o666, 0));
    bad.entry(entry("locked", EntryKind::Dir, 0o000, 0));
    bad.entry(entry("locked/inner", EntryKind::Dir, 0o000, 0));
    bad.entry(entry("locked/inner/f", EntryKind::File(b"x".to_vec()), 0o000, 0));
    bad.entry(entry(
        "suid",
        EntryKind::File(b"#!/bin/sh\nid -u\n".to_vec()),
        0o4755,
        0,
    ));
    let img = s.push(
        "rootless/bad:1",
        &[busybox_layer(), bad.finish()],
        serde_json::json!({"Cmd": ["sh", "-c", "ls /locked/inner; ls -l /suid"]}),
    );
    assert_ok(
        &s.wrun(&["image", "pull", "-q", &img]),
        "pull an image with device nodes",
    );
    let layer = fs::read_dir(s.data_root().join("layers/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("suid").exists())
        .expect("the layer with /suid");
    assert!(!layer.join("dev/sda").exists() && !layer.join("dev/mem").exists());
    // The setuid file is the user's on the host, below a directory only the user can enter.
    let md = fs::metadata(layer.join("suid")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o4000), (s.u.uid, 0o4000));
    let o = s.wrun(&["container", "run", "--rm", "--network", "none", &img]);
    assert_ok(&o, "run it");
    assert!(
        stdout(&o).contains("f\n") && stdout(&o).contains("-rwsr-xr-x"),
        "{}",
        show(&o)
    );
    // The user cannot remove the unreadable tree from the host side ...
    let o = run_cmd(
        &mut s
            .u
            .command(Path::new("/bin/rm"), &["-rf", layer.join("locked").to_str().unwrap()]),
        None,
    );
    assert!(
        !o.status.success(),
        "rm -rf of a mode-000 tree as the user: {}",
        show(&o)
    );
    assert!(layer.join("locked").exists());
    // ... but `image rm` runs in the session, where every owner in the store is mapped.
    assert_ok(&s.wrun(&["image", "rm", &img]), "image rm");
    assert!(!layer.exists(), "{} left after image rm", layer.display());
    assert_eq!(fs::metadata(s.data_root()).unwrap().permissions().mode() & 0o777, 0o700);
    s.reset_leaves_nothing();
}

#[test]
fn what_needs_root_is_refused_in_one_line_and_reset_wants_force() {
    let Some(s) = Setup::new() else { return };
    let img = s.push(
        "rootless/bb:3",
        &[busybox_layer()],
        serde_json::json!({"Cmd": ["true"]}),
    );
    assert_ok(&s.wrun(&["image", "pull", "-q", &img]), "pull");
    let o = s.wrun(&["container", "run", "--rm", "--network", "bridge", &img]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("bridge networks need root") && e.contains("pasta"), "{e}");
    // On pasta the host is not reachable, so host-gateway names nothing: refused, not dropped.
    let o = s.wrun(&["container", "run", "--rm", "--add-host", "h:host-gateway", &img]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(stderr(&o).contains("host-gateway"), "{}", show(&o));
    let o = s.wrun(&["container", "ls", "-aq"]);
    assert_eq!(stdout(&o).trim(), "", "nothing left of the refused runs: {}", show(&o));
    let o = s.wrun(&["system", "reset"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("--force"), "{}", show(&o));
    assert!(
        s.data_root().join("images").exists(),
        "reset without --force removed something"
    );
    s.reset_leaves_nothing();
}

/// A one-question DNS answer server on `sock`: every A query gets `ip`, until the test ends.
fn dns_answers(sock: std::net::UdpSocket, ip: [u8; 4]) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            // Header (12 bytes), then the question: labels up to the root, type, class.
            let Some(end) = buf[12..n].iter().position(|b| *b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let mut r = buf[..end].to_vec();
            r[2] = 0x81; // a response, recursion desired
            r[3] = 0x80; // recursion available, no error
            r[6..8].copy_from_slice(&[0, 1]); // one answer
            r[8..12].copy_from_slice(&[0, 0, 0, 0]);
            // Only A (type 1) questions get the address; AAAA gets an empty answer.
            if buf[end - 4..end - 2] == [0, 1] {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&ip);
            } else {
                r[6..8].copy_from_slice(&[0, 0]);
            }
            let _ = sock.send_to(&r, from);
        }
    });
}

/// On a host whose resolver is on its own loopback (systemd-resolved's 127.0.0.53), a container
/// cannot reach it: it gets pasta's DNS forwarder as its nameserver, and a name resolves
/// through the host's resolver.
#[test]
fn a_host_resolver_on_loopback_is_reached_through_pastas_dns_forwarder() {
    if let Some(why) = pasta_unusable() {
        skip(&why);
        return;
    }
    let Ok(dns) = std::net::UdpSocket::bind("127.0.0.1:53") else {
        skip("127.0.0.1:53 is taken on this host (the test runs a resolver there)");
        return;
    };
    let Some(s) = Setup::new() else { return };
    dns_answers(dns, [192, 0, 2, 55]);
    let img = s.push("rootless/bb:4", &[busybox_layer()], serde_json::json!({"Cmd": ["sh"]}));
    // Every command of the user in a mount namespace where /etc/resolv.conf names only the
    // loopback resolver; the session made by the first one keeps that view.
    let fake = s.work.join("resolv.conf");
    fs::write(&fake, "nameserver 127.0.0.1\n").unwrap();
    let wrun = |args: &[&str]| -> Output {
        let mut c = std::process::Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
            .arg(&fake)
            .arg("setpriv")
            .arg(format!("--reuid={}", s.u.uid))
            .arg(format!("--regid={}", s.u.gid))
            .args(["--clear-groups", "--"])
            .arg(s.rt.bin())
            .args(args)
            .env_clear()
            .env("HOME", &s.u.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", &s.u.runtime_dir)
            .current_dir("/");
        run_cmd(&mut c, None)
    };
    assert_ok(&wrun(&["image", "pull", "-q", &img]), "pull");
    let o = wrun(&[
        "container",
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup wrun-dns-test.example",
    ]);
    assert_ok(&o, "nslookup in the container");
    let out = stdout(&o);
    assert!(out.contains("nameserver 169.254.1.1"), "{}", show(&o));
    assert!(!out.contains("nameserver 127.0.0.1"), "{}", show(&o));
    assert!(out.contains("192.0.2.55"), "the host's resolver answered: {}", show(&o));
    assert_ok(&wrun(&["system", "reset", "--force"]), "reset");
    s.reset_leaves_nothing();
}
