//! The unit of work: every write of the server runs in one [`Tx`], which opens the transaction,
//! collects the audit records and the session events the change produces, and writes both at
//! commit in one statement ([`FLUSH_SQL`], with the `NOTIFY`), then commits.
//!
//! The announcement (`NOTIFY`) goes out after the commit ([`Announce`]), not from the writing
//! transaction: a transaction that notifies takes a lock that is one for the whole PostgreSQL
//! cluster at commit and holds it through its commit record's flush, so notifying writers
//! would commit one at a time (no group commit) whatever their domain. A notification is only a hint that
//! a domain has new events (readers read by horizon, and the hub re-reads every watched
//! domain every two seconds), so one lost in a crash between commit and notify delays
//! delivery and loses nothing.
//!
//! A `Tx` can only be had from [`write()`], and every write function of `db` takes one, so a
//! multi-statement change cannot run outside a transaction, publish twice, or forget its
//! events: the types make it so. Audit records and events cost no round trip of their own:
//! they travel with the flush. An event's recipients may name contacts instead of agents
//! ([`Recipients::concerned_with`](super::outbox::Recipients::concerned_with)): the agents whose open interactions have them bound or as
//! a candidate are looked up by the flush itself, as the transaction leaves them.

use std::future::Future;

use diesel::sql_types::{Array, BigInt, Binary, Jsonb, Nullable, Text};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};

use super::audit::AuditRecord;
use super::changes::ChangeOut;
use super::outbox::{MAX_EVENTS_PER_TRANSACTION, Outgoing};
use crate::domain::ids::DomainId;
use crate::error::Error;

/// An audit record waiting for the flush.
#[derive(Debug, Clone)]
pub(super) struct PendingAudit {
    actor: i64,
    action: &'static str,
    contact: i64,
    interaction: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

/// What a unit of work will write at commit.
#[derive(Default)]
struct Pending {
    audits: Vec<PendingAudit>,
    events: Vec<Outgoing>,
    changes: Vec<ChangeOut>,
}

/// One transaction of one domain, with what it will audit and publish.
pub struct Tx<'c> {
    conn: &'c mut AsyncPgConnection,
    domain: DomainId,
    pending: &'c mut Pending,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("domain", &self.domain)
            .field("audits", &self.pending.audits.len())
            .field("events", &self.pending.events.len())
            .field("changes", &self.pending.changes.len())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        self.conn
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.conn
    }
}

// A `Tx` is a connection (diesel-async's impl for `DerefMut` connections): queries run on it
// as on the connection it wraps.

impl Tx<'_> {
    /// The domain this transaction writes.
    pub fn domain(&self) -> DomainId {
        self.domain
    }

    /// Records an audit entry, written with the flush at commit.
    pub fn audit(&mut self, rec: AuditRecord<'_>) {
        self.pending.audits.push(PendingAudit {
            actor: rec.actor.0,
            action: rec.action.as_str(),
            contact: rec.contact.0,
            interaction: rec.interaction.map(str::to_owned),
            before: rec.before,
            after: rec.after,
        });
    }

    /// Records a contact change for the change feed, written at commit.
    pub fn change(&mut self, change: ChangeOut) {
        self.pending.changes.push(change);
    }

    /// Records contact changes for the change feed, written at commit.
    pub fn change_all(&mut self, changes: impl IntoIterator<Item = ChangeOut>) {
        self.pending.changes.extend(changes);
    }

    /// Publishes an event at commit.
    pub fn emit(&mut self, event: Outgoing) {
        self.pending.events.push(event);
    }

    /// Publishes events at commit, in order.
    pub fn emit_all(&mut self, events: impl IntoIterator<Item = Outgoing>) {
        self.pending.events.extend(events);
    }
}

/// Tells every server that a domain has new committed events (the event hub: it wakes its own
/// readers at once and sends the `NOTIFY` for the other servers from a task of its own, off
/// the request path).
pub trait Announce: Sync {
    /// `domain` has new committed events.
    fn announce(&self, domain: DomainId);
}

/// The future of a unit of work's body; `Send`, as tonic's handlers need (the same device as
/// diesel-async's transaction closures: `AsyncFnOnce` alone cannot say that its future is
/// `Send`).
pub trait WorkFn<'t, R>:
    AsyncFnOnce(&'t mut Tx<'t>) -> Result<R, Error>
    + FnOnce(&'t mut Tx<'t>) -> <Self as WorkFn<'t, R>>::Fut
{
    /// The body's future.
    type Fut: Future<Output = Result<R, Error>> + Send;
}

impl<'t, R, F, Fut> WorkFn<'t, R> for F
where
    F: AsyncFnOnce(&'t mut Tx<'t>) -> Result<R, Error> + FnOnce(&'t mut Tx<'t>) -> Fut,
    Fut: Future<Output = Result<R, Error>> + Send,
{
    type Fut = Fut;
}

