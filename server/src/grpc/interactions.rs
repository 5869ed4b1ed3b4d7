//! `clientinfo.v1.InteractionsService`: the routing back-end reports offers, answers and ends.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{call, decode};
use crate::app::{self, AppState};
use crate::domain::permission::Permission;
use crate::wire::encode;

/// The service.
#[derive(Debug, Clone)]
pub struct InteractionsApi {
    state: AppState,
}

impl InteractionsApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::interactions_service_server::InteractionsService for InteractionsApi {
    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn offer_interaction(
        &self,
        request: Request<pb::OfferInteractionRequest>,
    ) -> Result<Response<pb::OfferInteractionResponse>, Status> {
        let call = call(&request)?;
        let offer = decode::interactions::offer_interaction(request.get_ref())?;
        call.principal.require(Permission::InteractionsRoute)?;
        let result = app::interactions::offer(&self.state, &call, offer).await?;
        let i = &result.interaction;
        tracing::info!(
            outcome = i.identification.outcome.as_str(),
            candidates = i.identification.candidates.len(),
            transferred = result.transferred,
            changed = result.changed,
            "interaction offered"
        );
        Ok(Response::new(pb::OfferInteractionResponse {
            state: encode::state(i.state) as i32,
            identification: Some(encode::identification(&i.identification)),
            bound_contact_id: i.bound_contact.map_or(0, |c| c.0),
            transferred: result.transferred,
            changed: result.changed,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn accept_interaction(
        &self,
        request: Request<pb::AcceptInteractionRequest>,
    ) -> Result<Response<pb::AcceptInteractionResponse>, Status> {
        let call = call(&request)?;
        let accept = decode::interactions::accept_interaction(request.get_ref())?;
        call.principal.require(Permission::InteractionsRoute)?;
        let i = app::interactions::accept(&self.state, &call, accept).await?;
        Ok(Response::new(pb::AcceptInteractionResponse {
            state: encode::state(i.state) as i32,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn close_interaction(
        &self,
        request: Request<pb::CloseInteractionRequest>,
    ) -> Result<Response<pb::CloseInteractionResponse>, Status> {
        let call = call(&request)?;
        let close = decode::interactions::close_interaction(request.get_ref())?;
        call.principal.require(Permission::InteractionsRoute)?;
        let i = app::interactions::close(&self.state, &call, close).await?;
        Ok(Response::new(pb::CloseInteractionResponse {
            state: encode::state(i.state) as i32,
        }))
    }
}
