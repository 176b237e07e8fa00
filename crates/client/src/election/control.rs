//! Control requests answered by a candidate itself, through the store: ping, status
//! and step-down.
//!
//! The requester grants a short lease, watches the reply key `NAME.replies/REQUEST`,
//! then puts the request at `NAME.control/ID/REQUEST` on that lease. The candidate
//! watches `NAME.control/ID/` and answers by putting the reply key on the request's
//! lease; the requester then revokes the lease, which removes both keys (as does the
//! lease's expiry if the requester goes away). A round trip is two replicated writes and
//! two watch deliveries, plus the lease grant and the watch set-up before it.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::registry::{check_id, control_prefix, reply_key, CandidateEntry};
use super::{Election, Epoch, LeaderInfo};
use crate::error::{Error, Result};
use crate::kv::Put;
use crate::lease::LeaseId;
use crate::watch::{EventKind, Watch};
use crate::Client;

/// The largest control request or reply read (anything larger is ignored).
const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// What a requester asks a candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Answer at once.
    Ping,
    /// Report state, epoch and the leader seen.
    Status,
    /// Give up leadership and stay out for the cooldown (the candidate's own when `None`).
    StepDown {
        #[serde(default)]
        cooldown_ms: Option<u64>,
    },
}

/// A request as stored: what is asked and where to answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    #[serde(flatten)]
    pub request: Request,
    pub reply_to: String,
}

/// A candidate's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub id: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub status: Option<StatusReport>,
    #[serde(default)]
    pub stepped_down_epoch: Option<i64>,
}

/// What a candidate reports about itself when asked (see [`Election::status_of`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Its registry entry as it is now (not as last written).
    pub entry: CandidateEntry,
    /// The leader key it last observed.
    #[serde(default)]
    pub leader_key: Option<String>,
    /// The leader's epoch it last observed.
    #[serde(default)]
    pub leader_epoch: Option<i64>,
    /// Whether its client reaches the cluster (it does, to have answered, but it may
    /// have been cut off and be catching up).
    pub connected: bool,
}

