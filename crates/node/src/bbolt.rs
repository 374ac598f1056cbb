//! A read-only reader of bbolt database files (etcd's backend, go.etcd.io/bbolt 1.3), for
//! bringing an etcd backup across (`etcd_backup.rs`). No well-kept Rust crate reads the
//! format, and only the part a reader needs is here: the meta pages, and the B+tree of
//! buckets. The freelist is ignored (a reader never allocates).
//!
//! # The format, as read here (all integers little-endian)
//!
//! - A file is pages of `page_size` bytes. Each page starts with a 16-byte header: `id` u64,
//!   `flags` u16 (0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist), `count` u16 (elements),
//!   `overflow` u32 (the page spans `overflow + 1` pages).
//! - Pages 0 and 1 are meta pages. After the header: `magic` u32 (0xED0CDAED), `version` u32
//!   (2), `page_size` u32, `flags` u32, the root bucket (`root` page u64, `sequence` u64),
//!   `freelist` page u64, `pgid` u64 (the first page never allocated), `txid` u64, and a
//!   `checksum` u64: FNV-1a 64 of the 56 bytes before it. The valid meta with the higher
//!   `txid` is the database's state (bbolt writes them alternately, so a torn write of one
//!   leaves the other).
//! - A branch page holds `count` 16-byte elements: `pos` u32, `ksize` u32, `pgid` u64; the
//!   key is at the element's own offset plus `pos`.
//! - A leaf page holds `count` 16-byte elements: `flags` u32 (0x01: the value is a bucket),
//!   `pos` u32, `ksize` u32, `vsize` u32; the key is at the element's offset plus `pos`, the
//!   value right after it.
//! - A bucket's value is its root page u64 and sequence u64; root 0 means an inline bucket,
//!   whose one leaf page (header and elements) follows in the value itself.
//!
//! Nothing in the file is trusted: every offset is bounds-checked, every page must be below
//! `pgid` and inside the file, a tree deeper than [`DEPTH_MAX`] or visiting a page twice is
//! refused, and every refusal is a [`BoltError`] naming the page.

use std::collections::BTreeSet;
use thiserror::Error;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER_BYTES: usize = 16;
const ELEMENT_BYTES: usize = 16;
const META_BYTES: usize = 64;
const FLAG_BRANCH: u16 = 0x01;
const FLAG_LEAF: u16 = 0x02;
const FLAG_BUCKET_VALUE: u32 = 0x01;
const BUCKET_HEADER_BYTES: usize = 16;
/// The most levels a tree may have: a B+tree of 4 KiB pages is far shallower for any file
/// that fits on a disk; a deeper one is a loop or damage.
pub const DEPTH_MAX: usize = 32;
/// Page sizes bbolt may use (its page size is the operating system's).
const PAGE_BYTES_MIN: usize = 1024;
const PAGE_BYTES_MAX: usize = 64 * 1024;

/// Why a bbolt file could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BoltError {
    /// Neither meta page is valid.
    #[error("no valid bbolt meta page (page 0: {page0}; page 1: {page1})")]
    NoMeta {
        /// What is wrong with page 0's.
        page0: String,
        /// What is wrong with page 1's.
        page1: String,
    },
    /// A page of the tree is damaged or out of place.
    #[error("bbolt page {page}: {what}")]
    Page {
        /// The page.
        page: u64,
        /// What is wrong.
        what: String,
    },
}

/// A bucket: its root page, or its inline leaf page's bytes.
#[derive(Clone, Copy, Debug)]
pub enum Bucket<'a> {
    /// Stored in its own pages from this root.
    Root(u64),
    /// Stored in its parent's leaf: one leaf page's bytes.
    Inline(&'a [u8]),
}

/// One leaf entry of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value (a bucket header, when `is_bucket`).
    pub value: &'a [u8],
    /// Whether the value is a nested bucket.
    pub is_bucket: bool,
}

/// An open bbolt file (its bytes in memory).
#[derive(Debug)]
pub struct BoltFile<'a> {
    data: &'a [u8],
    page_bytes: usize,
    root: u64,
    /// Pages at or above this were never allocated.
    pgid_end: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A meta page's fields: (page size, root page, pgid end, txid).
