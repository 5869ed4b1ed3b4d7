//! Contacts: the validated commands that create or change them, and the card they read as.

use crate::domain::text::{Text, TextRule};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::email::EmailAddress;
use super::ids::{ContactId, UserId};
use super::phone::{ParsedPhone, Region, parse_phone};
use crate::error::{Checked, Violations};

/// Longest display name.
pub const MAX_DISPLAY_NAME_LEN: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 4000;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 64;
/// Most labels on one contact.
pub const MAX_LABELS: usize = 50;
/// Most attributes on one contact.
pub const MAX_ATTRIBUTES: usize = 100;
/// Longest attribute key.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
/// Longest attribute value.
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;
/// Most communications in one request.
pub const MAX_COMMUNICATIONS: usize = 50;
/// Longest messaging protocol name.
pub const MAX_PROTOCOL_LEN: usize = 32;
/// Longest external user id of a messaging identity.
pub const MAX_EXTERNAL_USER_ID_LEN: usize = 256;
/// Longest messaging display name.
pub const MAX_CHANNEL_DISPLAY_NAME_LEN: usize = 200;

/// `input` checked by `rule` (see [`crate::domain::text`]), or why not.
pub fn checked(input: &str, rule: TextRule) -> Result<String, String> {
    Text::parse(input, rule)
        .map(Text::into_string)
        .map_err(|e| e.to_string())
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn display_name(input: &str) -> Result<String, String> {
    checked(input, TextRule::line(MAX_DISPLAY_NAME_LEN).required())
}

/// A description: at most 4,000 characters (line breaks allowed).
pub fn description(input: &str) -> Result<String, String> {
    checked(input, TextRule::paragraph(MAX_DESCRIPTION_LEN))
}

/// An IANA time zone name (for example `Europe/London`); empty means none.
pub fn time_zone(input: &str) -> Result<String, String> {
    let s = checked(input, TextRule::line(64))?;
    if s.is_empty() {
        return Ok(s);
    }
    s.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| format!("{s:?} is not an IANA time zone (for example \"Europe/London\")"))
}

/// A label: trimmed, 1 to 64 characters, no control characters.
pub fn label(input: &str) -> Result<String, String> {
    checked(input, TextRule::line(MAX_LABEL_LEN).required())
}

/// An attribute key: `^\w{1,64}$` (letters, digits, underscore).
pub fn attribute_key(input: &str) -> Result<String, String> {
    let s = checked(input, TextRule::line(MAX_ATTRIBUTE_KEY_LEN).required())?;
    if s.chars().all(|c| c.is_alphanumeric() || c == '_') {
        Ok(s)
    } else {
        Err(r"must match ^\w{1,64}$ (letters, digits and underscores)".into())
    }
}

/// An attribute value: at most 1,024 characters.
pub fn attribute_value(input: &str) -> Result<String, String> {
    checked(input, TextRule::paragraph(MAX_ATTRIBUTE_VALUE_LEN))
}

/// A messaging protocol: 1 to 32 of `a-z 0-9 _ -`, lower-cased.
pub fn protocol(input: &str) -> Result<String, String> {
    let s = checked(input, TextRule::line(MAX_PROTOCOL_LEN).required())?.to_ascii_lowercase();
    if s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        Ok(s)
    } else {
        Err("must be 1 to 32 characters of a-z, 0-9, _ or - (for example \"telegram\")".into())
    }
}

/// An external user id: trimmed, 1 to 256 characters, no control characters.
pub fn external_user_id(input: &str) -> Result<String, String> {
    checked(input, TextRule::line(MAX_EXTERNAL_USER_ID_LEN).required())
}

/// A messaging display name: at most 200 characters.
pub fn channel_display_name(input: &str) -> Result<String, String> {
    checked(input, TextRule::line(MAX_CHANNEL_DISPLAY_NAME_LEN))
}

/// A key/value attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribute {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A messaging-channel identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelIdentity {
    /// Lower-case protocol.
    pub protocol: String,
    /// The user id in the channel.
    pub external_user_id: String,
    /// The display name in the channel.
    pub display_name: String,
}

/// A communication to link, validated except for the phone number, which is parsed once the
/// domain's default region is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommunicationDraft {
    /// A phone number as entered.
    Phone(String),
    /// An e-mail address.
    Email(EmailAddress),
    /// A messaging identity.
    Channel(ChannelIdentity),
}

/// A communication ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Communication {
    /// A phone number, as entered and parsed.
    Phone {
        /// As entered.
        raw: String,
        /// Normalised.
        parsed: ParsedPhone,
    },
    /// An e-mail address.
    Email(EmailAddress),
    /// A messaging identity.
    Channel(ChannelIdentity),
}

/// A contact to create.
#[derive(Debug, Clone)]
pub struct NewContact {
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// IANA time zone or empty.
    pub time_zone: String,
    /// Owner; `None` means the caller.
    pub owner: Option<UserId>,
    /// Labels, deduplicated.
    pub labels: Vec<String>,
    /// Attributes, keys unique.
    pub attributes: Vec<Attribute>,
    /// Communications to link.
    pub communications: Vec<CommunicationDraft>,
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New time zone (empty clears it).
    pub time_zone: Option<String>,
    /// New owner.
    pub owner: Option<UserId>,
    /// New labels (replace).
    pub labels: Option<Vec<String>>,
    /// New attributes (replace).
    pub attributes: Option<Vec<Attribute>>,
}

