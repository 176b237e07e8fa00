//! The consensus node: one member's Raft group, its storage and its peer transport, behind
//! a small API the server calls (write, linearizable read barrier, status, membership).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_contract::retry::{describe, never_sent};
use conclave_mvcc::{CommitOutcome, GroupId, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use openraft::{Config, ReadPolicy, ServerState, SnapshotPolicy};
use tokio::sync::broadcast;

use crate::bootstrap::{identity_from_cluster, static_identity, static_member_id};
use crate::error::{ConsensusError, Result};
use crate::identity::Identity;
use crate::lessor::Lessor;
use crate::log_store::{LogStore, DEFAULT_SEGMENT_BYTES};
use crate::metrics::{ConsensusMetrics, LeaderTracker, PendingProposal};
use crate::network::{PeerChannels, PeerNetwork};
use crate::peer::{PeerReply, PeerRequest};
use crate::snapshot::SnapshotDir;
use crate::state_machine::StateMachine;
use crate::types::{Command, CommandResult, MemberNode, Raft, TypeConfig};

/// The only Raft group today; every message and storage name already carries it.
pub const DEFAULT_GROUP: GroupId = GroupId(1);

/// How a member starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// A member of a new cluster listed in `--initial-cluster`.
    New,
    /// A member already added to a running cluster (`--initial-cluster-state existing`).
    Existing,
    /// Join a running cluster through any of these member URLs (`--join`).
    Join(Vec<String>),
}

/// Everything the consensus node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's name.
    pub name: String,
    /// Where the Raft log, state machine and snapshots live.
    pub data_dir: PathBuf,
    /// Advertised peer URLs of this member.
    pub peer_urls: Vec<String>,
    /// Advertised client URLs of this member.
    pub client_urls: Vec<String>,
    /// `name -> peer URL` of the initial members (static bootstrap).
    pub initial_cluster: Vec<(String, String)>,
    /// The cluster token.
    pub cluster_token: String,
    /// New, existing or joining.
    pub bootstrap: Bootstrap,
    /// Source IP of outgoing peer connections (the IP the peer listener is bound to).
    pub peer_source_ip: Option<IpAddr>,
    /// TLS for outgoing connections to `https://` peer (and `--join`) URLs: the peer CA
    /// to verify members with and the peer certificate to present. `None`: plain only.
    pub peer_tls: Option<Arc<conclave_tls::ClientTls>>,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout (randomised between this and twice this).
    pub election_timeout: Duration,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot, for slow followers.
    pub snapshot_catchup_entries: u64,
    /// How long a client request may wait for a leader, a commit or a read index.
    pub request_timeout: Duration,
    /// sled page cache budget.
    pub cache_bytes: u64,
    /// On a fresh data dir: start the new cluster from this snapshot file.
    pub restore_snapshot: Option<PathBuf>,
    /// How often the leader checkpoints remaining lease TTLs through Raft.
    pub lease_checkpoint_interval: Duration,
    /// Where to report fsync and commit latencies, proposals and leader changes (`None`:
    /// not measured).
    pub metrics: Option<ConsensusMetrics>,
}

struct Inner {
    raft: Raft,
    store: Arc<Store>,
    snapshots: Arc<SnapshotDir>,
    identity: Identity,
    channels: PeerChannels,
    commits: broadcast::Sender<Arc<CommitOutcome>>,
    lessor: Lessor,
    stopping: AtomicBool,
    /// When this member last accepted an AppendEntries (heartbeats included) from a leader.
    leader_contact: std::sync::Mutex<Option<Instant>>,
    config: NodeConfig,
}

/// A running consensus node (cheap to clone).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// A point-in-time view of this member's Raft state.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// This member's id.
    pub member_id: u64,
    /// The leader's member id, if one is known.
    pub leader: Option<u64>,
    /// The current Raft term.
    pub term: u64,
    /// Index of the last entry in the local log.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Index of the last committed entry.
    pub committed_index: u64,
    /// Whether this member is a learner (non-voting).
    pub is_learner: bool,
    /// Whether this member is the leader.
    pub is_leader: bool,
}

