//! Being a member of a group: registered under a session lease, told what it holds
//! through [`GroupHooks`] (in order, each awaited before the controller hears of it), and
//! able to prove its leaderships to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_controller::{MemberId, PartitionId};
use conclave_proto::partitionpb as pb;
use conclave_proto::partitionpb::groups_client::GroupsClient;
use tokio::sync::{mpsc, oneshot, watch};

use super::feed::MapFeed;
use super::hooks::GroupHooks;
use super::leadership::PartitionLeadership;
use super::map::{transitions, GroupMap, Hook, MapView, PartitionInfo};
use super::router::Router;
use super::{Group, GroupInfo};
use crate::election::Epoch;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::transport::{backoff, Idempotency};
use crate::Client;

/// How a member registers: its id (unique in the group while its session lives), and what
/// others see of it.
#[derive(Clone, Debug, Default)]
pub struct JoinOptions {
    /// The member's id: 1–128 of `A-Z a-z 0-9 . _ - : @`.
    pub member_id: String,
    /// Labels; the group's zone label (default `zone`) places replicas apart.
    pub labels: BTreeMap<String, String>,
    /// Relative capacity (default 1; 0 holds nothing).
    pub weight: Option<u32>,
    /// Where it can be reached.
    pub advertise_address: String,
    /// Its HTTP endpoint (for routing clients).
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    pub grpc_endpoint: String,
    /// Anything else to publish.
    pub metadata: BTreeMap<String, String>,
}

