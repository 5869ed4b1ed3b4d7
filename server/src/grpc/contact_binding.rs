//! `clientinfo.v1.ContactBindingService`: create contacts, bind interactions to them, manage
//! their communications.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{AppState, convert, decode};
use crate::app;
use crate::auth::{Caller, CardLinkError, READ_ONLY_LINK_TTL};
use crate::db::{contacts, interactions, users};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::permission::Permission;
use crate::error::{Error, Fault, Reason, Violations};

/// The service.
#[derive(Debug, Clone)]
pub struct ContactBindingApi {
    state: AppState,
}

impl ContactBindingApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::contact_binding_service_server::ContactBindingService for ContactBindingApi {
    #[tracing::instrument(skip_all)]
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.get_ref();
        let create = match decode::create_contact(req) {
            Ok(create) => create,
            Err(mut v) => {
                // Phones are read in the domain's region: report them with the other faults
                // rather than after those are fixed.
                if decode::has_phones(&req.communications)
                    && let Ok((_, session)) = self.state.session(caller).await
                {
                    v.absorb(decode::phone_violations(
                        &req.communications,
                        session.domain.default_region,
                    ));
                }
                return Err(v.into());
            }
        };
        caller.require(create.permission())?;
        let (card, created) = app::binding::create_contact(&self.state, caller, create).await?;
        tracing::info!(contact_id = %card.id, created, "contact created");
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(convert::contact(&card, false)),
            created,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn select_contact(
        &self,
        request: Request<pb::SelectContactRequest>,
    ) -> Result<Response<pb::SelectContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let select = decode::select(request.get_ref())?;
        caller.require(Permission::InteractionsHandle)?;
        let contact = select.contact;
        let panel = app::binding::select(&self.state, caller, select).await?;
        tracing::info!(contact_id = %contact, "interaction bound");
        Ok(Response::new(pb::SelectContactResponse {
            panel: Some(panel),
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn unbind_contact(
        &self,
        request: Request<pb::UnbindContactRequest>,
    ) -> Result<Response<pb::UnbindContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let unbind = decode::unbind(request.get_ref())?;
        caller.require(Permission::InteractionsHandle)?;
        let panel = app::binding::unbind(&self.state, caller, unbind).await?;
        Ok(Response::new(pb::UnbindContactResponse {
            panel: Some(panel),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn link_communication(
        &self,
        request: Request<pb::LinkCommunicationRequest>,
    ) -> Result<Response<pb::LinkCommunicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let link = decode::link(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        let card = app::contacts::link(&self.state, caller, link).await?;
        Ok(Response::new(pb::LinkCommunicationResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn unlink_communication(
        &self,
        request: Request<pb::UnlinkCommunicationRequest>,
    ) -> Result<Response<pb::UnlinkCommunicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let unlink = decode::unlink(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        let card = app::contacts::unlink(&self.state, caller, unlink).await?;
        Ok(Response::new(pb::UnlinkCommunicationResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn list_contact_interactions(
        &self,
        request: Request<pb::ListContactInteractionsRequest>,
    ) -> Result<Response<pb::ListContactInteractionsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let limit = convert::page_size(&mut v, "page_size", req.page_size);
        let before = convert::id_page_token(&mut v, &req.page_token);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsRead)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        contacts::ensure_exists(&mut conn, domain, id).await?;
        let mut rows = interactions::history(&mut conn, domain, id, before, limit + 1).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let mut user_ids: Vec<i64> = rows
            .iter()
            .flat_map(|b| [Some(b.interaction.agent), b.bound_by, b.unbound_by])
            .flatten()
            .map(|u| u.0)
            .collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let names = users::refs(&mut conn, domain, &user_ids).await?;
        let user = |u: Option<UserId>| {
            u.map(|u| {
                names
                    .get(&u.0)
                    .map(convert::user_ref)
                    .unwrap_or(pb::UserRef {
                        id: u.0,
                        name: String::new(),
                    })
            })
        };
        let next_page_token = match rows.last() {
            Some(last) if has_more => last.id.to_string(),
            _ => String::new(),
        };
        let interactions = rows
            .iter()
            .map(|b| {
                let i = &b.interaction;
                pb::ContactInteraction {
                    interaction_id: i.external_id.clone(),
                    kind: convert::kind(i.kind()) as i32,
                    direction: convert::direction(i.direction) as i32,
                    state: convert::state(i.state) as i32,
                    queue: i.queue.as_ref().map(|q| pb::Queue {
                        id: q.id.clone(),
                        name: q.name.clone(),
                    }),
                    agent: user(Some(i.agent)),
                    offered_at: Some(convert::timestamp(i.offered_at)),
                    closed_at: i.closed_at.map(convert::timestamp),
                    bound_by: user(b.bound_by),
                    bound_at: Some(convert::timestamp(b.bound_at)),
                    unbound_at: b.unbound_at.map(convert::timestamp),
                    unbound_by: user(b.unbound_by),
                }
            })
            .collect();
        Ok(Response::new(pb::ListContactInteractionsResponse {
            interactions,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn create_read_only_link(
        &self,
        request: Request<pb::CreateReadOnlyLinkRequest>,
    ) -> Result<Response<pb::CreateReadOnlyLinkResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let interaction = (!req.interaction_id.is_empty())
            .then(|| convert::client_id(&mut v, "interaction_id", &req.interaction_id))
            .flatten();
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        let full = caller.has(Permission::ContactsRead);
        if !full {
            caller.require(Permission::InteractionsHandle)?;
            if interaction.is_none() {
                return Err(Error::PermissionDenied(
                    Fault::new(
                        Reason::PermissionMissing,
                        "a read-only link needs contacts.read, or interactions.handle with the interaction_id the contact was found for",
                    )
                    .with("permission", "contacts.read"),
                )
                .into());
            }
        }

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        contacts::ensure_exists(&mut conn, domain, id).await?;
        if !full {
            let iid = interaction.as_deref().unwrap_or_default();
            let i = interactions::find(&conn, domain, iid, false)
                .await?
                .filter(|i| i.agent == caller.user_id)
                .ok_or_else(|| Error::interaction_not_found(iid))?;
            let related = i.bound_contact == Some(id)
                || i.identification
                    .candidates
                    .iter()
                    .any(|c| c.contact_id == id.0);
            if !related {
                return Err(Error::PermissionDenied(
                    Fault::new(
                        Reason::ContactNotInInteraction,
                        format!(
                            "contact {id} is neither bound to nor found for interaction {iid:?}"
                        ),
                    )
                    .about(format!("contact/{id}")),
                )
                .into());
            }
        }
        let (link, expires_at_unix) =
            self.state
                .keys
                .sign_card_link(domain, id.0, READ_ONLY_LINK_TTL)?;
        Ok(Response::new(pb::CreateReadOnlyLinkResponse {
            link,
            expires_at_unix,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_contact_by_link(
        &self,
        request: Request<pb::GetContactByLinkRequest>,
    ) -> Result<Response<pb::GetContactByLinkResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let link = convert::text(
            &mut v,
            "link",
            &req.link,
            crate::domain::text::TextRule::line(4096).required(),
        );
        v.into_result()?;
        let (domain, contact) = self
            .state
            .keys
            .verify_card_link(&link.unwrap_or_default())
            .map_err(|e: CardLinkError| {
                let reason = match e {
                    CardLinkError::Expired => Reason::LinkExpired,
                    CardLinkError::Invalid => Reason::LinkInvalid,
                };
                Error::PermissionDenied(Fault::new(reason, e.to_string()))
            })?;

        let (mut conn, session) = self.state.session(caller).await?;
        // A link of another domain opens nothing here.
        if domain != session.domain.id {
            return Err(Error::contact_not_found(contact).into());
        }
        let card = contacts::load_card(&mut conn, domain, ContactId(contact)).await?;
        Ok(Response::new(pb::GetContactByLinkResponse {
            contact: Some(convert::contact(&card, true)),
        }))
    }
}
