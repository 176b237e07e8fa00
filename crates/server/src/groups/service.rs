//! `conclave.partition.v1.Groups` on the client port.

use std::pin::Pin;

use crate::auth::{Access, Credentials};
use conclave_consensus::Node;
use conclave_controller::{partition_for, MemberId};
use conclave_mvcc::TxnRequest;
use conclave_proto::partitionpb as pb;
use conclave_proto::partitionpb::groups_server::Groups;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::convert::{group_to_pb, map_to_pb, member_to_pb, merge, new_config, partition_to_pb};
use super::error::GroupError;
use super::records::GroupConfig;
use super::state::{self, created_at, delete_prefix, mod_is, put, GroupView};
use super::{members, watch};
use crate::errors::group_status;
use conclave_contract::groups::{check_group_name, GroupKeys};

/// Map events buffered for a slow watcher.
const WATCH_BUFFER: usize = 64;

/// The Groups service of one member.
#[derive(Clone)]
pub struct GroupsApi {
    node: Node,
    auth: crate::auth::Auth,
    max_request_bytes: usize,
}

impl GroupsApi {
    /// The service of `node`; requests above `max_request_bytes` are refused as etcd
    /// refuses them.
    pub fn new(node: Node, auth: crate::auth::Auth, max_request_bytes: usize) -> GroupsApi {
        GroupsApi {
            node,
            auth,
            max_request_bytes,
        }
    }

    fn header(&self, revision: i64) -> Option<pb::Header> {
        Some(pb::Header {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.member_id(),
            revision,
            raft_term: self.node.term(),
        })
    }

    fn check_size(&self, request: &impl prost::Message) -> Result<(), Status> {
        if request.encoded_len() > self.max_request_bytes {
            return Err(Status::invalid_argument(
                conclave_contract::errors::REQUEST_TOO_LARGE,
            ));
        }
        Ok(())
    }

    /// Refuses a caller without `access` to every key of group `name`
    /// (`/_conclave/groups/{name}/…`): grant a role that prefix to let it use the group.
    async fn check_access(
        &self,
        credentials: &Credentials,
        name: &str,
        access: Access,
    ) -> Result<(), Status> {
        let prefix = GroupKeys::new(name).prefix();
        let end = conclave_contract::keys::prefix_end(&prefix);
        self.auth
            .authorize_fresh(credentials, |caller| caller.check(access, &prefix, &end))
            .await
            .map(|_| ())
    }

    async fn group(&self, name: &str, linearizable: bool) -> Result<GroupView, GroupError> {
        check_group_name(name).map_err(GroupError::Invalid)?;
        if linearizable {
            state::read_linearizable(&self.node, name).await
        } else {
            state::read_local(&self.node, name).await
        }
    }
}

fn status(e: GroupError) -> Status {
    group_status(&e)
}

