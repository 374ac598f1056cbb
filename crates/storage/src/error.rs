//! The one error type of the crate. Operating errors carry what the caller needs next;
//! [`StorageError::Corrupt`] names the file, the byte and what the operator can do, because
//! detected corruption must stop the member rather than let it serve from a suspect state.

use std::io;
use std::path::PathBuf;

/// What the operator can do about a corrupt WAL segment, snapshot or metadata file.
pub const CORRUPTION_REMEDY: &str = "restore this member's data directory from a backup, or \
     wipe it and restart the member with --initial-cluster-state existing so it rejoins as a \
     learner";

/// Why an encoded value was refused. Decoding never panics and never allocates more than the
/// input can hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("input ends after {have} bytes, {need} more needed at byte {at}")]
    Truncated {
        /// Where the missing bytes start.
        at: usize,
        /// Bytes still needed.
        need: usize,
        /// Bytes the input has.
        have: usize,
    },
    /// A tag byte with no meaning in this format version.
    #[error("unknown {what} tag {tag} at byte {at}")]
    UnknownTag {
        /// Which tag (op, value, flags...).
        what: &'static str,
        /// The byte found.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A format version this build cannot read.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion {
        /// Which format.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A count or length larger than the bytes that follow could hold.
    #[error("{what} of {count} at byte {at} cannot fit in the {remaining} bytes left")]
    LengthTooLarge {
        /// What was counted.
        what: &'static str,
        /// The declared count.
        count: u64,
        /// Its offset.
        at: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{extra} unexpected bytes after the end at byte {at}")]
    TrailingBytes {
        /// Where the value ended.
        at: usize,
        /// How many bytes follow.
        extra: usize,
    },
    /// A checksum over the encoded bytes did not match.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum stored.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A field whose value is impossible (e.g. a bad magic number).
    #[error("invalid {what}")]
    Invalid {
        /// What is wrong.
        what: &'static str,
    },
}

/// What an operator can do about an OS error, where there is something to say.
fn io_remedy(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::StorageFull => {
            "; the disk is full: free space on it and restart (every log segment is \
             preallocated whole, so a new segment needs its full size free)"
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "; give this process write access to the data directory"
        }
        _ => "",
    }
}

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused an operation. After an I/O error on a write or a sync the
    /// log refuses further writes ([`StorageError::Poisoned`]): after a failed fsync the kernel
    /// may have dropped the dirty pages, so retrying could report lost data as durable.
    ///
    /// The OS error is part of the message and deliberately not a `source()`: a caller that
    /// prints the chain would otherwise print it twice.
    #[error("I/O error: {op} {path}: {error}{}", io_remedy(error))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// Stored data failed verification. Never repaired silently; the member must stop.
    #[error("{path} is corrupt at byte {offset}: {what}; {remedy}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem within the file.
        offset: u64,
        /// What is wrong.
        what: String,
        /// What the operator can do.
        remedy: &'static str,
    },
    /// A batch larger than [`WalOptions::record_bytes_max`](crate::WalOptions::record_bytes_max).
    #[error("a batch of {bytes} bytes exceeds the record limit of {limit} bytes (WalOptions::record_bytes_max)")]
    RecordTooLarge {
        /// Encoded size of the batch.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// An earlier write or sync failed; the log refuses writes until the member restarts and
    /// recovers from what is durable.
    #[error("the log refuses writes after an earlier I/O error ({cause}); restart the member so it recovers from what is durable")]
    Poisoned {
        /// The first error.
        cause: String,
    },
    /// The data directory belongs to another member or cluster.
    #[error("data directory {dir} belongs to member {found_member} of cluster {found_cluster:#018x}, not member {expected_member} of cluster {expected_cluster:#018x}: point this member at its own data directory, or wipe this one and restart the member with --initial-cluster-state existing so it rejoins as a learner")]
    WrongMember {
        /// The directory.
        dir: PathBuf,
        /// Cluster named by its meta file.
        found_cluster: u64,
        /// Member named by its meta file.
        found_member: u64,
        /// Cluster this member was started for.
        expected_cluster: u64,
        /// Member this member was started as.
        expected_member: u64,
    },
    /// The data directory has no meta file.
    #[error("data directory {dir} is not initialized (it has no meta file): initialize it before opening it")]
    NotInitialized {
        /// The directory.
        dir: PathBuf,
    },
    /// The data directory already has a meta file.
    #[error(
        "data directory {dir} is already initialized; open it instead, or wipe it to start over"
    )]
    AlreadyInitialized {
        /// The directory.
        dir: PathBuf,
    },
    /// A snapshot chunk was refused; the sender should resume from `resume_from`.
    #[error("snapshot chunk rejected: {reason}; resume from offset {resume_from}")]
    ChunkRejected {
        /// Why.
        reason: String,
        /// The offset the receiver expects next.
        resume_from: u64,
    },
    /// A caller broke a documented precondition (bad options, compacting past the snapshot).
    #[error("invalid use of storage: {0}")]
    Invalid(String),
    /// Bytes from a peer (e.g. a snapshot chunk) did not decode.
    #[error("bad encoding: {0}")]
    Decode(#[from] DecodeError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// An [`StorageError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            error: source,
        }
    }

    /// A [`StorageError::Corrupt`] with the standard remedy.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            what: what.into(),
            remedy: CORRUPTION_REMEDY,
        }
    }

    /// Whether this is detected corruption (the member must stop).
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_the_os_reason_once_and_what_to_do_about_a_full_disk() {
        let e = StorageError::io(
            "preallocate",
            "/data/wal-1.tmp",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        let chain = format!("{:#}", anyhow_like(&e));
        assert_eq!(chain.matches("no storage space").count(), 1, "{chain}");
        assert!(chain.contains("/data/wal-1.tmp"), "{chain}");
        assert!(chain.contains("the disk is full: free space"), "{chain}");
        let other = StorageError::io("read", "/x", io::Error::other("boom"));
        assert_eq!(other.to_string(), "I/O error: read /x: boom");
    }

    /// What `anyhow`'s `{:#}` prints: the message and every source after it.
    fn anyhow_like(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out.push_str(": ");
            out.push_str(&s.to_string());
            next = s.source();
        }
        out
    }
}
