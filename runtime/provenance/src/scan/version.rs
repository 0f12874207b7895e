//! Each ecosystem's version ordering: Debian's (dpkg's `epoch:upstream-revision` with `~`
//! sorting before everything), Alpine's (apk's digits, letters, `_suffix`es and `-rN`), and
//! rpm's (`epoch:version-release`, each part by rpmvercmp, with `~` before and `^` after the
//! end), and semantic versions for the rest.

use std::cmp::Ordering;

/// How versions of one ecosystem compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Debian,
    Alpine,
    Rpm,
    Semver,
}

impl Scheme {
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Scheme::Debian => dpkg(a, b),
            Scheme::Alpine => apk(a, b),
            Scheme::Rpm => rpm(a, b),
            Scheme::Semver => semver(a, b),
        }
    }
}

/// rpm's ordering of two `[epoch:]version[-release]` strings: epoch as a number (none is 0),
/// then version and release by rpmvercmp.
pub fn rpm(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = split_evr(a);
    let (eb, vb, rb) = split_evr(b);
    ea.cmp(&eb).then_with(|| rpmvercmp(va, vb)).then_with(|| {
        // A version without a release matches any release of it, as rpm compares them.
        if ra.is_empty() || rb.is_empty() {
            Ordering::Equal
        } else {
            rpmvercmp(ra, rb)
        }
    })
}

/// rpm's rpmvercmp: runs of digits (numerically) and of letters (bytewise) compared in turn,
/// separators skipped; a numeric run beats an alphabetic one; `~` sorts before anything, even
/// the end, `^` after the end but before anything else; the string with runs left wins.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        match (a.get(i), b.get(j)) {
            (Some(b'~'), Some(b'~')) => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), Some(b'^')) => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (Some(b'^'), _) => return Ordering::Less,
            (None, Some(b'^')) => return Ordering::Less,
            (_, Some(b'^')) => return Ordering::Greater,
            (None, _) | (_, None) => break,
            _ => {}
        }
        let numeric = a[i].is_ascii_digit();
        let run = |s: &[u8], k: usize| -> usize {
            s[k..]
                .iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (la, lb) = (run(a, i), run(b, j));
        if lb == 0 {
            // Different kinds of run: a number is newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let (mut x, mut y) = (&a[i..i + la], &b[j..j + lb]);
        i += la;
        j += lb;
        let o = if numeric {
            while x.len() > 1 && x[0] == b'0' {
                x = &x[1..];
            }
            while y.len() > 1 && y[0] == b'0' {
                y = &y[1..];
            }
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// `[epoch:]version[-revision]`, as dpkg and rpm both write it: the epoch (0 when absent),
/// the version, and what follows the last `-` (empty when there is none).
fn split_evr(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((ver, rel)) => (epoch, ver, rel),
        None => (epoch, rest, ""),
    }
}

/// dpkg's ordering of two versions (deb-version(7)).
pub fn dpkg(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_evr(a);
    let (eb, ub, rb) = split_evr(b);
    ea.cmp(&eb)
        .then_with(|| dpkg_part(ua, ub))
        .then_with(|| dpkg_part(ra, rb))
}

/// The character order of dpkg: `~` first, then the end of the string, letters, then the rest.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn dpkg_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // The non-digit prefixes, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = if i < a.len() && !a[i].is_ascii_digit() {
                Some(a[i])
            } else {
                None
            };
            let cb = if j < b.len() && !b[j].is_ascii_digit() {
                Some(b[j])
            } else {
                None
            };
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            if ca.is_some() {
                i += 1;
            }
            if cb.is_some() {
                j += 1;
            }
        }
        // The digit runs, as numbers.
        let sa = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sb = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let c = num_cmp(&a[sa..i], &b[sb..j]);
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

