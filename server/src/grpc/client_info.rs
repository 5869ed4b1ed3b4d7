//! `clientinfo.v1.ClientInfoService`: the agent desktop's panel and session stream.

use std::pin::Pin;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{AppState, convert, panel, unimplemented};
use crate::auth::Caller;
use crate::db::interactions;
use crate::domain::permission::Permission;
use crate::error::{Error, Violations};

/// The service.
#[derive(Debug, Clone)]
pub struct ClientInfoApi {
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

/// Reads a candidate page token (`c<offset>`; empty for the first page).
fn offset_token(v: &mut Violations, token: &str) -> usize {
    if token.is_empty() {
        return 0;
    }
    match token
        .strip_prefix('c')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n > 0 => n,
        _ => {
            v.add(
                "candidate_page_token",
                "is not a token returned by GetClientInfo",
            );
            0
        }
    }
}

/// The session stream type.
pub type SessionStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAgentSessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::client_info_service_server::ClientInfoService for ClientInfoApi {
    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn get_client_info(
        &self,
        request: Request<pb::GetClientInfoRequest>,
    ) -> Result<Response<pb::GetClientInfoResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        let size = convert::page_size(&mut v, "candidate_page_size", req.candidate_page_size);
        let offset = offset_token(&mut v, &req.candidate_page_token);
        v.into_result()?;
        let id = id.unwrap_or_default();
        caller.require(Permission::InteractionsHandle)?;

        let (mut conn, session) = self.state.session(caller).await?;
        // Another agent's interaction is as invisible as another domain's.
        let interaction = interactions::find(&mut conn, session.domain.id, &id, false)
            .await?
            .filter(|i| i.agent == caller.user_id)
            .ok_or_else(|| Error::not_found(format!("interaction {id:?}")))?;
        if offset > 0 && offset >= interaction.identification.candidates.len() {
            return Err(
                Error::invalid("candidate_page_token", "is past the last candidate").into(),
            );
        }
        let size = usize::try_from(size).unwrap_or(20);
        let (panel, next) = panel::build(
            &mut conn,
            &session,
            &self.state.keys,
            &interaction,
            offset,
            size,
        )
        .await?;
        Ok(Response::new(pb::GetClientInfoResponse {
            panel: Some(panel),
            next_candidate_page_token: next.map(|n| format!("c{n}")).unwrap_or_default(),
        }))
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
