//! The contact change feed's store: changes written with their transaction's flush
//! ([`super::tx`]), numbered like the session events and read by the same horizon
//! ([`super::outbox`]'s module documentation holds the argument: one change per ordinal of its
//! writing transaction, delivered only below the oldest transaction still running, so each is
//! delivered once, in commit order, and a resume point is exact on every server), pruned after
//! the retention, and the listing a consumer resyncs from (contacts in the order of their last
//! change, `contacts.change_position`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::outbox::horizon_cte;
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::error::Error;

/// A change to write: the contact it concerns and its encoded `ContactChange` (without
/// position and time, which the store gives it).
#[derive(Debug, Clone)]
pub struct ChangeOut {
    /// The contact.
    pub contact: ContactId,
    /// The encoded change.
    pub payload: Vec<u8>,
}

/// A stored change.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredChange {
    /// Its position.
    #[diesel(sql_type = BigInt)]
    pub sequence: i64,
    /// When it was written.
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    /// The contact.
    #[diesel(sql_type = BigInt)]
    pub contact_id: i64,
    /// The encoded change.
    #[diesel(sql_type = Binary)]
    pub payload: Vec<u8>,
}

/// Where a domain's feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct FeedPosition {
    /// The last deliverable change (or the pruned-through mark when later).
    #[diesel(sql_type = BigInt)]
    pub last: i64,
    /// The highest stored change: a resume point above it was never handed out.
    #[diesel(sql_type = BigInt)]
    pub stored: i64,
    /// Changes up to here were pruned.
    #[diesel(sql_type = BigInt)]
    pub pruned: i64,
}

/// [`position`]'s statement.
pub const CHANGES_POSITION_SQL: &str = concat!(
    "WITH ",
    horizon_cte!(),
    ", p AS (SELECT coalesce((SELECT changes_pruned_through FROM domain_event_counters \
                              WHERE domain_id = $1), 0) AS pruned) \
     SELECT greatest(p.pruned, coalesce((SELECT c.sequence FROM contact_changes c \
                                         WHERE c.domain_id = $1 AND c.sequence < h.first_held \
                                         ORDER BY c.sequence DESC LIMIT 1), 0)) AS last, \
            greatest(p.pruned, coalesce((SELECT c.sequence FROM contact_changes c \
                                         WHERE c.domain_id = $1 \
                                         ORDER BY c.sequence DESC LIMIT 1), 0)) AS stored, \
            p.pruned \
     FROM h, p"
);

/// Where `domain`'s feed stands.
pub async fn position(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
) -> Result<FeedPosition, Error> {
    Ok(diesel::sql_query(CHANGES_POSITION_SQL)
        .bind::<BigInt, _>(domain.0)
        .get_result(conn)
        .await?)
}

/// [`since`]'s statement: changes of `$1` after `$2` in order, each marked ready when below
/// the horizon of the same snapshot, at most `$3`.
pub const CHANGES_SINCE_SQL: &str = concat!(
    "WITH ",
    horizon_cte!(),
    " SELECT c.sequence, c.occurred_at, c.contact_id, c.payload, \
            c.sequence < h.first_held AS ready \
     FROM contact_changes c, h \
     WHERE c.domain_id = $1 AND c.sequence > $2 \
     ORDER BY c.sequence \
     LIMIT $3"
);

/// Changes after a position: the deliverable ones, and whether more wait for an older
/// transaction to end.
#[derive(Debug, Clone)]
pub struct SinceChanges {
    /// The deliverable changes, oldest first.
    pub changes: Vec<StoredChange>,
    /// True when a change after them waits for an older transaction.
    pub held: bool,
}

/// The deliverable changes of `domain` after `after`, at most `limit`.
pub async fn since(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    after: i64,
    limit: i64,
) -> Result<SinceChanges, Error> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        change: StoredChange,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ready: bool,
    }
    let rows: Vec<Row> = diesel::sql_query(CHANGES_SINCE_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
    let (changes, held) = super::outbox::deliverable(rows.into_iter().map(|r| (r.ready, r.change)));
    Ok(SinceChanges { changes, held })
}

/// Deletes changes older than `before`, recording per domain the position pruned through.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> Result<usize, Error> {
    #[derive(QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pruned: Pruned = diesel::sql_query(
        "WITH gone AS (DELETE FROM contact_changes WHERE occurred_at < $1 \
                       RETURNING domain_id, sequence), \
              upd AS (INSERT INTO domain_event_counters (domain_id, changes_pruned_through) \
                      SELECT domain_id, max(sequence) FROM gone GROUP BY domain_id \
                      ON CONFLICT (domain_id) DO UPDATE \
                      SET changes_pruned_through = \
                          greatest(domain_event_counters.changes_pruned_through, \
                                   EXCLUDED.changes_pruned_through) \
                      RETURNING 1) \
         SELECT count(*) AS n FROM gone",
    )
    .bind::<Timestamptz, _>(before)
    .get_result(conn)
    .await?;
    Ok(usize::try_from(pruned.n).unwrap_or(0))
}

/// A listed contact: its id and the position of its last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Listed {
    /// The contact.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its last change's position.
    #[diesel(sql_type = BigInt)]
    pub change_position: i64,
}

/// Contacts of `domain` after `after` (change position, id) in that order, carrying every one
/// of `labels` and owned by `owner` when given, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    after: (i64, i64),
    labels: &[String],
    owner: Option<UserId>,
    limit: i64,
) -> Result<Vec<Listed>, Error> {
    Ok(diesel::sql_query(
        "SELECT c.id, c.change_position FROM contacts c \
         WHERE c.domain_id = $1 AND (c.domain_id, c.change_position, c.id) > ($1, $2, $3) \
           AND ($4::bigint IS NULL OR c.owner_id = $4) \
           AND (SELECT count(*) FROM contact_labels cl JOIN labels l ON l.id = cl.label_id \
                WHERE cl.contact_id = c.id AND l.domain_id = $1 AND l.name = ANY($5)) \
               = cardinality($5) \
         ORDER BY c.change_position, c.id \
         LIMIT $6",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(after.0)
    .bind::<BigInt, _>(after.1)
    .bind::<Nullable<BigInt>, _>(owner.map(|u| u.0))
    .bind::<Array<Text>, _>(labels)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
