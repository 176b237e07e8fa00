//! The faults a schedule injects, one at a time, each healed before the next.

use std::time::Duration;

use conclave_testkit::{leader_index, Cluster};
use tokio::time::Instant;

use crate::rng::Rng;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a member, restart it with its data dir later.
    Kill(usize),
    /// SIGKILL the current leader, restart it later.
    KillLeader,
    /// SIGSTOP a member, SIGCONT it later.
    Pause(usize),
    /// Cut a member off from all others (both directions).
    Isolate(usize),
    /// Cut the current leader off from all others.
    IsolateLeader,
    /// Split the cluster in two groups: `[1..=k]` and the rest (2/1 in a 3-member
    /// cluster, 2/3 in a 5-member one).
    Split(usize),
    /// 5 members: groups {1,2} {3,4} {5}.
    SplitThreeWays,
}

/// What happened when a fault was injected (for the report).
#[derive(Debug, Clone)]
pub struct Injection {
    /// The fault.
    pub fault: Fault,
    /// The member it hit, when it hit one (resolved leader included).
    pub member: Option<usize>,
    /// When it was injected.
    pub at: Instant,
    /// Whether it removed the leader (kill/isolate of the leader).
    pub hit_leader: bool,
}

/// Picks the next fault for a cluster of `size` members.
pub fn pick(rng: &mut Rng, size: usize) -> Fault {
    let member = 1 + rng.below(size as u64) as usize;
    let choices: u64 = if size >= 5 { 7 } else { 6 };
    match rng.below(choices) {
        0 => Fault::Kill(member),
        1 => Fault::KillLeader,
        2 => Fault::Pause(member),
        3 => Fault::Isolate(member),
        4 => Fault::IsolateLeader,
        5 => Fault::Split(size / 2),
        _ => Fault::SplitThreeWays,
    }
}

/// Injects `fault`; returns what it did.
pub async fn inject(cluster: &Cluster, fault: Fault) -> Injection {
    let leader = leader_index(cluster, Duration::from_secs(5)).await.ok();
    let (member, hit_leader) = match fault {
        Fault::Kill(i) => {
            let _ = cluster.kill(i);
            (Some(i), leader == Some(i))
        }
        Fault::KillLeader => match leader {
            Some(i) => {
                let _ = cluster.kill(i);
                (Some(i), true)
            }
            None => (None, false),
        },
        Fault::Pause(i) => {
            let _ = cluster.pause(i);
            (Some(i), leader == Some(i))
        }
        Fault::Isolate(i) => {
            cluster.isolate(i);
            (Some(i), leader == Some(i))
        }
        Fault::IsolateLeader => match leader {
            Some(i) => {
                cluster.isolate(i);
                (Some(i), true)
            }
            None => (None, false),
        },
        Fault::Split(k) => {
            for a in 1..=k {
                for b in (k + 1)..=cluster.size() {
                    cluster.block(a, b);
                }
            }
            (None, leader.is_some_and(|l| l <= k && k < cluster.size() / 2 + 1))
        }
        Fault::SplitThreeWays => {
            let groups: [&[usize]; 3] = [&[1, 2], &[3, 4], &[5]];
            for (gi, g) in groups.iter().enumerate() {
                for other in groups.iter().skip(gi + 1) {
                    for a in g.iter() {
                        for b in other.iter() {
                            cluster.block(*a, *b);
                        }
                    }
                }
            }
            (None, leader.is_some())
        }
    };
    // Taken once the fault is in place: requests sent before it are not "after the fault".
    let at = Instant::now();
    Injection {
        fault,
        member,
        at,
        hit_leader,
    }
}

/// Undoes `injection`: restarts killed members, resumes paused ones, heals the network.
pub fn heal(cluster: &Cluster, injection: &Injection) {
    match (injection.fault, injection.member) {
        (Fault::Kill(_) | Fault::KillLeader, Some(i)) => {
            let _ = cluster.restart(i);
        }
        (Fault::Pause(_), Some(i)) => {
            let _ = cluster.resume(i);
        }
        _ => {}
    }
    cluster.heal();
}
