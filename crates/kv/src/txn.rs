//! Checking a transaction before it runs, in etcd's order: its shape (sizes, empty keys,
//! nesting), then duplicate writes per branch, then the executed path against the state (puts'
//! leases and keys, then reads' revisions). A transaction that passes cannot fail halfway, so
//! a refusal never leaves half a transaction applied.

use crate::codec::TXN_DEPTH_MAX;
use crate::error::KvError;
use crate::span::{Span, SpanIndex};
use crate::store::KvStore;
use crate::types::*;
use std::collections::BTreeSet;

impl KvStore {
    pub(crate) fn check_txn(&self, t: &TxnRequest) -> Result<(), KvError> {
        self.check_txn_shape(t, 1)?;
        check_intervals(&t.success)?;
        check_intervals(&t.failure)?;
        self.check_path_puts(t)?;
        self.check_path_ranges(t)
    }

    /// `depth`: 1 for the outermost transaction. Every other recursion over a transaction
    /// runs after this one accepted it, so all are bounded by [`TXN_DEPTH_MAX`].
    fn check_txn_shape(&self, t: &TxnRequest, depth: usize) -> Result<(), KvError> {
        if depth > TXN_DEPTH_MAX {
            return Err(KvError::TxnTooDeep {
                depth_max: TXN_DEPTH_MAX,
            });
        }
        // etcd counts each list on its own, per level: nested levels have their own budget.
        let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
        if ops > self.limits.txn_ops_max {
            return Err(KvError::TooManyOps);
        }
        for c in &t.compare {
            self.check_key(&c.key)?;
            if c.range_end.len() > self.limits.key_bytes_max {
                return Err(KvError::RequestTooLarge);
            }
            if let CompareTarget::Value(v) = &c.target {
                if v.len() > self.limits.value_bytes_max {
                    return Err(KvError::RequestTooLarge);
                }
            }
        }
        for op in t.success.iter().chain(&t.failure) {
            match op {
                RequestOp::Range(r) => self.check_range_shape(r)?,
                RequestOp::Put(p) => self.check_put_shape(p)?,
                RequestOp::DeleteRange(d) => self.check_delete_shape(d)?,
                RequestOp::Txn(inner) => self.check_txn_shape(inner, depth + 1)?,
            }
        }
        Ok(())
    }

    /// The branch that will run: compares are evaluated at the revision before the
    /// transaction, nested ones too (as in `exec_txn`).
    fn executed_branch<'t>(&self, t: &'t TxnRequest) -> &'t [RequestOp] {
        if self.compares_hold(&t.compare, self.revision) {
            &t.success
        } else {
            &t.failure
        }
    }

    fn check_path_puts(&self, t: &TxnRequest) -> Result<(), KvError> {
        for op in self.executed_branch(t) {
            match op {
                RequestOp::Put(p) => self.check_put_state(p)?,
                RequestOp::Txn(inner) => self.check_path_puts(inner)?,
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
            }
        }
        Ok(())
    }

    fn check_path_ranges(&self, t: &TxnRequest) -> Result<(), KvError> {
        for op in self.executed_branch(t) {
            match op {
                RequestOp::Range(r) => self.check_read_revision(r.revision)?,
                RequestOp::Txn(inner) => self.check_path_ranges(inner)?,
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => {}
            }
        }
        Ok(())
    }
}

/// The keys one branch may put and the spans it may delete.
type Writes<'a> = (BTreeSet<&'a [u8]>, Vec<Span<'a>>);

/// etcd's duplicate-key rule for one branch (its `checkIntervals`), rule for rule:
///
/// - this level's deletes are collected first;
/// - each nested transaction's puts may not repeat a put seen so far nor fall in a delete seen
///   so far (this level's, and earlier nested transactions'); a key put in both its `success`
///   and its `failure` is fine, since only one runs;
/// - then that nested transaction's deletes join the set;
/// - finally this level's puts may repeat no put and fall in no delete.
///
/// Deletes may overlap deletes. As in etcd, a put in an earlier nested transaction and a
/// delete in a later one are not caught; the store then keeps the later write (see
/// `push_version`). One deliberate difference: etcd's interval tree reads a `range_end` of
/// `"\0"` as an empty interval, so it misses a put under a delete of "every key from here
/// on"; we use the documented meaning of `"\0"` and refuse that put.
fn check_intervals(ops: &[RequestOp]) -> Result<Writes<'_>, KvError> {
    let mut dels: Vec<Span<'_>> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(Span::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<&[u8]> = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        let index = SpanIndex::new(&dels);
        for k in &puts_then {
            if puts.contains(k) || index.covers(k) {
                return Err(KvError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().copied());
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || index.covers(k) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    let index = SpanIndex::new(&dels);
    for op in ops {
        if let RequestOp::Put(p) = op {
            if !puts.insert(&p.key) || index.covers(&p.key) {
                return Err(KvError::DuplicateKey);
            }
        }
    }
    Ok((puts, dels))
}