/// One member in the current membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: u64,
    /// Name and URLs.
    pub node: MemberNode,
    /// Whether it is a learner.
    pub is_learner: bool,
}

fn fatal<E: std::fmt::Display>(e: E) -> ConsensusError {
    ConsensusError::Fatal(e.to_string())
}

pub(crate) fn leader_hint(f: &ForwardToLeader<TypeConfig>) -> Option<(u64, MemberNode)> {
    match (&f.leader_id, &f.leader_node) {
        (Some(id), Some(node)) => Some((*id, node.clone())),
        _ => None,
    }
}

impl Node {
    /// Opens storage, establishes this member's identity and starts Raft.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        std::fs::create_dir_all(&config.data_dir)?;
        let channels = PeerChannels::new(config.peer_source_ip, config.peer_tls.clone());
        let me = MemberNode {
            name: config.name.clone(),
            peer_urls: config.peer_urls.clone(),
            client_urls: config.client_urls.clone(),
        };

        let existing = Identity::load(&config.data_dir)?;
        let fresh = existing.is_none();
        let identity = match existing {
            Some(identity) => {
                // A member that joined belongs to whichever cluster it joined; its token
                // flag is not meaningful.
                let token = match config.bootstrap {
                    Bootstrap::Join(_) => None,
                    _ => Some(config.cluster_token.as_str()),
                };
                identity.check(&config.data_dir, &config.name, token)?;
                identity
            }
            None => {
                let identity = match &config.bootstrap {
                    Bootstrap::Join(urls) => {
                        identity_from_cluster(&channels, urls, PeerRequest::Join(me.clone()), &config.name)
                            .await?
                    }
                    Bootstrap::Existing => {
                        // Added earlier with MemberAdd: the cluster knows this member by its
                        // peer URLs. Ask the other initial members.
                        let others: Vec<String> = config
                            .initial_cluster
                            .iter()
                            .filter(|(name, _)| *name != config.name)
                            .map(|(_, url)| url.clone())
                            .collect();
                        identity_from_cluster(
                            &channels,
                            &others,
                            PeerRequest::Identify(me.clone()),
                            &config.name,
                        )
                        .await?
                    }
                    Bootstrap::New => static_identity(&config)?,
                };
                identity.save(&config.data_dir)?;
                identity
            }
        };
        channels.set_cluster_id(identity.cluster_id);
        tracing::info!(
            name = %identity.name,
            member_id = format!("{:x}", identity.member_id),
            cluster_id = format!("{:x}", identity.cluster_id),
            fresh,
            "member identity"
        );

