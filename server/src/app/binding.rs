//! The agent's actions on a live interaction (Add, Select, Unbind), contact creation, and the
//! reads of the binding service: a contact's interaction history, and read-only card links
//! (made, opened, listed, revoked).

use std::collections::HashMap;

use client_info_proto::pb;

use super::{AppState, Call, Scope, loaders};
use crate::auth::{CardLinkError, READ_ONLY_LINK_TTL};
use crate::db::audit::{AuditAction, AuditRecord};
use crate::db::card_links::{self, LinkRow};
use crate::db::changes::ChangeOut;
use crate::db::contacts::{self, CreateRequestKey};
use crate::db::interactions::{self, Binding};
use crate::db::{binding, history, tx, users};
use crate::domain::contact::{CommunicationDraft, ContactCard, ContactDraft, NewContact, UserRef};
use crate::domain::ids::ContactId;
use crate::domain::interaction::ClientHistory;
use crate::domain::permission::Permission;
use crate::domain::phone::parse_phone;
use crate::domain::session::Session;
use crate::error::{Error, Fault, Reason, Violations};
use crate::wire::changes::{Change, Kind};
use crate::wire::events;

/// Where a new contact comes from.
#[derive(Debug, Clone)]
pub enum CreateFrom {
    /// The CRM; a request id, when given, makes retries safe.
    Crm {
        /// The idempotency key.
        request_id: Option<String>,
    },
    /// The agent's live interaction (the Add button): the contact is bound to it, a chat's
    /// identity moves to it; the request id is required.
    Interaction {
        /// The interaction's routing id.
        interaction: String,
        /// The idempotency key.
        request_id: String,
        /// Link the caller's number to the new contact (calls).
        link_caller_number: bool,
    },
}

/// CreateContact.
#[derive(Debug, Clone)]
pub struct CreateContact {
    /// The contact's fields.
    pub contact: NewContact,
    /// Its communications, with their request field paths (phones are parsed in the domain's
    /// region).
    pub communications: Vec<(String, CommunicationDraft)>,
    /// Where it comes from.
    pub from: CreateFrom,
    /// The request body in a canonical form (a retry must repeat it).
    pub fingerprint: String,
}

impl CreateContact {
    /// The permission creating it takes: agents add from their interactions, the CRM writes.
    pub fn permission(&self) -> Permission {
        match self.from {
            CreateFrom::Interaction { .. } => Permission::InteractionsHandle,
            CreateFrom::Crm { .. } => Permission::ContactsWrite,
        }
    }
}

/// SelectContact: bind the caller's live interaction to a contact.
#[derive(Debug, Clone)]
pub struct Select {
    /// The interaction's routing id.
    pub interaction: String,
    /// The contact.
    pub contact: ContactId,
    /// For chats: also move the chat's identity to the contact.
    pub relink_channel: bool,
}

/// UnbindContact.
#[derive(Debug, Clone)]
pub struct Unbind {
    /// The interaction's routing id.
    pub interaction: String,
}

/// ListContactInteractions: a page of a contact's bindings, newest first.
#[derive(Debug, Clone)]
pub struct History {
    /// The contact.
    pub contact: ContactId,
    /// The page's rows have binding ids below this (`None`: the first page).
    pub before: Option<i64>,
    /// Rows per page.
    pub limit: usize,
}

/// A page of a contact's bindings, with the names of the users they name.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The bindings, newest first.
    pub rows: Vec<Binding>,
    /// The users the rows name (agents, who bound, who unbound), by id.
    pub users: HashMap<i64, UserRef>,
    /// The next page's token ("" on the last page).
    pub next_page_token: String,
}

/// CreateReadOnlyLink: a signed link to a contact's read-only card.
#[derive(Debug, Clone)]
pub struct ReadOnlyLink {
    /// The contact.
    pub contact: ContactId,
    /// The caller's interaction the contact was found for (callers without `contacts.read`).
    pub interaction: Option<String>,
}

