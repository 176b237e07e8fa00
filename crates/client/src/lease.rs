//! Leases kept alive in the background, with a local loss deadline.
//!
//! A [`Lease`] renews itself every third of its TTL, failing over between members. It
//! tracks a *local* deadline on the monotonic clock: the send time of the last
//! keep-alive the cluster answered, plus the TTL it granted, minus a safety margin. When
//! that deadline passes without a renewal, or the cluster says the lease is gone,
//! [`Lease::lost`] fires. Because the deadline counts from the *send* time, the server
//! cannot have expired the lease before `lost()` fires (clock rates permitting): code
//! that stops acting as leader on `lost()` never overlaps with a successor.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::etcdserverpb::lease_client::LeaseClient;
use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::transport::{backoff, describe, Idempotency};
use crate::Client;

/// A lease ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// What the cluster says about a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease.
    pub id: LeaseId,
    /// Seconds left (-1 when the lease does not exist).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it, when asked for.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Clone, Debug)]
enum LeaseState {
    Alive { deadline: Instant },
    Lost(String),
}

struct Shared {
    id: LeaseId,
    ttl: Duration,
    state: Arc<watch::Sender<LeaseState>>,
    keep_alive: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

/// A granted lease, kept alive until it is revoked, lost, or every clone is dropped
/// (then it expires on the server after its TTL). Cheap to clone.
#[derive(Clone)]
pub struct Lease {
    shared: Arc<Shared>,
    client: Client,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.shared.id)
            .field("ttl", &self.shared.ttl)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Lease {
    /// The lease ID.
    pub fn id(&self) -> LeaseId {
        self.shared.id
    }

    /// The TTL the cluster granted.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// The local deadline before which the lease is assumed alive, or `None` once lost.
    pub fn deadline(&self) -> Option<Instant> {
        match &*self.shared.state.borrow() {
            LeaseState::Alive { deadline } => Some(*deadline),
            LeaseState::Lost(_) => None,
        }
    }

    /// Whether [`Lease::lost`] has fired.
    pub fn is_lost(&self) -> bool {
        matches!(*self.shared.state.borrow(), LeaseState::Lost(_))
    }

    /// Resolves when the lease can no longer be assumed alive, with the reason as an
    /// [`Error::LeaseLost`]. Resolves at once if it already is.
    pub async fn lost(&self) -> Error {
        let mut state = self.shared.state.subscribe();
        let id = self.shared.id.0;
        loop {
            if let LeaseState::Lost(reason) = &*state.borrow_and_update() {
                return Error::LeaseLost {
                    lease: id,
                    reason: reason.clone(),
                };
            }
            if state.changed().await.is_err() {
                return Error::LeaseLost {
                    lease: id,
                    reason: "the keep-alive task ended".into(),
                };
            }
        }
    }

    /// Revokes the lease (deleting its keys) and stops keeping it alive; [`Lease::lost`]
    /// fires.
    pub async fn revoke(&self) -> Result<()> {
        self.shared.keep_alive.abort();
        self.shared.state.send_if_modified(|state| match state {
            LeaseState::Alive { .. } => {
                *state = LeaseState::Lost("revoked by this client".into());
                true
            }
            LeaseState::Lost(_) => false,
        });
        match self.client.revoke_lease(self.shared.id).await {
            Ok(()) | Err(Error::LeaseNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The safety margin for a TTL: the configured one, at most half the TTL.
fn margin(ttl: Duration, configured: Duration) -> Duration {
    configured.min(ttl / 2)
}

impl Client {
    /// Grants a lease of `ttl` (rounded up to whole seconds, at least 1 s) and starts
    /// keeping it alive.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        let seconds = ttl.as_secs() as i64 + i64::from(ttl.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        // Chosen here, so a retried grant that did apply is recognised by "lease already
        // exists" rather than granting a second lease.
        let id = conclave_contract::lease_id::fresh();
        let sent_at = Instant::now();
        let granted = self
            .pool()
            .call(Idempotency::Idempotent, |channel| async move {
                let answer = LeaseClient::new(channel)
                    .lease_grant(LeaseGrantRequest { ttl: seconds, id })
                    .await;
                match answer {
                    Ok(response) => Ok(response.into_inner().ttl),
                    // Our own earlier attempt applied: the lease is ours, with our TTL.
                    Err(status) if status.message() == conclave_contract::errors::LEASE_EXISTS => Ok(seconds),
                    Err(status) => Err(status),
                }
            })
            .await?;
        let ttl = Duration::from_secs(granted.max(1) as u64);
        let margin = margin(ttl, self.options().lease_safety_margin);
        let deadline = sent_at + ttl - margin;
        let state = Arc::new(watch::Sender::new(LeaseState::Alive { deadline }));
        let task = tokio::spawn(keep_alive(
            self.clone(),
            LeaseId(id),
            ttl,
            margin,
            deadline,
            state.clone(),
        ));
        Ok(Lease {
            shared: Arc::new(Shared {
                id: LeaseId(id),
                ttl,
                state,
                keep_alive: task.abort_handle(),
            }),
            client: self.clone(),
        })
    }

    /// Revokes a lease, deleting the keys attached to it.
    pub async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.pool()
            .call(Idempotency::Idempotent, |channel| async move {
                LeaseClient::new(channel)
                    .lease_revoke(LeaseRevokeRequest { id: id.0 })
                    .await
            })
            .await
            .map(|_| ())
    }

    /// What the cluster says about a lease; `keys` lists its attached keys.
    pub async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseInfo> {
        self.pool()
            .call(Idempotency::Idempotent, |channel| async move {
                LeaseClient::new(channel)
                    .lease_time_to_live(LeaseTimeToLiveRequest { id: id.0, keys })
                    .await
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                LeaseInfo {
                    id: LeaseId(r.id),
                    ttl: r.ttl,
                    granted_ttl: r.granted_ttl,
                    keys: r.keys,
                }
            })
    }

    /// Every live lease.
    pub async fn leases(&self) -> Result<Vec<LeaseId>> {
        self.pool()
            .call(Idempotency::Idempotent, |channel| async move {
                LeaseClient::new(channel)
                    .lease_leases(LeaseLeasesRequest {})
                    .await
            })
            .await
            .map(|r| r.into_inner().leases.into_iter().map(|l| LeaseId(l.id)).collect())
    }

    /// Renews a lease once; returns the TTL left in seconds, or [`Error::LeaseNotFound`].
    pub async fn keep_alive_once(&self, id: LeaseId) -> Result<i64> {
        let ttl = self
            .pool()
            .call(Idempotency::Idempotent, |channel| async move {
                keep_alive_round(&mut None, channel, id).await
            })
            .await?;
        if ttl <= 0 {
            Err(Error::LeaseNotFound)
        } else {
            Ok(ttl)
        }
    }
}

/// An open keep-alive stream to one member.
type KeepAliveStream = (
    mpsc::Sender<LeaseKeepAliveRequest>,
    tonic::Streaming<conclave_proto::etcdserverpb::LeaseKeepAliveResponse>,
);

/// One keep-alive round trip on `stream` (opened on `channel` if needed).
async fn keep_alive_round(
    stream: &mut Option<KeepAliveStream>,
    channel: crate::Channel,
    id: LeaseId,
) -> std::result::Result<i64, tonic::Status> {
    let request = LeaseKeepAliveRequest { id: id.0 };
    if let Some((tx, _)) = stream.as_ref() {
        if tx.send(request).await.is_err() {
            *stream = None;
            return Err(tonic::Status::unavailable("keep-alive stream closed"));
        }
    } else {
        // The first request is queued before the call is made: a server may send the
        // response headers only with its first answer (etcd's Go server does).
        let (tx, rx) = mpsc::channel(1);
        if tx.send(request).await.is_err() {
            return Err(tonic::Status::internal("keep-alive channel closed"));
        }
        let responses = LeaseClient::new(channel)
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        *stream = Some((tx, responses));
    }
    let Some((_, responses)) = stream.as_mut() else {
        return Err(tonic::Status::internal("keep-alive stream missing"));
    };
    match responses.message().await {
        Ok(Some(response)) => Ok(response.ttl),
        Ok(None) => {
            *stream = None;
            Err(tonic::Status::unavailable("keep-alive stream ended"))
        }
        Err(status) => {
            *stream = None;
            Err(status)
        }
    }
}

/// Keeps the lease alive until the local deadline passes or the cluster says it is gone.
async fn keep_alive(
    client: Client,
    id: LeaseId,
    ttl: Duration,
    margin: Duration,
    mut deadline: Instant,
    state: Arc<watch::Sender<LeaseState>>,
) {
    // Three renewals fit in the time the lease is assumed alive.
    let interval = (ttl - margin) / 3;
    let mut next_send = Instant::now() + interval;
    let mut stream: Option<KeepAliveStream> = None;
    let mut stream_endpoint = 0usize;
    let mut failures = 0u32;
    loop {
        tokio::time::sleep_until(next_send.min(deadline)).await;
        if Instant::now() >= deadline {
            lose(
                &client,
                id,
                &state,
                format!("no keep-alive succeeded within the TTL of {ttl:?} minus a margin of {margin:?}"),
            );
            return;
        }
        let seen = client.pool().token_generation();
        let (index, channel) = client.pool().current();
        if index != stream_endpoint {
            stream = None;
            stream_endpoint = index;
        }
        let sent_at = Instant::now();
        // Never spend the whole remaining time on one member: leave room to try another.
        let budget = ((deadline - sent_at) / 2)
            .max(Duration::from_millis(100))
            .min(client.options().request_timeout);
        let answer = tokio::time::timeout(budget, keep_alive_round(&mut stream, channel, id)).await;
        match answer {
            Ok(Ok(granted)) if granted > 0 => {
                failures = 0;
                client.pool().answered(index);
                let renewed = sent_at + Duration::from_secs(granted as u64) - margin;
                // A slow answer to an earlier send never moves the deadline backwards.
                deadline = deadline.max(renewed);
                next_send = sent_at + interval;
                state.send_replace(LeaseState::Alive { deadline });
            }
            Ok(Ok(_)) => {
                lose(
                    &client,
                    id,
                    &state,
                    "the cluster reports the lease expired or revoked".into(),
                );
                return;
            }
            Ok(Err(status)) if crate::session::is_token_refusal(&status) => {
                // The token expired or was dropped: log in again and re-open the stream
                // on the same member (the refusal says nothing about its health).
                stream = None;
                failures += 1;
                if let Err(error) = client.pool().renew_after(&status, seen).await {
                    tracing::debug!(lease = %id, %error, "keep-alive: logging in again failed");
                }
                next_send = Instant::now() + backoff(client.options(), failures).min(interval);
            }
            Ok(Err(status)) => {
                tracing::debug!(lease = %id, error = %describe(&status), "keep-alive failed, failing over");
                stream = None;
                failures += 1;
                client.pool().fail_over(index, &describe(&status));
                next_send = Instant::now() + backoff(client.options(), failures).min(interval);
            }
            Err(_) => {
                tracing::debug!(lease = %id, "keep-alive unanswered, failing over");
                stream = None;
                failures += 1;
                client
                    .pool()
                    .fail_over(index, &format_args!("keep-alive unanswered within {budget:?}"));
                next_send = Instant::now();
            }
        }
    }
}

/// Marks the lease lost and, best effort, revokes it so that a successor need not wait
/// for the server-side expiry.
fn lose(client: &Client, id: LeaseId, state: &watch::Sender<LeaseState>, reason: String) {
    tracing::info!(lease = %id, %reason, "lease lost");
    state.send_replace(LeaseState::Lost(reason));
    let client = client.clone();
    tokio::spawn(async move {
        let _ = client.revoke_lease(id).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_at_most_half_the_ttl() {
        assert_eq!(
            margin(Duration::from_secs(10), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            margin(Duration::from_secs(1), Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }
}
