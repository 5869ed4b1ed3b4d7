//! Identification: the keys an incoming number is matched on, the rules, and how matches become
//! an outcome with ranked candidates. Pure; the queries live in `db::identification`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::email::EmailAddress;
use super::phone::{ParsedPhone, national_variants};

/// Most candidates kept for one interaction.
pub const MAX_CANDIDATES: usize = 100;

/// The rule by which a communication matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    /// Equal E.164.
    E164,
    /// A national variant of the same line (Brazil's ninth digit).
    NationalVariant,
    /// Fallback: equal national significant number.
    NationalNumber,
    /// Fallback: equal last N digits.
    LastDigits,
    /// Equal messaging identity.
    MessagingIdentity,
    /// Routing's key named the contact's id.
    ContactId,
    /// Routing's key: an attribute of the contact has the value given.
    Attribute,
    /// Routing's key: an e-mail address of the contact.
    Email,
}

impl MatchRule {
    /// True for exact rules; false for fallbacks.
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            MatchRule::E164
                | MatchRule::NationalVariant
                | MatchRule::MessagingIdentity
                | MatchRule::ContactId
                | MatchRule::Attribute
                | MatchRule::Email
        )
    }
}

/// Which kind of communication matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A phone link.
    Phone,
    /// A messaging identity link.
    Messaging,
    /// The contact itself (routing's key named its id).
    Contact,
    /// An attribute (`key` names it).
    Attribute,
    /// An e-mail address link.
    Email,
}

/// One matching communication, as a query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The contact.
    pub contact_id: i64,
    /// The link that matched.
    pub link_id: i64,
    /// Phone or messaging.
    pub kind: LinkKind,
    /// The rule.
    pub rule: MatchRule,
    /// The contact's last activity.
    pub last_active_at: DateTime<Utc>,
    /// The attribute's key, for an attribute match.
    pub key: Option<String>,
}

/// One matched communication of a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateMatch {
    /// The rule.
    pub rule: MatchRule,
    /// Phone or messaging.
    pub kind: LinkKind,
    /// The link id (0 for the contact itself or an attribute).
    pub link_id: i64,
    /// The attribute's key, for an attribute match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A contact identification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The contact.
    pub contact_id: i64,
    /// At least one exact match.
    pub exact: bool,
    /// Every matching communication.
    pub matches: Vec<CandidateMatch>,
    /// The contact's last activity when identified.
    pub last_active_at: DateTime<Utc>,
}

/// The outcome of identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nobody.
    NotFound,
    /// One contact.
    Identified,
    /// Several contacts.
    Ambiguous,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NotFound => "not_found",
            Outcome::Identified => "identified",
            Outcome::Ambiguous => "ambiguous",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_found" => Some(Outcome::NotFound),
            "identified" => Some(Outcome::Identified),
            "ambiguous" => Some(Outcome::Ambiguous),
            _ => None,
        }
    }
}

/// What identification concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    /// The outcome.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// The caller's E.164, when the number parsed.
    pub normalized_number: Option<String>,
    /// Ranked candidates.
    pub candidates: Vec<Candidate>,
    /// How many contacts hold the caller's number exactly, as found at the offer (not stored:
    /// 0 for an interaction read back), for the domain's [`AutolinkPolicy`].
    pub number_holders: usize,
}

impl Identification {
    /// Nobody, for `reason` (hidden number, unparseable number, ...).
    pub fn not_found(reason: &str, normalized_number: Option<String>) -> Self {
        Self {
            outcome: Outcome::NotFound,
            reason: reason.to_owned(),
            normalized_number,
            candidates: Vec::new(),
            number_holders: 0,
        }
    }

    /// Whether a candidate matched by a phone number.
    pub fn matched_by_phone(&self) -> bool {
        self.candidates
            .iter()
            .any(|c| c.matches.iter().any(|m| m.kind == LinkKind::Phone))
    }

    /// The contact to bind at once under the domain's policy: exactly one candidate, matched
    /// exactly, and, when the policy forbids it on shared numbers, a caller's number that at
    /// most one contact holds. Never on ambiguity, never on fallback-only matches.
    pub fn autolink_target(&self, policy: AutolinkPolicy) -> Option<i64> {
        match self.candidates.as_slice() {
            [only]
                if policy.enabled
                    && only.exact
                    && (policy.shared_numbers || self.number_holders <= 1) =>
            {
                Some(only.contact_id)
            }
            _ => None,
        }
    }
}

/// What a domain lets autolink do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutolinkPolicy {
    /// Bind an offered interaction at once when exactly one contact matches exactly.
    pub enabled: bool,
    /// Also when the caller's number is held by more than one contact (a switchboard) and a
    /// key from routing picked one of them.
    pub shared_numbers: bool,
}

