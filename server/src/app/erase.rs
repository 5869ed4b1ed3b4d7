//! Data-subject requests: EraseContact removes a contact and every trace of its personal data,
//! ExportContact returns everything stored about it. Both audited (who, when; not what).
//!
//! Erasure runs as one unit of work: the contact's traces ([`Traces`]) are gathered from its
//! card, its audit trail and the merge archives it took part in; then its rows go, and every
//! place that may hold a trace is scrubbed ([`crate::db::erase`]); the agents who had it on
//! screen are told it was deleted, and the change feed says it was erased. Nothing is
//! half-done: a failure leaves everything as it was.

use std::collections::HashMap;

use client_info_proto::pb;

use super::{AppState, Call};
use crate::db::audit::{self, AuditAction, AuditEntry, AuditRecord};
use crate::db::card_links::{self, LinkRow};
use crate::db::erase::{self, MergeRecord, Stored};
use crate::db::interactions::{self, Binding};
use crate::db::{contacts, merged, outbox, tx, users};
use crate::domain::contact::{ContactCard, UserRef};
use crate::domain::erase::Traces;
use crate::domain::ids::ContactId;
use crate::error::{Error, Fault, Reason};
use crate::wire::changes::Change;
use crate::wire::events;
use crate::wire::scrub::{Payload, scrub};

/// Most rows of one kind an export carries.
pub const EXPORT_LIMIT: i64 = 10_000;

/// What an erasure scrubbed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// The contact still existed and was deleted now.
    pub deleted_now: bool,
    /// Audit entries whose values were replaced.
    pub audit_entries: usize,
    /// Merges whose archive was emptied (no longer undoable).
    pub merges: Vec<i64>,
    /// Stored events and changes scrubbed.
    pub stored_messages: usize,
    /// Interactions scrubbed.
    pub interactions: usize,
    /// Read-only links removed.
    pub links: usize,
}

/// NOT_FOUND with reason CONTACT_ERASED when the contact was erased.
async fn refuse_erased(
    conn: &mut diesel_async::AsyncPgConnection,
    domain: crate::domain::ids::DomainId,
    contact: ContactId,
) -> Result<(), Error> {
    match erase::erased_at(conn, domain, contact).await? {
        Some(at) => Err(Error::NotFound(
            Fault::new(
                Reason::ContactErased,
                format!("contact {contact} was erased"),
            )
            .about(format!("contact/{contact}"))
            .with("erased_at", at.to_rfc3339()),
        )),
        None => Ok(()),
    }
}

/// The contact's card, locked; `None` for a deleted contact that left an audit trail.
/// NOT_FOUND otherwise (CONTACT_MERGED for one merged into another: erase or export that one).
async fn card_or_trail(
    conn: &mut diesel_async::AsyncPgConnection,
    domain: crate::domain::ids::DomainId,
    contact: ContactId,
) -> Result<Option<ContactCard>, Error> {
    match contacts::lock(conn, domain, contact, None).await {
        Ok(_) => Ok(Some(contacts::load_card(conn, domain, contact).await?)),
        Err(Error::NotFound(f)) if f.reason == Reason::ContactNotFound => {
            if merged::merged_into(conn, domain, contact).await?.is_none()
                && erase::has_trail(conn, domain, contact).await?
            {
                Ok(None)
            } else {
                Err(Error::NotFound(f))
            }
        }
        Err(e) => Err(e),
    }
}

