//! The json-file log writer: docker's format, one `{"log":…,"stream":…,"time":…}` object per
//! line, a line of output per entry (cut at 16 KiB as docker's), rotated at `max-size` into
//! `.1`, `.2`, … keeping `max-file` files in all. `wrun container logs` reads it
//! (`wrun_front::container::logs`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest entry: a longer line is cut into entries of this size.
pub const LINE_MAX: usize = 16 << 10;

pub struct Writer {
    path: PathBuf,
    max_size: Option<u64>,
    max_file: u32,
    file: File,
    size: u64,
}

fn open_append(p: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)
}

/// `s` as a JSON string (with its quotes).
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

impl Writer {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: Option<u32>) -> std::io::Result<Writer> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path: path.to_path_buf(),
            max_size,
            max_file: max_file.unwrap_or(1).max(1),
            file,
            size,
        })
    }

    /// One entry: `text` (a line or a piece of one) of `stream`.
    pub fn entry(&mut self, stream: &str, text: &[u8]) {
        let mut line = Vec::with_capacity(text.len() + 80);
        line.extend_from_slice(b"{\"log\":");
        json_string(&mut line, &String::from_utf8_lossy(text));
        line.extend_from_slice(b",\"stream\":");
        json_string(&mut line, stream);
        line.extend_from_slice(b",\"time\":");
        json_string(&mut line, &wrun_sys::timefmt::now());
        line.extend_from_slice(b"}\n");
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate();
            }
        }
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// FILE → FILE.1 → FILE.2 …; the oldest beyond max-file goes.
    fn rotate(&mut self) {
        let keep = self.max_file;
        let name = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if keep <= 1 {
            let _ = self.file.set_len(0);
        } else {
            let _ = fs::remove_file(name(keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = fs::rename(name(n), name(n + 1));
            }
            let _ = fs::rename(&self.path, name(1));
            if let Ok(f) = open_append(&self.path) {
                self.file = f;
            }
        }
        self.size = 0;
    }
}

/// The bytes of one stream not yet logged: whole lines (or 16 KiB pieces) become entries.
pub struct Lines {
    pub stream: &'static str,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(stream: &'static str) -> Lines {
        Lines {
            stream,
            buf: Vec::new(),
        }
    }

    /// Take `data` in and log what is complete.
    pub fn feed(&mut self, data: &[u8], w: &mut Writer) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            let cut = match rest.iter().position(|b| *b == b'\n') {
                Some(i) if i < LINE_MAX => i + 1,
                _ if rest.len() >= LINE_MAX => LINE_MAX,
                _ => break,
            };
            w.entry(self.stream, &rest[..cut]);
            start += cut;
        }
        self.buf.drain(..start);
    }

    /// The stream ended: what is left is an entry of its own.
    pub fn finish(&mut self, w: &mut Writer) {
        if !self.buf.is_empty() {
            w.entry(self.stream, &self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wrun_front::container::logs::{path, read_all, read_from};

    #[test]
    fn lines_become_entries_and_rotation_keeps_max_file_files() {
        let dir = std::env::temp_dir().join(format!("wrun-monitor-logs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = path(&dir, "c1");
        let mut w = Writer::open(&p, Some(200), Some(3)).unwrap();
        let mut out = Lines::new("stdout");
        let text: String = (0..20).map(|i| format!("line {i}\n")).collect();
        // Fed in odd pieces, as a pipe gives them.
        for piece in text.as_bytes().chunks(7) {
            out.feed(piece, &mut w);
        }
        let mut err = Lines::new("stderr");
        err.feed("no newline at the end, \"quoted\" \u{1}".as_bytes(), &mut w);
        err.finish(&mut w);
        let all = read_all(&p, 3);
        assert!(PathBuf::from(format!("{}.2", p.display())).exists());
        assert!(!PathBuf::from(format!("{}.3", p.display())).exists(), "at most 3 files");
        let last = all.last().unwrap();
        assert_eq!(
            (last.log.as_str(), last.stream.as_str()),
            ("no newline at the end, \"quoted\" \u{1}", "stderr")
        );
        assert!(all.len() < 21, "the oldest entries were rotated away");
        assert!(all.iter().any(|e| e.log == "line 19\n"));
        let (tail, off) = read_from(&p, 0);
        assert_eq!(tail.last().unwrap().stream, "stderr");
        assert_eq!(off, fs::metadata(&p).unwrap().len());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_long_line_is_cut_into_16_kib_entries() {
        let dir = std::env::temp_dir().join(format!("wrun-monitor-long-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = path(&dir, "c2");
        let mut w = Writer::open(&p, None, None).unwrap();
        let mut l = Lines::new("stdout");
        l.feed(&vec![b'x'; LINE_MAX * 2 + 10], &mut w);
        l.feed(b"\n", &mut w);
        let all = read_all(&p, 1);
        let lens: Vec<usize> = all.iter().map(|e| e.log.len()).collect();
        assert_eq!(lens, [LINE_MAX, LINE_MAX, 11]);
        let _ = fs::remove_dir_all(&dir);
    }
}
