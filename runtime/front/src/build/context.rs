//! The build context: the directory whose files COPY and ADD read, less what `.dockerignore`
//! excludes. Sources are named relative to it and never lead out of it: `..` past its top is
//! refused, every path is resolved by the kernel inside it (`openat2(RESOLVE_IN_ROOT)` from an
//! fd on it: a symlink on the way to a source is followed as if the context were `/`, so
//! `lnk/shadow` with `lnk -> /etc` is the context's `etc/shadow`, not the host's), and a source
//! that is itself a symlink is copied as a symlink. Only regular files are read, never a FIFO
//! or a device.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{FileStat, SFlag};

use sha2::{Digest as _, Sha256};

use crate::container::{Error, Result};

/// One `.dockerignore` rule.
#[derive(Debug, Clone)]
struct Rule {
    pattern: Vec<String>,
    /// `!pattern`: matched paths are kept after all.
    keep: bool,
}

/// The context directory (held open) and its ignore rules.
#[derive(Debug)]
pub struct Context {
    pub root: PathBuf,
    fd: OwnedFd,
    rules: Vec<Rule>,
}

/// The text of open file `fd` (named `name` in messages): a regular file of at most 16 MiB.
pub fn read_regular(fd: OwnedFd, name: &str) -> Result<String> {
    const MAX: u64 = 16 << 20;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(Error::Invalid(format!("{name}: not a regular file")));
    }
    if st.st_size as u64 > MAX {
        return Err(Error::Invalid(format!("{name}: larger than 16 MiB")));
    }
    let mut text = String::new();
    fs::File::from(fd)
        .take(MAX)
        .read_to_string(&mut text)
        .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
    Ok(text)
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// `p` cleaned as docker cleans a pattern or source: no `.`, `..` resolved lexically, no
/// leading `/`; None if it leads above the top.
pub fn clean(p: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out)
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[...]` (with `^`/`!` and ranges),
/// `\` escapes.
fn match_component(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => (0..=name.len()).any(|i| match_component(&pat[1..], &name[i..])),
        (Some(b'?'), Some(_)) => match_component(&pat[1..], &name[1..]),
        (Some(b'['), Some(&c)) => {
            let Some(end) = pat[1..].iter().position(|b| *b == b']').map(|i| i + 1) else {
                return false;
            };
            let class = &pat[1..end];
            let (neg, class) = match class.first() {
                Some(b'^' | b'!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != neg && match_component(&pat[end + 1..], &name[1..])
        }
        (Some(b'\\'), Some(&c)) if pat.len() > 1 => pat[1] == c && match_component(&pat[2..], &name[1..]),
        (Some(&p), Some(&c)) => p == c && match_component(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// Whether `pattern` (components, `**` for any number of them) matches `path` exactly.
pub fn matches(pattern: &[String], path: &[String]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|i| matches(&pattern[1..], &path[i..])),
        Some(p) => {
            !path.is_empty() && match_component(p.as_bytes(), path[0].as_bytes()) && matches(&pattern[1..], &path[1..])
        }
    }
}

impl Context {
    /// The context at `root`, with its `.dockerignore` if it has one.
    pub fn open(root: &Path) -> Result<Context> {
        let md = fs::metadata(root).map_err(|e| Error::Invalid(format!("build context {}: {e}", root.display())))?;
        if !md.is_dir() {
            return Err(Error::Invalid(format!(
                "build context {}: not a directory",
                root.display()
            )));
        }
        let fd = nix::fcntl::open(
            root,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(crate::container::cp::own)
        .map_err(|e| Error::Invalid(format!("build context {}: {e}", root.display())))?;
        let mut c = Context {
            root: root.to_path_buf(),
            fd,
            rules: Vec::new(),
        };
        if let Some(text) = c.read_file(".dockerignore")? {
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (keep, pat) = match line.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, line),
                };
                if let Some(pattern) = clean(pat) {
                    c.rules.push(Rule { pattern, keep });
                }
            }
        }
        Ok(c)
    }

    /// The text of file `name` at the top of the context (resolved inside it), None when there
    /// is none; refused unless it is a regular file of at most 16 MiB (a FIFO or `/dev/zero`
    /// behind a symlink would hang or fill the build).
    pub fn read_file(&self, name: &str) -> Result<Option<String>> {
        let fd = match self.open_in(&[name.to_string()], libc::O_RDONLY | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::Invalid(format!("{name}: {e} in the build context"))),
        };
        read_regular(fd, name).map(Some)
    }

    /// `rel` opened with `flags`, resolved inside the context.
    fn open_in(&self, rel: &[String], flags: i32) -> std::result::Result<OwnedFd, nix::errno::Errno> {
        let p: PathBuf = if rel.is_empty() {
            PathBuf::from(".")
        } else {
            rel.iter().collect()
        };
        wrun_sys::inroot::openat2_in_root(self.fd.as_raw_fd(), &p, flags)
    }

    /// What `rel` is (its last component not followed), if it exists in the context.
    fn stat(&self, rel: &[String]) -> Option<FileStat> {
        let fd = self.open_in(rel, libc::O_PATH | libc::O_NOFOLLOW).ok()?;
        nix::sys::stat::fstat(fd.as_raw_fd()).ok()
    }

    /// Directory `rel` of the context, open.
    pub fn open_dir(&self, rel: &[String]) -> Result<OwnedFd> {
        self.open_in(rel, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::Invalid(format!("{}: {e} in the build context", rel.join("/"))))
    }

    /// The names in directory `rel` of the context, sorted.
    fn names(&self, rel: &[String]) -> Vec<String> {
        let Ok(fd) = self.open_in(rel, libc::O_RDONLY | libc::O_DIRECTORY) else {
            return Vec::new();
        };
        let mut names: Vec<String> = fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Whether `.dockerignore` leaves out `rel` (the last rule that matches it or one of its
    /// parents decides).
    pub fn excluded(&self, rel: &[String]) -> bool {
        let mut out = false;
        for r in &self.rules {
            if (1..=rel.len()).any(|n| matches(&r.pattern, &rel[..n])) {
                out = !r.keep;
            }
        }
        out
    }

    /// The context paths (relative components) a COPY source names: itself, or what its
    /// wildcards match, less what `.dockerignore` leaves out.
    pub fn sources(&self, src: &str, what: &str) -> Result<Vec<Vec<String>>> {
        let pat = clean(src).ok_or_else(|| Error::Invalid(format!("{what} {src}: outside the build context")))?;
        let wild = pat.iter().any(|c| c.contains(['*', '?', '[']));
        let found = if wild {
            let mut found = Vec::new();
            self.walk(&mut Vec::new(), &pat, &mut found)?;
            found
        } else if self.stat(&pat).is_some() && !self.excluded(&pat) {
            vec![pat]
        } else {
            Vec::new()
        };
        if found.is_empty() {
            return Err(Error::Invalid(format!(
                "{what} {src}: no such file or directory in the build context"
            )));
        }
        Ok(found)
    }

    fn walk(&self, at: &mut Vec<String>, pat: &[String], found: &mut Vec<Vec<String>>) -> Result<()> {
        let depth = at.len();
        if depth == pat.len() {
            return Ok(());
        }
        for n in self.names(at) {
            if !match_component(pat[depth].as_bytes(), n.as_bytes()) {
                continue;
            }
            at.push(n);
            if !self.excluded(at) {
                if depth + 1 == pat.len() {
                    found.push(at.clone());
                } else if self.stat(at).is_some_and(|st| kind(&st) == SFlag::S_IFDIR) {
                    self.walk(at, pat, found)?;
                }
            }
            at.pop();
        }
        Ok(())
    }

    /// The host path of context path `rel`.
    pub fn path(&self, rel: &[String]) -> PathBuf {
        rel.iter().fold(self.root.clone(), |p, c| p.join(c))
    }

    /// `rel` as a list of components, from a host path below the root (as the copier shows it).
    pub fn rel_of(&self, p: &Path) -> Option<Vec<String>> {
        let r = p.strip_prefix(&self.root).ok()?;
        Some(
            r.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect(),
        )
    }

    /// A digest of what `rel` holds (names, kinds, modes, owners, contents and link targets,
    /// without times, less what is ignored): the build cache's key for a COPY of it.
    pub fn hash(&self, rel: &[String], h: &mut Sha256) -> Result<()> {
        let shown = rel.join("/");
        let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("{shown}: {e} in the build context"));
        let st = self.stat(rel).ok_or_else(|| bad(&"no such file or directory"))?;
        h.update(shown.as_bytes());
        h.update([0]);
        h.update(format!("{:o} {} {}", st.st_mode, st.st_uid, st.st_gid).as_bytes());
        match kind(&st) {
            SFlag::S_IFLNK => {
                let fd = self
                    .open_in(rel, libc::O_PATH | libc::O_NOFOLLOW)
                    .map_err(|e| bad(&e))?;
                let t = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map_err(|e| bad(&e))?;
                h.update(t.as_bytes());
            }
            SFlag::S_IFREG => {
                let fd = self
                    .open_in(rel, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .map_err(|e| bad(&e))?;
                let mut f = fs::File::from(fd);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = f.read(&mut buf).map_err(|e| bad(&e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            SFlag::S_IFDIR => {
                for n in self.names(rel) {
                    let mut child = rel.to_vec();
                    child.push(n);
                    if !self.excluded(&child) {
                        self.hash(&child, h)?;
                    }
                }
            }
            // A FIFO, socket or device is not read (COPY skips it too).
            _ => {}
        }
        h.update([1]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        clean(s).unwrap()
    }

    #[test]
    fn patterns_match_as_go_filepath_match_with_double_star() {
        assert!(matches(&v("*.txt"), &v("a.txt")));
        assert!(!matches(&v("*.txt"), &v("d/a.txt")));
        assert!(matches(&v("**/*.txt"), &v("d/e/a.txt")));
        assert!(matches(&v("**/*.txt"), &v("a.txt")));
        assert!(matches(&v("d/?.[a-c]"), &v("d/x.b")));
        assert!(!matches(&v("d/?.[^a-c]"), &v("d/x.b")));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("/a/./b/../c"), Some(vec!["a".to_string(), "c".to_string()]));
    }

    #[test]
    fn dockerignore_excludes_paths_and_parents_and_bang_keeps() {
        let d = std::env::temp_dir().join(format!("wrun-ctx-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("secret")).unwrap();
        fs::write(d.join(".dockerignore"), "# comment\nsecret\n*.log\n!keep.log\n").unwrap();
        let c = Context::open(&d).unwrap();
        assert!(c.excluded(&v("secret")));
        assert!(c.excluded(&v("secret/key")));
        assert!(c.excluded(&v("x.log")));
        assert!(!c.excluded(&v("keep.log")));
        assert!(!c.excluded(&v("main.c")));
        let _ = fs::remove_dir_all(&d);
    }
}