/// Creates a contact; from an interaction, binds it (and relinks a chat's identity). Returns
/// the card and whether this request created it (false on a retry).
pub async fn create(
    state: &AppState,
    call: &Call,
    cmd: CreateContact,
) -> Result<(ContactCard, bool), Error> {
    let (mut conn, session) = state.session(call).await?;
    let draft = ContactDraft::resolve(
        cmd.contact,
        cmd.communications,
        session.caller.user_id,
        session.domain.default_region,
    )?;
    let fingerprint = cmd.fingerprint.as_str();
    tx::write(
        &mut conn,
        &state.hub,
        session.domain.id,
        async |tx| match &cmd.from {
            CreateFrom::Interaction {
                interaction,
                request_id,
                link_caller_number,
            } => {
                let key = CreateRequestKey {
                    request_id,
                    fingerprint,
                };
                let r = binding::create_from_interaction(
                    tx,
                    &session,
                    &draft,
                    key,
                    interaction,
                    *link_caller_number,
                )
                .await?;
                if let (true, Some(i)) = (r.created, &r.interaction) {
                    tx.emit_all(events::created(i, &r.card, session.caller.user_id));
                    tx.change(Change::of(&session, Kind::Created, &r.card).out());
                    tx.change(
                        Change::of(&session, Kind::InteractionBound, &r.card)
                            .interaction(&i.external_id)
                            .out(),
                    );
                    if let Some(previous) = r.previous.filter(|p| *p != r.card.id) {
                        let was = contacts::load_card(tx, session.domain.id, previous).await?;
                        tx.change(
                            Change::of(&session, Kind::InteractionUnbound, &was)
                                .interaction(&i.external_id)
                                .out(),
                        );
                    }
                    if let Some(m) = &r.relink {
                        tx.emit_all(events::moved(
                            Some(i),
                            &m.link,
                            m.from,
                            m.from_card.as_ref(),
                            r.card.id,
                        ));
                        tx.change_all(relinked(&session, &r.card, m.from_card.as_ref()));
                    }
                }
                Ok((r.card, r.created))
            }
            CreateFrom::Crm { request_id } => {
                let key = request_id.as_deref().map(|request_id| CreateRequestKey {
                    request_id,
                    fingerprint,
                });
                let (card, created) = contacts::create_in(tx, &session, &draft, key, None).await?;
                if created {
                    tx.change(Change::of(&session, Kind::Created, &card).out());
                }
                Ok((card, created))
            }
        },
    )
    .await
}

/// The two changes of a messaging identity that moved to `to` from the contact whose card
/// after the move is `from` (none for it when that contact is gone).
pub(super) fn relinked(
    session: &Session,
    to: &ContactCard,
    from: Option<&ContactCard>,
) -> Vec<ChangeOut> {
    let mut out = Vec::with_capacity(2);
    if let Some(from) = from {
        out.push(
            Change::of(session, Kind::ChannelRelinked, from)
                .relinked_to(to.id)
                .out(),
        );
        out.push(
            Change::of(session, Kind::ChannelRelinked, to)
                .relinked_from(from.id)
                .out(),
        );
    }
    out
}

/// The phones among `phones` (`(field, number as entered)`) that are not numbers in the
/// caller's domain's region: a request refused for other faults reports them too, rather than
/// after those are fixed. Nothing when the session cannot be read (the other faults stand).
pub async fn phone_faults(
    state: &AppState,
    call: &Call,
    phones: Vec<(String, String)>,
) -> Violations {
    let mut v = Violations::new();
    if phones.is_empty() {
        return v;
    }
    if let Ok((_, session)) = state.session(call).await {
        for (field, raw) in phones {
            let _ = v.check(field, parse_phone(&raw, session.domain.default_region));
        }
    }
    v
}

/// Binds the caller's live interaction to a contact; returns the panel after it.
pub async fn select(
    state: &AppState,
    call: &Call,
    cmd: Select,
) -> Result<pb::ClientInfoPanel, Error> {
    let (mut conn, session) = state.session(call).await?;
    let interaction = tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let selected = binding::select(
            tx,
            &session,
            &cmd.interaction,
            cmd.contact,
            cmd.relink_channel,
        )
        .await?;
        let i = selected.interaction;
        let previous = selected.previous.filter(|p| *p != cmd.contact);
        // The selected card, the card of the contact a relinked identity left, and the one the
        // interaction was bound to before, at once.
        let mut shown = vec![cmd.contact.0];
        shown.extend(selected.relink.as_ref().map(|(from, _)| from.0));
        shown.extend(previous.map(|p| p.0));
        let cards = contacts::load_cards(tx, session.domain.id, &shown).await?;
        let card = cards
            .iter()
            .find(|c| c.id == cmd.contact)
            .ok_or_else(|| Error::contact_not_found(cmd.contact))?;
        tx.emit(events::bound(&i, card, Some(session.caller.user_id)));
        if selected.previous != Some(cmd.contact) {
            tx.change(
                Change::of(&session, Kind::InteractionBound, card)
                    .interaction(&i.external_id)
                    .out(),
            );
        }
        if let Some(was) = previous.and_then(|p| cards.iter().find(|c| c.id == p)) {
            tx.change(
                Change::of(&session, Kind::InteractionUnbound, was)
                    .interaction(&i.external_id)
                    .out(),
            );
        }
        if selected.linked {
            tx.change(Change::of(&session, Kind::CommunicationLinked, card).out());
        }
        if let Some((from, link)) = &selected.relink {
            let from_card = cards.iter().find(|c| c.id == *from);
            tx.emit_all(events::moved(Some(&i), link, *from, from_card, card.id));
            tx.change_all(relinked(&session, card, from_card));
        }
        Ok(i)
    })
    .await?;
    loaders::panel_after(&mut conn, &state.keys, &session, &interaction).await
}

