//! Session events: what each change tells which agents (published by the change's unit of
//! work, [`crate::db::tx`]), and how a stored event is shown to one watcher.
//!
//! Events are stored with full cards; a watcher without `contacts.read` gets summaries with
//! read-only links instead, at delivery, so one stored event serves every watcher.

use client_info_proto::pb;
use diesel_async::AsyncPgConnection;
use prost::Message as _;

use super::{convert, panel};
use crate::auth::TokenKeys;
use crate::db::domains::Session;
use crate::db::outbox::{Outgoing, Recipients, StoredEvent};
use crate::domain::contact::{ChannelLink, ContactCard};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::Interaction;
use crate::error::Error;

use pb::agent_event::Event;

/// Candidates carried by offer and identification events.
const EVENT_CANDIDATES: usize = 20;

/// The stored form of an event (its sequence and time are set at delivery).
pub fn encode(event: Event) -> Vec<u8> {
    pb::AgentEvent {
        sequence: 0,
        occurred_at: None,
        event: Some(event),
    }
    .encode_to_vec()
}

/// An outgoing event for `recipients`.
pub fn out(recipients: Vec<UserId>, event: Event) -> Outgoing {
    Outgoing::to(recipients, encode(event))
}

/// An outgoing event for the agents whose open interactions have one of `contacts` bound or
/// as a candidate when the change commits, and for `agents`.
pub fn concerning(contacts: Vec<ContactId>, agents: Vec<UserId>, event: Event) -> Outgoing {
    Outgoing {
        recipients: Recipients {
            agents,
            concerned_with: contacts,
        },
        payload: encode(event),
    }
}

fn full<'a>(session: &Session, keys: &'a TokenKeys) -> panel::Viewer<'a> {
    panel::Viewer {
        full: true,
        keys,
        domain: session.domain.id,
    }
}

/// InteractionOffered (with the panel) and ContactIdentified, for the interaction's agent.
pub async fn offered(
    conn: &mut AsyncPgConnection,
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
) -> Result<Vec<Outgoing>, Error> {
    let (panel, _) =
        panel::build(conn, full(session, keys), interaction, 0, EVENT_CANDIDATES).await?;
    Ok(offered_with(interaction, panel))
}

/// The contacts the offer's events show ([`offered_panel`] needs their cards).
pub fn offered_contacts(interaction: &Interaction) -> Vec<i64> {
    panel::contacts_shown(interaction, 0, EVENT_CANDIDATES)
}

/// The panel the offer's events carry, from the cards of [`offered_contacts`].
pub fn offered_panel(
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
    cards: &std::collections::HashMap<i64, ContactCard>,
    agent: &crate::domain::contact::UserRef,
) -> Result<pb::ClientInfoPanel, Error> {
    Ok(panel::render(
        full(session, keys),
        interaction,
        cards,
        Some(agent),
        0,
        EVENT_CANDIDATES,
    )?
    .0)
}

/// ContactIdentified and InteractionOffered carrying `panel`, for the interaction's agent.
pub fn offered_with(interaction: &Interaction, panel: pb::ClientInfoPanel) -> Vec<Outgoing> {
    let to = vec![interaction.agent];
    vec![
        out(
            to.clone(),
            Event::ContactIdentified(pb::ContactIdentified {
                interaction_id: interaction.external_id.clone(),
                identification: panel.identification.clone(),
                candidates: panel.candidates.clone(),
            }),
        ),
        out(
            to,
            Event::InteractionOffered(pb::InteractionOffered { panel: Some(panel) }),
        ),
    ]
}

/// ContactBound, for the interaction's agent.
pub fn bound(
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
    card: &ContactCard,
    by: Option<UserId>,
) -> Result<Outgoing, Error> {
    Ok(out(
        vec![interaction.agent],
        Event::ContactBound(pb::ContactBound {
            interaction_id: interaction.external_id.clone(),
            contact: Some(full(session, keys).view(card)?),
            bound_by: by.map(|u| pb::UserRef {
                id: u.0,
                name: String::new(),
            }),
        }),
    ))
}

