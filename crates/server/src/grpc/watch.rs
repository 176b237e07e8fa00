//! `etcdserverpb.Watch`: one bidirectional stream carrying many watchers (see
//! [`crate::watch`]).

use conclave_proto::etcdserverpb::watch_server::Watch;
use conclave_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{asks_for_leader, EtcdApi};
use crate::auth::Credentials;
use crate::watch::Session;

#[tonic::async_trait]
impl Watch for EtcdApi {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        // A bad token is refused when the stream opens; each watcher's range is checked
        // when it is created.
        let credentials = Credentials::of(&request);
        self.auth.caller(&credentials).await?;
        let wants_leader = asks_for_leader(request.metadata());
        let settings = self.settings.watch;
        let (out, responses) = mpsc::channel(settings.buffer.max(2));
        if wants_leader {
            tokio::spawn(end_when_leaderless(self.node.clone(), out.clone()));
        }
        tokio::spawn(Session::run(
            self.node.clone(),
            (self.auth.clone(), credentials),
            settings,
            request.into_inner(),
            out,
            self.watch_gauges.open_stream(),
        ));
        Ok(Response::new(ReceiverStream::new(responses)))
    }
}

/// How many election timeouts in a row a member may be without a leader before it ends
/// the watch streams that asked for one (etcd's `maxNoLeaderCnt`).
const NO_LEADER_TIMEOUTS: u32 = 3;

/// Ends a `hasleader` watch stream with etcd's "no leader" error once this member has been
/// without a live leader (no heartbeat accepted) for a few election timeouts, as etcd does: a member cut off from the
/// quorum sees no new events, so the client must move to another member instead of
/// waiting on a stream that stays silent.
async fn end_when_leaderless(
    node: conclave_consensus::Node,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
) {
    let period = node.election_timeout();
    let mut leaderless = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = out.closed() => return,
        }
        if node.has_live_leader(period) {
            leaderless = 0;
            continue;
        }
        leaderless += 1;
        if leaderless >= NO_LEADER_TIMEOUTS {
            tracing::info!("ending a watch stream: no leader for {NO_LEADER_TIMEOUTS} election timeouts");
            let _ = out
                .send(Err(Status::unavailable(conclave_contract::errors::NO_LEADER)))
                .await;
            return;
        }
    }
}