impl ContactPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.description.is_none()
            && self.time_zone.is_none()
            && self.owner.is_none()
            && self.labels.is_none()
            && self.attributes.is_none()
    }
}

/// Which link to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRef {
    /// A phone link id.
    Phone(i64),
    /// An e-mail link id.
    Email(i64),
    /// A messaging identity link id.
    Channel(i64),
}

/// A user as shown on a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRef {
    /// The user id.
    pub id: UserId,
    /// The user's name.
    pub name: String,
}

/// A phone linked to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneLink {
    /// Link id.
    pub id: i64,
    /// As entered.
    pub number: String,
    /// E.164.
    pub e164: String,
    /// The number's region.
    pub region: String,
}

/// An e-mail linked to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailLink {
    /// Link id.
    pub id: i64,
    /// As entered.
    pub address: String,
    /// Lower-cased.
    pub normalized: String,
}

/// A messaging identity linked to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelLink {
    /// Link id.
    pub id: i64,
    /// The identity.
    #[serde(flatten)]
    pub identity: ChannelIdentity,
}

/// The full contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactCard {
    /// Id.
    pub id: ContactId,
    /// Version (optimistic concurrency).
    pub version: i64,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// IANA time zone or empty.
    pub time_zone: String,
    /// Owner.
    pub owner: UserRef,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// Attributes, sorted by key.
    pub attributes: Vec<Attribute>,
    /// Phones, oldest first.
    pub phones: Vec<PhoneLink>,
    /// E-mails, oldest first.
    pub emails: Vec<EmailLink>,
    /// Messaging identities, oldest first.
    pub channels: Vec<ChannelLink>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Creator.
    pub created_by: UserRef,
    /// Last change time.
    pub updated_at: DateTime<Utc>,
    /// Last changer.
    pub updated_by: UserRef,
}

/// A contact ready to insert: validated fields, owner resolved, phones parsed.
#[derive(Debug, Clone)]
pub struct ContactDraft {
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// IANA time zone or empty.
    pub time_zone: String,
    /// Owner.
    pub owner: UserId,
    /// Labels.
    pub labels: Vec<String>,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// Communications.
    pub communications: Vec<Communication>,
}

impl ContactDraft {
    /// A validated new contact ready to insert: owner defaulted to `caller`, phones parsed in
    /// the domain's `region` (every bad number reported with its field).
    pub fn resolve(
        new: NewContact,
        drafts: Vec<(String, CommunicationDraft)>,
        caller: UserId,
        region: Region,
    ) -> Checked<ContactDraft> {
        Ok(ContactDraft {
            communications: Communication::resolve_all(drafts, region)?,
            display_name: new.display_name,
            description: new.description,
            time_zone: new.time_zone,
            owner: new.owner.unwrap_or(caller),
            labels: new.labels,
            attributes: new.attributes,
        })
    }
}

impl Communication {
    /// Parses a phone draft in the domain's `region` (other drafts pass as they are); a bad
    /// number is reported on `{field}.phone.number`.
    pub fn resolve(field: &str, draft: CommunicationDraft, region: Region) -> Checked<Self> {
        Ok(match draft {
            CommunicationDraft::Phone(raw) => {
                let parsed = parse_phone(&raw, region)
                    .map_err(|e| Violations::one(format!("{field}.phone.number"), e.to_string()))?;
                Communication::Phone { raw, parsed }
            }
            CommunicationDraft::Email(e) => Communication::Email(e),
            CommunicationDraft::Channel(c) => Communication::Channel(c),
        })
    }

    /// [`Self::resolve`] for each draft, with its field path; every bad number is reported.
    pub fn resolve_all(
        drafts: Vec<(String, CommunicationDraft)>,
        region: Region,
    ) -> Checked<Vec<Self>> {
        let mut v = Violations::new();
        let resolved = drafts
            .into_iter()
            .filter_map(|(field, draft)| v.keep(Self::resolve(&field, draft, region)))
            .collect();
        v.or(resolved)
    }
}

/// Removes duplicates, keeping the first occurrence's position.
pub fn dedup_keep_order(values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(time_zone("Europe/London").as_deref(), Ok("Europe/London"));
        assert_eq!(time_zone("").as_deref(), Ok(""));
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("GMT+25").is_err());
    }

    #[test]
    fn attribute_keys_are_word_characters() {
        assert!(attribute_key("crm_id").is_ok());
        assert!(attribute_key("Ключ_1").is_ok());
        for bad in ["", "a-b", "a b", "a=b", &"k".repeat(65)] {
            assert!(attribute_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_labels_are_bounded() {
        assert_eq!(display_name("  Ann Lee ").as_deref(), Ok("Ann Lee"));
        assert!(display_name("   ").is_err());
        assert!(display_name(&"x".repeat(201)).is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert!(label(&"l".repeat(65)).is_err());
        assert!(label("").is_err());
        assert_eq!(protocol(" Telegram ").as_deref(), Ok("telegram"));
        assert!(protocol("tele gram").is_err());
    }

    #[test]
    fn dedup_keeps_first() {
        let v = dedup_keep_order(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(v, vec!["b".to_owned(), "a".to_owned()]);
    }
}
