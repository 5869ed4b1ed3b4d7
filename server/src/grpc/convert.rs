//! Conversions between the wire (generated protobuf types) and the domain, in one place.
//! Request conversions validate every field and report all violations at once.

use chrono::{DateTime, Utc};
use client_info_proto::pb;

use crate::db::communications::LinkRef;
use crate::db::contacts::ContactDraft;
use crate::domain::contact::{
    self as rules, Attribute, ChannelIdentity, Communication, CommunicationDraft, ContactCard,
    ContactPatch, NewContact, UserRef,
};
use crate::domain::email::{MAX_EMAIL_LEN, parse_email};
use crate::domain::identify::{Identification, MatchRule, Outcome};
use crate::domain::ids::UserId;
use crate::domain::interaction::{
    Destination, Direction, InteractionKind, InteractionState, MAX_MEMBER_DESCRIPTION_LEN,
    MAX_QUEUE_FIELD_LEN, MAX_VARIABLE_KEY_LEN, MAX_VARIABLE_VALUE_LEN, MAX_VARIABLES, Member,
    Offer, Queue, Variable,
};
use crate::domain::phone::{Region, parse_phone};
use crate::domain::text::{Text, TextRule};
use crate::error::{Error, Violations};

/// Most page size any listing accepts.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
/// Longest request id (idempotency key) or interaction id.
pub const MAX_ID_LEN: usize = 128;

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

/// A positive id, or a violation on `field`.
pub fn positive_id(v: &mut Violations, field: &str, id: i64) -> Option<i64> {
    if id > 0 {
        Some(id)
    } else {
        v.add(field, "must be a positive id");
        None
    }
}

/// An optional expected version: 0 means no check, negative is invalid.
pub fn optional_version(v: &mut Violations, field: &str, version: i64) -> Option<i64> {
    if version < 0 {
        v.add(field, "must not be negative");
    }
    (version > 0).then_some(version)
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
    text(v, field, id, TextRule::line(MAX_ID_LEN).required())
}

/// A text field checked by `rule` ([`crate::domain::text`]): every string of a request goes
/// through this or a rule built on [`Text::parse`].
pub fn text(v: &mut Violations, field: &str, s: &str, rule: TextRule) -> Option<String> {
    v.check(field, Text::parse(s, rule)).map(Text::into_string)
}

/// Validated labels (deduplicated).
pub fn labels(v: &mut Violations, field: &str, input: &[String]) -> Vec<String> {
    if input.len() > rules::MAX_LABELS {
        v.add(field, format!("at most {} labels", rules::MAX_LABELS));
    }
    let labels = input
        .iter()
        .enumerate()
        .filter_map(|(i, l)| v.check(format!("{field}[{i}]"), rules::label(l)))
        .collect();
    rules::dedup_keep_order(labels)
}

