//! Which events a watcher wants, and how a large batch is split into fragments. Pure
//! logic, no I/O.

use conclave_mvcc::{Event, EventKind};
use conclave_proto::etcdserverpb::watch_create_request::FilterType;
use conclave_proto::etcdserverpb::WatchCreateRequest;
use conclave_proto::mvccpb;
use prost::Message;

use crate::convert::event_to_pb;

/// The keys a watcher covers, with etcd's `range_end` conventions: empty = the single key,
/// `"\0"` = every key `>= key`, otherwise `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySelector {
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl KeySelector {
    /// The selector of `key`/`range_end`.
    pub fn new(key: Vec<u8>, range_end: Vec<u8>) -> KeySelector {
        KeySelector { key, range_end }
    }

    /// Whether `candidate` is selected.
    pub fn contains(&self, candidate: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return candidate == self.key.as_slice();
        }
        if candidate < self.key.as_slice() {
            return false;
        }
        self.range_end.as_slice() == b"\0" || candidate < self.range_end.as_slice()
    }
}

/// What one watcher asked for.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// Selected keys.
    pub keys: KeySelector,
    /// Include the previous key-value in events.
    pub prev_kv: bool,
    /// Drop PUT events.
    pub no_put: bool,
    /// Drop DELETE events.
    pub no_delete: bool,
    /// Periodic empty responses carrying the current revision.
    pub progress_notify: bool,
    /// Split responses larger than the request limit.
    pub fragment: bool,
}

impl WatchSpec {
    /// The spec of a create request (unknown filter values are ignored, as etcd does).
    pub fn from_request(request: &WatchCreateRequest) -> WatchSpec {
        let has = |f: FilterType| request.filters.contains(&(f as i32));
        WatchSpec {
            keys: KeySelector::new(request.key.clone(), request.range_end.clone()),
            prev_kv: request.prev_kv,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            progress_notify: request.progress_notify,
            fragment: request.fragment,
        }
    }

    /// The wire form of the events of `events` this watcher wants, in order.
    pub fn select(&self, events: &[Event]) -> Vec<mvccpb::Event> {
        events
            .iter()
            .filter(|e| self.keys.contains(&e.kv.key))
            .filter(|e| match e.kind {
                EventKind::Put => !self.no_put,
                EventKind::Delete => !self.no_delete,
            })
            .map(|e| {
                let mut e = e.clone();
                if !self.prev_kv {
                    e.prev_kv = None;
                }
                event_to_pb(e)
            })
            .collect()
    }
}

/// Splits `events` into consecutive groups whose encoded size stays under `limit` bytes
/// (a single larger event forms a group of its own). Fewer than two groups means no
/// fragmentation is needed.
pub fn fragments(events: Vec<mvccpb::Event>, limit: usize) -> Vec<Vec<mvccpb::Event>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut size = 0usize;
    for event in events {
        let len = event.encoded_len() + 8;
        if !current.is_empty() && size + len > limit {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(event);
    }
    if !current.is_empty() || groups.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_mvcc::KeyValue;

    fn event(kind: EventKind, key: &str, value_len: usize) -> Event {
        Event {
            kind,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![b'v'; value_len],
                ..KeyValue::default()
            },
            prev_kv: Some(KeyValue {
                key: key.as_bytes().to_vec(),
                ..KeyValue::default()
            }),
        }
    }

    #[test]
    fn selectors_follow_etcds_range_end_conventions() {
        let single = KeySelector::new(b"a".to_vec(), Vec::new());
        assert!(single.contains(b"a") && !single.contains(b"ab"));
        let prefix = KeySelector::new(b"a/".to_vec(), b"a0".to_vec());
        assert!(
            prefix.contains(b"a/")
                && prefix.contains(b"a/x")
                && !prefix.contains(b"a0")
                && !prefix.contains(b"a")
        );
        let from = KeySelector::new(b"m".to_vec(), b"\0".to_vec());
        assert!(from.contains(b"m") && from.contains(b"zzz") && !from.contains(b"l"));
        let all = KeySelector::new(b"\0".to_vec(), b"\0".to_vec());
        assert!(all.contains(b"\0") && all.contains(b"anything"));
    }

    #[test]
    fn filters_and_prev_kv_shape_the_selected_events() {
        let events = vec![
            event(EventKind::Put, "a", 1),
            event(EventKind::Delete, "a", 0),
            event(EventKind::Put, "b", 1),
        ];
        let request = WatchCreateRequest {
            key: b"a".to_vec(),
            ..Default::default()
        };
        let spec = WatchSpec::from_request(&request);
        let selected = spec.select(&events);
        assert_eq!(selected.len(), 2);
        assert!(selected.iter().all(|e| e.prev_kv.is_none()));
        let request = WatchCreateRequest {
            key: b"a".to_vec(),
            filters: vec![FilterType::Noput as i32],
            prev_kv: true,
            ..Default::default()
        };
        let selected = WatchSpec::from_request(&request).select(&events);
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].r#type, mvccpb::event::EventType::Delete as i32);
        assert!(selected[0].prev_kv.is_some());
    }

    #[test]
    fn fragments_stay_under_the_limit_and_keep_order() {
        let events: Vec<mvccpb::Event> = (0..10)
            .map(|i| event_to_pb(event(EventKind::Put, &format!("k{i}"), 100)))
            .collect();
        let groups = fragments(events.clone(), 350);
        assert!(groups.len() > 1);
        assert_eq!(groups.concat(), events);
        for group in &groups {
            let size: usize = group.iter().map(|e| e.encoded_len() + 8).sum();
            assert!(size <= 350 || group.len() == 1);
        }
        assert_eq!(fragments(Vec::new(), 10), vec![Vec::<mvccpb::Event>::new()]);
    }
}
