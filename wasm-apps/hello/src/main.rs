//! Prints its arguments, one environment variable and its working directory: what a test
//! needs to see that WASI args, env and cwd come from `process` in config.json.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from wasm");
    for (i, a) in args.iter().enumerate() {
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
}
