//! A client's recent history for the panel: the latest interaction with the contact that has
//! ended, the count of the last 30 days, and the others open now, in one statement of index
//! lookups (`interactions_contact_history_idx`, of closed interactions, for the latest ended
//! and the count of ended ones, bounded by the contact's own interactions;
//! `interactions_open_bound_idx` for the open ones and their count; see the EXPLAIN test).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::JsonOf;
use crate::domain::ids::{ContactId, DomainId};
use crate::domain::interaction::{ClientHistory, Interaction, RecentInteraction};
use crate::error::Error;

/// The history of contact `$2` of domain `$1`, interaction `$3` left out.
pub const HISTORY_SQL: &str = "\
SELECT (SELECT jsonb_build_object('interaction_id', i.external_id, 'kind', i.kind, \
               'direction', i.direction, 'state', i.state, 'queue_id', i.queue_id, \
               'queue_name', i.queue_name, 'agent_id', i.agent_id, \
               'agent_name', (SELECT name FROM users WHERE id = i.agent_id), \
               'offered_at', i.offered_at, 'closed_at', i.closed_at) \
        FROM interactions i \
        WHERE i.domain_id = $1 AND i.bound_contact_id = $2 AND i.state = 'closed' \
          AND i.external_id <> $3 \
        ORDER BY i.offered_at DESC LIMIT 1) AS last_closed, \
       (SELECT count(*) FROM interactions i \
        WHERE i.domain_id = $1 AND i.bound_contact_id = $2 AND i.state = 'closed' \
          AND i.offered_at >= now() - interval '30 days' AND i.external_id <> $3) \
       + (SELECT count(*) FROM interactions i \
          WHERE i.bound_contact_id = $2 AND i.state <> 'closed' AND i.domain_id = $1 \
            AND i.offered_at >= now() - interval '30 days' AND i.external_id <> $3) AS last_30_days, \
       (SELECT coalesce(jsonb_agg(o ORDER BY o.offered_at), '[]') FROM ( \
          SELECT i.external_id AS interaction_id, i.kind, i.direction, i.state, i.queue_id, \
                 i.queue_name, i.agent_id, (SELECT name FROM users WHERE id = i.agent_id) AS agent_name, \
                 i.offered_at, i.closed_at \
          FROM interactions i \
          WHERE i.bound_contact_id = $2 AND i.state <> 'closed' AND i.domain_id = $1 \
            AND i.external_id <> $3 \
          LIMIT 10) o) AS open_now";

crate::db::cached::cached_statement!(
    /// [`HISTORY_SQL`], prepared once per connection.
    History = HISTORY_SQL;
    domain: BigInt => i64,
    contact: BigInt => i64,
    exclude: Text => String,
);

#[derive(QueryableByName)]
struct HistoryRow {
    #[diesel(sql_type = Nullable<Jsonb>)]
    last_closed: Option<JsonOf<RecentInteraction>>,
    #[diesel(sql_type = BigInt)]
    last_30_days: i64,
    #[diesel(sql_type = Jsonb)]
    open_now: JsonOf<Vec<RecentInteraction>>,
}

/// The recent history of `contact`, interaction `exclude` (routing's id; empty: none) left
/// out. Takes a shared connection, so it can be pipelined with other reads.
pub async fn load(
    mut conn: &AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    exclude: &str,
) -> Result<ClientHistory, Error> {
    let row: HistoryRow = History {
        domain: domain.0,
        contact: contact.0,
        exclude: exclude.to_owned(),
    }
    .get_result(&mut conn)
    .await?;
    Ok(ClientHistory {
        contact,
        last_closed: row.last_closed.map(|j| j.0),
        last_30_days: row.last_30_days,
        open_now: row.open_now.0,
    })
}

/// The history the panel of `interaction` shows (of [`Interaction::history_contact`], the
/// interaction itself left out); `None` when nobody is identified.
pub async fn load_for(
    conn: &AsyncPgConnection,
    domain: DomainId,
    interaction: &Interaction,
) -> Result<Option<ClientHistory>, Error> {
    match interaction.history_contact() {
        Some(contact) => Ok(Some(
            load(conn, domain, contact, &interaction.external_id).await?,
        )),
        None => Ok(None),
    }
}
