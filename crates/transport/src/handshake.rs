//! The handshake: the first frame each way on every connection.
//!
//! ```text
//! Hello (dialer -> acceptor), frame body of 30 bytes, integers big-endian:
//!   0..4    magic       b"SYNP"
//!   4..6    version     u16   (PROTOCOL_VERSION)
//!   6..14   cluster id  u64
//!   14..22  sender      u64   (the dialer's member id)
//!   22..30  receiver    u64   (the member id the dialer believes it reached)
//!
//! Reply (acceptor -> dialer), frame body of 24 bytes:
//!   0..4    magic       b"SYNP"
//!   4..6    version     u16   (the acceptor's own version)
//!   6       status      u8    0 = welcome, 1 = refused
//!   7       reason      u8    0 when welcome; else 1 wrong cluster, 2 unknown member,
//!                             3 wrong receiver, 4 unsupported version
//!   8..16   cluster id  u64   (the acceptor's)
//!   16..24  member id   u64   (the acceptor's)
//! ```
//!
//! The reply always carries the acceptor's own cluster id, member id and version, so a
//! refused dialer can say precisely what it reached ("belongs to cluster 0x2 not 0x1").
//! The magic and the reply's layout stay fixed across protocol versions, so that a
//! version refusal remains readable by every version.

use std::fmt;
use thiserror::Error;

/// Identifies a Synod peer connection; anything else on the port is garbage.
pub const MAGIC: [u8; 4] = *b"SYNP";
/// The wire protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Size of a [`Hello`] body.
pub const HELLO_BYTES: usize = 30;
/// Size of a reply body.
pub const REPLY_BYTES: usize = 24;
/// The largest frame accepted during the handshake, whatever the data frame limit: garbage
/// whose first four bytes read as a huge length is refused without allocating.
pub const HANDSHAKE_FRAME_MAX: u32 = 64;

const _: () =
    assert!(HELLO_BYTES as u32 <= HANDSHAKE_FRAME_MAX && REPLY_BYTES as u32 <= HANDSHAKE_FRAME_MAX);

/// The dialer's introduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The dialer's protocol version.
    pub version: u16,
    /// The dialer's cluster.
    pub cluster_id: u64,
    /// The dialer's member id.
    pub from: u64,
    /// The member the dialer believes it is talking to.
    pub to: u64,
}

/// Why an acceptor refused a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The dialer belongs to another cluster.
    WrongCluster,
    /// The dialer's member id is not in the acceptor's configuration.
    UnknownMember,
    /// The dialer meant to reach another member (an address book out of date).
    WrongReceiver,
    /// The acceptor does not speak the dialer's protocol version.
    UnsupportedVersion,
}

impl RefusalReason {
    fn code(self) -> u8 {
        match self {
            RefusalReason::WrongCluster => 1,
            RefusalReason::UnknownMember => 2,
            RefusalReason::WrongReceiver => 3,
            RefusalReason::UnsupportedVersion => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(RefusalReason::WrongCluster),
            2 => Some(RefusalReason::UnknownMember),
            3 => Some(RefusalReason::WrongReceiver),
            4 => Some(RefusalReason::UnsupportedVersion),
            _ => None,
        }
    }
}

/// A refusal as the dialer receives it: the reason and who refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The acceptor's protocol version.
    pub version: u16,
    /// The acceptor's cluster.
    pub cluster_id: u64,
    /// The acceptor's member id.
    pub member_id: u64,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RefusalReason::WrongCluster => write!(
                f,
                "member {} belongs to cluster {:#x}",
                self.member_id, self.cluster_id
            ),
            RefusalReason::UnknownMember => write!(
                f,
                "member {} of cluster {:#x} does not know our member id",
                self.member_id, self.cluster_id
            ),
            RefusalReason::WrongReceiver => write!(
                f,
                "the address is member {} of cluster {:#x}, not the member we meant",
                self.member_id, self.cluster_id
            ),
            RefusalReason::UnsupportedVersion => write!(
                f,
                "member {} speaks protocol version {}, not {}",
                self.member_id, self.version, PROTOCOL_VERSION
            ),
        }
    }
}

