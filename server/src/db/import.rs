//! Bulk import: validated contacts inserted in large multi-row statements, one transaction per
//! batch. Records whose owner is unknown, or whose messaging identity another contact holds (or
//! an earlier record of the batch claims), are rejected one by one; the rest are kept.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::schema::{
    audit_log, contact_attributes, contact_emails, contact_labels, contact_messaging_channels,
    contact_phones, contacts, labels, users,
};
use crate::domain::contact::Communication;
use crate::domain::contact::ContactDraft;
use crate::domain::ids::ContactId;
use crate::domain::session::Session;
use crate::error::Error;

/// Rows per child-table statement (keeps binds far below PostgreSQL's 65,535).
const CHUNK: usize = 5000;

/// A record rejected while importing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record's index in the stream.
    pub index: i64,
    /// The field at fault.
    pub field: String,
    /// Why.
    pub description: String,
}

/// Inserts a batch of `(index, draft)`; returns how many were imported and the rejections.
pub async fn insert_batch(
    conn: &mut AsyncPgConnection,
    session: &Session,
    batch: &[(i64, ContactDraft)],
) -> Result<(Vec<ContactId>, Vec<Rejected>), Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    conn.transaction(async |conn| {
        let mut rejected = Vec::new();
        // Owners must be users of the domain.
        let owners: Vec<i64> = batch
            .iter()
            .map(|(_, d)| d.owner.0)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let known: HashSet<i64> = users::table
            .filter(users::domain_id.eq(domain.0))
            .filter(users::id.eq_any(&owners))
            .select(users::id)
            .load::<i64>(conn)
            .await?
            .into_iter()
            .collect();
        // Messaging identities must be free, and claimed once.
        let mut claimed: HashSet<(String, String)> = HashSet::new();
        let wanted: Vec<String> = batch
            .iter()
            .flat_map(|(_, d)| d.communications.iter())
            .filter_map(|c| match c {
                Communication::Channel(i) => {
                    Some(format!("{}\u{1f}{}", i.protocol, i.external_user_id))
                }
                _ => None,
            })
            .collect();
        let held: HashMap<String, i64> = if wanted.is_empty() {
            HashMap::new()
        } else {
            #[derive(QueryableByName)]
            struct Holder {
                #[diesel(sql_type = Text)]
                protocol: String,
                #[diesel(sql_type = Text)]
                external_user_id: String,
                #[diesel(sql_type = BigInt)]
                contact_id: i64,
            }
            let (protocols, externals): (Vec<String>, Vec<String>) = wanted
                .iter()
                .filter_map(|k| k.split_once('\u{1f}'))
                .map(|(p, x)| (p.to_owned(), x.to_owned()))
                .unzip();
            // One probe of the (domain, protocol, external id) unique index per identity.
            diesel::sql_query(
                "SELECT m.protocol, m.external_user_id, m.contact_id \
                 FROM unnest($2::text[], $3::text[]) AS w(protocol, external_user_id) \
                 JOIN contact_messaging_channels m ON m.domain_id = $1 \
                  AND m.protocol = w.protocol AND m.external_user_id = w.external_user_id",
            )
            .bind::<BigInt, _>(domain.0)
            .bind::<Array<Text>, _>(&protocols)
            .bind::<Array<Text>, _>(&externals)
            .load::<Holder>(conn)
            .await?
            .into_iter()
            .map(|h| {
                (
                    format!("{}\u{1f}{}", h.protocol, h.external_user_id),
                    h.contact_id,
                )
            })
            .collect()
        };
        let mut accepted: Vec<&(i64, ContactDraft)> = Vec::with_capacity(batch.len());
        'records: for record in batch {
            let (index, draft) = record;
            if !known.contains(&draft.owner.0) {
                rejected.push(Rejected {
                    index: *index,
                    field: "owner_id".into(),
                    description: format!("no user {} in this domain", draft.owner),
                });
                continue;
            }
            for (i, c) in draft.communications.iter().enumerate() {
                if let Communication::Channel(identity) = c {
                    let key = format!("{}\u{1f}{}", identity.protocol, identity.external_user_id);
                    let problem = match held.get(&key) {
                        Some(holder) => Some(format!("is linked to contact {holder}")),
                        None if claimed.contains(&(
                            identity.protocol.clone(),
                            identity.external_user_id.clone(),
                        )) =>
                        {
                            Some("is claimed by an earlier record of this import".to_owned())
                        }
                        None => None,
                    };
                    if let Some(description) = problem {
                        rejected.push(Rejected {
                            index: *index,
                            field: format!("communications[{i}].messaging_channel"),
                            description,
                        });
                        continue 'records;
                    }
                }
            }
            for c in &draft.communications {
                if let Communication::Channel(identity) = c {
                    claimed.insert((identity.protocol.clone(), identity.external_user_id.clone()));
                }
            }
            accepted.push(record);
        }
        if accepted.is_empty() {
            return Ok((Vec::new(), rejected));
        }

        // Each contact's change-feed position as the flush will number its change (the
        // transaction's id, then the change's place: the batch's changes are its only ones, in
        // this order), so that the flush finds nothing to update on 2,000 freshly written rows
        // (it would rewrite each, with all its indexes: a third of a batch's time).
        let rows: Vec<_> = accepted
            .iter()
            .enumerate()
            .map(|(k, (_, d))| {
                (
                    contacts::change_position.eq(diesel::dsl::sql::<BigInt>(&format!(
                        "(pg_current_xact_id()::text::bigint << 16) + {}",
                        k + 1
                    ))),
                    contacts::domain_id.eq(domain.0),
                    contacts::display_name.eq(&d.display_name),
                    contacts::description.eq(&d.description),
                    contacts::time_zone.eq(&d.time_zone),
                    contacts::owner_id.eq(d.owner.0),
                    contacts::created_by.eq(actor.0),
                    contacts::updated_by.eq(actor.0),
                )
            })
            .collect();
        let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(CHUNK) {
            ids.extend(
                diesel::insert_into(contacts::table)
                    .values(chunk)
                    .returning(contacts::id)
                    .get_results::<i64>(conn)
                    .await?,
            );
        }

        let mut phones = Vec::new();
        let mut emails = Vec::new();
        let mut channels = Vec::new();
        let mut attributes = Vec::new();
        let mut label_names: HashSet<&str> = HashSet::new();
        for (&id, (_, d)) in ids.iter().zip(&accepted) {
            for c in &d.communications {
                match c {
                    Communication::Phone { raw, parsed } => phones.push((
                        contact_phones::domain_id.eq(domain.0),
                        contact_phones::contact_id.eq(id),
                        contact_phones::number.eq(raw),
                        contact_phones::e164.eq(&parsed.e164),
                        contact_phones::region.eq(&parsed.region),
                        contact_phones::national_number.eq(&parsed.national_number),
                        contact_phones::digits_reversed.eq(&parsed.digits_reversed),
                    )),
                    Communication::Email(e) => emails.push((
                        contact_emails::domain_id.eq(domain.0),
                        contact_emails::contact_id.eq(id),
                        contact_emails::address.eq(&e.address),
                        contact_emails::normalized.eq(&e.normalized),
                    )),
                    Communication::Channel(i) => channels.push((
                        contact_messaging_channels::domain_id.eq(domain.0),
                        contact_messaging_channels::contact_id.eq(id),
                        contact_messaging_channels::protocol.eq(&i.protocol),
                        contact_messaging_channels::external_user_id.eq(&i.external_user_id),
                        contact_messaging_channels::display_name.eq(&i.display_name),
                    )),
                }
            }
            for a in &d.attributes {
                attributes.push((
                    contact_attributes::domain_id.eq(domain.0),
                    contact_attributes::contact_id.eq(id),
                    contact_attributes::key.eq(&a.key),
                    contact_attributes::value.eq(&a.value),
                ));
            }
            label_names.extend(d.labels.iter().map(String::as_str));
        }
        for chunk in phones.chunks(CHUNK) {
            diesel::insert_into(contact_phones::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        for chunk in emails.chunks(CHUNK) {
            diesel::insert_into(contact_emails::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        for chunk in channels.chunks(CHUNK) {
            diesel::insert_into(contact_messaging_channels::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        for chunk in attributes.chunks(CHUNK) {
            diesel::insert_into(contact_attributes::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        if !label_names.is_empty() {
            let names: Vec<&str> = label_names.into_iter().collect();
            let new_labels: Vec<_> = names
                .iter()
                .map(|n| (labels::domain_id.eq(domain.0), labels::name.eq(*n)))
                .collect();
            diesel::insert_into(labels::table)
                .values(&new_labels)
                .on_conflict((labels::domain_id, labels::name))
                .do_nothing()
                .execute(conn)
                .await?;
            let label_ids: HashMap<String, i64> = labels::table
                .filter(labels::domain_id.eq(domain.0))
                .filter(labels::name.eq_any(&names))
                .select((labels::name, labels::id))
                .load::<(String, i64)>(conn)
                .await?
                .into_iter()
                .collect();
            let mut links = Vec::new();
            for (&id, (_, d)) in ids.iter().zip(&accepted) {
                for l in &d.labels {
                    if let Some(&label_id) = label_ids.get(l) {
                        links.push((
                            contact_labels::domain_id.eq(domain.0),
                            contact_labels::contact_id.eq(id),
                            contact_labels::label_id.eq(label_id),
                        ));
                    }
                }
            }
            for chunk in links.chunks(CHUNK) {
                diesel::insert_into(contact_labels::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
        }
        let audits: Vec<_> = ids
            .iter()
            .zip(&accepted)
            .map(|(&id, (index, d))| {
                (
                    audit_log::domain_id.eq(domain.0),
                    audit_log::actor_id.eq(actor.0),
                    audit_log::action.eq("contact.import"),
                    audit_log::contact_id.eq(id),
                    audit_log::after.eq(Some(serde_json::json!({
                        "display_name": d.display_name,
                        "import_index": index,
                    }))),
                )
            })
            .collect();
        for chunk in audits.chunks(CHUNK) {
            diesel::insert_into(audit_log::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        Ok((ids.into_iter().map(ContactId).collect(), rejected))
    })
    .await
}

/// The cards of a batch just inserted, for the change feed: [`super::contacts::load_cards`]
/// with a plan made for these ids. A batch loads up to 2,000 cards by id; a generic plan of
/// that statement, made before the domain's statistics exist (a new, large domain before its
/// first ANALYZE), intersects the primary key with a scan of the whole domain's index, which
/// made an import of 1,000,000 contacts slow down batch after batch (670 contacts/s after
/// 380,000). A custom plan looks the ids up by primary key whatever the statistics.
pub async fn cards_of_batch(
    conn: &mut AsyncPgConnection,
    domain: crate::domain::ids::DomainId,
    ids: &[i64],
) -> Result<Vec<crate::domain::contact::ContactCard>, Error> {
    diesel::sql_query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(conn)
        .await?;
    super::contacts::load_cards(conn, domain, ids).await
}