fn read_meta(data: &[u8], offset: usize) -> Result<(usize, u64, u64, u64), String> {
    let meta = data
        .get(offset + PAGE_HEADER_BYTES..offset + PAGE_HEADER_BYTES + META_BYTES)
        .ok_or("the file ends before it")?;
    let field = |at| u32_at(meta, at).unwrap_or(0);
    let wide = |at| u64_at(meta, at).unwrap_or(0);
    if field(0) != MAGIC {
        return Err("not a bbolt meta page (bad magic)".into());
    }
    if field(4) != VERSION {
        return Err(format!("bbolt format version {}, not {VERSION}", field(4)));
    }
    if fnv1a64(&meta[..56]) != wide(56) {
        return Err("checksum mismatch".into());
    }
    let page_bytes = field(8) as usize;
    if !(PAGE_BYTES_MIN..=PAGE_BYTES_MAX).contains(&page_bytes) || !page_bytes.is_power_of_two() {
        return Err(format!("page size {page_bytes}"));
    }
    Ok((page_bytes, wide(16), wide(40), wide(48)))
}

impl<'a> BoltFile<'a> {
    /// Opens the database in `data` at its newest valid meta page.
    pub fn open(data: &'a [u8]) -> Result<BoltFile<'a>, BoltError> {
        let meta0 = read_meta(data, 0);
        // Page 1 sits one page in; page 0's size is the one to trust if it is valid, else
        // bbolt's usual 4 KiB.
        let page1_at = meta0.as_ref().map_or(4096, |m| m.0);
        let meta1 = read_meta(data, page1_at).and_then(|m| {
            if m.0 == page1_at {
                Ok(m)
            } else {
                Err(format!("page size {} where page 1 is at {page1_at}", m.0))
            }
        });
        let (page_bytes, root, pgid_end, _) = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.3 > a.3 {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(page0), Err(page1)) => return Err(BoltError::NoMeta { page0, page1 }),
        };
        let file = BoltFile {
            data,
            page_bytes,
            root,
            pgid_end,
        };
        let pages_in_file = (data.len() / page_bytes) as u64;
        if pgid_end > pages_in_file {
            return Err(BoltError::Page {
                page: pgid_end,
                what: format!(
                    "the meta page counts {pgid_end} pages and the file holds {pages_in_file} \
                     (truncated?)"
                ),
            });
        }
        Ok(file)
    }

    /// The top-level bucket named `name`, if there is one.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        let top = self.entries(Bucket::Root(self.root))?;
        let Some(e) = top.iter().find(|e| e.key == name) else {
            return Ok(None);
        };
        if !e.is_bucket {
            return Err(BoltError::Page {
                page: self.root,
                what: format!(
                    "top-level key {:?} is not a bucket",
                    String::from_utf8_lossy(name)
                ),
            });
        }
        self.nested(e).map(Some)
    }

    /// The bucket an entry holds.
    fn nested(&self, e: &Entry<'a>) -> Result<Bucket<'a>, BoltError> {
        let bad = |what: &str| BoltError::Page {
            page: self.root,
            what: format!("bucket {:?}: {what}", String::from_utf8_lossy(e.key)),
        };
        let root = u64_at(e.value, 0).ok_or_else(|| bad("its header is cut short"))?;
        if root != 0 {
            return Ok(Bucket::Root(root));
        }
        e.value
            .get(BUCKET_HEADER_BYTES..)
            .filter(|page| page.len() >= PAGE_HEADER_BYTES)
            .map(Bucket::Inline)
            .ok_or_else(|| bad("its inline page is cut short"))
    }

    /// Every leaf entry of `bucket`, in key order.
    pub fn entries(&self, bucket: Bucket<'a>) -> Result<Vec<Entry<'a>>, BoltError> {
        let mut out = Vec::new();
        match bucket {
            Bucket::Inline(page) => {
                leaf_entries(page, 0, &mut out)?;
            }
            Bucket::Root(root) => {
                let mut seen = BTreeSet::new();
                self.walk(root, 0, &mut seen, &mut out)?;
            }
        }
        Ok(out)
    }

    fn walk(
        &self,
        id: u64,
        depth: usize,
        seen: &mut BTreeSet<u64>,
        out: &mut Vec<Entry<'a>>,
    ) -> Result<(), BoltError> {
        let bad = |what: String| BoltError::Page { page: id, what };
        if depth > DEPTH_MAX {
            return Err(bad(format!("the tree is deeper than {DEPTH_MAX} levels")));
        }
        if !seen.insert(id) {
            return Err(bad("reached twice in one tree".into()));
        }
        let page = self.page(id)?;
        match u16_at(page, 8).unwrap_or(0) {
            FLAG_LEAF => leaf_entries(page, id, out),
            FLAG_BRANCH => {
                let count = usize::from(u16_at(page, 10).unwrap_or(0));
                for i in 0..count {
                    let at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
                    let child = u64_at(page, at + 8)
                        .ok_or_else(|| bad(format!("branch element {i} past the page")))?;
                    self.walk(child, depth + 1, seen, out)?;
                }
                Ok(())
            }
            flags => Err(bad(format!(
                "flags {flags:#x} where a branch or leaf page belongs"
            ))),
        }
    }

    /// Page `id`'s bytes, with its overflow pages.
    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let bad = |what: String| BoltError::Page { page: id, what };
        if id < 2 || id >= self.pgid_end {
            return Err(bad(format!(
                "outside the allocated pages [2, {})",
                self.pgid_end
            )));
        }
        let start = (id as usize)
            .checked_mul(self.page_bytes)
            .ok_or_else(|| bad("offset overflows".into()))?;
        let header = self
            .data
            .get(start..start + PAGE_HEADER_BYTES)
            .ok_or_else(|| bad("past the end of the file".into()))?;
        if u64_at(header, 0) != Some(id) {
            return Err(bad(format!(
                "its header says page {}",
                u64_at(header, 0).unwrap_or(0)
            )));
        }
        let overflow = u32_at(header, 12).unwrap_or(0) as usize;
        let len = (overflow + 1)
            .checked_mul(self.page_bytes)
            .ok_or_else(|| bad("overflow count overflows".into()))?;
        self.data
            .get(start..start.saturating_add(len))
            .ok_or_else(|| bad(format!("its {overflow} overflow pages run past the file")))
    }
}

