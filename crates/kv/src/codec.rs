//! The log payload encoding of [`KvCommand`], and the primitives the snapshot shares.
//!
//! Hand-written rather than serde-derived so that the bytes are fixed by this file alone (they
//! live in logs and snapshots across releases) and so that decoding can bound every length by
//! the input before allocating.
//!
//! # Format, version 1
//!
//! A payload is one version byte (`1`), one command tag, then the command's fields:
//!
//! - integers (`i64`) are zigzag LEB128 varints, at most ten bytes, shortest form only;
//! - byte strings are a varint length then the bytes;
//! - lists are a varint count then the elements;
//! - booleans of one request are packed into one flags byte (unknown bits are refused);
//! - enums are one tag byte.
//!
//! | command | tag | fields |
//! |---|---|---|
//! | Put | 1 | key, value, lease, flags (1 prev_kv, 2 ignore_value, 4 ignore_lease) |
//! | DeleteRange | 2 | key, range_end, flags (1 prev_kv) |
//! | Txn | 3 | compares, success ops, failure ops |
//! | Compact | 4 | revision |
//! | LeaseGrant | 5 | id, ttl |
//! | LeaseRevoke | 6 | id |
//! | LeaseKeepAlive | 7 | id |
//! | Auth | 8 | auth tag, then that command's fields (below) |
//! | Alarm | 10 | action (0 get, 1 activate, 2 deactivate), member id (unsigned), alarm type (etcd's number: 0 none, 1 nospace, 2 corrupt) |
//! | LeaseCheckpoint | 11 | the leader's ballot round and node (unsigned); count (at most `LEASE_CHECKPOINTS_MAX`), then per lease id, remaining milliseconds (unsigned); count of expired leases (at most the same), then their ids |
//!
//! Alarm commands (tag 10) came later still, added the same way as auth's (below), and lease
//! records (tag 11) after them.
//!
//! A range is key, range_end, limit, revision, sort order (0 none, 1 ascend, 2 descend), sort
//! target (0 key, 1 version, 2 create, 3 mod, 4 value), flags (1 keys_only, 2 count_only), then
//! min/max mod revision and min/max create revision. A compare is key, range_end, target tag
//! (0 value with bytes, 1 version, 2 create, 3 mod, 4 lease, each with an integer), result (0
//! equal, 1 greater, 2 less, 3 not equal). An operation is a tag (1 range, 2 put, 3 delete,
//! 4 txn) then that request's fields. Transactions nest at most [`TXN_DEPTH_MAX`] deep.
//!
//! Auth commands (tag 8) came after the first release of this format. Every payload an older
//! build wrote decodes unchanged; an older build refuses tag 8 as an unknown command, which is
//! why the format version did not change (bumping it would make every new payload, not only
//! the auth ones, unreadable to older builds). Names are UTF-8 byte strings (anything else is
//! refused); a password hash is a byte string that must be a bcrypt hash's text:
//!
//! | auth command | auth tag | fields |
//! |---|---|---|
//! | AuthEnable | 1 | |
//! | AuthDisable | 2 | |
//! | UserAdd | 3 | name, password tag (0 no password; 1 hash, then the hash) |
//! | UserDelete | 4 | name |
//! | UserChangePassword | 5 | name, hash |
//! | UserGrantRole | 6 | user, role |
//! | UserRevokeRole | 7 | user, role |
//! | RoleAdd | 8 | name |
//! | RoleDelete | 9 | name |
//! | RoleGrantPermission | 10 | role, key, range_end, type (0 read, 1 write, 2 readwrite: etcd's numbers) |
//! | RoleRevokePermission | 11 | role, key, range_end |
//! | Authenticate | 12 | name, token, checked auth revision |
//!
//! A client's command carries who sent it (etcd's `RequestHeader.username` and
//! `auth_revision`) in an envelope, command tag 9: the user's name, the auth revision its
//! token was issued at (0: none, for a user named by its client certificate), then the inner
//! command's tag and fields (no second version byte; an envelope inside an envelope is
//! refused). Apply checks the user's rights on the inner command against the auth tables as
//! of its slot ([`crate::KvStore::apply_as`]). Internal commands (lease expiry, the
//! compactor) carry no envelope.

use crate::alarm::{AlarmAction, AlarmRequest, AlarmType};
use crate::auth::{AuthCommand, Caller, PasswordHash, Permission, PermissionType, UserPassword};
use crate::error::DecodeError;
use crate::types::*;

/// The payload format this build writes.
pub const FORMAT_VERSION: u8 = 1;

/// The deepest transaction nesting accepted, by the decoder and by the store: recursion over a
/// transaction is bounded by it.
pub const TXN_DEPTH_MAX: usize = 64;

