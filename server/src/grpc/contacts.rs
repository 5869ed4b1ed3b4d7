//! `clientinfo.v1.ContactsService`: CRM upkeep (update, delete, import, audit trail) and
//! duplicates (find, merge, undo).

use std::pin::Pin;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::client_info::{HEARTBEAT_HEADER, expiry};
use super::{call, decode};
use crate::app::changes::FeedItem;
use crate::app::{self, AppState};
use crate::domain::permission::Permission;
use crate::wire::encode;

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

/// The change feed's response stream.
pub type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchContactChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::contacts_service_server::ContactsService for ContactsApi {
    type WatchContactChangesStream = ChangeStream;

    #[tracing::instrument(skip_all, fields(resume_after = request.get_ref().resume_after))]
    async fn watch_contact_changes(
        &self,
        request: Request<pb::WatchContactChangesRequest>,
    ) -> Result<Response<Self::WatchContactChangesStream>, Status> {
        let call = call(&request)?;
        let watch = decode::contacts::watch_contact_changes(request.get_ref())?;
        call.principal.require(Permission::ContactsChanges)?;
        let expires = expiry(call.principal.expires_at);
        let feed = app::changes::watch(&self.state, &call, watch, expires).await?;
        // No task per feed: the response stream drives the feed's reads itself.
        let stream = futures_util::stream::unfold(feed, |mut feed| async move {
            use pb::watch_contact_changes_response::Item;
            let item = feed.next().await?;
            let item = item
                .map(|i| pb::WatchContactChangesResponse {
                    item: Some(match i {
                        FeedItem::Started(position) => Item::StartedAfter(position),
                        FeedItem::Change(change) => Item::Change(*change),
                        FeedItem::Heartbeat(position) => {
                            Item::Heartbeat(pb::ChangeHeartbeat { position })
                        }
                    }),
                })
                .map_err(Status::from);
            Some((item, feed))
        });
        let mut response = Response::new(Box::pin(stream) as ChangeStream);
        let interval = u64::try_from(self.state.heartbeat.as_millis()).unwrap_or(u64::MAX);
        response
            .metadata_mut()
            .insert(HEARTBEAT_HEADER, interval.into());
        Ok(response)
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn erase_contact(
        &self,
        request: Request<pb::EraseContactRequest>,
    ) -> Result<Response<pb::EraseContactResponse>, Status> {
        let call = call(&request)?;
        let contact = decode::contacts::erase_or_export(request.get_ref().contact_id)?;
        call.principal.require(Permission::ContactsErase)?;
        let done = app::erase::erase_contact(&self.state, &call, contact).await?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::EraseContactResponse {
            deleted_now: done.deleted_now,
            audit_entries: count(done.audit_entries),
            merges_no_longer_undoable: done.merges,
            stored_messages: count(done.stored_messages),
            interactions: count(done.interactions),
            links: count(done.links),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn export_contact(
        &self,
        request: Request<pb::ExportContactRequest>,
    ) -> Result<Response<pb::ExportContactResponse>, Status> {
        let call = call(&request)?;
        let contact = decode::contacts::erase_or_export(request.get_ref().contact_id)?;
        call.principal.require(Permission::ContactsRead)?;
        let exported = app::erase::export_contact(&self.state, &call, contact).await?;
        Ok(Response::new(app::erase::exported(&exported)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let call = call(&request)?;
        let list = decode::contacts::list_contacts(request.get_ref())?;
        call.principal.require(Permission::ContactsChanges)?;
        let page = app::changes::list(&self.state, &call, list).await?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: page
                .contacts
                .iter()
                .map(|(card, change_position)| pb::ContactListed {
                    contact: Some(encode::contact(card, false)),
                    change_position: *change_position,
                })
                .collect(),
            next_page_token: page.next_page_token,
            resume_after: page.resume_after,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let call = call(&request)?;
        let update = decode::contacts::update_contact(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        let card = app::contacts::update(&self.state, &call, update).await?;
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(encode::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::DeleteContactResponse>, Status> {
        let call = call(&request)?;
        let delete = decode::contacts::delete_contact(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        app::contacts::delete(&self.state, &call, delete).await?;
        tracing::info!("contact deleted");
        Ok(Response::new(pb::DeleteContactResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        let call = call(&request)?;
        call.principal.require(Permission::ContactsWrite)?;
        let mut import = app::contacts::Import::start(&self.state, &call).await?;
        let mut stream = request.into_inner();
        loop {
            let record = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    // A record that is not a record (the codec's MALFORMED_MESSAGE): the
                    // records before it are written as if the stream had ended there, and the
                    // refusal says where it stopped, so the sender resumes after it.
                    let summary = import.finish(&self.state).await?;
                    tracing::warn!(
                        received = summary.received,
                        imported = summary.imported,
                        error = %status,
                        "import stopped at a malformed record"
                    );
                    return Err(stopped_at(&status, &summary));
                }
                Err(status) => {
                    // The stream broke off (the client went away): the batches written are
                    // kept; report how far the import got.
                    let (received, imported) = import.progress();
                    tracing::warn!(received, imported, error = %status, "import stream broke off");
                    return Err(status);
                }
            };
            let record = decode::contacts::import_contacts(&record);
            import.push(&self.state, record).await?;
        }
        let summary = import.finish(&self.state).await?;
        tracing::info!(
            received = summary.received,
            imported = summary.imported,
            rejected = summary.rejected.len(),
            "import finished"
        );
        Ok(Response::new(pb::ImportContactsResponse {
            received: summary.received,
            imported: summary.imported,
            errors: summary
                .rejected
                .into_iter()
                .map(|r| pb::ImportError {
                    index: r.index,
                    field: r.field,
                    description: r.description,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        let call = call(&request)?;
        let find = decode::merge::find_duplicates(request.get_ref())?;
        call.principal.require(Permission::ContactsRead)?;
        let (found, next_page_token) = app::merge::duplicates(&self.state, &call, find).await?;
        let groups = found
            .iter()
            .map(|f| {
                let contacts = f.cards.iter().map(|c| encode::contact(c, false)).collect();
                encode::duplicate_group(&f.group, f.names_alike, contacts)
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
        let call = call(&request)?;
        let merge = decode::merge::merge_contacts(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        let merged = app::merge::merge(&self.state, &call, merge).await?;
        tracing::info!(merge_id = merged.merge_id, "contacts merged");
        Ok(Response::new(pb::MergeContactsResponse {
            merge_id: merged.merge_id,
            survivor: Some(encode::contact(&merged.survivor, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(merge_id = request.get_ref().merge_id))]
    async fn unmerge_contacts(
        &self,
        request: Request<pb::UnmergeContactsRequest>,
    ) -> Result<Response<pb::UnmergeContactsResponse>, Status> {
        let call = call(&request)?;
        let unmerge = decode::merge::unmerge_contacts(request.get_ref())?;
        call.principal.require(Permission::ContactsWrite)?;
        let undone = app::merge::unmerge(&self.state, &call, unmerge).await?;
        tracing::info!(skipped = undone.skipped.len(), "merge undone");
        Ok(Response::new(pb::UnmergeContactsResponse {
            survivor: Some(encode::contact(&undone.survivor, false)),
            restored: undone
                .restored
                .iter()
                .map(|c| encode::contact(c, false))
                .collect(),
            skipped: undone.skipped.iter().map(encode::conflict).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn list_contact_audit(
        &self,
        request: Request<pb::ListContactAuditRequest>,
    ) -> Result<Response<pb::ListContactAuditResponse>, Status> {
        let call = call(&request)?;
        let trail = decode::contacts::list_contact_audit(request.get_ref())?;
        call.principal.require(Permission::ContactsRead)?;
        let page = app::contacts::audit_trail(&self.state, &call, trail).await?;
        let entries = page
            .entries
            .iter()
            .map(|e| encode::audit_entry(e, &page.actors))
            .collect();
        Ok(Response::new(pb::ListContactAuditResponse {
            entries,
            next_page_token: page.next_page_token,
        }))
    }
}

/// The codec's refusal of a malformed import record, with where the import stopped: the
/// record's 0-based index (`record_index`), how many records before it were imported and how
/// many rejected (ErrorInfo metadata), and the record named in the message.
fn stopped_at(status: &Status, summary: &app::contacts::ImportSummary) -> Status {
    use tonic_types::StatusExt as _;
    let mut details = status.get_error_details();
    let Some(info) = details.error_info().cloned() else {
        return status.clone();
    };
    let mut metadata = info.metadata;
    metadata.insert("record_index".into(), summary.received.to_string());
    metadata.insert("imported".into(), summary.imported.to_string());
    let rejected = summary.received - summary.imported;
    metadata.insert("rejected".into(), rejected.to_string());
    details.set_error_info(info.reason, info.domain, metadata);
    Status::with_error_details(
        status.code(),
        format!(
            "record {}: {} ({} records before it imported, {rejected} rejected)",
            summary.received,
            status.message(),
            summary.imported,
        ),
        details,
    )
}
