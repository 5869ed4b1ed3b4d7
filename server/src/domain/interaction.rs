//! Interactions: their kinds and states, what an offer carries, and what the agent may do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::contact::ChannelIdentity;
use super::identify::{Candidate, Identification};
use super::ids::{ContactId, UserId};
use crate::error::{Error, Reason};

/// Most routing variables on one interaction.
pub const MAX_VARIABLES: usize = 100;
/// Longest variable key.
pub const MAX_VARIABLE_KEY_LEN: usize = 128;
/// Longest variable value.
pub const MAX_VARIABLE_VALUE_LEN: usize = 4096;
/// Longest queue or member id, and queue name.
pub const MAX_QUEUE_FIELD_LEN: usize = 200;
/// Longest member description.
pub const MAX_MEMBER_DESCRIPTION_LEN: usize = 4000;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(
    /// Call or chat.
    InteractionKind {
        /// A voice call.
        Call => "call",
        /// A chat.
        Chat => "chat",
    }
);

text_enum!(
    /// Who started it.
    Direction {
        /// The client called or wrote.
        Inbound => "inbound",
        /// The contact center reached out.
        Outbound => "outbound",
    }
);

text_enum!(
    /// Where an interaction is in its life.
    InteractionState {
        /// Offered to the agent (ringing).
        Offered => "offered",
        /// The agent answered.
        Accepted => "accepted",
        /// Ended.
        Closed => "closed",
    }
);

/// The client's side of an interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A call: the number as delivered, `None` when withheld.
    Call {
        /// The number as the network delivered it.
        number: Option<String>,
    },
    /// A chat identity.
    Chat(ChannelIdentity),
}

impl Destination {
    /// The kind of interaction this destination belongs to.
    pub fn kind(&self) -> InteractionKind {
        match self {
            Destination::Call { .. } => InteractionKind::Call,
            Destination::Chat(_) => InteractionKind::Chat,
        }
    }
}

/// A routing queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Routing's id.
    pub id: String,
    /// Name shown on the panel.
    pub name: String,
}

/// A queue member and the description of the communication being dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Routing's id.
    pub id: String,
    /// The description.
    pub description: String,
}

/// A routing variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A validated offer.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Routing's interaction id.
    pub external_id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The client's destination (which also fixes the kind).
    pub destination: Destination,
    /// The agent it is offered to.
    pub agent: UserId,
    /// The queue, if any.
    pub queue: Option<Queue>,
    /// The member, if any.
    pub member: Option<Member>,
    /// Variables in order.
    pub variables: Vec<Variable>,
    /// When it was offered.
    pub occurred_at: DateTime<Utc>,
    /// Routing's identification keys, tried in order before the destination.
    pub keys: Vec<super::identify::IdentificationKey>,
}

/// A stored interaction.
#[derive(Debug, Clone)]
pub struct Interaction {
    /// Internal id.
    pub id: i64,
    /// Routing's interaction id.
    pub external_id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Offered, accepted or closed.
    pub state: InteractionState,
    /// The agent it is offered to.
    pub agent: UserId,
    /// The queue, if any.
    pub queue: Option<Queue>,
    /// The member, if any.
    pub member: Option<Member>,
    /// Variables in order.
    pub variables: Vec<Variable>,
    /// The client's destination (fixes the kind).
    pub destination: Destination,
    /// What identification found at offer time.
    pub identification: Identification,
    /// The contact it is bound to.
    pub bound_contact: Option<ContactId>,
    /// When it was offered.
    pub offered_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Interaction {
    /// Call or chat.
    pub fn kind(&self) -> InteractionKind {
        self.destination.kind()
    }

    /// FAILED_PRECONDITION unless accepted: INTERACTION_CLOSED once closed, else
    /// INTERACTION_NOT_ACCEPTED; `then` says what becomes possible once it is.
    pub fn require_accepted(&self, then: &str) -> Result<(), Error> {
        if self.state == InteractionState::Accepted {
            return Ok(());
        }
        let id = &self.external_id;
        Err(Error::precondition(
            if self.state == InteractionState::Closed {
                Reason::InteractionClosed
            } else {
                Reason::InteractionNotAccepted
            },
            format!("interaction/{id}"),
            format!("interaction {id:?} is {}; {then}", self.state.as_str()),
        ))
    }

    /// A chat whose identity nobody held, identified by the phone number it carries: binding
    /// it links the identity to the contact bound (as a relink would).
    pub fn chat_identified_by_number(&self) -> bool {
        matches!(self.destination, Destination::Chat(_)) && self.identification.matched_by_phone()
    }

    /// The candidates `offset..offset+size` of a panel page.
    pub fn candidate_page(&self, offset: usize, size: usize) -> &[Candidate] {
        let page: &[Candidate] = self.identification.candidates.get(offset..).unwrap_or(&[]);
        &page[..page.len().min(size)]
    }

    /// The contacts a panel page shows: its candidates `offset..offset+size` and the bound
    /// contact (what must be loaded to render it).
    pub fn contacts_shown(&self, offset: usize, size: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .candidate_page(offset, size)
            .iter()
            .map(|c| c.contact_id)
            .collect();
        ids.extend(self.bound_contact.map(|c| c.0));
        ids
    }
}

/// The actions of the Client info panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllowedActions {
    /// Search contacts.
    pub search: bool,
    /// Add a contact.
    pub add: bool,
    /// Bind to a contact.
    pub select: bool,
    /// Remove the binding.
    pub unbind: bool,
}

