//! The agent's actions on a live interaction: create a contact from it, select (bind) a
//! contact, unbind. Each runs in the caller's unit of work and locks the interaction first, so concurrent
//! actions on it are serialised, and audits every change.

use diesel_async::AsyncPgConnection;

use super::communications::LinkOutcome;
use super::contacts::{self, CreateRequestKey, Created};
use super::interactions;
use super::tx::Tx;
use crate::domain::contact::ContactDraft;
use crate::domain::contact::{ChannelLink, Communication, ContactCard};
use crate::domain::ids::ContactId;
use crate::domain::interaction::{Destination, Interaction};
use crate::domain::phone::parse_phone;
use crate::domain::session::Session;
use crate::error::{Error, Reason};

/// Locks the caller's interaction and checks that it is live: NOT_FOUND when missing or
/// offered to another agent, FAILED_PRECONDITION unless accepted.
pub async fn lock_live(
    conn: &AsyncPgConnection,
    session: &Session,
    external_id: &str,
) -> Result<Interaction, Error> {
    let interaction = interactions::find(conn, session.domain.id, external_id, true)
        .await?
        .filter(|i| i.agent == session.caller.user_id)
        .ok_or_else(|| Error::interaction_not_found(external_id))?;
    interaction.require_accepted(
        "contacts can be added, selected or unbound once it is accepted and until it is closed",
    )?;
    Ok(interaction)
}

/// A messaging identity that moved: from which contact, and the link.
pub type Relink = Option<(ContactId, ChannelLink)>;

/// A messaging identity that moved to a new contact, with the card of the contact it left.
#[derive(Debug, Clone)]
pub struct Moved {
    /// The contact that held it.
    pub from: ContactId,
    /// The identity.
    pub link: ChannelLink,
    /// That contact's card after the move.
    pub from_card: Option<ContactCard>,
}

fn relink_of(outcome: LinkOutcome) -> Relink {
    match outcome {
        LinkOutcome::Relinked { from, link } => Some((from, link)),
        LinkOutcome::Linked | LinkOutcome::AlreadyLinked => None,
    }
}

/// What creating from an interaction did.
#[derive(Debug, Clone)]
pub struct CreatedFrom {
    /// The contact.
    pub card: ContactCard,
    /// False on a retry.
    pub created: bool,
    /// The interaction, after the binding (`None` on a retry).
    pub interaction: Option<Interaction>,
    /// The chat identity that moved to the new contact.
    pub relink: Option<Moved>,
    /// The contact the interaction was bound to before (`None`: unbound, or a retry).
    pub previous: Option<ContactId>,
}

/// Creates a contact from a live interaction: a chat's identity moves to it (relinked from any
/// other contact), a call is bound to it and its number is linked only when asked. Idempotent
/// on the request key: a retry returns the first contact and changes nothing.
pub async fn create_from_interaction(
    conn: &mut Tx<'_>,
    session: &Session,
    draft: &ContactDraft,
    key: CreateRequestKey<'_>,
    external_id: &str,
    link_caller_number: bool,
) -> Result<CreatedFrom, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        // Both reads in one round trip. A retry returns what the first request made, even once
        // the interaction has ended.
        let (earlier, live) = {
            let c: &AsyncPgConnection = conn;
            futures_util::join!(
                contacts::earlier(c, domain, key),
                lock_live(c, session, external_id)
            )
        };
        if let Some(id) = earlier? {
            let card = contacts::load_card(conn, domain, id).await?;
            return Ok(CreatedFrom {
                card,
                created: false,
                interaction: None,
                relink: None,
                previous: None,
            });
        }
        let interaction = live?;
        let extra = match (&interaction.destination, link_caller_number) {
            (Destination::Chat(identity), _) => Some(Communication::Channel(identity.clone())),
            (
                Destination::Call {
                    number: Some(number),
                },
                true,
            ) => {
                let parsed = parse_phone(number, session.domain.default_region).map_err(|e| {
                    Error::invalid("link_caller_number", format!("the caller's number {e}"))
                })?;
                Some(Communication::Phone {
                    raw: number.clone(),
                    parsed,
                })
            }
            (Destination::Call { number: None }, true) => {
                return Err(Error::precondition(
                    Reason::CallerNumberHidden,
                    format!("interaction/{}", interaction.external_id),
                    "the caller's number is hidden; there is nothing to link",
                ));
            }
            (Destination::Call { .. }, false) => None,
        };
        let id = match contacts::insert_contact(conn, session, draft, Some(key)).await? {
            Created::Replayed(id) => {
                let card = contacts::load_card(conn, domain, id).await?;
                return Ok(CreatedFrom {
                    card,
                    created: false,
                    interaction: None,
                    relink: None,
                    previous: None,
                });
            }
            Created::New(id) => id,
        };
        let mut relink = None;
        if let Some(communication) = &extra {
            relink = relink_of(
                contacts::link_and_relink(
                    conn,
                    domain,
                    actor,
                    id,
                    communication,
                    true,
                    Some(external_id),
                )
                .await?,
            );
        }
        // The new card, and the card of the contact the identity moved from, in one statement.
        let mut shown = vec![id.0];
        shown.extend(relink.as_ref().map(|(from, _)| from.0));
        let mut cards = contacts::load_cards(conn, domain, &shown).await?;
        let from_card = relink
            .as_ref()
            .and_then(|(from, _)| cards.iter().position(|c| c.id == *from))
            .map(|at| cards.swap_remove(at));
        let card = cards
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::contact_not_found(id))?;
        contacts::audit_created_card(conn, session, &card, Some(external_id))?;
        interactions::bind(
            conn,
            domain,
            interaction.id,
            external_id,
            interaction.bound_contact,
            id,
            actor,
            Some(actor),
        )
        .await?;
        let relink = relink.map(|(from, link)| Moved {
            from,
            link,
            from_card,
        });
        let previous = interaction.bound_contact;
        Ok(CreatedFrom {
            card,
            created: true,
            previous,
            interaction: Some(Interaction {
                bound_contact: Some(id),
                ..interaction
            }),
            relink,
        })
    }
}

