//! The library's error type: every variant names the thing that failed and the cause, so the
//! one line the CLI prints is enough to act on.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("container id {id:?} is invalid: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {id} is {status}: {why}")]
    WrongStatus {
        id: String,
        status: String,
        why: &'static str,
    },
    #[error("container init: {0}")]
    Init(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("state file {path}: {source}")]
    StateFile { path: PathBuf, source: serde_json::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Wasm(#[from] crate::workload::wasm::WasmError),
}

impl Error {
    /// An I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A syscall error with a description of what was being done.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
}

/// Attach "what was being done" to errors of lower layers.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
