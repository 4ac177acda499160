//! The errors of starting and supervising processes.

use std::fmt;
use std::io;

use crate::codec::CodecError;

/// Starting, waiting for or signalling a process failed.
///
/// # Examples
/// ```
/// use shoal::process::{Process, ProcessError};
///
/// fn never_registered(_: ()) {}
///
/// let err = Process::new(never_registered, ()).start().unwrap_err();
/// assert!(matches!(err, ProcessError::NotRegistered { .. }));
/// assert!(err.to_string().contains("add `shoal::entry!(never_registered);`"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The entry function was not registered with [`crate::entry!`].
    NotRegistered {
        /// The entry's type name.
        entry: String,
    },
    /// The entry is a closure that captures variables, not a plain function.
    NotAFunction {
        /// The closure's type name.
        entry: String,
    },
    /// The arguments could not be encoded.
    Arguments {
        /// The process name.
        name: String,
        /// What went wrong.
        source: CodecError,
    },
    /// The operating system refused to start the process.
    Start {
        /// The process name.
        name: String,
        /// What went wrong.
        source: io::Error,
    },
    /// The forkserver that starts and supervises this process is gone.
    ForkServerDied,
    /// Waiting for the process or sending it a signal failed.
    Supervise {
        /// The process name.
        name: String,
        /// The process id.
        pid: u32,
        /// What went wrong.
        source: io::Error,
    },
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::NotRegistered { entry } => {
                let short = entry.rsplit("::").next().unwrap_or(entry);
                write!(
                    f,
                    "entry function `{entry}` is not registered; add `shoal::entry!({short});` \
                     next to its definition"
                )
            }
            ProcessError::NotAFunction { entry } => write!(
                f,
                "`{entry}` captures variables; a process entry must be a plain function \
                 registered with `shoal::entry!` (pass the captured values as its argument)"
            ),
            ProcessError::Arguments { name, source } => {
                write!(
                    f,
                    "could not send the arguments of process {name:?}: {source}"
                )
            }
            ProcessError::Start { name, source } => {
                write!(f, "could not start process {name:?}: {source}")
            }
            ProcessError::ForkServerDied => write!(
                f,
                "the forkserver died; the processes it started can no longer be supervised \
                 (a new one is started for the next process)"
            ),
            ProcessError::Supervise { name, pid, source } => {
                write!(
                    f,
                    "could not supervise process {name:?} (pid {pid}): {source}"
                )
            }
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Arguments { source, .. } => Some(source),
            ProcessError::Start { source, .. } | ProcessError::Supervise { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_fix() {
        let e = ProcessError::NotRegistered {
            entry: "app::jobs::worker".into(),
        };
        assert_eq!(
            e.to_string(),
            "entry function `app::jobs::worker` is not registered; add \
             `shoal::entry!(worker);` next to its definition"
        );
        let e = ProcessError::Start {
            name: "worker-1".into(),
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert!(e
            .to_string()
            .starts_with("could not start process \"worker-1\": "));
    }
}
