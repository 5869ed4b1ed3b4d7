//! Merging duplicate contacts, and undoing a merge, each in the caller's unit of work.
//!
//! A merge moves the merged contacts' phones, e-mails, messaging identities, labels and
//! interaction bindings onto the survivor (rows keep their ids, bindings their who and when),
//! folds them into the survivor among open interactions' candidates, and deletes their rows:
//! identification and search never see them again. What an undo needs is archived in
//! `contact_merges.archive`; `merged_contacts` answers "where did contact N go?".
//!
//! # Locks
//!
//! Every writer of the server takes its row locks in one order: interactions, then messaging
//! identities, then contacts (select, create-from-interaction and relink already do; see
//! `db::binding` and `db::contacts`). A merge locks, in that order and each class in ascending
//! id, the open interactions that have a merged contact bound or as a candidate, the identities
//! of every contact of the merge, and the contacts; an undo locks its merge record, then the
//! open interactions that show the survivor, the archived identities, and the survivor. So two
//! merges of overlapping sets, or a merge and a relink, update, delete or select on one of its
//! contacts, wait for each other instead of deadlocking; the second then finds a stale version
//! (ABORTED) or a merged contact (NOT_FOUND, CONTACT_MERGED). Any deadlock left is answered
//! ABORTED with reason CONCURRENT_CHANGE (see `error.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditAction, AuditRecord};
use super::contacts::{self, ContactChanges};
use super::domains::Session;
use super::labels;
use super::tx::Tx;
use crate::domain::contact::{
    Attribute, ChannelIdentity, ChannelLink, ContactCard, EmailLink, PhoneLink,
};
use crate::domain::identify::{Candidate, Outcome};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::merge::{self as rules, FieldSources};
use crate::error::{Error, Fault, PreconditionViolation, Reason};

/// A contact of a merge, the version the caller saw, and the request field naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller last saw.
    pub expected_version: i64,
    /// The request field that names it (for errors), for example `merged[1].contact_id`.
    pub field: String,
}

/// An open interaction whose panel a merge or an undo changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Routing's interaction id.
    pub external_id: String,
    /// Its agent.
    pub agent: UserId,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merge.
    pub merge_id: i64,
    /// The survivor after it.
    pub survivor: ContactCard,
    /// The contacts merged into it.
    pub merged: Vec<ContactId>,
    /// The open interactions that showed a merged contact.
    pub touched: Vec<Touched>,
}

/// What an undo did.
#[derive(Debug, Clone)]
pub struct Unmerged {
    /// The merge.
    pub merge_id: i64,
    /// The survivor after it.
    pub survivor: ContactCard,
    /// The contacts restored.
    pub restored: Vec<ContactCard>,
    /// What `force` left out.
    pub skipped: Vec<Conflict>,
    /// The open interactions whose binding or candidates went back to a restored contact.
    pub touched: Vec<Touched>,
}

/// Why a communication of a merged contact cannot go back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// It was removed from the survivor since the merge.
    Removed,
    /// The messaging identity belongs to another contact now.
    HeldByOtherContact(ContactId),
}

/// A communication that an undo cannot give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The restored contact it belonged to.
    pub contact: ContactId,
    /// Why.
    pub kind: ConflictKind,
    /// The communication as it was.
    pub communication: ArchivedLink,
}

/// A communication as the merged contact had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchivedLink {
    /// A phone.
    Phone(PhoneLink),
    /// An e-mail.
    Email(EmailLink),
    /// A messaging identity.
    Channel(ChannelLink),
}

impl Conflict {
    /// The PreconditionFailure subject: `contact/12/phones/34`.
    pub fn subject(&self) -> String {
        let (what, id) = match &self.communication {
            ArchivedLink::Phone(p) => ("phones", p.id),
            ArchivedLink::Email(e) => ("emails", e.id),
            ArchivedLink::Channel(c) => ("messaging_channels", c.id),
        };
        format!("contact/{}/{what}/{id}", self.contact)
    }

    /// For people (no personal data: the link is named by its id).
    pub fn description(&self) -> String {
        let what = match &self.communication {
            ArchivedLink::Phone(_) => "phone",
            ArchivedLink::Email(_) => "e-mail",
            ArchivedLink::Channel(_) => "messaging identity",
        };
        match self.kind {
            ConflictKind::Removed => format!(
                "the {what} of contact {} was removed from the survivor since the merge",
                self.contact
            ),
            ConflictKind::HeldByOtherContact(holder) => format!(
                "the {what} of contact {} belongs to contact {holder} now",
                self.contact
            ),
        }
    }

    /// The PreconditionFailure type.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ConflictKind::Removed => "COMMUNICATION_REMOVED",
            ConflictKind::HeldByOtherContact(_) => "IDENTITY_HELD_BY_OTHER_CONTACT",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The archive

/// The survivor's own fields, before and after a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SurvivorState {
    display_name: String,
    description: String,
    time_zone: String,
    owner_id: i64,
    attributes: BTreeMap<String, String>,
    labels: BTreeSet<String>,
}

