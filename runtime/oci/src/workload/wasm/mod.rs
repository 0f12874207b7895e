//! The wasm workload, prepared in the parent before the clone: read the module, compile it
//! (or load it from the compiled-module cache), link it against WASI and check its entry
//! point, so a bad module fails `create` like a missing program does. `run.rs` runs it in the
//! init at the point where a native program would be exec'd.
//!
//! The parent is single-threaded when it clones the init, so nothing here may start a
//! thread: wasmtime is built without parallel compilation, and the tokio runtime WASI needs
//! is made in the init (`run.rs`).

mod cache;
mod run;

use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstancePre, Module, WasmBacktraceDetails};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::FsPerms;

pub use cache::{DATA_DIR_ENV, DEFAULT_DATA_DIR};
pub use run::TrapSignals;
use run::{P1Host, P2Host};

/// Exit code of a guest that trapped (including running out of memory): 128 + SIGABRT, as
/// wasmtime's own CLI uses, so it reads like a native program that aborted.
pub const TRAP_EXIT_CODE: i32 = 134;

pub use crate::error::WasmError;

pub use super::Settings;

enum Code {
    Module(InstancePre<P1Host>),
    Component(CommandPre<P2Host>),
}

/// A guest ready to instantiate: compiled, linked, its entry point checked.
pub struct Guest {
    /// args[0] resolved in the container, for messages.
    pub path: PathBuf,
    engine: Engine,
    code: Code,
    /// The store's limit for each linear memory, bytes.
    store_limit: Option<usize>,
    memory_limit: Option<u64>,
    preopens: Vec<(PathBuf, FsPerms)>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.code {
            Code::Module(_) => "module",
            Code::Component(_) => "component",
        };
        f.debug_struct("Guest")
            .field("path", &self.path)
            .field("kind", &kind)
            .field("store_limit", &self.store_limit)
            .field("preopens", &self.preopens)
            .finish()
    }
}

/// The engine configuration `prepare` uses for these settings. Public so that a caller can
/// start from exactly wrun's configuration and change what wrun leaves at wasmtime's default
/// (the benches time the pooling allocator this way), then hand the engine to `prepare_with`.
/// The settings are part of the cache key (through wasmtime's compatibility hash), so each
/// distinct configuration compiles once.
pub fn engine_config(s: &Settings) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    // Function names come from the name section; no DWARF parsing at trap time.
    c.wasm_backtrace_details(WasmBacktraceDetails::Disable);
    if let Some(limit) = s.rlimit_as {
        // By default each linear memory reserves 4 GiB plus guard pages of address space,
        // which an RLIMIT_AS refuses: reserve nothing up front, bounds-check instead, and
        // let memories move as they grow.
        c.memory_reservation(0);
        c.memory_guard_size(0);
        c.memory_reservation_for_growth((limit / 16).min(64 << 20));
    }
    c
}

/// Headroom left to the host (wasmtime, WASI, the compiled code) under a memory limit, so the
/// guest hits the store's clean trap before the kernel's OOM killer hits the process.
pub fn store_limit(memory_limit: u64) -> u64 {
    let headroom = (memory_limit / 8).max(16 << 20).min(memory_limit / 2);
    memory_limit - headroom
}

/// Is this binary a component (layer 1) rather than a core module?
fn is_component(binary: &[u8]) -> bool {
    binary.get(6..8) == Some(&[1, 0])
}

/// Prepare the program at `inside` (its path in the container; `host` on this side) to run.
pub fn prepare(inside: &Path, host: &Path, s: &Settings) -> Result<Guest, WasmError> {
    let engine = Engine::new(&engine_config(s)).map_err(|e| WasmError {
        path: inside.to_path_buf(),
        why: format!("wasmtime engine: {e:#}"),
    })?;
    prepare_with(inside, host, s, engine)
}

/// `prepare` with an engine the caller built, normally from `engine_config(s)`.
pub fn prepare_with(inside: &Path, host: &Path, s: &Settings, engine: Engine) -> Result<Guest, WasmError> {
    let err = |why: String| WasmError {
        path: inside.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(host).map_err(|e| err(e.to_string()))?;
    // Only a `.wat` file is WebAssembly text: anything else that lacks the binary magic is
    // not WebAssembly at all, and is said so rather than reported as a text syntax error.
    let is_wat = inside.extension().is_some_and(|e| e == "wat");
    if !is_wat && !bytes.starts_with(b"\0asm") {
        return Err(err(format!(
            "not a WebAssembly binary (it does not start with \\0asm; {} bytes)",
            bytes.len()
        )));
    }
    let binary = wat::parse_bytes(&bytes).map_err(|e| err(wat_message(&e)))?;
    let component = is_component(&binary);
    let kind = if component { "component" } else { "module" };
    let cache_dir = s.cache_dir.clone().unwrap_or_else(crate::workload::wasm_cache_dir);
    let code = match load_or_compile(inside, &bytes, &binary, kind, &engine, &cache_dir).map_err(err)? {
        Compiled::Component(c) => {
            let mut linker = wasmtime::component::Linker::<P2Host>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| err(format!("{e:#}")))?;
            let pre = linker.instantiate_pre(&c).map_err(|e| err(format!("{e:#}")))?;
            let pre = CommandPre::new(pre).map_err(|e| {
                err(format!(
                    "unsupported component world (wrun runs wasi:cli/command components): {e:#}"
                ))
            })?;
            Code::Component(pre)
        }
        Compiled::Module(m) => {
            check_start(&m).map_err(err)?;
            let mut linker = wasmtime::Linker::<P1Host>::new(&engine);
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut P1Host| &mut h.wasi)
                .map_err(|e| err(format!("{e:#}")))?;
            let pre = linker
                .instantiate_pre(&m)
                .map_err(|e| err(format!("{e:#} (wrun provides WASI preview 1 to core modules)")))?;
            Code::Module(pre)
        }
    };
    Ok(Guest {
        path: inside.to_path_buf(),
        engine,
        code,
        store_limit: s.memory_limit.map(|l| store_limit(l) as usize),
        memory_limit: s.memory_limit,
        preopens: s
            .preopens
            .iter()
            .map(|(d, rw)| (d.clone(), if *rw { FsPerms::ReadWrite } else { FsPerms::ReadOnly }))
            .collect(),
    })
}

