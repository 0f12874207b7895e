//! `container run --pull always|missing|never` and `--platform` against a real registry
//! (Debian's docker-registry on 127.0.0.1, filled by skopeo).

use super::*;

impl Front {
    /// Push an image of busybox with `/version` holding `v` to the registry as `repo_tag`.
    fn push_version(&self, reg: &Registry, repo_tag: &str, v: &str) {
        let layer = self.busybox_layer(&[("/version", v)]);
        let archive = self.work.join(format!("v{v}.tar"));
        fs::write(
            &archive,
            image_archive(&[layer], serde_json::json!({"config": {"Cmd": ["sh"]}}), "x:1"),
        )
        .unwrap();
        reg.skopeo_push(&archive, repo_tag, None);
    }
}

#[test]
fn pull_policies_fetch_when_missing_always_or_never() {
    let Some(f) = Front::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let r = format!("{}/t/bb:1", reg.addr);
    f.push_version(&reg, "t/bb:1", "1");
    // never: not in the store, refused; nothing pulled, nothing made.
    f.refused(&["--pull", "never", &r, "true"], "not in the store");
    assert_eq!(stdout(&f.image(&["ls", "-q"])).trim(), "");
    // missing (the default): pulled, then run; the pull says nothing on stdout (the
    // container's).
    let o = f.container(&["run", "--rm", "--network", "none", &r, "cat", "/version"]);
    assert_ok(&o, "run with the default --pull missing");
    assert_eq!(stdout(&o), "1");
    // A new image under the same tag: missing keeps the stored one, always fetches it.
    f.push_version(&reg, "t/bb:1", "2");
    assert_eq!(
        f.run_ok(&["--network", "none", "--pull", "missing", &r, "cat", "/version"]),
        "1"
    );
    assert_eq!(
        f.run_ok(&["--network", "none", "--pull", "always", &r, "cat", "/version"]),
        "2"
    );
    // A platform the image does not have: one line, nothing made.
    f.refused(&["--pull", "always", "--platform", "linux/s390x", &r, "true"], "s390x");
    f.refused(&["--platform", "nonsense", &r, "true"], "--platform");
    // The registry down: always fails in one line; missing runs the stored image.
    drop(reg);
    f.refused(&["--pull", "always", &r, "true"], &r[..r.find('/').unwrap()]);
    assert_eq!(f.run_ok(&["--network", "none", &r, "cat", "/version"]), "2");
    f.assert_nothing_left();
}