/// Runs `body` as one unit of work of `domain`: opens the transaction, runs the body, writes
/// its audit records and events, commits, then announces the domain when it wrote events. An error anywhere rolls everything back (nothing is
/// half-written, nothing is published). A connection whose transaction was interrupted (the
/// request was cancelled mid-way) is not reused by the pool.
pub async fn write<R, F>(
    conn: &mut AsyncPgConnection,
    announcer: &dyn Announce,
    domain: DomainId,
    body: F,
) -> Result<R, Error>
where
    F: for<'t> WorkFn<'t, R>,
{
    AnsiTransactionManager::begin_transaction(conn).await?;
    let mut pending = Pending::default();
    let outcome = match body(&mut Tx {
        conn: &mut *conn,
        domain,
        pending: &mut pending,
    })
    .await
    {
        Ok(r) => flush(
            conn,
            domain,
            pending.audits,
            &pending.events,
            &pending.changes,
        )
        .await
        .map(|written| (r, written)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok((r, written)) => match AnsiTransactionManager::commit_transaction(conn).await {
            Ok(()) => {
                if written > 0 {
                    announcer.announce(domain);
                }
                Ok(r)
            }
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(conn).await;
                Err(e.into())
            }
        },
        Err(e) => {
            // A failed rollback leaves the connection marked broken; the pool drops it.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            // A contact that is not found may have been merged: say where it went.
            Err(super::merged::explain(conn, domain, e).await)
        }
    }
}

/// Writes audit records (`$2`..`$7`, one array per column) and events (recipients `$8` as array
/// literals, contacts whose concerned agents also receive them `$9`, payloads `$10`) of domain
/// `$1` in one statement, numbering the events by the writing transaction (see
/// [`super::outbox`]). An event that reaches nobody is not written. The agents concerned with
/// a contact are looked up by contact alone (an interaction and the contacts it binds or
/// lists are of one domain), so that only the two contact indexes of open interactions can
/// serve the lookup: with the domain in the condition the planner may walk every open
/// interaction of the domain through the agent index when its statistics are older than the
/// day's open interactions (seen: a flush went from 0.3 to 6 ms within a 20 s run). The domain is announced
/// after the commit ([`super::outbox::notify`]), not in this transaction.
pub const FLUSH_SQL: &str = "\
WITH a AS (INSERT INTO audit_log (domain_id, actor_id, action, contact_id, interaction_id, \
                                  before, after) \
           SELECT $1, x.actor, x.action, x.contact, x.interaction, x.before, x.after \
           FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::jsonb[], \
                       $7::jsonb[]) WITH ORDINALITY \
                AS x (actor, action, contact, interaction, before, after, ord) \
           ORDER BY x.ord \
           RETURNING 1), \
     r AS MATERIALIZED ( \
           SELECT x.ord, x.payload, \
                  ARRAY(SELECT DISTINCT s.agent FROM ( \
                          SELECT unnest(x.agents::bigint[]) AS agent \
                          UNION ALL \
                          SELECT i.agent_id FROM interactions i \
                          WHERE i.state <> 'closed' \
                            AND i.bound_contact_id = ANY (x.contacts::bigint[]) \
                          UNION ALL \
                          SELECT i.agent_id FROM interactions i \
                          WHERE i.state <> 'closed' \
                            AND interaction_candidate_ids(i.candidates) && x.contacts::bigint[] \
                        ) s ORDER BY s.agent) AS agents \
           FROM unnest($8::text[], $9::text[], $10::bytea[]) WITH ORDINALITY \
                AS x (agents, contacts, payload, ord)), \
     e AS (INSERT INTO events (domain_id, sequence, occurred_at, agent_ids, payload) \
           SELECT $1, (pg_current_xact_id()::text::bigint << 16) + r.ord, clock_timestamp(), \
                  r.agents, r.payload \
           FROM r WHERE cardinality(r.agents) > 0 \
           RETURNING 1), \
     c AS (INSERT INTO contact_changes (domain_id, sequence, occurred_at, contact_id, payload) \
           SELECT $1, (pg_current_xact_id()::text::bigint << 16) + x.ord, clock_timestamp(), \
                  x.contact, x.payload \
           FROM unnest($11::bigint[], $12::bytea[]) WITH ORDINALITY AS x (contact, payload, ord) \
           RETURNING contact_id, sequence), \
     cp AS (UPDATE contacts t SET change_position = m.position \
            FROM (SELECT contact_id, max(sequence) AS position FROM c GROUP BY contact_id) m \
            WHERE t.domain_id = $1 AND t.id = m.contact_id \
              AND t.change_position <> m.position \
            RETURNING 1) \
SELECT (SELECT count(*) FROM a) AS audited, \
       (SELECT count(*) FROM e) + (SELECT count(*) FROM c) + 0 * (SELECT count(*) FROM cp) \
       AS written";

