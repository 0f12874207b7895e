//! A registry that is hostile rather than broken: a fake one on 127.0.0.1, written here, that
//! answers a manifest request with more bytes than any manifest has. The pull must stop
//! reading at the manifest limit (4 MiB, distribution's own) with a one-line error, and
//! store nothing; a client that reads the answer whole is made to hold gigabytes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// How the fake registry answers a manifest request.
#[derive(Clone, Copy)]
enum Answer {
    /// `Content-Length: 1 GiB`, then bytes until the client hangs up.
    Announced,
    /// No length: a body that ends only when the connection does, and never does.
    Endless,
}

/// The fake registry: serves `/v2/` (no auth) and endless manifests, until dropped.
struct Fake {
    addr: String,
    stop: Arc<AtomicBool>,
    /// Bytes of manifest body written before the client hung up.
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(answer: Answer) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
        // A thread per connection: the client keeps its first (auth) connection open while
        // it opens another.
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let se = se.clone();
                        conns.push(std::thread::spawn(move || serve(c, answer, &se)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Fake {
            addr,
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// One connection: requests until it closes or a manifest has been answered.
fn serve(c: TcpStream, answer: Answer, sent: &AtomicU64) {
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        if !path.contains("/manifests/") {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
            continue;
        }
        let head = match answer {
            Answer::Announced => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
                1u64 << 30
            ),
            Answer::Endless => {
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
                    .to_string()
            }
        };
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        // A JSON string that never ends: no parser can stop early on it.
        let _ = w.write_all(b"{\"annotations\":{\"x\":\"");
        let chunk = vec![b'a'; 64 << 10];
        while w.write_all(&chunk).is_ok() {
            if sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) > (1 << 30) {
                break;
            }
        }
        return;
    }
}

#[test]
fn a_registry_that_sends_an_endless_manifest_is_cut_off_at_the_limit() {
    let Some(im) = Images::new() else { return };
    for (answer, name) in [(Answer::Announced, "announced"), (Answer::Endless, "endless")] {
        let fake = Fake::start(answer);
        let r = format!("{}/hostile/{name}:1", fake.addr);
        let e = im.fails(&["pull", &r]);
        assert!(
            e.contains(&r) && e.contains("larger than a manifest may be"),
            "{name}: {e}"
        );
        let sent = fake.sent.load(Ordering::Relaxed);
        drop(fake);
        // What the pull took before hanging up: no more than the limit and what was in
        // flight in the socket buffers, far from the gigabyte on offer.
        assert!(sent < 64 << 20, "{name}: the pull read {sent} bytes of manifest");
        im.assert_clean(0);
    }
}
