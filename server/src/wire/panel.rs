//! The Client info panel of one interaction, as the calling agent may see it, rendered from
//! loaded cards (no queries: the application layer loads what
//! [`Interaction::contacts_shown`] names).
//! Shared by GetClientInfo, the binding RPCs, the offer's events and the session stream.

use std::collections::HashMap;

use client_info_proto::pb;

use super::encode;
use crate::auth::{READ_ONLY_LINK_TTL, TokenKeys};
use crate::domain::contact::{ContactCard, UserRef};
use crate::domain::identify::{Candidate, LinkKind};
use crate::domain::ids::DomainId;
use crate::domain::interaction::{AllowedActions, ClientHistory, Interaction};
use crate::domain::permission::Permission;
use crate::domain::session::Session;
use crate::error::Error;

/// The full card as a view (what events store, and what a caller with `contacts.read` sees).
pub fn full(card: &ContactCard) -> pb::ContactView {
    pb::ContactView {
        view: Some(pb::contact_view::View::Contact(encode::contact(
            card, false,
        ))),
    }
}

/// How contacts are shown to a caller: full cards with `contacts.read`, else summaries that
/// carry a signed read-only link to the card.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The caller may read full cards.
    pub full: bool,
    /// Keys that sign read-only links.
    pub keys: &'a TokenKeys,
    /// The caller's domain (links are bound to it).
    pub domain: DomainId,
}

impl<'a> Viewer<'a> {
    /// The viewer for `session`'s caller.
    pub fn of(session: &Session, keys: &'a TokenKeys) -> Self {
        Self {
            full: session.caller.has(Permission::ContactsRead),
            keys,
            domain: session.domain.id,
        }
    }

    /// The contact as this caller may see it.
    pub fn view(&self, card: &ContactCard) -> Result<pb::ContactView, Error> {
        if self.full {
            return Ok(full(card));
        }
        let (link, _) =
            self.keys
                .sign_card_link(self.domain, card.id.0, READ_ONLY_LINK_TTL, None)?;
        Ok(pb::ContactView {
            view: Some(pb::contact_view::View::Summary(pb::ContactSummary {
                id: card.id.0,
                display_name: card.display_name.clone(),
                labels: card.labels.clone(),
                read_only_link: link,
            })),
        })
    }
}

fn candidate(
    c: &Candidate,
    card: &ContactCard,
    viewer: &Viewer<'_>,
) -> Result<pb::Candidate, Error> {
    use pb::candidate_match::Communication as M;
    let matches = c
        .matches
        .iter()
        .map(|m| pb::CandidateMatch {
            rule: encode::rule(m.rule) as i32,
            exact: m.rule.is_exact(),
            communication: match m.kind {
                LinkKind::Phone => card
                    .phones
                    .iter()
                    .find(|p| p.id == m.link_id)
                    .map(|p| M::Phone(encode::phone(p))),
                LinkKind::Messaging => card
                    .channels
                    .iter()
                    .find(|ch| ch.id == m.link_id)
                    .map(|ch| M::MessagingChannel(encode::channel(ch))),
                LinkKind::Email => card
                    .emails
                    .iter()
                    .find(|e| e.id == m.link_id)
                    .map(|e| M::Email(encode::email(e))),
                LinkKind::Attribute => card
                    .attributes
                    .iter()
                    .find(|a| Some(&a.key) == m.key.as_ref())
                    .map(|a| {
                        M::Attribute(pb::Attribute {
                            key: a.key.clone(),
                            value: a.value.clone(),
                        })
                    }),
                LinkKind::Contact => None,
            },
        })
        .collect();
    Ok(pb::Candidate {
        contact: Some(viewer.view(card)?),
        exact: c.exact,
        matches,
        last_active_at: Some(encode::timestamp(c.last_active_at)),
    })
}

/// The panel from loaded contacts (the interaction's [`Interaction::contacts_shown`], by
/// id), the agent's name and the client's history (of [`Interaction::history_contact`]).
pub fn render(
    viewer: Viewer<'_>,
    interaction: &Interaction,
    cards: &HashMap<i64, ContactCard>,
    agent: Option<&UserRef>,
    history: Option<&ClientHistory>,
    offset: usize,
    size: usize,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let all = &interaction.identification.candidates;
    let page = interaction.candidate_page(offset, size);
    let next = (offset + page.len() < all.len()).then_some(offset + page.len());

    let bound = interaction.bound_contact.and_then(|c| cards.get(&c.0));
    let actions = AllowedActions::decide(interaction.state, true, true, bound.is_some());
    let panel = pb::ClientInfoPanel {
        interaction_id: interaction.external_id.clone(),
        kind: encode::kind(interaction.kind()) as i32,
        direction: encode::direction(interaction.direction) as i32,
        state: encode::state(interaction.state) as i32,
        queue: interaction.queue.as_ref().map(encode::queue),
        member_description: interaction
            .member
            .as_ref()
            .map(|m| m.description.clone())
            .unwrap_or_default(),
        variables: interaction
            .variables
            .iter()
            .map(|v| pb::Variable {
                key: v.key.clone(),
                value: v.value.clone(),
            })
            .collect(),
        destination: Some(encode::destination(&interaction.destination)),
        bound_contact: bound.map(|card| viewer.view(card)).transpose()?,
        identification: Some(encode::identification(&interaction.identification)),
        candidates: page
            .iter()
            .filter_map(|c| {
                cards
                    .get(&c.contact_id)
                    .map(|card| candidate(c, card, &viewer))
            })
            .collect::<Result<_, _>>()?,
        allowed_actions: Some(pb::AllowedActions {
            search: actions.search,
            add: actions.add,
            select: actions.select,
            unbind: actions.unbind,
        }),
        offered_at: Some(encode::timestamp(interaction.offered_at)),
        accepted_at: interaction.accepted_at.map(encode::timestamp),
        closed_at: interaction.closed_at.map(encode::timestamp),
        agent: agent.map(encode::user_ref),
        history: history.map(encode::history),
    };
    Ok((panel, next))
}