/// A WASI command exports `_start: [] -> []`.
fn check_start(m: &Module) -> Result<(), String> {
    match m.get_export("_start") {
        Some(wasmtime::ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        Some(_) => Err("export `_start` is not a function without parameters and results".into()),
        None => Err("no `_start` export: not a WASI command (a reactor or a library module?)".into()),
    }
}

enum Compiled {
    Module(Module),
    Component(Component),
}

/// Load serialized native code. A checksum-verified cache entry or fresh compiler output for
/// this very engine is the only input this sees; wasmtime still checks the header, version
/// and engine compatibility, and refuses a stale entry.
fn deserialize(engine: &Engine, kind: &str, code: &[u8]) -> wasmtime::Result<Compiled> {
    // SAFETY: `code` is wasmtime's own output (see above); deserializing trusts it.
    Ok(if kind == "component" {
        Compiled::Component(unsafe { Component::deserialize(engine, code) }?)
    } else {
        Compiled::Module(unsafe { Module::deserialize(engine, code) }?)
    })
}

/// The compiled module: from the cache when a verified entry exists, else compiled now (and
/// stored). Logs hit/miss at debug level.
fn load_or_compile(
    inside: &Path,
    bytes: &[u8],
    binary: &[u8],
    kind: &str,
    engine: &Engine,
    cache_dir: &Path,
) -> Result<Compiled, String> {
    let compile = || {
        let r = if kind == "component" {
            engine.precompile_component(binary)
        } else {
            engine.precompile_module(binary)
        };
        r.map_err(|e| format!("{e:#}"))
    };
    let load = |code: &[u8]| deserialize(engine, kind, code).map_err(|e| format!("{e:#}"));
    let c = match cache::Cache::open(cache_dir) {
        Ok(c) => c,
        Err(miss) => {
            tracing::warn!("wasm: compiled-module cache not used: {miss:?}");
            return load(&compile()?);
        }
    };
    let key = cache::key(bytes, kind, engine);
    let what = format!("{} ({kind}, key {})", inside.display(), &key[..16]);
    match c.get(&key) {
        Ok(code) => match deserialize(engine, kind, &code) {
            Ok(compiled) => {
                tracing::debug!("wasm: compiled-module cache hit: {what}");
                return Ok(compiled);
            }
            Err(e) => {
                c.remove(&key);
                tracing::debug!("wasm: compiled-module cache stale entry removed ({e}): {what}");
            }
        },
        Err(cache::Miss::Corrupt) => tracing::debug!("wasm: compiled-module cache corrupt entry removed: {what}"),
        Err(_) => tracing::debug!("wasm: compiled-module cache miss: {what}"),
    }
    let code = compile()?;
    if let Err(e) = c.put(&key, &code) {
        tracing::warn!("wasm: compiled-module cache: store {}: {e}", c.entry(&key).display());
    }
    load(&code)
}

/// A `.wat` syntax error on one line: the message and where it is.
fn wat_message(e: &wat::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let msg = lines.next().unwrap_or("").trim();
    match lines.find_map(|l| l.trim().strip_prefix("--> ")) {
        Some(at) => format!("WebAssembly text: {msg} at {}", at.trim_start_matches("<anon>:")),
        None => format!("WebAssembly text: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_limit_leaves_headroom_for_the_host() {
        assert_eq!(store_limit(64 << 20), 48 << 20);
        assert_eq!(store_limit(1 << 30), (1 << 30) - (128 << 20));
        assert_eq!(store_limit(8 << 20), 4 << 20);
    }

    #[test]
    fn components_are_told_from_modules_by_their_layer() {
        assert!(!is_component(b"\0asm\x01\0\0\0"));
        assert!(is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!is_component(b"\0as"));
    }

    #[test]
    fn wat_errors_fit_on_one_line() {
        let e = wat::parse_str("(module (func").unwrap_err();
        let m = wat_message(&e);
        assert!(!m.contains('\n') && m.starts_with("WebAssembly text: "), "{m}");
    }
}
