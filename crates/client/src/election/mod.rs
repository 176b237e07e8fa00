//! Leader election with a fencing epoch.
//!
//! [`Election::campaign`] waits for leadership and returns a [`Leadership`] whose
//! [`Epoch`] is the create revision of its leader key: strictly higher for every later
//! leader of the same election. It fails — rather than waiting forever, as etcd's
//! `Campaign` does — as soon as the campaign's lease is lost.
//!
//! Holding a [`Leadership`] is a belief, not a guarantee: a paused or cut-off process can
//! be deposed without noticing at once. [`Leadership::guard`] turns the belief into a
//! check the store makes: put it in a txn's `when`, and the txn applies only while this
//! leader's key is still the one it created.
//!
//! ```no_run
//! # async fn demo(client: conclave_client::Client) -> conclave_client::Result<()> {
//! use std::time::Duration;
//! use conclave_client::Op;
//!
//! let lease = client.grant_lease(Duration::from_secs(5)).await?;
//! let leadership = client.election("/election/scheduler").campaign(&lease, "node-a").await?;
//! let written = client
//!     .txn()
//!     .when([leadership.guard()])
//!     .then([Op::put("/scheduler/plan", "v2")])
//!     .await?;
//! assert!(written.succeeded, "deposed: the store refused the write");
//! leadership.resign().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::kv::{Get, Put};
use crate::lease::{Lease, LeaseId};
use crate::queue::{Queue, Ticket};
use crate::txn::{Compare, Op};
use crate::watch::{EventKind, Watch};
use crate::Client;

mod candidate;
mod control;
mod registrar;
mod registry;

pub use candidate::{Candidate, CandidateHandle, CandidateSettings, ElectionHooks};
pub use control::{StatusReport, SteppedDown};
pub use registry::{CandidateChange, CandidateChanges, CandidateEntry, CandidateState};

/// A fencing epoch: the create revision of a leader's or lock holder's key. Later
/// holders of the same election or lock always have a higher one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The current leader of an election as seen in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader key.
    pub key: String,
    /// The value the leader proclaimed.
    pub value: Vec<u8>,
    /// The leader's fencing epoch.
    pub epoch: Epoch,
    /// The leader's lease.
    pub lease: Option<LeaseId>,
}

/// An election, by name. Clones share the step-down cooldown.
#[derive(Clone, Debug)]
pub struct Election {
    client: Client,
    name: String,
    queue: Queue,
    prefix: String,
    cooldown_until: Arc<Mutex<Option<Instant>>>,
}

impl Client {
    /// The election called `name` (keys under `name/`, as etcd's Election service uses).
    pub fn election(&self, name: impl Into<String>) -> Election {
        let name = name.into();
        Election {
            client: self.clone(),
            queue: self.queue(name.clone()),
            prefix: format!("{name}/"),
            name,
            cooldown_until: Arc::new(Mutex::new(None)),
        }
    }
}

