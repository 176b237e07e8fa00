//! One instance: the partitions it holds, its hooks (migrate in on assignment, catch up
//! on election, drop on release), and the write and read paths.
//!
//! A write to partition `p` is accepted only by `p`'s leader, and only after:
//! 1. the write is applied here (tentatively) with the next version of the leadership;
//! 2. the leadership is confirmed by the store (`PartitionLeadership::txn` with no ops:
//!    its guard holds only while this instance leads `p` at its epoch and its session is
//!    alive) — a deposed or paused leader fails here;
//! 3. every other replica of `p` (and every instance syncing `p` from here) applied it.
//!
//! So every acknowledged write is on every replica a later leader can be chosen from,
//! and an instance that takes `p` over pulls from the one it takes it from after
//! subscribing to its writes, so nothing falls between the copy and the stream.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use conclave_client::group::{GroupHooks, MemberId, Membership, PartitionId, Role, Router};
use conclave_client::{Epoch, Error as SdkError};
use serde::{Deserialize, Serialize};

use crate::store::{Entry, PartitionData};

/// The header that marks a request forwarded by another instance (forwarded once only).
pub const FORWARDED: &str = "x-kv-forwarded";
/// How long a call to another instance may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Not the leader, and the request was forwarded already (or there is no leader).
    #[error("not the leader of partition {partition}; the leader is {leader:?}")]
    NotLeader {
        /// The partition.
        partition: u32,
        /// Its leader's HTTP endpoint, if known.
        leader: Option<String>,
    },
    /// The store refused this instance's leadership (deposed, or its session ended).
    #[error("fenced: {0}")]
    Fenced(SdkError),
    /// Not ready to serve (joining, catching up, a replica not reachable): retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The key does not exist.
    #[error("no such key")]
    NotFound,
}

/// A replication or migration message between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replicate {
    /// The sender's epoch of the partition.
    pub epoch: i64,
    /// What to merge.
    pub entries: Vec<Entry>,
}

/// A subscription: send the partition's writes to `endpoint` from now on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribe {
    /// The subscriber's HTTP endpoint.
    pub endpoint: String,
}

/// One accepted write, as logged for the example's tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// Who accepted it.
    pub member: String,
    /// The partition.
    pub partition: u32,
    /// At which leadership epoch.
    pub epoch: i64,
    /// Its sequence number in that leadership.
    pub seq: u64,
    /// The key.
    pub key: String,
}

/// An instance's state.
pub struct Node {
    /// Its member id.
    pub me: MemberId,
    /// Its HTTP endpoint (`http://ip:port`).
    pub endpoint: String,
    /// Routing (its own view of the group's map).
    pub router: Router,
    /// Set once joined.
    pub membership: OnceLock<Membership>,
    data: Mutex<BTreeMap<PartitionId, PartitionData>>,
    /// Partitions led and caught up, with their epochs: only these accept writes.
    serving: Mutex<BTreeMap<PartitionId, Epoch>>,
    /// Instances syncing a partition from here, by partition.
    subscribers: Mutex<BTreeMap<PartitionId, BTreeSet<String>>>,
    http: reqwest::Client,
    accept_log: Option<Mutex<std::fs::File>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// A new instance.
    pub fn new(
        me: MemberId,
        endpoint: String,
        router: Router,
        accept_log: Option<std::fs::File>,
    ) -> anyhow::Result<Node> {
        Ok(Node {
            me,
            endpoint,
            router,
            membership: OnceLock::new(),
            data: Mutex::default(),
            serving: Mutex::default(),
            subscribers: Mutex::default(),
            http: reqwest::Client::builder().timeout(PEER_TIMEOUT).build()?,
            accept_log: accept_log.map(Mutex::new),
        })
    }

    fn http_of(&self, member: &MemberId) -> Option<String> {
        self.router
            .members()
            .into_iter()
            .find(|m| &m.id == member)
            .map(|m| m.http_endpoint)
            .filter(|e| !e.is_empty())
    }

    /// Pulls partition `p` from `endpoint` and merges it.
    async fn pull(&self, p: PartitionId, endpoint: &str) -> Result<usize, reqwest::Error> {
        let entries: Vec<Entry> = self
            .http
            .get(format!("{endpoint}/internal/partitions/{}", p.0))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let count = entries.len();
        lock(&self.data).entry(p).or_default().merge_all(entries);
        Ok(count)
    }