const CMD_PUT: u8 = 1;
const CMD_DELETE: u8 = 2;
const CMD_TXN: u8 = 3;
const CMD_COMPACT: u8 = 4;
const CMD_LEASE_GRANT: u8 = 5;
const CMD_LEASE_REVOKE: u8 = 6;
const CMD_LEASE_KEEP_ALIVE: u8 = 7;
const CMD_AUTH: u8 = 8;
const CMD_AS: u8 = 9;
const CMD_ALARM: u8 = 10;
/// Came after alarms, like them: older builds refuse it as an unknown command.
const CMD_LEASE_CHECKPOINT: u8 = 11;

const AUTH_ENABLE: u8 = 1;
const AUTH_DISABLE: u8 = 2;
const AUTH_USER_ADD: u8 = 3;
const AUTH_USER_DELETE: u8 = 4;
const AUTH_USER_CHANGE_PASSWORD: u8 = 5;
const AUTH_USER_GRANT_ROLE: u8 = 6;
const AUTH_USER_REVOKE_ROLE: u8 = 7;
const AUTH_ROLE_ADD: u8 = 8;
const AUTH_ROLE_DELETE: u8 = 9;
const AUTH_ROLE_GRANT_PERMISSION: u8 = 10;
const AUTH_ROLE_REVOKE_PERMISSION: u8 = 11;
const AUTH_AUTHENTICATE: u8 = 12;

const OP_RANGE: u8 = 1;
const OP_PUT: u8 = 2;
const OP_DELETE: u8 = 3;
const OP_TXN: u8 = 4;

/// Encodes a command as a log payload (format above).
pub fn encode(cmd: &KvCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(cmd));
    out.push(FORMAT_VERSION);
    put_command(&mut out, cmd);
    out
}

/// Encodes a client's command with who sent it (the envelope above), for
/// [`crate::KvStore::apply_as`] to check at apply.
pub fn encode_as(caller: &Caller, cmd: &KvCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(cmd) + caller.user.len() + 16);
    out.push(FORMAT_VERSION);
    out.push(CMD_AS);
    out.put_str(&caller.user);
    out.put_u64(caller.auth_revision.unwrap_or(0));
    put_command(&mut out, cmd);
    out
}

/// Room enough for `cmd`'s encoding in the common case (a put: its key and value plus
/// varints and flags), so the buffer of a put on the write path is allocated once rather
/// than grown by doubling from a few bytes (each growth a reallocation and a copy). Others
/// get a small guess and grow as before.
fn encoded_len_hint(cmd: &KvCommand) -> usize {
    match cmd {
        // Version, tag, two lengths, lease, flags: at most 2 + 10 + 10 + 10 + 1.
        KvCommand::Put(p) => 33 + p.key.len() + p.value.len(),
        _ => 32,
    }
}

fn put_command(out: &mut Vec<u8>, cmd: &KvCommand) {
    match cmd {
        KvCommand::Put(p) => {
            out.push(CMD_PUT);
            put_put(out, p);
        }
        KvCommand::DeleteRange(d) => {
            out.push(CMD_DELETE);
            put_delete(out, d);
        }
        KvCommand::Txn(t) => {
            out.push(CMD_TXN);
            put_txn(out, t);
        }
        KvCommand::Compact(c) => {
            out.push(CMD_COMPACT);
            out.put_i64(c.revision);
        }
        KvCommand::LeaseGrant(g) => {
            out.push(CMD_LEASE_GRANT);
            out.put_i64(g.id);
            out.put_i64(g.ttl);
        }
        KvCommand::LeaseRevoke(r) => {
            out.push(CMD_LEASE_REVOKE);
            out.put_i64(r.id);
        }
        KvCommand::LeaseKeepAlive(k) => {
            out.push(CMD_LEASE_KEEP_ALIVE);
            out.put_i64(k.id);
        }
        KvCommand::Auth(a) => {
            out.push(CMD_AUTH);
            put_auth(out, a);
        }
        KvCommand::LeaseCheckpoint(c) => {
            out.push(CMD_LEASE_CHECKPOINT);
            out.put_u64(c.leader.0);
            out.put_u64(c.leader.1);
            out.put_len(c.checkpoints.len());
            for (id, remaining_ms) in &c.checkpoints {
                out.put_i64(*id);
                out.put_u64(*remaining_ms);
            }
            out.put_len(c.expired.len());
            for id in &c.expired {
                out.put_i64(*id);
            }
        }
        KvCommand::Alarm(a) => {
            out.push(CMD_ALARM);
            out.put_u8(match a.action {
                AlarmAction::Get => 0,
                AlarmAction::Activate => 1,
                AlarmAction::Deactivate => 2,
            });
            out.put_u64(a.member_id);
            out.put_u8(a.alarm.number());
        }
    }
}

