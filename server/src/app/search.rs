//! Finding and reading contacts: search (with signed page tokens), one card, label
//! autocomplete.

use super::{AppState, Call, Scope};
use crate::auth::{PageTokenError, fingerprint};
use crate::db::search::SearchRow;
use crate::db::{contacts, interactions, search};
use crate::domain::contact::ContactCard;
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::search::{Condition, SearchQuery, classify_destination};
use crate::error::Error;

/// SearchContacts, validated (the destination is read in the domain's region once the
/// session is known).
#[derive(Debug, Clone)]
pub struct Search {
    /// A name query.
    pub name: Option<String>,
    /// A destination (number, e-mail or handle) as typed.
    pub destination: Option<String>,
    /// The attribute and messaging conditions.
    pub rest: Vec<Condition>,
    /// Any condition suffices (else all must hold).
    pub any: bool,
    /// Only contacts with all these labels.
    pub labels: Vec<String>,
    /// Only contacts of this owner.
    pub owner: Option<UserId>,
    /// Hits per page.
    pub limit: usize,
    /// The caller's interaction the search is for (callers without `contacts.read`).
    pub interaction: Option<String>,
    /// A token of an earlier page of the same query ("": the first page).
    pub page_token: String,
    /// The query in a canonical form, without its paging (a page token belongs to it).
    pub query: Vec<u8>,
}

/// A page of hits: each hit's card and why it matched, the next page's token ("" on the last
/// page), and whether more hits follow.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// The hits and their cards.
    pub hits: Vec<(SearchRow, ContactCard)>,
    /// The next page's token.
    pub next_page_token: String,
    /// More hits follow.
    pub has_more: bool,
    /// The caller's domain (read-only links are bound to it).
    pub domain: DomainId,
}

/// ListLabels.
#[derive(Debug, Clone)]
pub struct ListLabels {
    /// The labels' beginning (any case; "" for all).
    pub prefix: String,
    /// Labels per page.
    pub limit: usize,
}

/// One page of a search. Within an interaction's scope, the interaction must be the caller's
/// and accepted.
pub async fn search(
    state: &AppState,
    call: &Call,
    cmd: Search,
    scope: Scope,
) -> Result<SearchPage, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let domain = session.domain.id;
    if let Scope::Interaction(id) = &scope {
        let interaction = interactions::find(&conn, domain, id, false)
            .await?
            .filter(|i| i.agent == session.caller.user_id)
            .ok_or_else(|| Error::interaction_not_found(id))?;
        interaction.require_accepted("search is allowed once it is accepted")?;
    }
    let mut conditions = Vec::new();
    if let Some(name) = cmd.name {
        conditions.push(Condition::Name(name));
    }
    if let Some(d) = &cmd.destination {
        let d = classify_destination(d, session.domain.default_region)
            .map_err(|e| Error::invalid("destination", e))?;
        conditions.push(Condition::Destination(d));
    }
    conditions.extend(cmd.rest);
    let query = SearchQuery {
        conditions,
        any: cmd.any,
        labels: cmd.labels,
        owner: cmd.owner,
    };

    let mut bytes = cmd.query;
    bytes.extend_from_slice(&domain.0.to_le_bytes());
    let fp = fingerprint(&bytes);
    let after = if cmd.page_token.is_empty() {
        None
    } else {
        Some(
            state
                .keys
                .verify_page(&cmd.page_token, fp)
                .map_err(|e: PageTokenError| Error::invalid("page_token", e.to_string()))?,
        )
    };
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX - 1);
    let mut rows = search::search(&mut conn, domain, &query, after.as_ref(), limit + 1).await?;
    let has_more = rows.len() > cmd.limit;
    rows.truncate(cmd.limit);
    let next_page_token = match rows.last() {
        Some((last, _)) if has_more => state.keys.sign_page(fp, &last.position())?,
        _ => String::new(),
    };
    Ok(SearchPage {
        hits: rows
            .into_iter()
            .filter_map(|(r, card)| card.map(|card| (r, card)))
            .collect(),
        next_page_token,
        has_more,
        domain,
    })
}

/// One contact's card.
pub async fn contact(state: &AppState, call: &Call, id: ContactId) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    contacts::load_card(&mut conn, session.domain.id, id).await
}

/// The domain's labels that start with the prefix, most used first, with their use counts.
pub async fn labels(
    state: &AppState,
    call: &Call,
    cmd: ListLabels,
) -> Result<Vec<(String, i64)>, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX);
    search::labels(&mut conn, session.domain.id, &cmd.prefix, limit).await
}
