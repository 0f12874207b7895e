//! The library's error type: every variant names the thing that failed and the cause, so the
//! one line the CLI prints is enough to act on.

use std::path::PathBuf;

/// A wasm module or component that cannot run, named by its path in the container. Defined
/// here, not in `workload::wasm`, so this module depends on no other module of the crate but
/// `spec`, which depends on none (no `error` → `workload` → `linux` → `error` cycle).
#[derive(Debug, thiserror::Error)]
#[error("process.args[0] {}: {why}", path.display())]
pub struct WasmError {
    pub path: PathBuf,
    pub why: String,
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
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
    /// The container's init (or an exec'd process's setup) failed: its message, and the errno
    /// when a syscall refused a step (carried across the setup socket, so the parent keeps it).
    #[error("container init: {msg}")]
    Init {
        msg: String,
        errno: Option<nix::errno::Errno>,
    },
    #[error("state file {path}: {source}")]
    StateFile { path: PathBuf, source: serde_json::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Wasm(#[from] WasmError),
    /// An OS failure: what was being done and the errno (from wrun-sys, or from this crate
    /// through `Error::io`/`Error::sys`/`Context`).
    #[error(transparent)]
    Kernel(#[from] wrun_sys::Error),
    /// An error of a step, with what the step was for (`mount /proc: ...`): the kind and the
    /// errno are the inner error's.
    #[error("{what}: {source}")]
    Within { what: String, source: Box<Error> },
}

/// What kind of failure an error is, as a stable word a machine can read: the JSON log line of
/// a failed command carries it as `"kind"`, and the containerd shim maps it to a gRPC code
/// rather than matching the message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No such container.
    NotFound,
    /// A container with that id exists already.
    AlreadyExists,
    /// The config, an id or an argument is refused before anything is done.
    InvalidConfig,
    /// The container is not in a state that allows the operation.
    WrongState,
    /// The kernel refused something (an errno is kept in the error).
    Os,
    /// A container's state file cannot be read back.
    CorruptState,
    /// The container's init failed during setup.
    Init,
    /// The wasm guest could not be prepared or run.
    Wasm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NotFound => "not_found",
            Kind::AlreadyExists => "already_exists",
            Kind::InvalidConfig => "invalid_config",
            Kind::WrongState => "wrong_state",
            Kind::Os => "os",
            Kind::CorruptState => "corrupt_state",
            Kind::Init => "init",
            Kind::Wasm => "wasm",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The error's kind (see `Kind`).
    pub fn kind(&self) -> Kind {
        match self {
            Error::NotFound(_) => Kind::NotFound,
            Error::AlreadyExists(_) => Kind::AlreadyExists,
            Error::Spec(_) | Error::Invalid(_) => Kind::InvalidConfig,
            Error::StateFile { .. } => Kind::CorruptState,
            Error::WrongStatus { .. } => Kind::WrongState,
            Error::Kernel(k) => match k {
                wrun_sys::Error::Invalid(_) => Kind::InvalidConfig,
                _ => Kind::Os,
            },
            Error::Init { .. } => Kind::Init,
            Error::Wasm(_) => Kind::Wasm,
            Error::Within { source, .. } => source.kind(),
        }
    }

    /// The errno behind the error, when a syscall's refusal is its cause.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Kernel(k) => k.errno(),
            Error::Init { errno, .. } => *errno,
            Error::Within { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// An init failure without an errno (a protocol or a precondition failure).
    pub fn init(msg: impl Into<String>) -> Self {
        Error::Init {
            msg: msg.into(),
            errno: None,
        }
    }

    /// This error as the cause of the step `what`, keeping its kind and errno.
    pub fn within(self, what: impl Into<String>) -> Self {
        Error::Within {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// An I/O error with a description of what was being done (the kernel layer's error,
    /// so both layers report OS failures alike).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Kernel(wrun_sys::Error::io(what, source))
    }

    /// A syscall error with a description of what was being done.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Kernel(wrun_sys::Error::sys(what, source))
    }
}

/// Attach "what was being done" to errors of lower layers: wrun-sys's `Context`, with this
/// crate's `Result`.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, R: wrun_sys::Context<T>> Context<T> for R {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        wrun_sys::Context::ctx(self, what).map_err(Error::Kernel)
    }
}