/// The outcome of [`Election::request_step_down`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SteppedDown {
    /// The candidate that stepped down.
    pub candidate: String,
    /// The epoch it gave up.
    pub epoch: Epoch,
    /// The leader after it, or `None` if none was elected within the timeout (no other
    /// candidate is campaigning, and the one that stepped down is cooling down).
    pub new_leader: Option<LeaderInfo>,
    /// The registry id of the new leader, when its entry was found.
    pub new_leader_candidate: Option<String>,
    /// From the call to the new leader being seen (or the timeout).
    pub elapsed: Duration,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl Election {
    /// Asks candidate `id` to answer at once; returns the round-trip time of the request
    /// and its reply through the store.
    pub async fn ping(&self, id: &str, timeout: Duration) -> Result<Duration> {
        let sent = Instant::now();
        self.ask(id, Request::Ping, timeout).await?;
        Ok(sent.elapsed())
    }

    /// Asks candidate `id` for its status (answered by the candidate, not read from its
    /// registry entry).
    pub async fn status_of(&self, id: &str, timeout: Duration) -> Result<StatusReport> {
        let reply = self.ask(id, Request::Status, timeout).await?;
        reply.status.ok_or_else(|| Error::Refused {
            id: id.to_string(),
            reason: "the reply carried no status".into(),
        })
    }

    /// Asks the leading candidate (or `candidate`, which must lead) to step down, staying
    /// out for `cooldown` (its own configured cooldown when `None`), and waits until
    /// another leader is elected. Fails with [`Error::NoAnswer`] if the candidate does
    /// not answer within `timeout`, with [`Error::Refused`] if it does not lead.
    pub async fn request_step_down(
        &self,
        candidate: Option<&str>,
        cooldown: Option<Duration>,
        timeout: Duration,
    ) -> Result<SteppedDown> {
        let started = Instant::now();
        let deadline = started + timeout;
        let target = match candidate {
            Some(id) => id.to_string(),
            None => self.leading_candidate(timeout).await?.id,
        };
        // Observing before asking, so the change cannot be missed.
        let mut leaders = self.observe().await?;
        let cooldown_ms = cooldown.map(|c| u64::try_from(c.as_millis()).unwrap_or(u64::MAX));
        let reply = self
            .ask(&target, Request::StepDown { cooldown_ms }, remaining(deadline))
            .await?;
        let old = reply.stepped_down_epoch.ok_or_else(|| Error::Refused {
            id: target.clone(),
            reason: "the reply named no epoch".into(),
        })?;
        let new_leader = loop {
            match tokio::time::timeout_at(deadline, leaders.next()).await {
                Ok(Some(Ok(Some(leader)))) if leader.epoch.0 > old => break Some(leader),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => return Err(error),
                Ok(None) | Err(_) => break None,
            }
        };
        let elapsed = started.elapsed();
        let mut new_leader_candidate = None;
        if let Some(leader) = &new_leader {
            // Its entry may be written a moment after it was elected.
            let lookup = Instant::now() + Duration::from_secs(1);
            while new_leader_candidate.is_none() && Instant::now() < lookup {
                let entries = self.candidates().await?;
                new_leader_candidate = entries
                    .into_iter()
                    .find(|e| e.epoch == Some(leader.epoch.0))
                    .map(|e| e.id);
                if new_leader_candidate.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(SteppedDown {
            candidate: target,
            epoch: Epoch(old),
            new_leader,
            new_leader_candidate,
            elapsed,
        })
    }

    /// Sends `request` to candidate `id` and waits up to `timeout` for its reply.
    async fn ask(&self, id: &str, request: Request, timeout: Duration) -> Result<Reply> {
        check_id(id)?;
        let deadline = Instant::now() + timeout;
        // A clear error for a candidate that is not registered, rather than a timeout.
        self.candidate(id).await?;
        let client = self.client();
        let request_id = format!("{:016x}", conclave_contract::lease_id::fresh());
        let lease = client.grant_lease(timeout + Duration::from_secs(2)).await?;
        let asked = async {
            let reply_to = reply_key(self.name(), &request_id);
            let mut replies = client.watch(Watch::key(reply_to.clone())).await?;
            let envelope = Envelope { request, reply_to };
            let body = serde_json::to_vec(&envelope)
                .map_err(|e| Error::InvalidArgument(format!("encoding the request: {e}")))?;
            let key = format!("{}{request_id}", control_prefix(self.name(), id));
            client.put_with(Put::new(key, body).lease(lease.id())).await?;
            while let Some(event) = replies.next().await {
                let event = event?;
                if event.kind != EventKind::Put || event.kv.value.len() > MAX_MESSAGE_BYTES {
                    continue;
                }
                match serde_json::from_slice::<Reply>(&event.kv.value) {
                    Ok(reply) => return Ok(reply),
                    Err(error) => tracing::debug!(%error, "skipping an unreadable reply"),
                }
            }
            Err(Error::NoAnswer {
                id: id.to_string(),
                after: timeout,
            })
        };
        let outcome = tokio::time::timeout_at(deadline, asked).await;
        tokio::spawn(async move {
            let _ = lease.revoke().await;
        });
        let reply = outcome.map_err(|_| Error::NoAnswer {
            id: id.to_string(),
            after: timeout,
        })??;
        match reply.error {
            Some(reason) => Err(Error::Refused {
                id: id.to_string(),
                reason,
            }),
            None => Ok(reply),
        }
    }
}

/// Reads a stored request, if it is one addressed within election `name`.
pub(crate) fn parse_request(name: &str, value: &[u8]) -> Option<Envelope> {
    if value.len() > MAX_MESSAGE_BYTES {
        return None;
    }
    let envelope: Envelope = serde_json::from_slice(value).ok()?;
    // A reply goes only to the election's reply keys, whatever the request says.
    let replies = reply_key(name, "");
    let request = envelope.reply_to.strip_prefix(&replies)?;
    if request.is_empty() || request.contains('/') {
        return None;
    }
    Some(envelope)
}

/// Writes `reply` at `reply_to` on the request's lease (so it goes with the request).
pub(crate) async fn answer(
    client: &Client,
    reply_to: &str,
    lease: Option<LeaseId>,
    reply: &Reply,
) -> Result<()> {
    let body =
        serde_json::to_vec(reply).map_err(|e| Error::InvalidArgument(format!("encoding the reply: {e}")))?;
    let put = Put::new(reply_to.to_string(), body);
    let put = match lease {
        Some(lease) => put.lease(lease),
        None => put,
    };
    client.put_with(put).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back_and_replies_stay_in_the_election() {
        let envelope = Envelope {
            request: Request::StepDown { cooldown_ms: Some(5) },
            reply_to: reply_key("e", "00ff"),
        };
        let json = serde_json::to_vec(&envelope).unwrap();
        assert!(String::from_utf8_lossy(&json).contains(r#""op":"step_down""#));
        assert_eq!(parse_request("e", &json), Some(envelope));
        let elsewhere = br#"{"op":"ping","reply_to":"/other/key"}"#;
        assert_eq!(parse_request("e", elsewhere), None);
        let nested = br#"{"op":"ping","reply_to":"e.replies/a/b"}"#;
        assert_eq!(parse_request("e", nested), None);
        assert_eq!(parse_request("e", b"not json"), None);
    }
}
