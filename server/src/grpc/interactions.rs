//! `clientinfo.v1.InteractionsService`: the routing back-end reports offers, answers and ends.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{AppState, unimplemented};
use crate::auth::Caller;
use crate::domain::permission::Permission;

/// The service.
#[derive(Debug, Clone)]
pub struct InteractionsApi {
    #[expect(dead_code, reason = "used once the Live interactions issue lands")]
    state: AppState,
}

impl InteractionsApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn authorize<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = Caller::of(request)?;
    caller.require(Permission::InteractionsRoute)?;
    Ok(caller)
}

#[tonic::async_trait]
impl pb::interactions_service_server::InteractionsService for InteractionsApi {
    async fn offer_interaction(
        &self,
        request: Request<pb::OfferInteractionRequest>,
    ) -> Result<Response<pb::OfferInteractionResponse>, Status> {
        authorize(&request)?;
        Err(unimplemented("OfferInteraction"))
    }

    async fn accept_interaction(
        &self,
        request: Request<pb::AcceptInteractionRequest>,
    ) -> Result<Response<pb::AcceptInteractionResponse>, Status> {
        authorize(&request)?;
        Err(unimplemented("AcceptInteraction"))
    }

    async fn close_interaction(
        &self,
        request: Request<pb::CloseInteractionRequest>,
    ) -> Result<Response<pb::CloseInteractionResponse>, Status> {
        authorize(&request)?;
        Err(unimplemented("CloseInteraction"))
    }
}
