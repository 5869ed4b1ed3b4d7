//! The event outbox: events are written in the transaction of the change they describe,
//! numbered by that transaction, and delivered once no older transaction can still commit.
//!
//! # Ordering without a lock
//!
//! Watchers resume from one number: "everything of my domain after N". So no event may ever be
//! delivered with a number below one already delivered. The former design took the domain's
//! counter row lock in every write and held it to commit, so commit order equalled number
//! order; every writer of a domain then waited on every other.
//!
//! Now a writer takes no lock: each event's `sequence` is its transaction's id (`xid8`, from
//! `pg_current_xact_id()`, also stored in `xid`) times 65,536 plus its ordinal in the
//! transaction. Transaction ids are handed out in increasing order, so a transaction that
//! begins after another committed has a larger id, and so do its events. A reader delivers, in
//! `sequence` order, only the events below the *horizon* of its own snapshot: the oldest
//! transaction that snapshot shows running (`pg_snapshot_xip`), or its `xmax` when none is.
//! Running transactions that `pg_stat_activity` shows in *another* database of the cluster are
//! left out (they cannot write this database's events), so a long transaction elsewhere on the
//! cluster does not hold delivery back. Horizon and events come from one plain statement,
//! hence one snapshot ([`HORIZON_CTE`]).
//!
//! Invariants, and why they hold:
//! - **Nothing lands below what was delivered.** Every transaction of this database below the
//!   horizon had ended when the reading snapshot was taken (it is neither running in the
//!   snapshot nor at or above its `xmax`), so the snapshot shows all its events (committed) or
//!   none (rolled back), and no transaction can get an id below the horizon any more. So the
//!   events below the horizon are final, and every event still to come has a larger id, hence
//!   a larger number, than any delivered. A transaction of another database wrongly left out
//!   would break this, which is why only a positive sighting in `pg_stat_activity` (same
//!   transaction id, other database) leaves one out: a transaction the reader cannot see
//!   there (another role without `pg_read_all_stats`, a prepared transaction) holds the
//!   horizon, which only delays delivery.
//! - **Every committed event is delivered once.** It is read when the horizon passes its
//!   transaction (each read continues after the last number delivered); a resuming client
//!   asks for numbers after the last it got, and gets each later number once.
//! - **Rolled-back events never appear.** They are never visible.
//! - **Numbers are unique.** One transaction id per writing transaction; ordinals within it
//!   (one publication per transaction: the write path's unit of work publishes once, and the
//!   primary key `(domain_id, sequence)` refuses a second).
//! - **Order**: by transaction start (id), then within the transaction; causally ordered
//!   writes keep their order.
//! - The deliverable events are a prefix in `sequence` order (`sequence < horizon << 16`),
//!   so readers scan the primary key and stop at the first event that is not deliverable.
//! - **Horizons need not grow from one statement to the next.** A transaction of another
//!   database that one statement finds in `pg_stat_activity` (left out) may, by the next, be
//!   in that statement's snapshot but have ended before its `pg_stat_activity` read: it then
//!   holds the horizon, below the previous one. That only delays, as long as no reader moves a
//!   cursor past events it did not deliver: each read continues after the last event it
//!   delivered; a session stream catching up reads what the server's hub already fetched as
//!   final ([`AgentRead::final_through`]: the hub sends its subscribers only what it fetches
//!   later); and a resume point is checked against the highest stored event
//!   ([`Position::stored`]), not the last deliverable one.
//!
//! Readers must not run inside a write transaction of their own (a snapshot does not list its
//! own transaction as running): the hub and the session stream read on pooled connections
//! outside transactions.
//!
//! The price: a long write transaction on this database holds delivery back until it ends
//! (commits or rolls back), for every domain. Keep write transactions on it short (the
//! server's are; set `idle_in_transaction_session_timeout` for other clients). Writers never
//! wait, and nothing is skipped or reordered when the long transaction ends.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::error::Error;

/// The NOTIFY channel.
pub const CHANNEL: &str = "client_info_events";

#[cfg(test)]
mod tests {
    #[test]
    fn notify_uses_the_channel_the_hub_listens_on() {
        assert!(super::NOTIFY_SQL.contains(&format!("pg_notify('{}'", super::CHANNEL)));
    }

