//! The error of the kernel layer: what was being done and the cause (an errno kept as such).
//! The runtime wraps it unchanged (`wrun::Error::Kernel`), so the one line users see is the
//! same whichever layer failed.

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    /// A value the kernel layer refuses before any syscall (a bad cgroup path, a list too long).
    #[error("{0}")]
    Invalid(String),
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

    /// The same error as the cause of the step `what`: "`what`: ...", errno kept.
    pub fn within(self, what: impl std::fmt::Display) -> Self {
        match self {
            Error::Io { what: w, source } => Error::io(format!("{what}: {w}"), source),
            Error::Sys { what: w, source } => Error::sys(format!("{what}: {w}"), source),
            Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
        }
    }

    /// The errno behind the error, if there is one.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Io { source, .. } => source.raw_os_error().map(nix::errno::Errno::from_raw),
            Error::Sys { source, .. } => Some(*source),
            Error::Invalid(_) => None,
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
