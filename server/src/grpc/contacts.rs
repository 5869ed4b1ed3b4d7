//! `clientinfo.v1.ContactsService`: CRM upkeep (update, delete, import, audit trail).

use client_info_proto::pb;
use tonic::{Request, Response, Status, Streaming};

use super::{AppState, convert, decode};
use crate::app;
use crate::auth::Caller;
use crate::db::contacts::ContactDraft;
use crate::db::duplicates::{self, Kind, PagePosition};
use crate::db::{audit, contacts};
use crate::domain::ids::ContactId;
use crate::domain::permission::Permission;
use crate::error::{Error, Violations};

/// Records inserted per transaction by ImportContacts.
const IMPORT_BATCH: usize = 2000;
/// Most rejected records listed in an import's response.
const MAX_IMPORT_ERRORS: usize = 1000;

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
        let update = decode::update(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        let card = app::contacts::update(&self.state, caller, update).await?;
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
        let delete = decode::delete(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        app::contacts::delete(&self.state, caller, delete).await?;
        tracing::info!("contact deleted");
        Ok(Response::new(pb::DeleteContactResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Permission::ContactsWrite)?;
        let (mut conn, session) = self.state.session(caller).await?;
        let region = session.domain.default_region;
        let mut stream = request.into_inner();
        let mut batch: Vec<(i64, ContactDraft)> = Vec::with_capacity(IMPORT_BATCH);
        let mut received: i64 = 0;
        let mut imported: i64 = 0;
        let mut errors: Vec<pb::ImportError> = Vec::new();
        let reject =
            |errors: &mut Vec<pb::ImportError>, index: i64, field: String, description: String| {
                if errors.len() < MAX_IMPORT_ERRORS {
                    errors.push(pb::ImportError {
                        index,
                        field,
                        description,
                    });
                }
            };
        loop {
            let record = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(status) => {
                    // What was flushed is kept; report how far the import got.
                    tracing::warn!(received, imported, error = %status, "import stream broke off");
                    return Err(status);
                }
            };
            let index = received;
            received += 1;
            let draft = decode::new_contact(&decode::ContactFields {
                display_name: &record.display_name,
                description: &record.description,
                time_zone: &record.time_zone,
                owner_id: record.owner_id,
                labels: &record.labels,
                attributes: &record.attributes,
                communications: &record.communications,
            })
            .map_err(Error::from)
            .and_then(|(new, drafts)| convert::draft(new, drafts, caller.user_id, region));
            match draft {
                Ok(d) => batch.push((index, d)),
                Err(Error::InvalidArgument(violations)) => {
                    for fv in violations {
                        reject(&mut errors, index, fv.field, fv.description);
                    }
                }
                Err(other) => return Err(other.into()),
            }
            if batch.len() >= IMPORT_BATCH {
                let (n, rejected) =
                    app::contacts::import_batch(&self.state, &mut conn, &session, &batch).await?;
                imported += i64::try_from(n).unwrap_or(0);
                for r in rejected {
                    reject(&mut errors, r.index, r.field, r.description);
                }
                batch.clear();
            }
        }
        if !batch.is_empty() {
            let (n, rejected) =
                app::contacts::import_batch(&self.state, &mut conn, &session, &batch).await?;
            imported += i64::try_from(n).unwrap_or(0);
            for r in rejected {
                reject(&mut errors, r.index, r.field, r.description);
            }
        }
        errors.sort_by_key(|e| e.index);
        tracing::info!(
            received,
            imported,
            rejected = errors.len(),
            "import finished"
        );
        Ok(Response::new(pb::ImportContactsResponse {
            received,
            imported,
            errors,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (filters, limit, token) = decode::find_duplicates(request.get_ref())?;
        caller.require(Permission::ContactsRead)?;
        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        let mut shape = request.get_ref().clone();
        shape.page_size = 0;
        shape.page_token.clear();
        let mut bytes = prost::Message::encode_to_vec(&shape);
        bytes.extend_from_slice(&domain.0.to_le_bytes());
        bytes.extend_from_slice(b"duplicates");
        let fp = crate::auth::fingerprint(&bytes);
        let after = if token.is_empty() {
            PagePosition::start()
        } else {
            let c = self
                .state
                .keys
                .verify_cursor(&token, fp)
                .map_err(|e| Error::invalid("page_token", e.to_string()))?;
            serde_json::from_str::<PagePosition>(&c)
                .map_err(|_| Error::invalid("page_token", "is not a page token of this RPC"))?
        };
        let (groups, next) = duplicates::find(&mut conn, domain, &filters, after, limit).await?;
        let next_page_token = match next {
            Some(c) => {
                let c = serde_json::to_string(&c)
                    .map_err(|e| Error::Internal(format!("cursor: {e}")))?;
                self.state.keys.sign_cursor(fp, &c)?
            }
            None => String::new(),
        };
        let shown: Vec<Vec<i64>> = groups.iter().map(|g| g.members.clone()).collect();
        let likeness = duplicates::name_likeness(&mut conn, &shown).await?;
        let ids: Vec<i64> = shown.iter().flatten().copied().collect();
        let cards: std::collections::HashMap<i64, _> =
            contacts::load_cards(&mut conn, domain, &ids)
                .await?
                .into_iter()
                .map(|c| (c.id.0, c))
                .collect();
        let groups = groups
            .iter()
            .zip(likeness)
            .map(|(g, like)| {
                let contacts: Vec<pb::Contact> = g
                    .members
                    .iter()
                    .filter_map(|id| cards.get(id))
                    .map(|c| convert::contact(c, false))
                    .collect();
                group(g, like, contacts)
            })
            .collect();
        Ok(Response::new(pb::FindDuplicatesResponse {
            groups,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::MergeContactsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let merge = decode::merge(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        let merged = app::merge::merge(&self.state, caller, merge).await?;
        tracing::info!(merge_id = merged.merge_id, "contacts merged");
        Ok(Response::new(pb::MergeContactsResponse {
            merge_id: merged.merge_id,
            survivor: Some(convert::contact(&merged.survivor, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(merge_id = request.get_ref().merge_id))]
    async fn unmerge_contacts(
        &self,
        request: Request<pb::UnmergeContactsRequest>,
    ) -> Result<Response<pb::UnmergeContactsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let unmerge = decode::unmerge(request.get_ref())?;
        caller.require(Permission::ContactsWrite)?;
        let undone = app::merge::unmerge(&self.state, caller, unmerge).await?;
        tracing::info!(skipped = undone.skipped.len(), "merge undone");
        Ok(Response::new(pb::UnmergeContactsResponse {
            survivor: Some(convert::contact(&undone.survivor, false)),
            restored: undone
                .restored
                .iter()
                .map(|c| convert::contact(c, false))
                .collect(),
            skipped: undone.skipped.iter().map(app::merge::conflict).collect(),
        }))
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
            return Err(Error::contact_not_found(id).into());
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

/// Score of a kind of likeness (see `DuplicateGroup.score` in the protos).
fn base_score(kind: Kind, least_similarity: Option<f64>) -> f64 {
    match kind {
        Kind::Email => 0.95,
        Kind::Messaging => 0.9,
        Kind::Phone => 0.85,
        Kind::Name => 0.5 + 0.4 * least_similarity.unwrap_or(0.0),
    }
}

/// A group as sent: its contacts, why they look alike, and its score.
fn group(
    g: &duplicates::Group,
    names_alike: f64,
    contacts: Vec<pb::Contact>,
) -> pb::DuplicateGroup {
    let found = |field: pb::SearchField, exact: bool, value: String| pb::FoundBy {
        field: field as i32,
        exact,
        value,
    };
    let mut found_by = match g.kind {
        Kind::Email => vec![found(pb::SearchField::Email, true, g.key.clone())],
        Kind::Phone => vec![found(pb::SearchField::Phone, true, g.key.clone())],
        Kind::Messaging => vec![
            found(pb::SearchField::Messaging, true, g.key.clone()),
            found(pb::SearchField::Phone, true, g.key.clone()),
        ],
        Kind::Name => vec![found(
            pb::SearchField::Attribute,
            true,
            format!(
                "{}={}",
                g.key,
                g.attribute_value.clone().unwrap_or_default()
            ),
        )],
    };
    let first_name = contacts
        .first()
        .map(|c| c.display_name.clone())
        .unwrap_or_default();
    let similar_names =
        g.kind == Kind::Name || names_alike >= crate::domain::merge::NAME_SIMILARITY_THRESHOLD;
    if similar_names {
        let exact = g.least_similarity.unwrap_or(names_alike) >= 1.0 || names_alike >= 1.0;
        found_by.push(found(pb::SearchField::Name, exact, first_name));
    }
    let mut score = base_score(g.kind, g.least_similarity) - 0.05 * (g.count - 2).max(0) as f64;
    if g.kind != Kind::Name && similar_names {
        score += 0.05;
    }
    pb::DuplicateGroup {
        contacts,
        contact_count: i32::try_from(g.count).unwrap_or(i32::MAX),
        found_by,
        score: (score.clamp(0.05, 1.0) * 1000.0).round() / 1000.0,
    }
}
