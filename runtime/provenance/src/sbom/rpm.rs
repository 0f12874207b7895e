//! rpm's package database, read without rpm: `rpmdb.sqlite` (rpm 4.16 and later, the
//! default of Fedora, RHEL 9, openSUSE, and Debian's rpm) is an SQLite file whose `Packages`
//! table holds one rpm header blob per installed package. Both formats are documented and
//! small enough to read here: SQLite's file format (a table b-tree of pages, records of
//! varint serial types, payloads spilling into overflow page chains) and rpm's header
//! (an index of tag entries over a data store). The database is the image's, so
//! attacker-made: every page number, offset and length is checked against the file, page
//! chains are walked with a visited set, and nothing is read past the given bytes.
//!
//! Not read: the Berkeley DB `Packages` of older distributions (CentOS 7/8) and SUSE's ndb.

use std::collections::HashSet;

use super::{Kind, Package};

type R<T> = std::result::Result<T, String>;

/// The installed packages in `bytes`, an `rpmdb.sqlite` (gpg-pubkey entries, which are keys
/// rpm imported, not packages, are left out).
pub fn parse(bytes: &[u8]) -> R<Vec<Package>> {
    let db = Db::open(bytes)?;
    let root = db.table_root("Packages")?;
    let mut out = Vec::new();
    for (n, rec) in db.rows(root)?.into_iter().enumerate() {
        // Packages(hnum INTEGER PRIMARY KEY, blob BLOB): the blob is the second column.
        let blob = record_blob(&rec, 1).map_err(|e| format!("package row {}: {e}", n + 1))?;
        let h = Header::parse(blob).map_err(|e| format!("package row {}: {e}", n + 1))?;
        let name = h
            .string(TAG_NAME)
            .ok_or_else(|| format!("package row {}: no name", n + 1))?;
        if name == "gpg-pubkey" {
            continue;
        }
        let (v, r) = (
            h.string(TAG_VERSION).unwrap_or_default(),
            h.string(TAG_RELEASE).unwrap_or_default(),
        );
        let mut version = if r.is_empty() { v } else { format!("{v}-{r}") };
        if let Some(e) = h.int(TAG_EPOCH).filter(|e| *e != 0) {
            version = format!("{e}:{version}");
        }
        let mut p = super::dpkg::package(Kind::Rpm, name, version);
        p.arch = h.string(TAG_ARCH);
        p.licenses = h.string(TAG_LICENSE).into_iter().collect();
        // The source rpm's file name, `NAME-VERSION-RELEASE.src.rpm`.
        if let Some(srpm) = h.string(TAG_SOURCERPM) {
            let base = srpm
                .trim_end_matches(".rpm")
                .trim_end_matches(".src")
                .trim_end_matches(".nosrc");
            let mut parts = base.rsplitn(3, '-');
            let (rel, ver, src) = (parts.next(), parts.next(), parts.next());
            if let (Some(src), Some(ver), Some(rel)) = (src, ver, rel) {
                if src != p.name {
                    p.source = Some(src.to_string());
                    p.source_version = Some(format!("{ver}-{rel}"));
                }
            }
        }
        out.push(p);
    }
    Ok(out)
}

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

/// An rpm header as the database stores it: no lead or magic, `il` (entries) and `dl` (data
/// bytes) as big-endian u32, `il` 16-byte entries (tag, type, offset, count), the data store.
struct Header<'a> {
    entries: Vec<(u32, u32, usize, usize)>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> R<u32> {
    b.get(at..at.checked_add(4).ok_or("an offset too large")?)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "a truncated rpm header".to_string())
}

