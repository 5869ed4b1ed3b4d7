//! The agent's actions on a live interaction (Add, Select, Unbind), and contact creation.

use client_info_proto::pb;

use crate::auth::Caller;
use crate::db::contacts::{self, CreateRequestKey};
use crate::db::domains::Session;
use crate::db::{binding, tx};
use crate::domain::contact::{CommunicationDraft, ContactCard, NewContact};
use crate::domain::ids::ContactId;
use crate::domain::interaction::Interaction;
use crate::domain::permission::Permission;
use crate::error::Error;
use crate::grpc::{AppState, convert, events, panel};
use diesel_async::AsyncPgConnection;

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

/// Creates a contact; from an interaction, binds it (and relinks a chat's identity). Returns
/// the card and whether this request created it (false on a retry).
pub async fn create_contact(
    state: &AppState,
    caller: Caller,
    cmd: CreateContact,
) -> Result<(ContactCard, bool), Error> {
    let (mut conn, session) = state.session(caller).await?;
    let draft = convert::draft(
        cmd.contact,
        cmd.communications,
        caller.user_id,
        session.domain.default_region,
    )?;
    let keys = &state.keys;
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
                    tx.emit_all(events::created(&session, keys, i, &r.card)?);
                    if let Some(m) = &r.relink {
                        tx.emit_all(events::moved_with(
                            &session,
                            keys,
                            Some(i),
                            &m.link,
                            m.from,
                            m.from_card.as_ref(),
                            r.card.id,
                        )?);
                    }
                }
                Ok((r.card, r.created))
            }
            CreateFrom::Crm { request_id } => {
                let key = request_id.as_deref().map(|request_id| CreateRequestKey {
                    request_id,
                    fingerprint,
                });
                contacts::create_in(tx, &session, &draft, key, None).await
            }
        },
    )
    .await
}

/// The panel of `interaction` as the caller now sees it, after an action of theirs.
async fn panel_after(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    session: &Session,
    interaction: &Interaction,
) -> Result<pb::ClientInfoPanel, Error> {
    let size = usize::try_from(convert::DEFAULT_PAGE_SIZE).unwrap_or(20);
    let viewer = panel::Viewer::of(session, &state.keys);
    Ok(panel::build(conn, viewer, interaction, 0, size).await?.0)
}

/// Binds the caller's live interaction to a contact; returns the panel after it.
pub async fn select(
    state: &AppState,
    caller: Caller,
    cmd: Select,
) -> Result<pb::ClientInfoPanel, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let keys = &state.keys;
    let interaction = tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let (i, relink) = binding::select(
            tx,
            &session,
            &cmd.interaction,
            cmd.contact,
            cmd.relink_channel,
        )
        .await?;
        // The selected card, and the card of the contact a relinked identity left, at once.
        let mut shown = vec![cmd.contact.0];
        shown.extend(relink.as_ref().map(|(from, _)| from.0));
        let cards = contacts::load_cards(tx, session.domain.id, &shown).await?;
        let card = cards
            .iter()
            .find(|c| c.id == cmd.contact)
            .ok_or_else(|| Error::contact_not_found(cmd.contact))?;
        tx.emit(events::bound(
            &session,
            keys,
            &i,
            card,
            Some(caller.user_id),
        )?);
        if let Some((from, link)) = &relink {
            let from_card = cards.iter().find(|c| c.id == *from);
            tx.emit_all(events::moved_with(
                &session,
                keys,
                Some(&i),
                link,
                *from,
                from_card,
                card.id,
            )?);
        }
        Ok(i)
    })
    .await?;
    panel_after(&mut conn, state, &session, &interaction).await
}

/// Removes the binding of the caller's live interaction (idempotent); returns the panel after
/// it.
pub async fn unbind(
    state: &AppState,
    caller: Caller,
    cmd: Unbind,
) -> Result<pb::ClientInfoPanel, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let interaction = tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let (i, was) = binding::unbind(tx, &session, &cmd.interaction).await?;
        if let Some(contact) = was {
            tx.emit(events::out(
                vec![i.agent],
                pb::agent_event::Event::ContactUnbound(pb::ContactUnbound {
                    interaction_id: i.external_id.clone(),
                    contact_id: contact.0,
                    unbound_by: Some(pb::UserRef {
                        id: caller.user_id.0,
                        name: String::new(),
                    }),
                }),
            ));
        }
        Ok(i)
    })
    .await?;
    panel_after(&mut conn, state, &session, &interaction).await
}
