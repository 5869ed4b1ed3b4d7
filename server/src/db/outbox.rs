//! The event outbox: events are written in the transaction of the change they describe, with a
//! per-domain sequence whose row lock makes commit order equal sequence order, and announced
//! with `NOTIFY client_info_events` (delivered at commit).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{domain_event_counters, events};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::error::Error;

/// The NOTIFY channel.
pub const CHANNEL: &str = "client_info_events";

/// An event to write: who it concerns and its encoded payload.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The agents whose streams receive it.
    pub recipients: Vec<UserId>,
    /// The encoded event (without sequence).
    pub payload: Vec<u8>,
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct StoredEvent {
    /// The domain.
    pub domain_id: i64,
    /// Sequence within the domain.
    pub sequence: i64,
    /// Commit time (approximately).
    pub occurred_at: DateTime<Utc>,
    /// Recipients.
    pub agent_ids: Vec<Option<i64>>,
    /// Encoded payload.
    pub payload: Vec<u8>,
}

impl StoredEvent {
    /// True when the event concerns `agent`.
    pub fn concerns(&self, agent: UserId) -> bool {
        self.agent_ids.contains(&Some(agent.0))
    }
}

/// Takes the next `$2` sequences of domain `$1`, writes the events (recipients `$3` as array
/// literals, payloads `$4`) and announces them, in one round trip: the counter's row lock, which
/// serialises the domain's writers until commit, is then held for this statement and the commit
/// only.
pub const PUBLISH_SQL: &str = "\
WITH c AS (INSERT INTO domain_event_counters (domain_id, last_sequence) VALUES ($1, $2) \
           ON CONFLICT (domain_id) DO UPDATE \
           SET last_sequence = domain_event_counters.last_sequence + EXCLUDED.last_sequence \
           RETURNING last_sequence), \
     e AS (INSERT INTO events (domain_id, sequence, agent_ids, payload) \
           SELECT $1, c.last_sequence - $2 + x.ord, x.agents::bigint[], x.payload \
           FROM c, unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS x (agents, payload, ord)) \
SELECT c.last_sequence, \
       pg_notify('client_info_events', $1::text || ':' || c.last_sequence::text)::text AS notified \
FROM c";

crate::db::cached::cached_statement!(
    /// [`PUBLISH_SQL`], prepared once per connection.
    PublishStatement = PUBLISH_SQL;
    domain: BigInt => i64,
    n: BigInt => i64,
    agents: Array<Text> => Vec<String>,
    payloads: Array<Binary> => Vec<Vec<u8>>,
);

#[derive(QueryableByName)]
struct Published {
    #[diesel(sql_type = BigInt)]
    last_sequence: i64,
}

/// Writes `events` (call as the last step of a transaction, so the counter's row lock is held
/// briefly). Returns the last sequence written.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    outgoing: &[Outgoing],
) -> Result<Option<i64>, Error> {
    let outgoing: Vec<&Outgoing> = outgoing
        .iter()
        .filter(|o| !o.recipients.is_empty())
        .collect();
    if outgoing.is_empty() {
        return Ok(None);
    }
    let n = i64::try_from(outgoing.len()).unwrap_or(i64::MAX);
    let agents: Vec<String> = outgoing
        .iter()
        .map(|o| {
            let mut ids: Vec<i64> = o.recipients.iter().map(|u| u.0).collect();
            ids.sort_unstable();
            ids.dedup();
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let payloads: Vec<Vec<u8>> = outgoing.iter().map(|o| o.payload.clone()).collect();
    let row: Published = PublishStatement {
        domain: domain.0,
        n,
        agents,
        payloads,
    }
    .get_result(conn)
    .await?;
    let last = row.last_sequence;
    Ok(Some(last))
}

/// The domain's last sequence and the sequence pruned through.
pub async fn position(conn: &mut AsyncPgConnection, domain: DomainId) -> Result<(i64, i64), Error> {
    Ok(domain_event_counters::table
        .find(domain.0)
        .select((
            domain_event_counters::last_sequence,
            domain_event_counters::pruned_through,
        ))
        .first(conn)
        .await
        .optional()?
        .unwrap_or((0, 0)))
}

/// Events of `domain` after `after`, oldest first, optionally only those for `agent`.
pub async fn since(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    after: i64,
    agent: Option<UserId>,
    limit: i64,
) -> Result<Vec<StoredEvent>, Error> {
    let mut query = events::table
        .filter(events::domain_id.eq(domain.0))
        .filter(events::sequence.gt(after))
        .into_boxed();
    if let Some(agent) = agent {
        query = query.filter(events::agent_ids.contains(vec![Some(agent.0)]));
    }
    Ok(query
        .order(events::sequence)
        .limit(limit)
        .select(StoredEvent::as_select())
        .load(conn)
        .await?)
}

/// Deletes events older than `before` and records, per domain, the sequence pruned through.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> Result<usize, Error> {
    #[derive(QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pruned: Pruned = diesel::sql_query(
        "WITH gone AS (DELETE FROM events WHERE occurred_at < $1 RETURNING domain_id, sequence), \
              upd AS (UPDATE domain_event_counters c SET pruned_through = g.max_seq \
                      FROM (SELECT domain_id, max(sequence) AS max_seq FROM gone GROUP BY domain_id) g \
                      WHERE c.domain_id = g.domain_id AND c.pruned_through < g.max_seq RETURNING 1) \
         SELECT count(*) AS n FROM gone",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .get_result(conn)
    .await?;
    Ok(usize::try_from(pruned.n).unwrap_or(0))
}

/// The agents whose open interactions have any of `$2` bound or as a candidate: two lookups in
/// the partial indexes on open interactions (migration `index_open_interaction_contacts`).
pub const CONCERNED_AGENTS_SQL: &str = "\
SELECT agent_id FROM interactions \
WHERE domain_id = $1 AND state <> 'closed' AND bound_contact_id = ANY($2) \
UNION \
SELECT agent_id FROM interactions \
WHERE domain_id = $1 AND state <> 'closed' AND interaction_candidate_ids(candidates) && $2";

/// The agents whose open interactions have any of `contacts` bound or as a candidate.
pub async fn concerned_agents(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contacts: &[ContactId],
) -> Result<Vec<UserId>, Error> {
    #[derive(QueryableByName)]
    struct Agent {
        #[diesel(sql_type = BigInt)]
        agent_id: i64,
    }
    let ids: Vec<i64> = contacts.iter().map(|c| c.0).collect();
    let rows: Vec<Agent> = diesel::sql_query(CONCERNED_AGENTS_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(&ids)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| UserId(r.agent_id)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn publish_notifies_the_channel_the_hub_listens_on() {
        assert!(super::PUBLISH_SQL.contains(&format!("pg_notify('{}'", super::CHANNEL)));
    }
}