/// Whether a log payload is a compaction, from its tag alone (an envelope is read through: a
/// compaction sent by a user while auth is on). No allocation for any other command: a member
/// asks this of every applied command while watchers listen, to share the changes before a
/// compaction drops tombstones they are owed.
pub fn is_compaction(bytes: &[u8]) -> bool {
    match bytes {
        [FORMAT_VERSION, CMD_COMPACT, ..] => true,
        [FORMAT_VERSION, CMD_AS, ..] => {
            matches!(decode(bytes), Ok(KvCommand::Compact(_)))
        }
        _ => false,
    }
}

fn take_lease_checkpoint(r: &mut Reader<'_>) -> Result<LeaseCheckpointRequest, DecodeError> {
    let leader = (r.u64()?, r.u64()?);
    let count = |r: &mut Reader<'_>| {
        let n = r.len()?;
        if n > LEASE_CHECKPOINTS_MAX {
            return Err(DecodeError::Malformed(
                format!("{n} leases in one checkpoint command (at most {LEASE_CHECKPOINTS_MAX})")
                    .into(),
            ));
        }
        Ok(n)
    };
    let n = count(r)?;
    let mut checkpoints = Vec::with_capacity(n);
    for _ in 0..n {
        checkpoints.push((r.i64()?, r.u64()?));
    }
    let n = count(r)?;
    let mut expired = Vec::with_capacity(n);
    for _ in 0..n {
        expired.push(r.i64()?);
    }
    Ok(LeaseCheckpointRequest {
        leader,
        checkpoints,
        expired,
    })
}

/// Decodes a log payload written by [`encode`] or [`encode_as`] (then the command inside the
/// envelope, without its sender: see [`decode_as`]). Refuses anything else, including
/// trailing bytes, with an error; never panics, and allocates at most in proportion to the
/// input.
pub fn decode(bytes: &[u8]) -> Result<KvCommand, DecodeError> {
    decode_as(bytes).map(|(_, cmd)| cmd)
}

/// Decodes a log payload, with its sender if it came in an envelope ([`encode_as`]).
pub fn decode_as(bytes: &[u8]) -> Result<(Option<Caller>, KvCommand), DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let mut tag = r.u8()?;
    let mut caller = None;
    if tag == CMD_AS {
        let user = r.string()?;
        let auth_revision = Some(r.u64()?).filter(|&r| r != 0);
        caller = Some(Caller {
            user,
            auth_revision,
        });
        tag = r.u8()?;
        if tag == CMD_AS {
            return Err(DecodeError::Malformed("envelope inside an envelope".into()));
        }
    }
    let cmd = match tag {
        CMD_PUT => KvCommand::Put(take_put(&mut r)?),
        CMD_DELETE => KvCommand::DeleteRange(take_delete(&mut r)?),
        CMD_TXN => KvCommand::Txn(take_txn(&mut r, 1)?),
        CMD_COMPACT => KvCommand::Compact(CompactRequest { revision: r.i64()? }),
        CMD_LEASE_GRANT => KvCommand::LeaseGrant(LeaseGrantRequest {
            id: r.i64()?,
            ttl: r.i64()?,
        }),
        CMD_LEASE_REVOKE => KvCommand::LeaseRevoke(LeaseRevokeRequest { id: r.i64()? }),
        CMD_LEASE_KEEP_ALIVE => KvCommand::LeaseKeepAlive(LeaseKeepAliveRequest { id: r.i64()? }),
        CMD_AUTH => KvCommand::Auth(take_auth(&mut r)?),
        CMD_LEASE_CHECKPOINT => KvCommand::LeaseCheckpoint(take_lease_checkpoint(&mut r)?),
        CMD_ALARM => KvCommand::Alarm(take_alarm(&mut r)?),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "command".into(),
                tag,
            })
        }
    };
    r.finish()?;
    Ok((caller, cmd))
}

/// Where encoded bytes go: a buffer for payloads and snapshots, a hash for the digest, so that
/// both are defined by one walk over the state.
pub(crate) trait Sink {
    fn put_slice(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, b: u8) {
        self.put_slice(&[b]);
    }

    fn put_u64(&mut self, mut v: u64) {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = low;
                n += 1;
                break;
            }
            buf[n] = low | 0x80;
            n += 1;
        }
        self.put_slice(&buf[..n]);
    }

    fn put_i64(&mut self, v: i64) {
        // Zigzag, so that small negative numbers (rare, but clients may send them) stay short.
        self.put_u64(((v << 1) ^ (v >> 63)) as u64);
    }

    fn put_len(&mut self, n: usize) {
        // usize is at most 64 bits on every target Rust supports with std.
        self.put_u64(n as u64);
    }

    fn put_bytes(&mut self, b: &[u8]) {
        self.put_len(b.len());
        self.put_slice(b);
    }

    fn put_str(&mut self, s: &str) {
        self.put_bytes(s.as_bytes());
    }
}