    #[test]
    fn announcements_name_their_domain_and_origin() {
        use crate::domain::ids::DomainId;
        assert_eq!(
            super::parse_announcement("7:abc"),
            Some((DomainId(7), "abc"))
        );
        assert_eq!(super::parse_announcement("7:"), Some((DomainId(7), "")));
        assert_eq!(super::parse_announcement("7"), Some((DomainId(7), "")));
        assert_eq!(super::parse_announcement("x:abc"), None);
    }
}

/// Who receives an event.
#[derive(Debug, Clone, Default)]
pub struct Recipients {
    /// These agents.
    pub agents: Vec<UserId>,
    /// And the agents whose open interactions have one of these contacts bound or as a
    /// candidate when the transaction commits (looked up by the flush, see [`super::tx`]).
    pub concerned_with: Vec<ContactId>,
}

/// An event to write: who it concerns and its encoded payload.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Who receives it.
    pub recipients: Recipients,
    /// The encoded event (without sequence).
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// An event for `agents`.
    pub fn to(agents: Vec<UserId>, payload: Vec<u8>) -> Self {
        Self {
            recipients: Recipients {
                agents,
                concerned_with: Vec::new(),
            },
            payload,
        }
    }

    /// True when no recipient is named, so the event can be left out.
    pub fn reaches_nobody(&self) -> bool {
        self.recipients.agents.is_empty() && self.recipients.concerned_with.is_empty()
    }
}

/// A stored event.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredEvent {
    /// The domain.
    #[diesel(sql_type = BigInt)]
    pub domain_id: i64,
    /// Sequence within the domain.
    #[diesel(sql_type = BigInt)]
    pub sequence: i64,
    /// When it was written: the clock at its write, the change's last step before its commit.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    /// Recipients.
    #[diesel(sql_type = Array<diesel::sql_types::Nullable<BigInt>>)]
    pub agent_ids: Vec<Option<i64>>,
    /// Encoded payload.
    #[diesel(sql_type = Binary)]
    pub payload: Vec<u8>,
}

impl StoredEvent {
    /// True when the event concerns `agent`.
    pub fn concerns(&self, agent: UserId) -> bool {
        self.agent_ids.contains(&Some(agent.0))
    }
}

/// Most events one transaction may publish (the ordinal's share of a sequence number).
pub const MAX_EVENTS_PER_TRANSACTION: usize = 65_535;

/// Announces that domains `$1` have new events, to every server's hub (`LISTEN` on
/// [`CHANNEL`]); the payload is `domain:origin`, `$2` naming the announcing hub (so that it
/// can skip its own announcements, which it acted on already).
pub const NOTIFY_SQL: &str = "SELECT count(pg_notify('client_info_events', d::text || ':' || $2)) AS n \
     FROM unnest($1::bigint[]) AS d";

crate::db::cached::cached_statement!(
    /// [`NOTIFY_SQL`], prepared once per connection.
    NotifyStatement = NOTIFY_SQL;
    domains: Array<BigInt> => Vec<i64>,
    origin: Text => String,
);

/// Announces `domains` from `origin` (`""`: no hub), in the caller's transaction, or in a tiny
/// transaction of its own, which writes nothing and so flushes nothing.
pub async fn notify(
    conn: &mut AsyncPgConnection,
    domains: &[DomainId],
    origin: &str,
) -> Result<(), Error> {
    NotifyStatement {
        domains: domains.iter().map(|d| d.0).collect(),
        origin: origin.to_owned(),
    }
    .execute(conn)
    .await?;
    Ok(())
}

/// The domain and the announcing hub of a notification's payload (`domain:origin`; older
/// payloads carry the domain alone).
pub fn parse_announcement(payload: &str) -> Option<(DomainId, &str)> {
    let (domain, origin) = payload.split_once(':').unwrap_or((payload, ""));
    domain.parse().ok().map(|d| (DomainId(d), origin))
}

/// Where a domain's events stand, for a stream that opens.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Position {
    /// The last deliverable sequence (below the horizon; pruned events count).
    #[diesel(sql_type = BigInt)]
    pub last: i64,
    /// The highest sequence stored or pruned, deliverable or not: no client can have received
    /// a higher one. (Checked against rather than `last`, which a later statement's horizon can
    /// place below what an earlier one delivered, see [`AgentRead::final_through`].)
    #[diesel(sql_type = BigInt)]
    pub stored: i64,
    /// The sequence pruned through.
    #[diesel(sql_type = BigInt)]
    pub pruned: i64,
}