/// ContactCreated and ContactBound, for the agent of the interaction the contact was created
/// from.
pub fn created(
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
    card: &ContactCard,
) -> Result<Vec<Outgoing>, Error> {
    Ok(vec![
        out(
            vec![interaction.agent],
            Event::ContactCreated(pb::ContactCreated {
                interaction_id: interaction.external_id.clone(),
                contact: Some(full(session, keys).view(card)?),
            }),
        ),
        bound(
            session,
            keys,
            interaction,
            card,
            Some(session.caller.user_id),
        )?,
    ])
}

/// ChannelRelinked plus ContactUpdated for the contact that lost the identity.
pub async fn moved(
    conn: &mut AsyncPgConnection,
    session: &Session,
    keys: &TokenKeys,
    interaction: Option<&Interaction>,
    relink: &Option<(ContactId, ChannelLink)>,
    to: ContactId,
) -> Result<Vec<Outgoing>, Error> {
    let Some((from, link)) = relink else {
        return Ok(Vec::new());
    };
    let from_card = crate::db::contacts::load_card(conn, session.domain.id, *from).await?;
    moved_with(
        session,
        keys,
        interaction,
        link,
        *from,
        Some(&from_card),
        to,
    )
}

/// [`moved`] with the card of the contact that lost the identity already loaded (`None`: it
/// is gone, only the move is told).
pub fn moved_with(
    session: &Session,
    keys: &TokenKeys,
    interaction: Option<&Interaction>,
    link: &ChannelLink,
    from: ContactId,
    from_card: Option<&ContactCard>,
    to: ContactId,
) -> Result<Vec<Outgoing>, Error> {
    let mut events = vec![relinked(interaction, link, from, to)];
    if let Some(card) = from_card {
        events.push(updated(session, keys, card)?);
    }
    Ok(events)
}

/// ContactUpdated, to the agents whose open interactions have the contact bound or as a
/// candidate.
pub fn updated(session: &Session, keys: &TokenKeys, card: &ContactCard) -> Result<Outgoing, Error> {
    Ok(concerning(
        vec![card.id],
        Vec::new(),
        Event::ContactUpdated(pb::ContactUpdated {
            contact: Some(full(session, keys).view(card)?),
        }),
    ))
}

/// ChannelRelinked, to the interaction's agent (if any) and the agents concerned with either
/// contact.
pub fn relinked(
    interaction: Option<&Interaction>,
    link: &ChannelLink,
    from: ContactId,
    to: ContactId,
) -> Outgoing {
    concerning(
        vec![from, to],
        interaction.map(|i| i.agent).into_iter().collect(),
        Event::ChannelRelinked(pb::ChannelRelinked {
            interaction_id: interaction
                .map(|i| i.external_id.clone())
                .unwrap_or_default(),
            messaging_channel: Some(pb::MessagingChannel {
                id: link.id,
                protocol: link.identity.protocol.clone(),
                external_user_id: link.identity.external_user_id.clone(),
                display_name: link.identity.display_name.clone(),
            }),
            from_contact_id: from.0,
            to_contact_id: to.0,
        }),
    )
}

/// One event per agent of `touched`, naming that agent's interactions (so no agent learns
/// another's).
fn per_agent(
    touched: &[crate::db::merge::Touched],
    event: impl Fn(Vec<String>) -> Event,
) -> Vec<Outgoing> {
    let mut by_agent: std::collections::BTreeMap<UserId, Vec<String>> = Default::default();
    for t in touched {
        by_agent
            .entry(t.agent)
            .or_default()
            .push(t.external_id.clone());
    }
    by_agent
        .into_iter()
        .map(|(agent, ids)| out(vec![agent], event(ids)))
        .collect()
}

/// ContactMerged for each agent whose open interactions showed a merged contact, and
/// ContactUpdated (the survivor's card) for the agents that show the survivor.
pub fn merged(
    session: &Session,
    keys: &TokenKeys,
    merged: &crate::db::merge::Merged,
) -> Result<Vec<Outgoing>, Error> {
    let survivor = full(session, keys).view(&merged.survivor)?;
    let ids: Vec<i64> = merged.merged.iter().map(|c| c.0).collect();
    let mut events = per_agent(&merged.touched, |interaction_ids| {
        Event::ContactMerged(pb::ContactMerged {
            merge_id: merged.merge_id,
            survivor: Some(survivor.clone()),
            merged_contact_ids: ids.clone(),
            interaction_ids,
        })
    });
    events.push(updated(session, keys, &merged.survivor)?);
    Ok(events)
}

