//! Partition groups against real 3-node clusters, members as SDK tasks with recording
//! hooks: convergence with the load bound and zone anti-affinity on the real map, the
//! replicas a join moves, a graceful leave with a ready leader at every generation, the
//! controller's node killed in the middle of a plan, replicas placed together on
//! leaderless partitions, and the order of hooks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_client::group::{
    GroupHooks, GroupMap, GroupSettings, JoinOptions, MapEvent, MemberId, Membership, PartitionId,
    ReplicaStage, Role,
};
use conclave_client::{Client, Epoch};
use futures::StreamExt;

/// One hook call as a member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Assigned,
    Unassigned,
    Elected(Epoch),
    Lost,
}

type Log = Arc<Mutex<Vec<(String, PartitionId, Call, Instant)>>>;

struct Recorder {
    member: String,
    log: Log,
}

impl Recorder {
    fn record(&self, partition: PartitionId, call: Call) {
        self.log
            .lock()
            .unwrap()
            .push((self.member.clone(), partition, call, Instant::now()));
    }
}

impl GroupHooks for Recorder {
    async fn on_assigned(&self, partition: PartitionId, _role: Role, _previous: Option<MemberId>) {
        self.record(partition, Call::Assigned);
    }
    async fn on_unassigned(&self, partition: PartitionId, _new_owner: Option<MemberId>) {
        self.record(partition, Call::Unassigned);
    }
    async fn on_leader_elected(&self, partition: PartitionId, epoch: Epoch) {
        self.record(partition, Call::Elected(epoch));
    }
    async fn on_leader_lost(&self, partition: PartitionId) {
        self.record(partition, Call::Lost);
    }
}

/// Per member and partition: assigned before elected, lost before unassigned, never two
/// elections without a loss between, epochs growing.
fn check_hook_order(log: &Log) -> usize {
    let log = log.lock().unwrap();
    let mut by: BTreeMap<(String, PartitionId), Vec<Call>> = BTreeMap::new();
    for (member, partition, call, _) in log.iter() {
        by.entry((member.clone(), *partition))
            .or_default()
            .push(call.clone());
    }
    for ((member, partition), calls) in &by {
        let (mut held, mut leading, mut last_epoch) = (false, false, Epoch(0));
        for call in calls {
            match call {
                Call::Assigned => {
                    assert!(!held, "{member} assigned {partition:?} twice: {calls:?}");
                    held = true;
                }
                Call::Elected(epoch) => {
                    assert!(
                        held && !leading,
                        "{member} elected on {partition:?} out of order: {calls:?}"
                    );
                    assert!(
                        *epoch > last_epoch,
                        "{member} epochs on {partition:?} not growing: {calls:?}"
                    );
                    last_epoch = *epoch;
                    leading = true;
                }
                Call::Lost => {
                    assert!(leading, "{member} lost {partition:?} it did not lead: {calls:?}");
                    leading = false;
                }
                Call::Unassigned => {
                    assert!(
                        held && !leading,
                        "{member} unassigned {partition:?} out of order: {calls:?}"
                    );
                    held = false;
                }
            }
        }
    }
    log.len()
}

fn settings(partitions: u32, replicas: u32) -> GroupSettings {
    GroupSettings {
        rebalance_delay: Some(Duration::from_millis(300)),
        session_ttl: Some(Duration::from_secs(3)),
        ..GroupSettings::new(partitions, replicas)
    }
}

async fn join(client: &Client, group: &str, id: &str, zone: &str, log: &Log) -> Membership {
    join_weighted(client, group, id, zone, 1, log).await
}

async fn join_weighted(
    client: &Client,
    group: &str,
    id: &str,
    zone: &str,
    weight: u32,
    log: &Log,
) -> Membership {
    let hooks = Recorder {
        member: id.into(),
        log: log.clone(),
    };
    client
        .group(group)
        .join(JoinOptions::new(id).zone(zone).weight(weight), hooks)
        .await
        .expect("join")
}

