//! A [`Candidate`]: keeps campaigning, calls [`ElectionHooks`] in order, keeps its
//! registry entry current and answers control requests (through its `registrar`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::registrar::Registrar;
use super::registry::{check_id, default_id, CandidateEntry, CandidateState};
use super::{Election, Epoch, LeaderInfo, LeaderStream, Leadership};
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::transport::Connectivity;

/// Callbacks from a [`Candidate`], called one at a time from one task, in the order
/// the candidate observed the events. The candidate waits for each to return: keep them
/// short, except that `on_lost` may block to stop work — the candidate resigns (letting
/// a successor in) only after it returns.
pub trait ElectionHooks: Send + 'static {
    /// This candidate was elected.
    fn on_elected(&mut self, _leadership: &Leadership) {}
    /// This candidate lost (or gave up) leadership of `epoch`.
    fn on_lost(&mut self, _epoch: Epoch, _reason: &Error) {}
    /// The election's leader changed (including to or from this candidate).
    fn on_leader_change(&mut self, _leader: Option<&LeaderInfo>) {}
    /// The client lost every endpoint ([`Error::Disconnected`]). A leader stays leader
    /// until its lease's local deadline: `on_lost` follows then, whether or not the
    /// connection is back, unless a keep-alive gets through first.
    fn on_disconnect(&mut self, _error: &Error) {}
    /// An endpoint answers again after [`ElectionHooks::on_disconnect`].
    fn on_reconnect(&mut self) {}
}

/// A candidate's settings, also loadable from a file (see [`crate::config`]). Durations
/// are whole milliseconds there.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidateSettings {
    /// The id in the registry; default `HOSTNAME-PID`.
    pub id: Option<String>,
    /// Where the application can be reached, shown in the registry. Default empty.
    pub address: String,
    /// Labels shown in the registry. Default none.
    pub metadata: BTreeMap<String, String>,
    /// The TTL of the session and registry leases, in milliseconds; `None` (the
    /// default) takes the client's `session_ttl` (10 s by default).
    pub lease_ttl: Option<u64>,
    /// How long a candidate stays out after a step-down it was asked for without a
    /// cooldown, in milliseconds. Default 5000.
    pub cooldown: u64,
}

impl Default for CandidateSettings {
    fn default() -> Self {
        CandidateSettings {
            id: None,
            address: String::new(),
            metadata: BTreeMap::new(),
            lease_ttl: None,
            cooldown: 5_000,
        }
    }
}

/// A member that keeps campaigning: whenever it is not leader (and not cooling down),
/// it campaigns under a fresh session lease; it calls [`ElectionHooks`] as things happen,
/// registers itself in the election's registry and answers ping, status and step-down
/// requests ([`Election::ping`], [`Election::status_of`], [`Election::request_step_down`]).
#[derive(Debug)]
pub struct Candidate {
    election: Election,
    value: Vec<u8>,
    id: String,
    address: String,
    metadata: BTreeMap<String, String>,
    lease_ttl: Duration,
    cooldown: Duration,
    /// A wall-clock time and the monotonic instant it was read at, so that one monotonic
    /// deadline always maps to the same wall-clock time in the registry.
    clock: (SystemTime, Instant),
}

pub(super) enum Command {
    /// The epoch given up (`None` if not leading) and whether the resignation went through.
    StepDown(Duration, oneshot::Sender<(Option<Epoch>, Result<()>)>),
    Stop(oneshot::Sender<()>),
}

/// What the candidate is doing, as its registry entry and status answers show it.
#[derive(Clone, Debug)]
pub(super) struct Status {
    pub(super) state: CandidateState,
    pub(super) epoch: Option<Epoch>,
    pub(super) since: SystemTime,
    pub(super) cooldown_until: Option<SystemTime>,
    pub(super) leader: Option<LeaderInfo>,
    pub(super) connected: bool,
}

/// Controls a running [`Candidate`].
pub struct CandidateHandle {
    id: String,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
    registrar: tokio::task::JoinHandle<()>,
}

impl Candidate {
    /// A candidate in `election`, proclaiming `value`, with the client's session TTL,
    /// the default cooldown (5 s) and the id `HOSTNAME-PID`.
    pub fn new(election: Election, value: impl Into<Vec<u8>>) -> Candidate {
        let lease_ttl = election.client().options().session_ttl;
        Candidate {
            election,
            value: value.into(),
            id: default_id(),
            address: String::new(),
            metadata: BTreeMap::new(),
            lease_ttl,
            cooldown: Duration::from_millis(CandidateSettings::default().cooldown),
            clock: (SystemTime::now(), Instant::now()),
        }
    }

