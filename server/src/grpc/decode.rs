//! Requests read into typed commands. Each reader checks every field of its part, reports every
//! violation at once ([`Checked`], combined with [`AllValid`]), and yields a value only when
//! all of them hold, so a command in hand is valid: there is nothing left to unwrap. Every
//! string goes through [`Text::parse`] with its rule.

use chrono::{DateTime, Utc};
use client_info_proto::pb;
use prost::Message as _;

use crate::app::binding::{CreateContact, CreateFrom, Select, Unbind};
use crate::app::contacts::{Delete, Link, Unlink, Update};
use crate::app::interactions::{Accept, Close};
use crate::app::merge::{Merge, Unmerge};
use crate::db::communications::LinkRef;
use crate::db::duplicates::Filters;
use crate::db::merge::Member as MergeMember;
use crate::domain::contact::{
    self as rules, Attribute, ChannelIdentity, CommunicationDraft, ContactPatch, NewContact,
};
use crate::domain::email::{MAX_EMAIL_LEN, parse_email};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::{
    Destination, Direction, InteractionKind, MAX_MEMBER_DESCRIPTION_LEN, MAX_QUEUE_FIELD_LEN,
    MAX_VARIABLE_KEY_LEN, MAX_VARIABLE_VALUE_LEN, MAX_VARIABLES, Member, Offer, Queue, Variable,
};
use crate::domain::merge::{FieldSources, MAX_MERGE_CONTACTS};
use crate::domain::phone::Region;
use crate::domain::text::{Text, TextRule};
use crate::error::{AllValid, Checked, Violations};

/// Longest request id (idempotency key) or interaction id.
pub const MAX_ID_LEN: usize = 128;

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

/// A rule's verdict on `field`.
pub fn rule<T, E: std::fmt::Display>(field: &str, verdict: Result<T, E>) -> Checked<T> {
    verdict.map_err(|e| Violations::one(field, e.to_string()))
}

/// A text field checked by `rule`.
pub fn text(field: &str, s: &str, rule: TextRule) -> Checked<String> {
    Text::parse(s, rule)
        .map(Text::into_string)
        .map_err(|e| Violations::one(field, e.to_string()))
}

/// An opaque identifier from a client (request id, interaction id): 1 to 128 characters, no
/// control characters.
pub fn client_id(field: &str, id: &str) -> Checked<String> {
    text(field, id, TextRule::line(MAX_ID_LEN).required())
}

/// A positive id.
pub fn positive_id(field: &str, id: i64) -> Checked<i64> {
    if id > 0 {
        Ok(id)
    } else {
        Err(Violations::one(field, "must be a positive id"))
    }
}

/// A contact id.
pub fn contact_id(field: &str, id: i64) -> Checked<ContactId> {
    positive_id(field, id).map(ContactId)
}

/// An optional expected version: 0 means no check, negative is invalid.
pub fn optional_version(field: &str, version: i64) -> Checked<Option<i64>> {
    match version {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err(Violations::one(field, "must not be negative")),
    }
}

/// A required expected version (at least 1).
pub fn expected_version(field: &str, version: i64) -> Checked<i64> {
    if version > 0 {
        Ok(version)
    } else {
        Err(Violations::one(
            field,
            "must be the version the caller last saw (at least 1)",
        ))
    }
}

/// Labels (deduplicated, order kept).
pub fn labels(field: &str, input: &[String]) -> Checked<Vec<String>> {
    let mut v = Violations::new();
    if input.len() > rules::MAX_LABELS {
        v.add(field, format!("at most {} labels", rules::MAX_LABELS));
    }
    let labels = input
        .iter()
        .enumerate()
        .filter_map(|(i, l)| v.check(format!("{field}[{i}]"), rules::label(l)))
        .collect();
    v.or(rules::dedup_keep_order(labels))
}

