//! Undoing a merge within its retention: the merged contacts come back from the archive with
//! the communications, labels and bindings they brought; the survivor gives back what the
//! merge gave it, unless changed since. Imports [`super::archive`], [`super::links`] and
//! [`mod@super::merge`]'s locks.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::archive::{
    Archive, ArchivedContact, ArchivedEmail, ArchivedPhone, SurvivorState, channel_link, corrupt,
    email_link, phone_link,
};
use super::links::{EMAILS, IdRow, PHONES, move_rows};
use super::merge::{InteractionRef, Touched, lock_interactions};
use crate::db::audit::{self, AuditAction, AuditRecord};
use crate::db::contacts::{self, ContactChanges};
use crate::db::labels;
use crate::db::merged::merged_into;
use crate::db::tx::Tx;
use crate::domain::contact::{Attribute, ChannelLink, ContactCard, EmailLink, PhoneLink};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::merge as rules;
use crate::domain::session::Session;
use crate::error::{Error, Fault, PreconditionViolation, Reason};

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

#[derive(QueryableByName)]
struct MergeRow {
    #[diesel(sql_type = BigInt)]
    survivor_id: i64,
    #[diesel(sql_type = Jsonb)]
    archive: serde_json::Value,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    undone_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    erased_at: Option<DateTime<Utc>>,
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

/// The merge's archive and survivor, its record locked: NOT_FOUND when there is no such merge,
/// FAILED_PRECONDITION when it was undone already or its undo window has ended.
async fn load_merge(
    tx: &mut Tx<'_>,
    domain: DomainId,
    merge_id: i64,
    retention: std::time::Duration,
) -> Result<(Archive, ContactId), Error> {
    let retention_secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2);
    let row: Option<MergeRow> = diesel::sql_query(
        "SELECT survivor_id, archive, undone_at, erased_at, \
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
    if let Some(at) = row.erased_at {
        return Err(Error::FailedPrecondition(
            Fault::new(
                Reason::MergeErased,
                format!(
                    "merge {merge_id} can no longer be undone: a contact it archived was erased"
                ),
            )
            .about(subject)
            .with("erased_at", at.to_rfc3339()),
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
    Ok((archive, ContactId(row.survivor_id)))
}

/// Locks, in the server's order, the open interactions that show the survivor, the messaging
/// identities to give back and the survivor (FAILED_PRECONDITION when it was deleted or merged
/// since); returns the interactions and the identities' holders.
async fn lock(
    tx: &mut Tx<'_>,
    domain: DomainId,
    merge_id: i64,
    s: ContactId,
    archive: &Archive,
) -> Result<(Vec<InteractionRef>, Vec<HolderRow>), Error> {
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
    Ok((locked, holders))
}

/// What cannot go back (removed from the survivor, or an identity another contact holds now),
/// and which moved phones and e-mails the survivor still holds.
async fn conflicts(
    tx: &mut Tx<'_>,
    s: ContactId,
    archive: &Archive,
    holders: &[HolderRow],
) -> Result<(Vec<Conflict>, BTreeSet<i64>, BTreeSet<i64>), Error> {
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
    Ok((conflicts, phones_on_survivor, emails_on_survivor))
}

/// FAILED_PRECONDITION (UNMERGE_CONFLICT) listing each communication that cannot go back.
fn refused(merge_id: i64, conflicts: &[Conflict]) -> Error {
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
    Error::FailedPrecondition(fault)
}

/// Restores archived contact `c` with its id: its row, labels and attributes, the phones,
/// e-mails and identities that can go back (moved back from the survivor `s`, or inserted
/// again), its bindings and create requests. Returns the interactions bound to it again.
#[expect(
    clippy::too_many_arguments,
    reason = "what the undo learnt under its locks, each a plain value"
)]
async fn restore(
    tx: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    s: ContactId,
    c: &ArchivedContact,
    phones_on_survivor: &BTreeSet<i64>,
    emails_on_survivor: &BTreeSet<i64>,
    holders: &[HolderRow],
) -> Result<Vec<i64>, Error> {
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
    Ok(rebound)
}

/// Gives open interactions back the candidates a merge folded, where nobody changed them
/// since; returns those interactions.
async fn revert_candidates(
    tx: &mut Tx<'_>,
    domain: DomainId,
    archive: &Archive,
) -> Result<Vec<i64>, Error> {
    let mut reverted = Vec::new();
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
            reverted.push(change.interaction_id);
        }
    }
    Ok(reverted)
}

/// The survivor gives back what the merge gave it (fields, attributes, labels), unless
/// changed since.
async fn revert_survivor(
    tx: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    s: ContactId,
    archive: &Archive,
    survivor_before: &ContactCard,
) -> Result<(), Error> {
    let (b, m, now) = (
        &archive.survivor_before,
        &archive.survivor_after,
        SurvivorState::of(survivor_before),
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
    Ok(())
}

/// Marks the merge undone and forgets where its contacts went.
async fn close(
    tx: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    merge_id: i64,
) -> Result<(), Error> {
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
    Ok(())
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
    let (archive, s) = load_merge(tx, domain, merge_id, retention).await?;
    let (locked, holders) = lock(tx, domain, merge_id, s, &archive).await?;
    let survivor_before = contacts::load_card(tx, domain, s).await?;
    let (conflicts, phones_on_survivor, emails_on_survivor) =
        conflicts(tx, s, &archive, &holders).await?;
    if !conflicts.is_empty() && !force {
        return Err(refused(merge_id, &conflicts));
    }
    let mut touched_ids: BTreeSet<i64> = BTreeSet::new();
    for c in &archive.contacts {
        let rebound = restore(
            tx,
            domain,
            actor,
            s,
            c,
            &phones_on_survivor,
            &emails_on_survivor,
            &holders,
        )
        .await?;
        touched_ids.extend(rebound);
    }
    touched_ids.extend(revert_candidates(tx, domain, &archive).await?);
    revert_survivor(tx, domain, actor, s, &archive, &survivor_before).await?;
    close(tx, domain, actor, merge_id).await?;

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