    /// Applies `settings` (those left unset keep their current value).
    pub fn settings(mut self, settings: &CandidateSettings) -> Candidate {
        if let Some(id) = &settings.id {
            self.id.clone_from(id);
        }
        self.address.clone_from(&settings.address);
        self.metadata.clone_from(&settings.metadata);
        if let Some(ttl) = settings.lease_ttl {
            self.lease_ttl = Duration::from_millis(ttl);
        }
        self.cooldown = Duration::from_millis(settings.cooldown);
        self
    }

    /// Sets the TTL of the session leases it campaigns with (and of its registry lease).
    pub fn lease_ttl(mut self, ttl: Duration) -> Candidate {
        self.lease_ttl = ttl;
        self
    }

    /// Sets its registry id (1 to 128 bytes, no `/`; checked by [`Candidate::start`]).
    pub fn id(mut self, id: impl Into<String>) -> Candidate {
        self.id = id.into();
        self
    }

    /// Its registry id as set so far.
    pub fn current_id(&self) -> &str {
        &self.id
    }

    /// Sets the value it proclaims as leader.
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Candidate {
        self.value = value.into();
        self
    }

    /// Sets the address shown in its registry entry.
    pub fn address(mut self, address: impl Into<String>) -> Candidate {
        self.address = address.into();
        self
    }

    /// Adds a label to its registry entry.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Candidate {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the cooldown of a step-down asked for without one (remote step-downs).
    pub fn cooldown(mut self, cooldown: Duration) -> Candidate {
        self.cooldown = cooldown;
        self
    }

