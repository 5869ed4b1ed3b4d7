//! Requests read into typed commands, one file per service. Each reader checks every field of
//! its part, reports every violation at once ([`Checked`], combined with [`AllValid`]), and
//! yields a value only when all of them hold, so a command in hand is valid: there is nothing
//! left to unwrap. Every string goes through [`Text::parse`] with its rule. This file holds the
//! readers that several services share (ids, versions, labels, attributes, communications,
//! a new contact's fields, paging).
//!
//! Imports the command types of [`crate::app`], the rules of `domain` and `error`'s
//! collectors; nothing here reads the database.

pub mod binding;
pub mod client_info;
pub mod contacts;
pub mod interactions;
pub mod merge;
pub mod search;

use chrono::{DateTime, Utc};
use client_info_proto::pb;

use crate::app::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::domain::contact::{
    self as rules, Attribute, ChannelIdentity, CommunicationDraft, NewContact,
};
use crate::domain::email::{MAX_EMAIL_LEN, parse_email};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::text::{Text, TextRule};
use crate::error::{AllValid, Checked, Violations};

/// Longest request id (idempotency key) or interaction id.
pub const MAX_ID_LEN: usize = 128;

/// Longest page token accepted (the server's own tokens are far shorter).
pub const MAX_PAGE_TOKEN_LEN: usize = 4096;

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

/// An owner filter (`owner_id`): 0 for any owner.
pub fn owner(id: i64) -> Checked<Option<UserId>> {
    match id {
        0 => Ok(None),
        id if id > 0 => Ok(Some(UserId(id))),
        _ => Err(Violations::one(
            "owner_id",
            "must be a user id, or 0 for any owner",
        )),
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
pub fn identity(
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

/// The phones among `input` that are well-formed text, each with the field of its number (a
/// request refused for other faults reports those that are not numbers in the domain's region
/// too, [`crate::app::binding::phone_faults`]).
pub fn phone_fields(input: &[pb::CommunicationInput]) -> Vec<(String, String)> {
    input
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let field = format!("communications[{i}]");
            match communication(&field, Some(c)) {
                Ok(CommunicationDraft::Phone(raw)) => Some((format!("{field}.phone.number"), raw)),
                _ => None,
            }
        })
        .collect()
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

/// A wire timestamp as a date.
pub fn datetime(field: &str, t: &prost_types::Timestamp) -> Checked<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
        .ok_or_else(|| Violations::one(field, "is not a valid timestamp"))
}

/// A page size: 0 means the default, otherwise 1 to [`MAX_PAGE_SIZE`].
pub fn page_size(field: &str, size: i32) -> Checked<usize> {
    match usize::try_from(size) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
        _ => Err(Violations::one(
            field,
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// A numeric keyset page token ("" for the first page): the id the previous page ended at.
pub fn id_page_token(token: &str) -> Checked<Option<i64>> {
    if token.is_empty() {
        return Ok(None);
    }
    match token.parse::<i64>() {
        Ok(id) if id > 0 => Ok(Some(id)),
        _ => Err(Violations::one(
            "page_token",
            "is not a page token returned by this RPC",
        )),
    }
}

/// An optional client id: "" is none.
pub fn optional_client_id(field: &str, id: &str) -> Checked<Option<String>> {
    if id.is_empty() {
        Ok(None)
    } else {
        client_id(field, id).map(Some)
    }
}
