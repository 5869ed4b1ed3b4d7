//! The contact change feed's wire forms: a change as stored (a `ContactChange` without its
//! position and time, with the whole card), and as a watcher gets it (position and time set,
//! filtered by labels and owner, the card limited to the fields asked for).

use client_info_proto::pb;
use prost::Message as _;

use super::encode;
use crate::db::changes::{ChangeOut, StoredChange};
use crate::domain::contact::ContactCard;
use crate::domain::ids::{ContactId, UserId};
use crate::domain::session::Session;
use crate::error::Error;

pub use pb::ContactChangeKind as Kind;

/// A change being made: built from the card after it, then written with the unit of work.
#[derive(Debug, Clone)]
pub struct Change(pb::ContactChange);

impl Change {
    /// A change of kind `kind` by the session's caller; `card` is the contact after it (for a
    /// deletion: as it was).
    pub fn of(session: &Session, kind: Kind, card: &ContactCard) -> Self {
        Self(pb::ContactChange {
            position: 0,
            occurred_at: None,
            contact_id: card.id.0,
            kind: kind as i32,
            actor: Some(pb::UserRef {
                id: session.caller.user_id.0,
                name: session.user_name.to_string(),
            }),
            version: card.version,
            contact: Some(encode::contact(card, false)),
            merged_contact_ids: Vec::new(),
            merged_into: 0,
            interaction_id: String::new(),
            relinked_from_contact_id: 0,
            relinked_to_contact_id: 0,
            erased: false,
        })
    }

    /// The change of a contact erased by the session's caller: deleted, its card its id and
    /// last version only.
    pub fn erased(session: &Session, id: ContactId, version: i64) -> Self {
        Self(pb::ContactChange {
            position: 0,
            occurred_at: None,
            contact_id: id.0,
            kind: Kind::Deleted as i32,
            actor: Some(pb::UserRef {
                id: session.caller.user_id.0,
                name: session.user_name.to_string(),
            }),
            version,
            contact: Some(pb::Contact {
                id: id.0,
                version,
                ..Default::default()
            }),
            merged_contact_ids: Vec::new(),
            merged_into: 0,
            interaction_id: String::new(),
            relinked_from_contact_id: 0,
            relinked_to_contact_id: 0,
            erased: true,
        })
    }

    /// The interaction bound or unbound.
    pub fn interaction(mut self, id: &str) -> Self {
        id.clone_into(&mut self.0.interaction_id);
        self
    }

    /// The contacts merged into this one.
    pub fn merged(mut self, ids: impl IntoIterator<Item = ContactId>) -> Self {
        self.0.merged_contact_ids = ids.into_iter().map(|c| c.0).collect();
        self
    }

    /// The contact this one was merged into.
    pub fn merged_into(mut self, id: ContactId) -> Self {
        self.0.merged_into = id.0;
        self
    }

    /// The contact a messaging identity came from.
    pub fn relinked_from(mut self, id: ContactId) -> Self {
        self.0.relinked_from_contact_id = id.0;
        self
    }

    /// The contact a messaging identity went to.
    pub fn relinked_to(mut self, id: ContactId) -> Self {
        self.0.relinked_to_contact_id = id.0;
        self
    }

    /// The change to write.
    pub fn out(self) -> ChangeOut {
        ChangeOut {
            contact: ContactId(self.0.contact_id),
            payload: self.0.encode_to_vec(),
        }
    }
}

/// A field of the card a change carries, as a watch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardField {
    /// `display_name`.
    DisplayName,
    /// `description`.
    Description,
    /// `time_zone`.
    TimeZone,
    /// `owner`.
    Owner,
    /// `labels`.
    Labels,
    /// `attributes`.
    Attributes,
    /// `phones`.
    Phones,
    /// `emails`.
    Emails,
    /// `messaging_channels`.
    MessagingChannels,
    /// `created_at`.
    CreatedAt,
    /// `created_by`.
    CreatedBy,
    /// `updated_at`.
    UpdatedAt,
    /// `updated_by`.
    UpdatedBy,
}

impl CardField {
    /// Every field, in the card's order.
    pub const ALL: [CardField; 13] = [
        CardField::DisplayName,
        CardField::Description,
        CardField::TimeZone,
        CardField::Owner,
        CardField::Labels,
        CardField::Attributes,
        CardField::Phones,
        CardField::Emails,
        CardField::MessagingChannels,
        CardField::CreatedAt,
        CardField::CreatedBy,
        CardField::UpdatedAt,
        CardField::UpdatedBy,
    ];