        let db = sled::Config::new()
            .path(config.data_dir.join("state"))
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| {
                ConsensusError::Storage(format!(
                    "cannot open the state machine in {}: {e}",
                    config.data_dir.join("state").display()
                ))
            })?;
        let group = DEFAULT_GROUP;
        let mut log = LogStore::open_measured(
            &config.data_dir.join("raft").join(format!("g{}", group.0)),
            DEFAULT_SEGMENT_BYTES,
            config.metrics.as_ref().map(|m| m.wal_fsync_seconds.clone()),
        )?;
        let mut state_machine = StateMachine::open(
            &db,
            group,
            &config.data_dir.join("snapshots").join(format!("g{}", group.0)),
        )?;
        if let Some(metrics) = &config.metrics {
            state_machine.measure_commits(metrics.backend_commit_seconds.clone());
        }
        let store = state_machine.store();
        let snapshots = state_machine.snapshot_dir();
        let commits = state_machine.commit_sender();
        if let Some(file) = config.restore_snapshot.as_ref().filter(|_| !fresh) {
            // Like the --initial-cluster flags, the restore applies to the first start only.
            tracing::warn!(snapshot = %file.display(), "--restore-snapshot ignored: the data dir is already initialized");
        }
        if let Some(file) = config.restore_snapshot.as_ref().filter(|_| fresh) {
            match config.bootstrap {
                Bootstrap::New => {
                    crate::restore::restore(file, &config, &store, &snapshots, &mut log).await?
                }
                // A member joining a running cluster receives the cluster's data from it.
                Bootstrap::Join(_) => tracing::warn!(
                    snapshot = %file.display(),
                    "--restore-snapshot ignored: a joining member gets its data from the cluster"
                ),
                Bootstrap::Existing => {
                    return Err(ConsensusError::Config(
                        "--restore-snapshot starts a new cluster: use it with --initial-cluster-state new"
                            .into(),
                    ))
                }
            }
        }

        let heartbeat = config.heartbeat.as_millis() as u64;
        let election = (config.election_timeout.as_millis() as u64).max(heartbeat * 3);
        let raft_config = Config {
            cluster_name: format!("conclave-{:x}", identity.cluster_id),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: config.snapshot_catchup_entries,
            install_snapshot_timeout: 30_000,
            // Bounds a replication message: entries are at most the request limit each.
            max_payload_entries: 64,
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(format!("raft timing: {e}")))?;

        let raft = Raft::new(
            identity.member_id,
            Arc::new(raft_config),
            PeerNetwork::new(group, channels.clone()),
            log,
            state_machine,
        )
        .await
        .map_err(fatal)?;

        let node = Node {
            inner: Arc::new(Inner {
                raft,
                store,
                snapshots,
                identity,
                channels,
                commits,
                lessor: Lessor::default(),
                stopping: AtomicBool::new(false),
                leader_contact: std::sync::Mutex::new(None),
                config,
            }),
        };

        if node.inner.config.bootstrap == Bootstrap::New
            && !node.inner.raft.is_initialized().await.map_err(fatal)?
        {
            node.initialize().await?;
        }
        let lessor = node.clone();
        let checkpoint_interval = lessor.inner.config.lease_checkpoint_interval;
        tokio::spawn(async move { lessor.run_lessor(checkpoint_interval).await });
        let maintainer = node.clone();
        let joined = matches!(maintainer.inner.config.bootstrap, Bootstrap::Join(_));
        tokio::spawn(async move { maintainer.maintain_own_membership(joined).await });
        if let Some(metrics) = node.inner.config.metrics.clone() {
            let watched = node.clone();
            tokio::spawn(async move { watched.count_leader_changes(metrics).await });
        }
        Ok(node)
    }

    /// Counts every new leader this member sees, until Raft stops.
    async fn count_leader_changes(self, metrics: ConsensusMetrics) {
        let mut server = self.inner.raft.server_metrics();
        // Holds no strong reference while waiting, so the node can be dropped.
        drop(self);
        let mut tracker = LeaderTracker::default();
        loop {
            let leader = server.borrow_watched().current_leader;
            if tracker.observe(leader) {
                metrics.leader_changes.inc();
            }
            if server.changed().await.is_err() {
                return;
            }
        }
    }

    async fn initialize(&self) -> Result<()> {
        let members: BTreeMap<u64, MemberNode> = self
            .inner
            .config
            .initial_cluster
            .iter()
            .map(|(name, url)| {
                let id = static_member_id(&self.inner.config.cluster_token, name, url);
                let node = MemberNode {
                    name: name.clone(),
                    peer_urls: vec![url.clone()],
                    client_urls: Vec::new(),
                };
                (id, node)
            })
            .collect();
        // Every initial member initializes with the same membership; openraft allows this
        // (the vote elects one leader) and it needs no coordinator.
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(e)) => {
                tracing::info!(reason = %e, "cluster already initialized");
                Ok(())
            }
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.inner.identity.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.inner.identity.cluster_id
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.inner.identity.name
    }

    /// The lease countdown (used on the leader).
    pub(crate) fn lessor(&self) -> &Lessor {
        &self.inner.lessor
    }

    /// Whether [`Node::shutdown`] has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Relaxed)
    }

    /// How long a client request may wait for a leader, a commit or a read index.
    pub fn request_timeout(&self) -> Duration {
        self.inner.config.request_timeout
    }

    /// The configured election timeout.
    pub fn election_timeout(&self) -> Duration {
        self.inner.config.election_timeout
    }

    /// The cluster's token.
    pub fn cluster_token(&self) -> &str {
        &self.inner.identity.cluster_token
    }

    /// This member's entry as it should appear in the membership.
    pub(crate) fn own_node(&self) -> MemberNode {
        MemberNode {
            name: self.inner.config.name.clone(),
            peer_urls: self.inner.config.peer_urls.clone(),
            client_urls: self.inner.config.client_urls.clone(),
        }
    }

    /// The MVCC store (reads).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Every commit that changed the store, in apply order.
    pub fn subscribe_commits(&self) -> broadcast::Receiver<Arc<CommitOutcome>> {
        self.inner.commits.subscribe()
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow_watched().current_term
    }

    /// Whether this member is the Raft leader now.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Resolves once this member's role (leader or not) or term differs from `leader` and
    /// `term`, or Raft stopped.
    pub async fn role_changed(&self, leader: bool, term: u64) {
        let mut metrics = self.inner.raft.metrics();
        loop {
            {
                let now = metrics.borrow_watched();
                if (now.state == ServerState::Leader) != leader || now.current_term != term {
                    return;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// A snapshot of this member's Raft state.
    pub fn status(&self) -> NodeStatus {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let id = self.member_id();
        let is_learner = metrics
            .membership_config
            .membership()
            .learner_ids()
            .any(|l| l == id);
        NodeStatus {
            member_id: id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.as_ref().map_or(0, |l| l.index),
            committed_index: metrics.local_committed.as_ref().map_or(0, |l| l.index),
            is_learner,
            is_leader: metrics.state == ServerState::Leader,
        }
    }

    /// Records that a leader's AppendEntries (or heartbeat) was just accepted.
    pub(crate) fn note_leader_contact(&self) {
        let mut contact = self
            .inner
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *contact = Some(Instant::now());
    }

    /// Whether this member is in touch with a leader *now*: as leader, a quorum acknowledged
    /// it within `within`; as follower, it accepted the leader's heartbeat within `within`.
    /// A member cut off from the quorum may still name a leader in [`Node::status`]; this
    /// says whether that leader is live.
    pub fn has_live_leader(&self, within: Duration) -> bool {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        if metrics.current_leader.is_none() {
            return false;
        }
        if metrics.state == ServerState::Leader {
            return metrics
                .last_quorum_acked
                .is_some_and(|acked| openraft::Instant::elapsed(&*acked) <= within);
        }
        let contact = *self
            .inner
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        contact.is_some_and(|at| at.elapsed() <= within)
    }

    /// The current membership.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                node: node.clone(),
                is_learner: learners.contains(id),
            })
            .collect()
    }

    /// Proposes `command` and returns its result once applied. Any member accepts writes:
    /// a follower forwards to the leader. A write is retried only when it certainly was not
    /// proposed; otherwise the error says the outcome is unknown.
    pub async fn write(&self, command: Command) -> Result<CommandResult> {
        let _pending = PendingProposal::start(self.inner.config.metrics.as_ref());
        let result = self.propose_or_forward(command).await;
        if let (Err(_), Some(metrics)) = (&result, &self.inner.config.metrics) {
            metrics.proposals_failed.inc();
        }
        result
    }

    async fn propose_or_forward(&self, command: Command) -> Result<CommandResult> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt =
                tokio::time::timeout(remaining, self.inner.raft.client_write(command.clone())).await;
            let hint = match attempt {
                Err(_) => return Err(ConsensusError::OutcomeUnknown("commit timed out".into())),
                Ok(Ok(response)) => return Ok(response.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => leader_hint(&f),
                Ok(Err(RaftError::APIError(e))) => return Err(ConsensusError::OutcomeUnknown(e.to_string())),
                Ok(Err(RaftError::Fatal(e))) => return Err(fatal(e)),
            };
            if let Some((leader, node)) = hint.filter(|(id, _)| *id != self.member_id()) {
                match self
                    .call_peer(&node, PeerRequest::Write(command.clone()), remaining)
                    .await
                {
                    Ok(PeerReply::Written(result, index)) => {
                        // Answer only once this member has applied the write too, as etcd
                        // does: a serializable read or a watch on this member right after
                        // must see it (and a physical compaction must be in effect here).
                        let left = deadline.saturating_duration_since(Instant::now());
                        if let Err(e) = self
                            .inner
                            .raft
                            .wait(Some(left))
                            .applied_index_at_least(Some(index), "forwarded write")
                            .await
                        {
                            tracing::debug!(index, error = %e, "forwarded write not applied here in time");
                        }
                        return Ok(result);
                    }
                    Ok(PeerReply::NotLeader(_)) => {}
                    Ok(PeerReply::Failed(why)) => return Err(ConsensusError::OutcomeUnknown(why)),
                    Ok(other) => {
                        return Err(ConsensusError::OutcomeUnknown(format!(
                            "unexpected reply {other:?}"
                        )))
                    }
                    Err(status) if never_sent(&status) => {
                        tracing::debug!(leader = format!("{leader:x}"), error = %status.message(), "leader unreachable");
                    }
                    Err(status) => {
                        return Err(ConsensusError::OutcomeUnknown(format!(
                            "forwarding to leader {leader:x} failed: {}",
                            describe(&status)
                        )))
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ConsensusError::NoLeader);
            }
            self.wait_for_leader_change(deadline).await;
        }
    }

    /// Proposes `command` only if this member leads, never forwarding it: for decisions
    /// only the current leader may make (lease expiry and checkpoints).
    pub(crate) async fn propose_as_leader(&self, command: Command) -> Result<CommandResult> {
        match tokio::time::timeout(
            self.inner.config.request_timeout,
            self.inner.raft.client_write(command),
        )
        .await
        {
            Err(_) => Err(ConsensusError::OutcomeUnknown("commit timed out".into())),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ConsensusError::NotLeader)
            }
            Ok(Err(RaftError::APIError(e))) => Err(ConsensusError::OutcomeUnknown(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    /// Confirms with a quorum that this member still leads, and that its state machine
    /// has applied everything committed before the call (read index on the leader).
    pub(crate) async fn confirm_leadership(&self) -> Result<()> {
        let attempt = tokio::time::timeout(
            self.inner.config.request_timeout,
            self.inner.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await;
        match attempt {
            Err(_) => Err(ConsensusError::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(_))) => Err(ConsensusError::NotLeader),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    /// Waits (at most until `deadline`, and at most one election timeout) for the leader to
    /// change or become known.
    async fn wait_for_leader_change(&self, deadline: Instant) {
        let before = self.inner.raft.metrics().borrow_watched().current_leader;
        let step = self
            .inner
            .config
            .election_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let _ = self
            .inner
            .raft
            .wait(Some(step.max(Duration::from_millis(10))))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != before,
                "leader change",
            )
            .await;
        // Pace retries a little even when the hint did not change (e.g. a leader that is
        // known but unreachable).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Returns once this member's state machine reflects every write acknowledged before
    /// the call (etcd's linearizable read): the leader confirms it still leads with a quorum
    /// (read index) and the local state machine applies up to that index.
    pub async fn linearizable_barrier(&self) -> Result<()> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining,
                self.inner.raft.get_read_linearizer(ReadPolicy::ReadIndex),
            )
            .await;
            let hint = match attempt {
                Err(_) => return Err(ConsensusError::Timeout),
                Ok(Ok(linearizer)) => {
                    return match linearizer
                        .try_await_ready(&self.inner.raft, Some(remaining))
                        .await
                    {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(_)) => Err(ConsensusError::Timeout),
                        Err(e) => Err(fatal(e)),
                    };
                }
                Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => leader_hint(&f),
                Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)))) => None,
                Ok(Err(RaftError::Fatal(e))) => return Err(fatal(e)),
            };
            if let Some((_, node)) = hint.filter(|(id, _)| *id != self.member_id()) {
                if let Ok(PeerReply::ReadIndex(index)) =
                    self.call_peer(&node, PeerRequest::ReadIndex, remaining).await
                {
                    return self
                        .inner
                        .raft
                        .wait(Some(deadline.saturating_duration_since(Instant::now())))
                        .applied_index_at_least(Some(index), "read index")
                        .await
                        .map(|_| ())
                        .map_err(|_| ConsensusError::Timeout);
                }
            }
            if Instant::now() >= deadline {
                return Err(ConsensusError::Timeout);
            }
            self.wait_for_leader_change(deadline).await;
        }
    }

    async fn call_peer(
        &self,
        node: &MemberNode,
        request: PeerRequest,
        timeout: Duration,
    ) -> std::result::Result<PeerReply, tonic::Status> {
        crate::peer::call_peer(&self.inner.channels, node, request, timeout).await
    }

    /// Sends `request` to the current leader (whoever this member believes it is).
    pub(crate) async fn ask_leader(&self, request: PeerRequest) -> Result<PeerReply> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader.ok_or(ConsensusError::NoLeader)?;
        if leader == self.member_id() {
            return Ok(self.handle_peer(request).await);
        }
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or(ConsensusError::NoLeader)?;
        self.call_peer(&node, request, self.inner.config.request_timeout)
            .await
            .map_err(|s| ConsensusError::Unreachable(s.message().to_string()))
    }

    pub(crate) fn not_leader(&self) -> PeerReply {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let hint = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| (id, node.clone()))
        });
        PeerReply::NotLeader(hint)
    }

    /// Serves a request from another member.
    pub async fn handle_peer(&self, request: PeerRequest) -> PeerReply {
        let raft = &self.inner.raft;
        let timeout = self.inner.config.request_timeout;
        match request {
            PeerRequest::Write(command) => {
                match tokio::time::timeout(timeout, raft.client_write(command)).await {
                    Err(_) => PeerReply::Failed("commit timed out on the leader".into()),
                    Ok(Ok(response)) => {
                        let index = response.log_id.index();
                        PeerReply::Written(response.data, index)
                    }
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                        PeerReply::NotLeader(leader_hint(&f))
                    }
                    Ok(Err(e)) => PeerReply::Failed(e.to_string()),
                }
            }
            PeerRequest::ReadIndex => {
                match tokio::time::timeout(timeout, raft.get_read_linearizer(ReadPolicy::ReadIndex)).await {
                    Err(_) => PeerReply::Failed("read index timed out on the leader".into()),
                    Ok(Ok(linearizer)) => PeerReply::ReadIndex(linearizer.read_log_id().index()),
                    Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => {
                        PeerReply::NotLeader(leader_hint(&f))
                    }
                    Ok(Err(e)) => PeerReply::Failed(e.to_string()),
                }
            }
            PeerRequest::Join(node) => self.add_joining_member(node).await,
            PeerRequest::Promote(id) => self.promote_if_caught_up(id).await,
            PeerRequest::Identify(node) => self.identify_member(node).await,
            PeerRequest::Publish(id, node) => self.publish_member(id, node).await,
            PeerRequest::Membership(change) => self.handle_membership_change(change).await,
            request @ (PeerRequest::LeaseRenew(_) | PeerRequest::LeaseTimeToLive(_)) => {
                self.handle_lease_request(request).await
            }
        }
    }

    /// The Raft handle (for the peer service).
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Where received snapshots are written.
    pub(crate) fn snapshots(&self) -> &Arc<SnapshotDir> {
        &self.inner.snapshots
    }

    /// Stops Raft. A leader first hands leadership to the most up-to-date voter, so the
    /// cluster does not wait an election timeout for a new one.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        let raft = &self.inner.raft;
        if raft.is_leader() {
            let metrics = raft.metrics().borrow_watched().clone();
            let me = self.member_id();
            let target = metrics.replication.as_ref().and_then(|r| {
                r.iter()
                    .filter(|(id, _)| **id != me && raft.voter_ids().any(|v| v == **id))
                    .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                    .map(|(id, _)| *id)
            });
            if let Some(target) = target {
                tracing::info!(
                    to = format!("{target:x}"),
                    "handing leadership over before shutdown"
                );
                if raft.trigger().transfer_leader(target).await.is_ok() {
                    let _ = raft
                        .wait(Some(self.inner.config.election_timeout * 2))
                        .metrics(
                            |m| m.current_leader.is_some_and(|l| l != me),
                            "leadership handed over",
                        )
                        .await;
                }
            }
        }
        if let Err(e) = raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::warn!(error = %e, "flushing the state machine at shutdown");
        }
    }
}
