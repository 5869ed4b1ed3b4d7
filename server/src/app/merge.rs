//! Duplicate contacts: merge them, undo a merge.

use client_info_proto::pb;

use crate::auth::Caller;
use crate::db::merge::{self, Member, Merged, Unmerged};
use crate::db::tx;
use crate::domain::merge::FieldSources;
use crate::error::Error;
use crate::grpc::{AppState, events};

/// MergeContacts.
#[derive(Debug, Clone)]
pub struct Merge {
    /// The contact that survives.
    pub survivor: Member,
    /// The contacts merged into it (1 to 9, distinct, not the survivor).
    pub merged: Vec<Member>,
    /// Whose value the survivor keeps, field by field.
    pub sources: FieldSources,
}

/// UnmergeContacts.
#[derive(Debug, Clone, Copy)]
pub struct Unmerge {
    /// The merge.
    pub merge_id: i64,
    /// Restore without the communications that cannot go back.
    pub force: bool,
}

/// Merges the contacts as one unit of work; the agents whose open interactions showed a merged
/// contact get ContactMerged, those showing the survivor its new card.
pub async fn merge(state: &AppState, caller: Caller, cmd: Merge) -> Result<Merged, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let keys = &state.keys;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let merged = merge::merge(tx, &session, &cmd.survivor, &cmd.merged, &cmd.sources).await?;
        tx.emit_all(events::merged(&session, keys, &merged)?);
        Ok(merged)
    })
    .await
}

/// Undoes a merge as one unit of work; the agents whose open interactions changed get
/// ContactUnmerged, those showing the survivor its new card.
pub async fn unmerge(state: &AppState, caller: Caller, cmd: Unmerge) -> Result<Unmerged, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let keys = &state.keys;
    let retention = state.merge_retention;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let undone = merge::unmerge(tx, &session, cmd.merge_id, cmd.force, retention).await?;
        tx.emit_all(events::unmerged(&session, keys, &undone)?);
        Ok(undone)
    })
    .await
}

/// A conflict an undo skipped, as sent.
pub fn conflict(c: &merge::Conflict) -> pb::UnmergeConflict {
    use merge::{ArchivedLink, ConflictKind};
    use pb::unmerge_conflict::Communication as C;
    let (kind, holder) = match c.kind {
        ConflictKind::Removed => (pb::UnmergeConflictKind::Removed, 0),
        ConflictKind::HeldByOtherContact(h) => (pb::UnmergeConflictKind::HeldByOtherContact, h.0),
    };
    pb::UnmergeConflict {
        contact_id: c.contact.0,
        kind: kind as i32,
        subject: c.subject(),
        description: c.description(),
        holder_contact_id: holder,
        communication: Some(match &c.communication {
            ArchivedLink::Phone(p) => C::Phone(pb::Phone {
                id: p.id,
                number: p.number.clone(),
                e164: p.e164.clone(),
                region: p.region.clone(),
            }),
            ArchivedLink::Email(e) => C::Email(pb::Email {
                id: e.id,
                address: e.address.clone(),
                normalized: e.normalized.clone(),
            }),
            ArchivedLink::Channel(m) => C::MessagingChannel(pb::MessagingChannel {
                id: m.id,
                protocol: m.identity.protocol.clone(),
                external_user_id: m.identity.external_user_id.clone(),
                display_name: m.identity.display_name.clone(),
            }),
        }),
    }
}
