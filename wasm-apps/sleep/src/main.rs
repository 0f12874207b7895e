//! Sleeps SECONDS (default 3600) and exits 0: an idle guest for the density bench (`spin`
//! would keep a CPU busy each). Under WASI the sleep is one `poll_oneoff` on a clock.

use std::time::Duration;

fn main() {
    let seconds = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3600);
    std::thread::sleep(Duration::from_secs(seconds));
}