/// Most identification keys one offer carries.
pub const MAX_IDENTIFICATION_KEYS: usize = 10;

/// Longest `source` of an identification key.
pub const MAX_KEY_SOURCE_LEN: usize = 100;

/// What an identification key from routing names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// A contact id.
    Contact(i64),
    /// An attribute with its exact value.
    Attribute {
        /// The attribute's key.
        key: String,
        /// Its value.
        value: String,
    },
    /// An e-mail address.
    Email(EmailAddress),
}

/// A key routing collected before the agent (in the IVR, by a bot), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentificationKey {
    /// What it names.
    pub value: KeyValue,
    /// Where it came from ("entered in the IVR"), for the reason.
    pub source: Option<String>,
}

impl IdentificationKey {
    /// The key in words, for the match reason: `attribute account_no = 12345, entered in the
    /// IVR`.
    pub fn describe(&self) -> String {
        let what = match &self.value {
            KeyValue::Contact(id) => format!("contact id {id}"),
            KeyValue::Attribute { key, value } => format!("attribute {key} = {value}"),
            KeyValue::Email(e) => format!("e-mail {}", e.address),
        };
        match &self.source {
            Some(source) => format!("{what}, {source}"),
            None => what,
        }
    }
}

/// The phone number a chat identity carries, as a caller's number to parse in the domain's
/// region, when its protocol puts one there: WhatsApp and Viber identities are international
/// numbers, with or without `+` (`447400123456`, a WhatsApp JID `447400123456@s.whatsapp.net`
/// or `@c.us`, `whatsapp:+447400123456`); an SMS identity is the number as the network gave it
/// (national forms included); any other protocol's identity (Telegram's is a user id, not a
/// number) only when it is written as an international number (`+447400123456`).
pub fn carried_number(protocol: &str, external_user_id: &str) -> Option<String> {
    let protocol = protocol.to_ascii_lowercase();
    let mut id = external_user_id.trim();
    for prefix in ["whatsapp:", "viber:", "sms:", "tel:"] {
        if id.len() > prefix.len() && id[..prefix.len()].eq_ignore_ascii_case(prefix) {
            id = &id[prefix.len()..];
        }
    }
    for suffix in ["@s.whatsapp.net", "@c.us"] {
        id = id.strip_suffix(suffix).unwrap_or(id);
    }
    let digits = id.chars().filter(char::is_ascii_digit).count();
    let number_like = id
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        && (6..=17).contains(&digits);
    if !number_like {
        return None;
    }
    match protocol.as_str() {
        "whatsapp" | "viber" if id.starts_with('+') => Some(id.to_owned()),
        "whatsapp" | "viber" if id.chars().all(|c| c.is_ascii_digit()) => Some(format!("+{id}")),
        "sms" => Some(id.to_owned()),
        _ if id.starts_with('+') => Some(id.to_owned()),
        _ => None,
    }
}

/// Identification with routing's keys, tried in order: the first key that matches exactly one
/// contact identifies it (the caller's number still counted for the policy); when none does,
/// `fallback` (the number's or the chat identity's identification) stands, its reason saying
/// what each key found. `found[i]` are the hits of `keys[i]`.
pub fn with_keys(
    keys: &[IdentificationKey],
    found: Vec<Vec<Hit>>,
    fallback: Identification,
) -> Identification {
    let mut notes = Vec::new();
    for (key, hits) in keys.iter().zip(found) {
        let candidates = rank(hits);
        match candidates.len() {
            1 => {
                return Identification {
                    outcome: Outcome::Identified,
                    reason: format!("one contact: {}", key.describe()),
                    normalized_number: fallback.normalized_number,
                    candidates,
                    number_holders: fallback.number_holders,
                };
            }
            0 => notes.push(format!("{} matched nothing", key.describe())),
            n if n >= MAX_CANDIDATES => notes.push(format!(
                "{} matched {MAX_CANDIDATES} contacts or more",
                key.describe()
            )),
            n => notes.push(format!("{} matched {n} contacts", key.describe())),
        }
    }
    if notes.is_empty() {
        return fallback;
    }
    Identification {
        reason: format!(
            "{} (no key identified one contact: {})",
            fallback.reason,
            notes.join("; ")
        ),
        ..fallback
    }
}

/// The phone keys a parsed caller number is looked up by, in rule order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneKeys {
    /// E.164 forms with their rule: the number itself, then national variants.
    pub exact: Vec<(String, MatchRule)>,
    /// The national significant number (first fallback).
    pub national_number: String,
    /// The reversed last N digits (second fallback), when the domain enables it and the number
    /// has that many digits.
    pub reversed_suffix: Option<String>,
}

