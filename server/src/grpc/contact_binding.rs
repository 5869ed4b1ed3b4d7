//! `clientinfo.v1.ContactBindingService`: create contacts, bind interactions to them, manage
//! their communications.

use std::fmt::Write as _;

use client_info_proto::pb;
use prost::Message as _;
use tonic::{Request, Response, Status};

use super::{AppState, convert, unimplemented};
use crate::auth::Caller;
use crate::db::contacts::{self, CreateRequestKey};
use crate::domain::ids::ContactId;
use crate::domain::permission::Permission;
use crate::error::{Error, Violations};

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

/// The request body without its request id, hex-encoded: equal bodies give equal strings
/// (prost encodes fields in order).
fn fingerprint(req: &pb::CreateContactRequest) -> String {
    let mut body = req.clone();
    body.request_id.clear();
    body.encode_to_vec().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[tonic::async_trait]
impl pb::contact_binding_service_server::ContactBindingService for ContactBindingApi {
    #[tracing::instrument(skip_all)]
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let request_id = (!req.request_id.is_empty())
            .then(|| convert::client_id(&mut v, "request_id", &req.request_id));
        let (new, drafts) = convert::new_contact(
            &mut v,
            &convert::ContactFields {
                display_name: &req.display_name,
                description: &req.description,
                time_zone: &req.time_zone,
                owner_id: req.owner_id,
                labels: &req.labels,
                attributes: &req.attributes,
                communications: &req.communications,
            },
        );
        v.into_result()?;
        let new = new.ok_or_else(|| Error::Internal("validated contact missing".into()))?;
        if !req.interaction_id.is_empty() || req.link_caller_number {
            return Err(unimplemented("CreateContact from an interaction"));
        }
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let draft = convert::draft(new, drafts, caller.user_id, session.domain.default_region)?;
        let fingerprint = fingerprint(&req);
        let key = request_id.flatten();
        let key = key.as_deref().map(|request_id| CreateRequestKey {
            request_id,
            fingerprint: &fingerprint,
        });
        let (card, created) = contacts::create(&mut conn, &session, &draft, key, None).await?;
        tracing::info!(contact_id = %card.id, created, "contact created");
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(convert::contact(&card, false)),
            created,
        }))
    }

    async fn select_contact(
        &self,
        request: Request<pb::SelectContactRequest>,
    ) -> Result<Response<pb::SelectContactResponse>, Status> {
        Caller::of(&request)?.require(Permission::InteractionsHandle)?;
        Err(unimplemented("SelectContact"))
    }

    async fn unbind_contact(
        &self,
        request: Request<pb::UnbindContactRequest>,
    ) -> Result<Response<pb::UnbindContactResponse>, Status> {
        Caller::of(&request)?.require(Permission::InteractionsHandle)?;
        Err(unimplemented("UnbindContact"))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn link_communication(
        &self,
        request: Request<pb::LinkCommunicationRequest>,
    ) -> Result<Response<pb::LinkCommunicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let expected = convert::optional_version(&mut v, "expected_version", req.expected_version);
        let draft = convert::communication(&mut v, "communication", req.communication.as_ref());
        v.into_result()?;
        let (Some(id), Some(draft)) = (id, draft) else {
            return Err(Error::Internal("validated link request incomplete".into()).into());
        };
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let communication = convert::resolve_communications(
            vec![("communication".to_owned(), draft)],
            session.domain.default_region,
        )?
        .pop()
        .ok_or_else(|| Error::Internal("resolved communication missing".into()))?;
        let card = contacts::link_communication(
            &mut conn,
            &session,
            ContactId(id),
            expected,
            &communication,
            req.relink,
        )
        .await?;
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
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let expected = convert::optional_version(&mut v, "expected_version", req.expected_version);
        let link = convert::link_ref(&mut v, req.communication.as_ref());
        v.into_result()?;
        let (Some(id), Some(link)) = (id, link) else {
            return Err(Error::Internal("validated unlink request incomplete".into()).into());
        };
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let card =
            contacts::unlink_communication(&mut conn, &session, ContactId(id), expected, link)
                .await?;
        Ok(Response::new(pb::UnlinkCommunicationResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    async fn list_contact_interactions(
        &self,
        request: Request<pb::ListContactInteractionsRequest>,
    ) -> Result<Response<pb::ListContactInteractionsResponse>, Status> {
        Caller::of(&request)?.require(Permission::ContactsRead)?;
        Err(unimplemented("ListContactInteractions"))
    }

    async fn create_read_only_link(
        &self,
        request: Request<pb::CreateReadOnlyLinkRequest>,
    ) -> Result<Response<pb::CreateReadOnlyLinkResponse>, Status> {
        Caller::of(&request)?;
        Err(unimplemented("CreateReadOnlyLink"))
    }

    async fn get_contact_by_link(
        &self,
        request: Request<pb::GetContactByLinkRequest>,
    ) -> Result<Response<pb::GetContactByLinkResponse>, Status> {
        Caller::of(&request)?;
        Err(unimplemented("GetContactByLink"))
    }
}
