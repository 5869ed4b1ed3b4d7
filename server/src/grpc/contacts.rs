//! `clientinfo.v1.ContactsService`: CRM upkeep (update, delete, import, audit trail).

use client_info_proto::pb;
use tonic::{Request, Response, Status, Streaming};

use diesel_async::AsyncConnection as _;

use super::{AppState, convert, events, unimplemented};
use crate::auth::Caller;
use crate::db::outbox;
use crate::db::{audit, contacts};
use crate::domain::ids::ContactId;
use crate::domain::permission::Permission;
use crate::error::{Error, Violations};

/// The service.
#[derive(Debug, Clone)]
pub struct ContactsApi {
    state: AppState,
}

impl ContactsApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::contacts_service_server::ContactsService for ContactsApi {
    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        if req.expected_version <= 0 {
            v.add(
                "expected_version",
                "must be the version the caller last saw (at least 1)",
            );
        }
        let patch = convert::patch(&req, &mut v);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let keys = &self.state.keys;
        let expected = req.expected_version;
        let card = conn
            .transaction(async |conn| {
                let card = contacts::update(conn, &session, id, expected, &patch).await?;
                let out = events::updated(conn, &session, keys, &[&card]).await?;
                events::publish(conn, &session, &out).await?;
                Ok::<_, Error>(card)
            })
            .await?;
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::DeleteContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let expected = convert::optional_version(&mut v, "expected_version", req.expected_version);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        conn.transaction(async |conn| {
            let agents = outbox::concerned_agents(conn, session.domain.id, &[id]).await?;
            contacts::delete(conn, &session, id, expected).await?;
            let out = [events::out(
                agents,
                pb::agent_event::Event::ContactDeleted(pb::ContactDeleted { contact_id: id.0 }),
            )];
            events::publish(conn, &session, &out).await?;
            Ok::<_, Error>(())
        })
        .await?;
        tracing::info!("contact deleted");
        Ok(Response::new(pb::DeleteContactResponse {}))
    }

    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        Caller::of(&request)?.require(Permission::ContactsWrite)?;
        Err(unimplemented("ImportContacts"))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn list_contact_audit(
        &self,
        request: Request<pb::ListContactAuditRequest>,
    ) -> Result<Response<pb::ListContactAuditResponse>, Status> {
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
        let mut entries = audit::for_contact(&mut conn, domain, id, before, limit + 1).await?;
        // Deleted contacts keep their trail; a contact with neither trail nor row is unknown.
        if entries.is_empty()
            && before.is_none()
            && !contacts::exists(&mut conn, domain, id).await?
        {
            return Err(Error::not_found(format!("contact {id}")).into());
        }
        let has_more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let actors: Vec<i64> = entries.iter().map(|e| e.actor_id).collect();
        let names = crate::db::users::refs(&mut conn, domain, &actors).await?;
        let next_page_token = match entries.last() {
            Some(last) if has_more => last.id.to_string(),
            _ => String::new(),
        };
        let json =
            |v: &Option<serde_json::Value>| v.as_ref().map(ToString::to_string).unwrap_or_default();
        let entries = entries
            .iter()
            .map(|e| pb::AuditEntry {
                id: e.id,
                occurred_at: Some(convert::timestamp(e.occurred_at)),
                actor: Some(pb::UserRef {
                    id: e.actor_id,
                    name: names
                        .get(&e.actor_id)
                        .map(|u| u.name.clone())
                        .unwrap_or_default(),
                }),
                action: e.action.clone(),
                contact_id: e.contact_id,
                interaction_id: e.interaction_id.clone().unwrap_or_default(),
                before_json: json(&e.before),
                after_json: json(&e.after),
            })
            .collect();
        Ok(Response::new(pb::ListContactAuditResponse {
            entries,
            next_page_token,
        }))
    }
}