    /// The entries of `p` held here.
    pub fn partition(&self, p: PartitionId) -> Vec<Entry> {
        lock(&self.data)
            .get(&p)
            .map(PartitionData::entries)
            .unwrap_or_default()
    }

    /// Adds a subscriber of `p`.
    pub fn subscribe(&self, p: PartitionId, endpoint: String) {
        lock(&self.subscribers).entry(p).or_default().insert(endpoint);
    }

    /// Merges a replication message from the leader of `p`; refused if it comes from an
    /// older leadership than this instance knows.
    pub fn replicated(&self, p: PartitionId, message: Replicate) -> Result<(), KvError> {
        let known = self.router.map().partition(p).map_or(0, |info| info.epoch.0);
        if message.epoch < known {
            return Err(KvError::Fenced(SdkError::StaleEpoch {
                group: String::new(),
                partition: p.0,
                current: known,
            }));
        }
        lock(&self.data).entry(p).or_default().merge_all(message.entries);
        Ok(())
    }

    /// Reads `key` (from the leader of its partition).
    pub async fn get(&self, key: &str, forwarded: bool) -> Result<String, KvError> {
        let p = self.router.partition_for(key);
        if lock(&self.serving).contains_key(&p) {
            return lock(&self.data)
                .get(&p)
                .and_then(|d| d.get(key))
                .map(|e| e.value.clone())
                .ok_or(KvError::NotFound);
        }
        let leader = self.leader_endpoint(p)?;
        if forwarded {
            return Err(KvError::NotLeader {
                partition: p.0,
                leader: Some(leader),
            });
        }
        let response = self
            .http
            .get(format!("{leader}/kv/{key}"))
            .header(FORWARDED, "1")
            .send()
            .await
            .map_err(|e| KvError::Unavailable(format!("forwarding to {leader}: {e}")))?;
        match response.status().as_u16() {
            200 => response
                .text()
                .await
                .map_err(|e| KvError::Unavailable(e.to_string())),
            404 => Err(KvError::NotFound),
            status => Err(KvError::Unavailable(format!("the leader answered {status}"))),
        }
    }

    fn leader_endpoint(&self, p: PartitionId) -> Result<String, KvError> {
        self.router
            .leader(p)
            .map(|m| m.http_endpoint)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| KvError::Unavailable(format!("partition {} has no leader right now", p.0)))
    }

    /// Writes `key` = `value` (on the leader of its partition; forwarded there once).
    pub async fn put(&self, key: &str, value: &str, forwarded: bool) -> Result<(), KvError> {
        let p = self.router.partition_for(key);
        let membership = self
            .membership
            .get()
            .ok_or_else(|| KvError::Unavailable("not joined yet".into()))?;
        let leadership = match membership.leadership(p) {
            Ok(leadership) => leadership,
            Err(_) => return self.forward_put(p, key, value, forwarded).await,
        };
        if lock(&self.serving).get(&p) != Some(&leadership.epoch()) {
            return Err(KvError::Unavailable(format!(
                "partition {} is still catching up",
                p.0
            )));
        }
        // 1. Applied here first (tentatively): a catch-up pull after a later leadership
        //    change sees it if step 2 passed before that change.
        let entry = {
            let mut data = lock(&self.data);
            let partition = data.entry(p).or_default();
            let version = partition.next_version(leadership.epoch().0);
            let entry = Entry {
                key: key.to_string(),
                value: value.to_string(),
                version,
            };
            partition.merge(entry.clone());
            entry
        };
        // 2. Still the leader at this epoch, says the store.
        leadership
            .txn(std::iter::empty())
            .await
            .map_err(KvError::Fenced)?;
        // 3. On every other replica.
        self.replicate(p, leadership.epoch(), &entry).await?;
        if let Some(log) = &self.accept_log {
            let line = serde_json::to_string(&Accepted {
                member: self.me.0.clone(),
                partition: p.0,
                epoch: leadership.epoch().0,
                seq: entry.version.seq,
                key: key.to_string(),
            })
            .unwrap_or_default();
            let mut file = lock(log);
            let _ = writeln!(file, "{line}");
        }
        Ok(())
    }

    async fn forward_put(
        &self,
        p: PartitionId,
        key: &str,
        value: &str,
        forwarded: bool,
    ) -> Result<(), KvError> {
        let leader = self.leader_endpoint(p)?;
        if forwarded || leader == self.endpoint {
            return Err(KvError::NotLeader {
                partition: p.0,
                leader: Some(leader),
            });
        }
        let response = self
            .http
            .put(format!("{leader}/kv/{key}"))
            .header(FORWARDED, "1")
            .body(value.to_string())
            .send()
            .await
            .map_err(|e| KvError::Unavailable(format!("forwarding to {leader}: {e}")))?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(KvError::Unavailable(format!("the leader answered {status}"))),
        }
    }

    /// Sends `entry` to every other replica of `p` and every subscriber; all replicas
    /// the map lists must take it. A subscriber the map does not list (its move was
    /// given up) is dropped when it fails.
    async fn replicate(&self, p: PartitionId, epoch: Epoch, entry: &Entry) -> Result<(), KvError> {
        let listed: BTreeSet<String> = self
            .router
            .replicas(p)
            .iter()
            .filter(|m| **m != self.me)
            .filter_map(|m| self.http_of(m))
            .collect();
        let subscribed = lock(&self.subscribers).get(&p).cloned().unwrap_or_default();
        let message = Replicate {
            epoch: epoch.0,
            entries: vec![entry.clone()],
        };
        for target in listed.union(&subscribed) {
            let sent = self
                .http
                .post(format!("{target}/internal/partitions/{}/replicate", p.0))
                .json(&message)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(error) = sent {
                if listed.contains(target) {
                    return Err(KvError::Unavailable(format!(
                        "replica {target} did not take the write: {error}"
                    )));
                }
                if let Some(set) = lock(&self.subscribers).get_mut(&p) {
                    set.remove(target);
                }
            }
        }
        Ok(())
    }
}

