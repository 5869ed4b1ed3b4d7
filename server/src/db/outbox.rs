//! The event outbox: events are written in the transaction of the change they describe, and
//! numbered after that transaction commits.
//!
//! # Why writers never wait on each other
//!
//! Watchers resume from one number: "everything of my domain after N". The numbers must come
//! without gaps and duplicates, and a number once given must never be given again or to an
//! event that later turns out not to exist. The former design numbered events inside the
//! writing transaction, holding the domain's counter row lock until commit, so that commit
//! order equalled number order; every write of a domain then waited on every other.
//!
//! Now a writer only inserts its events, unnumbered (`sequence` NULL; `id` from an identity
//! column, in insert order), and `NOTIFY`s `w:<domain>` at commit. A **sequencer** numbers
//! them: one statement ([`SEQUENCE_SQL`]) that takes the unnumbered events its snapshot sees,
//! in `id` order, raises each domain's counter by their count, writes the numbers, returns the
//! numbered events and `NOTIFY`s `s:<domain>` for the other replicas. One server at a time is
//! the sequencer: the one whose dedicated connection holds a session advisory lock
//! ([`SEQUENCER_LOCK_KEY`]); it runs the statement when a `w:` notification arrives (and on
//! its safety poll), one statement after another on that connection. The others try to take
//! the lock when they are woken, so when the sequencer's server stops (its session, and the
//! lock, end with it) another takes over at the next write. (The lock is held by a session and
//! not taken inside the statement because a statement's snapshot predates its locks: a
//! second sequencer that got the lock just after the first released it would still see the
//! first one's events as unnumbered.)
//!
//! Invariants, and why they hold:
//! - **Only committed events get numbers.** The sequencer sees an event only once its writing
//!   transaction committed (READ COMMITTED visibility); an event of a transaction that rolls
//!   back is never seen, so never numbered: no hole.
//! - **Numbers are unique and contiguous per domain.** Only the sequencer raises the counter,
//!   one sequencer at a time (the session lock), its statements one after another, each raising
//!   the counter by exactly the number of events it numbers; the unique index
//!   `(domain_id, sequence)` guards it.
//! - **A number never moves.** An event is numbered once (`sequence IS NULL` in the filter) and
//!   never renumbered, so a watcher that has seen N has seen, or can replay, every number up to
//!   N, and nothing numbered later is below N: resuming after N loses and repeats nothing.
//! - **Causal order is kept.** If a transaction began after another committed, its events have
//!   larger ids (the identity is allocated at insert), so when both are numbered in one run
//!   they keep that order; in different runs, the later run gives larger numbers. Two
//!   concurrent transactions' events are ordered by insert order: a stable order either way.
//! - **Nobody waits on a long transaction.** An open transaction's events are invisible to the
//!   sequencer until it commits (then numbered after everything committed meanwhile) or rolls
//!   back (then never). Others' events are numbered and delivered in the meantime. (A reader
//!   that waited below the oldest open transaction's id, `pg_snapshot_xmin`, would also be
//!   correct but would stall every domain, in every database of the cluster, behind one long
//!   transaction; numbering after commit needs no such horizon.)
//!
//! The price is one more step between commit and delivery: the sequencer's statement, one
//! round trip, which returns the numbered events so the hub that ran it fans them out at once.

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
    /// Sequence within the domain (only numbered events are read as stored events).
    #[diesel(select_expression = events::sequence.assume_not_null())]
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

/// Writes unnumbered events of domain `$1` (recipients `$2` as array literals, payloads `$3`)
/// and announces them (`w:<domain>`, delivered at commit), in one round trip, without a lock.
pub const PUBLISH_SQL: &str = "\
WITH e AS (INSERT INTO events (domain_id, agent_ids, payload) \
           SELECT $1, x.agents::bigint[], x.payload \
           FROM unnest($2::text[], $3::bytea[]) AS x (agents, payload) \
           RETURNING 1) \
SELECT count(*) AS written, \
       pg_notify('client_info_events', 'w:' || $1::text)::text AS notified \
FROM e";

crate::db::cached::cached_statement!(
    /// [`PUBLISH_SQL`], prepared once per connection.
    PublishStatement = PUBLISH_SQL;
    domain: BigInt => i64,
    agents: Array<Text> => Vec<String>,
    payloads: Array<Binary> => Vec<Vec<u8>>,
);

#[derive(QueryableByName)]
struct Published {
    #[diesel(sql_type = BigInt)]
    written: i64,
}