impl Sink for Vec<u8> {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// FNV-1a, 64 bits: tiny and the same on every Rust release (unlike `DefaultHasher`), which
/// matters because digests are compared across replicas and recorded in traces.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

impl Sink for Fnv {
    fn put_slice(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A cursor over untrusted bytes: every read checks what is left first.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.rest.split_first().ok_or(DecodeError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    pub(crate) fn slice(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if i == 9 && bits > 1 {
                return Err(DecodeError::BadVarint);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                // Refuse non-shortest forms so that each value has one encoding (digests and
                // snapshots compare bytes).
                if b == 0 && i > 0 {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        let z = self.u64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A length or count, refused when larger than the bytes left: each element takes at least
    /// one byte, so this bounds any allocation by the input's size.
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.rest.len() => Ok(n),
            _ => Err(DecodeError::LengthTooLarge(n)),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len()?;
        Ok(self.slice(n)?.to_vec())
    }

    /// A name: a byte string that must be UTF-8.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| DecodeError::Malformed("name (not UTF-8)".into()))
    }

    /// A bcrypt hash's text.
    pub(crate) fn password_hash(&mut self) -> Result<PasswordHash, DecodeError> {
        let n = self.len()?;
        std::str::from_utf8(self.slice(n)?)
            .ok()
            .and_then(PasswordHash::parse)
            .ok_or(DecodeError::Malformed("password hash".into()))
    }

    pub(crate) fn flags(&mut self, known: u8) -> Result<u8, DecodeError> {
        let f = self.u8()?;
        if f & !known != 0 {
            return Err(DecodeError::UnknownFlags(f & !known));
        }
        Ok(f)
    }
}

fn put_range(out: &mut Vec<u8>, r: &RangeRequest) {
    out.put_bytes(&r.key);
    out.put_bytes(&r.range_end);
    out.put_i64(r.limit);
    out.put_i64(r.revision);
    out.put_u8(match r.sort_order {
        SortOrder::None => 0,
        SortOrder::Ascend => 1,
        SortOrder::Descend => 2,
    });
    out.put_u8(match r.sort_target {
        SortTarget::Key => 0,
        SortTarget::Version => 1,
        SortTarget::Create => 2,
        SortTarget::Mod => 3,
        SortTarget::Value => 4,
    });
    out.put_u8(u8::from(r.keys_only) | u8::from(r.count_only) << 1);
    out.put_i64(r.min_mod_revision);
    out.put_i64(r.max_mod_revision);
    out.put_i64(r.min_create_revision);
    out.put_i64(r.max_create_revision);
}

fn take_range(r: &mut Reader<'_>) -> Result<RangeRequest, DecodeError> {
    let key = r.bytes()?;
    let range_end = r.bytes()?;
    let limit = r.i64()?;
    let revision = r.i64()?;
    let sort_order = match r.u8()? {
        0 => SortOrder::None,
        1 => SortOrder::Ascend,
        2 => SortOrder::Descend,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "sort order".into(),
                tag,
            })
        }
    };
    let sort_target = match r.u8()? {
        0 => SortTarget::Key,
        1 => SortTarget::Version,
        2 => SortTarget::Create,
        3 => SortTarget::Mod,
        4 => SortTarget::Value,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "sort target".into(),
                tag,
            })
        }
    };
    let flags = r.flags(0b11)?;
    Ok(RangeRequest {
        key,
        range_end,
        limit,
        revision,
        sort_order,
        sort_target,
        keys_only: flags & 1 != 0,
        count_only: flags & 2 != 0,
        min_mod_revision: r.i64()?,
        max_mod_revision: r.i64()?,
        min_create_revision: r.i64()?,
        max_create_revision: r.i64()?,
    })
}

fn put_put(out: &mut Vec<u8>, p: &PutRequest) {
    out.put_bytes(&p.key);
    out.put_bytes(&p.value);
    out.put_i64(p.lease);
    out.put_u8(u8::from(p.prev_kv) | u8::from(p.ignore_value) << 1 | u8::from(p.ignore_lease) << 2);
}

fn take_put(r: &mut Reader<'_>) -> Result<PutRequest, DecodeError> {
    let key = r.bytes()?;
    let value = r.bytes()?;
    let lease = r.i64()?;
    let flags = r.flags(0b111)?;
    Ok(PutRequest {
        key,
        value,
        lease,
        prev_kv: flags & 1 != 0,
        ignore_value: flags & 2 != 0,
        ignore_lease: flags & 4 != 0,
    })
}

fn put_delete(out: &mut Vec<u8>, d: &DeleteRangeRequest) {
    out.put_bytes(&d.key);
    out.put_bytes(&d.range_end);
    out.put_u8(u8::from(d.prev_kv));
}

fn take_delete(r: &mut Reader<'_>) -> Result<DeleteRangeRequest, DecodeError> {
    Ok(DeleteRangeRequest {
        key: r.bytes()?,
        range_end: r.bytes()?,
        prev_kv: r.flags(1)? != 0,
    })
}

