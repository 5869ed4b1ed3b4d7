//! Contacts: the card read model and the writes (create, update, delete, link, unlink), each
//! run in the caller's unit of work ([`Tx`]). Every write locks the contact row, checks the
//! caller's expected version, raises the version, and records the change in the audit log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::audit::{self, AuditAction, AuditRecord};
use super::cached::{Dynamic, JsonOf, positional};
use super::communications::{self, LinkOutcome};
use super::schema::{contact_attributes, contact_create_requests, contacts};
use super::tx::Tx;
use super::{labels, users};
use crate::domain::contact::{
    Attribute, ChannelIdentity, ChannelLink, Communication, ContactCard, ContactDraft,
    ContactPatch, EmailLink, LinkRef, PhoneLink, UserRef,
};
use crate::domain::ids::{ContactId, DomainId, UserId};
use crate::domain::session::Session;
use crate::error::{Error, Fault, Reason};

/// The scalar fields a change sets (`None`: unchanged).
#[derive(AsChangeset, Default)]
#[diesel(table_name = contacts)]
pub(crate) struct ContactChanges<'a> {
    pub(crate) display_name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) time_zone: Option<&'a str>,
    pub(crate) owner_id: Option<i64>,
}

/// The whole card of each contact in one statement: the row, the three user names, and each
/// child table aggregated to JSON through its `contact_id` index. [`cards_statement`] adds the
/// `WHERE`.
pub const CARDS_SELECT: &str = "\
SELECT c.id, c.version, c.display_name, c.description, c.time_zone, c.owner_id, \
       c.created_at, c.created_by, c.updated_at, c.updated_by, \
       (SELECT name FROM users WHERE id = c.owner_id) AS owner_name, \
       (SELECT name FROM users WHERE id = c.created_by) AS created_by_name, \
       (SELECT name FROM users WHERE id = c.updated_by) AS updated_by_name, \
       COALESCE((SELECT jsonb_agg(l.name ORDER BY l.name) FROM contact_labels cl \
                 JOIN labels l ON l.id = cl.label_id WHERE cl.contact_id = c.id), '[]') AS labels, \
       COALESCE((SELECT jsonb_agg(jsonb_build_array(a.key, a.value) ORDER BY a.key) \
                 FROM contact_attributes a WHERE a.contact_id = c.id), '[]') AS attributes, \
       COALESCE((SELECT jsonb_agg(jsonb_build_array(p.id, p.number, p.e164, p.region) ORDER BY p.id) \
                 FROM contact_phones p WHERE p.contact_id = c.id), '[]') AS phones, \
       COALESCE((SELECT jsonb_agg(jsonb_build_array(e.id, e.address, e.normalized) ORDER BY e.id) \
                 FROM contact_emails e WHERE e.contact_id = c.id), '[]') AS emails, \
       COALESCE((SELECT jsonb_agg(jsonb_build_array(m.id, m.protocol, m.external_user_id, m.display_name) ORDER BY m.id) \
                 FROM contact_messaging_channels m WHERE m.contact_id = c.id), '[]') AS channels \
FROM contacts c";

/// [`CARDS_SELECT`] for `ids` of `domain` (not empty).
pub fn cards_statement(domain: DomainId, ids: &[i64]) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let list = sql.list(ids, |s, id| s.int(id));
    sql.text = format!("{CARDS_SELECT} WHERE c.domain_id = {d} AND c.id IN ({list})");
    sql
}

/// A text item of a card's JSON arrays; `null` (a channel without a display name) reads as
/// empty.
type Item = Option<String>;

crate::db::cached::positional_row!(
    /// A row of [`CARDS_SELECT`], read by position ([`super::cached::positional`]).
    pub(crate) struct CardRow as CardSql, CARD_FIELDS {
        id: BigInt => i64,
        version: BigInt => i64,
        display_name: Text => String,
        description: Text => String,
        time_zone: Text => String,
        owner_id: BigInt => i64,
        created_at: Timestamptz => DateTime<Utc>,
        created_by: BigInt => i64,
        updated_at: Timestamptz => DateTime<Utc>,
        updated_by: BigInt => i64,
        owner_name: Nullable<Text> => Option<String>,
        created_by_name: Nullable<Text> => Option<String>,
        updated_by_name: Nullable<Text> => Option<String>,
        labels: Jsonb => JsonOf<Vec<String>>,
        attributes: Jsonb => JsonOf<Vec<(Item, Item)>>,
        phones: Jsonb => JsonOf<Vec<(i64, Item, Item, Item)>>,
        emails: Jsonb => JsonOf<Vec<(i64, Item, Item)>>,
        channels: Jsonb => JsonOf<Vec<(i64, Item, Item, Item)>>,
    }
);