/// The acceptor's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Accepted: data frames may follow. Carries the acceptor's identity, which the dialer
    /// checks against what it meant to reach.
    Welcome {
        /// The acceptor's protocol version.
        version: u16,
        /// The acceptor's cluster.
        cluster_id: u64,
        /// The acceptor's member id.
        member_id: u64,
    },
    /// Refused: the acceptor closes the connection after this frame.
    Refused(Refusal),
}

/// A handshake frame that is not one: wrong size, magic or code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The frame has the wrong size for its kind.
    #[error("handshake frame of {got} bytes, expected {expected}")]
    BadLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// Not our magic: something else is talking on this port.
    #[error("bad magic {0:02x?}: not a Synod peer")]
    BadMagic([u8; 4]),
    /// An unknown status byte in a reply.
    #[error("unknown handshake status {0}")]
    BadStatus(u8),
    /// An unknown refusal reason in a reply.
    #[error("unknown refusal reason {0}")]
    BadReason(u8),
}

impl Hello {
    /// Encodes the 30-byte body.
    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut b = [0u8; HELLO_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..14].copy_from_slice(&self.cluster_id.to_be_bytes());
        b[14..22].copy_from_slice(&self.from.to_be_bytes());
        b[22..30].copy_from_slice(&self.to.to_be_bytes());
        b
    }

    /// Decodes a body; anything but exactly 30 bytes with our magic is refused.
    pub fn decode(b: &[u8]) -> Result<Self, HandshakeError> {
        let b: &[u8; HELLO_BYTES] = b.try_into().map_err(|_| HandshakeError::BadLength {
            got: b.len(),
            expected: HELLO_BYTES,
        })?;
        check_magic(b)?;
        Ok(Hello {
            version: u16::from_be_bytes([b[4], b[5]]),
            cluster_id: be_u64(&b[6..14]),
            from: be_u64(&b[14..22]),
            to: be_u64(&b[22..30]),
        })
    }
}

impl Reply {
    /// Encodes the 24-byte body.
    pub fn encode(&self) -> [u8; REPLY_BYTES] {
        let (version, status, reason, cluster_id, member_id) = match *self {
            Reply::Welcome {
                version,
                cluster_id,
                member_id,
            } => (version, 0u8, 0u8, cluster_id, member_id),
            Reply::Refused(r) => (r.version, 1, r.reason.code(), r.cluster_id, r.member_id),
        };
        let mut b = [0u8; REPLY_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&version.to_be_bytes());
        b[6] = status;
        b[7] = reason;
        b[8..16].copy_from_slice(&cluster_id.to_be_bytes());
        b[16..24].copy_from_slice(&member_id.to_be_bytes());
        b
    }

    /// Decodes a body, refusing anything malformed.
    pub fn decode(b: &[u8]) -> Result<Self, HandshakeError> {
        let b: &[u8; REPLY_BYTES] = b.try_into().map_err(|_| HandshakeError::BadLength {
            got: b.len(),
            expected: REPLY_BYTES,
        })?;
        check_magic(b)?;
        let version = u16::from_be_bytes([b[4], b[5]]);
        let cluster_id = be_u64(&b[8..16]);
        let member_id = be_u64(&b[16..24]);
        match (b[6], b[7]) {
            (0, 0) => Ok(Reply::Welcome {
                version,
                cluster_id,
                member_id,
            }),
            (0, r) => Err(HandshakeError::BadReason(r)),
            (1, r) => {
                let reason = RefusalReason::from_code(r).ok_or(HandshakeError::BadReason(r))?;
                Ok(Reply::Refused(Refusal {
                    reason,
                    version,
                    cluster_id,
                    member_id,
                }))
            }
            (s, _) => Err(HandshakeError::BadStatus(s)),
        }
    }
}

