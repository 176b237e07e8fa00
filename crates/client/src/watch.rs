//! Watches as a [`Stream`] of events that survives member failures.
//!
//! A [`WatchStream`] remembers the revision of the last event it delivered, and how many
//! events of that revision. When its connection breaks — the member died, was paused, or
//! lost its leader — it reconnects to another member and re-creates the watch from that
//! revision, skipping what it already delivered: every event arrives once, in revision
//! order, with no gap. A compaction past the resume point ends the stream with
//! [`Error::Compacted`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::Channel;
use conclave_proto::etcdserverpb::watch_client::WatchClient;
use conclave_proto::etcdserverpb::{watch_create_request, watch_request, WatchCreateRequest, WatchRequest};
use conclave_proto::mvccpb;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::kv::{prefix_end, KeyValue};
use crate::transport::{backoff, describe};
use crate::Client;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (or its lease ended).
    Delete,
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: the key with its deletion revision as
    /// `mod_revision` and an empty value).
    pub kv: KeyValue,
    /// The key before the change, when asked for with [`Watch::prev_kv`].
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// What to watch: one key, a prefix or a range, from a revision, with filters.
#[derive(Clone, Debug)]
pub struct Watch {
    request: WatchCreateRequest,
}

impl Watch {
    /// Watches one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Watch {
        Watch {
            request: WatchCreateRequest {
                key: key.into(),
                ..WatchCreateRequest::default()
            },
        }
    }

    /// Watches every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Watch {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Watch {
            request: WatchCreateRequest {
                key,
                range_end,
                ..WatchCreateRequest::default()
            },
        }
    }

    /// Watches `[key, end)`.
    pub fn range(key: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Watch {
        Watch {
            request: WatchCreateRequest {
                key: key.into(),
                range_end: end.into(),
                ..WatchCreateRequest::default()
            },
        }
    }

    /// Starts from `revision` (replaying history from there) instead of from now.
    pub fn start_revision(mut self, revision: i64) -> Watch {
        self.request.start_revision = revision;
        self
    }

    /// Includes each key's previous value in its events.
    pub fn prev_kv(mut self) -> Watch {
        self.request.prev_kv = true;
        self
    }

    /// Leaves out put events.
    pub fn no_put(mut self) -> Watch {
        self.request
            .filters
            .push(watch_create_request::FilterType::Noput as i32);
        self
    }

    /// Leaves out delete events.
    pub fn no_delete(mut self) -> Watch {
        self.request
            .filters
            .push(watch_create_request::FilterType::Nodelete as i32);
        self
    }
}

/// Where a watch resumes after a reconnect, so nothing is delivered twice or skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    /// The revision to start from when nothing was delivered yet (0 = "now").
    start: i64,
    /// The revision of the last event delivered (0 = none).
    last_revision: i64,
    /// How many events of `last_revision` were delivered.
    delivered_at_last: usize,
}

impl ResumePoint {
    fn new(start: i64) -> ResumePoint {
        ResumePoint {
            start,
            ..ResumePoint::default()
        }
    }

    /// The start revision for the next watch creation. Resuming *at* the last revision
    /// (not after it) keeps a revision whose events were split across responses whole.
    fn start_revision(&self) -> i64 {
        if self.last_revision > 0 {
            self.last_revision
        } else {
            self.start
        }
    }

    /// A progress notification at `revision`: every event up to it was delivered, so a
    /// reconnect may start after it (a quiet watch then survives compactions).
    fn progress(&mut self, revision: i64) {
        if revision >= self.start_revision() && revision >= self.last_revision {
            *self = ResumePoint::new(revision + 1);
        }
    }

    /// The member refused to resume because history below `compact_revision` is gone.
    /// When that history is only the revision already delivered, nothing was missed:
    /// resume after it. Otherwise the gap is real.
    fn skip_compacted(&mut self, compact_revision: i64) -> bool {
        if self.last_revision > 0 && compact_revision == self.last_revision + 1 {
            *self = ResumePoint::new(compact_revision);
            true
        } else {
            false
        }
    }

