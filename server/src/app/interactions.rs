//! What routing reports: offers (with identification), answers and ends.

use client_info_proto::pb;
use pb::agent_event::Event;

use crate::auth::Caller;
use crate::db::interactions::{self, OfferResult};
use crate::db::{contacts, tx, users};
use crate::domain::ids::UserId;
use crate::domain::interaction::{Interaction, Offer};
use crate::error::Error;
use crate::grpc::{AppState, events};

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
pub async fn offer(state: &AppState, caller: Caller, offer: Offer) -> Result<OfferResult, Error> {
    let (mut conn, session) = state.session(caller).await?;
    if !users::exists(&mut conn, session.domain.id, offer.agent).await? {
        return Err(Error::invalid(
            "agent_user_id",
            format!("no user {} in this domain", offer.agent),
        ));
    }
    let keys = &state.keys;
    tx::write(&mut conn, session.domain.id, async |tx| {
        let r = interactions::offer(tx, &session, &offer).await?;
        if r.changed {
            let i = &r.interaction;
            if let Some(previous) = r.previous_agent {
                tx.emit(events::out(
                    vec![previous],
                    Event::InteractionTransferredAway(pb::InteractionTransferredAway {
                        interaction_id: i.external_id.clone(),
                        to_agent: Some(pb::UserRef {
                            id: i.agent.0,
                            name: String::new(),
                        }),
                    }),
                ));
            }
            let offered = events::offered(tx, &session, keys, i).await?;
            tx.emit_all(offered);
            if let (true, Some(contact)) = (r.created, i.bound_contact) {
                let card = contacts::load_card(tx, session.domain.id, contact).await?;
                tx.emit(events::bound(&session, keys, i, &card, None)?);
            }
        }
        Ok(r)
    })
    .await
}

/// Records that the agent answered.
pub async fn accept(state: &AppState, caller: Caller, cmd: Accept) -> Result<Interaction, Error> {
    let (mut conn, session) = state.session(caller).await?;
    tx::write(&mut conn, session.domain.id, async |tx| {
        let i = interactions::accept(tx, &session, &cmd.interaction, cmd.agent).await?;
        tx.emit(events::out(
            vec![i.agent],
            Event::InteractionAccepted(pb::InteractionAccepted {
                interaction_id: i.external_id.clone(),
            }),
        ));
        Ok(i)
    })
    .await
}

/// Records that the interaction ended.
pub async fn close(state: &AppState, caller: Caller, cmd: Close) -> Result<Interaction, Error> {
    let (mut conn, session) = state.session(caller).await?;
    tx::write(&mut conn, session.domain.id, async |tx| {
        let i = interactions::close(tx, &session, &cmd.interaction).await?;
        tx.emit(events::out(
            vec![i.agent],
            Event::InteractionClosed(pb::InteractionClosed {
                interaction_id: i.external_id.clone(),
            }),
        ));
        Ok(i)
    })
    .await
}
