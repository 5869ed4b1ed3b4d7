//! Conversions between the wire (generated protobuf types) and the domain: responses, and
//! the request fields of the read RPCs (the write RPCs' requests become typed commands in
//! [`super::decode`], where every field rule lives).

use chrono::{DateTime, Utc};
use client_info_proto::pb;

use super::decode;
use crate::db::contacts::ContactDraft;
use crate::domain::contact::{Communication, CommunicationDraft, ContactCard, NewContact, UserRef};
use crate::domain::identify::{Identification, MatchRule, Outcome};
use crate::domain::ids::UserId;
use crate::domain::interaction::{Destination, Direction, InteractionKind, InteractionState};
use crate::domain::phone::{Region, parse_phone};
use crate::domain::text::TextRule;
use crate::error::{Error, Violations};

/// Most page size any listing accepts.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// A timestamp for the wire.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A user reference for the wire.
pub fn user_ref(u: &UserRef) -> pb::UserRef {
    pb::UserRef {
        id: u.id.0,
        name: u.name.clone(),
    }
}

/// A full card for the wire.
pub fn contact(card: &ContactCard, read_only: bool) -> pb::Contact {
    pb::Contact {
        id: card.id.0,
        version: card.version,
        display_name: card.display_name.clone(),
        description: card.description.clone(),
        time_zone: card.time_zone.clone(),
        owner: Some(user_ref(&card.owner)),
        labels: card.labels.clone(),
        attributes: card
            .attributes
            .iter()
            .map(|a| pb::Attribute {
                key: a.key.clone(),
                value: a.value.clone(),
            })
            .collect(),
        phones: card
            .phones
            .iter()
            .map(|p| pb::Phone {
                id: p.id,
                number: p.number.clone(),
                e164: p.e164.clone(),
                region: p.region.clone(),
            })
            .collect(),
        emails: card
            .emails
            .iter()
            .map(|e| pb::Email {
                id: e.id,
                address: e.address.clone(),
                normalized: e.normalized.clone(),
            })
            .collect(),
        messaging_channels: card
            .channels
            .iter()
            .map(|c| pb::MessagingChannel {
                id: c.id,
                protocol: c.identity.protocol.clone(),
                external_user_id: c.identity.external_user_id.clone(),
                display_name: c.identity.display_name.clone(),
            })
            .collect(),
        created_at: Some(timestamp(card.created_at)),
        created_by: Some(user_ref(&card.created_by)),
        updated_at: Some(timestamp(card.updated_at)),
        updated_by: Some(user_ref(&card.updated_by)),
        read_only,
    }
}

// Request fields read with one collector (the read RPCs); each wraps its reader in
// [`super::decode`], where the rules live.

/// A positive id, or a violation on `field`.
pub fn positive_id(v: &mut Violations, field: &str, id: i64) -> Option<i64> {
    v.keep(decode::positive_id(field, id))
}

/// Page size: 0 means the default, otherwise 1 to 100.
pub fn page_size(v: &mut Violations, field: &str, size: i32) -> i64 {
    match size {
        0 => i64::from(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => i64::from(size),
        _ => {
            v.add(field, format!("must be between 1 and {MAX_PAGE_SIZE}"));
            i64::from(DEFAULT_PAGE_SIZE)
        }
    }
}

/// Reads a numeric keyset page token ("" for the first page).
pub fn id_page_token(v: &mut Violations, token: &str) -> Option<i64> {
    if token.is_empty() {
        return None;
    }
    match token.parse::<i64>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            v.add("page_token", "is not a page token returned by this RPC");
            None
        }
    }
}

/// An opaque identifier from a client (request id, interaction id): 1 to 128 characters, no
/// control characters.
pub fn client_id(v: &mut Violations, field: &str, id: &str) -> Option<String> {
    v.keep(decode::client_id(field, id))
}

/// A text field checked by `rule` ([`crate::domain::text`]): every string of a request goes
/// through this or a rule built on [`crate::domain::text::Text::parse`].
pub fn text(v: &mut Violations, field: &str, s: &str, rule: TextRule) -> Option<String> {
    v.keep(decode::text(field, s, rule))
}

/// Validated labels (deduplicated).
pub fn labels(v: &mut Violations, field: &str, input: &[String]) -> Vec<String> {
    v.keep(decode::labels(field, input)).unwrap_or_default()
}