fn check_magic(b: &[u8]) -> Result<(), HandshakeError> {
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&b[0..4]);
    if magic == MAGIC {
        Ok(())
    } else {
        Err(HandshakeError::BadMagic(magic))
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// What the acceptor decides about a [`Hello`]: the checks in the order they are made.
pub fn judge(hello: &Hello, cluster_id: u64, me: u64, is_member: impl Fn(u64) -> bool) -> Reply {
    let refuse = |reason| {
        Reply::Refused(Refusal {
            reason,
            version: PROTOCOL_VERSION,
            cluster_id,
            member_id: me,
        })
    };
    if hello.version != PROTOCOL_VERSION {
        refuse(RefusalReason::UnsupportedVersion)
    } else if hello.cluster_id != cluster_id {
        refuse(RefusalReason::WrongCluster)
    } else if hello.to != me {
        refuse(RefusalReason::WrongReceiver)
    } else if hello.from == me || !is_member(hello.from) {
        refuse(RefusalReason::UnknownMember)
    } else {
        Reply::Welcome {
            version: PROTOCOL_VERSION,
            cluster_id,
            member_id: me,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_layout_is_byte_exact() {
        let h = Hello {
            version: 1,
            cluster_id: 0x0102030405060708,
            from: 2,
            to: 3,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], b"SYNP");
        assert_eq!(&b[4..6], &[0, 1]);
        assert_eq!(&b[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[21], 2);
        assert_eq!(b[29], 3);
        assert_eq!(Hello::decode(&b), Ok(h));
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Welcome {
                version: 1,
                cluster_id: 7,
                member_id: 9,
            },
            Reply::Refused(Refusal {
                reason: RefusalReason::WrongCluster,
                version: 1,
                cluster_id: 0xabc,
                member_id: 4,
            }),
            Reply::Refused(Refusal {
                reason: RefusalReason::UnsupportedVersion,
                version: 3,
                cluster_id: 1,
                member_id: 2,
            }),
        ];
        for r in replies {
            assert_eq!(Reply::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn malformed_handshakes_are_errors() {
        assert!(matches!(
            Hello::decode(b"GET / HTTP/1.1"),
            Err(HandshakeError::BadLength { got: 14, .. })
        ));
        let mut b = Hello {
            version: 1,
            cluster_id: 1,
            from: 1,
            to: 2,
        }
        .encode();
        b[0] = b'X';
        assert!(matches!(
            Hello::decode(&b),
            Err(HandshakeError::BadMagic(_))
        ));
        let mut r = Reply::Welcome {
            version: 1,
            cluster_id: 1,
            member_id: 1,
        }
        .encode();
        r[6] = 9;
        assert_eq!(Reply::decode(&r), Err(HandshakeError::BadStatus(9)));
        r[6] = 1;
        r[7] = 77;
        assert_eq!(Reply::decode(&r), Err(HandshakeError::BadReason(77)));
    }

    #[test]
    fn judge_checks_each_field() {
        let ok = Hello {
            version: PROTOCOL_VERSION,
            cluster_id: 5,
            from: 1,
            to: 2,
        };
        let member = |id| id == 1 || id == 3;
        let reason = |h: Hello| match judge(&h, 5, 2, member) {
            Reply::Refused(r) => Some(r.reason),
            Reply::Welcome { .. } => None,
        };
        assert_eq!(reason(ok), None);
        assert_eq!(
            reason(Hello { version: 9, ..ok }),
            Some(RefusalReason::UnsupportedVersion)
        );
        assert_eq!(
            reason(Hello {
                cluster_id: 6,
                ..ok
            }),
            Some(RefusalReason::WrongCluster)
        );
        assert_eq!(
            reason(Hello { to: 3, ..ok }),
            Some(RefusalReason::WrongReceiver)
        );
        assert_eq!(
            reason(Hello { from: 8, ..ok }),
            Some(RefusalReason::UnknownMember)
        );
        assert_eq!(
            reason(Hello { from: 2, ..ok }),
            Some(RefusalReason::UnknownMember),
            "a peer claiming our own id is refused"
        );
    }
}
