//! Read-only card links: the recorded ones (CreateReadOnlyLink's), revoked one by one, and a
//! contact's cut-off (`contacts.links_revoked_before`), which revokes every link to it issued
//! before, the unrecorded links of summary views included. A link is checked against both
//! each time it is opened, on the primary, so a revocation holds at once on every server.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{contacts, read_only_links};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::error::{Error, Fault, Reason};

/// A recorded link.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = read_only_links)]
pub struct LinkRow {
    /// Its id (the token's `jti`).
    pub id: i64,
    /// The contact it opens.
    pub contact_id: i64,
    /// Who created it.
    pub created_by: i64,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (`None`: not revoked).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it (`None`: not revoked, or the user is gone).
    pub revoked_by: Option<i64>,
}

/// Records a link to `contact` made by `by`, expiring at `expires_at`; its id.
pub async fn record(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    by: UserId,
    expires_at: DateTime<Utc>,
) -> Result<i64, Error> {
    Ok(diesel::insert_into(read_only_links::table)
        .values((
            read_only_links::domain_id.eq(domain.0),
            read_only_links::contact_id.eq(contact.0),
            read_only_links::created_by.eq(by.0),
            read_only_links::expires_at.eq(expires_at),
        ))
        .returning(read_only_links::id)
        .get_result(conn)
        .await?)
}

/// The links recorded for `contact`, newest first, below `before` (an id), at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LinkRow>, Error> {
    let mut query = read_only_links::table
        .filter(read_only_links::domain_id.eq(domain.0))
        .filter(read_only_links::contact_id.eq(contact.0))
        .into_boxed();
    if let Some(id) = before {
        query = query.filter(read_only_links::id.lt(id));
    }
    Ok(query
        .order(read_only_links::id.desc())
        .limit(limit)
        .select(LinkRow::as_select())
        .load(conn)
        .await?)
}

/// The recorded link `id` of `domain` (`None`: no such link there).
pub async fn find(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: i64,
) -> Result<Option<LinkRow>, Error> {
    Ok(read_only_links::table
        .filter(read_only_links::domain_id.eq(domain.0))
        .filter(read_only_links::id.eq(id))
        .select(LinkRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Revokes the recorded link `id`; false when it was revoked already.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: i64,
    by: UserId,
) -> Result<bool, Error> {
    let n = diesel::update(
        read_only_links::table
            .filter(read_only_links::domain_id.eq(domain.0))
            .filter(read_only_links::id.eq(id))
            .filter(read_only_links::revoked_at.is_null()),
    )
    .set((
        read_only_links::revoked_at.eq(diesel::dsl::now),
        read_only_links::revoked_by.eq(by.0),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Revokes every link to `contact` issued until now: sets its cut-off, and marks its recorded
/// links that are still valid revoked; how many of those. The contact must exist (NOT_FOUND
/// otherwise).
pub async fn revoke_all(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    by: UserId,
) -> Result<i64, Error> {
    let n = diesel::update(
        contacts::table
            .filter(contacts::domain_id.eq(domain.0))
            .filter(contacts::id.eq(contact.0)),
    )
    .set(contacts::links_revoked_before.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(Error::contact_not_found(contact));
    }
    let revoked = diesel::update(
        read_only_links::table
            .filter(read_only_links::domain_id.eq(domain.0))
            .filter(read_only_links::contact_id.eq(contact.0))
            .filter(read_only_links::revoked_at.is_null())
            .filter(read_only_links::expires_at.gt(diesel::dsl::now)),
    )
    .set((
        read_only_links::revoked_at.eq(diesel::dsl::now),
        read_only_links::revoked_by.eq(by.0),
    ))
    .execute(conn)
    .await?;
    Ok(i64::try_from(revoked).unwrap_or(i64::MAX))
}

#[derive(QueryableByName)]
struct Revocation {
    #[diesel(sql_type = Bool)]
    revoked: bool,
    #[diesel(sql_type = Bool)]
    unknown: bool,
}

/// Refuses a link to `contact` that was revoked (PERMISSION_DENIED, `LINK_REVOKED`): its
/// record revoked or issued before the contact's cut-off, or, unrecorded, issued (in
/// `issued_at`, seconds) in or before the second of the cut-off. A recorded link whose record
/// is gone (erased) is not valid (`LINK_INVALID`). A contact that is gone passes: reading its
/// card says so.
pub async fn check(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    id: Option<i64>,
    issued_at: i64,
) -> Result<(), Error> {
    let found: Revocation = diesel::sql_query(
        "WITH cut AS (SELECT links_revoked_before AS at FROM contacts \
                      WHERE domain_id = $1 AND id = $2), \
              rec AS (SELECT revoked_at, created_at FROM read_only_links \
                      WHERE domain_id = $1 AND id = $3 AND contact_id = $2) \
         SELECT CASE WHEN $3 IS NULL \
                     THEN coalesce($4 <= (SELECT floor(extract(epoch FROM at))::bigint FROM cut), false) \
                     ELSE coalesce((SELECT revoked_at IS NOT NULL \
                                           OR created_at < (SELECT at FROM cut) FROM rec), false) \
                END AS revoked, \
                $3 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rec) AS unknown",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .bind::<Nullable<BigInt>, _>(id)
    .bind::<BigInt, _>(issued_at)
    .get_result(conn)
    .await?;
    if found.unknown {
        return Err(Error::PermissionDenied(Fault::new(
            Reason::LinkInvalid,
            "the read-only link is not valid",
        )));
    }
    if found.revoked {
        return Err(Error::PermissionDenied(
            Fault::new(
                Reason::LinkRevoked,
                "the read-only link was revoked; ask for a new one",
            )
            .about(format!("contact/{contact}")),
        ));
    }
    Ok(())
}