/// Validated attributes (keys unique).
pub fn attributes(v: &mut Violations, field: &str, input: &[pb::Attribute]) -> Vec<Attribute> {
    if input.len() > rules::MAX_ATTRIBUTES {
        v.add(
            field,
            format!("at most {} attributes", rules::MAX_ATTRIBUTES),
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(input.len());
    for (i, a) in input.iter().enumerate() {
        let key = v.check(format!("{field}[{i}].key"), rules::attribute_key(&a.key));
        let value = v.check(
            format!("{field}[{i}].value"),
            rules::attribute_value(&a.value),
        );
        if let (Some(key), Some(value)) = (key, value) {
            if seen.insert(key.clone()) {
                out.push(Attribute { key, value });
            } else {
                v.add(
                    format!("{field}[{i}].key"),
                    format!("duplicate key {key:?}"),
                );
            }
        }
    }
    out
}

/// A validated communication (the phone is parsed later, with the domain's region).
pub fn communication(
    v: &mut Violations,
    field: &str,
    input: Option<&pb::CommunicationInput>,
) -> Option<CommunicationDraft> {
    use pb::communication_input::Communication as C;
    match input.and_then(|c| c.communication.as_ref()) {
        None => {
            v.add(field, "set one of phone, email or messaging_channel");
            None
        }
        Some(C::Phone(p)) => text(
            v,
            &format!("{field}.phone.number"),
            &p.number,
            TextRule::line(crate::domain::phone::MAX_PHONE_INPUT_LEN).required(),
        )
        .map(CommunicationDraft::Phone),
        Some(C::Email(e)) => {
            let f = format!("{field}.email.address");
            let address = text(v, &f, &e.address, TextRule::line(MAX_EMAIL_LEN))?;
            v.check(f, parse_email(&address))
                .map(CommunicationDraft::Email)
        }
        Some(C::MessagingChannel(m)) => {
            let f = format!("{field}.messaging_channel");
            let protocol = v.check(format!("{f}.protocol"), rules::protocol(&m.protocol));
            let external = v.check(
                format!("{f}.external_user_id"),
                rules::external_user_id(&m.external_user_id),
            );
            let display = v.check(
                format!("{f}.display_name"),
                rules::channel_display_name(&m.display_name),
            );
            match (protocol, external, display) {
                (Some(protocol), Some(external_user_id), Some(display_name)) => {
                    Some(CommunicationDraft::Channel(ChannelIdentity {
                        protocol,
                        external_user_id,
                        display_name,
                    }))
                }
                _ => None,
            }
        }
    }
}

/// True when some draft is a phone number (read later, in the domain's region).
pub fn has_phones(drafts: &[(String, CommunicationDraft)]) -> bool {
    drafts
        .iter()
        .any(|(_, d)| matches!(d, CommunicationDraft::Phone(_)))
}

/// Records a violation for every phone draft that is not a number in `region`.
pub fn check_phones(v: &mut Violations, drafts: &[(String, CommunicationDraft)], region: Region) {
    for (field, draft) in drafts {
        if let CommunicationDraft::Phone(raw) = draft {
            let _ = v.check(format!("{field}.phone.number"), parse_phone(raw, region));
        }
    }
}

/// Parses the phone drafts in the domain's region; every bad number is reported with its field.
pub fn resolve_communications(
    drafts: Vec<(String, CommunicationDraft)>,
    region: Region,
) -> Result<Vec<Communication>, Error> {
    let mut v = Violations::new();
    let mut out = Vec::with_capacity(drafts.len());
    for (field, draft) in drafts {
        match draft {
            CommunicationDraft::Phone(raw) => {
                if let Some(parsed) =
                    v.check(format!("{field}.phone.number"), parse_phone(&raw, region))
                {
                    out.push(Communication::Phone { raw, parsed });
                }
            }
            CommunicationDraft::Email(e) => out.push(Communication::Email(e)),
            CommunicationDraft::Channel(c) => out.push(Communication::Channel(c)),
        }
    }
    v.into_result()?;
    Ok(out)
}

/// The validated fields of a contact to create, shared by CreateContact and ImportContacts.
pub struct ContactFields<'a> {
    /// Display name.
    pub display_name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Time zone.
    pub time_zone: &'a str,
    /// Owner id (0: the caller).
    pub owner_id: i64,
    /// Labels.
    pub labels: &'a [String],
    /// Attributes.
    pub attributes: &'a [pb::Attribute],
    /// Communications.
    pub communications: &'a [pb::CommunicationInput],
}

/// Validates the fields of a new contact; communications keep their field paths for later
/// phone parsing.
pub fn new_contact(
    v: &mut Violations,
    f: &ContactFields<'_>,
) -> (Option<NewContact>, Vec<(String, CommunicationDraft)>) {
    let display_name = v.check("display_name", rules::display_name(f.display_name));
    let description = v.check("description", rules::description(f.description));
    let time_zone = v.check("time_zone", rules::time_zone(f.time_zone));
    if f.owner_id < 0 {
        v.add("owner_id", "must be a user id, or 0 for the caller");
    }
    let labels = labels(v, "labels", f.labels);
    let attributes = attributes(v, "attributes", f.attributes);
    if f.communications.len() > rules::MAX_COMMUNICATIONS {
        v.add(
            "communications",
            format!("at most {} communications", rules::MAX_COMMUNICATIONS),
        );
    }
    let drafts: Vec<(String, CommunicationDraft)> = f
        .communications
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let field = format!("communications[{i}]");
            communication(v, &field, Some(c)).map(|d| (field, d))
        })
        .collect();
    let new = match (display_name, description, time_zone) {
        (Some(display_name), Some(description), Some(time_zone)) => Some(NewContact {
            display_name,
            description,
            time_zone,
            owner: (f.owner_id > 0).then_some(UserId(f.owner_id)),
            labels,
            attributes,
            communications: Vec::new(),
        }),
        _ => None,
    };
    (new, drafts)
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

