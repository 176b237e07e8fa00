//! How a member learns who it is on first start: from `--initial-cluster` (new), from the
//! running cluster by its peer URLs (existing), or by asking to join (`--join`).

use std::time::{Duration, Instant};

use crate::error::{ConsensusError, Result};
use crate::identity::{stable_id, Identity};
use crate::network::PeerChannels;
use crate::node::NodeConfig;
use crate::peer::{call_peer, PeerReply, PeerRequest};
use crate::types::MemberNode;

/// The member id a statically bootstrapped member gets (the same on every member).
pub fn static_member_id(token: &str, name: &str, peer_url: &str) -> u64 {
    stable_id(&[token.as_bytes(), name.as_bytes(), peer_url.as_bytes()])
}

pub(crate) fn static_identity(config: &NodeConfig) -> Result<Identity> {
    let Some((_, url)) = config
        .initial_cluster
        .iter()
        .find(|(name, _)| *name == config.name)
    else {
        return Err(ConsensusError::Config(format!(
            "--initial-cluster does not list this member ({}): add {}={} to it",
            config.name,
            config.name,
            config.peer_urls.first().map_or("<peer URL>", String::as_str)
        )));
    };
    let mut ids: Vec<u64> = config
        .initial_cluster
        .iter()
        .map(|(name, url)| static_member_id(&config.cluster_token, name, url))
        .collect();
    ids.sort_unstable();
    let id_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    Ok(Identity {
        name: config.name.clone(),
        member_id: static_member_id(&config.cluster_token, &config.name, url),
        cluster_id: stable_id(&[config.cluster_token.as_bytes(), &id_bytes]),
        cluster_token: config.cluster_token.clone(),
    })
}

/// Asks the running cluster, through any of `urls`, for this member's identity: with
/// `PeerRequest::Join` (a new member, added as a learner) or `PeerRequest::Identify` (a
/// member already added with MemberAdd, found by its peer URLs). Follows leader hints and
/// retries for up to a minute while the cluster is unreachable.
pub(crate) async fn identity_from_cluster(
    channels: &PeerChannels,
    urls: &[String],
    request: PeerRequest,
    name: &str,
) -> Result<Identity> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut targets: Vec<MemberNode> = urls
        .iter()
        .map(|url| MemberNode {
            name: String::new(),
            peer_urls: vec![url.clone()],
            client_urls: Vec::new(),
        })
        .collect();
    let mut last_error = String::from("no member URL to ask");
    while Instant::now() < deadline {
        for target in targets.clone() {
            match call_peer(channels, &target, request.clone(), Duration::from_secs(10)).await {
                Ok(PeerReply::Joined {
                    member_id,
                    cluster_id,
                    cluster_token,
                }) => {
                    tracing::info!(
                        member_id = format!("{member_id:x}"),
                        "identity received from the cluster"
                    );
                    return Ok(Identity {
                        name: name.to_string(),
                        member_id,
                        cluster_id,
                        cluster_token,
                    });
                }
                Ok(PeerReply::NotLeader(Some((_, leader)))) => {
                    targets.insert(0, leader);
                    break;
                }
                Ok(PeerReply::Failed(why)) => {
                    return Err(ConsensusError::Config(format!(
                        "the cluster refused this member: {why}"
                    )))
                }
                Ok(other) => last_error = format!("{other:?}"),
                Err(status) => last_error = status.message().to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(ConsensusError::Unreachable(format!(
        "could not reach the cluster through {}: {last_error}",
        urls.join(",")
    )))
}