/// The controller's target for the members `map` shows (the same pure placement the
/// controller runs).
fn target(map: &GroupMap, info: &conclave_client::group::GroupInfo) -> conclave_controller::Target {
    let members: Vec<conclave_controller::Member> = map
        .members
        .values()
        .map(|m| conclave_controller::Member {
            id: m.id.clone(),
            weight: m.weight,
            zone: m.labels.get(&info.zone_label).cloned(),
            state: match m.state {
                conclave_client::group::MemberState::Active => conclave_controller::MemberState::Active,
                conclave_client::group::MemberState::Draining => conclave_controller::MemberState::Draining,
                conclave_client::group::MemberState::Leaving => conclave_controller::MemberState::Leaving,
            },
        })
        .collect();
    let settings = conclave_controller::Settings {
        partitions: info.partitions,
        replicas: info.replicas,
        epsilon_permille: (info.epsilon * 1000.0).round() as u32,
        rebalance_delay: info.rebalance_delay,
        handoff_timeout: info.handoff_timeout,
        max_moves_per_member: info.max_moves_per_member,
        max_moves_per_group: info.max_moves_per_group,
    };
    conclave_controller::place(&map.group, &members, &settings)
}

/// The map has reached its target on exactly `members`: every partition holds its target
/// replicas, all ready, and leads.
fn settled(map: &GroupMap, info: &conclave_client::group::GroupInfo, members: &[&str]) -> bool {
    let shown: BTreeSet<&str> = map.members.keys().map(|m| m.0.as_str()).collect();
    if shown != members.iter().copied().collect() {
        return false;
    }
    let target = target(map, info);
    map.partitions.iter().all(|p| {
        let mut have: Vec<&MemberId> = p.replicas.iter().map(|r| &r.member).collect();
        let mut want: Vec<&MemberId> = target.of(p.id).iter().collect();
        have.sort();
        want.sort();
        p.leader.is_some() && have == want && p.replicas.iter().all(|r| r.stage == ReplicaStage::Ready)
    })
}

async fn wait_settled(client: &Client, group: &str, _replicas: usize, members: &[&str]) -> GroupMap {
    let info = client.group(group).get().await.expect("group");
    let mut router = client.group(group).router().await.expect("router");
    router
        .wait_for(Duration::from_secs(60), |m| settled(m, &info, members))
        .await
        .map(|m| (*m).clone())
        .unwrap_or_else(|e| panic!("not settled on {members:?}: {e}\n{:#?}", router.map()))
}