/// The keys of `phone` under a fallback length of `fallback_digits` (0: off).
pub fn phone_keys(phone: &ParsedPhone, fallback_digits: i16) -> PhoneKeys {
    let mut exact = vec![(
        phone.e164.clone(),
        if phone.ninth_digit_added {
            MatchRule::NationalVariant
        } else {
            MatchRule::E164
        },
    )];
    exact.extend(
        national_variants(phone)
            .into_iter()
            .map(|v| (v, MatchRule::NationalVariant)),
    );
    let n = usize::try_from(fallback_digits).unwrap_or(0);
    let reversed_suffix =
        (n > 0 && phone.digits_reversed.len() >= n).then(|| phone.digits_reversed[..n].to_owned());
    PhoneKeys {
        exact,
        national_number: phone.national_number.clone(),
        reversed_suffix,
    }
}

/// Groups hits by contact and ranks them: exact matches first, then most recently active, then
/// lowest id; at most [`MAX_CANDIDATES`].
pub fn rank(hits: Vec<Hit>) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    for hit in hits {
        let m = CandidateMatch {
            rule: hit.rule,
            kind: hit.kind,
            link_id: hit.link_id,
            key: hit.key,
        };
        match candidates
            .iter_mut()
            .find(|c| c.contact_id == hit.contact_id)
        {
            Some(c) => {
                c.exact |= hit.rule.is_exact();
                if !c.matches.contains(&m) {
                    c.matches.push(m);
                }
            }
            None => candidates.push(Candidate {
                contact_id: hit.contact_id,
                exact: hit.rule.is_exact(),
                matches: vec![m],
                last_active_at: hit.last_active_at,
            }),
        }
    }
    candidates.sort_by(|a, b| {
        b.exact
            .cmp(&a.exact)
            .then(b.last_active_at.cmp(&a.last_active_at))
            .then(a.contact_id.cmp(&b.contact_id))
    });
    candidates.truncate(MAX_CANDIDATES);
    candidates
}

