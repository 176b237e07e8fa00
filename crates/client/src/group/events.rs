//! A group's map changes as a stream of typed events, resumable by generation — for
//! callers that pass them on (the HTTP gateway's Server-Sent Events).

use conclave_controller::MemberId;
use conclave_proto::partitionpb as pb;
use tokio::sync::mpsc;

use super::feed::MapFeed;
use super::map::{GroupMap, MemberInfo, PartitionInfo};
use crate::error::Result;
use crate::Client;

/// One change of a group's map.
#[derive(Clone, Debug, PartialEq)]
pub enum MapEvent {
    /// The whole map (first, when watching from generation 0, and again if the resume
    /// point fell out of the server's history).
    Snapshot(GroupMap),
    /// One generation: the partitions it changed, whole.
    Change {
        /// The generation.
        generation: u64,
        /// The store revision it was written at.
        revision: i64,
        /// The partitions it changed.
        partitions: Vec<PartitionInfo>,
    },
    /// Members registered, changed or left (not a generation; `generation` is the map's
    /// at that point).
    Members {
        /// The map's generation.
        generation: u64,
        /// Registered or changed.
        updated: Vec<MemberInfo>,
        /// Left.
        left: Vec<MemberId>,
    },
}

impl MapEvent {
    /// The generation the map is at after this event.
    pub fn generation(&self) -> u64 {
        match self {
            MapEvent::Snapshot(map) => map.generation,
            MapEvent::Change { generation, .. } | MapEvent::Members { generation, .. } => *generation,
        }
    }
}

/// The events of a group's map; see [`super::Group::watch`]. Dropping it stops watching.
pub struct MapEvents {
    events: mpsc::Receiver<Result<MapEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MapEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MapEvents {
    pub(crate) fn start(client: Client, group: String, after: u64) -> MapEvents {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let mut feed = MapFeed::new(client, group);
            feed.applied(after);
            let mut generation = after;
            loop {
                let next = match feed.next().await {
                    Err(error) => Err(error),
                    Ok((event, revision)) => Ok(match event {
                        pb::map_event::Event::Snapshot(map) => {
                            MapEvent::Snapshot(GroupMap::from_snapshot(map, revision))
                        }
                        pb::map_event::Event::Change(change) => MapEvent::Change {
                            generation: change.generation,
                            revision,
                            partitions: change.partitions.into_iter().map(PartitionInfo::from).collect(),
                        },
                        pb::map_event::Event::Members(change) => MapEvent::Members {
                            generation,
                            updated: change.updated.into_iter().map(MemberInfo::from).collect(),
                            left: change.left.into_iter().map(MemberId).collect(),
                        },
                        // The feed reports a deleted group as an error instead.
                        pb::map_event::Event::Deleted(_) => continue,
                    }),
                };
                let failed = next.is_err();
                if let Ok(event) = &next {
                    generation = event.generation();
                    feed.applied(generation);
                }
                if tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        MapEvents { events: rx, task }
    }
}

impl futures::Stream for MapEvents {
    type Item = Result<MapEvent>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}
