//! etcd v3 client helpers: connecting to one node and finding the leader.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinSet;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::wait::wait_until_ok;

/// How long [`client`] waits for the TCP connection to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long [`leader_index`] waits for one node's `Maintenance.Status` answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// An etcd client talking to `endpoint` only (no failover to other members), with a
/// [`CONNECT_TIMEOUT`] connect timeout. Requests have no timeout of their own: wrap
/// them in `tokio::time::timeout` or [`crate::wait_until`] when the node may be down.
pub async fn client(endpoint: &str) -> Result<Client> {
    let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
    Client::connect([endpoint], Some(options))
        .await
        .map_err(|source| Error::Etcd {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// What one node said when asked for its status.
#[derive(Debug, Clone, Copy)]
struct Status {
    member_id: u64,
    leader: u64,
}

/// Waits until a majority of the running, unpaused nodes report the same non-zero
/// `leader` in `Maintenance.Status`, and that leader is one of the answering nodes;
/// returns its index (1-based). On timeout the error shows the last answers.
///
/// This is the leader a majority believes in *now*: right after isolating or killing a
/// leader, a majority may still name it until an election completes, so wait for a
/// different index with [`crate::wait_until`] when a new leader is expected.
pub async fn leader_index(cluster: &Cluster, timeout: Duration) -> Result<usize> {
    let index = wait_until_ok(
        "a majority of running nodes to agree on a leader",
        timeout,
        || agreed_leader(cluster),
    )
    .await?;
    Ok(index)
}

/// One round of asking every running node; `Err` describes why there is no agreed leader.
async fn agreed_leader(cluster: &Cluster) -> Result<usize, String> {
    let mut asks = JoinSet::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        if node.is_running() && !node.is_paused() {
            let index = i + 1;
            let endpoint = node.client_url().to_owned();
            asks.spawn(async move { (index, status(&endpoint).await) });
        }
    }
    let running = asks.len();
    if running == 0 {
        return Err("no node is running".to_owned());
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            Err(e) => return Err(format!("a status request task failed: {e}")),
        }
    }
    answers.sort_by_key(|(index, _)| *index);
    decide_leader(running, &answers)
}

/// The index of the leader that a majority of the `running` nodes name in `answers`
/// (node index, status or error), provided the leader itself answered; otherwise a
/// description of what was observed.
fn decide_leader(running: usize, answers: &[(usize, Result<Status, String>)]) -> Result<usize, String> {
    let mut votes: HashMap<u64, usize> = HashMap::new();
    for (_, answer) in answers {
        if let Ok(status) = answer {
            if status.leader != 0 {
                *votes.entry(status.leader).or_default() += 1;
            }
        }
    }
    let majority = running / 2 + 1;
    let agreed = votes
        .iter()
        .find(|(_, count)| **count >= majority)
        .map(|(leader, _)| *leader);
    if let Some(leader) = agreed {
        // A majority may name a member that is dead or paused: that is no usable leader.
        let leader_node = answers.iter().find_map(|(index, answer)| match answer {
            Ok(status) if status.member_id == leader => Some(*index),
            _ => None,
        });
        if let Some(index) = leader_node {
            return Ok(index);
        }
    }

    let mut observed = format!("{running} running, {majority} must agree; ");
    for (index, answer) in answers {
        let _ = match answer {
            Ok(s) => write!(
                observed,
                "n{index}: member {:x} sees leader {:x}; ",
                s.member_id, s.leader
            ),
            Err(e) => write!(observed, "n{index}: {e}; "),
        };
    }
    Err(observed.trim_end_matches("; ").to_owned())
}

/// `Maintenance.Status` of the node at `endpoint`, within [`STATUS_TIMEOUT`].
async fn status(endpoint: &str) -> Result<Status, String> {
    let ask = async {
        let mut client = client(endpoint).await.map_err(|e| e.to_string())?;
        let response = client.status().await.map_err(|e| e.to_string())?;
        let member_id = response
            .header()
            .map(|header| header.member_id())
            .ok_or_else(|| "status response has no header".to_owned())?;
        Ok(Status {
            member_id,
            leader: response.leader(),
        })
    };
    tokio::time::timeout(STATUS_TIMEOUT, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no status answer within {STATUS_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(member_id: u64, leader: u64) -> Result<Status, String> {
        Ok(Status { member_id, leader })
    }

    #[test]
    fn a_majority_naming_an_answering_member_decides() {
        let answers = [(1, ok(0xa, 0xb)), (2, ok(0xb, 0xb)), (3, Err("refused".into()))];
        assert_eq!(decide_leader(3, &answers), Ok(2));
    }

    #[test]
    fn a_minority_or_no_leader_does_not_decide() {
        let split = [(1, ok(0xa, 0xa)), (2, ok(0xb, 0xb)), (3, ok(0xc, 0))];
        let error = decide_leader(3, &split).unwrap_err();
        assert!(error.contains("n3: member c sees leader 0"), "{error}");
        let none = [(1, ok(0xa, 0)), (2, ok(0xb, 0))];
        assert!(decide_leader(2, &none).is_err());
    }

    #[test]
    fn a_leader_that_did_not_answer_does_not_decide() {
        // n1 was the leader and is partitioned away; n2 and n3 still name it.
        let answers = [(2, ok(0xb, 0xa)), (3, ok(0xc, 0xa)), (1, Err("timeout".into()))];
        assert!(decide_leader(3, &answers).is_err());
        let without_n1 = [(2, ok(0xb, 0xa)), (3, ok(0xc, 0xa))];
        assert!(decide_leader(2, &without_n1).is_err());
    }
}
