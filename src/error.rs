//! The crate's one error type, used only at the boundary: start-up, configuration and the
//! final shutdown flush. Errors inside the event loop are logged and counted instead.
//! Each variant maps to a named exit code (sysexits.h values, so supervisors and operators
//! can tell a bad file from an unreachable Redis without reading the log).

use std::path::PathBuf;

/// Exit code for a bad command line (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for a malformed or missing configuration file (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code when Redis cannot be used (EX_UNAVAILABLE).
pub const EXIT_REDIS: u8 = 69;
/// Exit code when the kernel refuses a netlink or other system call (EX_OSERR).
pub const EXIT_OS: u8 = 71;
/// Exit code when shutdown could not flush pending writes in time (EX_TEMPFAIL).
pub const EXIT_FLUSH: u8 = 75;
/// Exit code when another live portsyncd holds the writer lease (EX_CANTCREAT). Units list
/// it in `RestartPreventExitStatus=`: restarting would only be refused again.
pub const EXIT_LEASE: u8 = 73;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {field}: {expected}")]
    Config {
        file: PathBuf,
        field: String,
        expected: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("redis {what}: {source}")]
    Redis {
        what: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("netlink {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "shutdown: {pending} pending write(s) could not be flushed within {secs:.1}s: {reason}"
    )]
    Flush {
        pending: usize,
        secs: f64,
        reason: String,
    },
    #[error("another portsyncd holds the writer lease: {holder}")]
    Lease { holder: String },
}

impl Error {
    pub fn config(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::Config {
            file: file.into(),
            field: field.into(),
            expected: expected.into(),
        }
    }

    pub fn redis(what: impl Into<String>, source: redis::RedisError) -> Self {
        Error::Redis {
            what: what.into(),
            source,
        }
    }

    pub fn netlink(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Netlink {
            what: what.into(),
            source,
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } => EXIT_CONFIG,
            Error::Usage(_) => EXIT_USAGE,
            Error::Redis { .. } => EXIT_REDIS,
            Error::Netlink { .. } | Error::Io { .. } => EXIT_OS,
            Error::Flush { .. } => EXIT_FLUSH,
            Error::Lease { .. } => EXIT_LEASE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
