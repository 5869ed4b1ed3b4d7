//! Where did a merged contact go? A leaf of `db`: the unit of work ([`super::tx`]), the
//! contact writes and the merge all ask it, so that a write naming a merged contact answers
//! CONTACT_MERGED with the contact that holds it now instead of CONTACT_NOT_FOUND.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::ids::{ContactId, DomainId};
use crate::error::{Error, Reason};

/// Where a merged contact went.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct MergedInto {
    /// The contact that holds it now (at the end of a chain of merges).
    #[diesel(sql_type = BigInt)]
    pub survivor_id: i64,
    /// The merge that took it.
    #[diesel(sql_type = BigInt)]
    pub merge_id: i64,
}

/// The contact that holds `id` now (following merges of merges) and the merge that took `id`,
/// when `id` was merged and not restored since.
pub const MERGED_INTO_SQL: &str = "\
WITH RECURSIVE chain (contact_id, survivor_id, depth) AS ( \
    SELECT contact_id, survivor_id, 1 FROM merged_contacts WHERE domain_id = $1 AND contact_id = $2 \
  UNION ALL \
    SELECT m.contact_id, m.survivor_id, c.depth + 1 FROM merged_contacts m \
    JOIN chain c ON m.contact_id = c.survivor_id WHERE m.domain_id = $1 AND c.depth < 32) \
SELECT (SELECT survivor_id FROM chain ORDER BY depth DESC LIMIT 1) AS survivor_id, \
       merge_id FROM merged_contacts WHERE domain_id = $1 AND contact_id = $2";

/// Where contact `id` went ([`MERGED_INTO_SQL`]), when it was merged and not restored.
pub async fn merged_into(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<Option<MergedInto>, Error> {
    Ok(diesel::sql_query(MERGED_INTO_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(id.0)
        .get_result(conn)
        .await
        .optional()?)
}

/// The NOT_FOUND error for contact `id` of `domain`: CONTACT_MERGED naming the contact that
/// holds it now when it was merged, else CONTACT_NOT_FOUND.
pub async fn not_found(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<Error, Error> {
    Ok(match merged_into(conn, domain, id).await? {
        Some(m) => Error::contact_merged(id, m.survivor_id, m.merge_id),
        None => Error::contact_not_found(id),
    })
}

/// `err` with CONTACT_NOT_FOUND turned into CONTACT_MERGED when the contact it names was merged
/// (its other metadata kept): the unit of work applies it to every write's error, so that a
/// write naming a merged contact says where it went.
pub async fn explain(conn: &mut AsyncPgConnection, domain: DomainId, err: Error) -> Error {
    let Some(id) = err.missing_contact() else {
        return err;
    };
    match not_found(conn, domain, ContactId(id)).await {
        Ok(Error::NotFound(mut merged)) if merged.reason == Reason::ContactMerged => {
            if let Error::NotFound(original) = &err {
                merged.metadata.extend(original.metadata.iter().cloned());
            }
            Error::NotFound(merged)
        }
        _ => err,
    }
}