/// Attributes (keys unique).
pub fn attributes(field: &str, input: &[pb::Attribute]) -> Checked<Vec<Attribute>> {
    let mut v = Violations::new();
    if input.len() > rules::MAX_ATTRIBUTES {
        v.add(
            field,
            format!("at most {} attributes", rules::MAX_ATTRIBUTES),
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(input.len());
    for (i, a) in input.iter().enumerate() {
        let parts = (
            rule(&format!("{field}[{i}].key"), rules::attribute_key(&a.key)),
            rule(
                &format!("{field}[{i}].value"),
                rules::attribute_value(&a.value),
            ),
        )
            .all_valid();
        if let Some((key, value)) = v.keep(parts) {
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
    v.or(out)
}

/// A messaging identity under `field`.
fn identity(
    field: &str,
    protocol: &str,
    external: &str,
    display: &str,
) -> Checked<ChannelIdentity> {
    let (protocol, external_user_id, display_name) = (
        rule(&format!("{field}.protocol"), rules::protocol(protocol)),
        rule(
            &format!("{field}.external_user_id"),
            rules::external_user_id(external),
        ),
        rule(
            &format!("{field}.display_name"),
            rules::channel_display_name(display),
        ),
    )
        .all_valid()?;
    Ok(ChannelIdentity {
        protocol,
        external_user_id,
        display_name,
    })
}

/// A communication (the phone is parsed later, with the domain's region).
pub fn communication(
    field: &str,
    input: Option<&pb::CommunicationInput>,
) -> Checked<CommunicationDraft> {
    use pb::communication_input::Communication as C;
    match input.and_then(|c| c.communication.as_ref()) {
        None => Err(Violations::one(
            field,
            "set one of phone, email or messaging_channel",
        )),
        Some(C::Phone(p)) => text(
            &format!("{field}.phone.number"),
            &p.number,
            TextRule::line(crate::domain::phone::MAX_PHONE_INPUT_LEN).required(),
        )
        .map(CommunicationDraft::Phone),
        Some(C::Email(e)) => {
            let f = format!("{field}.email.address");
            let address = text(&f, &e.address, TextRule::line(MAX_EMAIL_LEN))?;
            rule(&f, parse_email(&address)).map(CommunicationDraft::Email)
        }
        Some(C::MessagingChannel(m)) => identity(
            &format!("{field}.messaging_channel"),
            &m.protocol,
            &m.external_user_id,
            &m.display_name,
        )
        .map(CommunicationDraft::Channel),
    }
}

/// The communications of a new contact, each with its field path (for reporting a phone that
/// does not parse in the domain's region).
pub fn communications(
    input: &[pb::CommunicationInput],
) -> Checked<Vec<(String, CommunicationDraft)>> {
    let mut v = Violations::new();
    if input.len() > rules::MAX_COMMUNICATIONS {
        v.add(
            "communications",
            format!("at most {} communications", rules::MAX_COMMUNICATIONS),
        );
    }
    let drafts = input
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let field = format!("communications[{i}]");
            v.keep(communication(&field, Some(c))).map(|d| (field, d))
        })
        .collect();
    v.or(drafts)
}

/// Violations for every phone among `input` that is well-formed text but not a number in
/// `region` (reported with the other faults of a request rather than after they are fixed).
pub fn phone_violations(input: &[pb::CommunicationInput], region: Region) -> Violations {
    let mut v = Violations::new();
    for (i, c) in input.iter().enumerate() {
        let field = format!("communications[{i}]");
        if let Ok(CommunicationDraft::Phone(raw)) = communication(&field, Some(c)) {
            let _ = v.check(
                format!("{field}.phone.number"),
                crate::domain::phone::parse_phone(&raw, region),
            );
        }
    }
    v
}

/// True when some communication of the request is a phone number.
pub fn has_phones(input: &[pb::CommunicationInput]) -> bool {
    input.iter().any(|c| {
        matches!(
            c.communication,
            Some(pb::communication_input::Communication::Phone(_))
        )
    })
}

/// The fields of a contact to create, shared by CreateContact and ImportContacts.
#[derive(Debug, Clone, Copy)]
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

/// A new contact: its fields, and its communications with their field paths.
pub fn new_contact(
    f: &ContactFields<'_>,
) -> Checked<(NewContact, Vec<(String, CommunicationDraft)>)> {
    let owner = match f.owner_id {
        0 => Ok(None),
        id if id > 0 => Ok(Some(UserId(id))),
        _ => Err(Violations::one(
            "owner_id",
            "must be a user id, or 0 for the caller",
        )),
    };
    let (display_name, description, time_zone, owner, labels, attributes, communications) = (
        rule("display_name", rules::display_name(f.display_name)),
        rule("description", rules::description(f.description)),
        rule("time_zone", rules::time_zone(f.time_zone)),
        owner,
        labels("labels", f.labels),
        attributes("attributes", f.attributes),
        communications(f.communications),
    )
        .all_valid()?;
    Ok((
        NewContact {
            display_name,
            description,
            time_zone,
            owner,
            labels,
            attributes,
            communications: Vec::new(),
        },
        communications,
    ))
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

/// An update's patch: the mask names known fields, and each named field is valid.
pub fn patch(req: &pb::UpdateContactRequest) -> Checked<ContactPatch> {
    let mut v = Violations::new();
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
                    v.keep(rule("display_name", rules::display_name(&req.display_name)));
            }
            "description" => {
                patch.description =
                    v.keep(rule("description", rules::description(&req.description)));
            }
            "time_zone" => {
                patch.time_zone = v.keep(rule("time_zone", rules::time_zone(&req.time_zone)));
            }
            "owner_id" => {
                patch.owner = v.keep(positive_id("owner_id", req.owner_id)).map(UserId);
            }
            "labels" => patch.labels = v.keep(labels("labels", &req.labels)),
            "attributes" => patch.attributes = v.keep(attributes("attributes", &req.attributes)),
            other => v.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "unknown field {other:?} (updatable: {})",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ),
        }
    }
    v.or(patch)
}

