//! What a panel or an event shows, loaded: the cards and the agent's name of a panel page, the
//! card of a contact that lost an identity. Each loader reads what the wire form needs and
//! hands it to [`crate::wire`] to render; no loader writes.

use std::collections::HashMap;

use client_info_proto::pb;
use diesel_async::AsyncPgConnection;

use crate::auth::TokenKeys;
use crate::db::outbox::Outgoing;
use crate::db::{contacts, history, users};
use crate::domain::contact::{ChannelLink, ContactCard, UserRef};
use crate::domain::ids::{ContactId, DomainId};
use crate::domain::interaction::Interaction;
use crate::domain::session::Session;
use crate::error::Error;
use crate::wire::events::{self, EVENT_CANDIDATES};
use crate::wire::panel::{self, Viewer};

/// The cards of `ids` of `domain`, by id.
pub async fn cards(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    ids: &[i64],
) -> Result<HashMap<i64, ContactCard>, Error> {
    Ok(contacts::load_cards(conn, domain, ids)
        .await?
        .into_iter()
        .map(|c| (c.id.0, c))
        .collect())
}

/// The panel of `interaction` with its candidates `offset..offset+size`, as `viewer` may see
/// it, and the next offset when more candidates follow. The agent's name comes from `agent`
/// when that is the interaction's agent's session, else from the database.
pub async fn panel(
    conn: &mut AsyncPgConnection,
    viewer: Viewer<'_>,
    interaction: &Interaction,
    offset: usize,
    size: usize,
    agent: Option<&Session>,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let domain = viewer.domain;
    let ids = interaction.contacts_shown(offset, size);
    // The cards and the client's history, pipelined.
    let (cards, history) = tokio::try_join!(
        contacts::load_cards(conn, domain, &ids),
        history::load_for(conn, domain, interaction),
    )?;
    let cards: HashMap<i64, ContactCard> = cards.into_iter().map(|c| (c.id.0, c)).collect();
    let known = agent
        .filter(|s| s.caller.user_id == interaction.agent)
        .map(|s| UserRef {
            id: s.caller.user_id,
            name: s.user_name.to_string(),
        });
    let agent = match known {
        Some(known) => Some(known),
        None => users::refs(conn, domain, &[interaction.agent.0])
            .await?
            .remove(&interaction.agent.0),
    };
    panel::render(
        viewer,
        interaction,
        &cards,
        agent.as_ref(),
        history.as_ref(),
        offset,
        size,
    )
}

/// The panel's first page as the caller sees it after an action of theirs.
pub async fn panel_after(
    conn: &mut AsyncPgConnection,
    keys: &TokenKeys,
    session: &Session,
    interaction: &Interaction,
) -> Result<pb::ClientInfoPanel, Error> {
    let viewer = Viewer::of(session, keys);
    let size = super::DEFAULT_PAGE_SIZE;
    Ok(panel(conn, viewer, interaction, 0, size, None).await?.0)
}

/// InteractionOffered (with the panel, full cards) and ContactIdentified, for the
/// interaction's agent.
pub async fn offered(
    conn: &mut AsyncPgConnection,
    session: &Session,
    keys: &TokenKeys,
    interaction: &Interaction,
) -> Result<Vec<Outgoing>, Error> {
    let viewer = Viewer {
        full: true,
        keys,
        domain: session.domain.id,
    };
    let (panel, _) = panel(conn, viewer, interaction, 0, EVENT_CANDIDATES, None).await?;
    Ok(events::offered(interaction, panel))
}

/// ChannelRelinked and ContactUpdated for `from`, which lost `link` to `to` (its card loaded).
pub async fn moved(
    conn: &mut AsyncPgConnection,
    session: &Session,
    interaction: Option<&Interaction>,
    from: ContactId,
    link: &ChannelLink,
    to: ContactId,
) -> Result<Vec<Outgoing>, Error> {
    let from_card = contacts::load_card(conn, session.domain.id, from).await?;
    Ok(events::moved(interaction, link, from, Some(&from_card), to))
}