impl Election {
    /// The election's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the step-down cooldown ends, if one is running.
    pub fn cooldown_until(&self) -> Option<Instant> {
        let guard = self.cooldown_until.lock().unwrap_or_else(|p| p.into_inner());
        guard.filter(|until| *until > Instant::now())
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn start_cooldown(&self, cooldown: Duration) {
        let mut guard = self.cooldown_until.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(Instant::now() + cooldown);
    }

    /// Campaigns with `lease`, proclaiming `value`, and waits until elected. Waits out a
    /// step-down cooldown first. Fails with [`Error::LeaseLost`] as soon as the lease is
    /// lost (withdrawing from the queue), instead of waiting on.
    pub async fn campaign(&self, lease: &Lease, value: impl Into<Vec<u8>>) -> Result<Leadership> {
        let value = value.into();
        if let Some(until) = self.cooldown_until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                lost = lease.lost() => return Err(lost),
            }
        }
        let ticket =
            self.queue
                .take_turn(lease, &value, true)
                .await?
                .ok_or_else(|| Error::LeadershipLost {
                    key: self.prefix.clone(),
                    reason: "the campaign ended without leadership".into(),
                })?;
        Ok(Leadership {
            election: self.clone(),
            ticket,
            lease: lease.clone(),
        })
    }

    /// The current leader, or `None` when nobody is campaigning.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        Ok(self.queue.holder().await?.map(|kv| LeaderInfo {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: kv.value,
            epoch: Epoch(kv.create_revision),
            lease: kv.lease,
        }))
    }

    /// A stream of leader changes: first the current leader (or `None`), then every
    /// change — a new leader, a new proclaimed value, or no leader — in revision order.
    pub async fn observe(&self) -> Result<LeaderStream> {
        let snapshot = self.client.range(Get::prefix(self.prefix.clone())).await?;
        let mut contenders: Contenders = snapshot
            .kvs
            .into_iter()
            .map(|kv| (kv.key, (kv.create_revision, kv.value, kv.lease)))
            .collect();
        let mut events = self
            .client
            .watch(Watch::prefix(self.prefix.clone()).start_revision(snapshot.revision + 1))
            .await?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let leader_of = |contenders: &Contenders| {
                contenders.iter().min_by_key(|(_, (create, _, _))| *create).map(
                    |(key, (create, value, lease))| LeaderInfo {
                        key: String::from_utf8_lossy(key).into_owned(),
                        value: value.clone(),
                        epoch: Epoch(*create),
                        lease: *lease,
                    },
                )
            };
            let mut last = leader_of(&contenders);
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                };
                match event.kind {
                    EventKind::Put => {
                        contenders.insert(
                            event.kv.key.clone(),
                            (event.kv.create_revision, event.kv.value.clone(), event.kv.lease),
                        );
                    }
                    EventKind::Delete => {
                        contenders.remove(&event.kv.key);
                    }
                }
                let leader = leader_of(&contenders);
                if leader != last {
                    last = leader.clone();
                    if tx.send(Ok(leader)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(LeaderStream { events: rx, task })
    }
}

/// The contenders of an election by key: create revision, value, lease.
type Contenders = BTreeMap<Vec<u8>, (i64, Vec<u8>, Option<LeaseId>)>;

/// Leader changes of an election; see [`Election::observe`]. Dropping it stops observing.
pub struct LeaderStream {
    events: mpsc::Receiver<Result<Option<LeaderInfo>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LeaderStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for LeaderStream {
    type Item = Result<Option<LeaderInfo>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Leadership of an election, won by [`Election::campaign`].
#[derive(Debug)]
pub struct Leadership {
    election: Election,
    ticket: Ticket,
    lease: Lease,
}

impl Leadership {
    /// The fencing epoch: the create revision of the leader key.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.ticket.create_revision)
    }

    /// The leader key.
    pub fn key(&self) -> &str {
        &self.ticket.key
    }

    /// The lease the leadership is held under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The compare that holds only while this leadership does: the leader key still
    /// exists with this epoch as its create revision. Put it in a txn's `when` so that a
    /// deposed leader's writes are refused by the store.
    pub fn guard(&self) -> Compare {
        Compare::fencing(&self.ticket)
    }

    /// Resolves when the leadership is lost: the lease is lost (by the local deadline or
    /// the cluster's word), or the leader key was deleted.
    pub async fn lost(&self) -> Error {
        tokio::select! {
            lost = self.lease.lost() => lost,
            lost = self.election.queue.lost(&self.ticket) => lost,
        }
    }

    /// Whether the store still holds this leadership (a linearizable read).
    pub async fn is_held(&self) -> Result<bool> {
        let kv = self.election.client.get(self.ticket.key.clone()).await?;
        Ok(self.ticket.is_current(kv.as_ref()))
    }

    /// Changes the proclaimed value, only while still leader. Not retried once it may
    /// have reached a member (a late duplicate could overwrite a newer value):
    /// [`Error::OutcomeUnknown`] then.
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<()> {
        let response = self
            .election
            .client
            .txn()
            .when([self.guard()])
            .then([Op::Put(
                Put::new(self.ticket.key.clone(), value.into()).lease(self.lease.id()),
            )])
            .await?;
        if response.succeeded {
            Ok(())
        } else {
            Err(Error::LeadershipLost {
                key: self.ticket.key.clone(),
                reason: "the leader key is gone".into(),
            })
        }
    }

    /// Gives up leadership: deletes the leader key, so the next contender takes over at
    /// once. The lease stays alive.
    pub async fn resign(self) -> Result<()> {
        self.election.queue.release(&self.ticket).await.map(|_| ())
    }

    /// Resigns, and keeps this election (and its clones) from campaigning again for
    /// `cooldown`, so that another member takes over.
    pub async fn step_down(self, cooldown: Duration) -> Result<()> {
        self.election.start_cooldown(cooldown);
        self.resign().await
    }
}
