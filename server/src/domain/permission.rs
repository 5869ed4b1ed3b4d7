//! Permissions carried by tokens, and which RPC needs which.

use std::fmt;

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read full contact cards, search without an interaction, read history and audit.
    ContactsRead,
    /// Create contacts without an interaction, update, delete, link and unlink communications.
    ContactsWrite,
    /// Agent: handle interactions offered to oneself (panel, session stream, add, select).
    InteractionsHandle,
    /// Routing back-end: offer, accept and close interactions.
    InteractionsRoute,
    /// A system beside the agent (CRM, warehouse): the contact change feed and the full
    /// listing it resyncs from.
    ContactsChanges,
    /// A privacy officer: erase a contact and every trace of its personal data.
    ContactsErase,
}

impl Permission {
    /// Every permission, in documentation order.
    pub const ALL: [Permission; 6] = [
        Permission::ContactsRead,
        Permission::ContactsWrite,
        Permission::InteractionsHandle,
        Permission::InteractionsRoute,
        Permission::ContactsChanges,
        Permission::ContactsErase,
    ];

    /// The name used in tokens and documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ContactsRead => "contacts.read",
            Permission::ContactsWrite => "contacts.write",
            Permission::InteractionsHandle => "interactions.handle",
            Permission::InteractionsRoute => "interactions.route",
            Permission::ContactsChanges => "contacts.changes",
            Permission::ContactsErase => "contacts.erase",
        }
    }

    /// Parses a permission name; `None` for names this server does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Permission::ContactsRead => 1,
            Permission::ContactsWrite => 2,
            Permission::InteractionsHandle => 4,
            Permission::InteractionsRoute => 8,
            Permission::ContactsChanges => 16,
            Permission::ContactsErase => 32,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u8);

impl PermissionSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self(0)
    }

    /// Adds a permission.
    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    /// True when the set holds `p`.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// The permissions in the set, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::empty();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("contacts.admin"), None);
    }

    #[test]
    fn set_holds_what_was_inserted() {
        let set: PermissionSet = [Permission::ContactsRead, Permission::InteractionsRoute]
            .into_iter()
            .collect();
        assert!(set.contains(Permission::ContactsRead));
        assert!(!set.contains(Permission::ContactsWrite));
        assert_eq!(set.iter().count(), 2);
    }
}
