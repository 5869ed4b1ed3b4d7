//! What routing reports: offers (with identification), answers and ends.

use diesel_async::AsyncPgConnection;

use super::{AppState, Call, loaders};
use crate::db::communications::LinkOutcome;
use crate::db::interactions::{self, OfferResult};
use crate::db::{contacts, history, identification, tx};
use crate::domain::contact::UserRef;
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::{Interaction, InteractionState, Offer};
use crate::error::Error;
use crate::wire::changes::{Change, Kind};
use crate::wire::events::{self, EVENT_CANDIDATES};

/// AcceptInteraction: `agent` answered `interaction`.
#[derive(Debug, Clone)]
pub struct Accept {
    /// The routing id.
    pub interaction: String,
    /// The agent who answered.
    pub agent: UserId,
}

/// CloseInteraction: `interaction` ended.
#[derive(Debug, Clone)]
pub struct Close {
    /// The routing id.
    pub interaction: String,
}

/// Offers an interaction to its agent and identifies the client; the agent's stream gets the
/// panel (and the binding, when it was autolinked), a transfer tells the previous agent.
///
/// A first offer, the hot path, takes three round trips: the agent, whether the interaction
/// exists and the identification, pipelined; the cards the panel shows and the client's
/// history, pipelined; then one statement
/// that writes the interaction, its autolink binding, the audit record and the events
/// ([`interactions::insert_first_offer`]). A re-offer, a transfer, or a first offer that loses
/// a race with a concurrent one takes the transactional path: a re-offer (a no-op when nothing
/// changed), a transfer to another agent, or a first offer after a concurrent one, as one unit
/// of work.
pub async fn offer(state: &AppState, call: &Call, offer: Offer) -> Result<OfferResult, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = &session.domain;
    let (context, identification) = {
        let c: &AsyncPgConnection = &conn;
        let identify = identification::identify(c, domain, &offer.destination, &offer.keys);
        tokio::try_join!(
            interactions::offer_context(c, domain.id, offer.agent, &offer.external_id),
            identify
        )?
    };
    let Some(agent_name) = context.agent_name else {
        return Err(Error::invalid(
            "agent_user_id",
            format!("no user {} in this domain", offer.agent),
        ));
    };
    // A chat autolinked by the number its identity carries also links the identity: the
    // transactional path.
    let links_identity = matches!(
        offer.destination,
        crate::domain::interaction::Destination::Chat(_)
    ) && identification.matched_by_phone()
        && identification
            .autolink_target(domain.autolink_policy())
            .is_some();
    if !context.known && !links_identity {
        let mut interaction = Interaction {
            id: 0,
            external_id: offer.external_id.clone(),
            direction: offer.direction,
            state: InteractionState::Offered,
            agent: offer.agent,
            queue: offer.queue.clone(),
            member: offer.member.clone(),
            variables: offer.variables.clone(),
            destination: offer.destination.clone(),
            bound_contact: identification
                .autolink_target(domain.autolink_policy())
                .map(ContactId),
            identification,
            offered_at: offer.occurred_at,
            accepted_at: None,
            closed_at: None,
        };
        // The cards the panel shows and the client's history, pipelined.
        let shown = interaction.contacts_shown(0, EVENT_CANDIDATES);
        let (cards, history) = tokio::try_join!(
            contacts::load_cards(&conn, domain.id, &shown),
            history::load_for(&conn, domain.id, &interaction),
        )?;
        let cards = cards.into_iter().map(|c| (c.id.0, c)).collect();
        let agent = UserRef {
            id: offer.agent,
            name: agent_name,
        };
        let events = events::first_offer(
            &session,
            &state.keys,
            &interaction,
            &cards,
            &agent,
            history.as_ref(),
        )?;
        let payloads = events.into_iter().map(|o| o.payload).collect();
        let change = interaction
            .bound_contact
            .and_then(|c| cards.get(&c.0))
            .map(|card| {
                Change::of(&session, Kind::InteractionBound, card)
                    .interaction(&interaction.external_id)
                    .out()
                    .payload
            });
        match interactions::insert_first_offer(
            &mut conn,
            &state.hub,
            &session,
            &interaction,
            payloads,
            change,
        )
        .await
        {
            Ok(Some(id)) => {
                interaction.id = id;
                return Ok(OfferResult::first(interaction));
            }
            // The routing id was taken meanwhile; or a contact it shows or binds was deleted
            // meanwhile: the transactional path looks again.
            Ok(None)
            | Err(Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => {}
            Err(e) => return Err(e),
        }
    }

    let (keys, session) = (&state.keys, &session);
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let r = interactions::offer(tx, session, &offer).await?;
        if r.changed {
            let i = &r.interaction;
            if let Some(previous) = r.previous_agent {
                tx.emit(events::transferred_away(previous, i));
            }
            let offered = loaders::offered(tx, session, keys, i).await?;
            tx.emit_all(offered);
            if let (true, Some(contact)) = (r.created, i.bound_contact) {
                let mut shown = vec![contact.0];
                if let Some(LinkOutcome::Relinked { from, .. }) = &r.identity_link {
                    shown.push(from.0);
                }
                let cards = contacts::load_cards(tx, session.domain.id, &shown).await?;
                let card = cards
                    .iter()
                    .find(|c| c.id == contact)
                    .ok_or_else(|| Error::contact_not_found(contact))?;
                tx.emit(events::bound(i, card, None));
                tx.change(
                    Change::of(session, Kind::InteractionBound, card)
                        .interaction(&i.external_id)
                        .out(),
                );
                match &r.identity_link {
                    Some(LinkOutcome::Linked) => {
                        tx.change(Change::of(session, Kind::CommunicationLinked, card).out());
                    }
                    Some(LinkOutcome::Relinked { from, link }) => {
                        let from_card = cards.iter().find(|c| c.id == *from);
                        tx.emit_all(events::moved(Some(i), link, *from, from_card, card.id));
                        tx.change_all(super::binding::relinked(session, card, from_card));
                    }
                    _ => {}
                }
            }
        }
        Ok(r)
    })
    .await
}

/// Records that the agent answered (one statement, its event included).
pub async fn accept(state: &AppState, call: &Call, cmd: Accept) -> Result<Interaction, Error> {
    let (mut conn, session) = state.session(call).await?;
    let event = events::accepted(&cmd.interaction);
    interactions::accept(
        &mut conn,
        &state.hub,
        &session,
        &cmd.interaction,
        cmd.agent,
        event,
    )
    .await
}

/// Records that the interaction ended (one statement, its event included).
pub async fn close(state: &AppState, call: &Call, cmd: Close) -> Result<Interaction, Error> {
    let (mut conn, session) = state.session(call).await?;
    let event = events::closed(&cmd.interaction);
    interactions::close(&mut conn, &state.hub, &session, &cmd.interaction, event).await
}