/// Removes the binding of the caller's live interaction (idempotent); returns the panel after
/// it.
pub async fn unbind(
    state: &AppState,
    call: &Call,
    cmd: Unbind,
) -> Result<pb::ClientInfoPanel, Error> {
    let (mut conn, session) = state.session(call).await?;
    let interaction = tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let (i, was) = binding::unbind(tx, &session, &cmd.interaction).await?;
        if let Some(contact) = was {
            tx.emit(events::unbound(&i, contact, session.caller.user_id));
            if let Some(card) = contacts::load_cards(tx, session.domain.id, &[contact.0])
                .await?
                .first()
            {
                tx.change(
                    Change::of(&session, Kind::InteractionUnbound, card)
                        .interaction(&i.external_id)
                        .out(),
                );
            }
        }
        Ok(i)
    })
    .await?;
    loaders::panel_after(&mut conn, &state.keys, &session, &interaction).await
}

/// A page of the contact's interaction history.
pub async fn history(state: &AppState, call: &Call, cmd: History) -> Result<HistoryPage, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let domain = session.domain.id;
    contacts::ensure_exists(&mut conn, domain, cmd.contact).await?;
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX - 1);
    let mut rows =
        interactions::history(&mut conn, domain, cmd.contact, cmd.before, limit + 1).await?;
    let has_more = rows.len() > cmd.limit;
    rows.truncate(cmd.limit);
    let mut user_ids: Vec<i64> = rows
        .iter()
        .flat_map(|b| [Some(b.interaction.agent), b.bound_by, b.unbound_by])
        .flatten()
        .map(|u| u.0)
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users = users::refs(&mut conn, domain, &user_ids).await?;
    let next_page_token = match rows.last() {
        Some(last) if has_more => last.id.to_string(),
        _ => String::new(),
    };
    Ok(HistoryPage {
        rows,
        users,
        next_page_token,
    })
}

/// A read-only link made for the caller: recorded (so it can be listed and revoked) and
/// audited; the signed link, its expiry (Unix seconds) and its id. Within an interaction's
/// scope the contact must be bound to, or found for, that interaction of the caller's.
pub async fn read_only_link(
    state: &AppState,
    call: &Call,
    cmd: ReadOnlyLink,
    scope: Scope,
) -> Result<(String, i64, i64), Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    let id = cmd.contact;
    contacts::ensure_exists(&mut conn, domain, id).await?;
    if let Scope::Interaction(iid) = &scope {
        let i = interactions::find(&conn, domain, iid, false)
            .await?
            .filter(|i| i.agent == session.caller.user_id)
            .ok_or_else(|| Error::interaction_not_found(iid))?;
        let related = i.bound_contact == Some(id)
            || i.identification
                .candidates
                .iter()
                .any(|c| c.contact_id == id.0);
        if !related {
            return Err(Error::PermissionDenied(
                Fault::new(
                    Reason::ContactNotInInteraction,
                    format!("contact {id} is neither bound to nor found for interaction {iid:?}"),
                )
                .about(format!("contact/{id}")),
            ));
        }
    }
    let ttl = chrono::Duration::from_std(READ_ONLY_LINK_TTL)
        .map_err(|e| Error::Internal(format!("link lifetime: {e}")))?;
    let expires_at = chrono::Utc::now() + ttl;
    let interaction = match &scope {
        Scope::Interaction(iid) => Some(iid.as_str()),
        Scope::Domain => None,
    };
    let actor = session.caller.user_id;
    let link_id = tx::write(&mut conn, &state.hub, domain, async |tx| {
        let link_id = card_links::record(tx, domain, id, actor, expires_at).await?;
        tx.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::LinkCreate,
            contact: id,
            interaction,
            before: None,
            after: Some(serde_json::json!({
                "link_id": link_id,
                "expires_at": expires_at.to_rfc3339(),
            })),
        });
        Ok(link_id)
    })
    .await?;
    let (link, expires) =
        state
            .keys
            .sign_card_link(domain, id.0, READ_ONLY_LINK_TTL, Some(link_id))?;
    Ok((link, expires, link_id))
}

