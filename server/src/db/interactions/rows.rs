//! Interaction rows as the domain reads them: by routing id, an agent's open ones, by id, and
//! what an offer needs to know first. The reads every other file of [`super`] builds on.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::cached::{JsonOf, positional};
use crate::db::schema::interactions;
use crate::domain::contact::ChannelIdentity;
use crate::domain::identify::{Candidate, Identification, Outcome};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::interaction::{
    Destination, Direction, Interaction, InteractionState, Member, Queue, Variable,
};
use crate::error::Error;

#[derive(Queryable, Selectable)]
#[diesel(table_name = interactions, check_for_backend(diesel::pg::Pg))]
pub(super) struct InteractionRow {
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

pub(super) fn corrupt(id: i64, what: &str) -> Error {
    Error::Internal(format!("interaction {id}: unreadable {what}"))
}

impl InteractionRow {
    pub(super) fn into_domain(self) -> Result<Interaction, Error> {
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
                number_holders: 0,
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
pub(super) use interaction_columns;

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
pub(super) type InteractionSql = diesel::dsl::AsSelect<InteractionRow, diesel::pg::Pg>;

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

pub(super) fn not_found(external_id: &str) -> Error {
    Error::interaction_not_found(external_id)
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
        assert_eq!(written, crate::db::cached::select_list::<InteractionRow>());
    }
}
