//! `workload::wasm` in a wrun built without the `wasm` cargo feature (no wasmtime linked): the
//! names the seam uses, with nothing behind them. `workload::plan` refuses a wasm module
//! before any side effect, so none of this runs; `prepare` says why if it ever does.

use std::path::Path;

pub use super::Settings;
pub use crate::error::WasmError;
use crate::linux::process::ProcessPlan;

/// No guest can exist without wasmtime.
#[derive(Debug)]
pub enum Guest {}

impl Guest {
    pub fn run(&self, _: &ProcessPlan, _: &TrapSignals) -> ! {
        match *self {}
    }
}

/// Nothing to save without a guest.
#[derive(Debug)]
pub struct TrapSignals;

impl TrapSignals {
    pub fn save() -> TrapSignals {
        TrapSignals
    }
}

pub fn prepare(inside: &Path, _host: &Path, _settings: &Settings) -> Result<Guest, WasmError> {
    Err(WasmError {
        path: inside.to_path_buf(),
        why: "this wrun was built without wasm (cargo feature `wasm`)".into(),
    })
}