/// Writes `events`, unnumbered, in the caller's transaction (see the module documentation).
/// Returns how many were written.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    outgoing: &[Outgoing],
) -> Result<usize, Error> {
    let outgoing: Vec<&Outgoing> = outgoing
        .iter()
        .filter(|o| !o.recipients.is_empty())
        .collect();
    if outgoing.is_empty() {
        return Ok(0);
    }
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
        agents,
        payloads,
    }
    .get_result(conn)
    .await?;
    Ok(usize::try_from(row.written).unwrap_or(0))
}

/// The session advisory lock the one sequencer of a database holds on its connection.
pub const SEQUENCER_LOCK_KEY: i64 = 0x636c_6965_6e74_0002;

/// Takes the sequencer role for this connection's session, if no other session has it.
pub async fn try_become_sequencer(conn: &mut AsyncPgConnection) -> Result<bool, Error> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        held: bool,
    }
    let row: Held = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS held")
        .bind::<BigInt, _>(SEQUENCER_LOCK_KEY)
        .get_result(conn)
        .await?;
    Ok(row.held)
}

/// The sequencer (see the module documentation): numbers up to `$1` unnumbered committed events
/// in insert order, per domain, returns them numbered and announces `s:<domain>`. Run it only
/// on the connection that holds [`SEQUENCER_LOCK_KEY`]: two at once would number the same
/// events twice (a statement's snapshot is taken before it could lock anything).
pub const SEQUENCE_SQL: &str = "\
WITH pending AS (SELECT e.id, e.domain_id, \
                        row_number() OVER (PARTITION BY e.domain_id ORDER BY e.id) AS rn \
                 FROM (SELECT id, domain_id FROM events WHERE sequence IS NULL \
                       ORDER BY id LIMIT $1) e), \
     counts AS (SELECT domain_id, count(*) AS n FROM pending GROUP BY domain_id), \
     bumped AS (INSERT INTO domain_event_counters (domain_id, last_sequence) \
                SELECT domain_id, n FROM counts \
                ON CONFLICT (domain_id) DO UPDATE \
                SET last_sequence = domain_event_counters.last_sequence + EXCLUDED.last_sequence \
                RETURNING domain_id, last_sequence), \
     numbered AS (UPDATE events e SET sequence = b.last_sequence - c.n + p.rn \
                  FROM pending p JOIN counts c USING (domain_id) JOIN bumped b USING (domain_id) \
                  WHERE e.id = p.id \
                  RETURNING e.domain_id, e.sequence, e.occurred_at, e.agent_ids, e.payload), \
     notified AS (SELECT pg_notify('client_info_events', 's:' || domain_id::text) \
                  FROM counts) \
SELECT n.domain_id, n.sequence, n.occurred_at, n.agent_ids, n.payload, \
       (SELECT count(*) FROM notified) AS notices \
FROM numbered n ORDER BY n.domain_id, n.sequence";

crate::db::cached::cached_statement!(
    /// [`SEQUENCE_SQL`], prepared once per connection.
    SequenceStatement = SEQUENCE_SQL;
    limit: BigInt => i64,
);

#[derive(QueryableByName)]
struct Numbered {
    #[diesel(sql_type = BigInt)]
    domain_id: i64,
    #[diesel(sql_type = BigInt)]
    sequence: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Array<diesel::sql_types::Nullable<BigInt>>)]
    agent_ids: Vec<Option<i64>>,
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
}

/// Runs the sequencer once on the connection holding the sequencer role: up to `limit`
/// committed events numbered, returned by domain and number.
pub async fn sequence(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<StoredEvent>, Error> {
    let rows: Vec<Numbered> = SequenceStatement { limit }.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredEvent {
            domain_id: r.domain_id,
            sequence: r.sequence,
            occurred_at: r.occurred_at,
            agent_ids: r.agent_ids,
            payload: r.payload,
        })
        .collect())
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
        "WITH gone AS (DELETE FROM events WHERE occurred_at < $1 AND sequence IS NOT NULL \
                       RETURNING domain_id, sequence), \
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
    fn publish_and_sequencer_notify_the_channel_the_hub_listens_on() {
        assert!(super::PUBLISH_SQL.contains(&format!("pg_notify('{}', 'w:'", super::CHANNEL)));
        assert!(super::SEQUENCE_SQL.contains(&format!("pg_notify('{}', 's:'", super::CHANNEL)));
    }
}