fn zone_of(i: usize) -> String {
    format!("zone-{}", i % 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_members_converge_within_the_bound_apart_by_zone_and_a_join_moves_about_its_share() {
    let cluster = common::start_cluster(3);
    let client = common::client_of_all(&cluster).await;
    client.group("g").create(settings(64, 3)).await.expect("create");
    let log: Log = Arc::default();
    let mut members = Vec::new();
    // Three zones of equal capacity: two members of weight 1 in two of them, one member
    // of weight 2 in the third — so one replica per zone fits within every member's cap.
    let layout = [
        ("m1", "zone-a", 1),
        ("m2", "zone-a", 1),
        ("m3", "zone-b", 1),
        ("m4", "zone-b", 1),
        ("m5", "zone-c", 2),
    ];
    for (id, zone, weight) in layout {
        members.push(join_weighted(&client, "g", id, zone, weight, &log).await);
    }
    let ids: Vec<String> = layout.iter().map(|(id, _, _)| id.to_string()).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let map = wait_settled(&client, "g", 3, &names).await;

    // The load bound: ceil(P·R·w/W·(1+ε)) = ceil(64·3·w/6·1.25): 40 for weight 1, 80 for 2.
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &map.partitions {
        for r in &p.replicas {
            *load.entry(r.member.0.as_str()).or_default() += 1;
        }
        // Three zones, three replicas: one in each.
        let zones: BTreeSet<&str> = p
            .replicas
            .iter()
            .map(|r| map.members[&r.member].labels["zone"].as_str())
            .collect();
        assert_eq!(
            zones.len(),
            3,
            "partition {:?} not spread over the zones: {p:?}",
            p.id
        );
    }
    for (member, n) in &load {
        let cap = if *member == "m5" { 80 } else { 40 };
        assert!(*n <= cap, "{member} holds {n} > {cap}: {load:?}");
    }
    let led: BTreeMap<&MemberId, usize> = map.partitions.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.leader.as_ref().expect("led")).or_default() += 1;
        m
    });
    for (member, n) in &led {
        // ceil(P·w/W·(1+ε)): 14 for weight 1, 27 for weight 2.
        let cap = if member.0 == "m5" { 27 } else { 14 };
        assert!(*n <= cap, "{member} leads {n} > {cap}: {led:?}");
    }

    // A sixth member: how many replicas land on a member that did not hold them.
    members.push(join_weighted(&client, "g", "m6", "zone-c", 1, &log).await);
    let six = [names.clone(), vec!["m6"]].concat();
    let after = wait_settled(&client, "g", 3, &six).await;
    let moved: usize = map
        .partitions
        .iter()
        .zip(&after.partitions)
        .map(|(b, a)| {
            a.replicas
                .iter()
                .filter(|r| b.replicas.iter().all(|x| x.member != r.member))
                .count()
        })
        .sum();
    // Ideal: the newcomer's share, P·R·w/W = 64·3·1/7.
    let ideal = 64 * 3 / 7;
    assert!(
        moved <= 2 * ideal + 8,
        "a join moved {moved} replicas, ideal {ideal}"
    );
    println!(
        "6th member joining P=64 R=3: {moved} replicas moved, ideal P·R·w/W = {ideal}; load before {load:?}"
    );
    let calls = check_hook_order(&log);
    println!("{calls} hook calls in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_leave_keeps_a_ready_leader_at_every_generation() {
    let cluster = common::start_cluster(3);
    let client = common::client_of_all(&cluster).await;
    client.group("g").create(settings(32, 2)).await.expect("create");
    let log: Log = Arc::default();
    let mut members = Vec::new();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        members.push(join(&client, "g", id, &zone_of(i), &log).await);
    }
    let map = wait_settled(&client, "g", 2, &["a", "b", "c", "d"]).await;
    let leaving = members.remove(0);
    let led_before: Vec<PartitionId> = map
        .partitions
        .iter()
        .filter(|p| p.leader.as_ref() == Some(leaving.id()))
        .map(|p| p.id)
        .collect();
    assert!(!led_before.is_empty(), "a leads partitions");

    // Follow every generation while `a` leaves.
    let mut events = client.group("g").watch(map.generation);
    let follow = tokio::spawn(async move {
        let mut state = map.clone();
        let mut checked = 0usize;
        let mut epochs: BTreeMap<PartitionId, i64> =
            state.partitions.iter().map(|p| (p.id, p.epoch.0)).collect();
        let mut move_started: BTreeMap<PartitionId, Instant> = BTreeMap::new();
        let mut handovers = Vec::new();
        while let Some(event) = events.next().await {
            let MapEvent::Change {
                generation,
                partitions,
                ..
            } = event.expect("event")
            else {
                continue;
            };
            assert_eq!(generation, state.generation + 1, "generations are consecutive");
            state.generation = generation;
            for p in partitions {
                let ready_leader = p.leader.as_ref().is_some_and(|l| {
                    p.replicas
                        .iter()
                        .any(|r| &r.member == l && r.stage == ReplicaStage::Ready)
                });
                assert!(
                    ready_leader,
                    "generation {generation}: partition {:?} has no ready leader: {p:?}",
                    p.id
                );
                let before = epochs[&p.id];
                if state.partitions[p.id.0 as usize].leader != p.leader {
                    assert!(p.epoch.0 > before, "a new leader at a higher epoch");
                }
                epochs.insert(p.id, p.epoch.0);
                let a_syncing_replacement = p
                    .replicas
                    .iter()
                    .any(|r| matches!(&r.stage, ReplicaStage::Syncing { replaces: Some(m) } if m.0 == "a"));
                if a_syncing_replacement {
                    move_started.entry(p.id).or_insert_with(Instant::now);
                }
                let a_gone = p.replicas.iter().all(|r| r.member.0 != "a");
                if a_gone {
                    if let Some(started) = move_started.remove(&p.id) {
                        handovers.push(started.elapsed());
                    }
                }
                let index = p.id.0 as usize;
                state.partitions[index] = p;
                checked += 1;
            }
            if state
                .partitions
                .iter()
                .all(|p| p.replicas.iter().all(|r| r.member.0 != "a"))
            {
                return (checked, handovers);
            }
        }
        panic!("the watch ended");
    });
    let started = Instant::now();
    leaving.leave(Duration::from_secs(60)).await.expect("leave");
    let took = started.elapsed();
    let (checked, mut handovers) = tokio::time::timeout(Duration::from_secs(30), follow)
        .await
        .expect("followed")
        .expect("follower");
    let map = wait_settled(&client, "g", 2, &["b", "c", "d"]).await;
    assert!(map.members.keys().all(|m| m.0 != "a"));
    handovers.sort();
    println!(
        "graceful leave of a member leading {} of 32 partitions: {took:?} in all; per-partition hand-over median {:?}, max {:?} over {}; {checked} partition states checked",
        led_before.len(),
        handovers.get(handovers.len() / 2),
        handovers.last(),
        handovers.len()
    );
    check_hook_order(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_node_dies_mid_plan_and_another_finishes_it_without_skipping_a_generation() {
    let cluster = common::start_cluster(3);
    let client = common::client_of_all(&cluster).await;
    let slow = GroupSettings {
        max_moves_per_group: Some(2),
        max_moves_per_member: Some(1),
        ..settings(48, 2)
    };
    client.group("g").create(slow).await.expect("create");
    let log: Log = Arc::default();
    let mut members = Vec::new();
    for (i, id) in ["a", "b"].iter().enumerate() {
        members.push(join(&client, "g", id, &zone_of(i), &log).await);
    }
    let map = wait_settled(&client, "g", 2, &["a", "b"]).await;
    let mut events = client.group("g").watch(map.generation);
    // Two more members: a plan of many small steps.
    for (i, id) in ["c", "d"].iter().enumerate() {
        members.push(join(&client, "g", id, &zone_of(i + 2), &log).await);
    }
    let mut generation = map.generation;
    let mut seen = 0;
    // Let the plan get going, then kill the node running the controller (the Raft leader).
    while seen < 6 {
        if let Some(Ok(MapEvent::Change { generation: g, .. })) = events.next().await {
            assert_eq!(g, generation + 1);
            generation = g;
            seen += 1;
        }
    }
    let leader = common::leader(&cluster).await;
    cluster.kill(leader).expect("kill the controller's node");
    let killed_at = generation;
    let final_map = wait_settled(&client, "g", 2, &["a", "b", "c", "d"]).await;
    while generation < final_map.generation {
        match events.next().await.expect("events").expect("event") {
            MapEvent::Change { generation: g, .. } => {
                assert_eq!(g, generation + 1, "no generation skipped or repeated");
                generation = g;
            }
            MapEvent::Snapshot(_) => panic!("the watch should resume, not restart"),
            MapEvent::Members { .. } => {}
        }
    }
    // The history agrees: consecutive generations at increasing revisions.
    let history = client.group("g").history(1000).await.expect("history");
    for pair in history.windows(2) {
        assert_eq!(pair[0].generation, pair[1].generation + 1);
        assert!(pair[0].revision > pair[1].revision);
    }
    println!(
        "controller node killed at generation {killed_at}; plan finished at generation {} with every generation seen once",
        final_map.generation
    );
    assert!(final_map.generation > killed_at);
    check_hook_order(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_leader_hears_it_lost_before_a_successor_is_elected() {
    let cluster = common::start_cluster(3);
    let raft_leader = common::leader(&cluster).await;
    let cut = (1..=3).find(|i| *i != raft_leader).expect("a follower");
    let others: Vec<usize> = (1..=3).filter(|i| *i != cut).collect();
    let admin = common::client_of_all(&cluster).await;
    admin.group("g").create(settings(8, 2)).await.expect("create");
    let log: Log = Arc::default();
    // `a` talks only to the member that will be stopped; `b` to the other two.
    let a_client = common::client_of(&cluster, &[cut]).await;
    let b_client = common::client_of(&cluster, &others).await;
    let a = join(&a_client, "g", "a", "zone-0", &log).await;
    let b = join(&b_client, "g", "b", "zone-1", &log).await;
    wait_settled(&admin, "g", 2, &["a", "b"]).await;
    // And the leaderships balanced (4 each, ceil(P/N)): no planned transfer is left to
    // make b a leader while a is cut off — only a's session ending may.
    let map = admin
        .group("g")
        .router()
        .await
        .expect("router")
        .wait_for(Duration::from_secs(30), |m| {
            ["a", "b"].iter().all(|id| {
                m.partitions
                    .iter()
                    .filter(|p| p.leader.as_ref().is_some_and(|l| l.0 == *id))
                    .count()
                    == 4
            })
        })
        .await
        .map(|m| (*m).clone())
        .expect("leaderships balanced");
    let led: Vec<PartitionId> = map
        .partitions
        .iter()
        .filter(|p| p.leader.as_ref() == Some(a.id()))
        .map(|p| p.id)
        .collect();
    assert!(!led.is_empty(), "a leads partitions");

    cluster.pause(cut).expect("SIGSTOP");
    let mut router = admin.group("g").router().await.expect("router");
    router
        .wait_for(Duration::from_secs(30), |m| {
            led.iter()
                .all(|p| m.partition(*p).is_some_and(|p| p.leader.as_ref() == Some(b.id())))
        })
        .await
        .expect("b leads a's partitions");
    // b's hooks follow the map: wait until they ran.
    let elected = |log: &Log, member: &str, p: PartitionId| {
        log.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(m, q, c, _)| m == member && *q == p && matches!(c, Call::Elected(_)))
            .map(|(_, _, _, at)| *at)
    };
    conclave_testkit::wait_until("b's on_leader_elected", Duration::from_secs(10), || {
        let log = log.clone();
        let led = led.clone();
        async move { led.iter().all(|p| elected(&log, "b", *p).is_some()).then_some(()) }
    })
    .await
    .expect("hooks");
    for p in &led {
        let lost = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, q, c, _)| m == "a" && q == p && *c == Call::Lost)
            .map(|(_, _, _, at)| *at)
            .next()
            .unwrap_or_else(|| panic!("a never heard it lost partition {p:?}"));
        let won = elected(&log, "b", *p).expect("elected");
        assert!(
            lost < won,
            "partition {p:?}: a lost it {:?} after b was elected",
            lost - won
        );
        println!(
            "partition {p:?}: a heard it lost {:?} before b's election",
            won - lost
        );
    }
    cluster.resume(cut).expect("SIGCONT");
    check_hook_order(&log);
}

