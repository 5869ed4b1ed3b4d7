//! The store's side of EraseContact and ExportContact: where a contact's personal data is kept
//! besides its card, and the statements that find and scrub it there (the application layer
//! decides what a trace is, [`crate::domain::erase`], and scrubs protobuf payloads through the
//! wire layer).
//!
//! Besides the contact's rows (deleted, with their name words and vocabulary), personal data
//! sits in: the audit trail (the contact's entries and, by value, other contacts' entries that
//! name it), merge archives, stored session events and contact changes (protobuf payloads),
//! interactions (the caller's number or chat identity, routing variables), create requests
//! (their body's fingerprint), and read-only links. Every statement filters by domain.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::ids::{ContactId, DomainId};
use crate::error::Error;

/// When the contact was erased (`None`: it was not).
pub async fn erased_at(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<Option<DateTime<Utc>>, Error> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    let row: Row = diesel::sql_query(
        "SELECT max(occurred_at) AS at FROM audit_log \
         WHERE domain_id = $1 AND contact_id = $2 AND action = 'contact.erase'",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .get_result(conn)
    .await?;
    Ok(row.at)
}

/// True when the contact has an audit trail (a deleted contact keeps its trail).
pub async fn has_trail(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<bool, Error> {
    use super::schema::audit_log;
    Ok(diesel::select(diesel::dsl::exists(
        audit_log::table
            .filter(audit_log::domain_id.eq(domain.0))
            .filter(audit_log::contact_id.eq(contact.0)),
    ))
    .get_result(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Doc {
    #[diesel(sql_type = Jsonb)]
    doc: serde_json::Value,
}

/// The stored documents that hold the contact's data: its audit snapshots, and the archives of
/// the merges it took part in.
pub async fn own_documents(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<Vec<serde_json::Value>, Error> {
    let docs: Vec<Doc> = diesel::sql_query(
        "SELECT d.doc FROM ( \
           SELECT before AS doc FROM audit_log WHERE domain_id = $1 AND contact_id = $2 \
           UNION ALL SELECT after FROM audit_log WHERE domain_id = $1 AND contact_id = $2 \
           UNION ALL SELECT archive FROM contact_merges \
             WHERE domain_id = $1 AND (survivor_id = $2 OR $2 = ANY (merged_ids))) d \
         WHERE d.doc IS NOT NULL",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .load(conn)
    .await?;
    Ok(docs.into_iter().map(|d| d.doc).collect())
}

/// Deletes the contact (its communications, labels, attributes and name words go with it;
/// its interactions stay, unbound); its last version, `None` when it was gone already.
pub async fn delete_contact(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<Option<i64>, Error> {
    use super::schema::contacts;
    Ok(diesel::delete(
        contacts::table
            .filter(contacts::domain_id.eq(domain.0))
            .filter(contacts::id.eq(contact.0)),
    )
    .returning(contacts::version)
    .get_result(conn)
    .await
    .optional()?)
}

/// Deletes the contact's read-only links; how many.
pub async fn delete_links(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<usize, Error> {
    use super::schema::read_only_links;
    Ok(diesel::delete(
        read_only_links::table
            .filter(read_only_links::domain_id.eq(domain.0))
            .filter(read_only_links::contact_id.eq(contact.0)),
    )
    .execute(conn)
    .await?)
}

/// Deletes the create requests that made the contact, or whose body held one of `traces` (the
/// fingerprint is the body, hex-encoded).
pub async fn forget_requests(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    traces: &[String],
) -> Result<usize, Error> {
    Ok(diesel::sql_query(
        "DELETE FROM contact_create_requests r \
         WHERE r.domain_id = $1 AND (r.contact_id = $2 OR EXISTS ( \
           SELECT 1 FROM unnest($3::text[]) t \
           WHERE position(encode(convert_to(t, 'UTF8'), 'hex') IN r.fingerprint) > 0))",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .bind::<Array<Text>, _>(traces)
    .execute(conn)
    .await?)
}

/// Drops from the domain's name vocabulary, and from its typo index, the words of `names` that
/// no contact holds any more (run after the delete, whose trigger dropped the contact's own
/// words).
pub async fn forget_words(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    names: &[String],
) -> Result<(), Error> {
    diesel::sql_query(
        "WITH gone AS (DELETE FROM contact_name_vocabulary v \
           WHERE v.domain_id = $1 \
             AND v.word IN (SELECT unnest(name_words(lower(immutable_unaccent(n)))) \
                            FROM unnest($2::text[]) n) \
             AND NOT EXISTS (SELECT 1 FROM contact_name_words w \
                             WHERE w.domain_id = $1 AND w.word = v.word) \
           RETURNING v.word), \
         variants AS (DELETE FROM contact_name_variants x \
           USING gone g, unnest(name_word_variants(g.word)) AS y (variant) \
           WHERE x.domain_id = $1 AND x.variant = y.variant AND x.word = g.word) \
         SELECT count(*) FROM gone",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<Text>, _>(names)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the values of the contact's own audit entries (the entries stay: who, when,
/// what action); how many.
pub async fn blank_own_audit(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<usize, Error> {
    Ok(diesel::sql_query(
        "UPDATE audit_log SET \
           before = CASE WHEN before IS NULL THEN NULL ELSE '{\"erased\": true}'::jsonb END, \
           after = CASE WHEN after IS NULL THEN NULL ELSE '{\"erased\": true}'::jsonb END \
         WHERE domain_id = $1 AND contact_id = $2 AND (before IS NOT NULL OR after IS NOT NULL) \
           AND action <> 'contact.erase'",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .execute(conn)
    .await?)
}

/// An audit entry of another contact that may name the erased one.
#[derive(Debug, Clone, QueryableByName)]
pub struct AuditValues {
    /// The entry.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its state before.
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub before: Option<serde_json::Value>,
    /// Its state after.
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub after: Option<serde_json::Value>,
}

/// The domain's audit entries whose values hold one of `traces` as text.
pub async fn audit_naming(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    traces: &[String],
) -> Result<Vec<AuditValues>, Error> {
    Ok(diesel::sql_query(
        "SELECT a.id, a.before, a.after FROM audit_log a \
         WHERE a.domain_id = $1 AND EXISTS ( \
           SELECT 1 FROM unnest($2::text[]) t \
           WHERE position(t IN coalesce(a.before::text, '') || ' ' || coalesce(a.after::text, '')) \
                 > 0)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<Text>, _>(traces)
    .load(conn)
    .await?)
}

/// Sets an audit entry's values.
pub async fn set_audit(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    entry: &AuditValues,
) -> Result<(), Error> {
    diesel::sql_query(
        "UPDATE audit_log SET before = $3, after = $4 WHERE domain_id = $1 AND id = $2",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(entry.id)
    .bind::<Nullable<Jsonb>, _>(&entry.before)
    .bind::<Nullable<Jsonb>, _>(&entry.after)
    .execute(conn)
    .await?;
    Ok(())
}

/// Empties the archives of the merges the contact took part in, or that hold one of `traces`
/// (traces of four characters or more): those merges can no longer be undone. Their ids.
pub async fn erase_merges(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    traces: &[String],
) -> Result<Vec<i64>, Error> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "UPDATE contact_merges m SET archive = '{\"erased\": true}'::jsonb, erased_at = now() \
         WHERE m.domain_id = $1 AND m.erased_at IS NULL \
           AND (m.survivor_id = $2 OR $2 = ANY (m.merged_ids) OR EXISTS ( \
                SELECT 1 FROM unnest($3::text[]) t \
                WHERE char_length(t) >= 4 AND position(t IN m.archive::text) > 0)) \
         RETURNING m.id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .bind::<Array<Text>, _>(traces)
    .load(conn)
    .await?;
    let mut ids: Vec<i64> = rows.into_iter().map(|r| r.id).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Where protobuf payloads are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Session events (`events`).
    Events,
    /// Contact changes (`contact_changes`).
    Changes,
}

impl Stored {
    fn table(self) -> &'static str {
        match self {
            Stored::Events => "events",
            Stored::Changes => "contact_changes",
        }
    }
}

/// A stored payload.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredPayload {
    /// Its number.
    #[diesel(sql_type = BigInt)]
    pub sequence: i64,
    /// Its bytes.
    #[diesel(sql_type = Binary)]
    pub payload: Vec<u8>,
}

/// The domain's stored payloads whose bytes hold one of `traces`.
pub async fn payloads_naming(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    stored: Stored,
    traces: &[Vec<u8>],
) -> Result<Vec<StoredPayload>, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT s.sequence, s.payload FROM {} s \
         WHERE s.domain_id = $1 AND EXISTS ( \
           SELECT 1 FROM unnest($2::bytea[]) t WHERE position(t IN s.payload) > 0)",
        stored.table()
    ))
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<Binary>, _>(traces)
    .load(conn)
    .await?)
}

/// Sets a stored payload.
pub async fn set_payload(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    stored: Stored,
    sequence: i64,
    payload: &[u8],
) -> Result<(), Error> {
    diesel::sql_query(format!(
        "UPDATE {} SET payload = $3 WHERE domain_id = $1 AND sequence = $2",
        stored.table()
    ))
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(sequence)
    .bind::<Binary, _>(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// An interaction's texts that may be a contact's personal data.
#[derive(Debug, Clone, QueryableByName)]
pub struct InteractionTexts {
    /// The interaction.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The caller's number as received.
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_number: Option<String>,
    /// The caller's number in E.164.
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_e164: Option<String>,
    /// The chat identity's user id.
    #[diesel(sql_type = Nullable<Text>)]
    pub chat_external_user_id: Option<String>,
    /// The chat identity's display name.
    #[diesel(sql_type = Nullable<Text>)]
    pub chat_display_name: Option<String>,
    /// Identification's explanation.
    #[diesel(sql_type = Text)]
    pub outcome_reason: String,
    /// The routing variables.
    #[diesel(sql_type = Jsonb)]
    pub variables: serde_json::Value,
}

/// The domain's interactions whose texts hold one of `traces`.
pub async fn interactions_naming(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    traces: &[String],
) -> Result<Vec<InteractionTexts>, Error> {
    Ok(diesel::sql_query(
        "SELECT i.id, i.caller_number, i.caller_e164, i.chat_external_user_id, \
                i.chat_display_name, i.outcome_reason, i.variables \
         FROM interactions i \
         WHERE i.domain_id = $1 AND EXISTS ( \
           SELECT 1 FROM unnest($2::text[]) t \
           WHERE position(t IN concat_ws(' ', i.caller_number, i.caller_e164, \
                                         i.chat_external_user_id, i.chat_display_name, \
                                         i.outcome_reason, i.variables::text)) > 0)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<Text>, _>(traces)
    .load(conn)
    .await?)
}

/// Sets an interaction's texts.
pub async fn set_interaction_texts(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    texts: &InteractionTexts,
) -> Result<(), Error> {
    diesel::sql_query(
        "UPDATE interactions SET caller_number = $3, caller_e164 = $4, \
                chat_external_user_id = $5, chat_display_name = $6, outcome_reason = $7, \
                variables = $8 \
         WHERE domain_id = $1 AND id = $2",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(texts.id)
    .bind::<Nullable<Text>, _>(&texts.caller_number)
    .bind::<Nullable<Text>, _>(&texts.caller_e164)
    .bind::<Nullable<Text>, _>(&texts.chat_external_user_id)
    .bind::<Nullable<Text>, _>(&texts.chat_display_name)
    .bind::<Text, _>(&texts.outcome_reason)
    .bind::<Jsonb, _>(&texts.variables)
    .execute(conn)
    .await?;
    Ok(())
}

/// A merge a contact took part in, as stored.
#[derive(Debug, Clone, QueryableByName)]
pub struct MergeRecord {
    /// The merge.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The survivor.
    #[diesel(sql_type = BigInt)]
    pub survivor_id: i64,
    /// The contacts merged into it.
    #[diesel(sql_type = Array<BigInt>)]
    pub merged_ids: Vec<i64>,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub merged_at: DateTime<Utc>,
    /// When it was undone.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub undone_at: Option<DateTime<Utc>>,
    /// The archive.
    #[diesel(sql_type = Jsonb)]
    pub archive: serde_json::Value,
}

/// The merges the contact took part in, oldest first.
pub async fn merges_of(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
) -> Result<Vec<MergeRecord>, Error> {
    Ok(diesel::sql_query(
        "SELECT id, survivor_id, merged_ids, merged_at, undone_at, archive FROM contact_merges \
         WHERE domain_id = $1 AND (survivor_id = $2 OR $2 = ANY (merged_ids)) ORDER BY id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(contact.0)
    .load(conn)
    .await?)
}
