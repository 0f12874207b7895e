//! A real registry for the tests: Debian's docker-registry on 127.0.0.1 (a free port, its own
//! config and storage, optionally basic auth), filled by skopeo, stopped by pid on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{assert_ok, run_cmd, skip, TempDir};

/// A running docker-registry.
pub struct Registry {
    child: Child,
    pub dir: TempDir,
    /// host:port on 127.0.0.1.
    pub addr: String,
}

impl Registry {
    /// None (with the skip line) when docker-registry or skopeo is missing.
    pub fn start(user: Option<(&str, &str)>) -> Option<Registry> {
        for (tool, pkg) in [
            ("docker-registry", "docker-registry"),
            ("skopeo", "skopeo"),
            ("htpasswd", "apache2-utils"),
        ] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
            {
                skip(&format!("{tool} is not installed (apt-get install {pkg})"));
                return None;
            }
        }
        let dir = TempDir::new("registry");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((u, p)) = user {
            let o = run_cmd(Command::new("htpasswd").args(["-Bbn", u, p]), None);
            assert_ok(&o, "htpasswd");
            fs::write(dir.join("htpasswd"), o.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: wrun-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
            dir.join("storage").display()
        );
        fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, dir, addr };
        let t = Instant::now();
        while TcpStream::connect(&reg.addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen on {}",
                reg.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(reg)
    }

    /// Copy an OCI archive into the registry as `repo:tag` with skopeo.
    pub fn skopeo_push(&self, archive: &Path, repo_tag: &str, creds: Option<&str>) {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(cr) = creds {
            c.args(["--dest-creds", cr]);
        }
        c.arg(format!("oci-archive:{}", archive.display()));
        c.arg(format!("docker://{}/{repo_tag}", self.addr));
        assert_ok(&run_cmd(&mut c, None), "skopeo copy into the registry");
    }

    /// The registry's file for blob `digest`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
