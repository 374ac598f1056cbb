//! The `meta` file: which cluster and member a data directory belongs to. Written once at
//! initialization (tmp, fsync, rename, directory fsync), so its presence marks the directory
//! initialized and it is never seen half-written.

use crate::codec::{open_small_file, put_u32, put_u64};
use crate::error::{DecodeError, Result, StorageError};
use crate::vfs::{read_small_file, replace_file, Vfs};
use std::path::Path;

/// Name of the metadata file in a data directory.
pub const META_FILE: &str = "meta";
const META_TMP: &str = "meta.tmp";
/// Magic number at the start of the meta file.
pub const META_MAGIC: [u8; 8] = *b"SYNODMET";
/// Version of the meta file format.
pub const META_VERSION: u32 = 1;
/// Most initial members a meta file may list (a bound before allocating on read).
pub const META_MEMBERS_MAX: usize = 1024;

/// Who a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The cluster.
    pub cluster_id: u64,
    /// This member.
    pub member_id: u64,
    /// The members the cluster started with.
    pub initial_members: Vec<u64>,
}

impl Meta {
    /// The file's bytes: magic, version u32, cluster u64, member u64, count u32, members u64
    /// each, then CRC32C of everything before, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&META_MAGIC);
        put_u32(&mut out, META_VERSION);
        put_u64(&mut out, self.cluster_id);
        put_u64(&mut out, self.member_id);
        put_u32(
            &mut out,
            u32::try_from(self.initial_members.len()).unwrap_or(u32::MAX),
        );
        for m in &self.initial_members {
            put_u64(&mut out, *m);
        }
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Parses and verifies the file's bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Meta, DecodeError> {
        let mut r = open_small_file(bytes, &META_MAGIC, META_VERSION, "meta", "meta magic")?;
        let cluster_id = r.u64()?;
        let member_id = r.u64()?;
        let count = r.count("member count", 8)?;
        if count > META_MEMBERS_MAX {
            return Err(DecodeError::Invalid {
                what: "member count above META_MEMBERS_MAX",
            });
        }
        let mut initial_members = Vec::with_capacity(count);
        for _ in 0..count {
            initial_members.push(r.u64()?);
        }
        r.finish()?;
        Ok(Meta {
            cluster_id,
            member_id,
            initial_members,
        })
    }

    /// Reads `dir/meta`; `None` if the directory is not initialized. A meta file that does not
    /// verify is corruption.
    pub fn read<V: Vfs>(vfs: &V, dir: &Path) -> Result<Option<Meta>> {
        let path = dir.join(META_FILE);
        let max = 8 + 4 + 8 + 8 + 4 + 8 * META_MEMBERS_MAX as u64 + 4;
        let Some((bytes, len)) = read_small_file(vfs, &path, max)? else {
            return Ok(None);
        };
        if len > max {
            return Err(StorageError::corrupt(
                &path,
                max,
                format!("meta file of {len} bytes is too long"),
            ));
        }
        Meta::decode(&bytes)
            .map(Some)
            .map_err(|e| StorageError::corrupt(&path, 0, format!("meta file does not verify: {e}")))
    }

    /// Writes `dir/meta` atomically and durably.
    pub fn write<V: Vfs>(&self, vfs: &V, dir: &Path) -> Result<()> {
        if self.initial_members.len() > META_MEMBERS_MAX {
            return Err(StorageError::Invalid(format!(
                "{} initial members exceed the limit of {META_MEMBERS_MAX}",
                self.initial_members.len()
            )));
        }
        replace_file(vfs, dir, META_FILE, META_TMP, &self.encode())
    }
}

/// Name of the file holding the quorum rule a cluster was created with.
pub const QUORUM_FILE: &str = "quorum";
const QUORUM_TMP: &str = "quorum.tmp";
/// Magic number at the start of the quorum file.
pub const QUORUM_MAGIC: [u8; 8] = *b"SYNODQRM";
/// Version of the quorum file format.
pub const QUORUM_VERSION: u32 = 1;
/// Largest quorum file: a weighted rule of 64 voters, with room to spare.
const QUORUM_FILE_BYTES_MAX: u64 = 1024;

/// The quorum rule of the cluster's first configuration, kept beside the meta file.
///
/// It is written *before* the meta file, so an initialized directory (one with a meta file)
/// always has it, unless it was initialized before rules other than majority existed: a
/// missing file reads as majority. Later rules arrive with the configurations the log and
/// snapshots carry; this one is what the first configuration is rebuilt from at a restart.
pub struct QuorumRuleFile;

impl QuorumRuleFile {
    /// The file's bytes: magic, version u32, the rule as the log encodes it, CRC32C of
    /// everything before, little-endian.
    pub fn encode(rule: &paxos::QuorumSpec) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&QUORUM_MAGIC);
        put_u32(&mut out, QUORUM_VERSION);
        crate::codec::encode_quorum_rule(rule, &mut out);
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Parses and verifies the file's bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<paxos::QuorumSpec, DecodeError> {
        let mut r = open_small_file(
            bytes,
            &QUORUM_MAGIC,
            QUORUM_VERSION,
            "quorum file",
            "quorum file magic",
        )?;
        let rule = crate::codec::decode_quorum_rule(&mut r)?;
        r.finish()?;
        Ok(rule)
    }

    /// Reads `dir/quorum`: `None` if there is none. A file that does not verify is corruption.
    pub fn read<V: Vfs>(vfs: &V, dir: &Path) -> Result<Option<paxos::QuorumSpec>> {
        let path = dir.join(QUORUM_FILE);
        let Some((bytes, len)) = read_small_file(vfs, &path, QUORUM_FILE_BYTES_MAX)? else {
            return Ok(None);
        };
        if len > QUORUM_FILE_BYTES_MAX {
            return Err(StorageError::corrupt(
                &path,
                QUORUM_FILE_BYTES_MAX,
                format!("quorum file of {len} bytes is too long"),
            ));
        }
        QuorumRuleFile::decode(&bytes).map(Some).map_err(|e| {
            StorageError::corrupt(&path, 0, format!("quorum file does not verify: {e}"))
        })
    }

    /// Writes `dir/quorum` atomically and durably (tmp, fsync, rename, directory fsync).
    pub fn write<V: Vfs>(vfs: &V, dir: &Path, rule: &paxos::QuorumSpec) -> Result<()> {
        replace_file(
            vfs,
            dir,
            QUORUM_FILE,
            QUORUM_TMP,
            &QuorumRuleFile::encode(rule),
        )
    }
}

#[cfg(test)]
mod quorum_file_tests {
    use super::*;
    use crate::memfs::MemFs;
    use paxos::QuorumSpec;

    #[test]
    fn a_quorum_rule_survives_a_write_and_a_flipped_bit_is_refused() {
        let fs = MemFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        assert_eq!(QuorumRuleFile::read(&fs, dir).unwrap(), None);
        let rule = QuorumSpec::Weighted {
            weights: vec![2, 1, 1],
            phase1: 3,
            phase2: 2,
        };
        QuorumRuleFile::write(&fs, dir, &rule).unwrap();
        assert_eq!(QuorumRuleFile::read(&fs, dir).unwrap(), Some(rule.clone()));
        let mut bytes = QuorumRuleFile::encode(&rule);
        bytes[10] ^= 1;
        assert!(QuorumRuleFile::decode(&bytes).is_err());
    }
}