impl CardRow {
    pub(crate) fn into_card(self) -> ContactCard {
        let user = |id: i64, name: Option<String>| UserRef {
            id: UserId(id),
            name: name.unwrap_or_default(),
        };
        ContactCard {
            id: ContactId(self.id),
            version: self.version,
            labels: self.labels.0,
            attributes: self
                .attributes
                .0
                .into_iter()
                .map(|(key, value)| Attribute {
                    key: key.unwrap_or_default(),
                    value: value.unwrap_or_default(),
                })
                .collect(),
            phones: self
                .phones
                .0
                .into_iter()
                .map(|(id, number, e164, region)| PhoneLink {
                    id,
                    number: number.unwrap_or_default(),
                    e164: e164.unwrap_or_default(),
                    region: region.unwrap_or_default(),
                })
                .collect(),
            emails: self
                .emails
                .0
                .into_iter()
                .map(|(id, address, normalized)| EmailLink {
                    id,
                    address: address.unwrap_or_default(),
                    normalized: normalized.unwrap_or_default(),
                })
                .collect(),
            channels: self
                .channels
                .0
                .into_iter()
                .map(
                    |(id, protocol, external_user_id, display_name)| ChannelLink {
                        id,
                        identity: ChannelIdentity {
                            protocol: protocol.unwrap_or_default(),
                            external_user_id: external_user_id.unwrap_or_default(),
                            display_name: display_name.unwrap_or_default(),
                        },
                    },
                )
                .collect(),
            owner: user(self.owner_id, self.owner_name),
            created_by: user(self.created_by, self.created_by_name),
            updated_by: user(self.updated_by, self.updated_by_name),
            display_name: self.display_name,
            description: self.description,
            time_zone: self.time_zone,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Loads the full cards of `ids` in `domain`, in the order of `ids`; missing ids are skipped.
/// One statement, whatever the number of contacts ([`CARDS_SELECT`]). Takes a shared
/// connection, so it can be pipelined with other reads.
pub async fn load_cards(
    mut conn: &AsyncPgConnection,
    domain: DomainId,
    ids: &[i64],
) -> Result<Vec<ContactCard>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<CardRow> = positional::<CardSql, _>(cards_statement(domain, ids))
        .load(&mut conn)
        .await?;
    let mut by_id: HashMap<i64, ContactCard> =
        rows.into_iter().map(|r| (r.id, r.into_card())).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Loads one card; NOT_FOUND when the contact is not in `domain` (reason CONTACT_MERGED, with
/// the survivor, when it was merged into another).
pub async fn load_card(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<ContactCard, Error> {
    match load_cards(conn, domain, &[id.0]).await?.pop() {
        Some(card) => Ok(card),
        None => Err(super::merged::not_found(conn, domain, id).await?),
    }
}

/// `Ok` when the contact exists in `domain`; else NOT_FOUND (CONTACT_MERGED when it was
/// merged into another).
pub async fn ensure_exists(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<(), Error> {
    if exists(conn, domain, id).await? {
        Ok(())
    } else {
        Err(super::merged::not_found(conn, domain, id).await?)
    }
}

/// Takes a key-share lock on the contact row (call in a transaction): the contact cannot be
/// deleted or merged away until the transaction ends, and a merge under way is waited for.
/// NOT_FOUND (CONTACT_MERGED when merged) when it is not, or no longer, there.
pub async fn lock_shared(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<(), Error> {
    let found: Option<i64> = contacts::table
        .filter(contacts::domain_id.eq(domain.0))
        .filter(contacts::id.eq(id.0))
        .select(contacts::id)
        .for_key_share()
        .first(conn)
        .await
        .optional()?;
    match found {
        Some(_) => Ok(()),
        None => Err(super::merged::not_found(conn, domain, id).await?),
    }
}

/// True when the contact exists in `domain`.
pub async fn exists(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
) -> Result<bool, Error> {
    Ok(diesel::select(diesel::dsl::exists(
        contacts::table
            .filter(contacts::domain_id.eq(domain.0))
            .filter(contacts::id.eq(id.0)),
    ))
    .get_result(conn)
    .await?)
}

/// Replaces a contact's attributes (call in a transaction).
pub(crate) async fn set_attributes(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    attributes: &[Attribute],
) -> Result<(), Error> {
    diesel::delete(contact_attributes::table.filter(contact_attributes::contact_id.eq(contact.0)))
        .execute(conn)
        .await?;
    if attributes.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = attributes
        .iter()
        .map(|a| {
            (
                contact_attributes::domain_id.eq(domain.0),
                contact_attributes::contact_id.eq(contact.0),
                contact_attributes::key.eq(&a.key),
                contact_attributes::value.eq(&a.value),
            )
        })
        .collect();
    diesel::insert_into(contact_attributes::table)
        .values(&rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// INVALID_ARGUMENT on `field` unless `owner` is a user of the domain.
async fn check_owner(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    owner: UserId,
    field: &str,
) -> Result<(), Error> {
    if users::exists(conn, domain, owner).await? {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("no user {owner} in this domain"),
        ))
    }
}

/// Locks the contact row and checks the expected version (`None`: no check). Returns the
/// current version. NOT_FOUND when the contact is not in `domain` (CONTACT_MERGED when it was
/// merged into another); ABORTED when stale.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    id: ContactId,
    expected_version: Option<i64>,
) -> Result<i64, Error> {
    let found: Option<i64> = contacts::table
        .filter(contacts::domain_id.eq(domain.0))
        .filter(contacts::id.eq(id.0))
        .select(contacts::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(version) = found else {
        return Err(super::merged::not_found(conn, domain, id).await?);
    };
    match expected_version {
        Some(expected) if expected != version => Err(Error::Aborted(
            Fault::new(
                Reason::ContactVersionMismatch,
                format!(
                    "contact {id} is at version {version}, not {expected}: reload it and retry"
                ),
            )
            .about(format!("contact/{id}"))
            .with("current_version", version)
            .with("expected_version", expected),
        )),
        _ => Ok(version),
    }
}

/// Raises the version and stamps the change (call with the row locked).
pub(crate) async fn touch(
    conn: &mut Tx<'_>,
    domain: DomainId,
    id: ContactId,
    actor: UserId,
    changes: ContactChanges<'_>,
) -> Result<(), Error> {
    diesel::update(
        contacts::table
            .filter(contacts::domain_id.eq(domain.0))
            .filter(contacts::id.eq(id.0)),
    )
    .set((
        changes,
        contacts::version.eq(contacts::version + 1),
        contacts::updated_at.eq(diesel::dsl::now),
        contacts::updated_by.eq(actor.0),
        contacts::last_active_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The idempotency key of a create: the client's request id and a fingerprint of the body.
#[derive(Debug, Clone, Copy)]
pub struct CreateRequestKey<'a> {
    /// The client-chosen request id.
    pub request_id: &'a str,
    /// The request body in a canonical form.
    pub fingerprint: &'a str,
}

/// Raises a locked contact's version after a change made elsewhere (a relinked identity).
pub async fn touch_version(
    conn: &mut Tx<'_>,
    domain: DomainId,
    id: ContactId,
    actor: UserId,
) -> Result<(), Error> {
    touch(conn, domain, id, actor, ContactChanges::default()).await
}

/// What [`create_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new contact.
    New(ContactId),
    /// A retry: the contact the first request with the key created.
    Replayed(ContactId),
}

/// Creates a contact with its labels, attributes and communications, and audits it.
/// `interaction` names the routing interaction it came from, for the audit log.
///
/// With a request key, a retry returns the contact the first request created (and `false`);
/// concurrent duplicates wait on the key's row, so exactly one contact is created.
pub async fn create_in(
    conn: &mut Tx<'_>,
    session: &Session,
    draft: &ContactDraft,
    key: Option<CreateRequestKey<'_>>,
    interaction: Option<&str>,
) -> Result<(ContactCard, bool), Error> {
    match insert_contact(conn, session, draft, key).await? {
        Created::Replayed(id) => Ok((load_card(conn, session.domain.id, id).await?, false)),
        Created::New(id) => {
            let card = audit_created(conn, session, id, interaction).await?;
            Ok((card, true))
        }
    }
}

/// Loads the new contact's card and records its creation.
pub async fn audit_created(
    conn: &mut Tx<'_>,
    session: &Session,
    id: ContactId,
    interaction: Option<&str>,
) -> Result<ContactCard, Error> {
    let card = load_card(conn, session.domain.id, id).await?;
    audit_created_card(conn, session, &card, interaction)?;
    Ok(card)
}

/// Records the creation of the contact whose new card is `card`.
pub fn audit_created_card(
    conn: &mut Tx<'_>,
    session: &Session,
    card: &ContactCard,
    interaction: Option<&str>,
) -> Result<(), Error> {
    conn.audit(AuditRecord {
        domain: session.domain.id,
        actor: session.caller.user_id,
        action: AuditAction::ContactCreate,
        contact: card.id,
        interaction,
        before: None,
        after: Some(audit::snapshot(card)?),
    });
    Ok(())
}

/// Claims the request key (`$3`, `''` for none, with the body's fingerprint `$4`) and inserts
/// the contact row, in one statement: the id is drawn first so that the claim names it. Nothing
/// is written when the owner (`$2`) is not a user of the domain (`owner_ok` false) or the key
/// was claimed before (`id` NULL).
pub const INSERT_CONTACT_SQL: &str = "\
WITH owner AS (SELECT EXISTS (SELECT 1 FROM users WHERE domain_id = $1 AND id = $2) AS ok), \
     n AS (SELECT nextval(pg_get_serial_sequence('contacts', 'id')) AS id FROM owner \
           WHERE owner.ok), \
     claim AS (INSERT INTO contact_create_requests (domain_id, request_id, fingerprint, contact_id) \
               SELECT $1, $3, $4, n.id FROM n WHERE $3 <> '' \
               ON CONFLICT DO NOTHING \
               RETURNING contact_id), \
     c AS (INSERT INTO contacts (id, domain_id, display_name, description, time_zone, owner_id, \
                                 created_by, updated_by) \
           OVERRIDING SYSTEM VALUE \
           SELECT n.id, $1, $5, $6, $7, $2, $8, $8 FROM n \
           WHERE $3 = '' OR EXISTS (SELECT 1 FROM claim) \
           RETURNING id) \
SELECT (SELECT ok FROM owner) AS owner_ok, (SELECT id FROM c) AS id";

crate::db::cached::cached_statement!(
    /// [`INSERT_CONTACT_SQL`], prepared once per connection.
    InsertContactStatement = INSERT_CONTACT_SQL;
    domain: BigInt => i64,
    owner: BigInt => i64,
    request_id: Text => String,
    fingerprint: Text => String,
    display_name: Text => String,
    description: Text => String,
    time_zone: Text => String,
    actor: BigInt => i64,
);

#[derive(diesel::QueryableByName)]
struct InsertedContact {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    owner_ok: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
}

/// Inserts the contact with labels, attributes and communications; with a request key
/// already used, inserts nothing and names the earlier contact.
pub async fn insert_contact(
    conn: &mut Tx<'_>,
    session: &Session,
    draft: &ContactDraft,
    key: Option<CreateRequestKey<'_>>,
) -> Result<Created, Error> {
    let domain = session.domain.id;
    let inserted: InsertedContact = InsertContactStatement {
        domain: domain.0,
        owner: draft.owner.0,
        request_id: key.map(|k| k.request_id.to_owned()).unwrap_or_default(),
        fingerprint: key.map(|k| k.fingerprint.to_owned()).unwrap_or_default(),
        display_name: draft.display_name.clone(),
        description: draft.description.clone(),
        time_zone: draft.time_zone.clone(),
        actor: session.caller.user_id.0,
    }
    .get_result(conn)
    .await?;
    let id = match (inserted.id, key) {
        (Some(id), _) => ContactId(id),
        // A retry: the key's first request made the contact (checked before the owner, who
        // may have changed since).
        (None, Some(key)) if inserted.owner_ok || earlier(conn, domain, key).await?.is_some() => {
            return replay(conn, domain, key).await.map(Created::Replayed);
        }
        (None, _) => {
            return Err(Error::invalid(
                "owner_id",
                format!("no user {} in this domain", draft.owner),
            ));
        }
    };
    // A new contact has no labels or attributes to replace.
    if !draft.labels.is_empty() {
        labels::set_for_contact(conn, domain, id, &draft.labels).await?;
    }
    if !draft.attributes.is_empty() {
        set_attributes(conn, domain, id, &draft.attributes).await?;
    }
    for communication in &draft.communications {
        communications::link(conn, domain, id, communication, false).await?;
    }
    Ok(Created::New(id))
}

/// The contact an earlier request with the same key created.
async fn replay(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    key: CreateRequestKey<'_>,
) -> Result<ContactId, Error> {
    earlier(conn, domain, key)
        .await?
        .ok_or_else(|| Error::concurrent("the request id was released concurrently; retry"))
}

/// The contact an earlier request with this key created, if the key was used: ALREADY_EXISTS
/// when it was used with another body, FAILED_PRECONDITION when that contact was deleted.
pub async fn earlier(
    mut conn: &AsyncPgConnection,
    domain: DomainId,
    key: CreateRequestKey<'_>,
) -> Result<Option<ContactId>, Error> {
    let found: Option<(String, Option<i64>)> = contact_create_requests::table
        .filter(contact_create_requests::domain_id.eq(domain.0))
        .filter(contact_create_requests::request_id.eq(key.request_id))
        .select((
            contact_create_requests::fingerprint,
            contact_create_requests::contact_id,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    let Some((fingerprint, contact)) = found else {
        return Ok(None);
    };
    if fingerprint != key.fingerprint {
        return Err(Error::AlreadyExists(
            Fault::new(
                Reason::RequestIdReused,
                format!(
                    "request_id {:?} was already used with a different request body",
                    key.request_id
                ),
            )
            .about(format!("request/{}", key.request_id)),
        ));
    }
    let contact = contact.ok_or_else(|| {
        Error::precondition(
            Reason::RequestContactDeleted,
            format!("request/{}", key.request_id),
            format!(
                "the contact created by request_id {:?} has since been deleted",
                key.request_id
            ),
        )
    })?;
    Ok(Some(ContactId(contact)))
}

/// Applies `patch` to a contact at `expected_version` and audits it.
pub async fn update(
    conn: &mut Tx<'_>,
    session: &Session,
    id: ContactId,
    expected_version: i64,
    patch: &ContactPatch,
) -> Result<ContactCard, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        lock(conn, domain, id, Some(expected_version)).await?;
        if let Some(owner) = patch.owner {
            check_owner(conn, domain, owner, "owner_id").await?;
        }
        let before = load_card(conn, domain, id).await?;
        let changes = ContactChanges {
            display_name: patch.display_name.as_deref(),
            description: patch.description.as_deref(),
            time_zone: patch.time_zone.as_deref(),
            owner_id: patch.owner.map(|o| o.0),
        };
        touch(conn, domain, id, actor, changes).await?;
        if let Some(labels) = &patch.labels {
            labels::set_for_contact(conn, domain, id, labels).await?;
        }
        if let Some(attributes) = &patch.attributes {
            set_attributes(conn, domain, id, attributes).await?;
        }
        let after = load_card(conn, domain, id).await?;
        conn.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::ContactUpdate,
            contact: id,
            interaction: None,
            before: Some(audit::snapshot(&before)?),
            after: Some(audit::snapshot(&after)?),
        });
        Ok(after)
    }
}

/// Deletes a contact (its communications, labels and attributes go with it; its interactions
/// stay, unbound) and audits the card as it was.
pub async fn delete(
    conn: &mut Tx<'_>,
    session: &Session,
    id: ContactId,
    expected_version: Option<i64>,
) -> Result<(), Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        lock(conn, domain, id, expected_version).await?;
        let before = load_card(conn, domain, id).await?;
        diesel::delete(
            contacts::table
                .filter(contacts::domain_id.eq(domain.0))
                .filter(contacts::id.eq(id.0)),
        )
        .execute(conn)
        .await?;
        conn.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::ContactDelete,
            contact: id,
            interaction: None,
            before: Some(audit::snapshot(&before)?),
            after: None,
        });
        Ok(())
    }
}

/// Links a communication to a contact and audits it; a messaging identity held by another
/// contact moves when `relink` is set (both contacts' versions rise and both trails record it).
/// Linking what the contact already has changes nothing.
pub async fn link_communication(
    conn: &mut Tx<'_>,
    session: &Session,
    id: ContactId,
    expected_version: Option<i64>,
    communication: &Communication,
    relink: bool,
) -> Result<(ContactCard, LinkOutcome), Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        if let Communication::Channel(identity) = communication {
            communications::lock_identity(conn, domain, identity).await?;
        }
        lock(conn, domain, id, expected_version).await?;
        let before = load_card(conn, domain, id).await?;
        let outcome = link_and_relink(conn, domain, actor, id, communication, relink, None).await?;
        if outcome == LinkOutcome::AlreadyLinked {
            return Ok((before, outcome));
        }
        touch(conn, domain, id, actor, ContactChanges::default()).await?;
        let after = load_card(conn, domain, id).await?;
        conn.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::CommunicationLink,
            contact: id,
            interaction: None,
            before: Some(audit::snapshot(&before)?),
            after: Some(audit::snapshot(&after)?),
        });
        Ok((after, outcome))
    }
}