impl<'a> Header<'a> {
    fn parse(b: &'a [u8]) -> R<Header<'a>> {
        let (il, dl) = (be32(b, 0)? as usize, be32(b, 4)? as usize);
        let start = 8usize
            .checked_add(il.checked_mul(16).ok_or("an rpm header too large")?)
            .ok_or("too large")?;
        let data = b
            .get(start..start.checked_add(dl).ok_or("too large")?)
            .ok_or_else(|| format!("an rpm header of {il} entries and {dl} data bytes is longer than its blob"))?;
        let mut entries = Vec::with_capacity(il.min(4096));
        for i in 0..il {
            let e = 8 + i * 16;
            entries.push((
                be32(b, e)?,
                be32(b, e + 4)?,
                be32(b, e + 8)? as usize,
                be32(b, e + 12)? as usize,
            ));
        }
        Ok(Header { entries, data })
    }

    /// A STRING or I18NSTRING tag (the first string of an array).
    fn string(&self, tag: u32) -> Option<String> {
        let &(_, ty, off, _) = self.entries.iter().find(|e| e.0 == tag)?;
        if !matches!(ty, 6..=9) {
            return None;
        }
        let rest = self.data.get(off..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    /// An INT32 tag.
    fn int(&self, tag: u32) -> Option<u32> {
        let &(_, ty, off, _) = self.entries.iter().find(|e| e.0 == tag)?;
        (ty == 4).then(|| be32(self.data, off).ok()).flatten()
    }
}

/// Column `col` of a record (SQLite's record format): its serial type and its bytes.
fn column(rec: &[u8], col: usize) -> R<(u64, &[u8])> {
    let (hlen, mut p) = varint(rec, 0)?;
    let hlen = usize::try_from(hlen).map_err(|_| "a bad record header")?;
    let mut body = hlen;
    for i in 0..=col {
        if p >= hlen {
            return Err(format!("a record without column {}", col + 1));
        }
        let (t, next) = varint(rec, p)?;
        p = next;
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            t if t >= 12 => ((t - 12) / 2) as usize,
            _ => return Err("a reserved serial type".into()),
        };
        let end = body.checked_add(len).ok_or("too large")?;
        if i == col {
            let bytes = rec.get(body..end).ok_or("a record shorter than its header says")?;
            return Ok((t, bytes));
        }
        body = end;
    }
    unreachable!()
}

/// Column `col` of a record as a blob or text.
fn record_blob(rec: &[u8], col: usize) -> R<&[u8]> {
    match column(rec, col)? {
        (t, b) if t >= 12 => Ok(b),
        _ => Err(format!("column {} is not a blob", col + 1)),
    }
}

/// An integer column of a record.
fn record_int(rec: &[u8], col: usize) -> R<i64> {
    match column(rec, col)? {
        (8, _) => Ok(0),
        (9, _) => Ok(1),
        (1..=6, b) => Ok(b
            .iter()
            .fold(if b[0] & 0x80 != 0 { -1 } else { 0 }, |v, x| (v << 8) | i64::from(*x))),
        _ => Err("not an integer column".into()),
    }
}

/// SQLite's varint at `at`: its value and the offset after it.
fn varint(b: &[u8], at: usize) -> R<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(at + i).ok_or("a truncated varint")?;
        if i == 8 {
            return Ok(((v << 8) | u64::from(byte), at + 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok((v, at + i + 1));
        }
    }
    unreachable!()
}

/// An SQLite file in memory.
struct Db<'a> {
    b: &'a [u8],
    page: usize,
    /// The usable bytes of a page (the page less its reserved tail).
    usable: usize,
}

impl<'a> Db<'a> {
    fn open(b: &'a [u8]) -> R<Db<'a>> {
        if !b.starts_with(b"SQLite format 3\0") || b.len() < 100 {
            return Err("not an SQLite database".into());
        }
        let page = match u16::from_be_bytes([b[16], b[17]]) {
            1 => 65536,
            p if p >= 512 && p.is_power_of_two() => p as usize,
            p => return Err(format!("a page size of {p}")),
        };
        let usable = page - usize::from(b[20]);
        if usable < 480 {
            return Err("a page's usable size under 480 bytes".into());
        }
        Ok(Db { b, page, usable })
    }

    fn page(&self, n: u32) -> R<&'a [u8]> {
        let n = n as usize;
        let start = n
            .checked_sub(1)
            .ok_or("page 0")?
            .checked_mul(self.page)
            .ok_or("page too far")?;
        self.b
            .get(start..start.checked_add(self.page).ok_or("page too far")?)
            .ok_or_else(|| format!("page {n} is past the end of the file"))
    }

    /// The root page of table `name`, from the schema table (page 1).
    fn table_root(&self, name: &str) -> R<u32> {
        for rec in self.rows(1)? {
            // sqlite_schema(type, name, tbl_name, rootpage, sql)
            let ty = record_blob(&rec, 0).unwrap_or_default();
            let nm = record_blob(&rec, 1).unwrap_or_default();
            if ty == b"table" && nm == name.as_bytes() {
                return record_int(&rec, 3).and_then(|r| u32::try_from(r).map_err(|_| "a bad root page".into()));
            }
        }
        Err(format!("no {name} table"))
    }

