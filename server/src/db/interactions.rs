//! Interactions: offer (with identification, in one transaction), accept, close, and binding
//! to contacts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::audit::{AuditAction, AuditRecord};
use super::cached::{JsonOf, positional};
use super::domains::Session;
use super::identification;
use super::schema::{interaction_bindings, interactions};
use super::tx::Tx;
use crate::domain::contact::ChannelIdentity;
use crate::domain::identify::{Candidate, Identification, Outcome};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::interaction::{
    Destination, Direction, Interaction, InteractionState, Member, Offer, Queue, Variable,
};
use crate::error::{Error, Reason};

#[derive(Queryable, Selectable)]
#[diesel(table_name = interactions, check_for_backend(diesel::pg::Pg))]
struct InteractionRow {
    id: i64,
    external_id: String,
    kind: String,
    direction: String,
    state: String,
    agent_id: i64,
    queue_id: Option<String>,
    queue_name: Option<String>,
    member_id: Option<String>,
    member_description: Option<String>,
    variables: JsonOf<Vec<Variable>>,
    caller_number: Option<String>,
    caller_e164: Option<String>,
    chat_protocol: Option<String>,
    chat_external_user_id: Option<String>,
    chat_display_name: Option<String>,
    outcome: String,
    outcome_reason: String,
    candidates: JsonOf<Vec<Candidate>>,
    bound_contact_id: Option<i64>,
    offered_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

fn corrupt(id: i64, what: &str) -> Error {
    Error::Internal(format!("interaction {id}: unreadable {what}"))
}

impl InteractionRow {
    fn into_domain(self) -> Result<Interaction, Error> {
        let id = self.id;
        let destination = match self.kind.as_str() {
            "call" => Destination::Call {
                number: self.caller_number,
            },
            "chat" => Destination::Chat(ChannelIdentity {
                protocol: self
                    .chat_protocol
                    .ok_or_else(|| corrupt(id, "chat protocol"))?,
                external_user_id: self
                    .chat_external_user_id
                    .ok_or_else(|| corrupt(id, "chat user id"))?,
                display_name: self.chat_display_name.unwrap_or_default(),
            }),
            _ => return Err(corrupt(id, "kind")),
        };
        Ok(Interaction {
            id,
            external_id: self.external_id,
            direction: Direction::parse(&self.direction).ok_or_else(|| corrupt(id, "direction"))?,
            state: InteractionState::parse(&self.state).ok_or_else(|| corrupt(id, "state"))?,
            agent: UserId(self.agent_id),
            queue: self.queue_id.map(|qid| Queue {
                id: qid,
                name: self.queue_name.unwrap_or_default(),
            }),
            member: self.member_id.map(|mid| Member {
                id: mid,
                description: self.member_description.unwrap_or_default(),
            }),
            variables: self.variables.0,
            destination,
            identification: Identification {
                outcome: Outcome::parse(&self.outcome).ok_or_else(|| corrupt(id, "outcome"))?,
                reason: self.outcome_reason,
                normalized_number: self.caller_e164,
                candidates: self.candidates.0,
            },
            bound_contact: self.bound_contact_id.map(ContactId),
            offered_at: self.offered_at,
            accepted_at: self.accepted_at,
            closed_at: self.closed_at,
        })
    }
}

/// The columns of [`InteractionRow`], for statements written out in SQL.
macro_rules! interaction_columns {
    () => {
        "id, external_id, kind, direction, state, agent_id, queue_id, queue_name, member_id, \
         member_description, variables, caller_number, caller_e164, chat_protocol, \
         chat_external_user_id, chat_display_name, outcome, outcome_reason, candidates, \
         bound_contact_id, offered_at, accepted_at, closed_at"
    };
}

// The text of [`FIND_SQL`], for `concat!`.
macro_rules! find_sql {
    () => {
        concat!(
            "SELECT ",
            interaction_columns!(),
            " FROM interactions WHERE domain_id = $1 AND external_id = $2"
        )
    };
}

/// One interaction by routing id (unique in its domain).
pub const FIND_SQL: &str = find_sql!();

/// The SQL type of an [`InteractionRow`] read by position (its `Selectable`'s order, which
/// [`interaction_columns`] lists).
type InteractionSql = diesel::dsl::AsSelect<InteractionRow, diesel::pg::Pg>;

crate::db::cached::cached_statement!(
    /// [`FIND_SQL`]. Written out rather than built with diesel's query builder: diesel-async
    /// writes a typed query's SQL again at every execution, about 20,000 instructions for these
    /// 23 quoted, table-qualified columns, near a tenth of a GetClientInfo (BENCHMARKS.md run O).
    FindStatement = FIND_SQL;
    domain: BigInt => i64,
    external_id: Text => String,
);

crate::db::cached::cached_statement!(
    /// [`FIND_SQL`] with a row lock.
    FindForUpdateStatement = concat!(find_sql!(), " FOR UPDATE");
    domain: BigInt => i64,
    external_id: Text => String,
);

/// Finds an interaction of `domain` by routing id; `lock` takes a row lock (use in a
/// transaction).
pub async fn find(
    mut conn: &AsyncPgConnection,
    domain: DomainId,
    external_id: &str,
    lock: bool,
) -> Result<Option<Interaction>, Error> {
    let (domain, external_id) = (domain.0, external_id.to_owned());
    let row: Option<InteractionRow> = if lock {
        positional::<InteractionSql, _>(FindForUpdateStatement {
            domain,
            external_id,
        })
        .get_result(&mut conn)
        .await
        .optional()?
    } else {
        positional::<InteractionSql, _>(FindStatement {
            domain,
            external_id,
        })
        .get_result(&mut conn)
        .await
        .optional()?
    };
    row.map(InteractionRow::into_domain).transpose()
}

/// The agent's open (offered or accepted) interactions, oldest first.
pub async fn open_for_agent(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    agent: UserId,
) -> Result<Vec<Interaction>, Error> {
    let rows: Vec<InteractionRow> = interactions::table
        .filter(interactions::domain_id.eq(domain.0))
        .filter(interactions::agent_id.eq(agent.0))
        // By state, as `interactions_agent_open_idx` is (migration
        // `index_open_interactions_by_agent_and_state`).
        .filter(interactions::state.eq_any([
            InteractionState::Offered.as_str(),
            InteractionState::Accepted.as_str(),
        ]))
        .order(interactions::offered_at)
        .select(InteractionRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(InteractionRow::into_domain).collect()
}

fn not_found(external_id: &str) -> Error {
    Error::interaction_not_found(external_id)
}

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
}

fn variables_json(variables: &[Variable]) -> Result<serde_json::Value, Error> {
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
            let identification = match &offer.destination {
                Destination::Call { number } => {
                    identification::identify_call(tx, domain, number.as_deref()).await?
                }
                Destination::Chat(identity) => {
                    identification::identify_chat(tx, domain, identity).await?
                }
            };
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
            if let Some(contact) = identification.autolink_target(domain.autolink) {
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
            }
            let interaction = find(tx, domain.id, &offer.external_id, false)
                .await?
                .ok_or_else(|| not_found(&offer.external_id))?;
            return Ok(OfferResult {
                interaction,
                transferred: false,
                previous_agent: None,
                created: true,
                changed: true,
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
    })
}

/// An answer (`$3` = `accepted`, by agent `$4`, of an offered interaction) or an end (`$3` =
/// `closed`, of an open one) in one statement, which is atomic on its own: the state change
/// and its event for the interaction's agent (`$5`, numbered by the statement's transaction as
/// [`super::outbox`] requires). No row when the interaction is missing or not in a state that
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
    announcer: &dyn super::tx::Announce,
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
    announcer: &dyn super::tx::Announce,
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
    announcer: &dyn super::tx::Announce,
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

/// Binds the interaction to `contact`, marks the contact active, and audits it: one statement
/// ([`BIND_SQL`]), after ending (and auditing) the binding to `current`, the contact it is
/// bound to now (read from its locked row; binding to the same contact again changes
/// nothing). `by` is the agent who selected, `None` for autolink (the audit actor is then
/// `actor`, the routing service).
#[expect(
    clippy::too_many_arguments,
    reason = "the binding's facts, each a plain value"
)]
pub async fn bind(
    conn: &mut Tx<'_>,
    domain: DomainId,
    id: i64,
    external_id: &str,
    current: Option<ContactId>,
    contact: ContactId,
    actor: UserId,
    by: Option<UserId>,
) -> Result<(), Error> {
    if current == Some(contact) {
        return Ok(());
    }
    if let Some(previous) = current {
        end_binding(conn, domain, id, external_id, previous, actor).await?;
    }
    BindStatement {
        domain: domain.0,
        interaction: id,
        contact: contact.0,
        by: by.map(|u| u.0),
    }
    .execute(conn)
    .await?;
    conn.audit(AuditRecord {
        domain,
        actor,
        action: AuditAction::InteractionBind,
        contact,
        interaction: Some(external_id),
        before: None,
        after: Some(serde_json::json!({
            "interaction_id": external_id,
            "contact_id": contact,
            "bound_by": by,
            "autolink": by.is_none(),
        })),
    });
    Ok(())
}