fn put_compare(out: &mut Vec<u8>, c: &Compare) {
    out.put_bytes(&c.key);
    out.put_bytes(&c.range_end);
    match &c.target {
        CompareTarget::Value(v) => {
            out.put_u8(0);
            out.put_bytes(v);
        }
        CompareTarget::Version(n) => {
            out.put_u8(1);
            out.put_i64(*n);
        }
        CompareTarget::Create(n) => {
            out.put_u8(2);
            out.put_i64(*n);
        }
        CompareTarget::Mod(n) => {
            out.put_u8(3);
            out.put_i64(*n);
        }
        CompareTarget::Lease(n) => {
            out.put_u8(4);
            out.put_i64(*n);
        }
    }
    out.put_u8(match c.result {
        CompareResult::Equal => 0,
        CompareResult::Greater => 1,
        CompareResult::Less => 2,
        CompareResult::NotEqual => 3,
    });
}

fn take_compare(r: &mut Reader<'_>) -> Result<Compare, DecodeError> {
    let key = r.bytes()?;
    let range_end = r.bytes()?;
    let target = match r.u8()? {
        0 => CompareTarget::Value(r.bytes()?),
        1 => CompareTarget::Version(r.i64()?),
        2 => CompareTarget::Create(r.i64()?),
        3 => CompareTarget::Mod(r.i64()?),
        4 => CompareTarget::Lease(r.i64()?),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "compare target".into(),
                tag,
            })
        }
    };
    let result = match r.u8()? {
        0 => CompareResult::Equal,
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "compare result".into(),
                tag,
            })
        }
    };
    Ok(Compare {
        key,
        range_end,
        target,
        result,
    })
}

fn put_txn(out: &mut Vec<u8>, t: &TxnRequest) {
    out.put_len(t.compare.len());
    for c in &t.compare {
        put_compare(out, c);
    }
    for branch in [&t.success, &t.failure] {
        out.put_len(branch.len());
        for op in branch {
            put_op(out, op);
        }
    }
}

fn put_op(out: &mut Vec<u8>, op: &RequestOp) {
    match op {
        RequestOp::Range(r) => {
            out.put_u8(OP_RANGE);
            put_range(out, r);
        }
        RequestOp::Put(p) => {
            out.put_u8(OP_PUT);
            put_put(out, p);
        }
        RequestOp::DeleteRange(d) => {
            out.put_u8(OP_DELETE);
            put_delete(out, d);
        }
        RequestOp::Txn(t) => {
            out.put_u8(OP_TXN);
            put_txn(out, t);
        }
    }
}

/// `depth` is this transaction's nesting level, 1 for the outermost.
fn take_txn(r: &mut Reader<'_>, depth: usize) -> Result<TxnRequest, DecodeError> {
    if depth > TXN_DEPTH_MAX {
        return Err(DecodeError::TooDeep);
    }
    let n = r.len()?;
    let mut compare = Vec::with_capacity(n.min(r.remaining()));
    for _ in 0..n {
        compare.push(take_compare(r)?);
    }
    let success = take_ops(r, depth)?;
    let failure = take_ops(r, depth)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn take_ops(r: &mut Reader<'_>, depth: usize) -> Result<Vec<RequestOp>, DecodeError> {
    let n = r.len()?;
    let mut ops = Vec::with_capacity(n.min(r.remaining()));
    for _ in 0..n {
        let op = match r.u8()? {
            OP_RANGE => RequestOp::Range(take_range(r)?),
            OP_PUT => RequestOp::Put(take_put(r)?),
            OP_DELETE => RequestOp::DeleteRange(take_delete(r)?),
            OP_TXN => RequestOp::Txn(take_txn(r, depth + 1)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "op".into(),
                    tag,
                })
            }
        };
        ops.push(op);
    }
    Ok(ops)
}

pub(crate) fn put_permission_type(out: &mut impl Sink, t: PermissionType) {
    out.put_u8(match t {
        PermissionType::Read => 0,
        PermissionType::Write => 1,
        PermissionType::ReadWrite => 2,
    });
}

pub(crate) fn take_permission_type(r: &mut Reader<'_>) -> Result<PermissionType, DecodeError> {
    match r.u8()? {
        0 => Ok(PermissionType::Read),
        1 => Ok(PermissionType::Write),
        2 => Ok(PermissionType::ReadWrite),
        tag => Err(DecodeError::UnknownTag {
            what: "permission type".into(),
            tag,
        }),
    }
}

fn take_alarm(r: &mut Reader<'_>) -> Result<AlarmRequest, DecodeError> {
    let action = match r.u8()? {
        0 => AlarmAction::Get,
        1 => AlarmAction::Activate,
        2 => AlarmAction::Deactivate,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "alarm action".into(),
                tag,
            })
        }
    };
    let member_id = r.u64()?;
    let alarm = take_alarm_type(r)?;
    Ok(AlarmRequest {
        action,
        member_id,
        alarm,
    })
}

