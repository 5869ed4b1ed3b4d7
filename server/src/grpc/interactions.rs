//! `clientinfo.v1.InteractionsService`: the routing back-end reports offers, answers and ends.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use diesel_async::AsyncConnection as _;
use pb::agent_event::Event;

use super::{AppState, convert, events};
use crate::auth::Caller;
use crate::db::{contacts, interactions, users};
use crate::domain::ids::UserId;
use crate::domain::permission::Permission;
use crate::error::{Error, Violations};

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
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let offer = convert::offer(&req, &mut v);
        v.into_result()?;
        let offer = offer.ok_or_else(|| Error::Internal("validated offer missing".into()))?;
        caller.require(Permission::InteractionsRoute)?;

        let (mut conn, session) = self.state.session(caller).await?;
        if !users::exists(&mut conn, session.domain.id, offer.agent).await? {
            return Err(Error::invalid(
                "agent_user_id",
                format!("no user {} in this domain", offer.agent),
            )
            .into());
        }
        let keys = &self.state.keys;
        let result = conn
            .transaction(async |conn| {
                let r = interactions::offer(conn, &session, &offer).await?;
                if r.changed {
                    let i = &r.interaction;
                    let mut out = Vec::new();
                    if let Some(previous) = r.previous_agent {
                        out.push(events::out(
                            vec![previous],
                            Event::InteractionTransferredAway(pb::InteractionTransferredAway {
                                interaction_id: i.external_id.clone(),
                                to_agent: Some(pb::UserRef {
                                    id: i.agent.0,
                                    name: String::new(),
                                }),
                            }),
                        ));
                    }
                    out.extend(events::offered(conn, &session, keys, i).await?);
                    if let (true, Some(contact)) = (r.created, i.bound_contact) {
                        let card = contacts::load_card(conn, session.domain.id, contact).await?;
                        out.push(events::bound(&session, keys, i, &card, None)?);
                    }
                    events::publish(conn, &session, &out).await?;
                }
                Ok::<_, Error>(r)
            })
            .await?;
        let i = &result.interaction;
        tracing::info!(
            outcome = i.identification.outcome.as_str(),
            candidates = i.identification.candidates.len(),
            transferred = result.transferred,
            changed = result.changed,
            "interaction offered"
        );
        Ok(Response::new(pb::OfferInteractionResponse {
            state: convert::state(i.state) as i32,
            identification: Some(convert::identification(&i.identification)),
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
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        let agent = convert::positive_id(&mut v, "agent_user_id", req.agent_user_id);
        v.into_result()?;
        let (Some(id), Some(agent)) = (id, agent) else {
            return Err(Error::Internal("validated accept incomplete".into()).into());
        };
        caller.require(Permission::InteractionsRoute)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let i = conn
            .transaction(async |conn| {
                let i = interactions::accept(conn, &session, &id, UserId(agent)).await?;
                let out = [events::out(
                    vec![i.agent],
                    Event::InteractionAccepted(pb::InteractionAccepted {
                        interaction_id: i.external_id.clone(),
                    }),
                )];
                events::publish(conn, &session, &out).await?;
                Ok::<_, Error>(i)
            })
            .await?;
        Ok(Response::new(pb::AcceptInteractionResponse {
            state: convert::state(i.state) as i32,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn close_interaction(
        &self,
        request: Request<pb::CloseInteractionRequest>,
    ) -> Result<Response<pb::CloseInteractionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        v.into_result()?;
        let id = id.unwrap_or_default();
        caller.require(Permission::InteractionsRoute)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let i = conn
            .transaction(async |conn| {
                let i = interactions::close(conn, &session, &id).await?;
                let out = [events::out(
                    vec![i.agent],
                    Event::InteractionClosed(pb::InteractionClosed {
                        interaction_id: i.external_id.clone(),
                    }),
                )];
                events::publish(conn, &session, &out).await?;
                Ok::<_, Error>(i)
            })
            .await?;
        Ok(Response::new(pb::CloseInteractionResponse {
            state: convert::state(i.state) as i32,
        }))
    }
}
