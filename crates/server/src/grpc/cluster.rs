//! `etcdserverpb.Cluster`: MemberList, MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote, mapped onto Raft membership changes made by the leader.

use conclave_consensus::{Member, MembershipChange};
use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use super::EtcdApi;
use crate::errors::consensus_status;

/// etcd's message for malformed peer URLs.
use conclave_contract::errors::INVALID_PEER_URLS as INVALID_URLS;

fn member_to_pb(member: &Member) -> pb::Member {
    pb::Member {
        id: member.id,
        name: member.node.name.clone(),
        peer_ur_ls: member.node.peer_urls.clone(),
        client_ur_ls: member.node.client_urls.clone(),
        is_learner: member.is_learner,
    }
}

/// Peer URLs must be non-empty `http://host:port` URLs (etcd: "given member URLs are invalid").
fn check_peer_urls(urls: &[String]) -> Result<(), Status> {
    let valid = |url: &String| {
        url.strip_prefix("http://")
            .and_then(|rest| rest.trim_end_matches('/').rsplit_once(':'))
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(Status::invalid_argument(INVALID_URLS));
    }
    Ok(())
}

impl EtcdApi {
    fn member_list(&self) -> Vec<pb::Member> {
        let mut members: Vec<pb::Member> = self.node.members().iter().map(member_to_pb).collect();
        members.sort_by_key(|m| m.id);
        members
    }

    /// etcd answers membership calls with a header carrying no revision.
    fn membership_header(&self) -> Option<pb::ResponseHeader> {
        self.header(0)
    }

    async fn change(&self, change: MembershipChange) -> Result<u64, Status> {
        self.node
            .change_membership(change)
            .await
            .map_err(|e| consensus_status(&e))
    }
}

#[tonic::async_trait]
impl Cluster for EtcdApi {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        self.check_admin_call(&request).await?;
        let request = request.into_inner();
        check_peer_urls(&request.peer_ur_ls)?;
        let change = MembershipChange::Add {
            peer_urls: request.peer_ur_ls.clone(),
            is_learner: request.is_learner,
        };
        let id = self.change(change).await?;
        let member = pb::Member {
            id,
            name: String::new(),
            peer_ur_ls: request.peer_ur_ls,
            client_ur_ls: Vec::new(),
            is_learner: request.is_learner,
        };
        Ok(Response::new(pb::MemberAddResponse {
            header: self.membership_header(),
            member: Some(member),
            members: self.member_list(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.check_admin_call(&request).await?;
        self.change(MembershipChange::Remove(request.into_inner().id))
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.membership_header(),
            members: self.member_list(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        self.check_admin_call(&request).await?;
        let request = request.into_inner();
        check_peer_urls(&request.peer_ur_ls)?;
        self.change(MembershipChange::Update {
            id: request.id,
            peer_urls: request.peer_ur_ls,
        })
        .await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.membership_header(),
            members: self.member_list(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.node
                .linearizable_barrier()
                .await
                .map_err(|e| consensus_status(&e))?;
        }
        Ok(Response::new(pb::MemberListResponse {
            header: self.membership_header(),
            members: self.member_list(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.check_admin_call(&request).await?;
        self.change(MembershipChange::Promote(request.into_inner().id))
            .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.membership_header(),
            members: self.member_list(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_must_be_http_host_port() {
        assert!(check_peer_urls(&["http://10.0.0.1:2380".into()]).is_ok());
        assert!(check_peer_urls(&["http://node-4:2380/".into(), "http://[::1]:2380".into()]).is_ok());
        for bad in [
            vec![],
            vec!["10.0.0.1:2380".to_string()],
            vec!["http://:2380".into()],
            vec!["http://a:port".into()],
        ] {
            let status = check_peer_urls(&bad).unwrap_err();
            assert_eq!(status.message(), INVALID_URLS);
        }
    }
}