/// Which link an UnlinkCommunication request names.
pub fn link_ref(
    input: Option<&pb::unlink_communication_request::Communication>,
) -> Checked<LinkRef> {
    use pb::unlink_communication_request::Communication as C;
    let (field, id, make): (&str, i64, fn(i64) -> LinkRef) = match input {
        None => {
            return Err(Violations::one(
                "communication",
                "set one of phone_id, email_id or messaging_channel_id",
            ));
        }
        Some(C::PhoneId(id)) => ("phone_id", *id, LinkRef::Phone),
        Some(C::EmailId(id)) => ("email_id", *id, LinkRef::Email),
        Some(C::MessagingChannelId(id)) => ("messaging_channel_id", *id, LinkRef::Channel),
    };
    positive_id(field, id).map(make)
}

/// A wire timestamp as a date.
pub fn datetime(field: &str, t: &prost_types::Timestamp) -> Checked<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
        .ok_or_else(|| Violations::one(field, "is not a valid timestamp"))
}

fn kind(req: &pb::OfferInteractionRequest) -> Checked<InteractionKind> {
    match pb::InteractionKind::try_from(req.kind) {
        Ok(pb::InteractionKind::Call) => Ok(InteractionKind::Call),
        Ok(pb::InteractionKind::Chat) => Ok(InteractionKind::Chat),
        _ => Err(Violations::one(
            "kind",
            "must be INTERACTION_KIND_CALL or INTERACTION_KIND_CHAT",
        )),
    }
}

fn direction(req: &pb::OfferInteractionRequest) -> Checked<Direction> {
    match pb::InteractionDirection::try_from(req.direction) {
        Ok(pb::InteractionDirection::Inbound) => Ok(Direction::Inbound),
        Ok(pb::InteractionDirection::Outbound) => Ok(Direction::Outbound),
        _ => Err(Violations::one(
            "direction",
            "must be INTERACTION_DIRECTION_INBOUND or INTERACTION_DIRECTION_OUTBOUND",
        )),
    }
}

/// The client of an offer; `kind` (when valid) must agree with it.
fn destination(
    req: &pb::OfferInteractionRequest,
    kind: Option<InteractionKind>,
) -> Checked<Destination> {
    use pb::client_destination::Destination as D;
    const MISMATCH: &str = "calls take destination.call, chats destination.chat";
    match req
        .destination
        .as_ref()
        .and_then(|d| d.destination.as_ref())
    {
        None => Err(Violations::one(
            "destination",
            "set call (calls) or chat (chats)",
        )),
        Some(D::Call(c)) => {
            let agrees = if kind == Some(InteractionKind::Chat) {
                Err(Violations::one("destination", MISMATCH))
            } else {
                Ok(())
            };
            let (raw, ()) = (
                text(
                    "destination.call.number",
                    &c.number,
                    TextRule::line(MAX_CALLER_NUMBER_LEN),
                ),
                agrees,
            )
                .all_valid()?;
            let hidden = c.hidden
                || raw.is_empty()
                || HIDDEN_NUMBER_WORDS
                    .iter()
                    .any(|w| raw.eq_ignore_ascii_case(w));
            Ok(Destination::Call {
                number: (!hidden).then_some(raw),
            })
        }
        Some(D::Chat(c)) => {
            let agrees = if kind == Some(InteractionKind::Call) {
                Err(Violations::one("destination", MISMATCH))
            } else {
                Ok(())
            };
            let ((), identity) = (
                agrees,
                identity(
                    "destination.chat",
                    &c.protocol,
                    &c.external_user_id,
                    &c.display_name,
                ),
            )
                .all_valid()?;
            Ok(Destination::Chat(identity))
        }
    }
}

