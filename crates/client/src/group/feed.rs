//! A group's map events, resumed across broken streams and member failures: after a
//! disconnect the watch is re-opened on another member *after the last generation
//! applied*, so no generation is lost or repeated; when that generation is older than
//! the server's history, the feed starts over from a snapshot.

use conclave_proto::partitionpb as pb;
use conclave_proto::partitionpb::groups_client::GroupsClient;
use tonic::{Code, Streaming};

use crate::error::{Error, Result};
use crate::transport::{backoff, describe};
use crate::Client;

/// The events of one group's map.
pub(crate) struct MapFeed {
    client: Client,
    group: String,
    /// The generation applied last (0: none; ask for a snapshot).
    after: u64,
    stream: Option<(usize, Streaming<pb::MapEvent>)>,
    failures: u32,
    /// Whether the token was renewed since the stream last delivered an event.
    renewed: bool,
}

impl MapFeed {
    /// A feed starting with a snapshot.
    pub(crate) fn new(client: Client, group: String) -> MapFeed {
        MapFeed {
            client,
            group,
            after: 0,
            stream: None,
            failures: 0,
            renewed: false,
        }
    }

    /// Records that everything up to `generation` is applied (the resume point).
    pub(crate) fn applied(&mut self, generation: u64) {
        self.after = generation;
    }

    /// Starts over from a snapshot (after a gap).
    pub(crate) fn resync(&mut self) {
        self.after = 0;
        self.stream = None;
    }

    /// The next event and the revision it reflects. Fails only when the group does not
    /// exist (any more) or the feed cannot reach any member within the retry budget.
    pub(crate) async fn next(&mut self) -> Result<(pb::map_event::Event, i64)> {
        let started = tokio::time::Instant::now();
        loop {
            if self.stream.is_none() {
                self.client.pool().ensure_login().await?;
                let seen = self.client.pool().token_generation();
                let (index, channel) = self.client.pool().current();
                let request = pb::WatchMapRequest {
                    group: self.group.clone(),
                    after_generation: self.after,
                };
                match GroupsClient::new(channel)
                    .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                    .watch_map(request)
                    .await
                {
                    Ok(response) => self.stream = Some((index, response.into_inner())),
                    Err(status) => {
                        // A refused token is renewed once per refusal before the refusal
                        // counts as final.
                        if !self.renewed && self.client.pool().renew_after(&status, seen).await? {
                            self.renewed = true;
                            continue;
                        }
                        self.failed(index, &status, started).await?;
                        continue;
                    }
                }
            }
            let Some((index, stream)) = self.stream.as_mut() else {
                continue;
            };
            let index = *index;
            match stream.message().await {
                Ok(Some(event)) => {
                    self.failures = 0;
                    self.renewed = false;
                    let revision = event.header.as_ref().map_or(0, |h| h.revision);
                    match event.event {
                        Some(pb::map_event::Event::Deleted(_)) => {
                            return Err(Error::Server {
                                code: Code::NotFound,
                                message: format!("group {:?} was deleted", self.group),
                            })
                        }
                        Some(event) => return Ok((event, revision)),
                        None => continue,
                    }
                }
                Ok(None) => {
                    let ended = tonic::Status::unavailable("the member ended the map watch");
                    self.failed(index, &ended, started).await?;
                }
                Err(status) => self.failed(index, &status, started).await?,
            }
        }
    }

    /// Handles a failed open or a broken stream: final errors end the feed, a history
    /// gap restarts from a snapshot, anything else moves to another member after a
    /// backoff.
    async fn failed(
        &mut self,
        index: usize,
        status: &tonic::Status,
        started: tokio::time::Instant,
    ) -> Result<()> {
        self.stream = None;
        match status.code() {
            Code::NotFound | Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated => {
                return Err(Error::from_status(status));
            }
            Code::OutOfRange => {
                tracing::debug!(group = %self.group, error = %status.message(), "map history gone; starting from a snapshot");
                self.after = 0;
                return Ok(());
            }
            _ => {}
        }
        self.failures += 1;
        self.client.pool().fail_over(index, &describe(status));
        let options = self.client.options();
        if started.elapsed() > options.retry_budget {
            return Err(Error::Unavailable {
                message: describe(status),
                attempts: self.failures,
            });
        }
        tracing::debug!(group = %self.group, error = %describe(status), "map watch broken; resuming on another member");
        tokio::time::sleep(backoff(options, self.failures)).await;
        Ok(())
    }
}