/// The fields UpdateContact may change, as named in its update mask.
pub const UPDATABLE_FIELDS: [&str; 6] = [
    "display_name",
    "description",
    "time_zone",
    "owner_id",
    "labels",
    "attributes",
];

/// Validates an update: the mask names known fields, and each named field is valid.
pub fn patch(req: &pb::UpdateContactRequest, v: &mut Violations) -> ContactPatch {
    let mut patch = ContactPatch::default();
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        v.add(
            "update_mask",
            format!("name at least one field: {}", UPDATABLE_FIELDS.join(", ")),
        );
    }
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "display_name" => {
                patch.display_name =
                    v.check("display_name", rules::display_name(&req.display_name));
            }
            "description" => {
                patch.description = v.check("description", rules::description(&req.description));
            }
            "time_zone" => patch.time_zone = v.check("time_zone", rules::time_zone(&req.time_zone)),
            "owner_id" => {
                patch.owner = positive_id(v, "owner_id", req.owner_id).map(UserId);
            }
            "labels" => patch.labels = Some(labels(v, "labels", &req.labels)),
            "attributes" => patch.attributes = Some(attributes(v, "attributes", &req.attributes)),
            other => v.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "unknown field {other:?} (updatable: {})",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ),
        }
    }
    patch
}

/// Which link an UnlinkCommunication request names.
pub fn link_ref(
    v: &mut Violations,
    input: Option<&pb::unlink_communication_request::Communication>,
) -> Option<LinkRef> {
    use pb::unlink_communication_request::Communication as C;
    let (field, id, make): (&str, i64, fn(i64) -> LinkRef) = match input {
        None => {
            v.add(
                "communication",
                "set one of phone_id, email_id or messaging_channel_id",
            );
            return None;
        }
        Some(C::PhoneId(id)) => ("phone_id", *id, LinkRef::Phone),
        Some(C::EmailId(id)) => ("email_id", *id, LinkRef::Email),
        Some(C::MessagingChannelId(id)) => ("messaging_channel_id", *id, LinkRef::Channel),
    };
    positive_id(v, field, id).map(make)
}

/// Longest caller number accepted on the wire (longer is a protocol error, not a bad caller id).
pub const MAX_CALLER_NUMBER_LEN: usize = 256;

/// What networks deliver instead of a withheld number.
const HIDDEN_NUMBER_WORDS: [&str; 7] = [
    "anonymous",
    "private",
    "restricted",
    "unknown",
    "unavailable",
    "withheld",
    "hidden",
];

/// A wire timestamp as a date, or a violation.
pub fn datetime(
    v: &mut Violations,
    field: &str,
    t: &prost_types::Timestamp,
) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok();
    match nanos.and_then(|n| DateTime::from_timestamp(t.seconds, n)) {
        Some(d) => Some(d),
        None => {
            v.add(field, "is not a valid timestamp");
            None
        }
    }
}

