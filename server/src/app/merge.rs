//! Duplicate contacts: find them, merge them, undo a merge.

use super::{AppState, Call, loaders};
use crate::auth::fingerprint;
use crate::db::duplicates::{self, Filters, Group, PagePosition};
use crate::db::merge::{self, Merged, Unmerged};
use crate::db::{contacts, tx};
use crate::domain::contact::ContactCard;
use crate::domain::ids::UserId;
use crate::domain::merge::{FieldSources, Member};
use crate::error::Error;
use crate::wire::changes::{Change, Kind};
use crate::wire::events;

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

/// FindDuplicates: a page of groups of contacts that look alike.
#[derive(Debug, Clone)]
pub struct FindDuplicates {
    /// Only contacts with every one of these labels.
    pub labels: Vec<String>,
    /// Only contacts of this owner.
    pub owner: Option<UserId>,
    /// Groups per page.
    pub limit: usize,
    /// Where the page starts: a token of an earlier page of the same query ("": the start).
    pub page_token: String,
    /// The query in a canonical form, without its paging (a page token belongs to it).
    pub query: Vec<u8>,
}

/// A group found, with how alike its names are and its contacts' cards (in the group's order).
#[derive(Debug, Clone)]
pub struct FoundGroup {
    /// The group.
    pub group: Group,
    /// How alike the members' names are (0 to 1).
    pub names_alike: f64,
    /// The members' cards.
    pub cards: Vec<ContactCard>,
}

/// Merges the contacts as one unit of work; the agents whose open interactions showed a merged
/// contact get ContactMerged, those showing the survivor its new card.
pub async fn merge(state: &AppState, call: &Call, cmd: Merge) -> Result<Merged, Error> {
    let (mut conn, session) = state.session(call).await?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        // The merged contacts' cards as they were, for the change feed.
        let ids: Vec<i64> = cmd.merged.iter().map(|m| m.contact.0).collect();
        let before = contacts::load_cards(tx, session.domain.id, &ids).await?;
        let merged = merge::merge(tx, &session, &cmd.survivor, &cmd.merged, &cmd.sources).await?;
        tx.emit_all(events::merged(&merged));
        tx.change(
            Change::of(&session, Kind::Merged, &merged.survivor)
                .merged(merged.merged.iter().copied())
                .out(),
        );
        tx.change_all(before.iter().map(|card| {
            Change::of(&session, Kind::Deleted, card)
                .merged_into(merged.survivor.id)
                .out()
        }));
        Ok(merged)
    })
    .await
}

/// Undoes a merge as one unit of work; the agents whose open interactions changed get
/// ContactUnmerged, those showing the survivor its new card.
pub async fn unmerge(state: &AppState, call: &Call, cmd: Unmerge) -> Result<Unmerged, Error> {
    let (mut conn, session) = state.session(call).await?;
    let retention = state.merge_retention;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let undone = merge::unmerge(tx, &session, cmd.merge_id, cmd.force, retention).await?;
        tx.emit_all(events::unmerged(&undone));
        tx.change_all(
            std::iter::once(&undone.survivor)
                .chain(&undone.restored)
                .map(|card| Change::of(&session, Kind::Unmerged, card).out()),
        );
        Ok(undone)
    })
    .await
}

/// A page of duplicate groups and the next page's token ("" on the last page).
pub async fn duplicates(
    state: &AppState,
    call: &Call,
    cmd: FindDuplicates,
) -> Result<(Vec<FoundGroup>, String), Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let domain = session.domain.id;
    let mut bytes = cmd.query;
    bytes.extend_from_slice(&domain.0.to_le_bytes());
    bytes.extend_from_slice(b"duplicates");
    let fp = fingerprint(&bytes);
    let after = if cmd.page_token.is_empty() {
        PagePosition::start()
    } else {
        let c = state
            .keys
            .verify_cursor(&cmd.page_token, fp)
            .map_err(|e| Error::invalid("page_token", e.to_string()))?;
        serde_json::from_str::<PagePosition>(&c)
            .map_err(|_| Error::invalid("page_token", "is not a page token of this RPC"))?
    };
    let filters = Filters {
        labels: cmd.labels,
        owner: cmd.owner,
    };
    let (groups, next) = duplicates::find(&mut conn, domain, &filters, after, cmd.limit).await?;
    let next_page_token = match next {
        Some(c) => {
            let c =
                serde_json::to_string(&c).map_err(|e| Error::Internal(format!("cursor: {e}")))?;
            state.keys.sign_cursor(fp, &c)?
        }
        None => String::new(),
    };
    let shown: Vec<Vec<i64>> = groups.iter().map(|g| g.members.clone()).collect();
    let likeness = duplicates::name_likeness(&mut conn, &shown).await?;
    let ids: Vec<i64> = shown.iter().flatten().copied().collect();
    let cards = loaders::cards(&mut conn, domain, &ids).await?;
    let found = groups
        .into_iter()
        .zip(likeness)
        .map(|(group, names_alike)| FoundGroup {
            // A contact can be in several groups (a shared phone, a shared e-mail).
            cards: group
                .members
                .iter()
                .filter_map(|id| cards.get(id).cloned())
                .collect(),
            group,
            names_alike,
        })
        .collect();
    Ok((found, next_page_token))
}