/// Parses a phone draft in the domain's region (other drafts pass as they are); a bad number
/// is reported on `field`.
pub fn resolve_communication(
    field: &str,
    draft: CommunicationDraft,
    region: Region,
) -> Result<Communication, Error> {
    Ok(match draft {
        CommunicationDraft::Phone(raw) => {
            let parsed = decode::rule(
                &format!("{field}.phone.number"),
                parse_phone(&raw, region).map_err(|e| e.to_string()),
            )?;
            Communication::Phone { raw, parsed }
        }
        CommunicationDraft::Email(e) => Communication::Email(e),
        CommunicationDraft::Channel(c) => Communication::Channel(c),
    })
}

/// Parses the phone drafts in the domain's region; every bad number is reported with its field.
pub fn resolve_communications(
    drafts: Vec<(String, CommunicationDraft)>,
    region: Region,
) -> Result<Vec<Communication>, Error> {
    let mut v = Violations::new();
    let mut out = Vec::with_capacity(drafts.len());
    for (field, draft) in drafts {
        match resolve_communication(&field, draft, region) {
            Ok(c) => out.push(c),
            Err(Error::InvalidArgument(faults)) => {
                for f in faults {
                    v.add(f.field, f.description);
                }
            }
            Err(other) => return Err(other),
        }
    }
    v.into_result()?;
    Ok(out)
}

/// Turns a validated new contact into a draft ready to insert: owner defaulted to the caller,
/// phones parsed in the domain's region.
pub fn draft(
    new: NewContact,
    drafts: Vec<(String, CommunicationDraft)>,
    caller: UserId,
    region: Region,
) -> Result<ContactDraft, Error> {
    Ok(ContactDraft {
        communications: resolve_communications(drafts, region)?,
        display_name: new.display_name,
        description: new.description,
        time_zone: new.time_zone,
        owner: new.owner.unwrap_or(caller),
        labels: new.labels,
        attributes: new.attributes,
    })
}

/// Wire enum of a state.
pub fn state(s: InteractionState) -> pb::InteractionState {
    match s {
        InteractionState::Offered => pb::InteractionState::Offered,
        InteractionState::Accepted => pb::InteractionState::Accepted,
        InteractionState::Closed => pb::InteractionState::Closed,
    }
}

/// Wire enum of a kind.
pub fn kind(k: InteractionKind) -> pb::InteractionKind {
    match k {
        InteractionKind::Call => pb::InteractionKind::Call,
        InteractionKind::Chat => pb::InteractionKind::Chat,
    }
}

/// Wire enum of a direction.
pub fn direction(d: Direction) -> pb::InteractionDirection {
    match d {
        Direction::Inbound => pb::InteractionDirection::Inbound,
        Direction::Outbound => pb::InteractionDirection::Outbound,
    }
}

/// Wire enum of a match rule.
pub fn rule(r: MatchRule) -> pb::MatchRule {
    match r {
        MatchRule::E164 => pb::MatchRule::E164,
        MatchRule::NationalVariant => pb::MatchRule::NationalVariant,
        MatchRule::NationalNumber => pb::MatchRule::NationalNumber,
        MatchRule::LastDigits => pb::MatchRule::LastDigits,
        MatchRule::MessagingIdentity => pb::MatchRule::MessagingIdentity,
    }
}

/// The identification block for the wire.
pub fn identification(i: &Identification) -> pb::Identification {
    pb::Identification {
        outcome: match i.outcome {
            Outcome::NotFound => pb::IdentificationOutcome::NotFound,
            Outcome::Identified => pb::IdentificationOutcome::Identified,
            Outcome::Ambiguous => pb::IdentificationOutcome::Ambiguous,
        } as i32,
        reason: i.reason.clone(),
        normalized_number: i.normalized_number.clone().unwrap_or_default(),
        candidate_count: i32::try_from(i.candidates.len()).unwrap_or(i32::MAX),
    }
}

/// The destination as offered, for the wire.
pub fn destination(d: &Destination) -> pb::ClientDestination {
    use pb::client_destination::Destination as D;
    pb::ClientDestination {
        destination: Some(match d {
            Destination::Call { number } => D::Call(pb::CallerNumber {
                number: number.clone().unwrap_or_default(),
                hidden: number.is_none(),
            }),
            Destination::Chat(c) => D::Chat(pb::ChatIdentity {
                protocol: c.protocol.clone(),
                external_user_id: c.external_user_id.clone(),
                display_name: c.display_name.clone(),
            }),
        }),
    }
}