/// A new binding (`$2` to `$3`, by `$4`): the history row, the interaction's bound contact, and
/// the contact's activity, in one statement.
pub const BIND_SQL: &str = "\
WITH b AS (INSERT INTO interaction_bindings (domain_id, interaction_id, contact_id, bound_by) \
           VALUES ($1, $2, $3, $4) RETURNING 1), \
     i AS (UPDATE interactions SET bound_contact_id = $3, updated_at = now() \
           WHERE id = $2 RETURNING 1), \
     c AS (UPDATE contacts SET last_active_at = now() WHERE domain_id = $1 AND id = $3 \
           RETURNING 1) \
SELECT (SELECT count(*) FROM b) + (SELECT count(*) FROM i) + (SELECT count(*) FROM c) AS n";

crate::db::cached::cached_statement!(
    /// [`BIND_SQL`], prepared once per connection.
    BindStatement = BIND_SQL;
    domain: BigInt => i64,
    interaction: BigInt => i64,
    contact: BigInt => i64,
    by: Nullable<BigInt> => Option<i64>,
);

/// Ends the current binding of interaction `id` (to `contact`) and audits it (call in a
/// transaction).
async fn end_binding(
    conn: &mut Tx<'_>,
    domain: DomainId,
    id: i64,
    external_id: &str,
    contact: ContactId,
    actor: UserId,
) -> Result<(), Error> {
    diesel::update(
        interaction_bindings::table
            .filter(interaction_bindings::interaction_id.eq(id))
            .filter(interaction_bindings::unbound_at.is_null()),
    )
    .set((
        interaction_bindings::unbound_at.eq(diesel::dsl::now),
        interaction_bindings::unbound_by.eq(actor.0),
    ))
    .execute(conn)
    .await?;
    conn.audit(AuditRecord {
        domain,
        actor,
        action: AuditAction::InteractionUnbind,
        contact,
        interaction: Some(external_id),
        before: Some(serde_json::json!({ "interaction_id": external_id, "contact_id": contact })),
        after: None,
    });
    Ok(())
}