/// The entries of one leaf page (`page` starts at its header); `id` names it in errors.
fn leaf_entries<'a>(page: &'a [u8], id: u64, out: &mut Vec<Entry<'a>>) -> Result<(), BoltError> {
    let bad = |what: String| BoltError::Page { page: id, what };
    if u16_at(page, 8) != Some(FLAG_LEAF) {
        return Err(bad("not a leaf page".into()));
    }
    let count = usize::from(u16_at(page, 10).unwrap_or(0));
    for i in 0..count {
        let at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        let field = |k: usize| {
            u32_at(page, at + 4 * k)
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("leaf element {i} past the page")))
        };
        let (flags, pos, ksize, vsize) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let key_at = at.saturating_add(pos);
        let value_at = key_at.saturating_add(ksize);
        let key = page.get(key_at..value_at);
        let value = page.get(value_at..value_at.saturating_add(vsize));
        let (Some(key), Some(value)) = (key, value) else {
            return Err(bad(format!(
                "leaf element {i}'s key or value runs past the page"
            )));
        };
        out.push(Entry {
            key,
            value,
            is_bucket: flags as u32 & FLAG_BUCKET_VALUE != 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn meta_page(id: u64, root: u64, pgid_end: u64, txid: u64) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        p[..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&0x04u16.to_le_bytes());
        let m = &mut p[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + META_BYTES];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&(PAGE as u32).to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[40..48].copy_from_slice(&pgid_end.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..56]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        p
    }

    /// A leaf page's bytes (`len` long) with `entries` (key, value, is_bucket).
    fn leaf(id: u64, entries: &[(&[u8], &[u8], bool)], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&FLAG_LEAF.to_le_bytes());
        p[10..12].copy_from_slice(&(entries.len() as u16).to_le_bytes());
        let mut data_at = PAGE_HEADER_BYTES + entries.len() * ELEMENT_BYTES;
        for (i, (k, v, b)) in entries.iter().enumerate() {
            let at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
            let fields = [
                u32::from(*b),
                (data_at - at) as u32,
                k.len() as u32,
                v.len() as u32,
            ];
            for (j, f) in fields.iter().enumerate() {
                p[at + 4 * j..at + 4 * j + 4].copy_from_slice(&f.to_le_bytes());
            }
            p[data_at..data_at + k.len()].copy_from_slice(k);
            p[data_at + k.len()..data_at + k.len() + v.len()].copy_from_slice(v);
            data_at += k.len() + v.len();
        }
        p
    }

    /// A file: metas, a root leaf at page 2 holding bucket "b" rooted at page 3 (a leaf with
    /// two keys) and inline bucket "i" with one key.
    fn sample() -> Vec<u8> {
        let inline_page = leaf(0, &[(b"ik", b"iv", false)], PAGE_HEADER_BYTES + 32 + 4);
        let mut inline_value = vec![0u8; BUCKET_HEADER_BYTES];
        inline_value.extend_from_slice(&inline_page);
        let mut b_value = vec![0u8; BUCKET_HEADER_BYTES];
        b_value[..8].copy_from_slice(&3u64.to_le_bytes());
        let mut file = meta_page(0, 2, 4, 1);
        file.extend(meta_page(1, 2, 4, 0));
        file.extend(leaf(
            2,
            &[(b"b", &b_value, true), (b"i", &inline_value, true)],
            PAGE,
        ));
        file.extend(leaf(
            3,
            &[(b"k1", b"v1", false), (b"k2", b"v2", false)],
            PAGE,
        ));
        file
    }

    #[test]
    fn a_file_reads_back_its_buckets_and_entries() {
        let file = sample();
        let db = BoltFile::open(&file).expect("opens");
        let b = db.bucket(b"b").expect("reads").expect("bucket b");
        let got: Vec<_> = db
            .entries(b)
            .expect("entries")
            .iter()
            .map(|e| (e.key.to_vec(), e.value.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"k1".to_vec(), b"v1".to_vec()),
                (b"k2".to_vec(), b"v2".to_vec())
            ]
        );
        let i = db.bucket(b"i").expect("reads").expect("bucket i");
        let got = db.entries(i).expect("entries");
        assert_eq!((got[0].key, got[0].value), (&b"ik"[..], &b"iv"[..]));
        assert!(db.bucket(b"none").expect("reads").is_none());
    }

    #[test]
    fn the_newer_valid_meta_wins_and_a_torn_one_is_skipped() {
        let mut file = sample();
        // Meta 1 newer, pointing at a root that is not a page of the tree.
        let newer = meta_page(1, 3, 4, 5);
        file[PAGE..2 * PAGE].copy_from_slice(&newer);
        let db = BoltFile::open(&file).expect("opens");
        assert!(db.bucket(b"b").expect("reads at meta 1's root").is_none());
        // Tear meta 1: meta 0 is used again.
        file[PAGE + PAGE_HEADER_BYTES + 20] ^= 1;
        let db = BoltFile::open(&file).expect("opens");
        assert!(db.bucket(b"b").expect("reads").is_some());
    }

    /// Every single-byte flip and every truncation of a file either reads or is refused with
    /// an error: never a panic, never a hang.
    #[test]
    fn damage_anywhere_is_an_error_or_a_read_never_a_panic() {
        let file = sample();
        let read_all = |bytes: &[u8]| -> Result<usize, BoltError> {
            let db = BoltFile::open(bytes)?;
            let mut n = 0;
            for name in [&b"b"[..], b"i"] {
                if let Some(b) = db.bucket(name)? {
                    n += db.entries(b)?.len();
                }
            }
            Ok(n)
        };
        assert_eq!(read_all(&file), Ok(3));
        let mut refused = 0;
        // The bytes that matter: both metas' fields, and the two tree pages' headers and
        // elements (the rest is zeros that nothing reads).
        let spots = (0..PAGE_HEADER_BYTES + META_BYTES)
            .chain(PAGE..PAGE + PAGE_HEADER_BYTES + META_BYTES)
            .chain(2 * PAGE..2 * PAGE + 160)
            .chain(3 * PAGE..3 * PAGE + 64);
        for at in spots {
            for bit in [0x01u8, 0x80] {
                let mut bad = file.clone();
                bad[at] ^= bit;
                if read_all(&bad).is_err() {
                    refused += 1;
                }
            }
        }
        assert!(refused > 100, "damage went unnoticed too often: {refused}");
        for len in (0..file.len()).step_by(97) {
            assert!(read_all(&file[..len]).is_err(), "truncated to {len}");
        }
        assert_eq!(
            BoltFile::open(&[]).expect_err("empty").to_string(),
            "no valid bbolt meta page (page 0: the file ends before it; page 1: the file \
             ends before it)"
        );
    }

    #[test]
    fn a_tree_that_loops_is_refused() {
        let mut file = sample();
        // Page 3 becomes a branch pointing at itself.
        let at = 3 * PAGE;
        file[at + 8..at + 10].copy_from_slice(&FLAG_BRANCH.to_le_bytes());
        file[at + 10..at + 12].copy_from_slice(&1u16.to_le_bytes());
        file[at + 16 + 8..at + 16 + 16].copy_from_slice(&3u64.to_le_bytes());
        let db = BoltFile::open(&file).expect("opens");
        let b = db.bucket(b"b").expect("reads").expect("bucket");
        let err = db.entries(b).expect_err("a loop");
        assert!(err.to_string().contains("reached twice"), "{err}");
    }
}
