//! Announces itself, then loops forever without a single host call: only a signal from
//! outside can stop it.

use std::io::Write;

fn main() {
    println!("spinning");
    let _ = std::io::stdout().flush();
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