/// The card a read-only link opens (a link of another domain opens nothing; a revoked one is
/// LINK_REVOKED). Read on the primary, so that a revocation holds at once everywhere.
pub async fn card_by_link(
    state: &AppState,
    call: &Call,
    link: &str,
) -> Result<(ContactCard, ClientHistory), Error> {
    let link = state
        .keys
        .verify_card_link(link)
        .map_err(|e: CardLinkError| {
            let reason = match e {
                CardLinkError::Expired => Reason::LinkExpired,
                CardLinkError::Invalid => Reason::LinkInvalid,
            };
            Error::PermissionDenied(Fault::new(reason, e.to_string()))
        })?;
    let (mut conn, session) = state.session(call).await?;
    let contact = ContactId(link.contact);
    if link.domain != session.domain.id {
        return Err(Error::contact_not_found(contact));
    }
    card_links::check(&mut conn, link.domain, contact, link.id, link.issued_at).await?;
    let card = contacts::load_card(&mut conn, link.domain, contact).await?;
    let history = history::load(&conn, link.domain, contact, "").await?;
    Ok((card, history))
}

/// ListReadOnlyLinks: a page of a contact's recorded links, newest first.
#[derive(Debug, Clone)]
pub struct ListLinks {
    /// The contact.
    pub contact: ContactId,
    /// The page's links have ids below this (`None`: the first page).
    pub before: Option<i64>,
    /// Links per page.
    pub limit: usize,
}

/// A page of recorded links, the users they name, and the next page's token ("" on the last).
#[derive(Debug, Clone)]
pub struct LinksPage {
    /// The links.
    pub links: Vec<LinkRow>,
    /// The users who made or revoked them, by id.
    pub users: HashMap<i64, UserRef>,
    /// The next page's token.
    pub next_page_token: String,
}

/// The links recorded for a contact (a deleted contact's stay listable; a contact with
/// neither links nor row is unknown).
pub async fn links(state: &AppState, call: &Call, cmd: ListLinks) -> Result<LinksPage, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let domain = session.domain.id;
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX - 1);
    let mut links = card_links::list(&mut conn, domain, cmd.contact, cmd.before, limit + 1).await?;
    if links.is_empty() && cmd.before.is_none() {
        contacts::ensure_exists(&mut conn, domain, cmd.contact).await?;
    }
    let has_more = links.len() > cmd.limit;
    links.truncate(cmd.limit);
    let mut ids: Vec<i64> = links
        .iter()
        .flat_map(|l| [Some(l.created_by), l.revoked_by])
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let users = users::refs(&mut conn, domain, &ids).await?;
    let next_page_token = match links.last() {
        Some(last) if has_more => last.id.to_string(),
        _ => String::new(),
    };
    Ok(LinksPage {
        links,
        users,
        next_page_token,
    })
}

/// Which links RevokeReadOnlyLinks revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// One recorded link.
    One(i64),
    /// Every link to the contact issued until now.
    All,
}

/// RevokeReadOnlyLinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeLinks {
    /// The contact.
    pub contact: ContactId,
    /// Which links.
    pub which: Revoke,
}

/// Revokes one recorded link of the contact (LINK_NOT_FOUND when it is not one of the
/// contact's in the caller's domain; without `may_revoke_any`, only a link the caller made),
/// or every link to it; audited. How many recorded links were valid and are revoked now.
pub async fn revoke_links(
    state: &AppState,
    call: &Call,
    cmd: RevokeLinks,
    may_revoke_any: bool,
) -> Result<i64, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    tx::write(&mut conn, &state.hub, domain, async |tx| {
        let (revoked, after) = match cmd.which {
            Revoke::One(id) => {
                let row = card_links::find(tx, domain, id)
                    .await?
                    .filter(|r| r.contact_id == cmd.contact.0)
                    .ok_or_else(|| {
                        Error::NotFound(
                            Fault::new(
                                Reason::LinkNotFound,
                                format!("contact {} has no read-only link {id}", cmd.contact),
                            )
                            .about(format!("link/{id}")),
                        )
                    })?;
                if !may_revoke_any && row.created_by != actor.0 {
                    return Err(Error::PermissionDenied(
                        Fault::new(
                            Reason::PermissionMissing,
                            "revoking another user's link needs contacts.write",
                        )
                        .with("permission", "contacts.write"),
                    ));
                }
                let revoked = i64::from(card_links::revoke(tx, domain, id, actor).await?);
                (revoked, serde_json::json!({ "link_id": id }))
            }
            Revoke::All => {
                let revoked = card_links::revoke_all(tx, domain, cmd.contact, actor).await?;
                (
                    revoked,
                    serde_json::json!({ "all": true, "revoked": revoked }),
                )
            }
        };
        if revoked > 0 || cmd.which == Revoke::All {
            tx.audit(AuditRecord {
                domain,
                actor,
                action: AuditAction::LinkRevoke,
                contact: cmd.contact,
                interaction: None,
                before: None,
                after: Some(after),
            });
        }
        Ok(revoked)
    })
    .await
}