/// Two digit strings compared as numbers of any length.
fn num_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> Vec<u8> { s.iter().skip_while(|c| **c == b'0').copied().collect() };
    let (a, b) = (trim(a), trim(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// apk's ordering (apk-tools' version.c): numbers separated by dots, one optional letter,
/// suffixes (`_alpha` < `_beta` < `_pre` < `_rc` < none < `_cvs` < `_svn` < `_git` < `_hg` <
/// `_p`, each with an optional number), then `-rN`.
pub fn apk(a: &str, b: &str) -> Ordering {
    let pa = apk_parse(a);
    let pb = apk_parse(b);
    let n = pa.len().max(pb.len());
    for k in 0..n {
        let x = pa.get(k).cloned().unwrap_or(Tok::End);
        let y = pb.get(k).cloned().unwrap_or(Tok::End);
        let c = x.cmp_with(&y);
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Num(Vec<u8>),
    Letter(u8),
    Suffix(i32, Vec<u8>),
    Rev(Vec<u8>),
    End,
}

impl Tok {
    fn rank(&self) -> i32 {
        match self {
            // A pre-release suffix sorts before the end; the others after.
            Tok::Suffix(s, _) if *s < 0 => -2,
            Tok::End => -1,
            Tok::Rev(_) => 0,
            Tok::Suffix(..) => 1,
            Tok::Letter(_) => 2,
            Tok::Num(_) => 3,
        }
    }

    fn cmp_with(&self, o: &Tok) -> Ordering {
        match (self, o) {
            (Tok::Num(a), Tok::Num(b)) => num_cmp(a, b),
            (Tok::Letter(a), Tok::Letter(b)) => a.cmp(b),
            (Tok::Suffix(a, x), Tok::Suffix(b, y)) => a.cmp(b).then_with(|| num_cmp(x, y)),
            (Tok::Rev(a), Tok::Rev(b)) => num_cmp(a, b),
            _ => self.rank().cmp(&o.rank()),
        }
    }
}

fn apk_parse(v: &str) -> Vec<Tok> {
    const SUFFIXES: &[(&str, i32)] = &[
        ("alpha", -4),
        ("beta", -3),
        ("pre", -2),
        ("rc", -1),
        ("cvs", 1),
        ("svn", 2),
        ("git", 3),
        ("hg", 4),
        ("p", 5),
    ];
    let (main, rev) = match v.rsplit_once("-r") {
        Some((m, r)) if !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) => (m, Some(r)),
        _ => (v, None),
    };
    let mut out = Vec::new();
    let mut parts = main.split('_');
    let head = parts.next().unwrap_or("");
    for seg in head.split('.') {
        let digits: Vec<u8> = seg.bytes().take_while(|c| c.is_ascii_digit()).collect();
        let rest = &seg.as_bytes()[digits.len()..];
        out.push(Tok::Num(digits));
        for &c in rest {
            out.push(Tok::Letter(c));
        }
    }
    for s in parts {
        let name: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let num: Vec<u8> = s.bytes().skip(name.len()).filter(|c| c.is_ascii_digit()).collect();
        let rank = SUFFIXES.iter().find(|(n, _)| *n == name).map_or(0, |(_, r)| *r);
        out.push(Tok::Suffix(rank, num));
    }
    if let Some(r) = rev {
        out.push(Tok::Rev(r.as_bytes().to_vec()));
    }
    out
}

/// Semantic versions: numeric core, then a pre-release sorts first; build metadata ignored.
pub fn semver(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (Vec<String>, Option<String>) {
        let v = v.trim_start_matches('v');
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((c, p)) => (c.split('.').map(str::to_string).collect(), Some(p.to_string())),
            None => (v.split('.').map(str::to_string).collect(), None),
        }
    };
    let (ca, pa) = split(a);
    let (cb, pb) = split(b);
    for k in 0..ca.len().max(cb.len()) {
        let x = ca.get(k).map_or("0", String::as_str);
        let y = cb.get(k).map_or("0", String::as_str);
        let c = num_cmp(x.as_bytes(), y.as_bytes());
        if c != Ordering::Equal {
            return c;
        }
    }
    match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => dpkg_part(&x, &y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_orders_epochs_tildes_and_revisions_as_dpkg_does() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0-1", "1.0-2", Less),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~~", Greater),
            ("1.0+b1", "1.0", Greater),
            ("3.0.11-1~deb12u2", "3.0.11-1", Less),
            ("3.0.11-1~deb12u2", "3.0.9-1~deb12u4", Greater),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2a", "1.2", Greater),
            ("1.2a", "1.2+", Less),
            ("10", "9", Greater),
            ("0001", "1", Equal),
        ] {
            assert_eq!(dpkg(a, b), want, "{a} vs {b}");
            assert_eq!(dpkg(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn apk_orders_letters_suffixes_and_revisions_as_apk_does() {
        for (a, b, want) in [
            ("1.2.3-r0", "1.2.3-r1", Less),
            ("1.2.3", "1.2.3_rc1", Greater),
            ("1.2.3_alpha", "1.2.3_beta", Less),
            ("1.2.3_p1", "1.2.3", Greater),
            ("1.2.3a", "1.2.3", Greater),
            ("1.2.3a", "1.2.4", Less),
            ("3.1.4-r1", "3.1.4-r5", Less),
            ("1.10", "1.9", Greater),
            ("1.2.3", "1.2.3.1", Less),
        ] {
            assert_eq!(apk(a, b), want, "{a} vs {b}");
            assert_eq!(apk(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn semver_puts_prereleases_first() {
        assert_eq!(semver("1.2.3", "1.2.10"), Less);
        assert_eq!(semver("1.2.3-rc1", "1.2.3"), Less);
        assert_eq!(semver("v2.0.0", "1.9.9"), Greater);
    }

    #[test]
    fn rpm_versions_order_as_rpmvercmp_does() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("1.01", "1.1", Equal),
            ("10", "9", Greater),
            ("1.0a", "1.0", Greater),
            ("a", "1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.0^", "1.0", Greater),
            ("5.5p1", "5.5p10", Less),
            ("xyz10", "xyz10.1", Less),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(rpm("1:1.0-1", "2.0-1"), Greater);
        assert_eq!(rpm("0:2.1-3", "2.1-3"), Equal);
        assert_eq!(rpm("1.0-2", "1.0-10"), Less);
        assert_eq!(rpm("1.0-2.el9", "1.0-2.el9_1"), Less);
        assert_eq!(rpm("2.1", "2.1-7"), Equal);
    }
}