crate::db::cached::cached_statement!(
    /// [`FLUSH_SQL`], prepared once per connection.
    FlushStatement = FLUSH_SQL;
    domain: BigInt => i64,
    actors: Array<BigInt> => Vec<i64>,
    actions: Array<Text> => Vec<&'static str>,
    contacts: Array<BigInt> => Vec<i64>,
    interactions: Array<Nullable<Text>> => Vec<Option<String>>,
    befores: Array<Nullable<Jsonb>> => Vec<Option<serde_json::Value>>,
    afters: Array<Nullable<Jsonb>> => Vec<Option<serde_json::Value>>,
    agents: Array<Text> => Vec<String>,
    concerned: Array<Text> => Vec<String>,
    payloads: Array<Binary> => Vec<Vec<u8>>,
    change_contacts: Array<BigInt> => Vec<i64>,
    change_payloads: Array<Binary> => Vec<Vec<u8>>,
);

#[derive(diesel::QueryableByName)]
struct Flushed {
    #[diesel(sql_type = BigInt)]
    written: i64,
}

/// An array literal of ids (`{1,2,3}`), for one element of a text array cast to `bigint[]`.
fn id_list(mut ids: Vec<i64>) -> String {
    ids.sort_unstable();
    ids.dedup();
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

/// Writes `audits`, `events` and `changes` of `domain` (see [`FLUSH_SQL`]); returns the
/// events and changes written.
pub(super) async fn flush(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    audits: Vec<PendingAudit>,
    events: &[Outgoing],
    changes: &[ChangeOut],
) -> Result<usize, Error> {
    let events: Vec<&Outgoing> = events.iter().filter(|o| !o.reaches_nobody()).collect();
    if audits.is_empty() && events.is_empty() && changes.is_empty() {
        return Ok(0);
    }
    if events.len() > MAX_EVENTS_PER_TRANSACTION || changes.len() > MAX_EVENTS_PER_TRANSACTION {
        return Err(Error::Internal(format!(
            "{} events and {} changes in one transaction (at most {MAX_EVENTS_PER_TRANSACTION} each)",
            events.len(),
            changes.len()
        )));
    }
    let mut statement = FlushStatement {
        domain: domain.0,
        actors: Vec::with_capacity(audits.len()),
        actions: Vec::with_capacity(audits.len()),
        contacts: Vec::with_capacity(audits.len()),
        interactions: Vec::with_capacity(audits.len()),
        befores: Vec::with_capacity(audits.len()),
        afters: Vec::with_capacity(audits.len()),
        agents: Vec::with_capacity(events.len()),
        concerned: Vec::with_capacity(events.len()),
        payloads: Vec::with_capacity(events.len()),
        change_contacts: changes.iter().map(|c| c.contact.0).collect(),
        change_payloads: changes.iter().map(|c| c.payload.clone()).collect(),
    };
    for a in audits {
        statement.actors.push(a.actor);
        statement.actions.push(a.action);
        statement.contacts.push(a.contact);
        statement.interactions.push(a.interaction);
        statement.befores.push(a.before);
        statement.afters.push(a.after);
    }
    for e in events {
        statement
            .agents
            .push(id_list(e.recipients.agents.iter().map(|u| u.0).collect()));
        statement.concerned.push(id_list(
            e.recipients.concerned_with.iter().map(|c| c.0).collect(),
        ));
        statement.payloads.push(e.payload.clone());
    }
    // Pipelined before the flush, for this transaction only: its generic plan (the same
    // index lookups, see the EXPLAIN test) costs more than a custom one in PostgreSQL's
    // estimate, so without it the flush was planned anew at every write (about 0.9 ms).
    let (mut c1, mut c2): (&AsyncPgConnection, &AsyncPgConnection) = (conn, conn);
    let (_, flushed) = tokio::try_join!(
        diesel::sql_query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut c1),
        statement.get_result::<Flushed>(&mut c2)
    )?;
    Ok(usize::try_from(flushed.written).unwrap_or(0))
}

/// Writes `events` of `domain` in the caller's transaction, once per transaction, and
/// announces them at its commit, for tools and tests that write events without a
/// [`Tx`] (the server's writes publish through their unit of work, which notifies
/// after the commit). Returns how many were written.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    events: &[Outgoing],
) -> Result<usize, Error> {
    let written = flush(conn, domain, Vec::new(), events, &[]).await?;
    if written > 0 {
        super::outbox::notify(conn, &[domain], "").await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_lists_are_sorted_array_literals() {
        assert_eq!(super::id_list(vec![3, 1, 3]), "{1,3}");
        assert_eq!(super::id_list(Vec::new()), "{}");
    }

    #[test]
    fn the_flush_does_not_notify_inside_the_transaction() {
        assert!(!super::FLUSH_SQL.contains("pg_notify"));
    }
}
