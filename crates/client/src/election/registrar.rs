//! A candidate's registrar: keeps its registry entry current under a lease of its own,
//! and answers the control requests addressed to it (see `registry` and `control`).

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::candidate::{Command, Status};
use super::control::{answer, parse_request, Reply, Request, StatusReport};
use super::registry::{control_prefix, registry_prefix, unix_ms, CandidateEntry, CandidateState};
use super::{Election, Epoch};
use crate::kv::Put;
use crate::lease::{Lease, LeaseId};
use crate::watch::{EventKind, Watch, WatchStream};

/// Keeps a candidate's registry entry current under its own lease, and answers the
/// control requests addressed to it.
pub(super) struct Registrar {
    pub(super) election: Election,
    /// The fixed part of the entry (id, address, metadata, version).
    pub(super) entry: CandidateEntry,
    pub(super) lease_ttl: Duration,
    pub(super) cooldown: Duration,
    pub(super) status: watch::Receiver<Status>,
    /// Weak, so that a dropped [`CandidateHandle`] still ends the candidate.
    pub(super) commands: mpsc::WeakSender<Command>,
}

impl Registrar {
    fn entry_now(&self) -> CandidateEntry {
        let status = self.status.borrow();
        CandidateEntry {
            state: status.state,
            epoch: status.epoch.map(|e| e.0),
            since_unix_ms: unix_ms(status.since),
            cooldown_until_unix_ms: status.cooldown_until.map(unix_ms),
            ..self.entry.clone()
        }
    }

    pub(super) async fn run(mut self) {
        let client = self.election.client().clone();
        let key = format!("{}{}", registry_prefix(self.election.name()), self.entry.id);
        let mut lease: Option<Lease> = None;
        let mut requests: Option<WatchStream> = None;
        let mut written: Option<(CandidateEntry, i64)> = None;
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                let delay = crate::transport::backoff(client.options(), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    changed = self.status.changed() => if changed.is_err() { break },
                }
            }
            let current = match &lease {
                Some(current) if !current.is_lost() => current.clone(),
                _ => match client.grant_lease(self.lease_ttl).await {
                    Ok(granted) => {
                        lease = Some(granted.clone());
                        granted
                    }
                    Err(error) => {
                        tracing::debug!(%error, "registry: could not grant a lease");
                        failures += 1;
                        continue;
                    }
                },
            };
            let entry = self.entry_now();
            if written.as_ref() != Some(&(entry.clone(), current.id().0)) {
                let body = match serde_json::to_vec(&entry) {
                    Ok(body) => body,
                    Err(error) => {
                        tracing::warn!(%error, "registry: cannot encode the entry");
                        break;
                    }
                };
                if let Err(error) = client
                    .put_with(Put::new(key.clone(), body).lease(current.id()))
                    .await
                {
                    tracing::debug!(%error, "registry: could not write the entry");
                    failures += 1;
                    continue;
                }
                written = Some((entry, current.id().0));
            }
            if requests.is_none() {
                let prefix = control_prefix(self.election.name(), &self.entry.id);
                match client.watch(Watch::prefix(prefix)).await {
                    Ok(watch) => requests = Some(watch),
                    Err(error) => {
                        tracing::debug!(%error, "registry: could not watch for requests");
                        failures += 1;
                        continue;
                    }
                }
            }
            failures = 0;
            let Some(stream) = requests.as_mut() else { continue };
            tokio::select! {
                changed = self.status.changed() => if changed.is_err() { break },
                _ = current.lost() => {}
                event = stream.next() => match event {
                    Some(Ok(event)) if event.kind == EventKind::Put => self.serve(event.kv.value, event.kv.lease),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::debug!(%error, "registry: the request watch ended");
                        requests = None;
                    }
                    None => requests = None,
                },
            }
        }
        // The candidate stopped: its entry goes with its lease.
        if let Some(lease) = lease {
            let _ = lease.revoke().await;
        }
    }

    /// Answers one request in its own task (a step-down waits for the candidate).
    fn serve(&self, value: Vec<u8>, lease: Option<LeaseId>) {
        let Some(envelope) = parse_request(self.election.name(), &value) else {
            tracing::debug!("registry: ignoring an unreadable control request");
            return;
        };
        let client = self.election.client().clone();
        let id = self.entry.id.clone();
        let status = self.status.borrow().clone();
        let entry = self.entry_now();
        let commands = self.commands.clone();
        let cooldown = self.cooldown;
        tokio::spawn(async move {
            let mut reply = Reply {
                id: id.clone(),
                ..Reply::default()
            };
            match envelope.request {
                Request::Ping => {}
                Request::Status => {
                    reply.status = Some(StatusReport {
                        entry,
                        leader_key: status.leader.as_ref().map(|l| l.key.clone()),
                        leader_epoch: status.leader.as_ref().map(|l| l.epoch.0),
                        connected: status.connected,
                    });
                }
                Request::StepDown { cooldown_ms } => {
                    let cooldown = cooldown_ms.map_or(cooldown, Duration::from_millis);
                    match step_down(&commands, status.state, cooldown).await {
                        Ok(epoch) => reply.stepped_down_epoch = Some(epoch.0),
                        Err(reason) => reply.error = Some(reason),
                    }
                }
            }
            if let Err(error) = answer(&client, &envelope.reply_to, lease, &reply).await {
                tracing::debug!(%error, "registry: could not answer a control request");
            }
        });
    }
}

/// Asks the candidate task to step down; the epoch given up, or why not.
async fn step_down(
    commands: &mpsc::WeakSender<Command>,
    state: CandidateState,
    cooldown: Duration,
) -> std::result::Result<Epoch, String> {
    if state != CandidateState::Leader {
        return Err(format!("not the leader (it is {state})"));
    }
    let commands = commands.upgrade().ok_or("the candidate is stopping")?;
    let (reply_tx, reply_rx) = oneshot::channel();
    commands
        .send(Command::StepDown(cooldown, reply_tx))
        .await
        .map_err(|_| "the candidate is stopping".to_string())?;
    match reply_rx.await {
        // It stepped down even if the resignation failed: it stays out for the cooldown and
        // its lease is revoked (or expires), so leadership moves either way.
        Ok((Some(epoch), resigned)) => {
            if let Err(error) = resigned {
                tracing::warn!(%error, "stepped down, but resigning failed: the successor waits for the lease");
            }
            Ok(epoch)
        }
        Ok((None, _)) => Err("not the leader (it lost leadership just before)".into()),
        Err(_) => Err("the candidate is stopping".into()),
    }
}
