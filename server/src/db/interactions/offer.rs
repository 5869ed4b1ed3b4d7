//! Offers: the first offer of an interaction in one statement (the hot path), and the
//! transactional offer (a re-offer, a transfer, or a first offer that lost a race).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::bindings::{bind, bind_record};
use super::rows::{find, not_found};
use crate::db::communications::LinkOutcome;
use crate::db::schema::interactions;
use crate::db::tx::{Announce, Tx};
use crate::db::{contacts, identification};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::interaction::{Destination, Interaction, InteractionState, Offer, Variable};
use crate::domain::session::Session;
use crate::error::{Error, Reason};

/// What an offer did.
#[derive(Debug, Clone)]
pub struct OfferResult {
    /// The interaction after the offer.
    pub interaction: Interaction,
    /// The offer moved it from another agent.
    pub transferred: bool,
    /// The agent it was moved from.
    pub previous_agent: Option<UserId>,
    /// This offer created the interaction.
    pub created: bool,
    /// False when the same offer had been made before.
    pub changed: bool,
    /// A chat autolinked by the number its identity carries: how its identity was linked to
    /// the contact.
    pub identity_link: Option<LinkOutcome>,
}

impl OfferResult {
    /// What a first offer did: created `interaction` (no transfer).
    pub fn first(interaction: Interaction) -> Self {
        Self {
            interaction,
            transferred: false,
            previous_agent: None,
            created: true,
            changed: true,
            identity_link: None,
        }
    }
}

pub(super) fn variables_json(variables: &[Variable]) -> Result<serde_json::Value, Error> {
    serde_json::to_value(variables).map_err(|e| Error::Internal(format!("variables: {e}")))
}

fn same_client(a: &Destination, b: &Destination) -> bool {
    match (a, b) {
        (Destination::Call { number: x }, Destination::Call { number: y }) => x == y,
        (Destination::Chat(x), Destination::Chat(y)) => {
            x.protocol == y.protocol && x.external_user_id == y.external_user_id
        }
        _ => false,
    }
}

/// Offers an interaction and identifies the client, in one transaction. Re-offering the same
/// content changes nothing; offering to another agent transfers it (the new agent must accept).
pub async fn offer(
    tx: &mut Tx<'_>,
    session: &Session,
    offer: &Offer,
) -> Result<OfferResult, Error> {
    let domain = &session.domain;
    let actor = session.caller.user_id;
    {
        // Two rounds: a concurrent first offer of the same id makes our insert do nothing; the
        // second round then sees that row as a re-offer.
        for _ in 0..2 {
            if let Some(existing) = find(tx, domain.id, &offer.external_id, true).await? {
                return reoffer(tx, domain.id, existing, offer).await;
            }
            let identification =
                identification::identify(tx, domain, &offer.destination, &offer.keys).await?;
            let (caller_number, caller_hidden, chat) = match &offer.destination {
                Destination::Call { number } => (number.clone(), number.is_none(), None),
                Destination::Chat(c) => (None, false, Some(c)),
            };
            let candidates = serde_json::to_value(&identification.candidates)
                .map_err(|e| Error::Internal(format!("candidates: {e}")))?;
            let inserted: Option<i64> = diesel::insert_into(interactions::table)
                .values((
                    interactions::domain_id.eq(domain.id.0),
                    interactions::external_id.eq(&offer.external_id),
                    interactions::kind.eq(offer.destination.kind().as_str()),
                    interactions::direction.eq(offer.direction.as_str()),
                    interactions::state.eq(InteractionState::Offered.as_str()),
                    interactions::agent_id.eq(offer.agent.0),
                    interactions::queue_id.eq(offer.queue.as_ref().map(|q| &q.id)),
                    interactions::queue_name.eq(offer.queue.as_ref().map(|q| &q.name)),
                    interactions::member_id.eq(offer.member.as_ref().map(|m| &m.id)),
                    interactions::member_description
                        .eq(offer.member.as_ref().map(|m| &m.description)),
                    interactions::variables.eq(variables_json(&offer.variables)?),
                    interactions::caller_number.eq(caller_number),
                    interactions::caller_hidden.eq(caller_hidden),
                    interactions::caller_e164.eq(&identification.normalized_number),
                    interactions::chat_protocol.eq(chat.map(|c| &c.protocol)),
                    interactions::chat_external_user_id.eq(chat.map(|c| &c.external_user_id)),
                    interactions::chat_display_name.eq(chat.map(|c| &c.display_name)),
                    interactions::outcome.eq(identification.outcome.as_str()),
                    interactions::outcome_reason.eq(&identification.reason),
                    interactions::candidates.eq(candidates),
                    interactions::offered_at.eq(offer.occurred_at),
                ))
                .on_conflict_do_nothing()
                .returning(interactions::id)
                .get_result(tx)
                .await
                .optional()?;
            let Some(id) = inserted else { continue };
            let mut identity_link = None;
            if let Some(contact) = identification.autolink_target(domain.autolink_policy()) {
                bind(
                    tx,
                    domain.id,
                    id,
                    &offer.external_id,
                    None,
                    ContactId(contact),
                    actor,
                    None,
                )
                .await?;
                // A chat found by the number its identity carries: binding links the identity.
                if let Destination::Chat(identity) = &offer.destination
                    && identification.matched_by_phone()
                {
                    identity_link = Some(
                        contacts::link_chat_identity(
                            tx,
                            domain.id,
                            actor,
                            ContactId(contact),
                            identity,
                            &offer.external_id,
                        )
                        .await?,
                    );
                }
            }
            let interaction = find(tx, domain.id, &offer.external_id, false)
                .await?
                .ok_or_else(|| not_found(&offer.external_id))?;
            return Ok(OfferResult {
                identity_link,
                ..OfferResult::first(interaction)
            });
        }
        Err(Error::concurrent(
            "the interaction was offered concurrently; retry",
        ))
    }
}

