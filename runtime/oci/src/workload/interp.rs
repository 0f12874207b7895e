//! Why an `execve` of a file that exists says ENOENT: the kernel reports a missing ELF
//! interpreter (a dynamically linked program in a rootfs without its libc) or a missing `#!`
//! interpreter with the same errno as a missing program. This finds which one it was, so the
//! error names the file the container lacks instead of the one it has.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The interpreter `program` asks for (PT_INTERP of an ELF file, or the `#!` line of a
/// script), if it has one. Read errors and malformed headers give `None`.
pub fn interpreter_of(program: &Path) -> Option<PathBuf> {
    let mut f = File::open(program).ok()?;
    let mut head = [0u8; 256];
    let n = read_up_to(&mut f, &mut head)?;
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next()?;
        let word = line.split(|b| *b == b' ' || *b == b'\t').find(|w| !w.is_empty())?;
        return Some(PathBuf::from(std::str::from_utf8(word).ok()?));
    }
    elf_interp(&mut f, head)
}

/// A description of what is missing when an exec of `program` (which exists) failed with
/// ENOENT, or `None` when its interpreter is there (or it has none).
pub fn missing_interpreter(program: &Path) -> Option<String> {
    let interp = interpreter_of(program)?;
    let kind = if is_script(program) {
        "#! interpreter"
    } else {
        "ELF interpreter"
    };
    (!interp.exists()).then(|| format!("its {kind} {} not found in the container", interp.display()))
}

fn is_script(program: &Path) -> bool {
    let mut two = [0u8; 2];
    File::open(program)
        .and_then(|mut f| f.read_exact(&mut two))
        .is_ok_and(|()| &two == b"#!")
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    Some(n)
}

const PT_INTERP: u64 = 3;

/// PT_INTERP's path from an ELF file of either class and byte order.
fn elf_interp(f: &mut File, head: &[u8]) -> Option<PathBuf> {
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    // An unsigned field of `len` bytes at `o`, in the file's byte order.
    let uint = |b: &[u8], o: usize, len: usize| -> Option<u64> {
        let bytes = b.get(o..o.checked_add(len)?)?;
        let fold = |acc: u64, x: &u8| acc << 8 | *x as u64;
        Some(if le {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        })
    };
    let u16_at = |b: &[u8], o: usize| uint(b, o, 2);
    let u32_at = |b: &[u8], o: usize| uint(b, o, 4);
    let u64_at = |b: &[u8], o: usize| uint(b, o, 8);
    let word = |b: &[u8], o32: usize, o64: usize| if wide { u64_at(b, o64) } else { u32_at(b, o32) };
    let phoff = word(head, 28, 32)?;
    let (phentsize, phnum) = if wide {
        (u16_at(head, 54)?, u16_at(head, 56)?)
    } else {
        (u16_at(head, 42)?, u16_at(head, 44)?)
    };
    if !(32..=256).contains(&phentsize) || phnum > 512 {
        return None;
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    f.seek(SeekFrom::Start(phoff)).ok()?;
    f.read_exact(&mut table).ok()?;
    for ph in table.chunks(phentsize as usize) {
        if u32_at(ph, 0)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (u64_at(ph, 8)?, u64_at(ph, 32)?)
        } else {
            (u32_at(ph, 4)?, u32_at(ph, 16)?)
        };
        if size == 0 || size > 4096 {
            return None;
        }
        let mut path = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset)).ok()?;
        f.read_exact(&mut path).ok()?;
        let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
        return Some(PathBuf::from(std::str::from_utf8(&path[..end]).ok()?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_names_its_loader() {
        // The test binary itself is dynamically linked against the host's glibc.
        let me = std::env::current_exe().unwrap();
        let interp = interpreter_of(&me).expect("a PT_INTERP");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert!(interp.exists());
        assert_eq!(missing_interpreter(&me), None);
    }

    #[test]
    fn a_script_names_its_shebang_and_a_missing_one_is_reported() {
        let dir = std::env::temp_dir().join(format!("wrun-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#! /nonexistent/wrun-sh -e\necho hi\n").unwrap();
        assert_eq!(interpreter_of(&script), Some(PathBuf::from("/nonexistent/wrun-sh")));
        assert_eq!(
            missing_interpreter(&script).as_deref(),
            Some("its #! interpreter /nonexistent/wrun-sh not found in the container")
        );
        let plain = dir.join("p");
        std::fs::write(&plain, "no header at all").unwrap();
        assert_eq!(interpreter_of(&plain), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_elf_header_is_not_an_interpreter() {
        let dir = std::env::temp_dir().join(format!("wrun-interp-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("elf");
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(64, 0xff);
        std::fs::write(&f, &bytes).unwrap();
        assert_eq!(interpreter_of(&f), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