fn queue(q: Option<&pb::Queue>) -> Checked<Option<Queue>> {
    let Some(q) = q else { return Ok(None) };
    let (id, name) = (
        text(
            "queue.id",
            &q.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        ),
        text("queue.name", &q.name, TextRule::line(MAX_QUEUE_FIELD_LEN)),
    )
        .all_valid()?;
    Ok(Some(Queue { id, name }))
}

fn member(m: Option<&pb::QueueMember>) -> Checked<Option<Member>> {
    let Some(m) = m else { return Ok(None) };
    let (id, description) = (
        text(
            "member.id",
            &m.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        ),
        text(
            "member.description",
            &m.description,
            TextRule::paragraph(MAX_MEMBER_DESCRIPTION_LEN),
        ),
    )
        .all_valid()?;
    Ok(Some(Member { id, description }))
}

fn variables(input: &[pb::Variable]) -> Checked<Vec<Variable>> {
    let mut v = Violations::new();
    if input.len() > MAX_VARIABLES {
        v.add("variables", format!("at most {MAX_VARIABLES} variables"));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, var) in input.iter().enumerate() {
        let parts = (
            text(
                &format!("variables[{i}].key"),
                &var.key,
                TextRule::line(MAX_VARIABLE_KEY_LEN).required(),
            ),
            text(
                &format!("variables[{i}].value"),
                &var.value,
                TextRule::paragraph(MAX_VARIABLE_VALUE_LEN),
            ),
        )
            .all_valid();
        if let Some((key, value)) = v.keep(parts) {
            out.push(Variable { key, value });
        }
    }
    v.or(out)
}

/// OfferInteraction.
pub fn offer(req: &pb::OfferInteractionRequest) -> Checked<Offer> {
    let kind = kind(req);
    let destination = destination(req, kind.as_ref().ok().copied());
    let occurred_at = match &req.occurred_at {
        Some(t) => datetime("occurred_at", t),
        None => Ok(Utc::now()),
    };
    let (external_id, _, direction, destination, agent, queue, member, variables, occurred_at) = (
        client_id("interaction_id", &req.interaction_id),
        kind,
        direction(req),
        destination,
        positive_id("agent_user_id", req.agent_user_id),
        queue(req.queue.as_ref()),
        member(req.member.as_ref()),
        variables(&req.variables),
        occurred_at,
    )
        .all_valid()?;
    Ok(Offer {
        external_id,
        direction,
        destination,
        agent: UserId(agent),
        queue,
        member,
        variables,
        occurred_at,
    })
}

/// AcceptInteraction.
pub fn accept(req: &pb::AcceptInteractionRequest) -> Checked<Accept> {
    let (interaction, agent) = (
        client_id("interaction_id", &req.interaction_id),
        positive_id("agent_user_id", req.agent_user_id),
    )
        .all_valid()?;
    Ok(Accept {
        interaction,
        agent: UserId(agent),
    })
}

/// CloseInteraction.
pub fn close(req: &pb::CloseInteractionRequest) -> Checked<Close> {
    Ok(Close {
        interaction: client_id("interaction_id", &req.interaction_id)?,
    })
}

