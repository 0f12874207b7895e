//! A WASI preview 2 component for the mixed-pod tests: connects to 127.0.0.1:PORT through
//! `wasi:sockets`, retrying while nothing listens yet (a sidecar may still be starting), reads
//! until the peer closes and prints what it got. In a pod it reaches a native sidecar over the
//! pod's own loopback, which only works when both share the pod's network namespace.
//! usage: tcp-fetch PORT [SECONDS]   exit 0 on a read, 1 when nothing answered in time.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.get(1).and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: tcp-fetch PORT [SECONDS]");
            std::process::exit(2);
        }
    };
    let patience = Duration::from_secs(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10));
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let mut got = String::new();
                if let Err(e) = s.read_to_string(&mut got) {
                    eprintln!("tcp-fetch: read from 127.0.0.1:{port}: {e}");
                    std::process::exit(1);
                }
                println!("received: {}", got.trim_end());
                return;
            }
            Err(e) if start.elapsed() < patience => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("tcp-fetch: connect to 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            }
        }
    }
}
