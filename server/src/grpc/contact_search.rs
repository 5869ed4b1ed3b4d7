//! `clientinfo.v1.ContactSearchService`: find and read contacts.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{AppState, convert, unimplemented};
use crate::auth::Caller;
use crate::db::contacts;
use crate::domain::ids::ContactId;
use crate::domain::permission::Permission;
use crate::error::Violations;

/// The service.
#[derive(Debug, Clone)]
pub struct ContactSearchApi {
    state: AppState,
}

impl ContactSearchApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::contact_search_service_server::ContactSearchService for ContactSearchApi {
    async fn search_contacts(
        &self,
        request: Request<pb::SearchContactsRequest>,
    ) -> Result<Response<pb::SearchContactsResponse>, Status> {
        Caller::of(&request)?;
        Err(unimplemented("SearchContacts"))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsRead)?;
        let (mut conn, session) = self.state.session(caller).await?;
        let card = contacts::load_card(&mut conn, session.domain.id, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    async fn list_labels(
        &self,
        request: Request<pb::ListLabelsRequest>,
    ) -> Result<Response<pb::ListLabelsResponse>, Status> {
        Caller::of(&request)?;
        Err(unimplemented("ListLabels"))
    }
}
