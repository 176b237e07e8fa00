//! `etcdserverpb.Watch`: one bidirectional stream carrying many watchers (see
//! [`crate::watch`]).

use conclave_proto::etcdserverpb::watch_server::Watch;
use conclave_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::EtcdApi;
use crate::watch::Session;

#[tonic::async_trait]
impl Watch for EtcdApi {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let settings = self.settings.watch;
        let (out, responses) = mpsc::channel(settings.buffer.max(2));
        tokio::spawn(Session::run(
            self.node.clone(),
            settings,
            request.into_inner(),
            out,
            self.watch_gauges.open_stream(),
        ));
        Ok(Response::new(ReceiverStream::new(responses)))
    }
}
