//! The merge: moves the merged contacts' rows onto the survivor, folds them among open
//! interactions' candidates, archives what an undo needs and deletes them. Imports
//! [`super::archive`], [`super::links`] and the contact writes below it.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::archive::{self, Archive, CandidatesChange, SurvivorState, corrupt};
use super::links::{EMAILS, IdRow, PHONES, repoint};
use crate::db::audit::{self, AuditAction, AuditRecord};
use crate::db::contacts::{self, ContactChanges};
use crate::db::merged::not_found;
use crate::db::tx::Tx;
use crate::domain::contact::ContactCard;
use crate::domain::identify::{Candidate, Outcome};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::merge::{self as rules, FieldSources, Member};
use crate::domain::session::Session;
use crate::error::{Error, Fault, Reason};

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

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

#[derive(QueryableByName)]
pub(super) struct InteractionRef {
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
    #[diesel(sql_type = Text)]
    pub(super) external_id: String,
    #[diesel(sql_type = BigInt)]
    pub(super) agent_id: i64,
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

pub(super) async fn lock_interactions(
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

/// Locks, in the server's order and each class in ascending id, the open interactions that
/// show a merged contact, the identities of every contact of the merge, and the contacts;
/// checks each member's version (NOT_FOUND naming its field, or ABORTED when stale). Returns
/// the interactions.
async fn lock(
    tx: &mut Tx<'_>,
    domain: DomainId,
    survivor: &Member,
    merged: &[Member],
    merged_ids: &[i64],
    all_ids: &[i64],
) -> Result<Vec<InteractionRef>, Error> {
    let touched = lock_interactions(tx, domain, merged_ids).await?;
    diesel::sql_query(LOCK_IDENTITIES_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(all_ids)
        .load::<IdRow>(tx)
        .await?;
    let versions: HashMap<i64, i64> = diesel::sql_query(LOCK_CONTACTS_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(all_ids)
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
    Ok(touched)
}

/// History follows the merge: bindings change contact, keeping who and when; interactions
/// bound now (open or closed) follow; create requests that made a merged contact return the
/// survivor.
async fn move_history(
    tx: &mut Tx<'_>,
    domain: DomainId,
    merged_ids: &[i64],
    s: ContactId,
) -> Result<(), Error> {
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
    .bind::<Array<BigInt>, _>(merged_ids)
    .bind::<BigInt, _>(s.0)
    .load::<Rebound>(tx)
    .await?
    .into_iter()
    .map(|r| r.interaction_id)
    .collect();
    repoint(tx, "interaction_bindings", domain, merged_ids, s).await?;
    diesel::sql_query(
        "UPDATE interactions SET bound_contact_id = $3, updated_at = now() \
         WHERE domain_id = $1 AND id = ANY($4) AND bound_contact_id = ANY($2)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(merged_ids)
    .bind::<BigInt, _>(s.0)
    .bind::<Array<BigInt>, _>(&current)
    .execute(tx)
    .await?;
    repoint(tx, "contact_create_requests", domain, merged_ids, s).await?;
    Ok(())
}

/// Folds the merged contacts onto the survivor among open interactions' candidates (also of
/// interactions offered since the locks were taken); returns what changed, for the archive.
async fn fold_candidates(
    tx: &mut Tx<'_>,
    domain: DomainId,
    merged_ids: &[i64],
    merged_contacts: &[ContactId],
    s: ContactId,
) -> Result<Vec<CandidatesChange>, Error> {
    let rows: Vec<CandidatesRow> = diesel::sql_query(
        "SELECT id, candidates, outcome, outcome_reason FROM interactions \
         WHERE domain_id = $1 AND state <> 'closed' \
           AND interaction_candidate_ids(candidates) && $2 ORDER BY id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<Array<BigInt>, _>(merged_ids)
    .load(tx)
    .await?;
    let mut changes = Vec::new();
    for row in rows {
        let candidates: Vec<Candidate> =
            serde_json::from_value(row.candidates.clone()).map_err(|_| corrupt("candidates"))?;
        let Some(folded) = rules::merged_candidates(&candidates, merged_contacts, s) else {
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
    Ok(changes)
}

/// Records the merge with its archive, and where each merged contact went; returns its id.
async fn record(
    tx: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    s: ContactId,
    merged_ids: &[i64],
    archive: &Archive,
) -> Result<i64, Error> {
    let archive = serde_json::to_value(archive).map_err(|_| corrupt("archive"))?;
    let merge_id: i64 = diesel::sql_query(
        "INSERT INTO contact_merges (domain_id, survivor_id, merged_ids, merged_by, archive) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<BigInt, _>(s.0)
    .bind::<Array<BigInt>, _>(merged_ids)
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
    .bind::<Array<BigInt>, _>(merged_ids)
    .bind::<BigInt, _>(merge_id)
    .bind::<BigInt, _>(s.0)
    .execute(tx)
    .await?;
    Ok(merge_id)
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
    let mut touched = lock(tx, domain, survivor, merged, &merged_ids, &all_ids).await?;

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

    let mut archived = archive::contacts(tx, domain, &merged_ids).await?;

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

    move_history(tx, domain, &merged_ids, s).await?;

    let merged_contacts: Vec<ContactId> = merged.iter().map(|m| m.contact).collect();
    let changes = fold_candidates(tx, domain, &merged_ids, &merged_contacts, s).await?;
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
    let merge_id = record(tx, domain, actor, s, &merged_ids, &archive).await?;

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