/// The hooks of an instance.
pub struct Hooks(pub Arc<Node>);

impl GroupHooks for Hooks {
    async fn on_assigned(&self, partition: PartitionId, _role: Role, previous_owner: Option<MemberId>) {
        let node = &self.0;
        // Copy from the leader (it has every acknowledged write), else from the previous
        // owner; subscribe first so writes after the copy reach us too.
        let mut sources: Vec<MemberId> = Vec::new();
        if let Some(leader) = node
            .router
            .map()
            .partition(partition)
            .and_then(|p| p.leader.clone())
        {
            sources.push(leader);
        }
        sources.extend(previous_owner);
        sources.retain(|m| *m != node.me);
        sources.dedup();
        for source in sources {
            let Some(endpoint) = node.http_of(&source) else {
                continue;
            };
            let subscribed = node
                .http
                .post(format!(
                    "{endpoint}/internal/partitions/{}/subscribe",
                    partition.0
                ))
                .json(&Subscribe {
                    endpoint: node.endpoint.clone(),
                })
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if subscribed.is_err() {
                continue;
            }
            match node.pull(partition, &endpoint).await {
                Ok(count) => {
                    tracing::info!(partition = partition.0, from = %source, keys = count, "partition copied in");
                    lock(&node.data).entry(partition).or_default();
                    return;
                }
                Err(error) => tracing::warn!(partition = partition.0, from = %source, %error, "copy failed"),
            }
        }
        lock(&node.data).entry(partition).or_default();
    }

    async fn on_unassigned(&self, partition: PartitionId, _new_owner: Option<MemberId>) {
        let node = &self.0;
        lock(&node.serving).remove(&partition);
        lock(&node.data).remove(&partition);
        lock(&node.subscribers).remove(&partition);
    }

    async fn on_leader_elected(&self, partition: PartitionId, epoch: Epoch) {
        let node = &self.0;
        // Catch up from the other replicas (the previous leader among them, while it
        // releases): writes it accepted before the change are there.
        let others: Vec<MemberId> = node
            .router
            .replicas(partition)
            .into_iter()
            .filter(|m| *m != node.me)
            .collect();
        for member in others {
            if let Some(endpoint) = node.http_of(&member) {
                if let Err(error) = node.pull(partition, &endpoint).await {
                    tracing::debug!(partition = partition.0, from = %member, %error, "catch-up pull failed");
                }
            }
        }
        lock(&node.serving).insert(partition, epoch);
        tracing::info!(partition = partition.0, epoch = epoch.0, "leading");
    }

    async fn on_leader_lost(&self, partition: PartitionId) {
        lock(&self.0.serving).remove(&partition);
        tracing::info!(partition = partition.0, "no longer leading");
    }
}
