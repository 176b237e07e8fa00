//! Which key ranges a user may read or write: the union of its roles' permissions, merged
//! into disjoint intervals, as etcd's `rangePermCache` does. Pure: no store, no I/O.
//!
//! A request is permitted when its whole range lies inside one merged interval (a single
//! key when `range_end` is empty, `[key, ∞)` when it is `"\0"`). The auth records under
//! [`super::records::AUTH`] are cut out of every non-root user's intervals, whatever its
//! grants say: a grant over the whole keyspace does not expose password hashes.

use conclave_contract::keys::prefix_end;

use super::records::{Perm, RoleRecord, AUTH};

/// What a request does to a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads keys (range, compare, watch, prev_kv).
    Read,
    /// Changes keys (put, delete, lease revoke).
    Write,
}

/// `[start, end)`; `end == None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

/// etcd's `(key, range_end)` of a permission as an interval.
fn interval(key: &[u8], range_end: &[u8]) -> Interval {
    match range_end {
        [] => {
            let mut end = key.to_vec();
            end.push(0);
            Interval {
                start: key.to_vec(),
                end: Some(end),
            }
        }
        [0] => Interval {
            start: key.to_vec(),
            end: None,
        },
        end => Interval {
            start: key.to_vec(),
            end: Some(end.to_vec()),
        },
    }
}

/// Sorts and merges overlapping or touching intervals; drops empty ones.
fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| i.end.as_ref().is_none_or(|end| *end > i.start));
    intervals.sort_by(|a, b| a.start.cmp(&b.start));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match merged.last_mut() {
            Some(last) if last.end.as_ref().is_none_or(|end| *end >= next.start) => {
                last.end = match (last.end.take(), next.end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => merged.push(next),
        }
    }
    merged
}

/// Removes `[cut.start, cut.end)` from every interval (splitting those it falls inside).
fn cut_out(intervals: Vec<Interval>, cut: &Interval) -> Vec<Interval> {
    let mut out = Vec::with_capacity(intervals.len() + 1);
    for i in intervals {
        let cut_end = cut.end.as_deref();
        // Part before the cut.
        if i.start < cut.start {
            let end = match &i.end {
                Some(end) if end.as_slice() <= cut.start.as_slice() => Some(end.clone()),
                _ => Some(cut.start.clone()),
            };
            out.push(Interval {
                start: i.start.clone(),
                end,
            });
        }
        // Part after the cut.
        if let Some(cut_end) = cut_end {
            let after_start = i.start.as_slice().max(cut_end).to_vec();
            let reaches_past = i.end.as_ref().is_none_or(|end| end.as_slice() > cut_end);
            if reaches_past {
                out.push(Interval {
                    start: after_start,
                    end: i.end.clone(),
                });
            }
        }
    }
    merge(out)
}

/// A user's effective permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

impl PermissionSet {
    /// The union of `roles`' permissions, with the auth records cut out.
    pub fn of<'a>(roles: impl IntoIterator<Item = &'a RoleRecord>) -> PermissionSet {
        let mut read = Vec::new();
        let mut write = Vec::new();
        for role in roles {
            for p in &role.permissions {
                let i = interval(&p.key, &p.range_end);
                if matches!(p.perm, Perm::Read | Perm::ReadWrite) {
                    read.push(i.clone());
                }
                if matches!(p.perm, Perm::Write | Perm::ReadWrite) {
                    write.push(i);
                }
            }
        }
        let reserved = Interval {
            start: AUTH.to_vec(),
            end: Some(prefix_end(AUTH)),
        };
        PermissionSet {
            read: cut_out(merge(read), &reserved),
            write: cut_out(merge(write), &reserved),
        }
    }

    /// Whether `access` to etcd's range `(key, range_end)` is permitted.
    pub fn allows(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let intervals = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        match range_end {
            [] => intervals
                .iter()
                .any(|i| i.start.as_slice() <= key && i.end.as_ref().is_none_or(|end| key < end.as_slice())),
            [0] => intervals
                .iter()
                .any(|i| i.start.as_slice() <= key && i.end.is_none()),
            end => {
                if end <= key {
                    // An empty range reads nothing; permit it where its start is permitted.
                    return self.allows(access, key, &[]);
                }
                intervals
                    .iter()
                    .any(|i| i.start.as_slice() <= key && i.end.as_ref().is_none_or(|e| end <= e.as_slice()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::records::PermissionRecord;

    fn role(perms: &[(Perm, &[u8], &[u8])]) -> RoleRecord {
        RoleRecord {
            permissions: perms
                .iter()
                .map(|(perm, key, range_end)| PermissionRecord {
                    perm: *perm,
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_single_key_grant_permits_that_key_only() {
        let set = PermissionSet::of([&role(&[(Perm::Read, b"a", b"")])]);
        assert!(set.allows(Access::Read, b"a", b""));
        assert!(!set.allows(Access::Read, b"a\0", b""));
        assert!(!set.allows(Access::Read, b"a", b"b"));
        assert!(!set.allows(Access::Write, b"a", b""));
    }

    #[test]
    fn a_prefix_grant_permits_every_range_inside_it() {
        let set = PermissionSet::of([&role(&[(Perm::ReadWrite, b"/app/", b"/app0")])]);
        assert!(set.allows(Access::Write, b"/app/x", b""));
        assert!(set.allows(Access::Read, b"/app/", b"/app0"));
        assert!(set.allows(Access::Read, b"/app/a", b"/app/b"));
        assert!(!set.allows(Access::Read, b"/app/", b"/app1"));
        assert!(!set.allows(Access::Read, b"/app/", b"\0"));
        assert!(!set.allows(Access::Read, b"/ap", b""));
    }

    #[test]
    fn touching_grants_of_two_roles_merge() {
        let set = PermissionSet::of([
            &role(&[(Perm::Read, b"a", b"c")]),
            &role(&[(Perm::Read, b"c", b"e")]),
        ]);
        assert!(set.allows(Access::Read, b"a", b"e"));
        assert!(!set.allows(Access::Read, b"a", b"f"));
    }

    #[test]
    fn a_from_key_grant_is_unbounded_but_never_covers_auth_records() {
        let set = PermissionSet::of([&role(&[(Perm::ReadWrite, b"\0", b"\0")])]);
        assert!(set.allows(Access::Read, b"zzz", b"\0"));
        assert!(set.allows(Access::Read, b"/_conclave/groups/g/map", b""));
        assert!(!set.allows(Access::Read, b"/_conclave/auth/users/root", b""));
        assert!(!set.allows(Access::Read, b"\0", b"\0"));
        assert!(set.allows(Access::Read, b"\0", AUTH));
        let after = prefix_end(AUTH);
        assert!(set.allows(Access::Read, &after, b"\0"));
    }

    #[test]
    fn an_inverted_grant_permits_nothing() {
        let set = PermissionSet::of([&role(&[(Perm::Read, b"b", b"a")])]);
        assert!(!set.allows(Access::Read, b"a", b""));
        assert!(!set.allows(Access::Read, b"b", b""));
    }

    #[test]
    fn no_roles_permit_nothing() {
        let set = PermissionSet::of([]);
        assert!(!set.allows(Access::Read, b"a", b""));
    }
}
