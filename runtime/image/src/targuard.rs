//! A guard on a tar stream's metadata entries: the tar crate reads a pax header or a GNU long
//! name whole into memory, so their size is checked as their headers pass.

use std::io::Read;

/// The largest metadata entry (pax records, a GNU long name or link) a tar may have. The tar
/// crate reads such an entry whole into memory, so a layer declaring a 64 GiB pax header (a
/// few MiB once gzipped) would exhaust memory: `HeaderGuard` refuses it first.
pub const MAX_TAR_METADATA: u64 = 1 << 20;

/// A reader that follows the tar stream's 512-byte headers as the bytes pass and fails on a
/// metadata entry larger than `MAX_TAR_METADATA`, before the tar crate allocates for it.
pub struct HeaderGuard<R> {
    inner: R,
    header: [u8; 512],
    /// Bytes of the current header seen so far.
    have: usize,
    /// Bytes of entry data (with padding) still to pass before the next header.
    skip: u64,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            header: [0; 512],
            have: 0,
            skip: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn header_done(&mut self) -> std::io::Result<()> {
        let h = &self.header;
        let size = tar_size(&h[124..136]);
        let meta = matches!(h[156], b'x' | b'g' | b'L' | b'K');
        if meta && size > MAX_TAR_METADATA {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a tar metadata entry (type {:?}) of {size} bytes, more than {MAX_TAR_METADATA}",
                    h[156] as char
                ),
            ));
        }
        self.skip = size.div_ceil(512).saturating_mul(512);
        Ok(())
    }
}

/// A tar header's size field: octal text, or base-256 when its first byte has the high bit.
fn tar_size(f: &[u8]) -> u64 {
    if f[0] & 0x80 != 0 {
        return f[1..]
            .iter()
            .fold(0u64, |a, &b| a.saturating_mul(256).saturating_add(b as u64));
    }
    f.iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .fold(0u64, |a, &b| a.saturating_mul(8).saturating_add((b - b'0') as u64))
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut i = 0;
        while i < n {
            if self.skip > 0 {
                let k = (self.skip.min((n - i) as u64)) as usize;
                self.skip -= k as u64;
                i += k;
                continue;
            }
            let k = (512 - self.have).min(n - i);
            self.header[self.have..self.have + k].copy_from_slice(&buf[i..i + k]);
            self.have += k;
            i += k;
            if self.have == 512 {
                self.have = 0;
                self.header_done()?;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_pax_header_is_refused_before_it_is_read() {
        // A pax header entry that claims 1 GiB, then nothing: refused by its header alone.
        let mut h = [0u8; 512];
        h[..9].copy_from_slice(b"PaxHeader");
        h[124..136].copy_from_slice(b"01000000000\0");
        h[156] = b'x';
        let mut g = HeaderGuard::new(&h[..]);
        let e = std::io::copy(&mut g, &mut std::io::sink()).unwrap_err();
        assert!(e.to_string().contains("more than 1048576"), "{e}");
        // An ordinary file of the same size passes the guard (its data is streamed).
        h[156] = b'0';
        let mut g = HeaderGuard::new(&h[..]);
        assert_eq!(std::io::copy(&mut g, &mut std::io::sink()).unwrap(), 512);
        assert_eq!(tar_size(b"00000001000\0"), 512);
        assert_eq!(tar_size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), 256);
    }
}