    /// The watch was created; a watch "from now" is pinned to the revision after the
    /// creation's so a reconnect does not skip events in between.
    fn created(&mut self, header_revision: i64) {
        if self.start == 0 && self.last_revision == 0 {
            self.start = header_revision + 1;
        }
    }
}

/// Decides, for each event received on one connection, whether it is new.
struct SessionFilter {
    seen_revision: i64,
    seen_at_revision: usize,
}

impl SessionFilter {
    fn new() -> SessionFilter {
        SessionFilter {
            seen_revision: 0,
            seen_at_revision: 0,
        }
    }

    /// Whether an event at `revision` must be delivered; updates `resume` when it is.
    fn admit(&mut self, resume: &mut ResumePoint, revision: i64) -> bool {
        if revision == self.seen_revision {
            self.seen_at_revision += 1;
        } else {
            self.seen_revision = revision;
            self.seen_at_revision = 1;
        }
        if revision < resume.last_revision {
            return false;
        }
        if revision == resume.last_revision {
            if self.seen_at_revision <= resume.delivered_at_last {
                return false;
            }
            resume.delivered_at_last += 1;
            return true;
        }
        resume.last_revision = revision;
        resume.delivered_at_last = 1;
        true
    }
}

/// A stream of watch events; see the [module docs](self). Dropping it cancels the watch.
pub struct WatchStream {
    events: mpsc::Receiver<Result<Event>>,
    created_revision: i64,
    task: tokio::task::JoinHandle<()>,
}