pub(crate) fn take_alarm_type(r: &mut Reader<'_>) -> Result<AlarmType, DecodeError> {
    let tag = r.u8()?;
    AlarmType::from_number(i64::from(tag)).ok_or(DecodeError::UnknownTag {
        what: "alarm type".into(),
        tag,
    })
}

fn put_auth(out: &mut Vec<u8>, a: &AuthCommand) {
    match a {
        AuthCommand::AuthEnable => out.put_u8(AUTH_ENABLE),
        AuthCommand::AuthDisable => out.put_u8(AUTH_DISABLE),
        AuthCommand::UserAdd { name, password } => {
            out.put_u8(AUTH_USER_ADD);
            out.put_str(name);
            match password {
                UserPassword::NoPassword => out.put_u8(0),
                UserPassword::Hash(h) => {
                    out.put_u8(1);
                    out.put_str(h.as_str());
                }
            }
        }
        AuthCommand::UserDelete { name } => {
            out.put_u8(AUTH_USER_DELETE);
            out.put_str(name);
        }
        AuthCommand::UserChangePassword { name, hash } => {
            out.put_u8(AUTH_USER_CHANGE_PASSWORD);
            out.put_str(name);
            out.put_str(hash.as_str());
        }
        AuthCommand::UserGrantRole { user, role } => {
            out.put_u8(AUTH_USER_GRANT_ROLE);
            out.put_str(user);
            out.put_str(role);
        }
        AuthCommand::UserRevokeRole { user, role } => {
            out.put_u8(AUTH_USER_REVOKE_ROLE);
            out.put_str(user);
            out.put_str(role);
        }
        AuthCommand::RoleAdd { name } => {
            out.put_u8(AUTH_ROLE_ADD);
            out.put_str(name);
        }
        AuthCommand::RoleDelete { name } => {
            out.put_u8(AUTH_ROLE_DELETE);
            out.put_str(name);
        }
        AuthCommand::RoleGrantPermission { role, perm } => {
            out.put_u8(AUTH_ROLE_GRANT_PERMISSION);
            out.put_str(role);
            out.put_bytes(&perm.key);
            out.put_bytes(&perm.range_end);
            put_permission_type(out, perm.perm_type);
        }
        AuthCommand::RoleRevokePermission {
            role,
            key,
            range_end,
        } => {
            out.put_u8(AUTH_ROLE_REVOKE_PERMISSION);
            out.put_str(role);
            out.put_bytes(key);
            out.put_bytes(range_end);
        }
        AuthCommand::Authenticate {
            name,
            token,
            checked_revision,
        } => {
            out.put_u8(AUTH_AUTHENTICATE);
            out.put_str(name);
            out.put_str(token);
            out.put_u64(*checked_revision);
        }
    }
}

