//! A plain in-memory model of etcd's MVCC semantics: every key's full history in a
//! `BTreeMap`, no compaction of data (compaction only moves the readable floor), the
//! event stream as a list, and leases as a map of id → (ttl, remaining ttl) whose
//! attached keys are derived from the keys' latest versions (no separate index). Written
//! for clarity, not speed, independently of the store's record layout.

use conclave_mvcc::*;
use std::collections::BTreeMap;

/// One change of a key: (revision, sub-revision, version or `None` for a delete).
type Change = (i64, i64, Option<KeyValue>);

#[derive(Clone, Debug)]
pub struct Model {
    pub hist: BTreeMap<Vec<u8>, Vec<Change>>,
    pub current: i64,
    pub compact: i64,
    /// Every event ever, with `prev_kv` filled when the key had a live version.
    pub events: Vec<Event>,
    /// Granted leases: id → (ttl, remaining ttl at the last checkpoint).
    pub leases: BTreeMap<i64, (i64, i64)>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            hist: BTreeMap::new(),
            current: 1,
            compact: 0,
            events: Vec::new(),
            leases: BTreeMap::new(),
        }
    }
}

/// State of one request being applied.
struct Exec {
    rev: i64,
    sub: i64,
    base: i64,
}

impl Exec {
    fn visible(&self) -> i64 {
        if self.sub > 0 {
            self.rev
        } else {
            self.base
        }
    }
}

