//! Placement and plan time, and replicas moved, for simulated members.

use std::collections::BTreeSet;
use std::time::Instant;

use conclave_controller::placement::{place, Target};
use conclave_controller::{
    decide, Input, Map, Member, MemberId, Millis, Partition, PartitionId, Replica, Settings,
};
use serde::Serialize;

use super::{median, ms};

/// The figures of one member count.
#[derive(Debug, Serialize)]
pub struct PlacementRow {
    /// Members.
    pub members: usize,
    /// Median time of a placement, ms.
    pub place_ms: f64,
    /// Median time of a placement plus one controller step (plan) after a join, ms.
    pub place_and_plan_ms: f64,
    /// Replicas a join moved (placed on a member that did not hold them).
    pub join_moved: usize,
    /// The newcomer's share, P·R/(N+1).
    pub join_ideal: f64,
    /// Replicas a leave moved.
    pub leave_moved: usize,
    /// What the leaving member held.
    pub leave_held: usize,
    /// The most and least replicas one member holds, and the cap.
    pub max_load: u32,
    /// The least.
    pub min_load: u32,
    /// ceil(P·R/N·(1+ε)).
    pub cap: u32,
}

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member::new(format!("member-{i:04}")).in_zone(format!("zone-{}", i % 3)))
        .collect()
}

fn moved(before: &Target, after: &Target) -> usize {
    before
        .replicas
        .iter()
        .zip(&after.replicas)
        .map(|(b, a)| a.iter().filter(|m| !b.contains(m)).count())
        .sum()
}

/// A settled map holding `target` (every replica ready, the first one leading).
fn settled(target: &Target, revision: i64) -> Map {
    Map {
        generation: conclave_controller::Generation(1),
        partitions: target
            .replicas
            .iter()
            .map(|members| Partition {
                replicas: members.iter().map(|m| Replica::ready(m.0.clone())).collect(),
                leader: members.first().cloned(),
                epoch: conclave_controller::Epoch(revision),
            })
            .collect(),
    }
}

/// Measures every member count in `counts`, `rounds` times each.
pub fn run(
    partitions: u32,
    replicas: u32,
    counts: &[usize],
    rounds: usize,
) -> anyhow::Result<Vec<PlacementRow>> {
    let settings = Settings::new(partitions, replicas);
    let mut rows = Vec::new();
    for &n in counts {
        let before_members = members(n);
        let mut place_times = Vec::new();
        let mut target = place("bench", &before_members, &settings);
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            target = place("bench", &before_members, &settings);
            place_times.push(started.elapsed());
        }
        let mut joined = before_members.clone();
        joined.push(Member::new("newcomer").in_zone("zone-0"));
        let map = settled(&target, 2);
        let mut plan_times = Vec::new();
        let mut join_target = place("bench", &joined, &settings);
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            join_target = place("bench", &joined, &settings);
            let since = |_: PartitionId, _: &MemberId| None;
            let decision = decide(&Input {
                settings: &settings,
                members: &joined,
                map: &map,
                target: &join_target,
                acks: &[],
                now: Millis(10_000),
                membership_changed_at: Millis(0),
                since: &since,
            });
            plan_times.push(started.elapsed());
            if !decision.is_change() {
                anyhow::bail!(
                    "a join of member {} started no move: the measurement is void",
                    n + 1
                );
            }
        }
        let left: Vec<Member> = before_members[1..].to_vec();
        let leave_target = place("bench", &left, &settings);
        let load = target.load();
        let held = load.get(&before_members[0].id).copied().unwrap_or(0) as usize;
        let caps = conclave_controller::placement::replica_caps(&before_members, &settings);
        let distinct: BTreeSet<u32> = load.values().copied().collect();
        rows.push(PlacementRow {
            members: n,
            place_ms: ms(median(place_times)),
            place_and_plan_ms: ms(median(plan_times)),
            join_moved: moved(&target, &join_target),
            join_ideal: f64::from(partitions * replicas.min(n as u32 + 1)) / (n as f64 + 1.0),
            leave_moved: moved(&target, &leave_target),
            leave_held: held,
            max_load: distinct.iter().next_back().copied().unwrap_or(0),
            min_load: distinct.iter().next().copied().unwrap_or(0),
            cap: caps.values().copied().max().unwrap_or(0),
        });
    }
    Ok(rows)
}

/// Prints rows as a Markdown table.
pub fn print(partitions: u32, replicas: u32, rows: &[PlacementRow]) {
    println!("P = {partitions}, R = {replicas}, ε = 0.25, members in 3 zones\n");
    println!("| members | placement | placement + plan (a join) | join: moved / ideal | leave: moved / held | load min–max (cap) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {} / {:.1} ({:.2}×) | {} / {} ({:.2}×) | {}–{} ({}) |",
            r.members,
            r.place_ms,
            r.place_and_plan_ms,
            r.join_moved,
            r.join_ideal,
            r.join_moved as f64 / r.join_ideal.max(1.0),
            r.leave_moved,
            r.leave_held,
            r.leave_moved as f64 / (r.leave_held.max(1) as f64),
            r.min_load,
            r.max_load,
            r.cap
        );
    }
}