/// Removes the binding of interaction `id`, if any (idempotent; call in a transaction).
pub async fn unbind(
    conn: &mut Tx<'_>,
    domain: DomainId,
    id: i64,
    external_id: &str,
    actor: UserId,
) -> Result<Option<ContactId>, Error> {
    let current: Option<i64> = interaction_bindings::table
        .filter(interaction_bindings::interaction_id.eq(id))
        .filter(interaction_bindings::unbound_at.is_null())
        .select(interaction_bindings::contact_id)
        .first(conn)
        .await
        .optional()?;
    let Some(contact) = current.map(ContactId) else {
        return Ok(None);
    };
    end_binding(conn, domain, id, external_id, contact, actor).await?;
    diesel::update(interactions::table.find(id))
        .set((
            interactions::bound_contact_id.eq(None::<i64>),
            interactions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(Some(contact))
}

/// Interactions of `domain` by internal id.
pub async fn by_ids(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Interaction>, Error> {
    let rows: Vec<InteractionRow> = interactions::table
        .filter(interactions::domain_id.eq(domain.0))
        .filter(interactions::id.eq_any(ids))
        .select(InteractionRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|r| r.into_domain().map(|i| (i.id, i)))
        .collect()
}

/// One binding of a contact's history.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Binding id (the paging key).
    pub id: i64,
    /// The interaction.
    pub interaction: Interaction,
    /// Who bound it (`None`: autolink).
    pub bound_by: Option<UserId>,
    /// When.
    pub bound_at: DateTime<Utc>,
    /// Who ended it.
    pub unbound_by: Option<UserId>,
    /// When it ended.
    pub unbound_at: Option<DateTime<Utc>>,
}

/// A contact's bindings, newest first, with binding ids below `before` (paging).
pub async fn history(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Binding>, Error> {
    type Row = (
        i64,
        i64,
        Option<i64>,
        DateTime<Utc>,
        Option<i64>,
        Option<DateTime<Utc>>,
    );
    let mut query = interaction_bindings::table
        .filter(interaction_bindings::domain_id.eq(domain.0))
        .filter(interaction_bindings::contact_id.eq(contact.0))
        .into_boxed();
    if let Some(b) = before {
        query = query.filter(interaction_bindings::id.lt(b));
    }
    let rows: Vec<Row> = query
        .order(interaction_bindings::id.desc())
        .limit(limit)
        .select((
            interaction_bindings::id,
            interaction_bindings::interaction_id,
            interaction_bindings::bound_by,
            interaction_bindings::bound_at,
            interaction_bindings::unbound_by,
            interaction_bindings::unbound_at,
        ))
        .load(conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let interactions = by_ids(conn, domain, &ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, iid, bound_by, bound_at, unbound_by, unbound_at)| {
            let interaction = interactions.get(&iid).cloned()?;
            Some(Binding {
                id,
                interaction,
                bound_by: bound_by.map(UserId),
                bound_at,
                unbound_by: unbound_by.map(UserId),
                unbound_at,
            })
        })
        .collect())
}

/// Who an offer is for and whether its interaction is known: the agent's name (`NULL`: no
/// such user in the domain) and whether an interaction with the routing id exists.
pub const OFFER_CONTEXT_SQL: &str = "\
SELECT (SELECT name FROM users WHERE domain_id = $1 AND id = $2) AS agent_name, \
       EXISTS (SELECT 1 FROM interactions WHERE domain_id = $1 AND external_id = $3) AS known";

crate::db::cached::cached_statement!(
    /// [`OFFER_CONTEXT_SQL`], prepared once per connection.
    OfferContextStatement = OFFER_CONTEXT_SQL;
    domain: BigInt => i64,
    agent: BigInt => i64,
    external_id: Text => String,
);

/// What [`offer_context`] found.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct OfferContext {
    /// The agent's name; `None` when the agent is not a user of the domain.
    #[diesel(sql_type = Nullable<Text>)]
    pub agent_name: Option<String>,
    /// An interaction with this routing id exists (a re-offer or a transfer).
    #[diesel(sql_type = Bool)]
    pub known: bool,
}

/// Reads an offer's context ([`OFFER_CONTEXT_SQL`]) on a shared connection, so it can be
/// pipelined with the identification.
pub async fn offer_context(
    mut conn: &AsyncPgConnection,
    domain: DomainId,
    agent: UserId,
    external_id: &str,
) -> Result<OfferContext, Error> {
    Ok(OfferContextStatement {
        domain: domain.0,
        agent: agent.0,
        external_id: external_id.to_owned(),
    }
    .get_result(&mut conn)
    .await?)
}

/// A first offer in one statement, which is atomic on its own (no transaction, no round trip
/// for `BEGIN` or `COMMIT`): the interaction (`$1`..`$20`), its binding when it was autolinked
/// (`$20`, audited as actor `$21` with `$22`), and its events for the agent (`$23`, numbered
/// by the statement's transaction as [`super::outbox`] requires; announced after it commits,
/// see [`super::tx`]). When the routing id is taken (a concurrent
/// first offer), nothing is written and no row comes back. This is the unit of work of the hot write, written out as one statement: the same
/// audit and event rows [`super::tx`]'s flush would write.
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
     t AS (UPDATE contacts SET last_active_at = now() \
           WHERE domain_id = $1 AND id = (SELECT bound_contact_id FROM ins) \
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
         + (SELECT count(*) FROM e) AS writes \
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
);

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The audit record of a binding (see [`bind`]).
fn bind_record(external_id: &str, contact: ContactId, by: Option<UserId>) -> serde_json::Value {
    serde_json::json!({
        "interaction_id": external_id,
        "contact_id": contact,
        "bound_by": by,
        "autolink": by.is_none(),
    })
}

/// Inserts a first offer, already identified (and bound when autolinked), with its events
/// (payloads for the agent, in order), in one statement ([`INSERT_OFFER_SQL`]). Returns the
/// interaction's id, or `None` when the routing id is taken (nothing was written).
pub async fn insert_first_offer(
    conn: &mut AsyncPgConnection,
    announcer: &dyn super::tx::Announce,
    session: &Session,
    interaction: &Interaction,
    payloads: Vec<Vec<u8>>,
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
    };
    let inserted: Option<Inserted> = statement.get_result(conn).await.optional()?;
    if inserted.is_some() {
        announcer.announce(session.domain.id);
    }
    Ok(inserted.map(|r| r.id))
}

#[cfg(test)]
mod tests {
    use super::InteractionRow;

    #[test]
    fn the_written_out_columns_are_the_rows_fields_in_order() {
        // The find statements' rows are read by position.
        let written: String = interaction_columns!()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            written,
            super::super::cached::select_list::<InteractionRow>()
        );
    }
}
