//! The agent's actions on a live interaction: create a contact from it, select (bind) a
//! contact, unbind. Each runs in the caller's unit of work and locks the interaction first, so concurrent
//! actions on it are serialised, and audits every change.

use diesel_async::AsyncPgConnection;

use super::communications::LinkOutcome;
use super::contacts::{self, ContactDraft, CreateRequestKey, Created};
use super::domains::Session;
use super::interactions;
use super::tx::Tx;
use crate::domain::contact::{ChannelLink, Communication, ContactCard};
use crate::domain::ids::ContactId;
use crate::domain::interaction::{Destination, Interaction, InteractionState};
use crate::domain::phone::parse_phone;
use crate::error::{Error, Reason};

/// Locks the caller's interaction and checks that it is live: NOT_FOUND when missing or
/// offered to another agent, FAILED_PRECONDITION unless accepted.
pub async fn lock_live(
    conn: &mut AsyncPgConnection,
    session: &Session,
    external_id: &str,
) -> Result<Interaction, Error> {
    let interaction = interactions::find(conn, session.domain.id, external_id, true)
        .await?
        .filter(|i| i.agent == session.caller.user_id)
        .ok_or_else(|| Error::interaction_not_found(external_id))?;
    if interaction.state != InteractionState::Accepted {
        return Err(Error::precondition(
            if interaction.state == InteractionState::Closed {
                Reason::InteractionClosed
            } else {
                Reason::InteractionNotAccepted
            },
            format!("interaction/{external_id}"),
            format!(
                "interaction {external_id:?} is {}; contacts can be added, selected or unbound once it is accepted and until it is closed",
                interaction.state.as_str()
            ),
        ));
    }
    Ok(interaction)
}

/// A messaging identity that moved: from which contact, and the link.
pub type Relink = Option<(ContactId, ChannelLink)>;

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
    pub relink: Relink,
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
        // A retry returns what the first request made, even once the interaction has ended.
        if let Some(id) = contacts::earlier(conn, domain, key).await? {
            let card = contacts::load_card(conn, domain, id).await?;
            return Ok(CreatedFrom {
                card,
                created: false,
                interaction: None,
                relink: None,
            });
        }
        let interaction = lock_live(conn, session, external_id).await?;
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
        let card = contacts::audit_created(conn, session, id, Some(external_id)).await?;
        interactions::bind(
            conn,
            domain,
            interaction.id,
            external_id,
            id,
            actor,
            Some(actor),
        )
        .await?;
        let interaction = interactions::find(conn, domain, external_id, false).await?;
        Ok(CreatedFrom {
            card,
            created: true,
            interaction,
            relink,
        })
    }
}

/// Binds the caller's live interaction to `contact` (rebinding from another contact keeps both
/// in the history). For chats, `relink_channel` also moves the chat's identity to the contact.
pub async fn select(
    conn: &mut Tx<'_>,
    session: &Session,
    external_id: &str,
    contact: ContactId,
    relink_channel: bool,
) -> Result<(Interaction, Relink), Error> {
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
        if let (Destination::Chat(identity), true) = (&interaction.destination, relink_channel) {
            super::communications::lock_identity(conn, domain, identity).await?;
            contacts::lock(conn, domain, contact, None).await?;
            let outcome = contacts::link_and_relink(
                conn,
                domain,
                actor,
                contact,
                &Communication::Channel(identity.clone()),
                true,
                Some(external_id),
            )
            .await?;
            if outcome != LinkOutcome::AlreadyLinked {
                contacts::touch_version(conn, domain, contact, actor).await?;
            }
            relink = relink_of(outcome);
        }
        interactions::bind(
            conn,
            domain,
            interaction.id,
            external_id,
            contact,
            actor,
            Some(actor),
        )
        .await?;
        let interaction = interactions::find(conn, domain, external_id, false)
            .await?
            .ok_or_else(|| Error::interaction_not_found(external_id))?;
        Ok((interaction, relink))
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