    /// The field's name in `clientinfo.v1.Contact`.
    pub fn name(self) -> &'static str {
        match self {
            CardField::DisplayName => "display_name",
            CardField::Description => "description",
            CardField::TimeZone => "time_zone",
            CardField::Owner => "owner",
            CardField::Labels => "labels",
            CardField::Attributes => "attributes",
            CardField::Phones => "phones",
            CardField::Emails => "emails",
            CardField::MessagingChannels => "messaging_channels",
            CardField::CreatedAt => "created_at",
            CardField::CreatedBy => "created_by",
            CardField::UpdatedAt => "updated_at",
            CardField::UpdatedBy => "updated_by",
        }
    }

    /// The field named `name` (`None`: no such field).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The card fields a watch asked for (empty: all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardFields(u16);

impl CardFields {
    /// Adds a field.
    pub fn insert(&mut self, field: CardField) {
        self.0 |= field.bit();
    }

    fn keeps(self, field: CardField) -> bool {
        self.0 == 0 || self.0 & field.bit() != 0
    }

    /// Clears the fields of `card` not asked for (id and version stay).
    fn apply(self, card: &mut pb::Contact) {
        use CardField as F;
        if self.0 == 0 {
            return;
        }
        let keep = |f| self.keeps(f);
        if !keep(F::DisplayName) {
            card.display_name.clear();
        }
        if !keep(F::Description) {
            card.description.clear();
        }
        if !keep(F::TimeZone) {
            card.time_zone.clear();
        }
        if !keep(F::Owner) {
            card.owner = None;
        }
        if !keep(F::Labels) {
            card.labels.clear();
        }
        if !keep(F::Attributes) {
            card.attributes.clear();
        }
        if !keep(F::Phones) {
            card.phones.clear();
        }
        if !keep(F::Emails) {
            card.emails.clear();
        }
        if !keep(F::MessagingChannels) {
            card.messaging_channels.clear();
        }
        if !keep(F::CreatedAt) {
            card.created_at = None;
        }
        if !keep(F::CreatedBy) {
            card.created_by = None;
        }
        if !keep(F::UpdatedAt) {
            card.updated_at = None;
        }
        if !keep(F::UpdatedBy) {
            card.updated_by = None;
        }
    }
}

/// What a watcher asked for: the card's fields, and which contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedView {
    /// The card fields sent.
    pub fields: CardFields,
    /// Only contacts carrying every one of these labels.
    pub labels: Vec<String>,
    /// Only contacts of this owner.
    pub owner: Option<UserId>,
}

impl FeedView {
    /// True when the card passes the filters.
    pub fn admits(&self, card: &pb::Contact) -> bool {
        self.owner
            .is_none_or(|o| card.owner.as_ref().is_some_and(|u| u.id == o.0))
            && self.labels.iter().all(|l| card.labels.contains(l))
    }
}

/// A stored change as `view` shows it: position and time set, `None` when the filters leave it
/// out.
pub fn render(stored: &StoredChange, view: &FeedView) -> Result<Option<pb::ContactChange>, Error> {
    let mut change = pb::ContactChange::decode(stored.payload.as_slice())
        .map_err(|e| Error::Internal(format!("stored change {}: {e}", stored.sequence)))?;
    let admitted = change.contact.as_ref().is_some_and(|c| view.admits(c));
    if !admitted {
        return Ok(None);
    }
    change.position = stored.sequence;
    change.occurred_at = Some(encode::timestamp(stored.occurred_at));
    if let Some(card) = change.contact.as_mut() {
        view.fields.apply(card);
    }
    Ok(Some(change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_as_in_the_contact_message() {
        for f in CardField::ALL {
            assert_eq!(CardField::parse(f.name()), Some(f));
        }
        assert_eq!(CardField::parse("id"), None);
        let mut fields = CardFields::default();
        fields.insert(CardField::Labels);
        let mut card = pb::Contact {
            id: 7,
            version: 3,
            display_name: "Ann".into(),
            labels: vec!["VIP".into()],
            ..Default::default()
        };
        fields.apply(&mut card);
        assert_eq!(
            (
                card.id,
                card.version,
                card.display_name.as_str(),
                card.labels.len()
            ),
            (7, 3, "", 1)
        );
    }

    #[test]
    fn filters_need_every_label_and_the_owner() {
        let card = pb::Contact {
            labels: vec!["A".into(), "B".into()],
            owner: Some(pb::UserRef {
                id: 5,
                name: String::new(),
            }),
            ..Default::default()
        };
        let view = |labels: &[&str], owner| FeedView {
            fields: CardFields::default(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            owner,
        };
        assert!(view(&[], None).admits(&card));
        assert!(view(&["A", "B"], Some(UserId(5))).admits(&card));
        assert!(!view(&["A", "C"], None).admits(&card));
        assert!(!view(&[], Some(UserId(6))).admits(&card));
    }
}
