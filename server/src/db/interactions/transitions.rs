//! An answer and an end: each one statement that changes the state and writes its event.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rows::{InteractionRow, InteractionSql, find, interaction_columns, not_found};
use crate::db::cached::positional;
use crate::db::tx::Announce;
use crate::domain::ids::UserId;
use crate::domain::interaction::{Interaction, InteractionState};
use crate::domain::session::Session;
use crate::error::{Error, Reason};

/// An answer (`$3` = `accepted`, by agent `$4`, of an offered interaction) or an end (`$3` =
/// `closed`, of an open one) in one statement, which is atomic on its own: the state change
/// and its event for the interaction's agent (`$5`, numbered by the statement's transaction as
/// [`crate::db::outbox`] requires). No row when the interaction is missing or not in a state that
/// allows the change (nothing is written then).
pub const TRANSITION_SQL: &str = concat!(
    "\
WITH u AS (UPDATE interactions \
           SET state = $3, \
               accepted_at = CASE WHEN $3 = 'accepted' THEN now() ELSE accepted_at END, \
               closed_at = CASE WHEN $3 = 'closed' THEN now() ELSE closed_at END, \
               updated_at = now() \
           WHERE domain_id = $1 AND external_id = $2 \
             AND (($3 = 'accepted' AND state = 'offered' AND agent_id = $4) \
                  OR ($3 = 'closed' AND state <> 'closed')) \
           RETURNING ",
    interaction_columns!(),
    "), \
     e AS (INSERT INTO events (domain_id, sequence, occurred_at, agent_ids, payload) \
           SELECT $1, (pg_current_xact_id()::text::bigint << 16) + 1, clock_timestamp(), \
                  ARRAY[u.agent_id], $5 \
           FROM u \
           RETURNING 1) \
SELECT u.* FROM u"
);

crate::db::cached::cached_statement!(
    /// [`TRANSITION_SQL`], prepared once per connection.
    TransitionStatement = TRANSITION_SQL;
    domain: BigInt => i64,
    external_id: Text => String,
    state: Text => &'static str,
    agent: BigInt => i64,
    payload: Binary => Vec<u8>,
);

async fn transition(
    conn: &mut AsyncPgConnection,
    announcer: &dyn Announce,
    session: &Session,
    external_id: &str,
    to: InteractionState,
    agent: UserId,
    payload: Vec<u8>,
) -> Result<Option<Interaction>, Error> {
    let row: Option<InteractionRow> = positional::<InteractionSql, _>(TransitionStatement {
        domain: session.domain.id.0,
        external_id: external_id.to_owned(),
        state: to.as_str(),
        agent: agent.0,
        payload,
    })
    .get_result(conn)
    .await
    .optional()?;
    if row.is_some() {
        announcer.announce(session.domain.id);
    }
    row.map(InteractionRow::into_domain).transpose()
}

/// Records that `agent` answered, with `payload` (its event for the agent), in one statement.
/// FAILED_PRECONDITION unless it is offered to that agent; NOT_FOUND when unknown.
pub async fn accept(
    conn: &mut AsyncPgConnection,
    announcer: &dyn Announce,
    session: &Session,
    external_id: &str,
    agent: UserId,
    payload: Vec<u8>,
) -> Result<Interaction, Error> {
    let to = InteractionState::Accepted;
    if let Some(i) = transition(conn, announcer, session, external_id, to, agent, payload).await? {
        return Ok(i);
    }
    // Nothing changed: say why.
    let i = find(conn, session.domain.id, external_id, false)
        .await?
        .ok_or_else(|| not_found(external_id))?;
    if i.state != InteractionState::Offered {
        return Err(Error::precondition(
            if i.state == InteractionState::Closed {
                Reason::InteractionClosed
            } else {
                Reason::InteractionNotOffered
            },
            format!("interaction/{external_id}"),
            format!(
                "interaction {external_id:?} is {}; only an offered interaction can be accepted",
                i.state.as_str()
            ),
        ));
    }
    Err(Error::precondition(
        Reason::InteractionOfferedToOtherAgent,
        format!("interaction/{external_id}"),
        format!(
            "interaction {external_id:?} is offered to agent {}, not {agent} (state {})",
            i.agent,
            i.state.as_str()
        ),
    ))
}

/// Records that the interaction ended, with `payload` (its event for the agent), in one
/// statement. FAILED_PRECONDITION when already closed; NOT_FOUND when unknown.
pub async fn close(
    conn: &mut AsyncPgConnection,
    announcer: &dyn Announce,
    session: &Session,
    external_id: &str,
    payload: Vec<u8>,
) -> Result<Interaction, Error> {
    let to = InteractionState::Closed;
    let anyone = UserId(0);
    if let Some(i) = transition(conn, announcer, session, external_id, to, anyone, payload).await? {
        return Ok(i);
    }
    match find(conn, session.domain.id, external_id, false).await? {
        None => Err(not_found(external_id)),
        Some(_) => Err(Error::precondition(
            Reason::InteractionClosed,
            format!("interaction/{external_id}"),
            format!("interaction {external_id:?} is already closed"),
        )),
    }
}