/// Where `domain`'s events stand.
pub async fn position(conn: &mut AsyncPgConnection, domain: DomainId) -> Result<Position, Error> {
    Ok(PositionStatement { domain: domain.0 }
        .get_result(conn)
        .await?)
}

// The text of [`HORIZON_CTE`], for `concat!`.
macro_rules! horizon_cte {
    () => {
        "\
h AS (SELECT (least(pg_snapshot_xmax(s), \
                    (SELECT min(x) FROM pg_snapshot_xip(s) AS x \
                     WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
                                       WHERE a.datname <> current_database() \
                                         AND a.backend_xid::text::bigint \
                                             = (x::text::bigint & 4294967295)))) \
              ::text::bigint << 16) AS first_held \
      FROM pg_current_snapshot() AS s)"
    };
}
pub(crate) use horizon_cte;

/// The horizon of the statement's snapshot, as the first sequence number that is not
/// deliverable yet (`horizon << 16`; see the module documentation): the oldest transaction the
/// snapshot shows running, unless `pg_stat_activity` places it in another database, else the
/// snapshot's `xmax`. `backend_xid` is a 32-bit `xid`: it is compared with the low 32 bits of
/// the `xid8` (running transactions are never 2^32 apart).
pub const HORIZON_CTE: &str = horizon_cte!();

/// The last deliverable sequence of `$1` (pruned events count), its highest stored one and
/// its pruned-through mark.
pub const POSITION_SQL: &str = concat!(
    "WITH ",
    horizon_cte!(),
    ", p AS (SELECT coalesce((SELECT pruned_through FROM domain_event_counters \
                              WHERE domain_id = $1), 0) AS pruned) \
     SELECT greatest(p.pruned, coalesce((SELECT e.sequence FROM events e \
                                         WHERE e.domain_id = $1 AND e.sequence < h.first_held \
                                         ORDER BY e.sequence DESC LIMIT 1), 0)) AS last, \
            greatest(p.pruned, coalesce((SELECT e.sequence FROM events e WHERE e.domain_id = $1 \
                                         ORDER BY e.sequence DESC LIMIT 1), 0)) AS stored, \
            p.pruned \
     FROM h, p"
);

crate::db::cached::cached_statement!(
    /// [`POSITION_SQL`], prepared once per connection.
    PositionStatement = POSITION_SQL;
    domain: BigInt => i64,
);

/// Events of a domain after a sequence, with whether each is deliverable yet (its transaction
/// below the horizon). Rows come in sequence order, so the deliverable ones are a prefix.
pub struct Since {
    /// The deliverable events, oldest first.
    pub events: Vec<StoredEvent>,
    /// True when an event after them waits for an older transaction to end.
    pub held: bool,
}

/// One agent's read of [`since`]: a session stream catching up.
#[derive(Debug, Clone, Copy)]
pub struct AgentRead {
    /// The agent.
    pub agent: UserId,
    /// Events up to this sequence are known final: a read of this server delivered past them
    /// (the hub's, under an earlier snapshot's horizon). They are returned even when this
    /// read's horizon is lower. A horizon can be lower in a later statement: a transaction of
    /// another database that one statement saw in `pg_stat_activity` and left out may, in the
    /// next, be in the snapshot but already gone from `pg_stat_activity`, and hold it.
    pub final_through: i64,
}

/// Events of `domain` after `after`, oldest first, optionally only those for one agent, up to
/// `limit`; only those below the horizon (or known final) are returned, `held` tells whether
/// more wait.
pub async fn since(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    after: i64,
    agent: Option<AgentRead>,
    limit: i64,
) -> Result<Since, Error> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        event: StoredEvent,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ready: bool,
    }
    let rows: Vec<Row> = match agent {
        None => {
            SinceStatement {
                domain: domain.0,
                after,
                limit,
            }
            .load(conn)
            .await?
        }
        Some(agent) => {
            SinceAgentStatement {
                domain: domain.0,
                after,
                limit,
                agent: agent.agent.0,
                final_through: agent.final_through,
            }
            .load(conn)
            .await?
        }
    };
    let (events, held) = deliverable(rows.into_iter().map(|r| (r.ready, r.event)));
    Ok(Since { events, held })
}

