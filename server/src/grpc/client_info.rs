//! `clientinfo.v1.ClientInfoService`: the agent desktop's panel and session stream.

use std::pin::Pin;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{AppState, unimplemented};
use crate::auth::Caller;
use crate::domain::permission::Permission;

/// The service.
#[derive(Debug, Clone)]
pub struct ClientInfoApi {
    #[expect(dead_code, reason = "used once the Live interactions issue lands")]
    state: AppState,
}

impl ClientInfoApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn authorize<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = Caller::of(request)?;
    caller.require(Permission::InteractionsHandle)?;
    Ok(caller)
}

/// The session stream type.
pub type SessionStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAgentSessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::client_info_service_server::ClientInfoService for ClientInfoApi {
    async fn get_client_info(
        &self,
        request: Request<pb::GetClientInfoRequest>,
    ) -> Result<Response<pb::GetClientInfoResponse>, Status> {
        authorize(&request)?;
        Err(unimplemented("GetClientInfo"))
    }

    type WatchAgentSessionStream = SessionStream;

    async fn watch_agent_session(
        &self,
        request: Request<pb::WatchAgentSessionRequest>,
    ) -> Result<Response<Self::WatchAgentSessionStream>, Status> {
        authorize(&request)?;
        Err(unimplemented("WatchAgentSession"))
    }
}