/// The request body without its request id, hex-encoded: equal bodies give equal strings
/// (prost encodes fields in order).
fn fingerprint(req: &pb::CreateContactRequest) -> String {
    use std::fmt::Write as _;
    let mut body = req.clone();
    body.request_id.clear();
    body.encode_to_vec().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// CreateContact: from the CRM, or from a live interaction (then a request id is required, so
/// that a retry cannot duplicate the contact).
pub fn create_contact(req: &pb::CreateContactRequest) -> Checked<CreateContact> {
    let from = if req.interaction_id.is_empty() {
        let request_id = if req.request_id.is_empty() {
            Ok(None)
        } else {
            client_id("request_id", &req.request_id).map(Some)
        };
        let link = if req.link_caller_number {
            Err(Violations::one(
                "link_caller_number",
                "needs an interaction_id",
            ))
        } else {
            Ok(())
        };
        (request_id, link)
            .all_valid()
            .map(|(request_id, ())| CreateFrom::Crm { request_id })
    } else {
        let request_id = if req.request_id.is_empty() {
            Err(Violations::one(
                "request_id",
                "is required when creating from an interaction (retries must not duplicate)",
            ))
        } else {
            client_id("request_id", &req.request_id)
        };
        (client_id("interaction_id", &req.interaction_id), request_id)
            .all_valid()
            .map(|(interaction, request_id)| CreateFrom::Interaction {
                interaction,
                request_id,
                link_caller_number: req.link_caller_number,
            })
    };
    let (from, (contact, communications)) = (
        from,
        new_contact(&ContactFields {
            display_name: &req.display_name,
            description: &req.description,
            time_zone: &req.time_zone,
            owner_id: req.owner_id,
            labels: &req.labels,
            attributes: &req.attributes,
            communications: &req.communications,
        }),
    )
        .all_valid()?;
    Ok(CreateContact {
        contact,
        communications,
        from,
        fingerprint: fingerprint(req),
    })
}

/// SelectContact.
pub fn select(req: &pb::SelectContactRequest) -> Checked<Select> {
    let (interaction, contact) = (
        client_id("interaction_id", &req.interaction_id),
        contact_id("contact_id", req.contact_id),
    )
        .all_valid()?;
    Ok(Select {
        interaction,
        contact,
        relink_channel: req.relink_channel,
    })
}

/// UnbindContact.
pub fn unbind(req: &pb::UnbindContactRequest) -> Checked<Unbind> {
    Ok(Unbind {
        interaction: client_id("interaction_id", &req.interaction_id)?,
    })
}

/// UpdateContact.
pub fn update(req: &pb::UpdateContactRequest) -> Checked<Update> {
    let (contact, expected_version, patch) = (
        contact_id("contact_id", req.contact_id),
        expected_version("expected_version", req.expected_version),
        patch(req),
    )
        .all_valid()?;
    Ok(Update {
        contact,
        expected_version,
        patch,
    })
}

/// DeleteContact.
pub fn delete(req: &pb::DeleteContactRequest) -> Checked<Delete> {
    let (contact, expected_version) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
    )
        .all_valid()?;
    Ok(Delete {
        contact,
        expected_version,
    })
}

/// LinkCommunication.
pub fn link(req: &pb::LinkCommunicationRequest) -> Checked<Link> {
    let (contact, expected_version, communication) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
        communication("communication", req.communication.as_ref()),
    )
        .all_valid()?;
    Ok(Link {
        contact,
        expected_version,
        communication,
        relink: req.relink,
    })
}

/// UnlinkCommunication.
pub fn unlink(req: &pb::UnlinkCommunicationRequest) -> Checked<Unlink> {
    let (contact, expected_version, link) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
        link_ref(req.communication.as_ref()),
    )
        .all_valid()?;
    Ok(Unlink {
        contact,
        expected_version,
        link,
    })
}

/// A contact of a merge under `field` (`survivor`, `merged[1]`).
fn merge_member(field: &str, input: &pb::ContactVersion) -> Checked<MergeMember> {
    let (contact, expected_version) = (
        contact_id(&format!("{field}.contact_id"), input.contact_id),
        expected_version(&format!("{field}.expected_version"), input.expected_version),
    )
        .all_valid()?;
    Ok(MergeMember {
        contact,
        expected_version,
        field: format!("{field}.contact_id"),
    })
}

/// The contacts of a merge: a survivor and 1 to 9 others, none twice.
fn members(req: &pb::MergeContactsRequest) -> Checked<(MergeMember, Vec<MergeMember>)> {
    let survivor = match &req.survivor {
        Some(s) => merge_member("survivor", s),
        None => Err(Violations::one(
            "survivor",
            "name the contact that survives, with its expected_version",
        )),
    };
    let mut v = Violations::new();
    if req.merged.is_empty() {
        v.add(
            "merged",
            "name at least one contact to merge into the survivor",
        );
    }
    if req.merged.len() >= MAX_MERGE_CONTACTS {
        v.add(
            "merged",
            format!(
                "at most {} contacts besides the survivor ({MAX_MERGE_CONTACTS} in all)",
                MAX_MERGE_CONTACTS - 1
            ),
        );
    }
    let mut merged: Vec<MergeMember> = Vec::with_capacity(req.merged.len());
    for (i, m) in req.merged.iter().enumerate() {
        let field = format!("merged[{i}]");
        let Some(m) = v.keep(merge_member(&field, m)) else {
            continue;
        };
        if req
            .survivor
            .as_ref()
            .is_some_and(|s| s.contact_id == m.contact.0)
        {
            v.add(
                &m.field,
                format!(
                    "contact {} is the survivor: a contact cannot be merged with itself",
                    m.contact
                ),
            );
        } else if merged.iter().any(|o| o.contact == m.contact) {
            v.add(&m.field, format!("contact {} is named twice", m.contact));
        } else {
            merged.push(m);
        }
    }
    let (survivor, merged) = (survivor, v.or(merged)).all_valid()?;
    Ok((survivor, merged))
}