/// What a selection did.
#[derive(Debug)]
pub struct Selected {
    /// The interaction after it.
    pub interaction: Interaction,
    /// The chat identity that moved to the contact.
    pub relink: Relink,
    /// The chat identity was linked to the contact (from no other contact).
    pub linked: bool,
    /// The contact the interaction was bound to before (`None`: unbound).
    pub previous: Option<ContactId>,
}

/// Binds the caller's live interaction to `contact` (rebinding from another contact keeps both
/// in the history). For chats, `relink_channel` also moves the chat's identity to the contact.
pub async fn select(
    conn: &mut Tx<'_>,
    session: &Session,
    external_id: &str,
    contact: ContactId,
    relink_channel: bool,
) -> Result<Selected, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        let interaction = lock_live(conn, session, external_id).await?;
        if relink_channel && !matches!(interaction.destination, Destination::Chat(_)) {
            return Err(Error::invalid(
                "relink_channel",
                "only chats have a channel to relink",
            ));
        }
        // Held until commit, so a merge cannot take the contact away before the binding is
        // written (one that is under way is waited for, then named: CONTACT_MERGED).
        contacts::lock_shared(conn, domain, contact).await?;
        let mut relink = None;
        let mut linked = false;
        // A chat identified by the number its identity carries links the identity to the
        // contact it is bound to, as a relink would.
        let link_identity = relink_channel || interaction.chat_identified_by_number();
        if let (Destination::Chat(identity), true) = (&interaction.destination, link_identity) {
            let outcome =
                contacts::link_chat_identity(conn, domain, actor, contact, identity, external_id)
                    .await?;
            linked = outcome == LinkOutcome::Linked;
            relink = relink_of(outcome);
        }
        interactions::bind(
            conn,
            domain,
            interaction.id,
            external_id,
            interaction.bound_contact,
            contact,
            actor,
            Some(actor),
        )
        .await?;
        let previous = interaction.bound_contact;
        Ok(Selected {
            interaction: Interaction {
                bound_contact: Some(contact),
                ..interaction
            },
            relink,
            linked,
            previous,
        })
    }
}

/// Removes the binding of the caller's live interaction (idempotent); returns the contact it
/// was bound to, if any.
pub async fn unbind(
    conn: &mut Tx<'_>,
    session: &Session,
    external_id: &str,
) -> Result<(Interaction, Option<ContactId>), Error> {
    let domain = session.domain.id;
    {
        let interaction = lock_live(conn, session, external_id).await?;
        let was = interactions::unbind(
            conn,
            domain,
            interaction.id,
            external_id,
            session.caller.user_id,
        )
        .await?;
        let interaction = interactions::find(conn, domain, external_id, false)
            .await?
            .ok_or_else(|| Error::interaction_not_found(external_id))?;
        Ok((interaction, was))
    }
}
