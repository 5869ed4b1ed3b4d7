//! Bindings of interactions to contacts: bind, unbind, and a contact's binding history.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rows::by_ids;
use crate::db::audit::{AuditAction, AuditRecord};
use crate::db::schema::{interaction_bindings, interactions};
use crate::db::tx::Tx;
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::interaction::Interaction;
use crate::error::Error;

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
        after: Some(bind_record(external_id, contact, by)),
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

/// The audit record of a binding (see [`bind`]).
pub(super) fn bind_record(
    external_id: &str,
    contact: ContactId,
    by: Option<UserId>,
) -> serde_json::Value {
    serde_json::json!({
        "interaction_id": external_id,
        "contact_id": contact,
        "bound_by": by,
        "autolink": by.is_none(),
    })
}
