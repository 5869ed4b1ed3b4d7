//! What an undo needs, as a merge stores it in `contact_merges.archive`: the survivor's own
//! fields before and after, each merged contact's row and children with the ids of its
//! bindings and create requests, and the open interactions whose candidates were folded.
//! Imports only `domain` and `error`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::domain::contact::{ChannelIdentity, ChannelLink, ContactCard, EmailLink, PhoneLink};
use crate::domain::ids::DomainId;
use crate::error::Error;

/// The survivor's own fields, before and after a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SurvivorState {
    pub(super) display_name: String,
    pub(super) description: String,
    pub(super) time_zone: String,
    pub(super) owner_id: i64,
    pub(super) attributes: BTreeMap<String, String>,
    pub(super) labels: BTreeSet<String>,
}

impl SurvivorState {
    pub(super) fn of(card: &ContactCard) -> Self {
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
pub(super) struct ArchivedAttribute {
    pub(super) key: String,
    pub(super) value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ArchivedPhone {
    pub(super) id: i64,
    pub(super) number: String,
    pub(super) e164: String,
    pub(super) region: String,
    pub(super) national_number: String,
    pub(super) digits_reversed: String,
    pub(super) created_at: DateTime<Utc>,
    #[serde(default)]
    pub(super) moved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ArchivedEmail {
    pub(super) id: i64,
    pub(super) address: String,
    pub(super) normalized: String,
    pub(super) created_at: DateTime<Utc>,
    #[serde(default)]
    pub(super) moved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ArchivedChannel {
    pub(super) id: i64,
    pub(super) protocol: String,
    pub(super) external_user_id: String,
    pub(super) display_name: String,
    pub(super) created_at: DateTime<Utc>,
}

/// A merged contact as it was: its row, its children, the ids of its bindings and of the
/// create requests that named it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ArchivedContact {
    pub(super) id: i64,
    pub(super) display_name: String,
    pub(super) description: String,
    pub(super) time_zone: String,
    pub(super) owner_id: i64,
    pub(super) version: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) created_by: i64,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) updated_by: i64,
    pub(super) last_active_at: DateTime<Utc>,
    pub(super) labels: Vec<String>,
    pub(super) attributes: Vec<ArchivedAttribute>,
    pub(super) phones: Vec<ArchivedPhone>,
    pub(super) emails: Vec<ArchivedEmail>,
    pub(super) channels: Vec<ArchivedChannel>,
    pub(super) bindings: Vec<i64>,
    pub(super) create_requests: Vec<String>,
}

/// An open interaction whose candidates a merge folded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CandidatesChange {
    pub(super) interaction_id: i64,
    pub(super) before: serde_json::Value,
    pub(super) after: serde_json::Value,
    pub(super) outcome_before: String,
    pub(super) reason_before: String,
    pub(super) outcome_after: String,
    pub(super) reason_after: String,
}

/// What an undo needs (`contact_merges.archive`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Archive {
    pub(super) survivor_before: SurvivorState,
    pub(super) survivor_after: SurvivorState,
    pub(super) contacts: Vec<ArchivedContact>,
    pub(super) interactions: Vec<CandidatesChange>,
}

/// The archive rows of contacts `$2` of domain `$1`, one JSON object each.
pub(super) const ARCHIVE_SQL: &str = "\
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
pub(super) struct JsonRow {
    #[diesel(sql_type = Jsonb)]
    pub(super) row: serde_json::Value,
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::Internal(format!("merge archive: unreadable {what}"))
}

pub(super) fn phone_link(p: &ArchivedPhone) -> PhoneLink {
    PhoneLink {
        id: p.id,
        number: p.number.clone(),
        e164: p.e164.clone(),
        region: p.region.clone(),
    }
}

pub(super) fn email_link(e: &ArchivedEmail) -> EmailLink {
    EmailLink {
        id: e.id,
        address: e.address.clone(),
        normalized: e.normalized.clone(),
    }
}

pub(super) fn channel_link(c: &ArchivedChannel) -> ChannelLink {
    ChannelLink {
        id: c.id,
        identity: ChannelIdentity {
            protocol: c.protocol.clone(),
            external_user_id: c.external_user_id.clone(),
            display_name: c.display_name.clone(),
        },
    }
}

/// The archive rows of `ids` of `domain`, in the order of `ids`.
pub(super) async fn contacts(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    ids: &[i64],
) -> Result<Vec<ArchivedContact>, Error> {
    let mut archived: Vec<ArchivedContact> = diesel::sql_query(ARCHIVE_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Array<BigInt>, _>(ids)
        .load::<JsonRow>(conn)
        .await?
        .into_iter()
        .map(|r| serde_json::from_value(r.row).map_err(|_| corrupt("contact")))
        .collect::<Result<_, _>>()?;
    archived.sort_by_key(|a| ids.iter().position(|m| *m == a.id));
    Ok(archived)
}