/// A field source: 0 for the survivor's own value, else a contact of the merge.
fn source(field: &str, id: i64, ids: &[i64]) -> Checked<Option<ContactId>> {
    match id {
        0 => Ok(None),
        id if ids.contains(&id) => Ok(Some(ContactId(id))),
        id if id < 0 => Err(Violations::one(
            field,
            "must be a contact of the merge, or 0",
        )),
        id => Err(Violations::one(
            field,
            format!("contact {id} is not in the merge (name the survivor or a merged contact)"),
        )),
    }
}

/// Whose value the survivor keeps.
fn sources(req: &pb::MergeContactsRequest) -> Checked<FieldSources> {
    let ids: Vec<i64> = req
        .survivor
        .iter()
        .chain(&req.merged)
        .map(|m| m.contact_id)
        .collect();
    let f = req.field_sources.clone().unwrap_or_default();
    let mut v = Violations::new();
    let mut attributes: Vec<(String, ContactId)> = Vec::new();
    if f.attributes.len() > rules::MAX_ATTRIBUTES {
        v.add(
            "field_sources.attributes",
            format!("at most {} attributes", rules::MAX_ATTRIBUTES),
        );
    }
    for (i, a) in f.attributes.iter().enumerate() {
        let field = format!("field_sources.attributes[{i}]");
        let parts = (
            rule(&format!("{field}.key"), rules::attribute_key(&a.key)),
            source(&format!("{field}.contact_id"), a.contact_id, &ids).and_then(|c| {
                c.ok_or_else(|| {
                    Violations::one(format!("{field}.contact_id"), "name a contact of the merge")
                })
            }),
        )
            .all_valid();
        if let Some((key, contact)) = v.keep(parts) {
            if attributes.iter().any(|(k, _)| *k == key) {
                v.add(format!("{field}.key"), format!("duplicate key {key:?}"));
            } else {
                attributes.push((key, contact));
            }
        }
    }
    let (display_name, description, time_zone, owner, attributes) = (
        source("field_sources.display_name_from", f.display_name_from, &ids),
        source("field_sources.description_from", f.description_from, &ids),
        source("field_sources.time_zone_from", f.time_zone_from, &ids),
        source("field_sources.owner_from", f.owner_from, &ids),
        v.or(attributes),
    )
        .all_valid()?;
    Ok(FieldSources {
        display_name,
        description,
        time_zone,
        owner,
        attributes,
    })
}

/// MergeContacts.
pub fn merge(req: &pb::MergeContactsRequest) -> Checked<Merge> {
    let ((survivor, merged), sources) = (members(req), sources(req)).all_valid()?;
    Ok(Merge {
        survivor,
        merged,
        sources,
    })
}

/// UnmergeContacts.
pub fn unmerge(req: &pb::UnmergeContactsRequest) -> Checked<Unmerge> {
    Ok(Unmerge {
        merge_id: positive_id("merge_id", req.merge_id)?,
        force: req.force,
    })
}

/// FindDuplicates: the filters, the page size and the page token (verified by the handler,
/// which holds the keys).
pub fn find_duplicates(req: &pb::FindDuplicatesRequest) -> Checked<(Filters, usize, String)> {
    let owner = match req.owner_id {
        0 => Ok(None),
        id if id > 0 => Ok(Some(UserId(id))),
        _ => Err(Violations::one(
            "owner_id",
            "must be a user id, or 0 for any owner",
        )),
    };
    let size = match req.page_size {
        0 => Ok(20),
        n @ 1..=100 => Ok(n as usize),
        _ => Err(Violations::one("page_size", "must be between 1 and 100")),
    };
    let token = text("page_token", &req.page_token, TextRule::line(4096));
    let (labels, owner, size, token) =
        (labels("labels", &req.labels), owner, size, token).all_valid()?;
    Ok((Filters { labels, owner }, size, token))
}