impl SurvivorState {
    fn of(card: &ContactCard) -> Self {
        Self {
            display_name: card.display_name.clone(),
            description: card.description.clone(),
            time_zone: card.time_zone.clone(),
            owner_id: card.owner.id.0,
            attributes: card
                .attributes
                .iter()
                .map(|a| (a.key.clone(), a.value.clone()))
                .collect(),
            labels: card.labels.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedAttribute {
    key: String,
    value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedPhone {
    id: i64,
    number: String,
    e164: String,
    region: String,
    national_number: String,
    digits_reversed: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    moved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedEmail {
    id: i64,
    address: String,
    normalized: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    moved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedChannel {
    id: i64,
    protocol: String,
    external_user_id: String,
    display_name: String,
    created_at: DateTime<Utc>,
}

/// A merged contact as it was: its row, its children, the ids of its bindings and of the
/// create requests that named it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedContact {
    id: i64,
    display_name: String,
    description: String,
    time_zone: String,
    owner_id: i64,
    version: i64,
    created_at: DateTime<Utc>,
    created_by: i64,
    updated_at: DateTime<Utc>,
    updated_by: i64,
    last_active_at: DateTime<Utc>,
    labels: Vec<String>,
    attributes: Vec<ArchivedAttribute>,
    phones: Vec<ArchivedPhone>,
    emails: Vec<ArchivedEmail>,
    channels: Vec<ArchivedChannel>,
    bindings: Vec<i64>,
    create_requests: Vec<String>,
}

/// An open interaction whose candidates a merge folded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CandidatesChange {
    interaction_id: i64,
    before: serde_json::Value,
    after: serde_json::Value,
    outcome_before: String,
    reason_before: String,
    outcome_after: String,
    reason_after: String,
}

/// What an undo needs (`contact_merges.archive`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Archive {
    survivor_before: SurvivorState,
    survivor_after: SurvivorState,
    contacts: Vec<ArchivedContact>,
    interactions: Vec<CandidatesChange>,
}

/// The archive rows of contacts `$2` of domain `$1`, one JSON object each.
const ARCHIVE_SQL: &str = "\
SELECT jsonb_build_object( \
  'id', c.id, 'display_name', c.display_name, 'description', c.description, \
  'time_zone', c.time_zone, 'owner_id', c.owner_id, 'version', c.version, \
  'created_at', c.created_at, 'created_by', c.created_by, 'updated_at', c.updated_at, \
  'updated_by', c.updated_by, 'last_active_at', c.last_active_at, \
  'labels', COALESCE((SELECT jsonb_agg(l.name ORDER BY l.name) FROM contact_labels cl \
                      JOIN labels l ON l.id = cl.label_id WHERE cl.contact_id = c.id), '[]'), \
  'attributes', COALESCE((SELECT jsonb_agg(jsonb_build_object('key', a.key, 'value', a.value) \
                          ORDER BY a.key) FROM contact_attributes a WHERE a.contact_id = c.id), '[]'), \
  'phones', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', p.id, 'number', p.number, \
                        'e164', p.e164, 'region', p.region, 'national_number', p.national_number, \
                        'digits_reversed', p.digits_reversed, 'created_at', p.created_at) ORDER BY p.id) \
                      FROM contact_phones p WHERE p.contact_id = c.id), '[]'), \
  'emails', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', e.id, 'address', e.address, \
                        'normalized', e.normalized, 'created_at', e.created_at) ORDER BY e.id) \
                      FROM contact_emails e WHERE e.contact_id = c.id), '[]'), \
  'channels', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', m.id, 'protocol', m.protocol, \
                          'external_user_id', m.external_user_id, 'display_name', m.display_name, \
                          'created_at', m.created_at) ORDER BY m.id) \
                        FROM contact_messaging_channels m WHERE m.contact_id = c.id), '[]'), \
  'bindings', COALESCE((SELECT jsonb_agg(b.id ORDER BY b.id) FROM interaction_bindings b \
                        WHERE b.contact_id = c.id), '[]'), \
  'create_requests', COALESCE((SELECT jsonb_agg(r.request_id ORDER BY r.request_id) \
                               FROM contact_create_requests r \
                               WHERE r.contact_id = c.id AND r.domain_id = c.domain_id), '[]') \
) AS row \
FROM contacts c WHERE c.domain_id = $1 AND c.id = ANY($2)";

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Jsonb)]
    row: serde_json::Value,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

#[derive(QueryableByName)]
struct InteractionRef {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    external_id: String,
    #[diesel(sql_type = BigInt)]
    agent_id: i64,
}

#[derive(QueryableByName)]
struct CandidatesRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    candidates: serde_json::Value,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Text)]
    outcome_reason: String,
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("merge archive: unreadable {what}"))
}

// ---------------------------------------------------------------------------------------------
// Where did a contact go?

#[derive(QueryableByName)]
struct MergedInto {
    #[diesel(sql_type = BigInt)]
    survivor_id: i64,
    #[diesel(sql_type = BigInt)]
    merge_id: i64,
}