async fn reoffer(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    existing: Interaction,
    offer: &Offer,
) -> Result<OfferResult, Error> {
    if existing.state == InteractionState::Closed {
        return Err(Error::precondition(
            Reason::InteractionClosed,
            format!("interaction/{}", offer.external_id),
            format!(
                "interaction {:?} is closed; it cannot be offered again",
                offer.external_id
            ),
        ));
    }
    if existing.direction != offer.direction
        || !same_client(&existing.destination, &offer.destination)
    {
        return Err(Error::precondition(
            Reason::InteractionIdReused,
            format!("interaction/{}", offer.external_id),
            format!(
                "interaction {:?} was offered with another kind, direction or client",
                offer.external_id
            ),
        ));
    }
    let transferred = existing.agent != offer.agent;
    let details_changed = existing.queue != offer.queue
        || existing.member != offer.member
        || existing.variables != offer.variables;
    if !transferred && !details_changed {
        return Ok(OfferResult {
            interaction: existing,
            transferred: false,
            previous_agent: None,
            created: false,
            changed: false,
            identity_link: None,
        });
    }
    let previous_agent = transferred.then_some(existing.agent);
    let target = interactions::table.find(existing.id);
    diesel::update(target)
        .set((
            interactions::queue_id.eq(offer.queue.as_ref().map(|q| &q.id)),
            interactions::queue_name.eq(offer.queue.as_ref().map(|q| &q.name)),
            interactions::member_id.eq(offer.member.as_ref().map(|m| &m.id)),
            interactions::member_description.eq(offer.member.as_ref().map(|m| &m.description)),
            interactions::variables.eq(variables_json(&offer.variables)?),
            interactions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if transferred {
        diesel::update(target)
            .set((
                interactions::agent_id.eq(offer.agent.0),
                interactions::state.eq(InteractionState::Offered.as_str()),
                interactions::accepted_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
    }
    let interaction = find(conn, domain, &offer.external_id, false)
        .await?
        .ok_or_else(|| not_found(&offer.external_id))?;
    Ok(OfferResult {
        interaction,
        transferred,
        previous_agent,
        created: false,
        changed: true,
        identity_link: None,
    })
}

/// A first offer in one statement, which is atomic on its own (no transaction, no round trip
/// for `BEGIN` or `COMMIT`): the interaction (`$1`..`$20`), its binding when it was autolinked
/// (`$20`, audited as actor `$21` with `$22`), and its events for the agent (`$23`, numbered
/// by the statement's transaction as [`crate::db::outbox`] requires; announced after it commits,
/// see [`crate::db::tx`]). When the routing id is taken (a concurrent
/// first offer), nothing is written and no row comes back. This is the unit of work of the hot write, written out as one statement: the same
/// audit and event rows [`crate::db::tx`]'s flush would write.
pub const INSERT_OFFER_SQL: &str = "\
WITH ins AS (INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id, \
                 queue_id, queue_name, member_id, member_description, variables, caller_number, \
                 caller_hidden, caller_e164, chat_protocol, chat_external_user_id, \
                 chat_display_name, outcome, outcome_reason, candidates, offered_at, \
                 bound_contact_id) \
             VALUES ($1, $2, $3, $4, 'offered', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $24, $20) \
             ON CONFLICT DO NOTHING \
             RETURNING id, bound_contact_id), \
     b AS (INSERT INTO interaction_bindings (domain_id, interaction_id, contact_id, bound_by) \
           SELECT $1, ins.id, ins.bound_contact_id, NULL FROM ins \
           WHERE ins.bound_contact_id IS NOT NULL \
           RETURNING 1), \
     t AS (UPDATE contacts SET last_active_at = now(), \
                  change_position = CASE WHEN $25::bytea IS NULL THEN change_position \
                                         ELSE (pg_current_xact_id()::text::bigint << 16) + 1 END \
           WHERE domain_id = $1 AND id = (SELECT bound_contact_id FROM ins) \
           RETURNING 1), \
     c AS (INSERT INTO contact_changes (domain_id, sequence, occurred_at, contact_id, payload) \
           SELECT $1, (pg_current_xact_id()::text::bigint << 16) + 1, clock_timestamp(), \
                  ins.bound_contact_id, $25 \
           FROM ins WHERE ins.bound_contact_id IS NOT NULL AND $25::bytea IS NOT NULL \
           RETURNING 1), \
     a AS (INSERT INTO audit_log (domain_id, actor_id, action, contact_id, interaction_id, \
                                  before, after) \
           SELECT $1, $21, 'interaction.bind', ins.bound_contact_id, $2, NULL, $22 FROM ins \
           WHERE ins.bound_contact_id IS NOT NULL \
           RETURNING 1), \
     e AS (INSERT INTO events (domain_id, sequence, occurred_at, agent_ids, payload) \
           SELECT $1, (pg_current_xact_id()::text::bigint << 16) + x.ord, clock_timestamp(), \
                  ARRAY[$5]::bigint[], \
                  x.payload \
           FROM ins, unnest($23::bytea[]) WITH ORDINALITY AS x (payload, ord) \
           RETURNING 1) \
SELECT ins.id, \
       (SELECT count(*) FROM b) + (SELECT count(*) FROM t) + (SELECT count(*) FROM a) \
         + (SELECT count(*) FROM e) + (SELECT count(*) FROM c) AS writes \
FROM ins";

crate::db::cached::cached_statement!(
    /// [`INSERT_OFFER_SQL`], prepared once per connection.
    InsertOfferStatement = INSERT_OFFER_SQL;
    domain: BigInt => i64,
    external_id: Text => String,
    kind: Text => &'static str,
    direction: Text => &'static str,
    agent: BigInt => i64,
    queue_id: Nullable<Text> => Option<String>,
    queue_name: Nullable<Text> => Option<String>,
    member_id: Nullable<Text> => Option<String>,
    member_description: Nullable<Text> => Option<String>,
    variables: Jsonb => serde_json::Value,
    caller_number: Nullable<Text> => Option<String>,
    caller_hidden: Bool => bool,
    caller_e164: Nullable<Text> => Option<String>,
    chat_protocol: Nullable<Text> => Option<String>,
    chat_external_user_id: Nullable<Text> => Option<String>,
    chat_display_name: Nullable<Text> => Option<String>,
    outcome: Text => &'static str,
    outcome_reason: Text => String,
    candidates: Jsonb => serde_json::Value,
    bound: Nullable<BigInt> => Option<i64>,
    actor: BigInt => i64,
    bind_audit: Jsonb => serde_json::Value,
    payloads: Array<Binary> => Vec<Vec<u8>>,
    offered_at: Timestamptz => DateTime<Utc>,
    change: Nullable<Binary> => Option<Vec<u8>>,
);

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Inserts a first offer, already identified (and bound when autolinked), with its events
/// (payloads for the agent, in order) and, when bound, the bound contact's change for the
/// change feed, in one statement ([`INSERT_OFFER_SQL`]). Returns the interaction's id, or
/// `None` when the routing id is taken (nothing was written).
pub async fn insert_first_offer(
    conn: &mut AsyncPgConnection,
    announcer: &dyn Announce,
    session: &Session,
    interaction: &Interaction,
    payloads: Vec<Vec<u8>>,
    change: Option<Vec<u8>>,
) -> Result<Option<i64>, Error> {
    let (caller_number, caller_hidden, chat) = match &interaction.destination {
        Destination::Call { number } => (number.clone(), number.is_none(), None),
        Destination::Chat(c) => (None, false, Some(c)),
    };
    let identification = &interaction.identification;
    let statement = InsertOfferStatement {
        domain: session.domain.id.0,
        external_id: interaction.external_id.clone(),
        kind: interaction.kind().as_str(),
        direction: interaction.direction.as_str(),
        agent: interaction.agent.0,
        queue_id: interaction.queue.as_ref().map(|q| q.id.clone()),
        queue_name: interaction.queue.as_ref().map(|q| q.name.clone()),
        member_id: interaction.member.as_ref().map(|m| m.id.clone()),
        member_description: interaction.member.as_ref().map(|m| m.description.clone()),
        variables: variables_json(&interaction.variables)?,
        caller_number,
        caller_hidden,
        caller_e164: identification.normalized_number.clone(),
        chat_protocol: chat.map(|c| c.protocol.clone()),
        chat_external_user_id: chat.map(|c| c.external_user_id.clone()),
        chat_display_name: chat.map(|c| c.display_name.clone()),
        outcome: identification.outcome.as_str(),
        outcome_reason: identification.reason.clone(),
        candidates: serde_json::to_value(&identification.candidates)
            .map_err(|e| Error::Internal(format!("candidates: {e}")))?,
        bound: interaction.bound_contact.map(|c| c.0),
        actor: session.caller.user_id.0,
        bind_audit: interaction
            .bound_contact
            .map_or(serde_json::Value::Null, |c| {
                bind_record(&interaction.external_id, c, None)
            }),
        payloads,
        offered_at: interaction.offered_at,
        change,
    };
    let inserted: Option<Inserted> = statement.get_result(conn).await.optional()?;
    if inserted.is_some() {
        announcer.announce(session.domain.id);
    }
    Ok(inserted.map(|r| r.id))
}
