//! The protobuf forms of domain values: cards, user references, timestamps, the interaction's
//! enums, identification and destination, and what an undo skipped. One function per form, used
//! by the panels, the events and the responses alike. (Requests go the other way in
//! `grpc::decode`.)

use chrono::{DateTime, Utc};
use client_info_proto::pb;

use std::collections::HashMap;

use crate::db::audit::AuditEntry;
use crate::db::card_links::LinkRow;
use crate::db::duplicates::{Group, Kind};
use crate::db::interactions::Binding;
use crate::db::merge::{ArchivedLink, Conflict, ConflictKind};
use crate::domain::contact::{ChannelLink, ContactCard, EmailLink, PhoneLink, UserRef};
use crate::domain::identify::{Identification, MatchRule, Outcome};
use crate::domain::interaction::{
    ClientHistory, Destination, Direction, InteractionKind, InteractionState, Queue,
    RecentInteraction,
};
use crate::domain::merge::NAME_SIMILARITY_THRESHOLD;

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

/// A linked phone for the wire.
pub fn phone(p: &PhoneLink) -> pb::Phone {
    pb::Phone {
        id: p.id,
        number: p.number.clone(),
        e164: p.e164.clone(),
        region: p.region.clone(),
    }
}

/// A linked e-mail for the wire.
pub fn email(e: &EmailLink) -> pb::Email {
    pb::Email {
        id: e.id,
        address: e.address.clone(),
        normalized: e.normalized.clone(),
    }
}

/// A linked messaging identity for the wire.
pub fn channel(c: &ChannelLink) -> pb::MessagingChannel {
    pb::MessagingChannel {
        id: c.id,
        protocol: c.identity.protocol.clone(),
        external_user_id: c.identity.external_user_id.clone(),
        display_name: c.identity.display_name.clone(),
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
        phones: card.phones.iter().map(phone).collect(),
        emails: card.emails.iter().map(email).collect(),
        messaging_channels: card.channels.iter().map(channel).collect(),
        created_at: Some(timestamp(card.created_at)),
        created_by: Some(user_ref(&card.created_by)),
        updated_at: Some(timestamp(card.updated_at)),
        updated_by: Some(user_ref(&card.updated_by)),
        read_only,
    }
}

