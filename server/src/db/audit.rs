//! The audit log: who changed which contact, when, and the state before and after.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::schema::audit_log;
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::error::Error;

/// What was done to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Created.
    ContactCreate,
    /// Fields changed.
    ContactUpdate,
    /// Deleted.
    ContactDelete,
    /// A communication linked.
    CommunicationLink,
    /// A communication unlinked.
    CommunicationUnlink,
    /// A messaging identity moved from another contact.
    ChannelRelink,
    /// An interaction bound.
    InteractionBind,
    /// An interaction unbound.
    InteractionUnbind,
    /// Contacts merged into this one (one entry per merge, on the survivor).
    ContactMerge,
    /// A merge undone (on the survivor and each restored contact).
    ContactUnmerge,
    /// A read-only link to the contact made (CreateReadOnlyLink).
    LinkCreate,
    /// Read-only links to the contact revoked (one, or all).
    LinkRevoke,
    /// The contact erased with every trace of its personal data (no values recorded).
    ContactErase,
    /// Everything stored about the contact exported (no values recorded).
    ContactExport,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ContactCreate => "contact.create",
            AuditAction::ContactUpdate => "contact.update",
            AuditAction::ContactDelete => "contact.delete",
            AuditAction::CommunicationLink => "communication.link",
            AuditAction::CommunicationUnlink => "communication.unlink",
            AuditAction::ChannelRelink => "channel.relink",
            AuditAction::InteractionBind => "interaction.bind",
            AuditAction::InteractionUnbind => "interaction.unbind",
            AuditAction::ContactMerge => "contact.merge",
            AuditAction::ContactUnmerge => "contact.unmerge",
            AuditAction::LinkCreate => "link.create",
            AuditAction::LinkRevoke => "link.revoke",
            AuditAction::ContactErase => "contact.erase",
            AuditAction::ContactExport => "contact.export",
        }
    }
}

/// One audit record to write.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    /// The domain.
    pub domain: DomainId,
    /// Who.
    pub actor: UserId,
    /// What.
    pub action: AuditAction,
    /// Which contact.
    pub contact: ContactId,
    /// The interaction's routing id, when the change came from one.
    pub interaction: Option<&'a str>,
    /// State before (see [`snapshot`]).
    pub before: Option<serde_json::Value>,
    /// State after (see [`snapshot`]).
    pub after: Option<serde_json::Value>,
}

/// Serialises a state for the audit log.
pub fn snapshot<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("audit snapshot: {e}")))
}

/// Writes an audit record (inside the caller's transaction).
pub async fn record(conn: &mut AsyncPgConnection, rec: AuditRecord<'_>) -> Result<(), Error> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::domain_id.eq(rec.domain.0),
            audit_log::actor_id.eq(rec.actor.0),
            audit_log::action.eq(rec.action.as_str()),
            audit_log::contact_id.eq(rec.contact.0),
            audit_log::interaction_id.eq(rec.interaction),
            audit_log::before.eq(rec.before),
            audit_log::after.eq(rec.after),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored audit entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    /// Id.
    pub id: i64,
    /// When.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Who.
    pub actor_id: i64,
    /// What.
    pub action: String,
    /// Which contact.
    pub contact_id: i64,
    /// Which interaction.
    pub interaction_id: Option<String>,
    /// Before.
    pub before: Option<serde_json::Value>,
    /// After.
    pub after: Option<serde_json::Value>,
}

/// A contact's audit entries, newest first, with ids below `before_id` (paging).
pub async fn for_contact(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, Error> {
    let mut query = audit_log::table
        .filter(audit_log::domain_id.eq(domain.0))
        .filter(audit_log::contact_id.eq(contact.0))
        .into_boxed();
    if let Some(id) = before_id {
        query = query.filter(audit_log::id.lt(id));
    }
    Ok(query
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
        .await?)
}