/// The rows up to the first one not ready to deliver (an older transaction still runs), and
/// whether one was held back: what a read of the outbox or the change feed may hand out.
pub fn deliverable<T>(rows: impl IntoIterator<Item = (bool, T)>) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    for (ready, row) in rows {
        if !ready {
            return (out, true);
        }
        out.push(row);
    }
    (out, false)
}

/// [`since`]'s statement for every agent (the hub's read): events of `$1` after `$2` in
/// sequence order, each marked ready when below the horizon of the same snapshot
/// ([`HORIZON_CTE`]), at most `$3`.
pub const SINCE_SQL: &str = concat!(
    "WITH ",
    horizon_cte!(),
    " SELECT e.domain_id, e.sequence, e.occurred_at, e.agent_ids, e.payload, \
            e.sequence < h.first_held AS ready \
     FROM events e, h \
     WHERE e.domain_id = $1 AND e.sequence > $2 \
     ORDER BY e.sequence \
     LIMIT $3"
);

/// [`SINCE_SQL`] for one agent (`$4`), a stream catching up; events up to `$5` are ready
/// whatever the horizon ([`AgentRead::final_through`]). Two statements rather than one
/// with an "every agent" switch: with the switch, PostgreSQL planned each execution anew (the
/// plan for a switch value is cheaper than the generic plan), and planning this statement
/// costs more than running it.
pub const SINCE_AGENT_SQL: &str = concat!(
    "WITH ",
    horizon_cte!(),
    " SELECT e.domain_id, e.sequence, e.occurred_at, e.agent_ids, e.payload, \
            (e.sequence < h.first_held OR e.sequence <= $5) AS ready \
     FROM events e, h \
     WHERE e.domain_id = $1 AND e.sequence > $2 AND e.agent_ids @> ARRAY[$4] \
     ORDER BY e.sequence \
     LIMIT $3"
);

crate::db::cached::cached_statement!(
    /// [`SINCE_SQL`], prepared once per connection.
    SinceStatement = SINCE_SQL;
    domain: BigInt => i64,
    after: BigInt => i64,
    limit: BigInt => i64,
);

crate::db::cached::cached_statement!(
    /// [`SINCE_AGENT_SQL`], prepared once per connection.
    SinceAgentStatement = SINCE_AGENT_SQL;
    domain: BigInt => i64,
    after: BigInt => i64,
    limit: BigInt => i64,
    agent: BigInt => i64,
    final_through: BigInt => i64,
);

/// Deletes events older than `before` and records, per domain, the sequence pruned through.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> Result<usize, Error> {
    #[derive(QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pruned: Pruned = diesel::sql_query(
        "WITH gone AS (DELETE FROM events WHERE occurred_at < $1 RETURNING domain_id, sequence), \
              upd AS (INSERT INTO domain_event_counters (domain_id, pruned_through) \
                      SELECT domain_id, max(sequence) FROM gone GROUP BY domain_id \
                      ON CONFLICT (domain_id) DO UPDATE \
                      SET pruned_through = greatest(domain_event_counters.pruned_through, \
                                                    EXCLUDED.pruned_through) \
                      RETURNING 1) \
         SELECT count(*) AS n FROM gone",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .get_result(conn)
    .await?;
    Ok(usize::try_from(pruned.n).unwrap_or(0))
}

/// The agents whose open interactions have any of `$2` bound or as a candidate: two lookups in
/// the partial indexes on open interactions (migration `index_open_interaction_contacts`).
/// The domain is checked on the result, not in the lookups: an interaction and the contacts it
/// binds or lists are of one domain, and only the two contact indexes must serve the lookups
/// (see [`super::tx::FLUSH_SQL`]).
pub const CONCERNED_AGENTS_SQL: &str = "\
SELECT agent_id FROM ( \
  SELECT domain_id, agent_id FROM interactions \
  WHERE state <> 'closed' AND bound_contact_id = ANY($2) \
  UNION \
  SELECT domain_id, agent_id FROM interactions \
  WHERE state <> 'closed' AND interaction_candidate_ids(candidates) && $2) c \
WHERE c.domain_id = $1";

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