/// Erases the contact (existing, or deleted with an audit trail); see the module
/// documentation.
pub async fn erase_contact(
    state: &AppState,
    call: &Call,
    contact: ContactId,
) -> Result<Erased, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    tx::write(&mut conn, &state.hub, domain, async |tx| {
        refuse_erased(tx, domain, contact).await?;
        let card = card_or_trail(tx, domain, contact).await?;
        let mut traces = Traces::default();
        if let Some(card) = &card {
            traces.add_card(card);
        }
        for doc in erase::own_documents(tx, domain, contact).await? {
            traces.add_document(&doc);
        }
        let strings = traces.strings().to_vec();
        let agents = outbox::concerned_agents(tx, domain, &[contact]).await?;
        let mut done = Erased::default();
        erase::forget_requests(tx, domain, contact, &strings).await?;
        let version = erase::delete_contact(tx, domain, contact).await?;
        done.deleted_now = version.is_some();
        done.links = erase::delete_links(tx, domain, contact).await?;
        erase::forget_words(tx, domain, traces.names()).await?;
        done.audit_entries = erase::blank_own_audit(tx, domain, contact).await?;
        done.merges = erase::erase_merges(tx, domain, contact, &strings).await?;
        if !traces.is_empty() {
            for mut entry in erase::audit_naming(tx, domain, &strings).await? {
                let before = entry
                    .before
                    .as_mut()
                    .is_some_and(|d| traces.scrub_document(d));
                let after = entry
                    .after
                    .as_mut()
                    .is_some_and(|d| traces.scrub_document(d));
                if before || after {
                    erase::set_audit(tx, domain, &entry).await?;
                    done.audit_entries += 1;
                }
            }
            let bytes: Vec<Vec<u8>> = strings.iter().map(|s| s.as_bytes().to_vec()).collect();
            for (stored, kind) in [
                (Stored::Events, Payload::AgentEvent),
                (Stored::Changes, Payload::ContactChange),
            ] {
                for row in erase::payloads_naming(tx, domain, stored, &bytes).await? {
                    if let Some(clean) = scrub(kind, &row.payload, &traces)? {
                        erase::set_payload(tx, domain, stored, row.sequence, &clean).await?;
                        done.stored_messages += 1;
                    }
                }
            }
            for mut texts in erase::interactions_naming(tx, domain, &strings).await? {
                let mut changed = false;
                for field in [
                    &mut texts.caller_number,
                    &mut texts.caller_e164,
                    &mut texts.chat_external_user_id,
                    &mut texts.chat_display_name,
                ] {
                    if let Some(clean) = field.as_deref().and_then(|t| traces.scrub_text(t)) {
                        *field = Some(clean);
                        changed = true;
                    }
                }
                if let Some(clean) = traces.scrub_text(&texts.outcome_reason) {
                    texts.outcome_reason = clean;
                    changed = true;
                }
                changed |= traces.scrub_document(&mut texts.variables);
                if changed {
                    erase::set_interaction_texts(tx, domain, &texts).await?;
                    done.interactions += 1;
                }
            }
        }
        tx.audit(AuditRecord {
            domain,
            actor: session.caller.user_id,
            action: AuditAction::ContactErase,
            contact,
            interaction: None,
            before: None,
            after: None,
        });
        if let Some(version) = version {
            tx.emit(events::deleted(agents, contact));
            tx.change(Change::erased(&session, contact, version).out());
        }
        Ok(done)
    })
    .await
}

/// Everything stored about one contact.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The card (`None`: deleted).
    pub card: Option<ContactCard>,
    /// The audit trail, oldest first.
    pub audit: Vec<AuditEntry>,
    /// Its interactions, newest first.
    pub interactions: Vec<Binding>,
    /// The merges it took part in, oldest first.
    pub merges: Vec<MergeRecord>,
    /// Its recorded read-only links, newest first.
    pub links: Vec<LinkRow>,
    /// The users these name, by id.
    pub users: HashMap<i64, UserRef>,
}

/// Exports everything stored about the contact (existing, or deleted with an audit trail),
/// and audits the export.
pub async fn export_contact(
    state: &AppState,
    call: &Call,
    contact: ContactId,
) -> Result<Exported, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    tx::write(&mut conn, &state.hub, domain, async |tx| {
        refuse_erased(tx, domain, contact).await?;
        let card = card_or_trail(tx, domain, contact).await?;
        let mut audit = audit::for_contact(tx, domain, contact, None, EXPORT_LIMIT).await?;
        audit.reverse();
        let interactions = interactions::history(tx, domain, contact, None, EXPORT_LIMIT).await?;
        let merges = erase::merges_of(tx, domain, contact).await?;
        let links = card_links::list(tx, domain, contact, None, EXPORT_LIMIT).await?;
        let mut ids: Vec<i64> = audit
            .iter()
            .map(|e| e.actor_id)
            .chain(interactions.iter().flat_map(|b| {
                [Some(b.interaction.agent), b.bound_by, b.unbound_by]
                    .into_iter()
                    .flatten()
                    .map(|u| u.0)
            }))
            .chain(
                links
                    .iter()
                    .flat_map(|l| [Some(l.created_by), l.revoked_by].into_iter().flatten()),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let users = users::refs(tx, domain, &ids).await?;
        tx.audit(AuditRecord {
            domain,
            actor: session.caller.user_id,
            action: AuditAction::ContactExport,
            contact,
            interaction: None,
            before: None,
            after: None,
        });
        Ok(Exported {
            card,
            audit,
            interactions,
            merges,
            links,
            users,
        })
    })
    .await
}

/// The export as the API sends it.
pub fn exported(e: &Exported) -> pb::ExportContactResponse {
    use crate::wire::encode;
    pb::ExportContactResponse {
        contact: e.card.as_ref().map(|c| encode::contact(c, false)),
        audit: e
            .audit
            .iter()
            .map(|a| encode::audit_entry(a, &e.users))
            .collect(),
        interactions: e
            .interactions
            .iter()
            .map(|b| encode::contact_interaction(b, &e.users))
            .collect(),
        merges: e
            .merges
            .iter()
            .map(|m| pb::ExportedMerge {
                merge_id: m.id,
                survivor_id: m.survivor_id,
                merged_contact_ids: m.merged_ids.clone(),
                merged_at: Some(encode::timestamp(m.merged_at)),
                undone_at: m.undone_at.map(encode::timestamp),
                archive_json: m.archive.to_string(),
            })
            .collect(),
        links: e
            .links
            .iter()
            .map(|l| encode::read_only_link(l, &e.users))
            .collect(),
        exported_at: Some(encode::timestamp(chrono::Utc::now())),
    }
}
