//! `/proc/<pid>/mountinfo` lines (proc(5)): the fields wrun and the shim read, with the octal
//! escapes (`\040` for a space) decoded.

/// One mount, as a mountinfo line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted here ("/" unless a bind or a cgroup
    /// namespace shows a subtree).
    pub root: String,
    pub mountpoint: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub mount_options: String,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options (for a v1 cgroup mount, its controllers).
    pub super_options: String,
}

/// Parse one line; None for a line that is not a mountinfo line.
pub fn parse_line(line: &str) -> Option<Mount> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let (_id, _parent, _dev) = (pre.next()?, pre.next()?, pre.next()?);
    let (root, mountpoint, mount_options) = (pre.next()?, pre.next()?, pre.next()?);
    let mut post = post.split(' ');
    let (fstype, source) = (post.next()?, post.next()?);
    Some(Mount {
        root: unescape(root),
        mountpoint: unescape(mountpoint),
        mount_options: mount_options.to_string(),
        fstype: fstype.to_string(),
        source: unescape(source),
        super_options: post.next().unwrap_or("").to_string(),
    })
}

/// Every mount of a mountinfo text, in order (the last one over a path is the visible one).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts of the calling process's mount namespace.
pub fn read_own() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// Decode mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash); anything else is kept as it is.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_its_fields_with_escapes_decoded() {
        let m = parse_line("36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue")
            .unwrap();
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mountpoint, "/mnt two");
        assert_eq!(m.mount_options, "rw,noatime");
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, "rw,errors=continue");
        assert!(parse_line("not a mountinfo line").is_none());
    }

    #[test]
    fn escapes_decode_once_and_leave_the_rest_alone() {
        assert_eq!(unescape("a\\134040b"), "a\\040b");
        assert_eq!(unescape("tab\\011nl\\012"), "tab\tnl\n");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("\\999"), "\\999");
    }

    #[test]
    fn this_process_sees_its_root_mount() {
        assert!(read_own().unwrap().iter().any(|m| m.mountpoint == "/"));
    }
}