    /// Every row's record (payload) of the table b-tree rooted at `root`, in key order.
    fn rows(&self, root: u32) -> R<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut todo = vec![root];
        let mut bytes = 0usize;
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                return Err(format!("page {n} is reached twice (a loop)"));
            }
            let pg = self.page(n)?;
            let h = if n == 1 { 100 } else { 0 };
            let kind = *pg.get(h).ok_or("a truncated page")?;
            let cells = usize::from(u16::from_be_bytes([pg[h + 3], pg[h + 4]]));
            let (hdr, interior) = match kind {
                0x0d => (8, false),
                0x05 => (12, true),
                k => return Err(format!("page {n}: not a table b-tree page (type {k:#x})")),
            };
            let mut children = Vec::new();
            let mut offsets = HashSet::new();
            for c in 0..cells {
                let at = h + hdr + 2 * c;
                let off = usize::from(u16::from_be_bytes([
                    *pg.get(at).ok_or("a truncated cell pointer")?,
                    *pg.get(at + 1).ok_or("a truncated cell pointer")?,
                ]));
                // A cell is read once: pointers repeated to one cell would multiply its bytes.
                if !offsets.insert(off) {
                    return Err(format!("page {n}: two cell pointers to offset {off}"));
                }
                if interior {
                    children.push(be32(pg, off)?);
                } else {
                    let rec = self.payload(pg, off, &mut seen)?;
                    bytes += rec.len();
                    if bytes > 1 << 30 {
                        return Err("more than 1 GiB of rows".into());
                    }
                    out.push(rec);
                }
            }
            if interior {
                children.push(be32(pg, h + 8)?);
                // Popped last first: pushed in reverse to keep key order.
                todo.extend(children.into_iter().rev());
            }
        }
        Ok(out)
    }

    /// A leaf cell's payload at `off` of page `pg`, its overflow chain followed. Every page,
    /// of the tree or of an overflow chain, is read at most once in a walk (`seen`): the rows
    /// can never add up to more than the file.
    fn payload(&self, pg: &[u8], off: usize, seen: &mut HashSet<u32>) -> R<Vec<u8>> {
        let (len, p) = varint(pg, off)?;
        let (_rowid, p) = varint(pg, p)?;
        let len = usize::try_from(len).map_err(|_| "a payload too large")?;
        if len > self.b.len() {
            return Err(format!("a payload of {len} bytes in a file of {}", self.b.len()));
        }
        let u = self.usable;
        let max_local = u - 35;
        let local = if len <= max_local {
            len
        } else {
            let min_local = (u - 12) * 32 / 255 - 23;
            let k = min_local + (len - min_local) % (u - 4);
            if k <= max_local {
                k
            } else {
                min_local
            }
        };
        let mut out = pg.get(p..p + local).ok_or("a cell past the end of its page")?.to_vec();
        if local < len {
            let mut next = be32(pg, p + local)?;
            while out.len() < len {
                if next == 0 || !seen.insert(next) {
                    return Err("a broken overflow chain".into());
                }
                let o = self.page(next)?;
                next = be32(o, 0)?;
                let take = (len - out.len()).min(u - 4);
                out.extend_from_slice(o.get(4..4 + take).ok_or("a truncated overflow page")?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_records_read_as_sqlite_writes_them() {
        assert_eq!(varint(&[0x7f], 0).unwrap(), (0x7f, 1));
        assert_eq!(varint(&[0x81, 0x00], 0).unwrap(), (0x80, 2));
        // header 3 bytes: NULL, blob of 2 bytes (serial 16); then the body "hi".
        let rec = [3u8, 0, 16, b'h', b'i'];
        assert_eq!(record_blob(&rec, 1).unwrap(), b"hi");
        assert!(record_blob(&rec, 0).is_err());
        assert!(record_blob(&rec, 2).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"not sqlite").is_err());
        let mut b = b"SQLite format 3\0".to_vec();
        b.resize(4096, 0xff);
        b[16] = 0x10;
        b[17] = 0;
        b[20] = 0;
        assert!(parse(&b).is_err());
        assert!(Header::parse(&[0, 0, 0, 9, 0, 0, 0, 1]).is_err());
    }

    /// A file of `pages` 512-byte pages with page 2 a table leaf whose cells sit at `cells`.
    fn db_with_leaf(pages: usize, cells: &[u16]) -> Vec<u8> {
        let mut b = vec![0u8; 512 * pages];
        b[..16].copy_from_slice(b"SQLite format 3\0");
        b[16..18].copy_from_slice(&512u16.to_be_bytes());
        let p2 = 512;
        b[p2] = 0x0d;
        b[p2 + 3..p2 + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        for (i, c) in cells.iter().enumerate() {
            b[p2 + 8 + 2 * i..p2 + 10 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        b
    }

    /// The amplifications a hostile database could try: one cell named by many pointers, and
    /// many cells sharing one overflow chain. Each page and cell is read once per walk.
    #[test]
    fn repeated_cells_and_shared_overflow_chains_are_refused() {
        let mut b = db_with_leaf(2, &[256, 256]);
        b[512 + 256..512 + 259].copy_from_slice(&[2, 1, 0]);
        let e = Db::open(&b).unwrap().rows(2).unwrap_err();
        assert!(e.contains("two cell pointers"), "{e}");
        // Two cells of 600 bytes: 92 on the page, the rest in overflow page 3, both of them.
        let mut b = db_with_leaf(3, &[100, 300]);
        for c in [100usize, 300] {
            let at = 512 + c;
            b[at..at + 3].copy_from_slice(&[0x84, 0x58, 1]);
            b[at + 3 + 92..at + 3 + 96].copy_from_slice(&3u32.to_be_bytes());
        }
        let e = Db::open(&b).unwrap().rows(2).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
    }
}
