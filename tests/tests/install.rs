//! Installing wrun as a user would: `make install` / `make uninstall` into a staging tree, and
//! the Debian package (`make deb`) installed on this machine with dpkg and removed again.

use wrun_tests::*;

/// The runtime under test and the workspace, when it is wrun with the shim built beside it
/// (what `make install` and `make deb` install); else None, the skip said with `not_wrun`.
fn built(not_wrun: &str) -> Option<(Runtime, &'static std::path::Path)> {
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip(not_wrun);
        return None;
    }
    if !rt.bin().parent().unwrap().join("containerd-shim-wrun-v1").exists() {
        skip("the shim is not built beside wrun (cargo build --workspace)");
        return None;
    }
    Some((rt, std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()))
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let o = run_cmd(std::process::Command::new("find").arg(dir).args(["-type", "f"]), None);
    let mut v: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.trim_start_matches(dir.to_str().unwrap()).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn make_install_puts_binaries_man_pages_and_completions_that_work_and_uninstall_takes_them_back() {
    let Some((rt, top)) = built("`make install` installs wrun itself") else {
        return;
    };
    let bin = rt.bin().parent().unwrap();
    let dest = TempDir::new("install");
    let make = |target: &str| {
        run_cmd(
            std::process::Command::new("make")
                .arg("-C")
                .arg(top)
                .arg(target)
                .arg(format!("DESTDIR={}", dest.path().display()))
                .arg("PREFIX=/usr")
                .arg(format!("BIN={}", bin.display())),
            None,
        )
    };
    assert_ok(&make("install"), "make install");
    let root = dest.join("usr");
    let files = files_under(dest.path());
    for want in [
        "/usr/bin/wrun",
        "/usr/bin/wrun-monitor",
        "/usr/bin/containerd-shim-wrun-v1",
        "/usr/share/man/man8/wrun.8",
        "/usr/share/man/man8/wrun-image.8",
        "/usr/share/man/man8/wrun-create.8",
        "/usr/share/bash-completion/completions/wrun",
        "/usr/share/zsh/site-functions/_wrun",
        "/usr/share/fish/vendor_completions.d/wrun.fish",
        "/usr/share/doc/wrun/examples/containerd-wrun.toml",
        "/usr/share/doc/wrun/examples/policy.json",
        "/usr/share/wrun/install-manifest",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} not installed: {files:?}");
    }
    // The installed binary runs, and finds its monitor beside it.
    let v = run_cmd(std::process::Command::new(root.join("bin/wrun")).arg("--version"), None);
    assert_ok(&v, "installed wrun --version");
    // Every man page renders.
    for f in files.iter().filter(|f| f.ends_with(".8")) {
        let o = run_cmd(
            std::process::Command::new("man")
                .arg("-l")
                .arg(dest.path().join(f.trim_start_matches('/')))
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80"),
            None,
        );
        assert_ok(&o, &format!("man -l {f}"));
        assert!(stdout(&o).contains("wrun"), "{f} renders empty: {}", show(&o));
    }
    // Each completion script loads in its shell and completes a subcommand.
    let comp = |p: &str| root.join(p).display().to_string();
    let bash = run_cmd(
        std::process::Command::new("bash").args([
            "-c",
            &format!(
                "source {} && complete -p wrun",
                comp("share/bash-completion/completions/wrun")
            ),
        ]),
        None,
    );
    assert_ok(&bash, "bash loads the completion");
    assert!(stdout(&bash).contains("wrun"), "{}", show(&bash));
    for (shell, script) in [
        (
            "zsh",
            format!(
                "autoload -Uz compinit && compinit -u && source {} && echo loaded",
                comp("share/zsh/site-functions/_wrun")
            ),
        ),
        (
            "fish",
            format!(
                "source {}; and complete -C 'wrun ima'",
                comp("share/fish/vendor_completions.d/wrun.fish")
            ),
        ),
    ] {
        if run_cmd(
            std::process::Command::new("sh").args(["-c", &format!("command -v {shell}")]),
            None,
        )
        .status
        .success()
        {
            let o = run_cmd(std::process::Command::new(shell).args(["-c", &script]), None);
            assert_ok(&o, &format!("{shell} loads the completion"));
            let want = if shell == "zsh" { "loaded" } else { "image" };
            assert!(stdout(&o).contains(want), "{shell}: {}", show(&o));
        } else {
            skip(&format!("{shell} is not installed (apt-get install {shell})"));
        }
    }
    assert_ok(&make("uninstall"), "make uninstall");
    assert_eq!(files_under(dest.path()), Vec::<String>::new(), "uninstall left files");
    let o = make("uninstall");
    assert_fails(&o, "a second uninstall");
    assert!(stderr(&o).contains("not installed there"), "{}", show(&o));
}

/// dpkg, waiting while another dpkg or apt (an unattended upgrade) holds its lock.
fn dpkg(args: &[&str]) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let o = run_cmd(std::process::Command::new("dpkg").args(args), None);
        if o.status.success() || !stderr(&o).contains("lock") || std::time::Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn installed_status() -> String {
    let o = run_cmd(
        std::process::Command::new("dpkg-query").args(["-W", "-f=${Status}", "wrun"]),
        None,
    );
    stdout(&o)
}

/// Takes the package off the machine whatever happens to the test.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        if installed_status().contains("installed") {
            let _ = dpkg(&["--purge", "wrun"]);
        }
    }
}

