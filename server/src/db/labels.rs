//! Labels and their assignment to contacts.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{contact_labels, labels};
use crate::domain::ids::{ContactId, DomainId};
use crate::error::Error;

/// Replaces the labels of a contact, creating labels seen for the first time.
pub async fn set_for_contact(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    names: &[String],
) -> Result<(), Error> {
    diesel::delete(contact_labels::table.filter(contact_labels::contact_id.eq(contact.0)))
        .execute(conn)
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    let new_labels: Vec<_> = names
        .iter()
        .map(|n| (labels::domain_id.eq(domain.0), labels::name.eq(n)))
        .collect();
    diesel::insert_into(labels::table)
        .values(&new_labels)
        .on_conflict((labels::domain_id, labels::name))
        .do_nothing()
        .execute(conn)
        .await?;
    let ids: Vec<i64> = labels::table
        .filter(labels::domain_id.eq(domain.0))
        .filter(labels::name.eq_any(names))
        .select(labels::id)
        .load(conn)
        .await?;
    let links: Vec<_> = ids
        .into_iter()
        .map(|label_id| {
            (
                contact_labels::domain_id.eq(domain.0),
                contact_labels::contact_id.eq(contact.0),
                contact_labels::label_id.eq(label_id),
            )
        })
        .collect();
    diesel::insert_into(contact_labels::table)
        .values(&links)
        .execute(conn)
        .await?;
    Ok(())
}
