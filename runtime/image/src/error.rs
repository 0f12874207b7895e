//! The image store's error: each names the image, file or layer and the cause in one line.

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not parse (`Busybox`, `a:b:c`, a bad digest).
    #[error("image reference {0:?}: {1}")]
    Reference(String, &'static str),
    /// No image by that name or id in the store.
    #[error("image {0}: not in the store")]
    NotFound(String),
    /// The registry has no such repository, tag or blob.
    #[error("{0}")]
    NotInRegistry(String),
    /// Content whose sha256 is not the one it was named or referred to by.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    /// Content that is not what it claims to be (a manifest that is not JSON, a tar that
    /// is not a tar, a layer entry that would leave the layer).
    #[error("{0}")]
    Invalid(String),
    /// A request the store refuses (an image in use, an ambiguous id).
    #[error("{0}")]
    Refused(String),
    /// An OS failure: what was being done and the errno.
    #[error(transparent)]
    Kernel(#[from] wrun_sys::Error),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Kernel(wrun_sys::Error::io(what, source))
    }

    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Kernel(wrun_sys::Error::sys(what, source))
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// The same error as the cause of `what` ("layer sha256:...: ...").
    pub fn within(self, what: impl std::fmt::Display) -> Self {
        match self {
            Error::Kernel(k) => Error::Kernel(k.within(what)),
            Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
            Error::Refused(m) => Error::Refused(format!("{what}: {m}")),
            Error::Digest {
                what: w,
                expected,
                actual,
            } => Error::Digest {
                what: format!("{what}: {w}"),
                expected,
                actual,
            },
            e => e,
        }
    }

    /// The errno behind the error, when a syscall's refusal is its cause.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Kernel(k) => k.errno(),
            _ => None,
        }
    }
}

/// Attach "what was being done" to I/O and syscall errors.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, R: wrun_sys::Context<T>> Context<T> for R {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        wrun_sys::Context::ctx(self, what).map_err(Error::Kernel)
    }
}