impl JoinOptions {
    /// A member called `member_id`.
    pub fn new(member_id: impl Into<String>) -> JoinOptions {
        JoinOptions {
            member_id: member_id.into(),
            ..Default::default()
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> JoinOptions {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Places it in `zone` (the `zone` label).
    pub fn zone(self, zone: impl Into<String>) -> JoinOptions {
        self.label("zone", zone)
    }

    /// Sets its weight.
    pub fn weight(mut self, weight: u32) -> JoinOptions {
        self.weight = Some(weight);
        self
    }

    /// Sets its HTTP endpoint.
    pub fn http_endpoint(mut self, endpoint: impl Into<String>) -> JoinOptions {
        self.http_endpoint = endpoint.into();
        self
    }

    /// Sets its gRPC endpoint.
    pub fn grpc_endpoint(mut self, endpoint: impl Into<String>) -> JoinOptions {
        self.grpc_endpoint = endpoint.into();
        self
    }

    /// Sets its advertised address.
    pub fn advertise_address(mut self, address: impl Into<String>) -> JoinOptions {
        self.advertise_address = address.into();
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> JoinOptions {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub(crate) fn request(&self, group: &str, lease: i64) -> pb::JoinRequest {
        pb::JoinRequest {
            group: group.to_string(),
            member_id: self.member_id.clone(),
            lease,
            labels: self.labels.clone().into_iter().collect(),
            weight: self.weight,
            advertise_address: self.advertise_address.clone(),
            http_endpoint: self.http_endpoint.clone(),
            grpc_endpoint: self.grpc_endpoint.clone(),
            metadata: self.metadata.clone().into_iter().collect(),
        }
    }
}

/// A session: the lease the registration lives under.
#[derive(Clone)]
struct Session {
    lease: Lease,
    /// The registration's create revision (part of every leadership's fence).
    member_revision: i64,
}

/// What the member holds, as its hooks have been told.
#[derive(Default)]
struct Held {
    partitions: BTreeSet<PartitionId>,
    leading: BTreeMap<PartitionId, Epoch>,
    member_revision: i64,
}

enum Command {
    Stop(oneshot::Sender<()>),
}

/// A member of a group. Its hooks run in a background task until [`Membership::leave`],
/// [`Membership::stop`], or the handle is dropped (then the session lease is left to
/// expire). A lost session is replaced by a new one automatically (the member joins
/// again; what it held is gone, with `on_leader_lost` and `on_unassigned` first).
pub struct Membership {
    group: Group,
    me: MemberId,
    router: Router,
    held: Arc<Mutex<Held>>,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group.name)
            .field("member", &self.me)
            .finish()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl Membership {
    /// This member's id.
    pub fn id(&self) -> &MemberId {
        &self.me
    }

    /// Routing from the map this member follows.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The map now.
    pub fn map(&self) -> MapView {
        self.router.map()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this member leads `partition` (its hooks were told so, and not otherwise
    /// since).
    pub fn is_leader(&self, partition: PartitionId) -> bool {
        self.held().leading.contains_key(&partition)
    }

    /// Whether this member holds `partition` (any role).
    pub fn is_replica(&self, partition: PartitionId) -> bool {
        self.held().partitions.contains(&partition)
    }

    /// The partitions this member leads, with their epochs.
    pub fn leaderships(&self) -> BTreeMap<PartitionId, Epoch> {
        self.held().leading.clone()
    }

    /// This member's leadership of `partition`, to fence writes with; else
    /// [`Error::NotLeader`] naming the leader the map shows.
    pub fn leadership(&self, partition: PartitionId) -> Result<PartitionLeadership> {
        let (epoch, member_revision) = {
            let held = self.held();
            (held.leading.get(&partition).copied(), held.member_revision)
        };
        match epoch {
            Some(epoch) => Ok(PartitionLeadership {
                client: self.group.client.clone(),
                group: self.group.name.clone(),
                partition,
                epoch,
                member: self.me.clone(),
                member_revision,
            }),
            None => Err(Error::NotLeader {
                group: self.group.name.clone(),
                partition: partition.0,
                hint: self
                    .router
                    .map()
                    .partition(partition)
                    .and_then(|p| p.leader.clone())
                    .filter(|l| l != &self.me)
                    .map(|l| l.0),
            }),
        }
    }

    /// Moves this member's replicas and leaderships away; it stays registered (its hooks
    /// keep running). Returns what it holds now.
    pub async fn drain(&self) -> Result<(u32, u32)> {
        self.group.drain(&self.me.0, false).await
    }

    /// Takes partitions again after [`Membership::drain`].
    pub async fn resume(&self) -> Result<()> {
        self.group.drain(&self.me.0, true).await.map(drop)
    }

    /// Leaves gracefully: hands everything over (the hooks run meanwhile), deregisters,
    /// and ends the session. Fails with [`Error::Timeout`] if the hand-over takes longer
    /// than `timeout` (the member stays registered and leaving).
    pub async fn leave(&self, timeout: Duration) -> Result<()> {
        self.group.leave_member(&self.me.0, timeout).await?;
        self.shut_down().await;
        Ok(())
    }

    /// Stops at once: `on_leader_lost` and `on_unassigned` for what it holds, then the
    /// session is revoked (the controller moves its partitions; nothing is handed over).
    pub async fn stop(&self) {
        self.shut_down().await;
    }

    async fn shut_down(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Group {
    /// Joins the group as `options.member_id` under a new session lease (the group's
    /// session TTL), and starts delivering `hooks`. Returns once the member is
    /// registered and its map is loaded. Fails with [`Error::Server`] `AlreadyExists`
    /// when the id is held by another live session, `NotFound` when the group does not
    /// exist.
    pub async fn join<H: GroupHooks>(&self, options: JoinOptions, hooks: H) -> Result<Membership> {
        let info = self.get().await?;
        // An earlier process with this id may still be registered (its session not yet
        // expired) or not yet cleared from the map: wait that out, no longer.
        let patience = tokio::time::Instant::now() + info.session_ttl + Duration::from_secs(10);
        let mut failures = 0u32;
        let session = loop {
            match join_session(&self.client, &self.name, &options, &info).await {
                Ok(session) => break session,
                Err(Error::Server {
                    code: tonic::Code::AlreadyExists | tonic::Code::Aborted,
                    ..
                }) if tokio::time::Instant::now() < patience => {
                    failures += 1;
                    tokio::time::sleep(
                        backoff(self.client.options(), failures).max(Duration::from_millis(200)),
                    )
                    .await;
                }
                Err(error) => return Err(error),
            }
        };
        let me = MemberId(options.member_id.clone());
        let held = Arc::new(Mutex::new(Held {
            member_revision: session.member_revision,
            ..Held::default()
        }));
        let mut feed = MapFeed::new(self.client.clone(), self.name.clone());
        let (event, revision) = feed.next().await?;
        let mut map = GroupMap {
            group: self.name.clone(),
            generation: 0,
            revision: 0,
            partitions: Vec::new(),
            members: Default::default(),
        };
        map.apply(event, revision)
            .map_err(|gap| Error::InvalidArgument(gap.to_string()))?;
        feed.applied(map.generation);
        let (map_tx, map_rx) = watch::channel(Arc::new(map.clone()));
        let (commands, commands_rx) = mpsc::channel(4);
        let worker = Worker {
            client: self.client.clone(),
            group: self.name.clone(),
            info,
            options,
            me: me.clone(),
            hooks,
            feed,
            map,
            processed: BTreeMap::new(),
            map_tx,
            held: held.clone(),
            session,
        };
        let task = tokio::spawn(worker.run(commands_rx));
        Ok(Membership {
            group: self.clone(),
            me,
            router: Router::from_receiver(map_rx),
            held,
            commands,
            task: Mutex::new(Some(task)),
        })
    }
}

/// Grants a session lease and registers under it.
async fn join_session(
    client: &Client,
    group: &str,
    options: &JoinOptions,
    info: &GroupInfo,
) -> Result<Session> {
    let lease = client.grant_lease(info.session_ttl).await?;
    let request = options.request(group, lease.id().0);
    let joined = client
        .pool()
        .call(Idempotency::Idempotent, |channel| {
            let request = request.clone();
            async move { GroupsClient::new(channel).join(request).await }
        })
        .await;
    match joined {
        Ok(response) => {
            let member_revision = response.into_inner().member.map_or(0, |m| m.create_revision);
            Ok(Session {
                lease,
                member_revision,
            })
        }
        Err(error) => {
            let _ = lease.revoke().await;
            Err(error)
        }
    }
}

/// The background task of one membership.
struct Worker<H> {
    client: Client,
    group: String,
    info: GroupInfo,
    options: JoinOptions,
    me: MemberId,
    hooks: H,
    feed: MapFeed,
    /// The map as applied.
    map: GroupMap,
    /// Per partition, what the hooks were last told (this member's view).
    processed: BTreeMap<PartitionId, PartitionInfo>,
    map_tx: watch::Sender<MapView>,
    held: Arc<Mutex<Held>>,
    session: Session,
}

/// Why processing stopped early.
enum Interrupted {
    /// The session lease can no longer be assumed alive.
    SessionLost,
    /// The handle asked to stop.
    Stop(oneshot::Sender<()>),
}

impl<H: GroupHooks> Worker<H> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // The first map is in: tell the hooks what this member already holds.
        let all: Vec<PartitionId> = self.map.partitions.iter().map(|p| p.id).collect();
        let mut interrupted = self.process(&all, &mut commands).await;
        loop {
            match interrupted.take() {
                Some(Interrupted::Stop(reply)) => {
                    self.end_session().await;
                    let _ = self.session.lease.revoke().await;
                    let _ = reply.send(());
                    return;
                }
                Some(Interrupted::SessionLost) => {
                    self.end_session().await;
                    if let Some(stop) = self.rejoin(&mut commands).await {
                        let _ = stop.send(());
                        return;
                    }
                    let all: Vec<PartitionId> = self.map.partitions.iter().map(|p| p.id).collect();
                    interrupted = self.process(&all, &mut commands).await;
                    continue;
                }
                None => {}
            }
            let lease = self.session.lease.clone();
            tokio::select! {
                biased;
                command = commands.recv() => {
                    interrupted = Some(match command {
                        Some(Command::Stop(reply)) => Interrupted::Stop(reply),
                        None => return,
                    });
                }
                _ = lease.lost() => interrupted = Some(Interrupted::SessionLost),
                next = self.feed.next() => match next {
                    Ok((event, revision)) => {
                        let touched = self.apply(event, revision);
                        interrupted = self.process(&touched, &mut commands).await;
                    }
                    Err(error) => {
                        tracing::warn!(group = %self.group, member = %self.me, %error, "the group's map is gone; the membership ends");
                        self.end_session().await;
                        let _ = self.session.lease.revoke().await;
                        return;
                    }
                }
            }
        }
    }

    /// Applies an event to the map; returns the partitions to look at.
    fn apply(&mut self, event: pb::map_event::Event, revision: i64) -> Vec<PartitionId> {
        let touched: Vec<PartitionId> = match &event {
            pb::map_event::Event::Change(change) => {
                change.partitions.iter().map(|p| PartitionId(p.id)).collect()
            }
            // A snapshot, or this member's own registration changing, can change anything.
            _ => self.map.partitions.iter().map(|p| p.id).collect(),
        };
        let mut next = self.map.clone();
        match next.apply(event, revision) {
            Ok(()) => {
                self.feed.applied(next.generation);
                self.map = next;
                self.map_tx.send_replace(Arc::new(self.map.clone()));
                let mut touched = touched;
                if touched.len() < self.map.partitions.len() {
                    touched.sort();
                    touched.dedup();
                } else {
                    touched = self.map.partitions.iter().map(|p| p.id).collect();
                }
                touched
            }
            Err(gap) => {
                tracing::debug!(%gap, "membership map out of step; reading it again");
                self.feed.resync();
                Vec::new()
            }
        }
    }

    /// The partition as this member's session sees it: replicas of an older session of
    /// the same id are not this member's.
    fn effective(&self, partition: &PartitionInfo) -> PartitionInfo {
        let mine = self
            .map
            .members
            .get(&self.me)
            .is_some_and(|m| m.lease == self.session.lease.id().0);
        if mine {
            return partition.clone();
        }
        let mut view = partition.clone();
        view.replicas.retain(|r| r.member != self.me);
        if view.leader.as_ref() == Some(&self.me) {
            view.leader = None;
        }
        view
    }

    /// Runs the hooks for `touched` partitions, then their reports; stops early if the
    /// session is lost or the handle asks to stop.
    async fn process(
        &mut self,
        touched: &[PartitionId],
        commands: &mut mpsc::Receiver<Command>,
    ) -> Option<Interrupted> {
        for id in touched {
            let Some(partition) = self.map.partition(*id) else {
                continue;
            };
            let next = self.effective(partition);
            let hooks = transitions(&self.me, self.processed.get(id), &next);
            for hook in hooks {
                let lease = self.session.lease.clone();
                tokio::select! {
                    biased;
                    _ = lease.lost() => return Some(Interrupted::SessionLost),
                    command = commands.recv() => {
                        return Some(match command {
                            Some(Command::Stop(reply)) => Interrupted::Stop(reply),
                            None => Interrupted::SessionLost,
                        });
                    }
                    () = self.run_hook(&hook, &next) => {}
                }
            }
            self.processed.insert(*id, next);
        }
        None
    }

    async fn run_hook(&self, hook: &Hook, partition: &PartitionInfo) {
        match hook {
            Hook::Assigned {
                partition: id,
                role,
                previous_owner,
                report_ready,
            } => {
                self.hooks.on_assigned(*id, *role, previous_owner.clone()).await;
                self.held_mut().partitions.insert(*id);
                if *report_ready {
                    self.report(*id, pb::ReportKind::Ready, partition.epoch).await;
                }
            }
            Hook::Unassigned {
                partition: id,
                new_owner,
                report_released,
            } => {
                self.held_mut().partitions.remove(id);
                self.hooks.on_unassigned(*id, new_owner.clone()).await;
                if *report_released {
                    self.report(*id, pb::ReportKind::Released, partition.epoch).await;
                }
            }
            Hook::LeaderElected { partition: id, epoch } => {
                self.held_mut().leading.insert(*id, *epoch);
                self.hooks.on_leader_elected(*id, *epoch).await;
            }
            Hook::LeaderLost { partition: id } => {
                self.held_mut().leading.remove(id);
                self.hooks.on_leader_lost(*id).await;
            }
            Hook::ReplicaAdded {
                partition: id,
                member,
            } => self.hooks.on_replica_added(*id, member.clone()).await,
            Hook::ReplicaRemoved {
                partition: id,
                member,
            } => self.hooks.on_replica_removed(*id, member.clone()).await,
        }
    }

    fn held_mut(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports a hand-over step. A report at an epoch that moved on is sent again at the
    /// current one: a released replica has let go whatever the epoch, and a syncing one
    /// added while the partition had no leader is unaffected by its first leader — one
    /// added under a leader that has changed since is given up by the controller, which
    /// refuses the report then.
    async fn report(&self, partition: PartitionId, kind: pb::ReportKind, epoch: Epoch) {
        let group = self.client.group(&self.group);
        let ready = kind == pb::ReportKind::Ready;
        let mut epoch = epoch;
        for _ in 0..3 {
            match group.report(&self.me.0, partition, ready, epoch).await {
                Ok(()) => return,
                Err(Error::StaleEpoch { current, .. }) => epoch = Epoch(current),
                Err(error) => {
                    tracing::debug!(partition = partition.0, ?kind, %error, "report refused");
                    return;
                }
            }
        }
    }

    /// The session is over: `on_leader_lost` for everything led, `on_unassigned` for
    /// everything held — this member holds nothing from here on.
    async fn end_session(&mut self) {
        let (leading, held): (Vec<PartitionId>, Vec<PartitionId>) = {
            let held = self.held_mut();
            (
                held.leading.keys().copied().collect(),
                held.partitions.iter().copied().collect(),
            )
        };
        for id in leading {
            self.held_mut().leading.remove(&id);
            self.hooks.on_leader_lost(id).await;
        }
        for id in held {
            self.held_mut().partitions.remove(&id);
            self.hooks.on_unassigned(id, None).await;
        }
        for partition in self.processed.values_mut() {
            partition.replicas.retain(|r| r.member != self.me);
            if partition.leader.as_ref() == Some(&self.me) {
                partition.leader = None;
            }
        }
    }

    /// Joins again under a new session, retrying (while the old session is still alive
    /// on the cluster the id is taken); `Some` when told to stop meanwhile.
    async fn rejoin(&mut self, commands: &mut mpsc::Receiver<Command>) -> Option<oneshot::Sender<()>> {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                command = commands.recv() => {
                    return command.map(|Command::Stop(reply)| reply);
                }
                joined = join_session(&self.client, &self.group, &self.options, &self.info) => match joined {
                    Ok(session) => {
                        tracing::info!(group = %self.group, member = %self.me, "joined again with a new session");
                        self.held_mut().member_revision = session.member_revision;
                        self.session = session;
                        return None;
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::debug!(group = %self.group, member = %self.me, %error, "joining again failed; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff(self.client.options(), failures).max(Duration::from_millis(200)))
                .await;
        }
    }
}
