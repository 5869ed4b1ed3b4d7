//! What erasing a contact removes from stored texts: the contact's personal data as strings
//! ([`Traces`]), gathered from its card, its audit trail and the merge archives that held it,
//! and how a stored text or JSON document is scrubbed of them.
//!
//! A trace of four characters or more is replaced wherever it occurs in a text (a name inside
//! a longer string goes too); a shorter one only where it is the whole text, so that a
//! two-letter name does not eat into other words. Replacements are [`ERASED`]. Imports nothing
//! of the server but `domain`.

use serde_json::Value;

use super::contact::ContactCard;

/// What an erased value becomes.
pub const ERASED: &str = "[erased]";

/// Shortest trace replaced inside longer texts.
const MIN_INNER: usize = 4;

/// The keys of stored documents (audit snapshots, merge archives) whose values are a
/// contact's personal data: names, descriptions, numbers, addresses, identities, attribute
/// values. Keys such as labels, ids, times and the names of users are not.
const PERSONAL_KEYS: [&str; 13] = [
    "display_name",
    "description",
    "number",
    "raw",
    "e164",
    "national_number",
    "digits_reversed",
    "address",
    "normalized",
    "external_user_id",
    "value",
    "name_search",
    "caller_number",
];

/// A contact's personal data, as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    /// Longest first, so that a longer trace is replaced before one it contains.
    strings: Vec<String>,
    /// The names it had (current and past), for the name vocabulary.
    names: Vec<String>,
}

impl Traces {
    /// Adds one trace (blank ones are ignored).
    pub fn add(&mut self, s: &str) {
        let s = s.trim();
        if s.is_empty() || s == ERASED || self.strings.iter().any(|t| t == s) {
            return;
        }
        self.strings.push(s.to_owned());
        self.strings
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Adds a name the contact had.
    pub fn add_name(&mut self, s: &str) {
        self.add(s);
        if !s.trim().is_empty() && !self.names.iter().any(|n| n == s) {
            self.names.push(s.to_owned());
        }
    }

    /// Adds the personal data of a card.
    pub fn add_card(&mut self, card: &ContactCard) {
        self.add_name(&card.display_name);
        self.add(&card.description);
        for a in &card.attributes {
            self.add(&a.value);
        }
        for p in &card.phones {
            self.add(&p.number);
            self.add(&p.e164);
        }
        for e in &card.emails {
            self.add(&e.address);
            self.add(&e.normalized);
        }
        for c in &card.channels {
            self.add(&c.identity.external_user_id);
            self.add(&c.identity.display_name);
        }
    }

    /// Adds the values under personal keys anywhere in a stored document.
    pub fn add_document(&mut self, doc: &Value) {
        match doc {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if PERSONAL_KEYS.contains(&k.as_str()) => {
                            if k == "display_name" {
                                self.add_name(s);
                            } else {
                                self.add(s);
                            }
                        }
                        other => self.add_document(other),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.add_document(v)),
            _ => {}
        }
    }

    /// The traces, longest first.
    pub fn strings(&self) -> &[String] {
        &self.strings
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The text without the traces (`None`: it holds none).
    pub fn scrub_text(&self, text: &str) -> Option<String> {
        let mut out = text.to_owned();
        let mut changed = false;
        for t in &self.strings {
            if out == *t {
                return Some(ERASED.to_owned());
            }
            if t.chars().count() >= MIN_INNER && out.contains(t.as_str()) {
                out = out.replace(t.as_str(), ERASED);
                changed = true;
            }
        }
        changed.then_some(out)
    }

    /// Scrubs every string of a document in place; true when one changed.
    pub fn scrub_document(&self, doc: &mut Value) -> bool {
        match doc {
            Value::String(s) => match self.scrub_text(s) {
                Some(clean) => {
                    *s = clean;
                    true
                }
                None => false,
            },
            Value::Array(items) => {
                let mut changed = false;
                for v in items {
                    changed |= self.scrub_document(v);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for v in map.values_mut() {
                    changed |= self.scrub_document(v);
                }
                changed
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(items: &[&str]) -> Traces {
        let mut t = Traces::default();
        for i in items {
            t.add(i);
        }
        t
    }

    #[test]
    fn long_traces_go_wherever_they_are_short_ones_only_whole() {
        let t = traces(&["Zyxwv Quorra", "Al", "+447400111111"]);
        assert_eq!(t.scrub_text("Zyxwv Quorra"), Some(ERASED.into()));
        assert_eq!(
            t.scrub_text("call from +447400111111 today"),
            Some(format!("call from {ERASED} today"))
        );
        assert_eq!(t.scrub_text("Al"), Some(ERASED.into()));
        assert_eq!(
            t.scrub_text("Alice"),
            None,
            "a short trace stays inside words"
        );
        assert_eq!(t.scrub_text("nothing here"), None);
    }

    #[test]
    fn documents_give_their_personal_values_and_are_scrubbed() {
        let doc = serde_json::json!({
            "display_name": "Zyxwv Quorra",
            "labels": ["VIP"],
            "owner": {"id": 3, "name": "Alice Agent"},
            "phones": [{"id": 1, "number": "07400 111111", "e164": "+447400111111"}],
            "attributes": [{"key": "crm_id", "value": "CRM-99"}],
        });
        let mut t = Traces::default();
        t.add_document(&doc);
        assert_eq!(t.names(), ["Zyxwv Quorra"]);
        assert!(t.strings().contains(&"CRM-99".to_owned()));
        assert!(!t.strings().iter().any(|s| s == "VIP" || s == "Alice Agent"));
        let mut other = serde_json::json!({"note": "moved from Zyxwv Quorra", "labels": ["VIP"]});
        assert!(t.scrub_document(&mut other));
        assert_eq!(other["note"], format!("moved from {ERASED}"));
        assert_eq!(other["labels"][0], "VIP");
    }
}
