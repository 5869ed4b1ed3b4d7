//! Session events: what each change tells which agents (the change's unit of work,
//! [`crate::db::tx`], stores them), and how a stored event is shown to one watcher.
//!
//! Events are stored with full cards; a watcher without `contacts.read` gets summaries with
//! read-only links instead, at delivery ([`render`]), so one stored event serves every
//! watcher. Every constructor here takes what the change already holds: none reads the
//! database (the application layer loads what an event shows).

use std::collections::{BTreeMap, HashMap};

use client_info_proto::pb;
use prost::Message as _;

use super::encode;
use super::panel::{self, Viewer};
use crate::auth::TokenKeys;
use crate::db::merge::{Merged, Touched, Unmerged};
use crate::db::outbox::{Outgoing, Recipients, StoredEvent};
use crate::domain::contact::{ChannelLink, ContactCard, UserRef};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::{ClientHistory, Interaction};
use crate::domain::session::Session;
use crate::error::Error;

use pb::agent_event::Event;

/// Candidates carried by offer and identification events.
pub const EVENT_CANDIDATES: usize = 20;

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
fn out(recipients: Vec<UserId>, event: Event) -> Outgoing {
    concerning(Vec::new(), recipients, event)
}

/// An outgoing event for the agents whose open interactions have one of `contacts` bound or
/// as a candidate when the change commits, and for `agents`.
fn concerning(contacts: Vec<ContactId>, agents: Vec<UserId>, event: Event) -> Outgoing {
    Outgoing {
        recipients: Recipients {
            agents,
            concerned_with: contacts,
        },
        payload: encode(event),
    }
}

/// A user named by id alone (events carry no names the change did not read).
fn user(id: UserId) -> pb::UserRef {
    pb::UserRef {
        id: id.0,
        name: String::new(),
    }
}

/// The events of a first offer, for the interaction's agent: ContactIdentified and
/// InteractionOffered carrying the panel rendered from `cards` (those of the contacts it
/// shows, the interaction's [`Interaction::contacts_shown`] with [`EVENT_CANDIDATES`]; full
/// cards: the watcher's view is applied at delivery), then ContactBound when it was
/// autolinked.
pub fn first_offer(
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
    cards: &HashMap<i64, ContactCard>,
    agent: &UserRef,
    history: Option<&ClientHistory>,
) -> Result<Vec<Outgoing>, Error> {
    let viewer = Viewer {
        full: true,
        keys,
        domain: session.domain.id,
    };
    let (panel, _) = panel::render(
        viewer,
        interaction,
        cards,
        Some(agent),
        history,
        0,
        EVENT_CANDIDATES,
    )?;
    let mut events = offered(interaction, panel);
    let bound_card = interaction.bound_contact.and_then(|c| cards.get(&c.0));
    events.extend(bound_card.map(|card| bound(interaction, card, None)));
    Ok(events)
}

/// ContactIdentified and InteractionOffered carrying `panel`, for the interaction's agent.
pub fn offered(interaction: &Interaction, panel: pb::ClientInfoPanel) -> Vec<Outgoing> {
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

/// InteractionTransferredAway, for the agent the interaction was moved from.
pub fn transferred_away(previous: UserId, interaction: &Interaction) -> Outgoing {
    out(
        vec![previous],
        Event::InteractionTransferredAway(pb::InteractionTransferredAway {
            interaction_id: interaction.external_id.clone(),
            to_agent: Some(user(interaction.agent)),
        }),
    )
}

/// The stored form of InteractionAccepted (its statement addresses it to the agent).
pub fn accepted(external_id: &str) -> Vec<u8> {
    encode(Event::InteractionAccepted(pb::InteractionAccepted {
        interaction_id: external_id.to_owned(),
    }))
}

/// The stored form of InteractionClosed (its statement addresses it to the agent).
pub fn closed(external_id: &str) -> Vec<u8> {
    encode(Event::InteractionClosed(pb::InteractionClosed {
        interaction_id: external_id.to_owned(),
    }))
}

/// ContactBound, for the interaction's agent; `by` is `None` for autolink.
pub fn bound(interaction: &Interaction, card: &ContactCard, by: Option<UserId>) -> Outgoing {
    out(
        vec![interaction.agent],
        Event::ContactBound(pb::ContactBound {
            interaction_id: interaction.external_id.clone(),
            contact: Some(panel::full(card)),
            bound_by: by.map(user),
        }),
    )
}

/// ContactUnbound, for the interaction's agent.
pub fn unbound(interaction: &Interaction, contact: ContactId, by: UserId) -> Outgoing {
    out(
        vec![interaction.agent],
        Event::ContactUnbound(pb::ContactUnbound {
            interaction_id: interaction.external_id.clone(),
            contact_id: contact.0,
            unbound_by: Some(user(by)),
        }),
    )
}

/// ContactCreated and ContactBound, for the agent of the interaction the contact was created
/// from by `by`.
pub fn created(interaction: &Interaction, card: &ContactCard, by: UserId) -> Vec<Outgoing> {
    vec![
        out(
            vec![interaction.agent],
            Event::ContactCreated(pb::ContactCreated {
                interaction_id: interaction.external_id.clone(),
                contact: Some(panel::full(card)),
            }),
        ),
        bound(interaction, card, Some(by)),
    ]
}

/// ChannelRelinked, plus ContactUpdated for the contact that lost the identity when its card
/// is given (`None`: it was not loaded, or is gone).
pub fn moved(
    interaction: Option<&Interaction>,
    link: &ChannelLink,
    from: ContactId,
    from_card: Option<&ContactCard>,
    to: ContactId,
) -> Vec<Outgoing> {
    let mut events = vec![relinked(interaction, link, from, to)];
    events.extend(from_card.map(updated));
    events
}

/// ContactUpdated, to the agents whose open interactions have the contact bound or as a
/// candidate.
pub fn updated(card: &ContactCard) -> Outgoing {
    concerning(
        vec![card.id],
        Vec::new(),
        Event::ContactUpdated(pb::ContactUpdated {
            contact: Some(panel::full(card)),
        }),
    )
}

/// ContactDeleted, to `agents` (those concerned with the contact before it went).
pub fn deleted(agents: Vec<UserId>, contact: ContactId) -> Outgoing {
    out(
        agents,
        Event::ContactDeleted(pb::ContactDeleted {
            contact_id: contact.0,
        }),
    )
}

/// ChannelRelinked, to the interaction's agent (if any) and the agents concerned with either
/// contact.
fn relinked(
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
            messaging_channel: Some(encode::channel(link)),
            from_contact_id: from.0,
            to_contact_id: to.0,
        }),
    )
}