/// A queue for the wire.
pub fn queue(q: &Queue) -> pb::Queue {
    pb::Queue {
        id: q.id.clone(),
        name: q.name.clone(),
    }
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
        MatchRule::ContactId => pb::MatchRule::ContactId,
        MatchRule::Attribute => pb::MatchRule::Attribute,
        MatchRule::Email => pb::MatchRule::Email,
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

/// A conflict an undo skipped, as sent.
pub fn conflict(c: &Conflict) -> pb::UnmergeConflict {
    use pb::unmerge_conflict::Communication as C;
    let (kind, holder) = match c.kind {
        ConflictKind::Removed => (pb::UnmergeConflictKind::Removed, 0),
        ConflictKind::HeldByOtherContact(h) => (pb::UnmergeConflictKind::HeldByOtherContact, h.0),
    };
    pb::UnmergeConflict {
        contact_id: c.contact.0,
        kind: kind as i32,
        subject: c.subject(),
        description: c.description(),
        holder_contact_id: holder,
        communication: Some(match &c.communication {
            ArchivedLink::Phone(p) => C::Phone(phone(p)),
            ArchivedLink::Email(e) => C::Email(email(e)),
            ArchivedLink::Channel(m) => C::MessagingChannel(channel(m)),
        }),
    }
}

/// Score of a kind of likeness (see `DuplicateGroup.score` in the protos).
fn base_score(kind: Kind, least_similarity: Option<f64>) -> f64 {
    match kind {
        Kind::Email => 0.95,
        Kind::Messaging => 0.9,
        Kind::Phone => 0.85,
        Kind::Name => 0.5 + 0.4 * least_similarity.unwrap_or(0.0),
    }
}

/// A group of duplicates as sent: its contacts, why they look alike, and its score.
pub fn duplicate_group(
    g: &Group,
    names_alike: f64,
    contacts: Vec<pb::Contact>,
) -> pb::DuplicateGroup {
    let found = |field: pb::SearchField, exact: bool, value: String| pb::FoundBy {
        field: field as i32,
        exact,
        value,
        ..Default::default()
    };
    let mut found_by = match g.kind {
        Kind::Email => vec![found(pb::SearchField::Email, true, g.key.clone())],
        Kind::Phone => vec![found(pb::SearchField::Phone, true, g.key.clone())],
        Kind::Messaging => vec![
            found(pb::SearchField::Messaging, true, g.key.clone()),
            found(pb::SearchField::Phone, true, g.key.clone()),
        ],
        Kind::Name => vec![found(
            pb::SearchField::Attribute,
            true,
            format!(
                "{}={}",
                g.key,
                g.attribute_value.clone().unwrap_or_default()
            ),
        )],
    };
    let first_name = contacts
        .first()
        .map(|c| c.display_name.clone())
        .unwrap_or_default();
    let similar_names = g.kind == Kind::Name || names_alike >= NAME_SIMILARITY_THRESHOLD;
    if similar_names {
        let exact = g.least_similarity.unwrap_or(names_alike) >= 1.0 || names_alike >= 1.0;
        found_by.push(found(pb::SearchField::Name, exact, first_name));
    }
    let mut score = base_score(g.kind, g.least_similarity) - 0.05 * (g.count - 2).max(0) as f64;
    if g.kind != Kind::Name && similar_names {
        score += 0.05;
    }
    pb::DuplicateGroup {
        contacts,
        contact_count: i32::try_from(g.count).unwrap_or(i32::MAX),
        found_by,
        score: (score.clamp(0.05, 1.0) * 1000.0).round() / 1000.0,
    }
}

/// The user `id` as named in `users` (an unknown one: its id alone).
pub fn user_in(users: &HashMap<i64, UserRef>, id: i64) -> pb::UserRef {
    users.get(&id).map_or(
        pb::UserRef {
            id,
            name: String::new(),
        },
        user_ref,
    )
}

/// An interaction a contact was bound to, with the binding's who and when.
pub fn contact_interaction(b: &Binding, users: &HashMap<i64, UserRef>) -> pb::ContactInteraction {
    let i = &b.interaction;
    let user = |u: Option<crate::domain::ids::UserId>| u.map(|u| user_in(users, u.0));
    pb::ContactInteraction {
        interaction_id: i.external_id.clone(),
        kind: kind(i.kind()) as i32,
        direction: direction(i.direction) as i32,
        state: state(i.state) as i32,
        queue: i.queue.as_ref().map(queue),
        agent: user(Some(i.agent)),
        offered_at: Some(timestamp(i.offered_at)),
        closed_at: i.closed_at.map(timestamp),
        bound_by: user(b.bound_by),
        bound_at: Some(timestamp(b.bound_at)),
        unbound_at: b.unbound_at.map(timestamp),
        unbound_by: user(b.unbound_by),
    }
}

/// An audit entry, its actor named from `users`.
pub fn audit_entry(e: &AuditEntry, users: &HashMap<i64, UserRef>) -> pb::AuditEntry {
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(ToString::to_string).unwrap_or_default();
    pb::AuditEntry {
        id: e.id,
        occurred_at: Some(timestamp(e.occurred_at)),
        actor: Some(user_in(users, e.actor_id)),
        action: e.action.clone(),
        contact_id: e.contact_id,
        interaction_id: e.interaction_id.clone().unwrap_or_default(),
        before_json: json(&e.before),
        after_json: json(&e.after),
    }
}

/// A recorded read-only link, its users named from `users`.
pub fn read_only_link(l: &LinkRow, users: &HashMap<i64, UserRef>) -> pb::ReadOnlyLink {
    pb::ReadOnlyLink {
        id: l.id,
        contact_id: l.contact_id,
        created_by: Some(user_in(users, l.created_by)),
        created_at: Some(timestamp(l.created_at)),
        expires_at: Some(timestamp(l.expires_at)),
        revoked_at: l.revoked_at.map(timestamp),
        revoked_by: l.revoked_by.map(|u| user_in(users, u)),
    }
}

/// One interaction of a client's recent history.
pub fn recent(r: &RecentInteraction) -> pb::RecentInteraction {
    pb::RecentInteraction {
        interaction_id: r.interaction_id.clone(),
        kind: kind(r.kind) as i32,
        direction: direction(r.direction) as i32,
        state: state(r.state) as i32,
        queue: r.queue_id.as_ref().map(|id| pb::Queue {
            id: id.clone(),
            name: r.queue_name.clone().unwrap_or_default(),
        }),
        agent: Some(pb::UserRef {
            id: r.agent_id,
            name: r.agent_name.clone().unwrap_or_default(),
        }),
        offered_at: Some(timestamp(r.offered_at)),
        closed_at: r.closed_at.map(timestamp),
    }
}

/// A client's recent history.
pub fn history(h: &ClientHistory) -> pb::ClientHistory {
    pb::ClientHistory {
        contact_id: h.contact.0,
        last_closed: h.last_closed.as_ref().map(recent),
        interactions_last_30_days: i32::try_from(h.last_30_days).unwrap_or(i32::MAX),
        open_now: h.open_now.iter().map(recent).collect(),
    }
}
