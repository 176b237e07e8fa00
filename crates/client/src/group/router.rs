//! Routing from a cached map that follows the group's changes.

use std::sync::Arc;
use std::time::Duration;

use conclave_controller::{MemberId, PartitionId};
use tokio::sync::watch;

use super::feed::MapFeed;
use super::map::{GroupMap, MapView, MemberInfo};
use crate::error::{Error, Result};
use crate::Client;

/// Routing for a group: which partition owns a key, who leads it and where to reach
/// them, from a map kept current by a `WatchMap` stream (resumed by generation across
/// failures). Cheap to clone; clones share the map. A [`super::Membership`] has one; a
/// client that only routes (an application's own clients) opens one with
/// [`super::Group::router`].
#[derive(Clone, Debug)]
pub struct Router {
    map: watch::Receiver<MapView>,
    _follower: Option<Arc<Follower>>,
}

/// Stops the follow task with its last router.
#[derive(Debug)]
struct Follower(tokio::task::AbortHandle);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Router {
    pub(crate) fn from_receiver(map: watch::Receiver<MapView>) -> Router {
        Router { map, _follower: None }
    }

    /// A router following `group` in the background; returns once the first map is in.
    pub(crate) async fn follow(client: Client, group: String) -> Result<Router> {
        let mut feed = MapFeed::new(client, group.clone());
        let (event, revision) = feed.next().await?;
        let mut map = GroupMap {
            group,
            generation: 0,
            revision: 0,
            partitions: Vec::new(),
            members: Default::default(),
        };
        map.apply(event, revision)
            .map_err(|gap| Error::InvalidArgument(gap.to_string()))?;
        feed.applied(map.generation);
        let (tx, rx) = watch::channel(Arc::new(map));
        let task = tokio::spawn(async move {
            loop {
                let (event, revision) = match feed.next().await {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::warn!(%error, "routing map follower stopped");
                        return;
                    }
                };
                let mut next = (**tx.borrow()).clone();
                match next.apply(event, revision) {
                    Ok(()) => {
                        feed.applied(next.generation);
                        tx.send_replace(Arc::new(next));
                    }
                    Err(gap) => {
                        tracing::debug!(%gap, "routing map out of step; reading it again");
                        feed.resync();
                    }
                }
            }
        });
        Ok(Router {
            map: rx,
            _follower: Some(Arc::new(Follower(task.abort_handle()))),
        })
    }

    /// The map now.
    pub fn map(&self) -> MapView {
        self.map.borrow().clone()
    }

    /// The map's generation now.
    pub fn generation(&self) -> u64 {
        self.map.borrow().generation
    }

    /// The partition that owns `key` (docs/partitions.md: the routing hash).
    pub fn partition_for(&self, key: impl AsRef<[u8]>) -> PartitionId {
        self.map.borrow().partition_for(key.as_ref())
    }

    /// The leader of `partition` with its registration (endpoints), if it has one.
    pub fn leader(&self, partition: PartitionId) -> Option<MemberInfo> {
        self.map.borrow().leader(partition).cloned()
    }

    /// The members holding a replica of `partition` (any stage).
    pub fn replicas(&self, partition: PartitionId) -> Vec<MemberId> {
        self.map.borrow().replicas(partition)
    }

    /// The registered members.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.map.borrow().members.values().cloned().collect()
    }

    /// Waits for the next change of the map and returns it.
    pub async fn changed(&mut self) -> Result<MapView> {
        self.map.changed().await.map_err(|_| Error::Unavailable {
            message: "the map follower stopped".into(),
            attempts: 0,
        })?;
        Ok(self.map.borrow_and_update().clone())
    }

    /// Waits until `condition` holds for the map (at most `timeout`); returns that map.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        condition: impl Fn(&GroupMap) -> bool,
    ) -> Result<MapView> {
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let map = self.map.borrow_and_update().clone();
                if condition(&map) {
                    return Ok(map);
                }
                self.changed().await?;
            }
        })
        .await;
        waited.unwrap_or(Err(Error::Timeout(timeout)))
    }
}
