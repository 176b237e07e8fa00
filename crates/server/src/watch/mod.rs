//! The watch hub side of one `Watch` stream: many watchers multiplexed on one gRPC
//! stream, fed from the state machine's commits, replaying history from storage when a
//! watcher starts in the past or the stream falls behind.
//!
//! No gap, no duplicate: the session subscribes to commits before it reads anything, and
//! each watcher remembers the next revision it owes the client (`next_rev`); history
//! replay and live commits both deliver exactly the revisions `>= next_rev` and advance it.
//! Bounded memory: commits arrive through a fixed-size broadcast ring (a session that lags
//! re-reads the missed revisions from storage instead), history is read in windows, and
//! the outgoing buffer is bounded; a client that stops reading for longer than
//! [`SessionSettings::slow_client_timeout`] has its stream ended with a clear error.

pub mod matcher;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Access, Auth, Credentials};
use conclave_consensus::Node;
use conclave_contract::errors;
use conclave_mvcc::{CommitOutcome, MvccError};
use conclave_proto::etcdserverpb::watch_request::RequestUnion;
use conclave_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::{broadcast, mpsc};
use tonic::{Status, Streaming};

use crate::errors::mvcc_status;
use crate::metrics::WatchStreamCount;
use matcher::{fragments, WatchSpec};

/// Revisions read from history per step of a replay.
const REPLAY_WINDOW: i64 = 256;
/// etcd's message for a watch id that is already in use on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// Tunables of watch sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Responses buffered for a client before the session waits for it.
    pub buffer: usize,
    /// How long the session waits for a client that does not read before ending its
    /// stream.
    pub slow_client_timeout: Duration,
    /// Interval of progress notifications to watchers that asked for them.
    pub progress_interval: Duration,
    /// Responses larger than this are split for watchers that asked for fragments.
    pub max_response_bytes: usize,
}

struct Watcher {
    spec: WatchSpec,
    next_rev: i64,
}

/// Why a session ended early.
enum End {
    /// The client went away.
    ClientGone,
    /// The client stopped reading.
    TooSlow,
}

/// One `Watch` gRPC stream.
pub struct Session {
    node: Node,
    /// Who opened the stream: every watcher it creates is checked for read access, as of
    /// the auth state when it is created.
    auth: Auth,
    credentials: Credentials,
    settings: SessionSettings,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_auto_id: i64,
    /// Every revision up to this one has been handled by the session (delivered to or
    /// skipped by every watcher): what a progress notification may claim.
    processed: i64,
}

/// What a request asks of the session loop.
enum Requested {
    Nothing,
    Progress,
}