/// Validates an offer.
pub fn offer(req: &pb::OfferInteractionRequest, v: &mut Violations) -> Option<Offer> {
    use pb::client_destination::Destination as D;
    let external_id = client_id(v, "interaction_id", &req.interaction_id);
    let kind = match pb::InteractionKind::try_from(req.kind) {
        Ok(pb::InteractionKind::Call) => Some(InteractionKind::Call),
        Ok(pb::InteractionKind::Chat) => Some(InteractionKind::Chat),
        _ => {
            v.add(
                "kind",
                "must be INTERACTION_KIND_CALL or INTERACTION_KIND_CHAT",
            );
            None
        }
    };
    let direction = match pb::InteractionDirection::try_from(req.direction) {
        Ok(pb::InteractionDirection::Inbound) => Some(Direction::Inbound),
        Ok(pb::InteractionDirection::Outbound) => Some(Direction::Outbound),
        _ => {
            v.add(
                "direction",
                "must be INTERACTION_DIRECTION_INBOUND or INTERACTION_DIRECTION_OUTBOUND",
            );
            None
        }
    };
    let destination = match (
        kind,
        req.destination
            .as_ref()
            .and_then(|d| d.destination.as_ref()),
    ) {
        (_, None) => {
            v.add("destination", "set call (calls) or chat (chats)");
            None
        }
        (kind, Some(D::Call(c))) => {
            let raw = text(
                v,
                "destination.call.number",
                &c.number,
                TextRule::line(MAX_CALLER_NUMBER_LEN),
            );
            if kind == Some(InteractionKind::Chat) {
                v.add(
                    "destination",
                    "calls take destination.call, chats destination.chat",
                );
            }
            let raw = raw?;
            let hidden = c.hidden
                || raw.is_empty()
                || HIDDEN_NUMBER_WORDS
                    .iter()
                    .any(|w| raw.eq_ignore_ascii_case(w));
            Some(Destination::Call {
                number: (!hidden).then_some(raw),
            })
        }
        (kind, Some(D::Chat(c))) => {
            if kind == Some(InteractionKind::Call) {
                v.add(
                    "destination",
                    "calls take destination.call, chats destination.chat",
                );
            }
            let protocol = v.check("destination.chat.protocol", rules::protocol(&c.protocol));
            let external = v.check(
                "destination.chat.external_user_id",
                rules::external_user_id(&c.external_user_id),
            );
            let display = v.check(
                "destination.chat.display_name",
                rules::channel_display_name(&c.display_name),
            );
            match (protocol, external, display) {
                (Some(protocol), Some(external_user_id), Some(display_name)) => {
                    Some(Destination::Chat(ChannelIdentity {
                        protocol,
                        external_user_id,
                        display_name,
                    }))
                }
                _ => None,
            }
        }
    };
    let agent = positive_id(v, "agent_user_id", req.agent_user_id).map(UserId);
    let queue = req.queue.as_ref().and_then(|q| {
        let id = text(
            v,
            "queue.id",
            &q.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        );
        let name = text(
            v,
            "queue.name",
            &q.name,
            TextRule::line(MAX_QUEUE_FIELD_LEN),
        );
        Some(Queue {
            id: id?,
            name: name?,
        })
    });
    let member = req.member.as_ref().and_then(|m| {
        let id = text(
            v,
            "member.id",
            &m.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        );
        let description = text(
            v,
            "member.description",
            &m.description,
            TextRule::paragraph(MAX_MEMBER_DESCRIPTION_LEN),
        );
        Some(Member {
            id: id?,
            description: description?,
        })
    });
    if req.variables.len() > MAX_VARIABLES {
        v.add("variables", format!("at most {MAX_VARIABLES} variables"));
    }
    let mut variables = Vec::with_capacity(req.variables.len());
    for (i, var) in req.variables.iter().enumerate() {
        let key = text(
            v,
            &format!("variables[{i}].key"),
            &var.key,
            TextRule::line(MAX_VARIABLE_KEY_LEN).required(),
        );
        let value = text(
            v,
            &format!("variables[{i}].value"),
            &var.value,
            TextRule::paragraph(MAX_VARIABLE_VALUE_LEN),
        );
        if let (Some(key), Some(value)) = (key, value) {
            variables.push(Variable { key, value });
        }
    }
    let occurred_at = match &req.occurred_at {
        Some(t) => datetime(v, "occurred_at", t),
        None => Some(Utc::now()),
    };
    Some(Offer {
        external_id: external_id?,
        direction: direction?,
        destination: destination?,
        agent: agent?,
        queue,
        member,
        variables,
        occurred_at: occurred_at?,
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