/// The outcome for ranked candidates; `rule_note` says which rule found them.
pub fn conclude(
    candidates: Vec<Candidate>,
    rule_note: &str,
    normalized_number: Option<String>,
) -> Identification {
    let (outcome, reason) = match candidates.len() {
        0 => (Outcome::NotFound, "no match".to_owned()),
        1 => (Outcome::Identified, format!("one contact: {rule_note}")),
        n => (Outcome::Ambiguous, format!("{n} contacts: {rule_note}")),
    };
    let number_holders = candidates
        .iter()
        .filter(|c| {
            c.matches
                .iter()
                .any(|m| m.kind == LinkKind::Phone && m.rule.is_exact())
        })
        .count();
    Identification {
        outcome,
        reason,
        normalized_number,
        candidates,
        number_holders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone::parse_phone;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("time")
    }

    fn hit(contact_id: i64, link_id: i64, rule: MatchRule, active: i64) -> Hit {
        Hit {
            contact_id,
            link_id,
            kind: LinkKind::Phone,
            rule,
            last_active_at: at(active),
            key: None,
        }
    }

    const ON: AutolinkPolicy = AutolinkPolicy {
        enabled: true,
        shared_numbers: true,
    };
    const OFF: AutolinkPolicy = AutolinkPolicy {
        enabled: false,
        shared_numbers: true,
    };
    const UNSHARED: AutolinkPolicy = AutolinkPolicy {
        enabled: true,
        shared_numbers: false,
    };

    fn attribute(value: &str, source: Option<&str>) -> IdentificationKey {
        IdentificationKey {
            value: KeyValue::Attribute {
                key: "account_no".into(),
                value: value.into(),
            },
            source: source.map(str::to_owned),
        }
    }

    fn keyed(contact_id: i64) -> Hit {
        Hit {
            kind: LinkKind::Attribute,
            key: Some("account_no".into()),
            ..hit(contact_id, 0, MatchRule::Attribute, 0)
        }
    }

    #[test]
    fn the_first_key_that_names_one_contact_wins_and_the_number_counts_for_the_policy() {
        let by_number = conclude(
            rank(vec![
                hit(1, 1, MatchRule::E164, 0),
                hit(2, 2, MatchRule::E164, 0),
            ]),
            "exact number",
            Some("+447400123456".into()),
        );
        assert_eq!(by_number.number_holders, 2);
        let keys = [
            attribute("1", None),
            attribute("2", None),
            attribute("3", Some("entered in the IVR")),
        ];
        let found = vec![vec![], vec![keyed(1), keyed(2)], vec![keyed(2)]];
        let i = with_keys(&keys, found, by_number.clone());
        assert_eq!(i.outcome, Outcome::Identified);
        assert_eq!(
            i.reason,
            "one contact: attribute account_no = 3, entered in the IVR"
        );
        assert_eq!(i.candidates[0].contact_id, 2);
        assert_eq!(
            i.candidates[0].matches[0].key.as_deref(),
            Some("account_no")
        );
        assert_eq!(i.normalized_number.as_deref(), Some("+447400123456"));
        assert_eq!(i.autolink_target(ON), Some(2));
        assert_eq!(i.autolink_target(UNSHARED), None, "a switchboard's number");
        assert_eq!(i.autolink_target(OFF), None);
        // No key names one contact: the number's outcome, saying why.
        let i = with_keys(
            &keys[..2],
            vec![vec![], vec![keyed(1), keyed(2)]],
            by_number,
        );
        assert_eq!(i.outcome, Outcome::Ambiguous);
        assert_eq!(
            i.reason,
            "2 contacts: exact number (no key identified one contact: attribute account_no = 1 \
             matched nothing; attribute account_no = 2 matched 2 contacts)"
        );
    }

    #[test]
    fn exact_first_then_most_recently_active() {
        let ranked = rank(vec![
            hit(1, 10, MatchRule::LastDigits, 300),
            hit(2, 20, MatchRule::E164, 100),
            hit(3, 30, MatchRule::E164, 200),
            hit(2, 21, MatchRule::E164, 100),
        ]);
        let order: Vec<_> = ranked.iter().map(|c| c.contact_id).collect();
        assert_eq!(order, vec![3, 2, 1]);
        assert_eq!(ranked[1].matches.len(), 2);
        assert!(!ranked[2].exact);
    }

    #[test]
    fn autolink_only_on_one_exact_match() {
        let one_exact = conclude(rank(vec![hit(1, 1, MatchRule::E164, 0)]), "x", None);
        assert_eq!(one_exact.outcome, Outcome::Identified);
        assert_eq!(one_exact.autolink_target(ON), Some(1));
        assert_eq!(one_exact.autolink_target(UNSHARED), Some(1));
        assert_eq!(one_exact.autolink_target(OFF), None);
        let fallback = conclude(rank(vec![hit(1, 1, MatchRule::LastDigits, 0)]), "x", None);
        assert_eq!(fallback.outcome, Outcome::Identified);
        assert_eq!(fallback.autolink_target(ON), None);
        let two = conclude(
            rank(vec![
                hit(1, 1, MatchRule::E164, 0),
                hit(2, 2, MatchRule::E164, 0),
            ]),
            "x",
            None,
        );
        assert_eq!(two.outcome, Outcome::Ambiguous);
        assert_eq!(two.autolink_target(ON), None);
    }

    #[test]
    fn chat_identities_carry_numbers_where_their_protocol_puts_them() {
        let n = |p: &str, id: &str| carried_number(p, id);
        assert_eq!(
            n("whatsapp", "447400123456").as_deref(),
            Some("+447400123456")
        );
        assert_eq!(
            n("WhatsApp", "447400123456@s.whatsapp.net").as_deref(),
            Some("+447400123456")
        );
        assert_eq!(
            n("whatsapp", "whatsapp:+447400123456").as_deref(),
            Some("+447400123456")
        );
        assert_eq!(
            n("viber", "+44 7400 123456").as_deref(),
            Some("+44 7400 123456")
        );
        assert_eq!(n("sms", "07400 123456").as_deref(), Some("07400 123456"));
        assert_eq!(
            n("telegram", "+447400123456").as_deref(),
            Some("+447400123456")
        );
        // A Telegram user id is no number; nor is a name, nor a short code.
        assert_eq!(n("telegram", "123456789"), None);
        assert_eq!(n("whatsapp", "ann.lee"), None);
        assert_eq!(n("sms", "12345"), None);
        assert_eq!(
            n("webchat", "+447400123456").as_deref(),
            Some("+447400123456")
        );
    }

    #[test]
    fn keys_include_variants_and_suffix() {
        let region = "BR".parse().expect("region");
        let p = parse_phone("+55 11 98765-4321", region).expect("valid");
        let keys = phone_keys(&p, 8);
        assert_eq!(
            keys.exact,
            vec![
                ("+5511987654321".to_owned(), MatchRule::E164),
                ("+551187654321".to_owned(), MatchRule::NationalVariant)
            ]
        );
        assert_eq!(keys.national_number, "11987654321");
        assert_eq!(keys.reversed_suffix.as_deref(), Some("12345678"));
        assert_eq!(phone_keys(&p, 0).reversed_suffix, None);
        let old = parse_phone("(11) 8765-4321", region).expect("valid");
        assert_eq!(phone_keys(&old, 0).exact[0].1, MatchRule::NationalVariant);
    }
}