/// One event per agent of `touched`, naming that agent's interactions (so no agent learns
/// another's).
fn per_agent(touched: &[Touched], event: impl Fn(Vec<String>) -> Event) -> Vec<Outgoing> {
    let mut by_agent: BTreeMap<UserId, Vec<String>> = BTreeMap::new();
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
pub fn merged(merged: &Merged) -> Vec<Outgoing> {
    let survivor = panel::full(&merged.survivor);
    let ids: Vec<i64> = merged.merged.iter().map(|c| c.0).collect();
    let mut events = per_agent(&merged.touched, |interaction_ids| {
        Event::ContactMerged(pb::ContactMerged {
            merge_id: merged.merge_id,
            survivor: Some(survivor.clone()),
            merged_contact_ids: ids.clone(),
            interaction_ids,
        })
    });
    events.push(updated(&merged.survivor));
    events
}

/// ContactUnmerged for each agent whose open interactions went back to a restored contact, and
/// ContactUpdated (the survivor's card) for the agents that show the survivor.
pub fn unmerged(undone: &Unmerged) -> Vec<Outgoing> {
    let survivor = panel::full(&undone.survivor);
    let restored: Vec<pb::ContactView> = undone.restored.iter().map(panel::full).collect();
    let mut events = per_agent(&undone.touched, |interaction_ids| {
        Event::ContactUnmerged(pb::ContactUnmerged {
            merge_id: undone.merge_id,
            survivor: Some(survivor.clone()),
            restored: restored.clone(),
            interaction_ids,
        })
    });
    events.push(updated(&undone.survivor));
    events
}

/// A stored full card as `viewer` may see it.
fn reduce(view: &mut Option<pb::ContactView>, viewer: &Viewer<'_>) -> Result<(), Error> {
    if viewer.full {
        return Ok(());
    }
    if let Some(pb::ContactView {
        view: Some(pb::contact_view::View::Contact(c)),
    }) = view
    {
        let (link, _) = viewer.keys.sign_card_link(
            viewer.domain,
            c.id,
            crate::auth::READ_ONLY_LINK_TTL,
            None,
        )?;
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

fn reduce_panel(p: &mut pb::ClientInfoPanel, viewer: &Viewer<'_>) -> Result<(), Error> {
    reduce(&mut p.bound_contact, viewer)?;
    for c in &mut p.candidates {
        reduce(&mut c.contact, viewer)?;
    }
    Ok(())
}

/// A stored event as `viewer` may see it, with its sequence and time.
pub fn render(stored: &StoredEvent, viewer: &Viewer<'_>) -> Result<pb::AgentEvent, Error> {
    let mut event = pb::AgentEvent::decode(stored.payload.as_slice())
        .map_err(|e| Error::Internal(format!("event {} unreadable: {e}", stored.sequence)))?;
    event.sequence = stored.sequence;
    event.occurred_at = Some(encode::timestamp(stored.occurred_at));
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

/// A heartbeat at `now`, for an idle stream.
pub fn heartbeat(now: chrono::DateTime<chrono::Utc>) -> pb::AgentEvent {
    pb::AgentEvent {
        sequence: 0,
        occurred_at: Some(encode::timestamp(now)),
        event: Some(Event::Heartbeat(pb::Heartbeat {})),
    }
}

/// The snapshot a fresh stream starts with: the agent's open panels, at position `last`.
pub fn snapshot(
    last: i64,
    now: chrono::DateTime<chrono::Utc>,
    panels: Vec<pb::ClientInfoPanel>,
) -> pb::AgentEvent {
    pb::AgentEvent {
        sequence: last,
        occurred_at: Some(encode::timestamp(now)),
        event: Some(Event::Snapshot(pb::SessionSnapshot { panels })),
    }
}