fn in_range(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

impl Model {
    fn at(&self, k: &[u8], rev: i64) -> Option<KeyValue> {
        self.hist
            .get(k)?
            .iter()
            .rev()
            .find(|(r, _, _)| *r <= rev)
            .and_then(|(_, _, v)| v.clone())
    }

    fn latest(&self, k: &[u8]) -> Option<KeyValue> {
        self.hist.get(k)?.last().and_then(|(_, _, v)| v.clone())
    }

    fn live_in(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.hist
            .keys()
            .filter(|k| in_range(key, end, k))
            .filter_map(|k| self.at(k, rev))
            .collect()
    }

    /// etcd's Range with `visible` as the latest revision.
    pub fn range_at(&self, req: &RangeRequest, visible: i64) -> Result<RangeResponse> {
        validate_range(req)?;
        let rev = if req.revision <= 0 {
            visible
        } else if req.revision > visible {
            return Err(MvccError::FutureRevision);
        } else if req.revision < self.compact {
            return Err(MvccError::Compacted);
        } else {
            req.revision
        };
        let mut kvs = self.live_in(&req.key, &req.range_end, rev);
        let count = kvs.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: vec![],
                more: false,
                count,
            });
        }
        let f = |min: i64, max: i64, v: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        kvs.retain(|kv| {
            f(req.min_mod_revision, req.max_mod_revision, kv.mod_revision)
                && f(
                    req.min_create_revision,
                    req.max_create_revision,
                    kv.create_revision,
                )
        });
        let descending = req.sort_order == SortOrder::Descend;
        let sorted = descending || req.sort_target != SortTarget::Key;
        if sorted {
            kvs.sort_by(|a, b| {
                let o = match req.sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                if descending {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse { kvs, more, count })
    }

    /// Live keys whose latest version carries lease `id`, in key order.
    pub fn attached(&self, id: i64) -> Vec<Vec<u8>> {
        self.hist
            .keys()
            .filter(|k| self.latest(k).is_some_and(|kv| kv.lease == id))
            .cloned()
            .collect()
    }

    /// What `Store::lease(id)` must answer.
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        let &(ttl, remaining_ttl) = self.leases.get(&id)?;
        Some(LeaseInfo {
            id,
            ttl,
            remaining_ttl,
            keys: self.attached(id),
        })
    }

    /// What `Store::leases()` must answer (no keys).
    pub fn lease_list(&self) -> Vec<LeaseInfo> {
        self.leases
            .iter()
            .map(|(&id, &(ttl, remaining_ttl))| LeaseInfo {
                id,
                ttl,
                remaining_ttl,
                keys: vec![],
            })
            .collect()
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.range_at(req, self.current)
    }

    /// Applies one request; on error the model is unchanged.
    pub fn apply(&mut self, req: &WriteRequest) -> Result<WriteResponse> {
        let saved = self.clone();
        let mut ex = Exec {
            rev: self.current + 1,
            sub: 0,
            base: self.current,
        };
        let res = self.apply_inner(req, &mut ex);
        match res {
            Ok(r) => {
                if ex.sub > 0 {
                    self.current = ex.rev;
                }
                Ok(r)
            }
            Err(e) => {
                *self = saved;
                Err(e)
            }
        }
    }

    fn apply_inner(&mut self, req: &WriteRequest, ex: &mut Exec) -> Result<WriteResponse> {
        Ok(match req {
            WriteRequest::Put(p) => {
                validate_put(p)?;
                WriteResponse::Put(self.put(p, ex)?)
            }
            WriteRequest::DeleteRange(d) => {
                validate_delete_range(d)?;
                WriteResponse::DeleteRange(self.delete(d, ex))
            }
            WriteRequest::Txn(t) => {
                validate_txn(t, usize::MAX)?;
                WriteResponse::Txn(self.txn(t, ex)?)
            }
            WriteRequest::Compact { revision } => {
                if *revision <= self.compact {
                    return Err(MvccError::Compacted);
                }
                if *revision > self.current {
                    return Err(MvccError::FutureRevision);
                }
                self.compact = *revision;
                WriteResponse::Compact
            }
            WriteRequest::LeaseGrant { id, ttl } => {
                if *id == 0 {
                    return Err(MvccError::LeaseNotFound);
                }
                if *ttl > 9_000_000_000 {
                    return Err(MvccError::LeaseTtlTooLarge);
                }
                if self.leases.contains_key(id) {
                    return Err(MvccError::LeaseExists);
                }
                self.leases.insert(*id, (*ttl, 0));
                WriteResponse::LeaseGrant { id: *id, ttl: *ttl }
            }
            WriteRequest::LeaseRevoke { id } => {
                if self.leases.remove(id).is_none() {
                    return Err(MvccError::LeaseNotFound);
                }
                for key in self.attached(*id) {
                    let d = DeleteRangeRequest {
                        key,
                        ..Default::default()
                    };
                    self.delete(&d, ex);
                }
                WriteResponse::LeaseRevoke
            }
            WriteRequest::LeaseCheckpoint { checkpoints } => {
                for cp in checkpoints {
                    if let Some(l) = self.leases.get_mut(&cp.id) {
                        l.1 = cp.remaining_ttl;
                    }
                }
                WriteResponse::LeaseCheckpoint
            }
        })
    }

    /// A put; a standalone put checks the lease before the key (etcd).
    fn put(&mut self, p: &PutRequest, ex: &mut Exec) -> Result<PutResponse> {
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Err(MvccError::LeaseNotFound);
        }
        let prev = self.latest(&p.key);
        if (p.ignore_value || p.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(ex.rev, |k| k.create_revision),
            mod_revision: ex.rev,
            version: prev.as_ref().map_or(1, |k| k.version + 1),
            value: if p.ignore_value {
                prev.clone().unwrap().value
            } else {
                p.value.clone()
            },
            lease: if p.ignore_lease {
                prev.clone().unwrap().lease
            } else {
                p.lease
            },
        };
        self.hist
            .entry(p.key.clone())
            .or_default()
            .push((ex.rev, ex.sub, Some(kv.clone())));
        ex.sub += 1;
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn delete(&mut self, d: &DeleteRangeRequest, ex: &mut Exec) -> DeleteRangeResponse {
        let victims: Vec<KeyValue> = self
            .hist
            .keys()
            .filter(|k| in_range(&d.key, &d.range_end, k))
            .filter_map(|k| self.latest(k))
            .collect();
        for prev in &victims {
            self.hist.get_mut(&prev.key).unwrap().push((ex.rev, ex.sub, None));
            ex.sub += 1;
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: prev.key.clone(),
                    mod_revision: ex.rev,
                    ..Default::default()
                },
                prev_kv: Some(prev.clone()),
            });
        }
        DeleteRangeResponse {
            deleted: victims.len() as i64,
            prev_kvs: if d.prev_kv { victims } else { vec![] },
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kvs: Vec<KeyValue> = self
            .hist
            .keys()
            .filter(|k| in_range(&c.key, &c.range_end, k))
            .filter_map(|k| self.latest(k))
            .collect();
        let check = |kv: &KeyValue| {
            let o = match &c.target {
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(v) => kv.create_revision.cmp(v),
                CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
            };
            match c.result {
                CompareResult::Equal => o.is_eq(),
                CompareResult::NotEqual => o.is_ne(),
                CompareResult::Greater => o.is_gt(),
                CompareResult::Less => o.is_lt(),
            }
        };
        if kvs.is_empty() {
            return !matches!(c.target, CompareTarget::Value(_)) && check(&KeyValue::default());
        }
        kvs.iter().all(check)
    }

    /// Which branch every txn on the path takes, decided before any op runs (etcd).
    fn path(&self, t: &TxnRequest, out: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| self.compare(c));
        out.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                self.path(n, out);
            }
        }
    }

    fn ops_on_path<'a>(t: &'a TxnRequest, path: &[bool], i: &mut usize, out: &mut Vec<&'a RequestOp>) {
        let ok = path[*i];
        *i += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Txn(n) => Self::ops_on_path(n, path, i, out),
                other => out.push(other),
            }
        }
    }

    fn txn(&mut self, t: &TxnRequest, ex: &mut Exec) -> Result<TxnResponse> {
        let mut path = Vec::new();
        self.path(t, &mut path);
        let mut ops = Vec::new();
        Self::ops_on_path(t, &path, &mut 0, &mut ops);
        for op in &ops {
            if let RequestOp::Put(p) = op {
                if (p.ignore_value || p.ignore_lease) && self.latest(&p.key).is_none() {
                    return Err(MvccError::KeyNotFound);
                }
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return Err(MvccError::LeaseNotFound);
                }
            }
        }
        for op in &ops {
            if let RequestOp::Range(r) = op {
                if r.revision > 0 && r.revision > self.current {
                    return Err(MvccError::FutureRevision);
                }
                if r.revision > 0 && r.revision < self.compact {
                    return Err(MvccError::Compacted);
                }
            }
        }
        self.run_txn(t, &path, &mut 0, ex)
    }

    fn run_txn(
        &mut self,
        t: &TxnRequest,
        path: &[bool],
        i: &mut usize,
        ex: &mut Exec,
    ) -> Result<TxnResponse> {
        let ok = path[*i];
        *i += 1;
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(r, ex.visible())?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p, ex)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d, ex)),
                RequestOp::Txn(n) => ResponseOp::Txn(self.run_txn(n, path, i, ex)?),
            });
        }
        Ok(TxnResponse {
            succeeded: ok,
            responses,
        })
    }

    /// The events a store must still return for `[start, end]` after compaction: nothing
    /// below the compact revision; at it, only puts that are their key's last change in
    /// that revision, without prev_kv (the replaced version was compacted away).
    pub fn events(&self, start: i64, end: i64, prev_kv: bool) -> Result<Vec<Event>> {
        if start < self.compact {
            return Err(MvccError::Compacted);
        }
        let (start, end) = (start.max(1), end.min(self.current));
        let c = self.compact;
        let mut out = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let rev = e.kv.mod_revision;
            if rev < start || rev > end {
                continue;
            }
            if rev == c {
                let superseded = self.events[i + 1..]
                    .iter()
                    .any(|later| later.kv.mod_revision == c && later.kv.key == e.kv.key);
                if e.kind == EventKind::Delete || superseded {
                    continue;
                }
            }
            let mut e = e.clone();
            if !prev_kv || rev == c {
                e.prev_kv = None;
            }
            out.push(e);
        }
        Ok(out)
    }
}
