//! A WASI preview 2 component (`wasi:cli/command`): prints its args and one env var, then
//! binds a TCP socket on 127.0.0.1 through `wasi:sockets`, which wrun allows: the
//! container's network namespace confines it as it confines a native process.

fn main() {
    println!("hello from a wasi:cli/command component");
    for (i, a) in std::env::args().enumerate() {
        println!("argv[{i}]={a}");
    }
    match std::env::var("GREETING") {
        Ok(v) => println!("GREETING={v}"),
        Err(_) => println!("GREETING is unset"),
    }
    match std::env::current_dir() {
        Ok(d) => println!("cwd={}", d.display()),
        Err(e) => println!("cwd unknown: {e}"),
    }
    match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => match l.local_addr() {
            Ok(a) => println!("sockets: listening on {}", a.ip()),
            Err(e) => println!("sockets: bound, no address: {e}"),
        },
        Err(e) => println!("sockets: bind 127.0.0.1:0 failed: {e}"),
    }
}