impl AllowedActions {
    /// Search, add and select only once accepted, only for the assigned agent with
    /// `interactions.handle`, never after close; unbind only when something is bound.
    pub fn decide(
        state: InteractionState,
        caller_is_assigned: bool,
        caller_handles: bool,
        bound: bool,
    ) -> Self {
        let live = state == InteractionState::Accepted && caller_is_assigned && caller_handles;
        Self {
            search: live,
            add: live,
            select: live,
            unbind: live && bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_only_for_the_assigned_agent_of_an_accepted_interaction() {
        use InteractionState::*;
        for state in [Offered, Accepted, Closed] {
            for assigned in [false, true] {
                for handles in [false, true] {
                    for bound in [false, true] {
                        let a = AllowedActions::decide(state, assigned, handles, bound);
                        let live = state == Accepted && assigned && handles;
                        assert_eq!((a.search, a.add, a.select), (live, live, live));
                        assert_eq!(a.unbind, live && bound);
                    }
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            InteractionState::Offered,
            InteractionState::Accepted,
            InteractionState::Closed,
        ] {
            assert_eq!(InteractionState::parse(s.as_str()), Some(s));
        }
        assert_eq!(InteractionKind::parse("fax"), None);
    }
}

/// One interaction of a client's recent history, as the history query reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentInteraction {
    /// Routing's interaction id.
    pub interaction_id: String,
    /// Call or chat.
    pub kind: InteractionKind,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Its state.
    pub state: InteractionState,
    /// The queue's id, when it came from one.
    pub queue_id: Option<String>,
    /// The queue's name.
    pub queue_name: Option<String>,
    /// The agent who had it.
    pub agent_id: i64,
    /// The agent's name.
    pub agent_name: Option<String>,
    /// When it was offered.
    pub offered_at: DateTime<Utc>,
    /// When it ended.
    pub closed_at: Option<DateTime<Utc>>,
}

/// What happened with a client recently: from the interactions bound to its contact, one
/// interaction (the one on screen) left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHistory {
    /// The contact.
    pub contact: ContactId,
    /// The latest interaction that has ended.
    pub last_closed: Option<RecentInteraction>,
    /// Interactions offered in the last 30 days.
    pub last_30_days: i64,
    /// Other interactions open now (at most 10).
    pub open_now: Vec<RecentInteraction>,
}

impl Interaction {
    /// Whose history the panel shows: the bound contact, else the one candidate of an
    /// identified outcome.
    pub fn history_contact(&self) -> Option<ContactId> {
        let identified = match (
            self.identification.outcome,
            self.identification.candidates.as_slice(),
        ) {
            (super::identify::Outcome::Identified, [only]) => Some(ContactId(only.contact_id)),
            _ => None,
        };
        self.bound_contact.or(identified)
    }
}