    /// Starts campaigning in the background. Fails only on an unusable id.
    pub fn start(self, hooks: impl ElectionHooks) -> Result<CandidateHandle> {
        check_id(&self.id)?;
        let (commands_tx, commands_rx) = mpsc::channel(4);
        let (status_tx, status_rx) = watch::channel(Status {
            state: CandidateState::Follower,
            epoch: None,
            since: SystemTime::now(),
            cooldown_until: None,
            leader: None,
            connected: true,
        });
        let registrar = Registrar {
            election: self.election.clone(),
            entry: CandidateEntry {
                id: self.id.clone(),
                address: self.address.clone(),
                metadata: self.metadata.clone(),
                state: CandidateState::Follower,
                epoch: None,
                since_unix_ms: 0,
                cooldown_until_unix_ms: None,
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            lease_ttl: self.lease_ttl,
            cooldown: self.cooldown,
            status: status_rx.clone(),
            commands: commands_tx.downgrade(),
        };
        let registrar = tokio::spawn(registrar.run());
        let id = self.id.clone();
        let task = tokio::spawn(self.run(hooks, commands_rx, status_tx));
        Ok(CandidateHandle {
            id,
            commands: commands_tx,
            status: status_rx,
            task,
            registrar,
        })
    }

    async fn run(
        self,
        mut hooks: impl ElectionHooks,
        mut commands: mpsc::Receiver<Command>,
        status: watch::Sender<Status>,
    ) {
        let client = self.election.client().clone();
        let bound = client.options().request_timeout;
        let mut events = Events {
            election: self.election.clone(),
            observer: None,
            reopen_at: Instant::now(),
            connectivity: client.connectivity(),
            connected: true,
        };
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        loop {
            // Out of the race while backing off or cooling down.
            if let Some(until) = retry_at.max(self.election.cooldown_until()) {
                if until > Instant::now() {
                    set_state(&status, CandidateState::Follower, None, self.cooldown_end());
                    let idled = self
                        .idle(&mut commands, &mut events, &mut hooks, &status, until)
                        .await;
                    if idled.is_break() {
                        return;
                    }
                    continue;
                }
            }
            retry_at = None;
            let granted = {
                let grant = client.grant_lease(self.lease_ttl);
                tokio::pin!(grant);
                loop {
                    tokio::select! {
                        granted = &mut grant => break Some(granted),
                        happening = events.next() => events.deliver(happening, &mut hooks, &status),
                        command = commands.recv() => {
                            if self.obey_while_not_leading(command).is_break() {
                                return;
                            }
                            break None;
                        }
                    }
                }
            };
            let lease = match granted {
                Some(Ok(lease)) => lease,
                Some(Err(error)) => {
                    tracing::debug!(%error, "candidate could not grant a lease");
                    failures += 1;
                    retry_at = Some(Instant::now() + crate::transport::backoff(client.options(), failures));
                    continue;
                }
                // Told to step down while not leading: the cooldown runs at the top.
                None => continue,
            };
            set_state(&status, CandidateState::Candidate, None, None);
            // Campaign, while passing on events and obeying commands.
            let campaigned = {
                let campaign = self.election.campaign(&lease, self.value.clone());
                tokio::pin!(campaign);
                loop {
                    tokio::select! {
                        result = &mut campaign => break Some(result),
                        happening = events.next() => events.deliver(happening, &mut hooks, &status),
                        command = commands.recv() => {
                            let flow = self.obey_while_not_leading(command);
                            if flow.is_break() {
                                revoke_in_background(&lease);
                                return;
                            }
                            // Stepped down while queued: leave the queue for the cooldown.
                            break None;
                        }
                    }
                }
            };
            let leadership = match campaigned {
                Some(Ok(leadership)) => leadership,
                Some(Err(error)) => {
                    tracing::debug!(%error, "campaign ended without leadership");
                    revoke_in_background(&lease);
                    failures += 1;
                    retry_at = Some(Instant::now() + crate::transport::backoff(client.options(), failures));
                    continue;
                }
                None => {
                    revoke_in_background(&lease);
                    continue;
                }
            };
            failures = 0;
            let won = leadership.epoch();
            set_state(&status, CandidateState::Leader, Some(won), None);
            hooks.on_elected(&leadership);
            // Lead until lost, told to step down, or stopped.
            let mut step_down_reply = None;
            let mut stop_reply = None;
            let mut stopping = false;
            let reason = {
                let lost = leadership.lost();
                tokio::pin!(lost);
                loop {
                    tokio::select! {
                        error = &mut lost => break error,
                        happening = events.next() => events.deliver(happening, &mut hooks, &status),
                        command = commands.recv() => match command {
                            Some(Command::StepDown(cooldown, reply)) => {
                                self.election.start_cooldown(cooldown);
                                step_down_reply = Some(reply);
                                break Error::LeadershipLost {
                                    key: leadership.key().to_string(),
                                    reason: format!("stepped down for {cooldown:?}"),
                                };
                            }
                            Some(Command::Stop(reply)) => {
                                stop_reply = Some(reply);
                                stopping = true;
                                break stopped();
                            }
                            None => {
                                stopping = true;
                                break stopped();
                            }
                        },
                    }
                }
            };
            // The application hears of the loss before anything else happens: before a
            // successor can be elected by our resignation, and without waiting on a cluster
            // that may be unreachable.
            set_state(&status, CandidateState::Follower, None, self.cooldown_end());
            hooks.on_lost(won, &reason);
            let resigned = match tokio::time::timeout(bound, leadership.resign()).await {
                Ok(resigned) => resigned,
                Err(_) => Err(Error::Timeout(bound)),
            };
            if let Some(reply) = step_down_reply {
                let _ = reply.send((Some(won), resigned));
            }
            revoke_in_background(&lease);
            if let Some(reply) = stop_reply {
                let _ = reply.send(());
            }
            if stopping {
                return;
            }
        }
    }

    fn cooldown_end(&self) -> Option<SystemTime> {
        let (wall, monotonic) = self.clock;
        self.election
            .cooldown_until()
            .map(|until| wall + until.saturating_duration_since(monotonic))
    }

    /// Waits until `until` while passing on events and obeying commands; `Break` when
    /// told to stop.
    async fn idle(
        &self,
        commands: &mut mpsc::Receiver<Command>,
        events: &mut Events,
        hooks: &mut impl ElectionHooks,
        status: &watch::Sender<Status>,
        until: Instant,
    ) -> ControlFlow<()> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return ControlFlow::Continue(()),
                happening = events.next() => events.deliver(happening, hooks, status),
                command = commands.recv() => {
                    self.obey_while_not_leading(command)?;
                    // A step-down while out may have lengthened the cooldown.
                    return ControlFlow::Continue(());
                }
            }
        }
    }

    /// Handles a command while not leading: a step-down starts the cooldown; a stop (or a
    /// dropped handle) ends the candidate.
    fn obey_while_not_leading(&self, command: Option<Command>) -> ControlFlow<()> {
        match command {
            Some(Command::StepDown(cooldown, reply)) => {
                self.election.start_cooldown(cooldown);
                let _ = reply.send((None, Ok(())));
                ControlFlow::Continue(())
            }
            Some(Command::Stop(reply)) => {
                let _ = reply.send(());
                ControlFlow::Break(())
            }
            None => ControlFlow::Break(()),
        }
    }
}

fn set_state(
    status: &watch::Sender<Status>,
    state: CandidateState,
    epoch: Option<Epoch>,
    cooldown_until: Option<SystemTime>,
) {
    status.send_if_modified(|status| {
        if status.state == state && status.epoch == epoch && status.cooldown_until == cooldown_until {
            return false;
        }
        status.state = state;
        status.epoch = epoch;
        status.since = SystemTime::now();
        status.cooldown_until = cooldown_until;
        true
    });
}