fn take_auth(r: &mut Reader<'_>) -> Result<AuthCommand, DecodeError> {
    Ok(match r.u8()? {
        AUTH_ENABLE => AuthCommand::AuthEnable,
        AUTH_DISABLE => AuthCommand::AuthDisable,
        AUTH_USER_ADD => {
            let name = r.string()?;
            let password = match r.u8()? {
                0 => UserPassword::NoPassword,
                1 => UserPassword::Hash(r.password_hash()?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "password".into(),
                        tag,
                    })
                }
            };
            AuthCommand::UserAdd { name, password }
        }
        AUTH_USER_DELETE => AuthCommand::UserDelete { name: r.string()? },
        AUTH_USER_CHANGE_PASSWORD => AuthCommand::UserChangePassword {
            name: r.string()?,
            hash: r.password_hash()?,
        },
        AUTH_USER_GRANT_ROLE => AuthCommand::UserGrantRole {
            user: r.string()?,
            role: r.string()?,
        },
        AUTH_USER_REVOKE_ROLE => AuthCommand::UserRevokeRole {
            user: r.string()?,
            role: r.string()?,
        },
        AUTH_ROLE_ADD => AuthCommand::RoleAdd { name: r.string()? },
        AUTH_ROLE_DELETE => AuthCommand::RoleDelete { name: r.string()? },
        AUTH_ROLE_GRANT_PERMISSION => AuthCommand::RoleGrantPermission {
            role: r.string()?,
            perm: Permission {
                key: r.bytes()?,
                range_end: r.bytes()?,
                perm_type: take_permission_type(r)?,
            },
        },
        AUTH_ROLE_REVOKE_PERMISSION => AuthCommand::RoleRevokePermission {
            role: r.string()?,
            key: r.bytes()?,
            range_end: r.bytes()?,
        },
        AUTH_AUTHENTICATE => AuthCommand::Authenticate {
            name: r.string()?,
            token: r.string()?,
            checked_revision: r.u64()?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "auth command".into(),
                tag,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_is_encoded_into_one_allocation_of_about_its_size() {
        let put = KvCommand::Put(PutRequest::new(vec![b'k'; 20], vec![7u8; 256]));
        let caller = Caller::user("alice", 3);
        for out in [encode(&put), encode_as(&caller, &put)] {
            // Grown from a small guess, the buffer would have doubled past 512 bytes.
            assert!(
                out.len() <= out.capacity(),
                "{} {}",
                out.len(),
                out.capacity()
            );
            assert!(
                out.capacity() <= out.len() + 48,
                "{} {}",
                out.len(),
                out.capacity()
            );
        }
    }

    #[test]
    fn an_envelope_carries_its_sender_and_cannot_nest() {
        let put = KvCommand::Put(PutRequest {
            key: b"k".to_vec(),
            ..PutRequest::default()
        });
        for caller in [Caller::anonymous(), Caller::user("alice", 7)] {
            let bytes = encode_as(&caller, &put);
            assert_eq!(decode_as(&bytes), Ok((Some(caller.clone()), put.clone())));
            assert_eq!(decode(&bytes), Ok(put.clone()));
        }
        assert_eq!(decode_as(&encode(&put)), Ok((None, put.clone())));
        let mut nested = encode_as(&Caller::anonymous(), &put);
        nested.truncate(4); // version, envelope, "" and revision 0
        nested.extend_from_slice(&encode_as(&Caller::anonymous(), &put)[1..]);
        assert_eq!(
            decode_as(&nested),
            Err(DecodeError::Malformed("envelope inside an envelope".into()))
        );
    }

    fn varint_round_trip(v: i64) -> Result<i64, DecodeError> {
        let mut out = Vec::new();
        out.put_i64(v);
        let mut r = Reader::new(&out);
        let back = r.i64()?;
        r.finish()?;
        Ok(back)
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(varint_round_trip(v), Ok(v), "{v}");
        }
    }

    #[test]
    fn varints_refuse_overlong_and_overflowing_forms() {
        // 0 written in two bytes.
        assert_eq!(
            Reader::new(&[0x80, 0x00]).u64(),
            Err(DecodeError::BadVarint)
        );
        // Eleven continuation bytes.
        assert_eq!(Reader::new(&[0xff; 11]).u64(), Err(DecodeError::BadVarint));
        // Ten bytes whose last carries more than bit 63.
        let mut over = [0xffu8; 10];
        over[9] = 0x02;
        assert_eq!(Reader::new(&over).u64(), Err(DecodeError::BadVarint));
        assert_eq!(Reader::new(&[0x80]).u64(), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_length_beyond_the_input_is_refused_before_allocating() {
        // Version, Put, then a key length of 2^62.
        let mut bytes = vec![FORMAT_VERSION, CMD_PUT];
        bytes.put_u64(1 << 62);
        assert_eq!(decode(&bytes), Err(DecodeError::LengthTooLarge(1 << 62)));
    }

    #[test]
    fn unknown_versions_tags_flags_and_trailing_bytes_are_refused() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[9, CMD_PUT]), Err(DecodeError::UnknownVersion(9)));
        assert_eq!(
            decode(&[FORMAT_VERSION, 99]),
            Err(DecodeError::UnknownTag {
                what: "command".into(),
                tag: 99
            })
        );
        // Put with empty key and value, lease 0, and an undefined flag bit.
        assert_eq!(
            decode(&[FORMAT_VERSION, CMD_PUT, 0, 0, 0, 0x08]),
            Err(DecodeError::UnknownFlags(0x08))
        );
        let mut ok = encode(&KvCommand::Compact(CompactRequest { revision: 3 }));
        ok.push(0);
        assert_eq!(decode(&ok), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn nesting_deeper_than_the_bound_is_refused() {
        let mut t = TxnRequest::default();
        for _ in 0..TXN_DEPTH_MAX {
            t = TxnRequest {
                success: vec![RequestOp::Txn(t)],
                ..TxnRequest::default()
            };
        }
        // TXN_DEPTH_MAX + 1 levels.
        assert_eq!(
            decode(&encode(&KvCommand::Txn(t.clone()))),
            Err(DecodeError::TooDeep)
        );
        let RequestOp::Txn(inner) = &t.success[0] else {
            unreachable!("built above")
        };
        let exact = KvCommand::Txn(inner.clone());
        assert_eq!(decode(&encode(&exact)), Ok(exact));
    }

    #[test]
    fn payloads_written_before_auth_still_decode() {
        // Bytes pinned from the format as first released: a put of "k" = "v" with prev_kv, a
        // lease grant, and a transaction with one compare and one delete.
        let put = [FORMAT_VERSION, CMD_PUT, 1, b'k', 1, b'v', 0, 1];
        assert_eq!(
            decode(&put),
            Ok(KvCommand::Put(PutRequest {
                prev_kv: true,
                ..PutRequest::new("k", "v")
            }))
        );
        let grant = [FORMAT_VERSION, CMD_LEASE_GRANT, 14, 20];
        assert_eq!(
            decode(&grant),
            Ok(KvCommand::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 10 }))
        );
        let txn = [
            FORMAT_VERSION,
            CMD_TXN,
            1,
            1,
            b'a',
            0,
            1,
            2,
            0,
            1,
            OP_DELETE,
            1,
            b'b',
            0,
            0,
            0,
        ];
        let want = TxnRequest {
            compare: vec![Compare {
                key: b"a".to_vec(),
                range_end: vec![],
                target: CompareTarget::Version(1),
                result: CompareResult::Equal,
            }],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest::new("b", ""))],
            failure: vec![],
        };
        assert_eq!(decode(&txn), Ok(KvCommand::Txn(want)));
        for bytes in [&put[..], &grant, &txn] {
            assert_eq!(
                encode(&decode(bytes).unwrap()),
                bytes,
                "still written the same"
            );
        }
    }

    fn auth_round_trip(a: AuthCommand) {
        let cmd = KvCommand::Auth(a);
        let bytes = encode(&cmd);
        assert_eq!(&bytes[..2], &[FORMAT_VERSION, CMD_AUTH]);
        assert_eq!(decode(&bytes), Ok(cmd.clone()), "{cmd:?}");
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "a prefix of {cmd:?} decoded");
        }
    }

    #[test]
    fn every_auth_command_round_trips() {
        let hash = PasswordHash::parse(&format!("$2a$04${}", "a".repeat(53))).unwrap();
        let name = || "ユーザー".to_string();
        for a in [
            AuthCommand::AuthEnable,
            AuthCommand::AuthDisable,
            AuthCommand::UserAdd {
                name: name(),
                password: UserPassword::Hash(hash.clone()),
            },
            AuthCommand::UserAdd {
                name: String::new(),
                password: UserPassword::NoPassword,
            },
            AuthCommand::UserDelete { name: name() },
            AuthCommand::UserChangePassword {
                name: name(),
                hash: hash.clone(),
            },
            AuthCommand::UserGrantRole {
                user: name(),
                role: "root".into(),
            },
            AuthCommand::UserRevokeRole {
                user: name(),
                role: "r".into(),
            },
            AuthCommand::RoleAdd { name: name() },
            AuthCommand::RoleDelete { name: name() },
            AuthCommand::RoleGrantPermission {
                role: "r".into(),
                perm: Permission::range(vec![0xff, 0], vec![0], PermissionType::ReadWrite),
            },
            AuthCommand::RoleGrantPermission {
                role: "r".into(),
                perm: Permission::key("k", PermissionType::Write),
            },
            AuthCommand::RoleRevokePermission {
                role: "r".into(),
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            },
        ] {
            auth_round_trip(a);
        }
    }

    #[test]
    fn malformed_auth_fields_are_refused() {
        let malformed = |what: &'static str| Err(DecodeError::Malformed(what.into()));
        // RoleAdd with a name that is not UTF-8.
        assert_eq!(
            decode(&[FORMAT_VERSION, CMD_AUTH, AUTH_ROLE_ADD, 1, 0xff]),
            malformed("name (not UTF-8)")
        );
        // UserAdd "u" with a hash that is not a bcrypt hash.
        assert_eq!(
            decode(&[
                FORMAT_VERSION,
                CMD_AUTH,
                AUTH_USER_ADD,
                1,
                b'u',
                1,
                3,
                b'$',
                b'2',
                b'a'
            ]),
            malformed("password hash")
        );
        assert_eq!(
            decode(&[FORMAT_VERSION, CMD_AUTH, AUTH_USER_ADD, 1, b'u', 2]),
            Err(DecodeError::UnknownTag {
                what: "password".into(),
                tag: 2
            })
        );
        assert_eq!(
            decode(&[FORMAT_VERSION, CMD_AUTH, 13]),
            Err(DecodeError::UnknownTag {
                what: "auth command".into(),
                tag: 13
            })
        );
        // RoleGrantPermission "r" on "a" with permission type 3.
        assert_eq!(
            decode(&[
                FORMAT_VERSION,
                CMD_AUTH,
                AUTH_ROLE_GRANT_PERMISSION,
                1,
                b'r',
                1,
                b'a',
                0,
                3
            ]),
            Err(DecodeError::UnknownTag {
                what: "permission type".into(),
                tag: 3
            })
        );
        let mut ok = encode(&KvCommand::Auth(AuthCommand::AuthEnable));
        ok.push(0);
        assert_eq!(decode(&ok), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn prefix_end_matches_etcd_clients() {
        assert_eq!(prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