#[tonic::async_trait]
impl Groups for GroupsApi {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.name, Access::Write)
            .await?;
        self.check_size(&request)?;
        check_group_name(&request.name).map_err(|e| status(GroupError::Invalid(e)))?;
        let config = new_config(request.settings.as_ref()).map_err(status)?;
        let keys = GroupKeys::new(&request.name);
        let txn = TxnRequest {
            compare: vec![created_at(keys.config(), 0)],
            success: vec![put(keys.config(), config.encode(), 0)],
            failure: Vec::new(),
        };
        let (response, revision) = state::write(&self.node, txn).await.map_err(status)?;
        if !response.succeeded {
            return Err(status(GroupError::GroupExists(request.name)));
        }
        tracing::info!(group = %request.name, partitions = config.partitions, replicas = config.replicas, "group created");
        Ok(Response::new(pb::GroupResponse {
            header: self.header(revision),
            group: Some(group_to_pb(&request.name, &config, revision)),
        }))
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.name, Access::Write)
            .await?;
        self.check_size(&request)?;
        let view = self.group(&request.name, true).await.map_err(status)?;
        if let Some(p) = request.settings.as_ref().and_then(|s| s.partitions) {
            if p != view.config.partitions {
                return Err(status(GroupError::Precondition(format!(
                    "the partition count of {:?} is {} for its whole life (the routing hash depends on it); create a new group for {p}",
                    request.name, view.config.partitions
                ))));
            }
        }
        let config: GroupConfig = merge(view.config.clone(), request.settings.as_ref()).map_err(status)?;
        let live = view.members.len() as u32;
        if config.replicas > view.config.replicas && config.replicas > live {
            return Err(status(GroupError::Precondition(format!(
                "replicas {} is more than the {live} members registered in {:?}: add members first",
                config.replicas, request.name
            ))));
        }
        let keys = GroupKeys::new(&request.name);
        let txn = TxnRequest {
            compare: vec![mod_is(keys.config(), view.config_revision)],
            success: vec![put(keys.config(), config.encode(), 0)],
            failure: Vec::new(),
        };
        let (response, revision) = state::write(&self.node, txn).await.map_err(status)?;
        if !response.succeeded {
            return Err(status(GroupError::Precondition(format!(
                "the settings of {:?} changed meanwhile; read them and try again",
                request.name
            ))));
        }
        Ok(Response::new(pb::GroupResponse {
            header: self.header(revision),
            group: Some(group_to_pb(&request.name, &config, view.config_create_revision)),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.name, Access::Write)
            .await?;
        self.check_size(&request)?;
        let view = self.group(&request.name, true).await.map_err(status)?;
        let txn = TxnRequest {
            compare: vec![created_at(view.keys.config(), view.config_create_revision)],
            success: vec![delete_prefix(view.keys.prefix())],
            failure: Vec::new(),
        };
        let (response, revision) = state::write(&self.node, txn).await.map_err(status)?;
        tracing::info!(group = %request.name, deleted = response.succeeded, "group deleted");
        Ok(Response::new(pb::DeleteGroupResponse {
            header: self.header(revision),
            deleted: response.succeeded,
        }))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.name, Access::Read)
            .await?;
        let view = self.group(&request.name, true).await.map_err(status)?;
        Ok(Response::new(pb::GroupResponse {
            header: self.header(view.revision),
            group: Some(group_to_pb(&view.name, &view.config, view.config_create_revision)),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        self.node
            .linearizable_barrier()
            .await
            .map_err(|e| status(GroupError::from(e)))?;
        // Only the groups the caller may read are listed.
        let caller = self.auth.caller(&Credentials::of(&request)).await?;
        let store = self.node.store().clone();
        let (groups, revision) = tokio::task::spawn_blocking(move || -> Result<_, GroupError> {
            let revision = store.current_revision();
            let mut groups = Vec::new();
            for name in state::group_names(&store)? {
                let prefix = GroupKeys::new(&name).prefix();
                let end = conclave_contract::keys::prefix_end(&prefix);
                if caller.check(Access::Read, &prefix, &end).is_err() {
                    continue;
                }
                if let Some(view) = GroupView::read(&store, &name)? {
                    groups.push(group_to_pb(&name, &view.config, view.config_create_revision));
                }
            }
            Ok((groups, revision))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        Ok(Response::new(pb::ListGroupsResponse {
            header: self.header(revision),
            groups,
        }))
    }

    async fn join(&self, request: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Write)
            .await?;
        self.check_size(&request)?;
        let (member, view) = members::join(&self.node, &request).await.map_err(status)?;
        tracing::info!(group = %request.group, member = %request.member_id, lease = format!("{:x}", request.lease), "member joined");
        Ok(Response::new(pb::JoinResponse {
            header: self.header(view.revision),
            member: Some(member_to_pb(&member)),
            group: Some(group_to_pb(&view.name, &view.config, view.config_create_revision)),
        }))
    }

    async fn leave(&self, request: Request<pb::LeaveRequest>) -> Result<Response<pb::LeaveResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Write)
            .await?;
        self.check_size(&request)?;
        let revision = members::leave(&self.node, &request).await.map_err(status)?;
        tracing::info!(group = %request.group, member = %request.member_id, "member left");
        Ok(Response::new(pb::LeaveResponse {
            header: self.header(revision),
        }))
    }

    async fn drain(&self, request: Request<pb::DrainRequest>) -> Result<Response<pb::DrainResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Write)
            .await?;
        self.check_size(&request)?;
        let (replicas, leaderships, revision) = members::drain(&self.node, &request).await.map_err(status)?;
        Ok(Response::new(pb::DrainResponse {
            header: self.header(revision),
            replicas,
            leaderships,
        }))
    }

    async fn get_map(
        &self,
        request: Request<pb::GetMapRequest>,
    ) -> Result<Response<pb::MapResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Read)
            .await?;
        let view = self
            .group(&request.group, !request.serializable)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::MapResponse {
            header: self.header(view.revision),
            map: Some(map_to_pb(&view)),
        }))
    }

    type WatchMapStream = Pin<Box<dyn Stream<Item = Result<pb::MapEvent, Status>> + Send>>;

    async fn watch_map(
        &self,
        request: Request<pb::WatchMapRequest>,
    ) -> Result<Response<Self::WatchMapStream>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Read)
            .await?;
        check_group_name(&request.group).map_err(|e| status(GroupError::Invalid(e)))?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(watch::stream(
            self.node.clone(),
            request.group,
            request.after_generation,
            tx,
        ));
        let api = self.clone();
        let events = ReceiverStream::new(rx).map(move |sent| match sent {
            Ok((event, revision)) => Ok(pb::MapEvent {
                header: api.header(revision),
                event: Some(event),
            }),
            Err(error) => Err(status(error)),
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Read)
            .await?;
        let view = self.group(&request.group, true).await.map_err(status)?;
        let limit = if request.limit == 0 { 20 } else { request.limit };
        let store = self.node.store().clone();
        let keys = view.keys.clone();
        let entries = tokio::task::spawn_blocking(move || watch::history(&store, &keys, limit))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)?;
        Ok(Response::new(pb::HistoryResponse {
            header: self.header(view.revision),
            entries,
        }))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Write)
            .await?;
        self.check_size(&request)?;
        let revision = members::report(&self.node, &request).await.map_err(status)?;
        Ok(Response::new(pb::ReportResponse {
            header: self.header(revision),
        }))
    }

    async fn route(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RouteResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_access(&credentials, &request.group, Access::Read)
            .await?;
        self.check_size(&request)?;
        let view = self.group(&request.group, true).await.map_err(status)?;
        let id = partition_for(&request.key, view.config.partitions);
        let partition = view
            .partition(id)
            .map(|p| p.partition.clone())
            .unwrap_or_default();
        let wire = partition_to_pb(id, &partition);
        let leader_member = partition
            .leader
            .as_ref()
            .and_then(|leader: &MemberId| view.member(leader))
            .map(member_to_pb);
        Ok(Response::new(pb::RouteResponse {
            header: self.header(view.revision),
            partition: id.0,
            leader: wire.leader,
            epoch: wire.epoch,
            replicas: wire.replicas.into_iter().map(|r| r.member).collect(),
            leader_member,
            generation: view.generation.0,
        }))
    }
}