/// ContactUnmerged for each agent whose open interactions went back to a restored contact, and
/// ContactUpdated (the survivor's card) for the agents that show the survivor.
pub fn unmerged(
    session: &Session,
    keys: &TokenKeys,
    undone: &crate::db::merge::Unmerged,
) -> Result<Vec<Outgoing>, Error> {
    let viewer = full(session, keys);
    let survivor = viewer.view(&undone.survivor)?;
    let restored = undone
        .restored
        .iter()
        .map(|c| viewer.view(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = per_agent(&undone.touched, |interaction_ids| {
        Event::ContactUnmerged(pb::ContactUnmerged {
            merge_id: undone.merge_id,
            survivor: Some(survivor.clone()),
            restored: restored.clone(),
            interaction_ids,
        })
    });
    events.push(updated(session, keys, &undone.survivor)?);
    Ok(events)
}

fn reduce(view: &mut Option<pb::ContactView>, viewer: &panel::Viewer<'_>) -> Result<(), Error> {
    if viewer.full {
        return Ok(());
    }
    if let Some(pb::ContactView {
        view: Some(pb::contact_view::View::Contact(c)),
    }) = view
    {
        let (link, _) =
            viewer
                .keys
                .sign_card_link(viewer.domain, c.id, crate::auth::READ_ONLY_LINK_TTL)?;
        *view = Some(pb::ContactView {
            view: Some(pb::contact_view::View::Summary(pb::ContactSummary {
                id: c.id,
                display_name: std::mem::take(&mut c.display_name),
                labels: std::mem::take(&mut c.labels),
                read_only_link: link,
            })),
        });
    }
    Ok(())
}

fn reduce_panel(p: &mut pb::ClientInfoPanel, viewer: &panel::Viewer<'_>) -> Result<(), Error> {
    reduce(&mut p.bound_contact, viewer)?;
    for c in &mut p.candidates {
        reduce(&mut c.contact, viewer)?;
    }
    Ok(())
}

/// A stored event as `viewer` may see it, with its sequence and time.
pub fn render(stored: &StoredEvent, viewer: &panel::Viewer<'_>) -> Result<pb::AgentEvent, Error> {
    let mut event = pb::AgentEvent::decode(stored.payload.as_slice())
        .map_err(|e| Error::Internal(format!("event {} unreadable: {e}", stored.sequence)))?;
    event.sequence = stored.sequence;
    event.occurred_at = Some(convert::timestamp(stored.occurred_at));
    match &mut event.event {
        Some(Event::InteractionOffered(o)) => {
            if let Some(p) = &mut o.panel {
                reduce_panel(p, viewer)?;
            }
        }
        Some(Event::ContactIdentified(i)) => {
            for c in &mut i.candidates {
                reduce(&mut c.contact, viewer)?;
            }
        }
        Some(Event::ContactCreated(c)) => reduce(&mut c.contact, viewer)?,
        Some(Event::ContactBound(b)) => reduce(&mut b.contact, viewer)?,
        Some(Event::ContactUpdated(u)) => reduce(&mut u.contact, viewer)?,
        Some(Event::ContactMerged(m)) => reduce(&mut m.survivor, viewer)?,
        Some(Event::ContactUnmerged(u)) => {
            reduce(&mut u.survivor, viewer)?;
            for r in &mut u.restored {
                let mut view = Some(std::mem::take(r));
                reduce(&mut view, viewer)?;
                *r = view.unwrap_or_default();
            }
        }
        Some(Event::Snapshot(s)) => {
            for p in &mut s.panels {
                reduce_panel(p, viewer)?;
            }
        }
        Some(
            Event::Heartbeat(_)
            | Event::InteractionAccepted(_)
            | Event::InteractionClosed(_)
            | Event::InteractionTransferredAway(_)
            | Event::ContactUnbound(_)
            | Event::ChannelRelinked(_)
            | Event::ContactDeleted(_),
        )
        | None => {}
    }
    Ok(event)
}
