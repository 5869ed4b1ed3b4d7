//! `clientinfo.v1.ContactBindingService`: create contacts, bind interactions to them, manage
//! their communications, a contact's interaction history, read-only links.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{call, decode, scope};
use crate::app::{self, AppState};
use crate::domain::permission::Permission;
use crate::wire::encode;

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
        let call = call(&request)?;
        let req = request.get_ref();
        let create = match decode::binding::create_contact(req) {
            Ok(create) => create,
            Err(mut v) => {
                // Phones are read in the domain's region: report them with the other faults
                // rather than after those are fixed.
                let phones = decode::phone_fields(&req.communications);
                v.absorb(app::binding::phone_faults(&self.state, &call, phones).await);
                return Err(v.into());
            }
        };
        call.principal.require(create.permission())?;
        let (card, created) = app::binding::create(&self.state, &call, create).await?;
        tracing::info!(contact_id = %card.id, created, "contact created");
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(encode::contact(&card, false)),
            created,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn select_contact(
        &self,
        request: Request<pb::SelectContactRequest>,
    ) -> Result<Response<pb::SelectContactResponse>, Status> {
        let call = call(&request)?;
        let select = decode::binding::select_contact(request.get_ref())?;
        call.principal.require(Permission::InteractionsHandle)?;
        let contact = select.contact;
        let panel = app::binding::select(&self.state, &call, select).await?;
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
        let call = call(&request)?;
        let unbind = decode::binding::unbind_contact(request.get_ref())?;
        call.principal.require(Permission::InteractionsHandle)?;
        let panel = app::binding::unbind(&self.state, &call, unbind).await?;
        Ok(Response::new(pb::UnbindContactResponse {
            panel: Some(panel),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn link_communication(
        &self,
        request: Request<pb::LinkCommunicationRequest>,
    ) -> Result<Response<pb::LinkCommunicationResponse>, Status> {
        let call = call(&request)?;
        let link = decode::binding::link_communication(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        let card = app::contacts::link(&self.state, &call, link).await?;
        Ok(Response::new(pb::LinkCommunicationResponse {
            contact: Some(encode::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn unlink_communication(
        &self,
        request: Request<pb::UnlinkCommunicationRequest>,
    ) -> Result<Response<pb::UnlinkCommunicationResponse>, Status> {
        let call = call(&request)?;
        let unlink = decode::binding::unlink_communication(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        let card = app::contacts::unlink(&self.state, &call, unlink).await?;
        Ok(Response::new(pb::UnlinkCommunicationResponse {
            contact: Some(encode::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn list_contact_interactions(
        &self,
        request: Request<pb::ListContactInteractionsRequest>,
    ) -> Result<Response<pb::ListContactInteractionsResponse>, Status> {
        let call = call(&request)?;
        let history = decode::binding::list_contact_interactions(request.get_ref())?;
        call.principal.require(Permission::ContactsRead)?;
        let page = app::binding::history(&self.state, &call, history).await?;
        let interactions = page
            .rows
            .iter()
            .map(|b| encode::contact_interaction(b, &page.users))
            .collect();
        Ok(Response::new(pb::ListContactInteractionsResponse {
            interactions,
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn create_read_only_link(
        &self,
        request: Request<pb::CreateReadOnlyLinkRequest>,
    ) -> Result<Response<pb::CreateReadOnlyLinkResponse>, Status> {
        let call = call(&request)?;
        let cmd = decode::binding::create_read_only_link(request.get_ref())?;
        let scope = scope(
            &call.principal,
            cmd.interaction.as_deref(),
            "a read-only link needs contacts.read, or interactions.handle with the interaction_id the contact was found for",
        )?;
        let (link, expires_at_unix, link_id) =
            app::binding::read_only_link(&self.state, &call, cmd, scope).await?;
        Ok(Response::new(pb::CreateReadOnlyLinkResponse {
            link,
            expires_at_unix,
            link_id,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_contact_by_link(
        &self,
        request: Request<pb::GetContactByLinkRequest>,
    ) -> Result<Response<pb::GetContactByLinkResponse>, Status> {
        let call = call(&request)?;
        let link = decode::binding::get_contact_by_link(request.get_ref())?;
        // The link itself is the permission.
        let (card, history) = app::binding::card_by_link(&self.state, &call, &link).await?;
        Ok(Response::new(pb::GetContactByLinkResponse {
            contact: Some(encode::contact(&card, true)),
            history: Some(encode::history(&history)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_read_only_links(
        &self,
        request: Request<pb::ListReadOnlyLinksRequest>,
    ) -> Result<Response<pb::ListReadOnlyLinksResponse>, Status> {
        let call = call(&request)?;
        let cmd = decode::binding::list_read_only_links(request.get_ref())?;
        call.principal.require(Permission::ContactsRead)?;
        let page = app::binding::links(&self.state, &call, cmd).await?;
        let links = page
            .links
            .iter()
            .map(|l| encode::read_only_link(l, &page.users))
            .collect();
        Ok(Response::new(pb::ListReadOnlyLinksResponse {
            links,
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_read_only_links(
        &self,
        request: Request<pb::RevokeReadOnlyLinksRequest>,
    ) -> Result<Response<pb::RevokeReadOnlyLinksResponse>, Status> {
        let call = call(&request)?;
        let cmd = decode::binding::revoke_read_only_links(request.get_ref())?;
        let may_revoke_any = call.principal.has(Permission::ContactsWrite);
        if cmd.which == app::binding::Revoke::All {
            call.principal.require(Permission::ContactsWrite)?;
        }
        let revoked = app::binding::revoke_links(&self.state, &call, cmd, may_revoke_any).await?;
        Ok(Response::new(pb::RevokeReadOnlyLinksResponse {
            revoked: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }
}
