//! Names for containers started without `--name`: an adjective and a scientist, as docker's.

const LEFT: &[&str] = &[
    "brave", "calm", "clever", "eager", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty", "proud",
    "quiet", "sharp", "swift", "witty",
];
const RIGHT: &[&str] = &[
    "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace", "meitner", "newton", "noether",
    "pascal", "ritchie", "shannon", "tesla", "turing",
];

/// A name that `taken` says is free: `adjective_scientist`, with a number after it once the
/// plain ones run out.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize ^ std::process::id() as usize)
        .unwrap_or(0);
    let n = LEFT.len() * RIGHT.len();
    for round in 0.. {
        for i in 0..n {
            let k = (seed + i * 7919) % n;
            let mut name = format!("{}_{}", LEFT[k / RIGHT.len()], RIGHT[k % RIGHT.len()]);
            if round > 0 {
                name = format!("{name}{round}");
            }
            if !taken(&name) {
                return name;
            }
        }
    }
    unreachable!("the rounds never end")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_generated_name_is_not_taken_and_is_valid() {
        let taken = ["brave_curie".to_string()];
        for _ in 0..50 {
            let n = super::generate(|n| taken.iter().any(|t| t == n));
            assert!(n != "brave_curie" && super::super::valid_name(&n), "{n}");
        }
        let n = super::generate(|n| !n.ends_with('1'));
        assert!(n.ends_with('1'), "numbered once every plain name is taken: {n}");
    }
}