/// What a candidate reacts to besides its campaign: leader changes and connectivity.
struct Events {
    election: Election,
    /// The leader observer; (re)opened from [`Events::next`] when missing.
    observer: Option<LeaderStream>,
    /// When to try opening the observer next.
    reopen_at: Instant,
    connectivity: watch::Receiver<Connectivity>,
    /// The connectivity last passed on, so hooks see alternating changes only.
    connected: bool,
}

enum Happening {
    Leader(Option<Result<Option<LeaderInfo>>>),
    Connectivity(Connectivity),
}

impl Events {
    async fn next(&mut self) -> Happening {
        loop {
            let missing = self.observer.is_none();
            let observer = &mut self.observer;
            let connectivity = &mut self.connectivity;
            let (election, reopen_at) = (&self.election, self.reopen_at);
            tokio::select! {
                change = async {
                    match observer {
                        Some(stream) => stream.next().await,
                        None => std::future::pending().await,
                    }
                } => return Happening::Leader(change),
                opened = async {
                    tokio::time::sleep_until(reopen_at).await;
                    election.observe().await
                }, if missing => match opened {
                    Ok(stream) => self.observer = Some(stream),
                    Err(error) => {
                        tracing::debug!(%error, "cannot observe the leader yet");
                        self.reopen_at = Instant::now() + Duration::from_secs(1);
                    }
                },
                state = async {
                    match connectivity.changed().await {
                        Ok(()) => connectivity.borrow_and_update().clone(),
                        // The client is gone (it cannot be, while we hold it).
                        Err(_) => std::future::pending().await,
                    }
                } => return Happening::Connectivity(state),
            }
        }
    }

    /// Calls the hook for `happening` and records it in the status.
    fn deliver(
        &mut self,
        happening: Happening,
        hooks: &mut impl ElectionHooks,
        status: &watch::Sender<Status>,
    ) {
        match happening {
            Happening::Leader(Some(Ok(leader))) => {
                status.send_modify(|status| status.leader.clone_from(&leader));
                hooks.on_leader_change(leader.as_ref());
            }
            Happening::Leader(Some(Err(error))) => {
                tracing::debug!(%error, "leader observer ended; re-opening it");
                self.observer = None;
                self.reopen_at = Instant::now() + Duration::from_secs(1);
            }
            Happening::Leader(None) => {
                self.observer = None;
                self.reopen_at = Instant::now() + Duration::from_secs(1);
            }
            Happening::Connectivity(Connectivity::Disconnected { reason }) if self.connected => {
                self.connected = false;
                status.send_modify(|status| status.connected = false);
                hooks.on_disconnect(&Error::Disconnected { reason });
            }
            Happening::Connectivity(Connectivity::Connected) if !self.connected => {
                self.connected = true;
                status.send_modify(|status| status.connected = true);
                hooks.on_reconnect();
            }
            Happening::Connectivity(_) => {}
        }
    }
}

/// Revokes a session lease without holding up the candidate (its keys go with it).
fn revoke_in_background(lease: &Lease) {
    let lease = lease.clone();
    tokio::spawn(async move {
        let _ = lease.revoke().await;
    });
}

impl CandidateHandle {
    /// The candidate's registry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The epoch of the leadership this candidate holds now, if any.
    pub fn epoch(&self) -> Option<Epoch> {
        let status = self.status.borrow();
        (status.state == CandidateState::Leader)
            .then_some(status.epoch)
            .flatten()
    }

    /// Waits until this candidate leads, and returns its epoch.
    pub async fn elected(&mut self) -> Result<Epoch> {
        loop {
            {
                let status = self.status.borrow_and_update();
                if let (CandidateState::Leader, Some(epoch)) = (status.state, status.epoch) {
                    return Ok(epoch);
                }
            }
            if self.status.changed().await.is_err() {
                return Err(stopped());
            }
        }
    }

    /// Gives up leadership (if held) and does not campaign again for `cooldown`.
    pub async fn step_down(&self, cooldown: Duration) -> Result<()> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.commands
            .send(Command::StepDown(cooldown, reply_tx))
            .await
            .map_err(|_| stopped())?;
        reply_rx.await.map_err(|_| stopped())?.1
    }

    /// Resigns (if leading), revokes the session lease, removes the registry entry and
    /// stops campaigning.
    pub async fn stop(self) {
        let (reply_tx, reply_rx) = oneshot::channel();
        if self.commands.send(Command::Stop(reply_tx)).await.is_ok() {
            let _ = reply_rx.await;
        }
        let _ = self.task.await;
        let _ = self.registrar.await;
    }
}

fn stopped() -> Error {
    Error::LeadershipLost {
        key: String::new(),
        reason: "the candidate stopped".into(),
    }
}
