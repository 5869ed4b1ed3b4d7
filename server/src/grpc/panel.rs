//! The Client info panel of one interaction, as the calling agent may see it. Shared by
//! GetClientInfo, the binding RPCs and the session stream.

use std::collections::HashMap;

use client_info_proto::pb;
use diesel_async::AsyncPgConnection;

use super::convert;
use crate::auth::{READ_ONLY_LINK_TTL, TokenKeys};
use crate::db::domains::Session;
use crate::db::{contacts, users};
use crate::domain::contact::{ContactCard, UserRef};
use crate::domain::identify::{Candidate, LinkKind};
use crate::domain::ids::DomainId;
use crate::domain::interaction::{AllowedActions, Interaction};
use crate::domain::permission::Permission;
use crate::error::Error;

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
        Ok(pb::ContactView {
            view: Some(if self.full {
                pb::contact_view::View::Contact(convert::contact(card, false))
            } else {
                let (link, _) =
                    self.keys
                        .sign_card_link(self.domain, card.id.0, READ_ONLY_LINK_TTL)?;
                pb::contact_view::View::Summary(pb::ContactSummary {
                    id: card.id.0,
                    display_name: card.display_name.clone(),
                    labels: card.labels.clone(),
                    read_only_link: link,
                })
            }),
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
            rule: convert::rule(m.rule) as i32,
            exact: m.rule.is_exact(),
            communication: match m.kind {
                LinkKind::Phone => card.phones.iter().find(|p| p.id == m.link_id).map(|p| {
                    M::Phone(pb::Phone {
                        id: p.id,
                        number: p.number.clone(),
                        e164: p.e164.clone(),
                        region: p.region.clone(),
                    })
                }),
                LinkKind::Messaging => {
                    card.channels
                        .iter()
                        .find(|ch| ch.id == m.link_id)
                        .map(|ch| {
                            M::MessagingChannel(pb::MessagingChannel {
                                id: ch.id,
                                protocol: ch.identity.protocol.clone(),
                                external_user_id: ch.identity.external_user_id.clone(),
                                display_name: ch.identity.display_name.clone(),
                            })
                        })
                }
            },
        })
        .collect();
    Ok(pb::Candidate {
        contact: Some(viewer.view(card)?),
        exact: c.exact,
        matches,
        last_active_at: Some(convert::timestamp(c.last_active_at)),
    })
}

/// The contacts a panel page shows: its candidates `offset..offset+size` and the bound contact.
pub fn contacts_shown(interaction: &Interaction, offset: usize, size: usize) -> Vec<i64> {
    let page = candidate_page(interaction, offset, size);
    let mut ids: Vec<i64> = page.iter().map(|c| c.contact_id).collect();
    ids.extend(interaction.bound_contact.map(|c| c.0));
    ids
}

fn candidate_page(interaction: &Interaction, offset: usize, size: usize) -> &[Candidate] {
    let page: &[Candidate] = interaction
        .identification
        .candidates
        .get(offset..)
        .unwrap_or(&[]);
    &page[..page.len().min(size)]
}

/// Builds the panel with the candidates `offset..offset+size`; also returns the next offset
/// when more candidates follow.
/// The panel is always built for the interaction's assigned agent (who alone may see it), as
/// `viewer` may see contacts.
pub async fn build(
    conn: &mut AsyncPgConnection,
    viewer: Viewer<'_>,
    interaction: &Interaction,
    offset: usize,
    size: usize,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    build_for(conn, viewer, interaction, offset, size, None).await
}

/// [`build`] for the interaction's assigned agent as the caller: the agent's name comes from
/// the caller's session instead of a query.
pub async fn build_for_agent(
    conn: &mut AsyncPgConnection,
    viewer: Viewer<'_>,
    interaction: &Interaction,
    offset: usize,
    size: usize,
    agent: &Session,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let known = (agent.caller.user_id == interaction.agent).then(|| UserRef {
        id: agent.caller.user_id,
        name: agent.user_name.to_string(),
    });
    build_for(conn, viewer, interaction, offset, size, known).await
}

async fn build_for(
    conn: &mut AsyncPgConnection,
    viewer: Viewer<'_>,
    interaction: &Interaction,
    offset: usize,
    size: usize,
    agent: Option<UserRef>,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let domain = viewer.domain;
    let ids = contacts_shown(interaction, offset, size);
    let cards: HashMap<i64, ContactCard> = contacts::load_cards(conn, domain, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id.0, c))
        .collect();
    let agent = match agent {
        Some(known) => Some(known),
        None => users::refs(conn, domain, &[interaction.agent.0])
            .await?
            .remove(&interaction.agent.0),
    };
    render(viewer, interaction, &cards, agent.as_ref(), offset, size)
}

/// The panel from loaded contacts ([`contacts_shown`] of them, by id) and the agent's name.
pub fn render(
    viewer: Viewer<'_>,
    interaction: &Interaction,
    cards: &HashMap<i64, ContactCard>,
    agent: Option<&UserRef>,
    offset: usize,
    size: usize,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let all = &interaction.identification.candidates;
    let page = candidate_page(interaction, offset, size);
    let next = (offset + page.len() < all.len()).then_some(offset + page.len());

    let bound = interaction.bound_contact.and_then(|c| cards.get(&c.0));
    let actions = AllowedActions::decide(interaction.state, true, true, bound.is_some());
    let panel = pb::ClientInfoPanel {
        interaction_id: interaction.external_id.clone(),
        kind: convert::kind(interaction.kind()) as i32,
        direction: convert::direction(interaction.direction) as i32,
        state: convert::state(interaction.state) as i32,
        queue: interaction.queue.as_ref().map(|q| pb::Queue {
            id: q.id.clone(),
            name: q.name.clone(),
        }),
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
        destination: Some(convert::destination(&interaction.destination)),
        bound_contact: bound.map(|card| viewer.view(card)).transpose()?,
        identification: Some(convert::identification(&interaction.identification)),
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
        offered_at: Some(convert::timestamp(interaction.offered_at)),
        accepted_at: interaction.accepted_at.map(convert::timestamp),
        closed_at: interaction.closed_at.map(convert::timestamp),
        agent: agent.map(convert::user_ref),
    };
    Ok((panel, next))
}