/// Several members placed together on partitions that have no leader: the replicas
/// sync under no leadership and must not be stranded when the first of them is elected
/// (the others' ready reports race with that election). To place them together for
/// sure, a registered member that never reports first holds every partition (syncing,
/// so nothing moves), three real members join, then its session is revoked: the
/// partitions, empty again, are placed on the three at once. The hand-over timeout is far
/// longer than the wait, so only reports — never the timeout — can settle the map.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_placed_together_on_a_leaderless_partition_all_become_ready() {
    let cluster = common::start_cluster(3);
    let client = common::client_of_all(&cluster).await;
    let patient = GroupSettings {
        handoff_timeout: Some(Duration::from_secs(600)),
        ..settings(64, 3)
    };
    client.group("g").create(patient).await.expect("create");

    // Partitions with several replicas syncing under no leader.
    let together: Arc<Mutex<BTreeSet<PartitionId>>> = Arc::default();
    let mut events = client.group("g").watch(0);
    let follow = tokio::spawn({
        let together = together.clone();
        async move {
            while let Some(Ok(event)) = events.next().await {
                let partitions = match event {
                    MapEvent::Change { partitions, .. } => partitions,
                    MapEvent::Snapshot(map) => map.partitions,
                    MapEvent::Members { .. } => continue,
                };
                for p in partitions {
                    let syncing = p
                        .replicas
                        .iter()
                        .filter(|r| r.stage != ReplicaStage::Ready)
                        .count();
                    if p.leader.is_none() && syncing > 1 {
                        together.lock().unwrap().insert(p.id);
                    }
                }
            }
        }
    });

    // A member that never reports holds every partition, syncing.
    let silent = client.grant_lease(Duration::from_secs(30)).await.expect("lease");
    client
        .group("g")
        .register(&JoinOptions::new("silent").zone("zone-x"), silent.id())
        .await
        .expect("register");
    let mut router = client.group("g").router().await.expect("router");
    router
        .wait_for(Duration::from_secs(20), |m| {
            m.partitions.iter().all(|p| !p.replicas.is_empty())
        })
        .await
        .expect("first placement on the silent member");

    let log: Log = Arc::default();
    let ids = ["a", "b", "c"];
    let mut members = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        members.push(join(&client, "g", id, &zone_of(i), &log).await);
    }
    router
        .wait_for(Duration::from_secs(20), |m| m.members.len() == 4)
        .await
        .expect("the three are registered");
    let started = Instant::now();
    silent.revoke().await.expect("revoke");

    conclave_testkit::wait_until(
        "every partition placed on the three together",
        Duration::from_secs(30),
        || {
            let n = together.lock().unwrap().len();
            async move { (n == 64).then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} of 64 placed together\n{:#?}",
            together.lock().unwrap(),
            router.map()
        )
    });
    follow.abort();
    let map = wait_settled(&client, "g", 3, &ids).await;
    println!(
        "64 partitions placed on 3 members at once: settled {:?} after the revoke, at generation {}",
        started.elapsed(),
        map.generation
    );
    drop(members);
    check_hook_order(&log);
}