/// Links a chat's identity to `contact` as a relink does (moving it from a contact that holds
/// it), raising the contact's version when something changed; audited with `interaction`
/// (`communication.link`, or `channel.relink` on both contacts).
/// Locks the identity, then the contact, as every writer of identities does.
pub async fn link_chat_identity(
    conn: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    contact: ContactId,
    identity: &crate::domain::contact::ChannelIdentity,
    interaction: &str,
) -> Result<LinkOutcome, Error> {
    communications::lock_identity(conn, domain, identity).await?;
    lock(conn, domain, contact, None).await?;
    let outcome = link_and_relink(
        conn,
        domain,
        actor,
        contact,
        &Communication::Channel(identity.clone()),
        true,
        Some(interaction),
    )
    .await?;
    if outcome != LinkOutcome::AlreadyLinked {
        touch_version(conn, domain, contact, actor).await?;
    }
    if outcome == LinkOutcome::Linked {
        conn.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::CommunicationLink,
            contact,
            interaction: Some(interaction),
            before: None,
            after: Some(serde_json::json!({
                "messaging_channel": {
                    "protocol": identity.protocol,
                    "external_user_id": identity.external_user_id,
                    "display_name": identity.display_name,
                }
            })),
        });
    }
    Ok(outcome)
}

/// Links a communication (in the caller's transaction). When a messaging identity moves from
/// another contact, that contact's version rises too and both audit trails record the move:
/// from, to, who, when, and the interaction it happened in.
pub async fn link_and_relink(
    conn: &mut Tx<'_>,
    domain: DomainId,
    actor: UserId,
    id: ContactId,
    communication: &Communication,
    relink: bool,
    interaction: Option<&str>,
) -> Result<LinkOutcome, Error> {
    let outcome = communications::link(conn, domain, id, communication, relink).await?;
    if let LinkOutcome::Relinked { from, link } = &outcome {
        // The update locks the row (the identity's lock, taken first, orders the writers).
        touch(conn, domain, *from, actor, ContactChanges::default()).await?;
        let moved = serde_json::json!({
            "messaging_channel": link,
            "from_contact_id": from,
            "to_contact_id": id,
        });
        for contact in [*from, id] {
            conn.audit(AuditRecord {
                domain,
                actor,
                action: AuditAction::ChannelRelink,
                contact,
                interaction,
                before: Some(serde_json::json!({ "contact_id": from })),
                after: Some(moved.clone()),
            });
        }
    }
    Ok(outcome)
}

/// Unlinks a communication from a contact and audits it.
pub async fn unlink_communication(
    conn: &mut Tx<'_>,
    session: &Session,
    id: ContactId,
    expected_version: Option<i64>,
    link: LinkRef,
) -> Result<ContactCard, Error> {
    let domain = session.domain.id;
    let actor = session.caller.user_id;
    {
        lock(conn, domain, id, expected_version).await?;
        let before = load_card(conn, domain, id).await?;
        communications::unlink(conn, domain, id, link).await?;
        touch(conn, domain, id, actor, ContactChanges::default()).await?;
        let after = load_card(conn, domain, id).await?;
        conn.audit(AuditRecord {
            domain,
            actor,
            action: AuditAction::CommunicationUnlink,
            contact: id,
            interaction: None,
            before: Some(audit::snapshot(&before)?),
            after: Some(audit::snapshot(&after)?),
        });
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_card_statement_selects_the_rows_fields_in_order() {
        // Card rows are read by position.
        assert_eq!(
            super::super::cached::output_columns(super::CARDS_SELECT),
            super::CARD_FIELDS
        );
    }
}
