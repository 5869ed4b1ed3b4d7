//! Moving a contact's rows to another contact, for a merge and its undo: phones and e-mails
//! by value, other rows by id or by owner. Imports only `tx`, `domain` and `error`.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb};
use diesel_async::RunQueryDsl;

use crate::db::tx::Tx;
use crate::domain::ids::{ContactId, DomainId};
use crate::error::Error;

/// One id.
#[derive(QueryableByName)]
pub(super) struct IdRow {
    /// The id.
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
}

/// Phones and e-mails: a contact holds a value (E.164, normalised address) once, so they move
/// by value, and the links whose value the survivor already had are deleted with the merged
/// contact (and inserted again, with their ids, by an undo).
pub(super) struct ValueLinks {
    table: &'static str,
    key: &'static str,
    /// The columns an undo inserts again, and their types in the archive's JSON.
    columns: &'static str,
    record: &'static str,
}

pub(super) const PHONES: ValueLinks = ValueLinks {
    table: "contact_phones",
    key: "e164",
    columns: "number, e164, region, national_number, digits_reversed, created_at",
    record: "number text, e164 text, region text, national_number text, digits_reversed text, \
             created_at timestamptz",
};

pub(super) const EMAILS: ValueLinks = ValueLinks {
    table: "contact_emails",
    key: "normalized",
    columns: "address, normalized, created_at",
    record: "address text, normalized text, created_at timestamptz",
};

impl ValueLinks {
    /// Moves to `to` the oldest link of each value of `from` that `to` lacks; returns the ids
    /// moved.
    pub(super) async fn merge(
        &self,
        tx: &mut Tx<'_>,
        domain: DomainId,
        from: &[i64],
        to: ContactId,
    ) -> Result<BTreeSet<i64>, Error> {
        let (t, k) = (self.table, self.key);
        let moved: Vec<IdRow> = diesel::sql_query(format!(
            "UPDATE {t} SET contact_id = $3 WHERE id IN ( \
               SELECT DISTINCT ON ({k}) id FROM {t} \
               WHERE contact_id = ANY($2) AND {k} NOT IN (SELECT {k} FROM {t} WHERE contact_id = $3) \
               ORDER BY {k}, id) AND domain_id = $1 RETURNING id"
        ))
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(from)
        .bind::<BigInt, _>(to.0)
        .load(tx)
        .await?;
        Ok(moved.into_iter().map(|r| r.id).collect())
    }

    /// Which of the links `ids` `contact` holds.
    pub(super) async fn held(
        &self,
        tx: &mut Tx<'_>,
        ids: &[i64],
        contact: ContactId,
    ) -> Result<BTreeSet<i64>, Error> {
        let rows: Vec<IdRow> = diesel::sql_query(format!(
            "SELECT id FROM {} WHERE id = ANY($1) AND contact_id = $2",
            self.table
        ))
        .bind::<Array<BigInt>, _>(ids)
        .bind::<BigInt, _>(contact.0)
        .load(tx)
        .await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Inserts the archived links `rows` (JSON objects with their ids) for `contact` again.
    pub(super) async fn restore(
        &self,
        tx: &mut Tx<'_>,
        domain: DomainId,
        contact: ContactId,
        rows: serde_json::Value,
    ) -> Result<(), Error> {
        let (t, c) = (self.table, self.columns);
        diesel::sql_query(format!(
            "INSERT INTO {t} (id, domain_id, contact_id, {c}) OVERRIDING SYSTEM VALUE \
             SELECT id, $1, $2, {c} FROM jsonb_to_recordset($3) AS x (id bigint, {})",
            self.record
        ))
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(contact.0)
        .bind::<Jsonb, _>(&rows)
        .execute(tx)
        .await?;
        Ok(())
    }
}

/// Moves the rows `ids` of `table` that `from` holds to `to`.
pub(super) async fn move_rows(
    tx: &mut Tx<'_>,
    table: &str,
    ids: &[i64],
    from: ContactId,
    to: ContactId,
) -> Result<(), Error> {
    diesel::sql_query(format!(
        "UPDATE {table} SET contact_id = $2 WHERE id = ANY($1) AND contact_id = $3"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<BigInt, _>(to.0)
    .bind::<BigInt, _>(from.0)
    .execute(tx)
    .await?;
    Ok(())
}

/// Points every row of `table` that names one of `from` (in `domain`) at `to`.
pub(super) async fn repoint(
    tx: &mut Tx<'_>,
    table: &str,
    domain: DomainId,
    from: &[i64],
    to: ContactId,
) -> Result<(), Error> {
    diesel::sql_query(format!(
        "UPDATE {table} SET contact_id = $3 WHERE domain_id = $1 AND contact_id = ANY($2)"
    ))
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(from)
    .bind::<BigInt, _>(to.0)
    .execute(tx)
    .await?;
    Ok(())
}