/// The next request, or never once the client closed its sending side.
async fn next_request(
    requests: &mut Option<Streaming<WatchRequest>>,
) -> Result<Option<WatchRequest>, Status> {
    match requests {
        Some(stream) => stream.message().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// Runs the session until the client closes its side or goes away, keeping `counted`
    /// up to date with its number of watchers.
    pub async fn run(
        node: Node,
        (auth, credentials): (Auth, Credentials),
        settings: SessionSettings,
        requests: Streaming<WatchRequest>,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
        mut counted: WatchStreamCount,
    ) {
        // Subscribe first: every commit after this point reaches the session.
        let mut commits = node.subscribe_commits();
        let processed = node.store().current_revision();
        let mut session = Session {
            node,
            auth,
            credentials,
            settings,
            out,
            watchers: BTreeMap::new(),
            next_auto_id: 0,
            processed,
        };
        let mut requests = Some(requests);
        let mut progress = tokio::time::interval(settings.progress_interval);
        progress.tick().await;
        let out = session.out.clone();
        let ended = loop {
            let step = tokio::select! {
                request = next_request(&mut requests) => match request {
                    Ok(Some(request)) => match session.handle(request).await {
                        Ok(Requested::Progress) => session.answer_progress(&mut commits).await,
                        Ok(Requested::Nothing) => Ok(()),
                        Err(end) => Err(end),
                    },
                    // The client closed its sending side: as etcd, keep sending events
                    // until it closes the stream.
                    Ok(None) => {
                        requests = None;
                        Ok(())
                    }
                    Err(status) => {
                        tracing::debug!(error = %status, "watch stream closed by the client");
                        break End::ClientGone;
                    }
                },
                commit = commits.recv() => session.on_commit(commit).await,
                _ = progress.tick() => session.notify_progress(false).await,
                _ = out.closed() => break End::ClientGone,
            };
            if let Err(end) = step {
                break end;
            }
            counted.set_watchers(session.watchers.len());
        };
        if let End::TooSlow = ended {
            tracing::warn!(
                watchers = session.watchers.len(),
                "ending a watch stream whose client stopped reading"
            );
        }
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.member_id(),
            revision,
            raft_term: self.node.term(),
        })
    }

    /// Queues a response, waiting (bounded) for a slow client. One buffer slot is kept for
    /// the final error that tells a slow client why its stream ends.
    async fn send(&self, response: WatchResponse) -> Result<(), End> {
        let deadline = tokio::time::Instant::now() + self.settings.slow_client_timeout;
        loop {
            if self.out.is_closed() {
                return Err(End::ClientGone);
            }
            if self.out.capacity() > 1 {
                return self.out.send(Ok(response)).await.map_err(|_| End::ClientGone);
            }
            if tokio::time::Instant::now() >= deadline {
                let why = format!(
                    "etcdserver: watch stream canceled: the client did not read {} buffered responses within {:?}; \
                     re-create the watches from the last revision received",
                    self.settings.buffer, self.settings.slow_client_timeout
                );
                let _ = self.out.try_send(Err(Status::resource_exhausted(why)));
                return Err(End::TooSlow);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn on_commit(
        &mut self,
        commit: Result<Arc<CommitOutcome>, broadcast::error::RecvError>,
    ) -> Result<(), End> {
        match commit {
            Ok(commit) => self.deliver(&commit).await,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "watch session lagged; catching up from history");
                self.catch_up().await
            }
            Err(broadcast::error::RecvError::Closed) => Err(End::ClientGone),
        }
    }

    /// Answers a progress request only after handling every commit already published, so
    /// the revision it reports is one whose events have all been sent.
    async fn answer_progress(
        &mut self,
        commits: &mut broadcast::Receiver<Arc<CommitOutcome>>,
    ) -> Result<(), End> {
        loop {
            match commits.try_recv() {
                Ok(commit) => self.deliver(&commit).await?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.catch_up().await?,
                Err(_) => break,
            }
        }
        self.notify_progress(true).await
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<Requested, End> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                self.create(create).await.map(|()| Requested::Nothing)
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    let header = self.header(self.node.store().current_revision());
                    self.send(WatchResponse {
                        header,
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(Requested::Nothing)
            }
            Some(RequestUnion::ProgressRequest(_)) => Ok(Requested::Progress),
            None => Ok(Requested::Nothing),
        }
    }

    async fn create(&mut self, request: WatchCreateRequest) -> Result<(), End> {
        let store = self.node.store().clone();
        let current = store.current_revision();
        let id = if request.watch_id != 0 {
            request.watch_id
        } else {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id
        };
        let refusal = if self.watchers.contains_key(&id) || id < 0 {
            Some(DUPLICATE_ID.to_string())
        } else {
            // As etcd 3.4: a watcher on a range the caller may not read is created
            // canceled, the reason being the Go text of the gRPC error.
            let (key, end) = (&request.key, &request.range_end);
            self.auth
                .authorize(&self.credentials, |caller| caller.check(Access::Read, key, end))
                .await
                .err()
                .map(|_| {
                    format!(
                        "rpc error: code = PermissionDenied desc = {}",
                        errors::PERMISSION_DENIED
                    )
                })
        };
        if let Some(cancel_reason) = refusal {
            let response = WatchResponse {
                header: self.header(current),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason,
                ..Default::default()
            };
            return self.send(response).await;
        }
        let spec = WatchSpec::from_request(&request);
        let start = request.start_revision;
        self.send(WatchResponse {
            header: self.header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await?;
        if start > 0 && start <= current {
            let mut watcher = Watcher {
                spec,
                next_rev: start,
            };
            if self.replay(id, &mut watcher, current).await? {
                self.watchers.insert(id, watcher);
            }
        } else {
            let next_rev = if start > current { start } else { current + 1 };
            self.watchers.insert(id, Watcher { spec, next_rev });
        }
        Ok(())
    }

    /// Sends `watcher` the history from its `next_rev` through `until`. Returns false if
    /// the history was compacted away (the watcher has then been canceled, as in etcd).
    async fn replay(&self, id: i64, watcher: &mut Watcher, until: i64) -> Result<bool, End> {
        while watcher.next_rev <= until {
            let from = watcher.next_rev;
            let to = (from + REPLAY_WINDOW - 1).min(until);
            let store = self.node.store().clone();
            let read = tokio::task::spawn_blocking(move || store.events(from, to, true)).await;
            let events = match read {
                Ok(Ok(events)) => events,
                Ok(Err(MvccError::Compacted)) => {
                    let store = self.node.store();
                    let response = WatchResponse {
                        header: self.header(store.current_revision()),
                        watch_id: id,
                        canceled: true,
                        compact_revision: store.compact_revision(),
                        cancel_reason: MvccError::Compacted.to_string(),
                        ..Default::default()
                    };
                    self.send(response).await?;
                    return Ok(false);
                }
                Ok(Err(e)) => {
                    let _ = self.out.send(Err(mvcc_status(&e))).await;
                    return Err(End::ClientGone);
                }
                Err(e) => {
                    let _ = self.out.send(Err(Status::internal(e.to_string()))).await;
                    return Err(End::ClientGone);
                }
            };
            self.emit(id, &watcher.spec, watcher.spec.select(&events), to)
                .await?;
            watcher.next_rev = to + 1;
        }
        Ok(true)
    }

    /// Sends selected events to watcher `id`, split into fragments when it asked for them.
    async fn emit(
        &self,
        id: i64,
        spec: &WatchSpec,
        events: Vec<conclave_proto::mvccpb::Event>,
        revision: i64,
    ) -> Result<(), End> {
        if events.is_empty() {
            return Ok(());
        }
        let groups = if spec.fragment {
            fragments(events, self.settings.max_response_bytes)
        } else {
            vec![events]
        };
        let last = groups.len() - 1;
        for (i, events) in groups.into_iter().enumerate() {
            let response = WatchResponse {
                header: self.header(revision),
                watch_id: id,
                events,
                fragment: i < last,
                ..Default::default()
            };
            self.send(response).await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, commit: &Arc<CommitOutcome>) -> Result<(), End> {
        self.processed = self.processed.max(commit.revision);
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get(&id) else {
                continue;
            };
            if commit.revision < watcher.next_rev {
                continue;
            }
            if commit.revision > watcher.next_rev {
                // A revision this watcher still owes was never seen live (it started in the
                // future, or the session lagged): read the missing ones from history first.
                let Some(mut watcher) = self.watchers.remove(&id) else {
                    continue;
                };
                if !self.replay(id, &mut watcher, commit.revision - 1).await? {
                    continue;
                }
                self.watchers.insert(id, watcher);
            }
            let Some(watcher) = self.watchers.get_mut(&id) else {
                continue;
            };
            let selected = watcher.spec.select(&commit.events);
            watcher.next_rev = commit.revision + 1;
            let spec = watcher.spec.clone();
            self.emit(id, &spec, selected, commit.revision).await?;
        }
        Ok(())
    }

    async fn catch_up(&mut self) -> Result<(), End> {
        let current = self.node.store().current_revision();
        self.processed = self.processed.max(current);
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(mut watcher) = self.watchers.remove(&id) else {
                continue;
            };
            if self.replay(id, &mut watcher, current).await? {
                self.watchers.insert(id, watcher);
            }
        }
        Ok(())
    }

    /// Progress notifications: on request, one response for the stream (watch id -1, as
    /// etcd); on the timer, one per watcher that asked for them.
    async fn notify_progress(&self, requested: bool) -> Result<(), End> {
        let revision = self.processed;
        if requested {
            return self
                .send(WatchResponse {
                    header: self.header(revision),
                    watch_id: -1,
                    ..Default::default()
                })
                .await;
        }
        for (id, watcher) in &self.watchers {
            if watcher.spec.progress_notify && watcher.next_rev > revision {
                self.send(WatchResponse {
                    header: self.header(revision),
                    watch_id: *id,
                    ..Default::default()
                })
                .await?;
            }
        }
        Ok(())
    }
}