#[test]
fn the_debian_package_installs_runs_from_path_and_removes_cleanly() {
    let Some((rt, top)) = built("the package holds wrun itself") else {
        return;
    };
    let bin = rt.bin().parent().unwrap();
    for tool in ["dpkg", "dpkg-deb", "dpkg-query"] {
        let o = run_cmd(
            std::process::Command::new("sh").args(["-c", &format!("command -v {tool}")]),
            None,
        );
        if !o.status.success() {
            skip(&format!("{tool} is not installed: not a Debian system"));
            return;
        }
    }
    // Never replace what a user of this machine installed.
    if installed_status().contains("installed") {
        skip("a wrun package is already installed on this machine; it is left alone");
        return;
    }
    if std::path::Path::new("/usr/bin/wrun").exists() {
        skip("/usr/bin/wrun exists and belongs to no package; it is left alone");
        return;
    }
    let dir = TempDir::new("deb");
    let deb = dir.join("wrun.deb");
    // The debug binaries are large: gzip (not xz) keeps the packing to seconds.
    let o = Spawned::spawn(
        std::process::Command::new("make")
            .arg("-C")
            .arg(top)
            .arg("deb")
            .arg(format!("BIN={}", bin.display()))
            .arg(format!("DEB={}", deb.display()))
            .env("DEB_COMPRESS", "gzip"),
        None,
    )
    .wait_timeout(std::time::Duration::from_secs(300));
    assert_ok(&o, "make deb");

    // What it holds: the files of `make install` with PREFIX=/usr, Debian's way.
    let o = run_cmd(std::process::Command::new("dpkg-deb").arg("-c").arg(&deb), None);
    assert_ok(&o, "dpkg-deb -c");
    let contents = stdout(&o);
    for want in [
        "./usr/bin/wrun",
        "./usr/bin/wrun-monitor",
        "./usr/bin/containerd-shim-wrun-v1",
        "./usr/share/man/man8/wrun.8.gz",
        "./usr/share/man/man8/wrun-container.8.gz",
        "./usr/share/bash-completion/completions/wrun",
        "./usr/share/zsh/vendor-completions/_wrun",
        "./usr/share/fish/vendor_completions.d/wrun.fish",
        "./usr/share/doc/wrun/copyright",
        "./usr/share/doc/wrun/examples/containerd-wrun.toml",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(want)),
            "{want} not in the package:\n{contents}"
        );
    }
    assert!(!contents.contains("install-manifest"), "{contents}");
    for l in contents.lines() {
        assert!(l.contains(" root/root "), "a file not owned by root: {l}");
    }
    let o = run_cmd(
        std::process::Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg("Package"),
        None,
    );
    assert_eq!(stdout(&o).trim(), "wrun", "{}", show(&o));

    let _purge = Purge;
    let o = dpkg(&["-i", deb.to_str().unwrap()]);
    assert_ok(&o, "dpkg -i");
    assert!(
        installed_status().contains("install ok installed"),
        "{}",
        installed_status()
    );

    // From PATH, as a user would run it; its man page is found by name.
    let path = "/usr/sbin:/usr/bin:/sbin:/bin";
    let o = run_cmd(
        std::process::Command::new("sh")
            .args(["-c", "command -v wrun && wrun --version"])
            .env("PATH", path),
        None,
    );
    assert_ok(&o, "wrun --version from PATH");
    let out = stdout(&o);
    assert!(out.starts_with("/usr/bin/wrun\n"), "{}", show(&o));
    assert!(out.contains("wrun version "), "{}", show(&o));
    let o = run_cmd(
        std::process::Command::new("man").args(["-w", "wrun"]).env("PATH", path),
        None,
    );
    assert_ok(&o, "man -w wrun");
    assert_eq!(stdout(&o).trim(), "/usr/share/man/man8/wrun.8.gz", "{}", show(&o));

    // Removed, it leaves none of its files and none of the directories only it had.
    let o = dpkg(&["-L", "wrun"]);
    assert_ok(&o, "dpkg -L wrun");
    let listed: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| std::path::Path::new(l).is_file())
        .map(String::from)
        .collect();
    assert!(listed.len() >= 10, "dpkg -L lists {listed:?}");
    let o = dpkg(&["--purge", "wrun"]);
    assert_ok(&o, "dpkg --purge wrun");
    assert!(!installed_status().contains("install ok"), "{}", installed_status());
    for f in &listed {
        assert!(!std::path::Path::new(f).exists(), "{f} is left after dpkg --purge");
    }
    for d in ["/usr/share/doc/wrun", "/usr/share/wrun"] {
        assert!(!std::path::Path::new(d).exists(), "{d} is left after dpkg --purge");
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn the_readme_starts_with_the_two_commands_and_every_docs_link_resolves() {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(top.join("README.md")).unwrap();
    // The first block: exactly the set-up-and-demo command and the test command CI runs.
    let block: Vec<&str> = readme
        .split("```")
        .nth(1)
        .expect("README.md has a code block")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(block.len(), 2, "README's first block: {block:?}");
    assert!(block[0].starts_with("make demo "), "{block:?}");
    assert!(block[1].starts_with("make test "), "{block:?}");
    let ci = std::fs::read_to_string(top.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.starts_with("make test ")),
        ".ci/run does not call make test"
    );
    assert!(!readme.contains("issue #"), "README.md names issues a user cannot use");

    let mut pages = vec![top.join("README.md")];
    for e in std::fs::read_dir(top.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')').unwrap()];
            if target.starts_with("http") || target.contains(' ') {
                continue;
            }
            let (file, frag) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(path.exists(), "{}: link to {target}: no such file", page.display());
            if !frag.is_empty() {
                let body = std::fs::read_to_string(&path).unwrap();
                let anchors: Vec<String> = body
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    anchors.iter().any(|a| a == frag),
                    "{}: link to {target}: no such heading in {} ({anchors:?})",
                    page.display(),
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links checked");
}