impl WatchStream {
    /// The store revision when the watch was first created.
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

impl Client {
    /// Starts a watch and returns once a member has created it, so no later write is
    /// missed. The stream then reconnects by itself; it ends only with
    /// [`Error::Compacted`] or when dropped.
    pub async fn watch(&self, watch: Watch) -> Result<WatchStream> {
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (created_tx, created_rx) = oneshot::channel();
        let task = tokio::spawn(run(self.clone(), watch.request, events_tx, created_tx));
        match created_rx.await {
            Ok(Ok(created_revision)) => Ok(WatchStream {
                events: events_rx,
                created_revision,
                task,
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Unavailable {
                message: "the watch task ended before the watch was created".into(),
                attempts: 0,
            }),
        }
    }
}

/// How one connection's watch ended.
enum SessionEnd {
    /// The consumer dropped the stream.
    Closed,
    /// The watch must not be resumed.
    Final(Error),
    /// The connection or member failed; resume elsewhere.
    Broken(String),
    /// The member refused the token when the stream was opened ("invalid auth token").
    TokenRefused(tonic::Status),
    /// The member refused the watch as "permission denied" — which etcd also answers
    /// when the token has expired, so it is worth one new login.
    Denied,
}

async fn run(
    client: Client,
    template: WatchCreateRequest,
    events: mpsc::Sender<Result<Event>>,
    created: oneshot::Sender<Result<i64>>,
) {
    let mut resume = ResumePoint::new(template.start_revision);
    let mut created = Some(created);
    let started = Instant::now();
    let mut failures = 0u32;
    // One new login per refusal; reset once a session ran.
    let mut renewed = false;
    loop {
        let seen = client.pool().token_generation();
        let end = match client.pool().ensure_login().await {
            Ok(()) => {
                let (index, channel) = client.pool().current();
                let end = session(
                    channel,
                    &client,
                    &template,
                    &mut resume,
                    &events,
                    &mut created,
                    &mut failures,
                )
                .await;
                (index, end)
            }
            Err(error) => (0, SessionEnd::Final(error)),
        };
        let (index, end) = end;
        // A refusal of the token gets one new login (the stream is then opened again on
        // the same member); a second refusal in a row is final.
        let end = match end {
            SessionEnd::TokenRefused(status) if !renewed => {
                match client.pool().renew_after(&status, seen).await {
                    Ok(true) => {
                        renewed = true;
                        continue;
                    }
                    Ok(false) => SessionEnd::Final(Error::from_status(&status)),
                    Err(error) => SessionEnd::Final(error),
                }
            }
            SessionEnd::TokenRefused(status) => SessionEnd::Final(Error::from_status(&status)),
            SessionEnd::Denied if !renewed => match client.pool().renew(seen).await {
                Ok(true) => {
                    renewed = true;
                    continue;
                }
                Ok(false) => SessionEnd::Final(Error::PermissionDenied),
                Err(error) => SessionEnd::Final(error),
            },
            SessionEnd::Denied => SessionEnd::Final(Error::PermissionDenied),
            other => other,
        };
        let why = match end {
            SessionEnd::Closed => return,
            SessionEnd::Final(error) => {
                match created.take() {
                    Some(created) => {
                        let _ = created.send(Err(error));
                    }
                    None => {
                        let _ = events.send(Err(error)).await;
                    }
                }
                return;
            }
            SessionEnd::Broken(why) => why,
            // Handled above; listed so that a new kind of end is not forgotten here.
            SessionEnd::TokenRefused(status) => describe(&status),
            SessionEnd::Denied => Error::PermissionDenied.to_string(),
        };
        renewed = false;
        failures += 1;
        client.pool().fail_over(index, &why);
        let options = client.options();
        if created.is_some() && started.elapsed() > options.retry_budget {
            if let Some(created) = created.take() {
                let _ = created.send(Err(Error::Unavailable {
                    message: why,
                    attempts: failures,
                }));
            }
            return;
        }
        tracing::debug!(error = %why, resume_at = resume.start_revision(), "watch broken, resuming on another member");
        tokio::select! {
            _ = tokio::time::sleep(backoff(options, failures)) => {}
            _ = events.closed() => return,
        }
    }
}

async fn session(
    channel: Channel,
    client: &Client,
    template: &WatchCreateRequest,
    resume: &mut ResumePoint,
    events: &mpsc::Sender<Result<Event>>,
    created: &mut Option<oneshot::Sender<Result<i64>>>,
    failures: &mut u32,
) -> SessionEnd {
    let (requests_tx, requests_rx) = mpsc::channel::<WatchRequest>(4);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            start_revision: resume.start_revision(),
            progress_notify: true,
            ..template.clone()
        })),
    };
    if requests_tx.send(create).await.is_err() {
        return SessionEnd::Broken("request channel closed".into());
    }
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(requests_rx));
    // Ask the member to refuse the watch when it has no leader (etcd's WithRequireLeader),
    // so a cut-off member does not hold the watch silently.
    request
        .metadata_mut()
        .insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
    let timeout = client.options().request_timeout;
    let mut stream = match tokio::time::timeout(
        timeout,
        WatchClient::new(channel)
            .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
            .watch(request),
    )
    .await
    {
        Err(_) => return SessionEnd::Broken(format!("no answer within {timeout:?}")),
        Ok(Err(status)) if crate::session::is_token_refusal(&status) => {
            return SessionEnd::TokenRefused(status)
        }
        Ok(Err(status)) if status.code() == tonic::Code::PermissionDenied => return SessionEnd::Denied,
        Ok(Err(status)) => return SessionEnd::Broken(describe(&status)),
        Ok(Ok(response)) => response.into_inner(),
    };
    let mut filter = SessionFilter::new();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = events.closed() => return SessionEnd::Closed,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return SessionEnd::Broken("the member closed the watch stream".into()),
            Err(status) if crate::session::is_token_refusal(&status) => {
                return SessionEnd::TokenRefused(status)
            }
            Err(status) if status.code() == tonic::Code::PermissionDenied => return SessionEnd::Denied,
            Err(status) => return SessionEnd::Broken(describe(&status)),
        };
        let header_revision = response.header.as_ref().map_or(0, |h| h.revision);
        if response.canceled {
            if response.compact_revision > 0 {
                if resume.skip_compacted(response.compact_revision) {
                    return SessionEnd::Broken("resuming past a compaction of delivered history".into());
                }
                return SessionEnd::Final(Error::Compacted {
                    compact_revision: Some(response.compact_revision),
                });
            }
            let reason = response.cancel_reason.clone();
            // etcd cancels a watch on a range the user may not read with
            // "rpc error: code = PermissionDenied desc = etcdserver: permission denied";
            // an invalid token is reported the same way.
            if reason.ends_with(conclave_contract::errors::PERMISSION_DENIED) {
                return SessionEnd::Denied;
            }
            if reason.ends_with(conclave_contract::errors::INVALID_AUTH_TOKEN) {
                return SessionEnd::TokenRefused(tonic::Status::unauthenticated(
                    conclave_contract::errors::INVALID_AUTH_TOKEN,
                ));
            }
            // A watch refused at creation for a reason other than a leader problem is the
            // caller's mistake (e.g. a future start revision); retrying cannot help.
            // (etcd puts the whole gRPC error there: "rpc error: code = Unavailable desc =
            // etcdserver: no leader".)
            if created.is_some()
                && !reason.contains(conclave_contract::errors::NO_LEADER)
                && !reason.is_empty()
            {
                return SessionEnd::Final(Error::Server {
                    code: tonic::Code::Unknown,
                    message: reason,
                });
            }
            return SessionEnd::Broken(format!("watch canceled by the member: {reason}"));
        }
        if !response.created && response.events.is_empty() && header_revision > 0 {
            // A progress notification (asked for with `progress_notify`).
            resume.progress(header_revision);
            continue;
        }
        if response.created {
            resume.created(header_revision);
            *failures = 0;
            if let Some(created) = created.take() {
                let _ = created.send(Ok(header_revision));
            }
        }
        for event in response.events {
            let Some(kv) = event.kv else { continue };
            if !filter.admit(resume, kv.mod_revision) {
                continue;
            }
            let kind = if event.r#type == mvccpb::event::EventType::Delete as i32 {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            let event = Event {
                kind,
                kv: kv.into(),
                prev_kv: event.prev_kv.map(KeyValue::from),
            };
            if events.send(Ok(event)).await.is_err() {
                return SessionEnd::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(resume: &mut ResumePoint, revisions: &[i64]) -> Vec<i64> {
        let mut filter = SessionFilter::new();
        revisions
            .iter()
            .copied()
            .filter(|&r| filter.admit(resume, r))
            .collect()
    }

    #[test]
    fn a_resumed_session_skips_exactly_what_was_delivered() {
        let mut resume = ResumePoint::new(5);
        // First connection: revision 5, two events of 6, then it breaks mid-revision 7.
        assert_eq!(deliver(&mut resume, &[5, 6, 6, 7]), vec![5, 6, 6, 7]);
        assert_eq!(resume.start_revision(), 7);
        // The member replays revision 7 in full (two events) and goes on.
        assert_eq!(deliver(&mut resume, &[7, 7, 8]), vec![7, 8]);
        assert_eq!(resume.start_revision(), 8);
        assert_eq!(resume.delivered_at_last, 1);
    }

    #[test]
    fn a_watch_from_now_is_pinned_at_creation() {
        let mut resume = ResumePoint::new(0);
        resume.created(41);
        assert_eq!(resume.start_revision(), 42);
        resume.created(50);
        assert_eq!(resume.start_revision(), 42, "a reconnect must not move the start");
    }

    #[test]
    fn progress_moves_the_resume_point_and_a_compaction_of_delivered_history_is_skipped() {
        let mut resume = ResumePoint::new(0);
        resume.created(10);
        resume.progress(20);
        assert_eq!(resume.start_revision(), 21);
        resume.progress(5);
        assert_eq!(
            resume.start_revision(),
            21,
            "an older progress must not move it back"
        );
        assert_eq!(deliver(&mut resume, &[22, 23]), vec![22, 23]);
        assert!(resume.skip_compacted(24));
        assert_eq!(resume.start_revision(), 24);
        let mut gap = ResumePoint::new(5);
        assert_eq!(deliver(&mut gap, &[5]), vec![5]);
        assert!(!gap.skip_compacted(9), "revisions 6..8 may have been missed");
    }

    #[test]
    fn replayed_older_revisions_are_dropped() {
        let mut resume = ResumePoint::new(1);
        assert_eq!(deliver(&mut resume, &[3, 4]), vec![3, 4]);
        assert_eq!(deliver(&mut resume, &[2, 3, 4, 5]), vec![5]);
    }
}
