//! The shim's errors, each turned into the ttrpc status code containerd maps back to its own
//! error kinds (not found, failed precondition, invalid argument, ...).

use containerd_shim::protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unimplemented(String),
    /// `wrun VERB` failed: its own last error line (with the error's kind, a stable word such
    /// as `not_found`: see wrun's `ErrorKind`), or its exit status.
    #[error("wrun {verb}: {msg}")]
    Runtime {
        verb: String,
        msg: String,
        kind: Option<String>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// `wrun` said there is no such container.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_)) || self.runtime_kind() == Some("not_found")
    }

    fn runtime_kind(&self) -> Option<&str> {
        match self {
            Error::Runtime { kind, .. } => kind.as_deref(),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::Precondition(_) => Code::FAILED_PRECONDITION,
            Error::Invalid(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Runtime { kind, .. } => match kind.as_deref() {
                Some("not_found") => Code::NOT_FOUND,
                Some("already_exists") => Code::ALREADY_EXISTS,
                Some("invalid_config") => Code::INVALID_ARGUMENT,
                Some("wrong_state") => Code::FAILED_PRECONDITION,
                _ => Code::UNKNOWN,
            },
            Error::Io { .. } => Code::UNKNOWN,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(kind: Option<&str>, msg: &str) -> Error {
        Error::Runtime {
            verb: "delete".into(),
            msg: msg.into(),
            kind: kind.map(str::to_string),
        }
    }

    #[test]
    fn runtime_errors_map_by_kind_not_by_text() {
        assert_eq!(runtime(Some("not_found"), "gone").code(), Code::NOT_FOUND);
        assert!(runtime(Some("not_found"), "gone").is_not_found());
        assert_eq!(runtime(Some("wrong_state"), "x").code(), Code::FAILED_PRECONDITION);
        assert_eq!(runtime(Some("invalid_config"), "x").code(), Code::INVALID_ARGUMENT);
        assert_eq!(runtime(Some("already_exists"), "x").code(), Code::ALREADY_EXISTS);
        // A message that merely says "does not exist" (a missing file in the config) is not
        // a missing container.
        let e = runtime(Some("invalid_config"), "process.cwd /x does not exist");
        assert!(!e.is_not_found());
        assert_eq!(runtime(None, "exit status 1").code(), Code::UNKNOWN);
    }
}