/// The contact that holds `id` now (following merges of merges) and the merge that took `id`,
/// when `id` was merged and not restored since.
const MERGED_INTO_SQL: &str = "\
WITH RECURSIVE chain (contact_id, survivor_id, depth) AS ( \
    SELECT contact_id, survivor_id, 1 FROM merged_contacts WHERE domain_id = $1 AND contact_id = $2 \
  UNION ALL \
    SELECT m.contact_id, m.survivor_id, c.depth + 1 FROM merged_contacts m \
    JOIN chain c ON m.contact_id = c.survivor_id WHERE m.domain_id = $1 AND c.depth < 32) \
SELECT (SELECT survivor_id FROM chain ORDER BY depth DESC LIMIT 1) AS survivor_id, \
       merge_id FROM merged_contacts WHERE domain_id = $1 AND contact_id = $2";

async fn merged_into(
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

// ---------------------------------------------------------------------------------------------
// Moving rows between contacts

/// Phones and e-mails: a contact holds a value (E.164, normalised address) once, so they move
/// by value, and the links whose value the survivor already had are deleted with the merged
/// contact (and inserted again, with their ids, by an undo).
struct ValueLinks {
    table: &'static str,
    key: &'static str,
    /// The columns an undo inserts again, and their types in the archive's JSON.
    columns: &'static str,
    record: &'static str,
}

const PHONES: ValueLinks = ValueLinks {
    table: "contact_phones",
    key: "e164",
    columns: "number, e164, region, national_number, digits_reversed, created_at",
    record: "number text, e164 text, region text, national_number text, digits_reversed text, \
             created_at timestamptz",
};

const EMAILS: ValueLinks = ValueLinks {
    table: "contact_emails",
    key: "normalized",
    columns: "address, normalized, created_at",
    record: "address text, normalized text, created_at timestamptz",
};

impl ValueLinks {
    /// Moves to `to` the oldest link of each value of `from` that `to` lacks; returns the ids
    /// moved.
    async fn merge(
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
    async fn held(
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
    async fn restore(
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
async fn move_rows(
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
async fn repoint(
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

// ---------------------------------------------------------------------------------------------
// Merge

const LOCK_INTERACTIONS_SQL: &str = "\
SELECT id, external_id, agent_id FROM interactions \
WHERE domain_id = $1 AND state <> 'closed' \
  AND (bound_contact_id = ANY($2) OR interaction_candidate_ids(candidates) && $2) \
ORDER BY id FOR UPDATE";

const LOCK_IDENTITIES_SQL: &str = "\
SELECT id FROM contact_messaging_channels WHERE domain_id = $1 AND contact_id = ANY($2) \
ORDER BY id FOR UPDATE";

const LOCK_CONTACTS_SQL: &str = "\
SELECT id, version FROM contacts WHERE domain_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE";

async fn lock_interactions(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contacts: &[i64],
) -> Result<Vec<InteractionRef>, Error> {
    Ok(diesel::sql_query(LOCK_INTERACTIONS_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(contacts)
        .load(conn)
        .await?)
}

/// The error for a member of a merge that is not there: NOT_FOUND naming the request field.
async fn missing(conn: &mut AsyncPgConnection, domain: DomainId, m: &Member) -> Error {
    let err = match not_found(conn, domain, m.contact).await {
        Ok(e) => e,
        Err(e) => return e,
    };
    match err {
        Error::NotFound(f) => Error::NotFound(f.with("field", &m.field)),
        other => other,
    }
}

fn stale(m: &Member, version: i64) -> Error {
    Error::Aborted(
        Fault::new(
            Reason::ContactVersionMismatch,
            format!(
                "contact {} ({}) is at version {version}, not {}: reload it and retry",
                m.contact, m.field, m.expected_version
            ),
        )
        .about(format!("contact/{}", m.contact))
        .with("current_version", version)
        .with("expected_version", m.expected_version)
        .with("field", &m.field),
    )
}

/// Merges `merged` into `survivor` (see the module documentation), audits it once with every
/// contact's card before, and returns what the events need.
pub async fn merge(
    tx: &mut Tx<'_>,
    session: &Session,
    survivor: &Member,
    merged: &[Member],
    sources: &FieldSources,
) -> Result<Merged, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    let merged_ids: Vec<i64> = merged.iter().map(|m| m.contact.0).collect();
    let mut all_ids = merged_ids.clone();
    all_ids.push(survivor.contact.0);
    let s = survivor.contact;

    // Locks: interactions, identities, contacts; each in ascending id.
    let mut touched = lock_interactions(tx, domain, &merged_ids).await?;
    diesel::sql_query(LOCK_IDENTITIES_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(&all_ids)
        .load::<IdRow>(tx)
        .await?;
    let versions: HashMap<i64, i64> = diesel::sql_query(LOCK_CONTACTS_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(&all_ids)
        .load::<VersionRow>(tx)
        .await?
        .into_iter()
        .map(|r| (r.id, r.version))
        .collect();
    for m in std::iter::once(survivor).chain(merged) {
        match versions.get(&m.contact.0) {
            None => return Err(missing(tx, domain, m).await),
            Some(v) if *v != m.expected_version => return Err(stale(m, *v)),
            Some(_) => {}
        }
    }

    let before = contacts::load_cards(tx, domain, &all_ids).await?;
    let card_of = |id: ContactId| before.iter().find(|c| c.id == id).cloned();
    let survivor_before = card_of(s).ok_or_else(|| Error::contact_not_found(s))?;
    let merged_before: Vec<ContactCard> =
        merged.iter().filter_map(|m| card_of(m.contact)).collect();
    let fields = rules::merged_fields(&survivor_before, &merged_before, sources)
        .map_err(|e| Error::precondition(Reason::MergeLimitExceeded, format!("contact/{s}"), e))?;
    let owner_ok = fields.owner == survivor_before.owner.id
        || crate::db::users::exists(tx, domain, fields.owner).await?;
    if !owner_ok {
        return Err(Error::invalid(
            "field_sources.owner_from",
            format!("no user {} in this domain", fields.owner),
        ));
    }

    let mut archived: Vec<ArchivedContact> = diesel::sql_query(ARCHIVE_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(&merged_ids)
        .load::<JsonRow>(tx)
        .await?
        .into_iter()
        .map(|r| serde_json::from_value(r.row).map_err(|_| corrupt("contact")))
        .collect::<Result<_, _>>()?;
    archived.sort_by_key(|a| merged_ids.iter().position(|m| *m == a.id));

    // Communications: phones and e-mails the survivor lacks move (the oldest link of each
    // value); identities, unique per domain, all move.
    let moved_phones = PHONES.merge(tx, domain, &merged_ids, s).await?;
    let moved_emails = EMAILS.merge(tx, domain, &merged_ids, s).await?;
    for a in &mut archived {
        for p in &mut a.phones {
            p.moved = moved_phones.contains(&p.id);
        }
        for e in &mut a.emails {
            e.moved = moved_emails.contains(&e.id);
        }
    }
    repoint(tx, "contact_messaging_channels", domain, &merged_ids, s).await?;

    // History: bindings change contact, keeping who and when; interactions bound now (open or
    // closed) follow; create requests that made a merged contact return the survivor.
    #[derive(QueryableByName)]
    struct Rebound {
        #[diesel(sql_type = BigInt)]
        interaction_id: i64,
    }
    let current: Vec<i64> = diesel::sql_query(
        "UPDATE interaction_bindings SET contact_id = $3 \
         WHERE domain_id = $1 AND contact_id = ANY($2) AND unbound_at IS NULL \
         RETURNING interaction_id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .bind::<BigInt, _>(s.0)
    .load::<Rebound>(tx)
    .await?
    .into_iter()
    .map(|r| r.interaction_id)
    .collect();
    repoint(tx, "interaction_bindings", domain, &merged_ids, s).await?;
    diesel::sql_query(
        "UPDATE interactions SET bound_contact_id = $3, updated_at = now() \
         WHERE domain_id = $1 AND id = ANY($4) AND bound_contact_id = ANY($2)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .bind::<BigInt, _>(s.0)
    .bind::<Array<BigInt>, _>(&current)
    .execute(tx)
    .await?;
    repoint(tx, "contact_create_requests", domain, &merged_ids, s).await?;

    // Candidates of open interactions fold onto the survivor (also of interactions offered
    // since the locks were taken).
    let merged_contacts: Vec<ContactId> = merged.iter().map(|m| m.contact).collect();
    let rows: Vec<CandidatesRow> = diesel::sql_query(
        "SELECT id, candidates, outcome, outcome_reason FROM interactions \
         WHERE domain_id = $1 AND state <> 'closed' \
           AND interaction_candidate_ids(candidates) && $2 ORDER BY id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .load(tx)
    .await?;
    let mut changes = Vec::new();
    for row in rows {
        let candidates: Vec<Candidate> =
            serde_json::from_value(row.candidates.clone()).map_err(|_| corrupt("candidates"))?;
        let Some(folded) = rules::merged_candidates(&candidates, &merged_contacts, s) else {
            continue;
        };
        let outcome = Outcome::parse(&row.outcome).ok_or_else(|| corrupt("outcome"))?;
        let (outcome_after, reason_after) =
            rules::outcome_after_merge(outcome, &row.outcome_reason, &folded);
        let after = serde_json::to_value(&folded).map_err(|_| corrupt("candidates"))?;
        diesel::sql_query(
            "UPDATE interactions SET candidates = $2, outcome = $3, outcome_reason = $4, \
                                     updated_at = now() WHERE id = $1",
        )
        .bind::<BigInt, _>(row.id)
        .bind::<Jsonb, _>(&after)
        .bind::<Text, _>(outcome_after.as_str())
        .bind::<Text, _>(&reason_after)
        .execute(tx)
        .await?;
        changes.push(CandidatesChange {
            interaction_id: row.id,
            before: row.candidates,
            after,
            outcome_before: row.outcome,
            reason_before: row.outcome_reason,
            outcome_after: outcome_after.as_str().to_owned(),
            reason_after,
        });
    }
    let changed_ids: Vec<i64> = changes.iter().map(|c| c.interaction_id).collect();
    let extra: Vec<InteractionRef> = diesel::sql_query(
        "SELECT id, external_id, agent_id FROM interactions WHERE domain_id = $1 AND id = ANY($2)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&changed_ids)
    .load(tx)
    .await?;
    for i in extra {
        if !touched.iter().any(|t| t.id == i.id) {
            touched.push(i);
        }
    }

    // The survivor takes the labels of all and its chosen fields; the others go.
    diesel::sql_query(
        "INSERT INTO contact_labels (domain_id, contact_id, label_id) \
         SELECT DISTINCT $1::bigint, $3::bigint, label_id FROM contact_labels \
         WHERE contact_id = ANY($2) ON CONFLICT DO NOTHING",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .bind::<BigInt, _>(s.0)
    .execute(tx)
    .await?;
    diesel::sql_query("DELETE FROM contacts WHERE domain_id = $1 AND id = ANY($2)")
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(&merged_ids)
        .execute(tx)
        .await?;
    contacts::set_attributes(tx, domain, s, &fields.attributes).await?;
    contacts::touch(
        tx,
        domain,
        s,
        actor,
        ContactChanges {
            display_name: Some(&fields.display_name),
            description: Some(&fields.description),
            time_zone: Some(&fields.time_zone),
            owner_id: Some(fields.owner.0),
        },
    )
    .await?;
    let survivor_after = contacts::load_card(tx, domain, s).await?;

    let archive = Archive {
        survivor_before: SurvivorState::of(&survivor_before),
        survivor_after: SurvivorState::of(&survivor_after),
        contacts: archived,
        interactions: changes,
    };
    let archive = serde_json::to_value(&archive).map_err(|_| corrupt("archive"))?;
    let merge_id: i64 = diesel::sql_query(
        "INSERT INTO contact_merges (domain_id, survivor_id, merged_ids, merged_by, archive) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(s.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .bind::<BigInt, _>(actor.0)
    .bind::<Jsonb, _>(&archive)
    .get_result::<IdRow>(tx)
    .await?
    .id;
    diesel::sql_query(
        "INSERT INTO merged_contacts (contact_id, domain_id, merge_id, survivor_id) \
         SELECT unnest($2::bigint[]), $1, $3, $4",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&merged_ids)
    .bind::<BigInt, _>(merge_id)
    .bind::<BigInt, _>(s.0)
    .execute(tx)
    .await?;

    let mut cards_before = vec![audit::snapshot(&survivor_before)?];
    for c in &merged_before {
        cards_before.push(audit::snapshot(c)?);
    }
    tx.audit(AuditRecord {
        domain,
        actor,
        action: AuditAction::ContactMerge,
        contact: s,
        interaction: None,
        before: Some(serde_json::json!({ "contacts": cards_before })),
        after: Some(serde_json::json!({
            "merge_id": merge_id,
            "survivor": audit::snapshot(&survivor_after)?,
            "merged_contact_ids": merged_ids,
        })),
    });
    Ok(Merged {
        merge_id,
        survivor: survivor_after,
        merged: merged_contacts,
        touched: touched
            .into_iter()
            .map(|i| Touched {
                external_id: i.external_id,
                agent: UserId(i.agent_id),
            })
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Undo

#[derive(QueryableByName)]
struct MergeRow {
    #[diesel(sql_type = BigInt)]
    survivor_id: i64,
    #[diesel(sql_type = Jsonb)]
    archive: serde_json::Value,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    undone_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    expired: bool,
}

#[derive(QueryableByName)]
struct HolderRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    protocol: String,
    #[diesel(sql_type = Text)]
    external_user_id: String,
    #[diesel(sql_type = BigInt)]
    contact_id: i64,
}

fn phone_link(p: &ArchivedPhone) -> PhoneLink {
    PhoneLink {
        id: p.id,
        number: p.number.clone(),
        e164: p.e164.clone(),
        region: p.region.clone(),
    }
}

fn email_link(e: &ArchivedEmail) -> EmailLink {
    EmailLink {
        id: e.id,
        address: e.address.clone(),
        normalized: e.normalized.clone(),
    }
}

fn channel_link(c: &ArchivedChannel) -> ChannelLink {
    ChannelLink {
        id: c.id,
        identity: ChannelIdentity {
            protocol: c.protocol.clone(),
            external_user_id: c.external_user_id.clone(),
            display_name: c.display_name.clone(),
        },
    }
}

/// Undoes merge `merge_id` of the caller's domain within `retention` (see the module
/// documentation): the merged contacts come back as they were, with the communications, labels
/// and bindings they brought; the survivor keeps what changed on it since. Communications that
/// cannot go back are FAILED_PRECONDITION (UNMERGE_CONFLICT, a violation each) unless `force`,
/// which restores without them and lists them.
pub async fn unmerge(
    tx: &mut Tx<'_>,
    session: &Session,
    merge_id: i64,
    force: bool,
    retention: std::time::Duration,
) -> Result<Unmerged, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    let retention_secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2);
    let row: Option<MergeRow> = diesel::sql_query(
        "SELECT survivor_id, archive, undone_at, \
                merged_at + make_interval(secs => $3) AS expires_at, \
                merged_at + make_interval(secs => $3) < now() AS expired \
         FROM contact_merges WHERE domain_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(merge_id)
    .bind::<diesel::sql_types::Double, _>(retention_secs as f64)
    .get_result(tx)
    .await
    .optional()?;
    let subject = format!("merge/{merge_id}");
    let Some(row) = row else {
        return Err(Error::NotFound(
            Fault::new(Reason::MergeNotFound, format!("merge {merge_id} not found"))
                .about(subject)
                .with("field", "merge_id"),
        ));
    };
    if let Some(at) = row.undone_at {
        return Err(Error::FailedPrecondition(
            Fault::new(
                Reason::MergeAlreadyUndone,
                format!("merge {merge_id} was undone already"),
            )
            .about(subject)
            .with("undone_at", at.to_rfc3339()),
        ));
    }
    if row.expired {
        return Err(Error::FailedPrecondition(
            Fault::new(
                Reason::MergeExpired,
                format!(
                    "merge {merge_id} can no longer be undone: the undo window ended at {}",
                    row.expires_at.to_rfc3339()
                ),
            )
            .about(subject)
            .with("expired_at", row.expires_at.to_rfc3339()),
        ));
    }
    let archive: Archive = serde_json::from_value(row.archive).map_err(|_| corrupt("archive"))?;
    let s = ContactId(row.survivor_id);

    // Locks: interactions showing the survivor, the identities to give back, the survivor.
    let locked = lock_interactions(tx, domain, &[s.0]).await?;
    let (protocols, externals): (Vec<String>, Vec<String>) = archive
        .contacts
        .iter()
        .flat_map(|c| &c.channels)
        .map(|c| (c.protocol.clone(), c.external_user_id.clone()))
        .unzip();
    let holders: Vec<HolderRow> = diesel::sql_query(
        "SELECT id, protocol, external_user_id, contact_id FROM contact_messaging_channels \
         WHERE domain_id = $1 AND (protocol, external_user_id) IN \
               (SELECT * FROM unnest($2::text[], $3::text[])) \
         ORDER BY id FOR UPDATE",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<Text>, _>(&protocols)
    .bind::<Array<Text>, _>(&externals)
    .load(tx)
    .await?;
    let survivor_found: Option<i64> =
        diesel::sql_query("SELECT id FROM contacts WHERE domain_id = $1 AND id = $2 FOR UPDATE")
            .bind::<BigInt, _>(domain.0)
            .bind::<BigInt, _>(s.0)
            .get_result::<IdRow>(tx)
            .await
            .optional()?
            .map(|r| r.id);
    if survivor_found.is_none() {
        let mut fault = Fault::new(
            Reason::MergeSurvivorGone,
            format!("the survivor of merge {merge_id}, contact {s}, was deleted since"),
        )
        .about(format!("contact/{s}"));
        if let Some(m) = merged_into(tx, domain, s).await? {
            fault = Fault::new(
                Reason::MergeSurvivorGone,
                format!(
                    "the survivor of merge {merge_id}, contact {s}, was merged into contact {} \
                     since (merge {}): undo that merge first",
                    m.survivor_id, m.merge_id
                ),
            )
            .about(format!("contact/{s}"))
            .with("merged_into", m.survivor_id)
            .with("merge_id", m.merge_id);
        }
        return Err(Error::FailedPrecondition(fault));
    }
    let survivor_before = contacts::load_card(tx, domain, s).await?;

    // What can go back.
    let phone_ids: Vec<i64> = archive
        .contacts
        .iter()
        .flat_map(|c| c.phones.iter().filter(|p| p.moved).map(|p| p.id))
        .collect();
    let email_ids: Vec<i64> = archive
        .contacts
        .iter()
        .flat_map(|c| c.emails.iter().filter(|e| e.moved).map(|e| e.id))
        .collect();
    let phones_on_survivor = PHONES.held(tx, &phone_ids, s).await?;
    let emails_on_survivor = EMAILS.held(tx, &email_ids, s).await?;
    let mut conflicts = Vec::new();
    for c in &archive.contacts {
        let contact = ContactId(c.id);
        for p in c
            .phones
            .iter()
            .filter(|p| p.moved && !phones_on_survivor.contains(&p.id))
        {
            conflicts.push(Conflict {
                contact,
                kind: ConflictKind::Removed,
                communication: ArchivedLink::Phone(phone_link(p)),
            });
        }
        for e in c
            .emails
            .iter()
            .filter(|e| e.moved && !emails_on_survivor.contains(&e.id))
        {
            conflicts.push(Conflict {
                contact,
                kind: ConflictKind::Removed,
                communication: ArchivedLink::Email(email_link(e)),
            });
        }
        for m in &c.channels {
            let holder = holders
                .iter()
                .find(|h| h.protocol == m.protocol && h.external_user_id == m.external_user_id);
            let kind = match holder {
                Some(h) if h.contact_id == s.0 => continue,
                Some(h) => ConflictKind::HeldByOtherContact(ContactId(h.contact_id)),
                None => ConflictKind::Removed,
            };
            conflicts.push(Conflict {
                contact,
                kind,
                communication: ArchivedLink::Channel(channel_link(m)),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        let mut fault = Fault::new(
            Reason::UnmergeConflict,
            format!(
                "{} communication(s) of the merged contacts cannot go back; set force to restore \
                 the contacts without them",
                conflicts.len()
            ),
        )
        .about(format!("merge/{merge_id}"));
        fault.violations = conflicts
            .iter()
            .map(|c| PreconditionViolation {
                kind: c.kind_name().to_owned(),
                subject: c.subject(),
                description: c.description(),
            })
            .collect();
        return Err(Error::FailedPrecondition(fault));
    }

    // The contacts come back, with their ids.
    let mut touched_ids: BTreeSet<i64> = BTreeSet::new();
    for c in &archive.contacts {
        let x = ContactId(c.id);
        diesel::sql_query(
            "INSERT INTO contacts (id, domain_id, display_name, description, time_zone, owner_id, \
                                   version, created_at, created_by, updated_at, updated_by, \
                                   last_active_at) OVERRIDING SYSTEM VALUE \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11)",
        )
        .bind::<BigInt, _>(x.0)
        .bind::<BigInt, _>(domain.0)
        .bind::<Text, _>(&c.display_name)
        .bind::<Text, _>(&c.description)
        .bind::<Text, _>(&c.time_zone)
        .bind::<BigInt, _>(c.owner_id)
        .bind::<BigInt, _>(c.version + 1)
        .bind::<Timestamptz, _>(c.created_at)
        .bind::<BigInt, _>(c.created_by)
        .bind::<BigInt, _>(actor.0)
        .bind::<Timestamptz, _>(c.last_active_at)
        .execute(tx)
        .await?;
        labels::set_for_contact(tx, domain, x, &c.labels).await?;
        let attributes: Vec<Attribute> = c
            .attributes
            .iter()
            .map(|a| Attribute {
                key: a.key.clone(),
                value: a.value.clone(),
            })
            .collect();
        contacts::set_attributes(tx, domain, x, &attributes).await?;

        let back: Vec<i64> = c
            .phones
            .iter()
            .filter(|p| p.moved && phones_on_survivor.contains(&p.id))
            .map(|p| p.id)
            .collect();
        move_rows(tx, "contact_phones", &back, s, x).await?;
        let again: Vec<&ArchivedPhone> = c.phones.iter().filter(|p| !p.moved).collect();
        let again = serde_json::to_value(&again).map_err(|_| corrupt("phones"))?;
        PHONES.restore(tx, domain, x, again).await?;
        let back: Vec<i64> = c
            .emails
            .iter()
            .filter(|e| e.moved && emails_on_survivor.contains(&e.id))
            .map(|e| e.id)
            .collect();
        move_rows(tx, "contact_emails", &back, s, x).await?;
        let again: Vec<&ArchivedEmail> = c.emails.iter().filter(|e| !e.moved).collect();
        let again = serde_json::to_value(&again).map_err(|_| corrupt("emails"))?;
        EMAILS.restore(tx, domain, x, again).await?;
        let back: Vec<i64> = c
            .channels
            .iter()
            .filter_map(|m| {
                holders
                    .iter()
                    .find(|h| {
                        h.protocol == m.protocol
                            && h.external_user_id == m.external_user_id
                            && h.contact_id == s.0
                    })
                    .map(|h| h.id)
            })
            .collect();
        move_rows(tx, "contact_messaging_channels", &back, s, x).await?;

        // History goes back, and the interactions bound through it.
        #[derive(QueryableByName)]
        struct Back {
            #[diesel(sql_type = BigInt)]
            interaction_id: i64,
        }
        let current: Vec<i64> = diesel::sql_query(
            "UPDATE interaction_bindings SET contact_id = $2 \
             WHERE id = ANY($1) AND contact_id = $3 RETURNING interaction_id",
        )
        .bind::<Array<BigInt>, _>(&c.bindings)
        .bind::<BigInt, _>(x.0)
        .bind::<BigInt, _>(s.0)
        .load::<Back>(tx)
        .await?
        .into_iter()
        .map(|b| b.interaction_id)
        .collect();
        let rebound: Vec<i64> = diesel::sql_query(
            "UPDATE interactions i SET bound_contact_id = $2, updated_at = now() \
             FROM interaction_bindings b \
             WHERE i.domain_id = $1 AND i.id = ANY($3) AND i.bound_contact_id = $4 \
               AND b.interaction_id = i.id AND b.unbound_at IS NULL AND b.contact_id = $2 \
             RETURNING i.id",
        )
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(x.0)
        .bind::<Array<BigInt>, _>(&current)
        .bind::<BigInt, _>(s.0)
        .load::<IdRow>(tx)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        touched_ids.extend(rebound);
        diesel::sql_query(
            "UPDATE contact_create_requests SET contact_id = $2 \
             WHERE domain_id = $1 AND request_id = ANY($3) AND contact_id = $4",
        )
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(x.0)
        .bind::<Array<Text>, _>(&c.create_requests)
        .bind::<BigInt, _>(s.0)
        .execute(tx)
        .await?;
    }

    // Candidates a merge folded go back where nobody changed them since.
    for change in &archive.interactions {
        let n = diesel::sql_query(
            "UPDATE interactions SET candidates = $2, outcome = $3, outcome_reason = $4, \
                                     updated_at = now() \
             WHERE id = $1 AND domain_id = $6 AND state <> 'closed' AND candidates = $5",
        )
        .bind::<BigInt, _>(change.interaction_id)
        .bind::<Jsonb, _>(&change.before)
        .bind::<Text, _>(&change.outcome_before)
        .bind::<Text, _>(&change.reason_before)
        .bind::<Jsonb, _>(&change.after)
        .bind::<BigInt, _>(domain.0)
        .execute(tx)
        .await?;
        if n > 0 {
            touched_ids.insert(change.interaction_id);
        }
    }

    // The survivor gives back what the merge gave it, unless changed since.
    let (b, m, now) = (
        &archive.survivor_before,
        &archive.survivor_after,
        SurvivorState::of(&survivor_before),
    );
    let display_name = rules::reverted(&b.display_name, &m.display_name, &now.display_name);
    let description = rules::reverted(&b.description, &m.description, &now.description);
    let time_zone = rules::reverted(&b.time_zone, &m.time_zone, &now.time_zone);
    let owner = rules::reverted(&b.owner_id, &m.owner_id, &now.owner_id);
    let mut attributes = now.attributes.clone();
    let keys: BTreeSet<&String> = b.attributes.keys().chain(m.attributes.keys()).collect();
    for key in keys {
        let (before, after, current) = (
            b.attributes.get(key),
            m.attributes.get(key),
            now.attributes.get(key),
        );
        match rules::reverted(&before, &after, &current) {
            Some(Some(v)) => {
                attributes.insert(key.clone(), v.clone());
            }
            Some(None) => {
                attributes.remove(key);
            }
            None => {}
        }
    }
    let labels: Vec<String> = now
        .labels
        .iter()
        .filter(|l| b.labels.contains(*l) || !m.labels.contains(*l))
        .cloned()
        .collect();
    if attributes != now.attributes {
        let list: Vec<Attribute> = attributes
            .into_iter()
            .map(|(key, value)| Attribute { key, value })
            .collect();
        contacts::set_attributes(tx, domain, s, &list).await?;
    }
    if labels.len() != now.labels.len() {
        labels::set_for_contact(tx, domain, s, &labels).await?;
    }
    contacts::touch(
        tx,
        domain,
        s,
        actor,
        ContactChanges {
            display_name: display_name.as_deref(),
            description: description.as_deref(),
            time_zone: time_zone.as_deref(),
            owner_id: owner,
        },
    )
    .await?;

    diesel::sql_query(
        "UPDATE contact_merges SET undone_at = now(), undone_by = $3 WHERE domain_id = $1 AND id = $2",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(merge_id)
    .bind::<BigInt, _>(actor.0)
    .execute(tx)
    .await?;
    diesel::sql_query("DELETE FROM merged_contacts WHERE domain_id = $1 AND merge_id = $2")
        .bind::<BigInt, _>(domain.0)
        .bind::<BigInt, _>(merge_id)
        .execute(tx)
        .await?;

    let restored_ids: Vec<i64> = archive.contacts.iter().map(|c| c.id).collect();
    let survivor = contacts::load_card(tx, domain, s).await?;
    let restored = contacts::load_cards(tx, domain, &restored_ids).await?;
    let skipped = if force { conflicts } else { Vec::new() };
    let skipped_json: Vec<serde_json::Value> = skipped
        .iter()
        .map(|c| serde_json::json!({ "subject": c.subject(), "type": c.kind_name() }))
        .collect();
    let mut restored_json = Vec::new();
    for c in &restored {
        restored_json.push(audit::snapshot(c)?);
    }
    let after = serde_json::json!({
        "merge_id": merge_id,
        "survivor": audit::snapshot(&survivor)?,
        "restored": restored_json,
        "skipped": skipped_json,
    });
    for contact in std::iter::once(s).chain(restored.iter().map(|c| c.id)) {
        tx.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::ContactUnmerge,
            contact,
            interaction: None,
            before: (contact == s)
                .then(|| audit::snapshot(&survivor_before))
                .transpose()?,
            after: Some(after.clone()),
        });
    }
    let mut touched: Vec<Touched> = locked
        .iter()
        .filter(|i| touched_ids.contains(&i.id))
        .map(|i| Touched {
            external_id: i.external_id.clone(),
            agent: UserId(i.agent_id),
        })
        .collect();
    let unlocked: Vec<i64> = touched_ids
        .iter()
        .copied()
        .filter(|id| !locked.iter().any(|i| i.id == *id))
        .collect();
    let rest: Vec<InteractionRef> = diesel::sql_query(
        "SELECT id, external_id, agent_id FROM interactions \
         WHERE domain_id = $1 AND id = ANY($2) AND state <> 'closed'",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(&unlocked)
    .load(tx)
    .await?;
    touched.extend(rest.into_iter().map(|i| Touched {
        external_id: i.external_id,
        agent: UserId(i.agent_id),
    }));
    Ok(Unmerged {
        merge_id,
        survivor,
        restored,
        skipped,
        touched,
    })
}
