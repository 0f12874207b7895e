//! CPU and NUMA node lists as the kernel writes them (`0-3,6`): cpuset files,
//! `linux.resources.cpu.cpus`, `linux.memoryPolicy.nodes`, `process.execCPUAffinity`.

use crate::{Error, Result};

/// The largest CPU or node number accepted: bounds the work a hostile config can ask for.
pub const MAX_LIST_ID: usize = 8191;

/// Parse a CPU or node list such as `0-3,6` (sorted, each number once). `field` names the
/// config field in errors.
pub fn parse_list(field: &str, s: &str) -> Result<Vec<usize>> {
    let bad = |why: String| Error::Invalid(format!("{field}: {why}"));
    let mut seen = vec![false; MAX_LIST_ID + 1];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            let n = x
                .trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{s:?} is not a list like 0-3,6")))?;
            if n > MAX_LIST_ID {
                return Err(bad(format!("{n} is larger than {MAX_LIST_ID}")));
            }
            Ok(n)
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            return Err(bad(format!("{s:?}: bad range {part}")));
        }
        seen[a..=b].iter_mut().for_each(|x| *x = true);
    }
    Ok(seen.iter().enumerate().filter(|(_, x)| **x).map(|(n, _)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_sorted_and_bounded() {
        assert_eq!(parse_list("f", "0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("f", "").unwrap(), Vec::<usize>::new());
        assert!(parse_list("f", "3-1").is_err());
        assert!(parse_list("f", "a").is_err());
        assert!(parse_list("x", "0-8191,0-8191,3").unwrap().len() == 8192);
        let e = parse_list("linux.memoryPolicy.nodes", "99999999999")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.memoryPolicy.nodes"), "{e}");
    }
}
