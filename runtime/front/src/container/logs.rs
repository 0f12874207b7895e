//! A container's output in docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339"}`, in `containers/<id>/<id>-json.log`,
//! rotated at `--log-opt max-size` into `.1`, `.2`, ... keeping `max-file` files in all. The
//! monitor (`wrun-monitor`) writes it; this is the reading side.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// `--log-opt` of the json-file driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOpts {
    /// Rotate when the file passes this many bytes (None: never).
    pub max_size: Option<u64>,
    /// Files kept in all, the live one included (at least 1).
    pub max_file: Option<u32>,
}

impl LogOpts {
    /// Parse `--log-opt KEY=VALUE` values (max-size, max-file).
    pub fn parse(opts: &[String]) -> Result<LogOpts> {
        let mut o = LogOpts::default();
        for kv in opts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("--log-opt {kv:?}: not KEY=VALUE")))?;
            match k {
                "max-size" => {
                    let n = crate::dockerflags::parse_size(v)
                        .map_err(|e| Error::Invalid(format!("--log-opt max-size {v:?}: {e}")))?;
                    if n <= 0 {
                        return Err(Error::Invalid(format!("--log-opt max-size {v:?}: must be more than 0")));
                    }
                    o.max_size = Some(n as u64);
                }
                "max-file" => {
                    let n: u32 = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| Error::Invalid(format!("--log-opt max-file {v:?}: a number, at least 1")))?;
                    o.max_file = Some(n);
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "--log-opt {k:?}: unknown option (max-size, max-file)"
                    )))
                }
            }
        }
        if o.max_file.is_some_and(|n| n > 1) && o.max_size.is_none() {
            return Err(Error::Invalid("--log-opt max-file: needs max-size".into()));
        }
        Ok(o)
    }
}

/// One log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// The log file of container `id` in `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// Every entry of the log, oldest first (rotated files included), handed to `f` one at a
/// time (a log may be far larger than memory). Returns the offset in the live file after the
/// last whole line read, where `read_from` goes on.
pub fn for_each(path: &Path, max_file: u32, mut f: impl FnMut(Entry)) -> u64 {
    let rotated = (1..max_file.max(1))
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())));
    for p in rotated {
        if let Ok(fh) = File::open(&p) {
            for line in BufReader::new(fh).lines().map_while(std::result::Result::ok) {
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    f(e);
                }
            }
        }
    }
    let Ok(fh) = File::open(path) else { return 0 };
    let mut r = BufReader::new(fh);
    let mut off = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return off,
            // A line still being written is left for `read_from`.
            Ok(_) if line.last() != Some(&b'\n') => return off,
            Ok(n) => {
                off += n as u64;
                if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
                    f(e);
                }
            }
        }
    }
}

/// Every entry (`for_each` into a list): for tests and small logs.
pub fn read_all(path: &Path, max_file: u32) -> Vec<Entry> {
    let mut out = Vec::new();
    for_each(path, max_file, |e| out.push(e));
    out
}

/// Entries appended to the live file after byte `from` (at most 1 MiB of them); returns them
/// and the new offset.
pub fn read_from(path: &Path, from: u64) -> (Vec<Entry>, u64) {
    let Ok(mut f) = File::open(path) else {
        return (vec![], from);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // Rotated under us: start the new file from its beginning.
    let start = if len < from { 0 } else { from };
    let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start));
    let mut text = Vec::new();
    let _ = (&mut f).take(1 << 20).read_to_end(&mut text);
    // Only whole lines; a line being written is read next time.
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let out = text[..whole]
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
        .collect();
    (out, start + whole as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_max_size_and_max_file_are_options() {
        let o = LogOpts::parse(&["max-size=2k".into(), "max-file=3".into()]).unwrap();
        assert_eq!((o.max_size, o.max_file), (Some(2048), Some(3)));
        for bad in ["max-size=0", "max-size=x", "max-file=0", "colour=red", "max-file=3"] {
            assert!(LogOpts::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
